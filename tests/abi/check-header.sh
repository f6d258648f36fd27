#!/bin/sh
# Compiles header_check.c in one language mode with every compiler at hand.
# Usage: check-header.sh MODE SRC INCLUDE_DIR [C_COMPILER]; MODE is c99, c11 or cxx.
set -eu
mode=$1 src=$2 inc=$3 cc=${4:-cc}
warn="-Wall -Wextra -Werror -pedantic"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ioq-header.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

n=0
try() { # compiler std language
    if ! command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    echo "$1 -x $3 -std=$2 $warn"
    # shellcheck disable=SC2086
    "$1" -x "$3" -std="$2" $warn -I"$inc" -c "$src" -o "$tmp/out.o"
    n=$((n + 1))
}

case $mode in
    c99|c11)
        try "$cc" "$mode" c
        self=$(readlink -f "$(command -v "$cc")")
        for c in gcc clang; do
            p=$(command -v "$c" || true)
            if [ -n "$p" ] && [ "$(readlink -f "$p")" != "$self" ]; then
                try "$c" "$mode" c
            fi
        done ;;
    cxx)
        for c in g++ clang++; do
            for std in c++11 c++17; do try "$c" "$std" c++; done
        done ;;
    *) echo "unknown mode $mode"; exit 2 ;;
esac
if [ "$n" -eq 0 ]; then
    echo "FAIL: no compiler found for $mode"
    exit 1
fi
echo "PASS ($n compilations)"
