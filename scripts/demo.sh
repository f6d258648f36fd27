#!/usr/bin/env bash
# The C examples at work: an echo server under load from 1 and 50 connections, then a
# 64 MiB file copy checked with cmp.
#
#   scripts/demo.sh [build-dir]          (default: build)
set -euo pipefail

build=${1:-build}
ex="$build/examples/c"
for p in echo_server echo_client file_copy; do
  [ -x "$ex/$p" ] || { echo "demo: $ex/$p is not built" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ioq-demo.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== echo server and client"
# Port 0: the server binds a free loopback port and prints it.
"$ex/echo_server" 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's/^echo_server: listening on \([^ ]*\) .*/\1/p' "$tmp/server.out")
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$addr" ]; then
  echo "demo: the echo server did not start" >&2
  cat "$tmp/server.err" >&2
  exit 1
fi
head -1 "$tmp/server.out"

for c in 1 50; do
  "$ex/echo_client" -c "$c" -s 64 -d 3 "$addr"
done

# SIGTERM must make the server close everything and exit 0 on its own.
kill -TERM "$server_pid"
for _ in $(seq 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "demo: the echo server did not stop on SIGTERM" >&2
  exit 1
fi
status=0
wait "$server_pid" || status=$?
server_pid=""
tail -1 "$tmp/server.out"
if [ "$status" -ne 0 ]; then
  echo "demo: the echo server exited with status $status" >&2
  cat "$tmp/server.err" >&2
  exit 1
fi

echo "== file copy"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$tmp/source"
"$ex/file_copy" "$tmp/source" "$tmp/copy"
cmp "$tmp/source" "$tmp/copy"
echo "demo: the copy is identical"
