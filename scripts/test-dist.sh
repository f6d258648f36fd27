#!/usr/bin/env bash
# make test-dist: installs every release artifact of build/dist (make dist) the way its
# ecosystem does, into fresh directories outside the source tree, with SWIG hidden (a
# `swig` on PATH that fails), and runs an echo round trip through each installed package:
#   C       the tarball built with CMake, installed to a prefix; consumers through
#           pkg-config (shared) and find_package (ioq::ioq shared, ioq::ioq_static)
#   Python  the sdist and the manylinux wheel, each into a fresh venv
#   Lua     the source rock and the binary rock, each into a fresh tree
#   Rust    the two .crate files as a registry for a fresh consumer crate
#   D       the dub package (zip) for a fresh dub project
# Only the artifacts are copied out; the smoke programs come from the tarball.
#   scripts/test-dist.sh [DIST_DIR]    (default build/dist)
# DIST_FULL=1 also runs `make test-c` in the unpacked tarball (several minutes).
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$(cd "${1:-$src/build/dist}" && pwd)"
py="${IOQ_PYTHON:-/usr/bin/python3}"
lua_version=5.4
[ -f "$dist/SHA256SUMS" ] || { echo "test-dist: no artifacts in $dist (make dist)" >&2; exit 1; }

t="$(mktemp -d "${TMPDIR:-/tmp}/ioq-test-dist.XXXXXX")"
keep="${KEEP:-0}"
cleanup() { [ "$keep" = 1 ] || rm -rf "$t"; }
trap cleanup EXIT
cp -r "$dist" "$t/artifacts"
a="$t/artifacts"
(cd "$a" && sha256sum --quiet -c SHA256SUMS)
version="$(ls "$a"/ioq-*.tar.gz | sed -n 's/.*ioq-\(.*\)\.tar\.gz$/\1/p')"

# SWIG hidden: any use of it fails the step that made it.
mkdir -p "$t/noswig" "$t/home" "$t/tmp"
for n in swig swig4.0; do
    printf '#!/bin/sh\necho "test-dist: %s was run, but no artifact may need SWIG" >&2\nexit 127\n' \
        "$n" > "$t/noswig/$n"
    chmod +x "$t/noswig/$n"
done
export PATH="$t/noswig:$PATH"
# A fresh HOME (dub, luarocks and pip keep their state there); rustup's toolchains stay
# where they are, cargo's own state goes to the fresh HOME.
if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$HOME/.rustup" ]; then
    export RUSTUP_HOME="$HOME/.rustup"
fi
export CARGO_HOME="$t/home/.cargo"
export HOME="$t/home" TMPDIR="$t/tmp"
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
unset SWIG IOQ_SOURCE_DIR IOQ_PYTHON_BUILD_DIR IOQ_LIB_DIR IOQ_LINK PKG_CONFIG_PATH \
      CARGO_TARGET_DIR LUA_PATH LUA_CPATH IOQ_BACKEND || true
cd "$t"

passed=0
failed=0
step() { # name command...: runs a step, its output in $t/logs/<name>.log
    local name=$1 rc lines
    shift
    mkdir -p "$t/logs"
    # A subshell of its own, so that set -e stops the step at its first failing command
    # (bash ignores -e in a function called as an if condition).
    set +e
    (set -e; "$@") >"$t/logs/$name.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        lines="$(grep -h 'echo ok: \|^python package: \|^note: \|^license ok: ' "$t/logs/$name.log" || true)"
        if [ -n "$lines" ]; then
            printf '%s\n' "$lines" | sed "s/^/ok   $name: /"
        else
            echo "ok   $name"
        fi
    else
        failed=$((failed + 1))
        echo "FAIL $name:"
        tail -n 40 "$t/logs/$name.log" | sed 's/^/    /'
    fi
}

# The sources of the release, for the smoke programs and the C build.
mkdir -p "$t/src"
tar -C "$t/src" -xzf "$a/ioq-$version.tar.gz"
tree="$t/src/ioq-$version"
smoke="$tree/tests/dist"
[ -f "$tree/bindings/generated/python/ioq_wrap.c" ] ||
    { echo "test-dist: the tarball holds no generated wrappers" >&2; exit 1; }

