#!/usr/bin/env bash
# Cross-builds ioq for Windows with mingw-w64 and runs its tests under wine:
#   1. installs mingw-w64 and wine when missing (scripts/install-deps.sh windows),
#   2. configures and builds $BUILD_WIN (default build-win) with the mingw-w64 toolchain,
#   3. checks that the exports of ioq.dll equal the names of abi/ioq.map,
#   4. runs the iocp/ tests (and the ABI header checks) with ctest; every .exe runs under
#      wine (WINEDEBUG=-all) with a private WINEPREFIX inside the build directory.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BUILD_WIN=${BUILD_WIN:-build-win}
JOBS=${JOBS:-2}
CMAKE=${CMAKE:-cmake}
CTEST=${CTEST:-ctest}

scripts/install-deps.sh windows
if ! command -v "$CMAKE" >/dev/null 2>&1; then
    scripts/install-deps.sh c
fi

"$CMAKE" -S . -B "$BUILD_WIN" -DCMAKE_TOOLCHAIN_FILE="$here/packaging/cmake/mingw-w64.cmake" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOQ_BUILD_BENCH=OFF
"$CMAKE" --build "$BUILD_WIN" -j"$JOBS"

dll=$(find "$BUILD_WIN" -maxdepth 1 -name '*ioq*.dll' | head -n 1)
if [ -z "$dll" ]; then
    echo "test-windows: no ioq DLL in $BUILD_WIN" >&2
    exit 1
fi
sh tests/windows/check-exports.sh "$dll" abi/ioq.map abi/ioq.def x86_64-w64-mingw32-objdump

# ctest's iocp/wine-start fixture makes the prefix and keeps one wineserver up for the run;
# iocp/wine-stop ends it. The kill below only covers an interrupted run.
export WINEPREFIX
WINEPREFIX=$(cd "$BUILD_WIN" && pwd)/wineprefix
status=0
"$CTEST" --test-dir "$BUILD_WIN" --output-on-failure --no-tests=error -j"$JOBS" \
    --timeout 300 -R '^(iocp|abi|examples)/' || status=$?
wineserver -k >/dev/null 2>&1 || true
exit $status
