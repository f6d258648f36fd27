#!/bin/sh
# Regenerates src/bindings.rs from abi/include/ioq.h. The drift check runs this into a
# temporary file and compares, so the options here are the single definition of the crate.
# Usage: generate.sh [output file]   (default: src/bindings.rs next to this script)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-"$here/src/bindings.rs"}
# size_t maps to usize explicitly: older bindgen releases default to usize only with the flag.
exec bindgen "$root/abi/include/ioq.h" \
    --rust-target 1.47 \
    --allowlist-function 'ioq_.*' \
    --allowlist-type 'ioq_.*' \
    --allowlist-var 'IOQ_.*' \
    --size_t-is-usize \
    --no-prepend-enum-name \
    -o "$out" \
    -- -I"$root/abi/include"