# No artifact may carry a path of the tree it was made from.
check_no_source_path() { # file...
    local f
    for f in "$@"; do
        if strings -a "$f" | grep -qF "$src/"; then
            echo "$f refers to the source tree $src"
            return 1
        fi
    done
}

# ---------------------------------------------------------------------------------------
# The MIT license travels with every artifact: the LICENSE file (the tarball's, byte for
# byte) inside it, and "MIT" in the metadata each ecosystem reads.
license_check() {
    "$py" - "$tree/LICENSE" "$a" "$version" <<'PY'
import io, json, os, re, sys, tarfile, zipfile

license_path, a, version = sys.argv[1:4]
ref = open(license_path, "rb").read()
assert ref.startswith(b"MIT License"), "the tarball's LICENSE is not the MIT license"
failures = []

def member(archive, name):
    """The bytes of member name of a .tar.gz, .crate, .zip, .whl or .rock, or None."""
    if zipfile.is_zipfile(archive) if isinstance(archive, str) else False:
        with zipfile.ZipFile(archive) as z:
            return z.read(name) if name in z.namelist() else None
    with tarfile.open(archive if isinstance(archive, str) else None,
                      fileobj=None if isinstance(archive, str) else archive) as t:
        try:
            f = t.extractfile(name)
        except KeyError:
            return None
        return f.read() if f else None

def need(what, archive, name, metadata=None):
    data = member(archive, name)
    if data != ref:
        failures.append("%s: %s %s" % (what, name, "differs from LICENSE" if data else "missing"))
    else:
        print("license ok: %s has %s" % (what, name))
    if metadata is not None:
        meta_name, pattern = metadata
        text = (member(archive, meta_name) or b"").decode("utf-8", "replace")
        if not re.search(pattern, text, re.M):
            failures.append("%s: %s does not say %r" % (what, meta_name, pattern))
        else:
            print("license ok: %s metadata %s says MIT" % (what, meta_name))

name = "ioq-%s" % version
need("tarball", os.path.join(a, name + ".tar.gz"), name + "/LICENSE")
need("sdist", os.path.join(a, "python", name + ".tar.gz"), name + "/LICENSE",
     (name + "/PKG-INFO", r"^License: MIT$"))
wheel = [f for f in os.listdir(os.path.join(a, "python")) if f.endswith(".whl")][0]
wheel = os.path.join(a, "python", wheel)
with zipfile.ZipFile(wheel) as z:
    lic = [n for n in z.namelist() if re.match(r"ioq-[^/]*\.dist-info/(licenses/)?LICENSE$", n)]
need("wheel", wheel, lic[0] if lic else "ioq-%s.dist-info/LICENSE" % version,
     ("ioq-%s.dist-info/METADATA" % version, r"^License: MIT$"))
src_rock = os.path.join(a, "lua", name + "-1.src.rock")
with zipfile.ZipFile(src_rock) as z:
    inner = io.BytesIO(z.read(name + ".tar.gz"))
need("src.rock (its tarball)", inner, name + "/LICENSE")
spec = member(src_rock, name + "-1.rockspec").decode()
if not re.search(r'^\s*license = "MIT"', spec, re.M):
    failures.append("src.rock: the rockspec does not say license = \"MIT\"")
bin_rock = [f for f in os.listdir(os.path.join(a, "lua"))
            if f.endswith(".rock") and not f.endswith(".src.rock")][0]
need("binary rock", os.path.join(a, "lua", bin_rock), "doc/LICENSE",
     (name + "-1.rockspec", r'^\s*license = "MIT"'))
for crate in ("ioq-sys", "ioq"):
    c = "%s-%s" % (crate, version)
    need("crate " + crate, os.path.join(a, "rust", c + ".crate"), c + "/LICENSE",
         (c + "/Cargo.toml", r'^license = "MIT"$'))
d = "ioq-d-%s" % version
dzip = os.path.join(a, "d", d + ".zip")
need("D package", dzip, d + "/LICENSE")
if json.loads(member(dzip, d + "/dub.json")).get("license") != "MIT":
    failures.append("D package: dub.json has no \"license\": \"MIT\"")
else:
    print("license ok: D package metadata dub.json says MIT")
for f in failures:
    print("FAIL: " + f)
sys.exit(1 if failures else 0)
PY
}
step license license_check

