#!/bin/sh
# The shared library must carry the major version in its SONAME and must not need
# liburing at run time (the io_uring backend links it statically).
# Usage: check-soname.sh LIBIOQ_SO EXPECTED_SONAME
set -eu
lib=$1 want=$2
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" != "$want" ]; then
    echo "FAIL: SONAME is '$soname', expected '$want'"
    exit 1
fi
if readelf -d "$lib" | grep '(NEEDED)' | grep -i uring; then
    echo "FAIL: $lib needs liburing at run time"
    exit 1
fi
if ldd "$lib" | grep -i uring; then
    echo "FAIL: ldd shows liburing for $lib"
    exit 1
fi
echo "PASS: SONAME $soname, no liburing dependency"
