#!/usr/bin/env bash
# System calls an echo server makes per round trip: ioq's echo_server on epoll and on
# io_uring against libuv's echo_uv and echo_uv_buf and libev's echo_ev, each run under
# `strace -c -f` while examples/c/echo_client loads it over loopback.
#
#   tests/bench/syscalls.sh BUILD-DIR [VARIANT...]
#
# VARIANT: ioq-epoll, ioq-io_uring, libuv, libuv-conn-buf, libev (default: all, in that
# order).
# Workloads: c1 = ping-pong (1 connection, one 64-byte message in flight) and
# c100 = echo (100 connections, 64 bytes each, one message in flight per connection).
# stdout, one line per variant and workload, in bench.sh's "<name> <metric> <value>" form:
#   ioq-epoll syscalls_per_rt_c1 4.01
#   ioq-epoll syscalls_per_rt_c100 1.52
# value = the server's system calls while the client ran / the round trips the client
# reported. strace slows the server down a lot; the rate is meaningless here, the count
# per round trip is what the number is about. stderr: progress and, per variant and
# workload, the five most frequent system calls with their count per round trip.
#
# Environment: SYSCALLS_SECS = seconds of load per measurement (default 2; 1 when
# BENCH_QUICK=1); SYSCALLS_WORKLOADS = "c1 c100" (default) or one of them.
# A variant is skipped, with a note on stderr and no stdout line, when its server is not
# built or its ioq backend does not work here (ioq would fall back to another one); when
# strace is missing every variant is skipped. Then the exit status is still 0. It is 1
# for a usage error, a missing echo_client, or a server that fails during a run.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: syscalls.sh BUILD-DIR [ioq-epoll|ioq-io_uring|libuv|libuv-conn-buf|libev...]" >&2
  exit 1
fi
build=$1; shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(ioq-epoll ioq-io_uring libuv libuv-conn-buf libev)
if [ "${BENCH_QUICK:-0}" = 1 ]; then secs=${SYSCALLS_SECS:-1}; else secs=${SYSCALLS_SECS:-2}; fi
workloads=${SYSCALLS_WORKLOADS:-c1 c100}
size=64
client="$build/examples/c/echo_client"
ioq_server="$build/examples/c/echo_server"
uv_server="$build/tests/bench/echo_uv"
uvbuf_server="$build/tests/bench/echo_uv_buf"
ev_server="$build/tests/bench/echo_ev"

[ -x "$client" ] || { echo "syscalls.sh: $client not built" >&2; exit 1; }
if ! command -v strace >/dev/null; then
  echo "syscalls.sh: strace not installed (apt-get install strace): nothing measured" >&2
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ioq-syscalls.XXXXXX")
server_pid=
strace_pid=
cleanup() {
  if [ -n "$strace_pid" ]; then kill -INT "$strace_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=ports.sh
. "$(dirname "$0")/ports.sh"

# start_server VARIANT: the server on a free port in the background (sets port and
# server_pid) once it accepts connections. Status 2: the variant cannot run here.
start_server() {
  local v=$1
  for _ in 1 2 3; do
    port=$(free_port)
    case $v in
      ioq-*) IOQ_BACKEND=${v#ioq-} "$ioq_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
      libuv) "$uv_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
      libuv-conn-buf) "$uvbuf_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
      libev) "$ev_server" "127.0.0.1:$port" >"$work/server.log" 2>&1 & ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        # echo_server names the backend it runs on: one that fell back is not this variant.
        if [ "${v%%-*}" = ioq ] && ! grep -q "(backend ${v#ioq-})" "$work/server.log"; then
          stop_server
          echo "syscalls.sh: skipping $v: the backend does not work here: $(head -n 1 \
"$work/server.log")" >&2
          return 2
        fi
        return 0
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_server
  done
  echo "syscalls.sh: skipping $v: the server did not start: $(head -c 300 "$work/server.log" |
    tr '\n' ' ')" >&2
  return 2
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=
}

# traced: every thread of the server has a tracer attached.
traced() {
  local st
  for st in /proc/"$server_pid"/task/*/status; do
    awk '$1 == "TracerPid:" { exit ($2 == 0) }' "$st" 2>/dev/null || return 1
  done
}

# measure VARIANT WORKLOAD: prints the stdout line and the breakdown on stderr.
measure() {
  local v=$1 wl=$2 conns out rc=0 rts
  conns=${wl#c}
  start_server "$v" || return $?
  strace -c -f -q -U calls,name -S calls -o "$work/strace" -p "$server_pid" &
  strace_pid=$!
  for _ in $(seq 200); do traced && break; sleep 0.01; done
  if ! traced; then
    kill -INT "$strace_pid" 2>/dev/null || true; wait "$strace_pid" 2>/dev/null || true
    strace_pid=; stop_server
    echo "syscalls.sh: skipping $v: strace cannot attach (ptrace forbidden?)" >&2
    return 2
  fi
  out=$("$client" -c "$conns" -s "$size" -d "$secs" "127.0.0.1:$port" 2>&1) || rc=$?
  kill -INT "$strace_pid" 2>/dev/null || true
  wait "$strace_pid" 2>/dev/null || true
  strace_pid=
  stop_server
  if [ "$rc" -ne 0 ]; then
    echo "syscalls.sh: $v $wl: echo_client failed: $out" >&2
    return 1
  fi
  # round trips = rate x the seconds the client measured (both in its output)
  rts=$(echo "$out" | awk '
    /connection/ { for (i = 2; i <= NF; i++) if ($i == "s," || $i == "s") secs = $(i - 1) }
    /round trips\/s:/ { rate = $NF }
    END { printf "%.0f", rate * secs }')
  if [ "${rts:-0}" -le 0 ]; then
    echo "syscalls.sh: $v $wl: the client reported no round trips: $out" >&2
    return 1
  fi
  # strace -U calls,name: a header, a dashed line, "COUNT NAME" rows, a dashed line and
  # "COUNT total".
  awk -v l="$v" -v m="syscalls_per_rt_$wl" -v r="$rts" \
    '$2 == "total" { printf "%s %s %.3f\n", l, m, $1 / r }' "$work/strace"
  {
    printf '  %-13s %-5s %9d round trips, per round trip:' "$v" "$wl" "$rts"
    awk -v r="$rts" '$1 ~ /^[0-9]+$/ && $2 != "total" && n < 5 {
      printf "  %s %.3f", $2, $1 / r; n++ } END { print "" }' "$work/strace"
  } >&2
}

status=0
for v in "${variants[@]}"; do
  case $v in
    ioq-epoll|ioq-io_uring) bin=$ioq_server ;;
    libuv) bin=$uv_server ;;
    libuv-conn-buf) bin=$uvbuf_server ;;
    libev) bin=$ev_server ;;
    *) echo "syscalls.sh: unknown variant $v (ioq-epoll, ioq-io_uring, libuv," \
            "libuv-conn-buf, libev)" >&2; exit 1 ;;
  esac
  if [ ! -x "$bin" ]; then
    echo "syscalls.sh: skipping $v: $bin not built" >&2
    continue
  fi
  for wl in $workloads; do
    case $wl in c1|c100) ;; *) echo "syscalls.sh: unknown workload $wl" >&2; exit 1 ;; esac
    rc=0
    measure "$v" "$wl" || rc=$?
    if [ "$rc" -eq 2 ]; then break; fi   # this variant cannot run here: skip it
    if [ "$rc" -ne 0 ]; then status=1; fi
  done
done
exit $status