# ---------------------------------------------------------------------------------------
c_install() {
    cmake -S "$tree" -B "$t/c/build" -DCMAKE_BUILD_TYPE=Release -DIOQ_BUILD_TESTS=OFF \
        -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF
    cmake --build "$t/c/build" -j"${JOBS:-2}"
    cmake --install "$t/c/build" --prefix "$t/c/prefix"
}
c_pkgconfig() {
    local pcdir
    pcdir="$(dirname "$(find "$t/c/prefix" -name ioq.pc)")"
    # shellcheck disable=SC2046
    cc -o "$t/c/echo-pc" "$smoke/echo.c" \
        $(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_LIBDIR="$pcdir" pkg-config --cflags --libs ioq)
    LD_LIBRARY_PATH="$(dirname "$pcdir")" "$t/c/echo-pc" "c pkg-config"
    LD_LIBRARY_PATH="$(dirname "$pcdir")" IOQ_BACKEND=epoll "$t/c/echo-pc" "c pkg-config"
}
c_find_package() {
    mkdir -p "$t/c/consumer"
    cp "$smoke/echo.c" "$t/c/consumer/"
    cat > "$t/c/consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(ioq_echo LANGUAGES C)
find_package(ioq 1.0 REQUIRED)
add_executable(echo_shared echo.c)
target_link_libraries(echo_shared PRIVATE ioq::ioq)
add_executable(echo_static echo.c)
target_link_libraries(echo_static PRIVATE ioq::ioq_static)
EOF
    cmake -S "$t/c/consumer" -B "$t/c/consumer/build" -DCMAKE_PREFIX_PATH="$t/c/prefix" \
        -DCMAKE_BUILD_TYPE=Release
    cmake --build "$t/c/consumer/build"
    "$t/c/consumer/build/echo_shared" "c find_package ioq::ioq"
    if readelf -d "$t/c/consumer/build/echo_static" | grep -q 'libioq\.so'; then
        echo "the ioq::ioq_static program needs libioq.so"
        return 1
    fi
    "$t/c/consumer/build/echo_static" "c find_package ioq::ioq_static"
}
step c-tarball-cmake-install c_install
step c-pkg-config c_pkgconfig
step c-find-package c_find_package

# ---------------------------------------------------------------------------------------
python_sdist() {
    local before=0
    [ -e /build/python-setuptools ] && before=1
    "$py" -m venv --system-site-packages "$t/py/sdist"
    "$t/py/sdist/bin/pip" install --no-build-isolation --no-index "$a/python/ioq-$version.tar.gz"
    (cd "$t" && "$t/py/sdist/bin/python" "$smoke/echo.py" "python sdist")
    if [ "$before" = 0 ] && [ -e /build/python-setuptools ]; then
        echo "the sdist build wrote /build/python-setuptools"
        return 1
    fi
}
python_wheel() {
    local wheel so
    wheel="$(ls "$a"/python/ioq-*.whl)"
    case "$(basename "$wheel")" in
        *-manylinux_2_*) ;;
        *) echo "the wheel is not tagged manylinux: $(basename "$wheel")"; return 1 ;;
    esac
    "$py" -m venv --system-site-packages "$t/py/wheel"
    "$t/py/wheel/bin/pip" install --no-index "$wheel"
    (cd "$t" && "$t/py/wheel/bin/python" "$smoke/echo.py" "python wheel")
    (cd "$t" && IOQ_BACKEND=epoll "$t/py/wheel/bin/python" "$smoke/echo.py" "python wheel")
    (cd "$t" && "$t/py/wheel/bin/python" "$smoke/check_python.py")
    so="$(find "$t/py/wheel" -name '__ioq*.so')"
    "$py" "$tree/packaging/python/manylinux.py" check --max 2.28 "$so" | sed 's/^/note: /'
    echo "note: installed $(basename "$wheel")"
}
step python-sdist python_sdist
step python-wheel python_wheel

