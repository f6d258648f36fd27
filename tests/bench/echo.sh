#!/usr/bin/env bash
# Echo under concurrency: ioq's echo_server on each backend against a libuv echo server,
# loaded by the same client (examples/c/echo_client) in the same run, interleaved.
# Also counts the server's system calls per round trip with strace -c.
#
#   tests/bench/echo.sh [build-dir] [connections] [message-bytes]   (defaults: build 100 64)
# BENCH_QUICK=1: 3 repetitions of 1 s, else 5 of 3 s.
set -euo pipefail

build=${1:-build}
conns=${2:-100}
size=${3:-64}
if [ "${BENCH_QUICK:-0}" = 1 ]; then reps=3; secs=1; else reps=5; secs=3; fi
client="$build/examples/c/echo_client"
ioq_server="$build/examples/c/echo_server"
uv_server="$build/tests/bench/echo_uv"
for f in "$client" "$ioq_server"; do
  [ -x "$f" ] || { echo "echo.sh: $f not built" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % 20000)) # below the ephemeral range (32768+)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "echo.sh: no free port" >&2; exit 1
}

# start_server LABEL PORT: runs the server in the background, waits until it accepts
start_server() {
  local label=$1 port=$2
  case $label in
    ioq-*) IOQ_BACKEND=${label#ioq-} "$ioq_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
    libuv) "$uv_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
    sleep 0.05
  done
  echo "echo.sh: $label did not start" >&2; cat "$work/server.log" >&2; exit 1
}

stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; }

rate() { sed -n 's/.*round trips\/s: *\([0-9.]*\).*/\1/p' | head -n 1; }

labels=()
for be in epoll io_uring; do
  if IOQ_BACKEND=$be "$client" -c 1 -d 0.1 127.0.0.1:1 2>&1 | grep -q "$be" || true; then
    labels+=("ioq-$be")
  fi
done
[ -x "$uv_server" ] && labels+=("libuv")

echo "echo: $conns connections, $size-byte messages, one in flight each; ${reps} x ${secs} s"
for ((r = 1; r <= reps; r++)); do
  for l in "${labels[@]}"; do
    port=$(free_port)
    start_server "$l" "$port"
    v=$("$client" -c "$conns" -s "$size" -d "$secs" "127.0.0.1:$port" | rate)
    stop_server
    echo "  run $r $l: $v"
    echo "$v" >> "$work/$l"
  done
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                               else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
uvm=""
[ -f "$work/libuv" ] && uvm=$(median "$work/libuv")
printf '\n%-14s %14s %10s\n' "server" "median rt/s" "vs libuv"
for l in "${labels[@]}"; do
  m=$(median "$work/$l")
  if [ -n "$uvm" ]; then ratio=$(awk -v a="$m" -v b="$uvm" 'BEGIN { printf "%.3f", a / b }'); else ratio=-; fi
  printf '%-14s %14s %10s\n' "$l" "$m" "$ratio"
done

if command -v strace >/dev/null; then
  echo
  echo "server system calls per round trip (strace -c -f on the server, 2 s run):"
  for l in "${labels[@]}"; do
    port=$(free_port)
    start_server "$l" "$port"
    strace -c -f -q -o "$work/strace.$l" -p "$server_pid" &
    spid=$!
    sleep 0.3
    out=$("$client" -c "$conns" -s "$size" -d 2 "127.0.0.1:$port")
    kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
    stop_server
    rts=$(echo "$out" | rate)
    calls=$(awk '$NF == "total" { print $(NF-2) }' "$work/strace.$l")
    awk -v c="$calls" -v r="$rts" -v l="$l" \
      'BEGIN { if (r > 0) printf "  %-12s %8.2f syscalls/round trip\n", l, c / (r * 2) }'
  done
fi
