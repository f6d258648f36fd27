#!/bin/sh
# Installs a built ioq tree into a temporary prefix and builds a small program against it,
# once through pkg-config and once through find_package(ioq), then runs each program.
# Usage: test-install-consumer.sh BUILD_DIR [CONFIG]   (env: CC, CMAKE, CONSUMER_FLAGS)
set -eu
build=$1
config=${2:-}
cc=${CC:-cc}
cmake=${CMAKE:-cmake}
flags=${CONSUMER_FLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ioq-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

if [ -n "$config" ]; then
    "$cmake" --install "$build" --prefix "$prefix" --config "$config" >/dev/null
else
    "$cmake" --install "$build" --prefix "$prefix" >/dev/null
fi

pc=$(find "$prefix" -name ioq.pc | head -n 1)
cfg=$(find "$prefix" -name ioqConfig.cmake | head -n 1)
[ -n "$pc" ] || { echo "FAIL: ioq.pc was not installed"; exit 1; }
[ -n "$cfg" ] || { echo "FAIL: ioqConfig.cmake was not installed"; exit 1; }
[ -f "$prefix/include/ioq.h" ] || { echo "FAIL: include/ioq.h was not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")

mkdir -p "$tmp/src"
cat > "$tmp/src/main.c" <<'SRC'
#include <ioq.h>
#include <stdio.h>

int main(void)
{
    /* A header/library mismatch is exactly what an installed package must not have. */
    if (ioq_version() != IOQ_VERSION_NUMBER) {
        fprintf(stderr, "version mismatch: library %u, header %u\n",
                (unsigned)ioq_version(), (unsigned)IOQ_VERSION_NUMBER);
        return 1;
    }
    printf("%s\n", ioq_version_string());
    return 0;
}
SRC

expect=$(sed -n 's/^#define IOQ_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/ioq.h")

check_run() { # name program
    out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$2")
    if [ "$out" != "$expect" ]; then
        echo "FAIL: $1 printed '$out', expected '$expect'"
        exit 1
    fi
    echo "ok: $1 prints $out"
}

# pkg-config
pcdir=$(dirname "$pc")
# shellcheck disable=SC2046,SC2086
"$cc" $flags -o "$tmp/pc-consumer" "$tmp/src/main.c" \
    $(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_LIBDIR="$pcdir" pkg-config --cflags --libs ioq)
check_run pkg-config "$tmp/pc-consumer"

# find_package
cat > "$tmp/src/CMakeLists.txt" <<'SRC'
cmake_minimum_required(VERSION 3.20)
project(ioq_consumer LANGUAGES C)
find_package(ioq 1.0 REQUIRED)
add_executable(consumer_shared main.c)
target_link_libraries(consumer_shared PRIVATE ioq::ioq)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE ioq::ioq_static)
SRC
"$cmake" -S "$tmp/src" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_BUILD_TYPE=Release \
    >"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; echo "FAIL: find_package(ioq)"; exit 1; }
"$cmake" --build "$tmp/cm" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
check_run find_package-shared "$tmp/cm/consumer_shared"
check_run find_package-static "$tmp/cm/consumer_static"

if command -v readelf >/dev/null 2>&1; then
    if readelf -d "$tmp/cm/consumer_static" | grep -q 'libioq\.so'; then
        echo "FAIL: the ioq::ioq_static consumer depends on libioq.so"
        exit 1
    fi
    readelf -d "$tmp/cm/consumer_shared" | grep -q 'libioq\.so\.1' \
        || { echo "FAIL: the ioq::ioq consumer does not load libioq.so.1"; exit 1; }
fi
echo "PASS"
