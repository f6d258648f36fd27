#!/bin/sh
# Every IOQ_* constant of the public header must reach the bindings that list constants by
# hand or from a committed generated file, so that a constant added to ioq.h and forgotten
# in a binding fails here rather than in a user's program:
#   - Rust: ioq-sys/src/bindings.rs declares every one (bindgen output: run
#     bindings/rust/ioq-sys/generate.sh), and the ioq crate's Error lists every IOQ_E* code;
#   - D: the package in bindings/d/source names every one (its enums mirror the header's
#     groups), but for the few it leaves to the raw module on purpose (listed below).
# Usage: check-binding-constants.sh IOQ_H BINDINGS_DIR
set -eu
header=$1 bindings=$2
rs_sys=$bindings/rust/ioq-sys/src/bindings.rs
rs_err=$bindings/rust/ioq/src/error.rs
d_src=$bindings/d/source

# IOQ_H (the include guard) and IOQ_API (visibility) are header machinery, not constants.
names=$(sed -n 's/^[[:space:]]*#[[:space:]]*define[[:space:]][[:space:]]*\(IOQ_[A-Z0-9_]*\).*/\1/p' \
        "$header" | sort -u | grep -v -x -e IOQ_H -e IOQ_API)
[ -n "$names" ] || { echo "FAIL: no IOQ_* constants found in $header"; exit 1; }

# Each side as a sorted list of words; comm prints the header's names a side lacks.
words() { cat "$@" | tr -cs 'A-Za-z0-9_' '\n' | sort -u; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$names" > "$tmp/names"
sed -n 's/^pub const \(IOQ_[A-Z0-9_]*\):.*/\1/p' "$rs_sys" | sort -u > "$tmp/rs_sys"
words "$rs_err" > "$tmp/rs_err"
words $(find "$d_src" -name '*.d') > "$tmp/d"

# Version numbers and size limits: D code reads them from ioq_raw directly.
d_own='IOQ_VERSION_MAJOR IOQ_VERSION_MINOR IOQ_VERSION_PATCH IOQ_VERSION_STRING IOQ_MAX_LEN
IOQ_MAX_IOV'

missing=0
report() { # FILE-OR-DIR HINT: names on stdin
    while read -r n; do
        echo "FAIL: $n is missing from $1$2"
        missing=$((missing + 1))
    done
}
comm -23 "$tmp/names" "$tmp/rs_sys" > "$tmp/m1"
report "$rs_sys" " (run bindings/rust/ioq-sys/generate.sh)" < "$tmp/m1"
grep '^IOQ_E' "$tmp/names" | comm -23 - "$tmp/rs_err" > "$tmp/m2" || true
report "$rs_err" "" < "$tmp/m2"
echo "$d_own" | tr ' ' '\n' | sort -u | comm -23 "$tmp/names" - | comm -23 - "$tmp/d" > "$tmp/m3"
report "$d_src" "" < "$tmp/m3"
if [ "$missing" -gt 0 ]; then
    echo "FAIL: $missing binding constant(s) missing"
    exit 1
fi
echo "PASS: the $(wc -l < "$tmp/names") IOQ_* constants of ioq.h reach the D and Rust bindings"
