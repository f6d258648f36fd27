#!/bin/sh
# Prints the core/backend files that a platform builds, one path a line, as listed in
# core/backend/sources.txt (the list CMake, setup.py and the Rust build script read too).
# Usage: backend-sources.sh [-C SOURCE_DIR] PLATFORM [OPTION...]
#   PLATFORM: linux, darwin, bsd or windows; OPTION: uring, fault (see sources.txt).
set -eu
src=.
if [ "${1:-}" = "-C" ]; then
    src=$2
    shift 2
fi
[ $# -ge 1 ] || { echo "usage: $0 [-C SOURCE_DIR] PLATFORM [OPTION...]" >&2; exit 2; }
platform=$1
shift
awk -v platform="$platform" -v options=" $* " '
    { sub(/#.*/, "") }
    NF == 0 { next }
    {
        on = 0; ok = 1
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^\+/) { if (index(options, " " substr($i, 2) " ") == 0) ok = 0 }
            else if ($i == platform) on = 1
        }
        if (on && ok) print "core/backend/" $1
    }' "$src/core/backend/sources.txt"
