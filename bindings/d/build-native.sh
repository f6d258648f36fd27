#!/usr/bin/env bash
# Builds the native part of the D package: the C library of ioq and the SWIG wrapper in one
# static archive, .dub/native/libioq_native.a, which dub links into every program (lflags in
# dub.json). Programs need no shared library of ioq and carry no RUNPATH. dub runs this
# before every build (preGenerateCommands); it does nothing when the archive is up to date.
#
# Where the sources come from:
#   csrc/ beside this file      a packaged release (ioq-d-<version>.zip): C sources, header
#   ../.. (the ioq source tree)  a checkout or a release tarball
# The raw D layer (generated/ioq_raw.d, ioq_raw_im.d) and its C wrapper (ioq_raw_wrap.c)
# ship in generated/ (zip) or bindings/generated/d (tarball); in a checkout SWIG 4.1
# generates them. Environment: CC (default cc), IOQ_WITH_URING=0 leaves io_uring out,
# JOBS (default 2) compiles in parallel.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -d "$here/csrc" ]; then
    root="$here/csrc"
else
    root="$(cd "$here/../.." && pwd)"
fi
gen="$here/generated"
out="$here/.dub/native"
cc="${CC:-cc}"
jobs="${JOBS:-2}"
archive="$out/libioq_native.a"

mkdir -p "$gen" "$out"

# The raw layer: shipped, or generated from bindings/swig (a checkout).
raw_inputs=("$root/bindings/swig/ioq.i" "$root/bindings/swig/d.i" "$root/abi/include/ioq.h")
if [ -f "$gen/ioq_raw_wrap.c" ] && [ ! -f "$gen/.swig-stamp" ]; then
    :   # shipped with the package
elif [ -f "$root/bindings/generated/d/ioq_raw_wrap.c" ]; then
    for f in ioq_raw.d ioq_raw_im.d ioq_raw_wrap.c; do
        cmp -s "$root/bindings/generated/d/$f" "$gen/$f" || cp "$root/bindings/generated/d/$f" "$gen/$f"
    done
elif [ ! -f "$gen/.swig-stamp" ] || [ -n "$(find "${raw_inputs[@]}" -newer "$gen/.swig-stamp")" ]; then
    command -v swig >/dev/null 2>&1 || {
        echo "build-native.sh: swig is needed to generate the D layer from a checkout" >&2
        exit 1
    }
    swig -d -d2 -I"$root/abi/include" -I"$root/bindings/swig" \
        -outdir "$gen" -o "$gen/ioq_raw_wrap.c" "$root/bindings/swig/ioq.i"
    touch "$gen/.swig-stamp"
fi

# What this platform builds: core/*.c, the backends of core/backend/sources.txt, the wrapper.
defs=(-DIOQ_BUILDING)
uring_a=""
case "$(uname -s)" in
    Linux)
        platform=linux
        defs+=(-D_GNU_SOURCE)
        # io_uring only with the static liburing, as the CMake build does.
        if [ "${IOQ_WITH_URING:-1}" != 0 ] && [ -f "$root/core/backend/uring.c" ]; then
            uring_a="$("$cc" -print-file-name=liburing.a)"
            [ "$uring_a" != liburing.a ] || uring_a=""
        fi
        ;;
    Darwin) platform=darwin ;;
    *) platform=bsd ;;
esac
options=()
if [ -n "$uring_a" ]; then
    options+=(uring)
    defs+=(-DIOQ_HAVE_URING=1)
fi
sources=("$root"/core/*.c)
while IFS= read -r f; do
    [ -f "$root/$f" ] && sources+=("$root/$f")
done < <(sh "$root/scripts/backend-sources.sh" -C "$root" "$platform" "${options[@]}")

# Up to date: nothing newer than the archive, and the same source list as last time.
list="$out/sources.txt"
printf '%s\n' "${sources[@]}" "$gen/ioq_raw_wrap.c" $uring_a > "$list.new"
if [ -f "$archive" ] && cmp -s "$list" "$list.new" &&
   [ -z "$(find "$root/core" "$root/abi/include" "$gen/ioq_raw_wrap.c" -newer "$archive" \
           2>/dev/null | head -n 1)" ]; then
    rm -f "$list.new"
    exit 0
fi
mv "$list.new" "$list"

rm -rf "$out/obj"
mkdir -p "$out/obj"
cflags=(-O2 -fPIC -pthread -Wall -Wno-unused-function)
compile() { # source object [extra flags]
    local src=$1 obj=$2
    shift 2
    "$cc" "${cflags[@]}" "$@" -c "$src" -o "$obj"
}
running=0
for src in "${sources[@]}"; do
    name="$(basename "$src" .c)"
    [[ $src == */backend/* ]] && name="backend-$name"
    compile "$src" "$out/obj/ioq-$name.o" -std=c11 -fvisibility=hidden "${defs[@]}" \
        -I"$root/abi/include" -I"$root/core" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
compile "$gen/ioq_raw_wrap.c" "$out/obj/ioq-raw-wrap.o" -I"$root/abi/include" &
running=$((running + 1))
while [ "$running" -gt 0 ]; do
    wait -n
    running=$((running - 1))
done

# liburing's members go into the same archive, so dub.json names one file.
if [ -n "$uring_a" ]; then
    mkdir -p "$out/obj/uring"
    (cd "$out/obj/uring" && ar x "$uring_a")
    for o in "$out"/obj/uring/*; do   # liburing names its members *.ol
        mv "$o" "$out/obj/uring-$(basename "$o" | sed 's/\.[^.]*$//').o"
    done
    rmdir "$out/obj/uring"
fi
rm -f "$archive"
ar rcs "$archive" "$out"/obj/*.o
