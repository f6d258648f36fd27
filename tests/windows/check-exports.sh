#!/bin/sh
# The exports of ioq.dll, the names of abi/ioq.map (the Linux version script) and the
# EXPORTS of abi/ioq.def must be one and the same set.
# Usage: check-exports.sh IOQ_DLL IOQ_MAP IOQ_DEF [OBJDUMP]
set -eu
dll=$1 map=$2 def=$3 objdump=${4:-x86_64-w64-mingw32-objdump}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ioq-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The export table lists "[ordinal] name" lines after "[Ordinal/Name Pointer] Table".
"$objdump" -p "$dll" | awk '/\[Ordinal\/Name Pointer\] Table/ { f = 1; next }
    f && /^[[:space:]]*\[[[:space:]]*[0-9]+\]/ { print $NF; next } f && NF == 0 { f = 0 }' \
    | sort >"$tmp/dll"
sed -e 's,/\*.*\*/,,' -e 's,^ *\*.*,,' "$map" \
    | grep -E '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;' | tr -d ' \t;' \
    | grep -v -x -E 'global:|local:|\*' | sort >"$tmp/map"
awk 'f && NF && $1 !~ /^;/ { print $1 } /^EXPORTS/ { f = 1 }' "$def" | sort >"$tmp/def"

fail=0
for f in dll map def; do
    if [ ! -s "$tmp/$f" ]; then
        echo "FAIL: no names read from $f"
        fail=1
    fi
done
if ! diff -u "$tmp/map" "$tmp/dll"; then
    echo "FAIL: exports of $(basename "$dll") differ from abi/ioq.map"
    fail=1
fi
if ! diff -u "$tmp/map" "$tmp/def"; then
    echo "FAIL: abi/ioq.def differs from abi/ioq.map"
    fail=1
fi
[ $fail -eq 0 ] && echo "ok: $(wc -l <"$tmp/dll") exports of $(basename "$dll") match abi/ioq.map"
exit $fail
