#!/usr/bin/env bash
# The C suite and the fault stress on the kqueue backend, run on Linux through libkqueue (the
# kqueue API emulated over epoll, eventfd, signalfd and timerfd): an emulation, not a kqueue
# kernel. libkqueue is a test-only dependency: its source tarball is taken from
# ../shared/third_party/ beside the repository and built into the build root; without the
# tarball this prints one line and succeeds. Never used for a release build.
#
#   scripts/test-kqueue.sh [build-root]          (default: build-kqueue)
#
# build-root/libkqueue    libkqueue installed (static), from the tarball
# build-root/ioq          ioq with -DIOQ_KQUEUE_EMULATION: the C suite as kqueue/<area>-<case>
#                         and the programs of tests/kqueue as libkqueue/<program>
# build-root/fault        the fault stress on kqueue (ASan + UBSan), as tests/fault/run.sh
set -euo pipefail

LIBKQUEUE=libkqueue-f96608964f7d
LIBKQUEUE_SHA256=e9b5bad981b5a48de1d39cd730f624902ec93046d01f1241cd32b6fafafafa9e
JOBS=${JOBS:-2}

root=$(cd "$(dirname "$0")/.." && pwd)
tarball=$root/../shared/third_party/$LIBKQUEUE.tar.gz
if [ ! -f "$tarball" ]; then
    echo "test-kqueue: SKIPPED: ../shared/third_party/$LIBKQUEUE.tar.gz (libkqueue, a" \
         "test-only dependency) is not beside this repository"
    exit 0
fi

log() { echo "test-kqueue: $*"; }
die() { echo "test-kqueue: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "libkqueue emulation is for Linux (elsewhere: make test-c)"
command -v cmake >/dev/null 2>&1 && [ -f /usr/include/cmocka.h ] ||
    "$root/scripts/install-deps.sh" c

out=${1:-$root/build-kqueue}
mkdir -p "$out"
out=$(cd "$out" && pwd)
prefix=$out/libkqueue

# --- libkqueue, once per tarball -------------------------------------------------------------
if [ "$(cat "$prefix/.tarball" 2>/dev/null)" != "$LIBKQUEUE_SHA256" ]; then
    echo "$LIBKQUEUE_SHA256  $tarball" | sha256sum -c --quiet - ||
        die "$LIBKQUEUE.tar.gz is not the libkqueue this script was checked with"
    log "building $LIBKQUEUE into $prefix"
    rm -rf "$out/libkqueue-src" "$out/libkqueue-build" "$prefix"
    mkdir -p "$out/libkqueue-src"
    tar -xzf "$tarball" -C "$out/libkqueue-src"
    # Its CMakeLists asks git for a version: keep git from finding ioq's repository above.
    GIT_CEILING_DIRECTORIES=$out cmake -S "$out/libkqueue-src/$LIBKQUEUE" \
        -B "$out/libkqueue-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_SHARED=OFF \
        -DVERSION_OVERRIDE=2.7.0 -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
        >"$out/libkqueue-configure.log" 2>&1 ||
        { cat "$out/libkqueue-configure.log"; die "libkqueue: configure failed"; }
    cmake --build "$out/libkqueue-build" -j"$JOBS" >"$out/libkqueue-build.log" 2>&1 ||
        { tail -n 40 "$out/libkqueue-build.log"; die "libkqueue: build failed"; }
    cmake --install "$out/libkqueue-build" >/dev/null
    echo "$LIBKQUEUE_SHA256" >"$prefix/.tarball"
fi

# --- the C suite -----------------------------------------------------------------------------
log "C suite on kqueue (libkqueue on Linux: an emulation)"
cmake -S "$root" -B "$out/ioq" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DIOQ_KQUEUE_EMULATION="$prefix" -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$out/ioq" -j"$JOBS"
ctest --test-dir "$out/ioq" --output-on-failure --no-tests=error -j"$JOBS" --timeout 300 \
    -R '^(kqueue|libkqueue)/'

# --- the fault stress ------------------------------------------------------------------------
log "fault stress on kqueue (libkqueue)"
JOBS=$JOBS "$root/tests/fault/run.sh" "$out/fault" -DIOQ_KQUEUE_EMULATION="$prefix"
log "OK (kqueue backend under libkqueue emulation on Linux, not a kqueue kernel)"
