#!/usr/bin/env bash
# The D suite of ioq: generates the raw layer with SWIG -d2, builds the C library and the
# wrapper into a static archive (build-native.sh, run by dub), runs `dub test` and
# smoke-tests the fiber echo server example. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build/d-c"

# The C library needs the c group (cmake, gcc, liburing-dev); the binding ldc, dub, swig.
# The script installs only what is missing and does nothing when all is there.
if [ -f "$root/scripts/install-deps.sh" ]; then
    bash "$root/scripts/install-deps.sh" c d
fi
for tool in gcc swig ldc2 dub; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "missing $tool (Debian packages: gcc swig ldc dub)" >&2
        exit 1
    fi
done

mkdir -p "$build/dub-home"
# dub keeps its settings and package cache under HOME: keep them inside the build tree.
export HOME="$build/dub-home"

cleanup() {
    if [ -n "${server_pid:-}" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$here/.dub" "$here/dub.selections.json"
    [ -n "${server_log:-}" ] && rm -f "$server_log"
    return 0
}
trap cleanup EXIT

bash "$here/build-native.sh"

cd "$here"
# The suite runs once per backend that works here: dub test builds it and runs it on
# epoll, then the same binary runs on io_uring (absent or forbidden: left out, said so).
IOQ_BACKEND=epoll dub test --skip-registry=all --compiler=ldc2
if IOQ_D_CHILD=probe-uring "$here/.dub/bin/ioq-d-tests" >/dev/null 2>&1; then
    echo "== ioq D suite, backend io_uring"
    IOQ_BACKEND=io_uring "$here/.dub/bin/ioq-d-tests"
else
    echo "== io_uring is not available here: the D suite ran on epoll only"
fi

# The example: start it on a free port, echo one line through it, stop it.
dub build -c echo-server --skip-registry=all --compiler=ldc2 -q
server_log="$(mktemp)"
"$here/.dub/bin/echo_server" 127.0.0.1:0 >"$server_log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
    port="$(sed -n 's/^echo server on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$server_log")"
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "example echo_server did not start:" >&2
    cat "$server_log" >&2
    exit 1
fi
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'echo through ioq\n' >&3
IFS= read -r -t 10 reply <&3 || true
exec 3>&-
if [ "$reply" != "echo through ioq" ]; then
    echo "example echo_server: expected the line back, got '$reply'" >&2
    exit 1
fi
echo "example echo_server: ok"
