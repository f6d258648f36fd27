#!/bin/sh
# Compares the built library's ABI with a committed baseline abi/ioq-MAJOR.MINOR.abi.
# Within a major version the ABI may only grow: added functions are listed and accepted,
# any other change (removed symbols, changed types or signatures) fails.
# Regenerate the baseline on purpose with `make abi-baseline`.
# Usage: check-abidiff.sh LIBIOQ_SO BASELINE INCLUDE_DIR
set -eu
lib=$1 baseline=$2 inc=$3
if ! command -v abidiff >/dev/null 2>&1; then
    echo "SKIP: abidiff is not installed (Debian package abigail-tools)"
    exit 77
fi
if [ ! -f "$baseline" ]; then
    echo "FAIL: no ABI baseline at $baseline (create it with: make abi-baseline)"
    exit 1
fi
# Types outside the public header (the inside of struct ioq_loop) are not part of the ABI.
opts="--drop-private-types --headers-dir2 $inc"
set +e
# shellcheck disable=SC2086
abidiff $opts --no-added-syms "$baseline" "$lib"
rc=$?
set -e
# abidiff's status is a bit set: 1 error, 2 usage, 4 change, 8 incompatible change.
if [ $((rc & 3)) -ne 0 ]; then
    echo "FAIL: abidiff could not compare (status $rc)"
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "FAIL: the ABI changed against $baseline (status $rc)"
    exit 1
fi
# shellcheck disable=SC2086
if abidiff $opts "$baseline" "$lib" >/dev/null 2>&1; then
    echo "PASS: ABI identical to the baseline"
else
    # shellcheck disable=SC2086
    abidiff $opts "$baseline" "$lib" || true
    echo "PASS with additions (refresh the baseline when this minor version is released)"
fi
