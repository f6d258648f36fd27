#!/usr/bin/env bash
# Python suite of ioq: build the package offline from source (C library + SWIG module), make
# a wheel, install it into a fresh venv and run pytest there.
#
#   bash bindings/python/run-tests.sh [pytest arguments...]
#
# Needs Debian's python3 (3.11) with python3-dev python3-venv python3-pytest
# python3-setuptools python3-wheel python3-uvloop, swig, gcc, liburing-dev (optional);
# libpython3.11-testsuite for CPython's asyncio tests, python3-aiohttp (optional).
# IOQ_PYTHON overrides the interpreter; IOQ_BACKEND picks the backend the tests use.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${IOQ_PYTHON:-/usr/bin/python3}"
out="$root/build"
venv_build="$out/python-venv"
venv_test="$out/python-venv-test"
dist="$out/python-dist"

# Quiet and offline when everything is installed already.
if [ -f "$root/scripts/install-deps.sh" ]; then
    bash "$root/scripts/install-deps.sh" c python
fi

# Installing from the source tree: the pip build of the C core and the SWIG module.
rm -rf "$venv_build" "$venv_test" "$dist"
"$py" -m venv --system-site-packages "$venv_build"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$venv_build/bin/pip" install -q --no-build-isolation --no-index "$root/bindings/python"
"$venv_build/bin/python" -c 'import ioq; print("ioq", ioq.__version__, "source install ok")'

# The wheel, installed into another fresh venv: this is the one the tests run against.
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$venv_build/bin/pip" wheel -q --no-build-isolation --no-index --no-deps -w "$dist" \
    "$root/bindings/python"
wheel=$(ls "$dist"/ioq-*-cp3*-linux_*.whl | head -n 1)
echo "wheel: $(basename "$wheel")"
"$py" -m venv --system-site-packages "$venv_test"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$venv_test/bin/pip" install -q --no-index "$wheel"

# Run from a directory without an ioq/ folder so that the installed wheel is imported; keep
# bytecode and pytest's temporary files out of the source tree and out of /tmp.
tmp="$out/python-pytest-tmp"
rm -rf "$tmp"
cd "$root/tests/python"
rc=0
PYTHONDONTWRITEBYTECODE=1 "$venv_test/bin/python" -m pytest -q -p no:cacheprovider \
    --basetemp="$tmp" "$root/tests/python" "$@" || rc=$?
rm -rf "$tmp"

# CPython's own asyncio tests against ioq.aio.EventLoop on each backend, beside the default
# loop (about a minute per loop; IOQ_CPYTHON_ASYNCIO=0 leaves them out, IOQ_ASYNCIO_BACKENDS
# picks the backends).
if [ "${IOQ_CPYTHON_ASYNCIO:-1}" != 0 ] && [ $# -eq 0 ]; then
    echo "CPython's test.test_asyncio on ioq.aio.EventLoop:"
    PYTHONDONTWRITEBYTECODE=1 "$venv_test/bin/python" "$root/tests/python/cpython_asyncio.py" \
        || rc=1
fi
exit $rc
