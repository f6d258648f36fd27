#!/usr/bin/env bash
# Builds the libFuzzer harness of the ioq ABI with clang (ASan + UBSan) and runs it for
# FUZZ_SECONDS seconds on a copy of the committed seed corpus. Any crash, sanitizer report,
# leak or timeout fails; the reproducer is left in the build directory and named on stderr.
# Usage: scripts/fuzz.sh [BUILD_DIR]   (default build-fuzz)
set -euo pipefail

cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${JOBS:-2}

CC=${FUZZ_CC:-clang} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DIOQ_SANITIZE=ON -DIOQ_BUILD_FUZZ=ON -DIOQ_BUILD_TESTS=OFF \
    -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target ioq_fuzz_abi

exe="$build/tests/fuzz/ioq_fuzz_abi"
[ -x "$exe" ] || { echo "fuzz: $exe was not built (is CC clang?)" >&2; exit 1; }

# New inputs go to a scratch copy, so the committed corpus stays as it is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/tmp"
cp tests/fuzz/corpus/* "$work/corpus/"
# The harness keeps its files under TMPDIR: a crashed run leaves nothing behind either.
export TMPDIR="$work/tmp"
rm -rf "$build/artifacts"
mkdir -p "$build/artifacts"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
set +e
"$exe" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/" "$work/corpus" 2>"$build/fuzz.log"
rc=$?
set -e
grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^Done' \
    "$build/fuzz.log" || true
if [ $rc -ne 0 ]; then
    tail -n 60 "$build/fuzz.log" >&2
    for f in "$build"/artifacts/*; do
        [ -e "$f" ] && echo "fuzz: reproduce with: $exe $f" >&2
    done
    echo "fuzz: FAILED (exit $rc)" >&2
    exit 1
fi
echo "fuzz: passed ($seconds s, no crash)"
