#!/bin/sh
# The exported symbols of libioq.so, the names of abi/ioq.map, the exports of abi/ioq.def
# and the IOQ_API functions of ioq.h must be one and the same set.
# Usage: check-symbols.sh LIBIOQ_SO IOQ_MAP IOQ_DEF IOQ_H [C_COMPILER]
set -eu
lib=$1 map=$2 def=$3 header=$4 cc=${5:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ioq-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

# Version nodes show up as absolute symbols (type A); they are not exports.
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' \
    | sort >"$tmp/lib"
sed -e 's,/\*.*\*/,,' -e 's,^ *\*.*,,' "$map" \
    | grep -E '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;' | tr -d ' \t;' \
    | grep -v -x -E 'global:|local:|\*' | sort >"$tmp/map"
awk 'f && NF && $1 !~ /^;/ { print $1 } /^EXPORTS/ { f = 1 }' "$def" | sort >"$tmp/def"
# The preprocessor drops the comments; IOQ_API is expanded to a marker of our own.
"$cc" -E -P -x c -D'__attribute__(x)=IOQ_EXPORT_MARK' "$header" | tr '\n' ' ' | tr ';' '\n' \
    | grep IOQ_EXPORT_MARK \
    | sed -n -E 's/.*[^A-Za-z0-9_](ioq_[A-Za-z0-9_]+)[[:space:]]*\(.*/\1/p' | sort >"$tmp/hdr"

for f in lib map def hdr; do
    if [ ! -s "$tmp/$f" ]; then
        echo "FAIL: no names read from $f"
        fail=1
    fi
done
if grep -v '^ioq_' "$tmp/lib"; then
    echo "FAIL: the symbols above are exported without the ioq_ prefix"
    fail=1
fi
compare() { # a b text
    if ! diff -u "$tmp/$1" "$tmp/$2" >"$tmp/diff"; then
        echo "FAIL: $3"
        cat "$tmp/diff"
        fail=1
    fi
}
compare map lib "exported symbols of $(basename "$lib") differ from abi/ioq.map"
compare map def "abi/ioq.def differs from abi/ioq.map"
compare map hdr "IOQ_API functions of ioq.h differ from abi/ioq.map"
if sort -c -u "$tmp/map" 2>/dev/null; then :; else
    echo "FAIL: abi/ioq.map lists a name twice"; fail=1
fi
[ "$fail" -eq 0 ] && echo "PASS: $(wc -l <"$tmp/map") symbols agree"
exit "$fail"
