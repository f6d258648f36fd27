#!/usr/bin/env bash
# Builds ioq with the fault layer (ASan + UBSan too) and runs the fault stress on every
# backend built here with a few seeds. A failure prints its seed; rerun one with
#   IOQ_BACKEND=epoll IOQ_FAULT_SEED=<seed> BUILD/tests/fault/ioq_fault_stress [OPS]
# Usage: tests/fault/run.sh [BUILD_DIR [CMAKE_ARGS...]]   (default build-fault)
set -euo pipefail

cd "$(dirname "$0")/../.."
build=${1:-build-fault}
shift || true
jobs=${JOBS:-2}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOQ_FAULT_INJECTION=ON \
    -DIOQ_SANITIZE=ON -DIOQ_BUILD_TESTS=OFF -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF \
    ${IOQ_FAULT_SEEDS:+"-DIOQ_FAULT_SEEDS=$IOQ_FAULT_SEEDS"} \
    ${IOQ_FAULT_OPS:+"-DIOQ_FAULT_OPS=$IOQ_FAULT_OPS"} "$@" >/dev/null
cmake --build "$build" -j"$jobs" --target ioq_fault_stress
log="$build/fault-stress.log"
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$jobs" -R '^fault/' -V \
    >"$log" 2>&1
rc=$?
set -e
# One summary line per run (operations, completions, faults by kind), then the verdict.
grep -E '^[0-9]+: (fault stress|FAIL)|tests passed|tests failed' "$log" || true
if [ $rc -ne 0 ]; then
    grep -E 'FAIL|ERROR|runtime error|Failed' "$log" | head -n 40 >&2 || true
    echo "fault stress: FAILED (full log: $log)" >&2
    exit 1
fi
