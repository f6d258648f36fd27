#!/usr/bin/env bash
# Tests of the Rust crates (make test-rust):
#  1. the committed ioq-sys bindings equal a fresh bindgen run on abi/include/ioq.h;
#  2. the C library is built with CMake into build/rust-c and linked statically (libioq.a
#     plus liburing.a when the io_uring backend is in) through IOQ_LIB_DIR, so the test
#     binaries need no library path at run time;
#  3. cargo test --offline of the workspace with every feature (both crates, unit +
#     integration + examples; the futures-io and tokio adapters, the tokio driver on
#     current_thread and multi_thread runtimes), once per backend that this machine can run;
#  4. the pkg-config route of ioq-sys's build script against a staged install.
# Crates come from Debian's directory registry (.cargo/config.toml); no network.
# Cargo's output goes to build/rust, so nothing lands in the source tree.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build"
cdir="$build/rust-c"
export CARGO_TARGET_DIR="$build/rust"

if [ "${IOQ_SKIP_DEPS:-0}" != 1 ]; then
    bash "$root/scripts/install-deps.sh" c rust
fi

echo "== ioq-sys: bindings drift check ($(bindgen --version))"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$here/ioq-sys/generate.sh" "$tmp/bindings.rs"
if ! diff -u "$here/ioq-sys/src/bindings.rs" "$tmp/bindings.rs"; then
    echo "ioq-sys/src/bindings.rs differs from abi/include/ioq.h:" \
         "run bindings/rust/ioq-sys/generate.sh and commit the result" >&2
    exit 1
fi

echo "== C library (CMake, $cdir)"
cmake -S "$root" -B "$cdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DIOQ_BUILD_TESTS=OFF -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF \
    -DIOQ_BUILD_BINDINGS=OFF >/dev/null
cmake --build "$cdir" --target ioq ioq_static --parallel "$(nproc 2>/dev/null || echo 2)"
export IOQ_LIB_DIR="$cdir"
export IOQ_LINK=static

cd "$here"
# One feature set for every cargo call below, so that nothing is compiled twice.
features=--all-features
echo "== cargo test (default backend: $(cargo run -q --offline --locked $features --example backend))"
cargo test --offline --locked --workspace $features

# Every backend the library has and the kernel allows (io_uring may be forbidden by
# seccomp in containers: the probe then reports an error and the run is skipped).
for backend in epoll io_uring; do
    got=$(IOQ_BACKEND=$backend cargo run -q --offline --locked $features --example backend || true)
    if [ "$got" = "$backend" ]; then
        echo "== cargo test with IOQ_BACKEND=$backend"
        IOQ_BACKEND=$backend cargo test --offline --locked --workspace $features
    else
        echo "== backend $backend not available here ($got): skipped"
    fi
done

echo "== example echo_server"
cargo build -q --offline --locked $features --example echo_server
fifo="$tmp/echo.out"
"$CARGO_TARGET_DIR/debug/examples/echo_server" 127.0.0.1:0 >"$fifo" &
echo_pid=$!
for _ in $(seq 100); do
    grep -q 'echo server on' "$fifo" && break
    sleep 0.1
done
port=$(sed -n 's/^echo server on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$fifo")
reply=""
if [ -n "$port" ]; then
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'ping from the test' >&3
    read -r -t 10 -N 18 reply <&3 || true
    exec 3>&-
fi
kill "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true
if [ "$reply" != "ping from the test" ]; then
    echo "echo_server did not echo (port '$port', reply '$reply')" >&2
    exit 1
fi
echo "echo_server echoed on port $port"

# The ownership tests once more under valgrind: a buffer freed while the kernel or the
# thread pool still writes into it shows up here even when the test itself passes.
if command -v valgrind >/dev/null 2>&1; then
    host=$(rustc -vV | sed -n 's/^host: //p' | tr 'a-z-' 'A-Z_')
    # epoll: valgrind cannot see the kernel's writes through io_uring, and it keeps its
    # big lock across a blocking io_uring_enter, which stalls the cross-thread tests.
    echo "== lifetime, executor, runtime and stream adapter tests under valgrind (epoll)"
    IOQ_BACKEND=epoll timeout 900 \
        env "CARGO_TARGET_${host}_RUNNER=valgrind -q --error-exitcode=99" \
        cargo test --offline --locked $features -p ioq --test lifetime --test executor \
            --test runtime --test io_traits
fi

echo "== ioq-sys through pkg-config (staged install)"
stage="$tmp/stage"
cmake --install "$cdir" --prefix "$stage" >/dev/null
pcdir=$(dirname "$(find "$stage" -name ioq.pc -print -quit)")
(
    unset IOQ_LIB_DIR IOQ_LINK
    export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export CARGO_TARGET_DIR="$build/rust-pkgconfig"
    export LD_LIBRARY_PATH="$(dirname "$pcdir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    cargo test --offline --locked -p ioq-sys
)
echo "== rust: all passed"
