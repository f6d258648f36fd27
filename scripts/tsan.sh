#!/usr/bin/env bash
# Runs the threaded parts of the C suite (posts, notifiers and wake-ups, the thread pool behind files
# and name resolution, the loop) under ThreadSanitizer on every backend built here.
# Usage: scripts/tsan.sh [BUILD_DIR]   (default build-tsan)
set -euo pipefail

cd "$(dirname "$0")/.."
build=${1:-build-tsan}
jobs=${JOBS:-2}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOQ_TSAN=ON \
    -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$jobs" \
    --timeout 300 -R '^(epoll|io_uring)/(post|loop|file|resolve|pool|notify)-'