# ---------------------------------------------------------------------------------------
lua_run() { # tree label
    LUA_PATH="$1/share/lua/$lua_version/?.lua;$1/share/lua/$lua_version/?/init.lua;;" \
    LUA_CPATH="$1/lib/lua/$lua_version/?.so;;" lua$lua_version "$smoke/echo.lua" "$2"
}
lua_src_rock() {
    luarocks --lua-version "$lua_version" --tree "$t/lua/src" install "$a/lua/ioq-$version-1.src.rock"
    lua_run "$t/lua/src" "lua src.rock"
}
lua_bin_rock() {
    luarocks --lua-version "$lua_version" --tree "$t/lua/bin" install \
        "$(ls "$a"/lua/ioq-"$version"-1.*.rock | grep -v '\.src\.rock$')"
    lua_run "$t/lua/bin" "lua binary rock"
}
step lua-src-rock lua_src_rock
step lua-binary-rock lua_bin_rock

# ---------------------------------------------------------------------------------------
rust_crates() {
    local c="$t/rust/consumer"
    bash "$tree/scripts/cargo-vendor-dir.sh" "$t/rust/registry" "$a"/rust/*.crate >/dev/null
    mkdir -p "$c/src" "$c/.cargo"
    cat > "$c/Cargo.toml" <<EOF
[package]
name = "ioq-echo"
version = "0.1.0"
edition = "2021"

[dependencies]
ioq = "$version"
EOF
    cat > "$c/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "release"

[source.release]
directory = "$t/rust/registry"
EOF
    cp "$smoke/echo.rs" "$c/src/main.rs"
    (cd "$c" && CARGO_TARGET_DIR="$c/target" cargo build --offline)
    "$c/target/debug/ioq-echo"
    check_no_source_path "$c/target/debug/ioq-echo"
}
step rust-crates rust_crates

# ---------------------------------------------------------------------------------------
d_package() {
    local app="$t/d/app" exe
    mkdir -p "$t/d/packages" "$app/source"
    (cd "$t/d/packages" && "$py" -m zipfile -e "$a/d/ioq-d-$version.zip" .)
    chmod +x "$t/d/packages/ioq-d-$version/build-native.sh"
    dub add-local "$t/d/packages/ioq-d-$version"
    cat > "$app/dub.json" <<EOF
{
    "name": "ioq-echo",
    "targetType": "executable",
    "dependencies": { "ioq": "~>$version" }
}
EOF
    cp "$smoke/echo.d" "$app/source/app.d"
    (cd "$app" && dub build --skip-registry=all --compiler=ldc2)
    exe="$app/ioq-echo"
    if readelf -d "$exe" | grep -E 'R(UN)?PATH' | grep -v '\$ORIGIN'; then
        echo "the program carries a run path into a build tree"
        return 1
    fi
    if readelf -d "$exe" | grep -q 'libioq'; then
        echo "the program needs a shared ioq library"
        return 1
    fi
    # The program runs on its own: moved away, with the package's build output renamed.
    mkdir -p "$t/d/elsewhere"
    mv "$exe" "$t/d/elsewhere/"
    mv "$t/d/packages/ioq-d-$version/.dub" "$t/d/packages/ioq-d-$version/.dub-renamed"
    "$t/d/elsewhere/ioq-echo"
}
step d-dub-package d_package

# ---------------------------------------------------------------------------------------
if [ "${DIST_FULL:-0}" = 1 ]; then
    step c-tarball-make-test-c make -C "$tree" test-c JOBS="${JOBS:-2}"
fi

echo "test-dist: $passed passed, $failed failed"
[ "$failed" = 0 ]
