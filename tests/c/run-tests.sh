#!/bin/sh
# Build ioq with its C test suite and run it once per backend (ctest label "c").
# Usage: tests/c/run-tests.sh [build-dir] [extra ctest arguments...]
# Needs: cmake, a C compiler, pkg-config, libcmocka-dev (and liburing-dev for io_uring).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-"$root/build"}
[ $# -gt 0 ] && shift
jobs=${JOBS:-2}
cmake -S "$root" -B "$build" -DIOQ_BUILD_TESTS=ON
cmake --build "$build" -j "$jobs"
exec ctest --test-dir "$build" -L '^c$' -j "$jobs" --output-on-failure "$@"
