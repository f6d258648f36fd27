#!/usr/bin/env bash
# The benchmark suite: ioq (each backend that works here) against libuv, libev, libevent,
# blocking sockets, asyncio and uvloop, over loopback only.
#
#   tests/bench/bench.sh [build-dir]          (default: build)
#
# Workloads: ping-pong; pump (bulk 64 KiB writes on one connection, Gbit/s); echo under
# concurrency (100 and 1000 connections, 64 B and 1 KiB: round trips/s and the 50th and
# 99th percentile round-trip time); pound (connect, write 64 B, read the echo, close,
# repeated by 100 concurrent clients: connections/s); UDP (ping-pong with one datagram in
# flight: round trips/s and percentiles; pummel, one sender flooding the server: datagrams
# the server received per second and the share of sent datagrams it lost); Python echo
# servers (asyncio, uvloop, ioq.aio; 10 connections, 1 KiB to 100 KiB); HTTP hello under
# wrk -c 100; 1,000,000 timers fired and cancelled (time and peak RSS; ioq-<backend> rows
# use ioq_timeout, ioq-<backend>-at rows ioq_timeout_at from one base time); cross-thread
# wake-ups (round trips and a flood). Every TCP and UDP server is loaded by the same
# client, tests/bench/loadgen (plain epoll). libuv has two echo servers: "libuv" copies
# libuv's own benchmark (a 64 KiB malloc per read, a malloc'ed request per write),
# "libuv-conn-buf" is what a performance-minded libuv user writes (a buffer per connection,
# uv_try_write first). Every program prints lines
# "<name> <metric> <value>". Within a workload the variants run interleaved (A B C A B C
# ...) and the first round is a warm-up that is thrown away, so that a slow phase of the
# machine hits every variant alike.
# Lua echo servers: luv against ioq's Lua binding. Rust echo servers (bindings/rust/bench,
# built here with cargo from Debian's crates): ioq's own runtime and ioq through its tokio
# driver, each with owned buffers and with the AsyncRead/AsyncWrite adapters (which copy),
# against tokio's current_thread runtime; besides round trips/s they report the server's
# CPU time per round trip (utime + stime from /proc). Finally the echo servers' system calls
# per round trip (ping-pong and 100 connections) under strace, for ioq and libuv.
# BENCH_ONLY="pump echo" runs only the named workloads (pingpong pump echo pound udp python
# lua rust http timers xthread syscalls; "python" includes aiohttp's hello world under wrk on
# ioq.aio.EventLoop, uvloop and asyncio).
# BENCH_QUICK=1: 3 repetitions of short runs and only two echo rows (whole suite under 2
# minutes; the Rust rows only with BENCH_ONLY=rust), else 5; BENCH_REPS=n overrides either.
# Prints a table of medians with the ratio ioq/peer per row, writes
# <build-dir>/bench/results.json and, when gnuplot is installed, results.svg.
set -euo pipefail

build=${1:-build}
bin="$build/tests/bench"
ex="$build/examples/c"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  quick=1; reps=3; secs=0.5; hsecs=1; timers=200000; xt_rt=20000; xt_flood=200000
  py_sizes="10240"; lang_secs=0.3; psecs=0.3; usecs=0.3
  echo_rows="100:64 1000:1024"; lua_rows="100:64"; sc_secs=0.5
  # cargo's release build of the Rust servers alone takes about a minute: asked for only
  rust_rows=""; [[ " ${BENCH_ONLY:-} " == *" rust "* ]] && rust_rows="10:1024"
else
  quick=0; reps=5; secs=2; hsecs=2; timers=1000000; xt_rt=100000; xt_flood=1000000
  py_sizes="1024 10240 102400"; lang_secs=1; psecs=2; usecs=1
  echo_rows="100:64 1000:64 100:1024 1000:1024"; lua_rows="10:1024 100:64"
  rust_rows="10:1024 100:64"; sc_secs=2
fi
# BENCH_REPS=n: n repetitions instead (medians of 5 in a quick run, say).
reps=${BENCH_REPS:-$reps}
[ -x "$bin/pingpong_ioq" ] || { echo "bench.sh: $bin/pingpong_ioq not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ioq-bench.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
: > "$work/results"   # lines: workload metric label value

# ioq backends that work on this machine (a backend that falls back is left out)
backends=()
for be in epoll io_uring; do
  if out=$(IOQ_BACKEND=$be "$bin/pingpong_ioq" 0.05 2>/dev/null) && [ "${out%% *}" = "ioq-$be" ]
  then backends+=("$be"); fi
done
[ ${#backends[@]} -gt 0 ] || { echo "bench.sh: no ioq backend works" >&2; exit 1; }

# shellcheck source=ports.sh
. "$(dirname "$0")/ports.sh"

start_server() { # COMMAND...: background server on a free port (sets port), waits for it
  local try
  for try in 1 2 3 4 5; do
    port=$(free_port)
    "$@" "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_server
  done
  echo "bench.sh: server $* did not start" >&2; cat "$work/server.log" >&2; return 1
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=
}

# Runners: each prints "<name> <metric> <value>" lines.
run_pingpong() { # LABEL COMMAND...
  local label=$1; shift
  local line; line=$("$@" "$secs")
  echo "$label pingpong_rt_per_s ${line##* }"
}
cpu_split() { # PID: "utime stime" of a process so far, in clock ticks (0 0 if gone)
  awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat" 2>/dev/null || echo 0 0
}
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
# split_rows LABEL METRIC-PREFIX RATE-METRIC UNIT T0 T1 SECONDS < loadgen output: the
# server's user and system time (from /proc, so no perf needed) per unit of work, printed
# after the rows themselves, so that a regression has its user/kernel split attached.
split_rows() {
  awk -v l="$1" -v m="$2" -v rate="$3" -v unit="$4" -v t0="$5" -v t1="$6" -v s="$7" \
      -v hz="$hz" '
    NF == 3 { sub(/^[a-z]+_/, "", $2); print l, m $2, $3
              if ($2 == rate && $3 > 0) {
                split(t0, a, " "); split(t1, b, " "); n = $3 * s
                printf "%s %suser_us_per_%s %.3f\n", l, m, unit, (b[1] - a[1]) * 1e6 / hz / n
                printf "%s %ssys_us_per_%s %.3f\n", l, m, unit, (b[2] - a[2]) * 1e6 / hz / n } }'
}
run_echo() { # LABEL CONNS SIZE SERVER-COMMAND...
  local label=$1 conns=$2 size=$3; shift 3
  local port out rc=0 t0 t1 secs_run=${run_secs:-$secs}
  start_server "$@" || return 1
  t0=$(cpu_split "$server_pid")
  out=$("$bin/loadgen" echo -c "$conns" -s "$size" -d "$secs_run" \
        "127.0.0.1:$port" 2>"$work/loadgen.err") || rc=$?
  t1=$(cpu_split "$server_pid")
  stop_server
  if [ "$rc" -ne 0 ]; then cat "$work/loadgen.err" >&2; return 1; fi
  # loadgen echo_rt_per_s X -> LABEL echo_c100_64B_rt_per_s X (and _p50_us, _p99_us, and
  # the server's _user_us_per_rt and _sys_us_per_rt)
  echo "$out" | split_rows "$label" "echo_c${conns}_${size}B_" rt_per_s rt "$t0" "$t1" \
    "$secs_run"
}
cpu_ticks() { # PID: user + system time of a process so far, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
run_echo_cpu() { # LABEL CONNS SIZE SERVER-COMMAND...: run_echo plus the server's CPU time
  local label=$1 conns=$2 size=$3; shift 3
  local port out rc=0 t0 t1 secs_run=${run_secs:-$secs}
  start_server "$@" || return 1
  t0=$(cpu_ticks "$server_pid")
  out=$("$bin/loadgen" echo -c "$conns" -s "$size" -d "$secs_run" \
        "127.0.0.1:$port" 2>"$work/loadgen.err") || rc=$?
  t1=$(cpu_ticks "$server_pid")
  stop_server
  if [ "$rc" -ne 0 ]; then cat "$work/loadgen.err" >&2; return 1; fi
  echo "$out" | awk -v l="$label" -v m="echo_c${conns}_${size}B_" \
    -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$secs_run" \
    'NF == 3 { sub(/^echo_/, "", $2); print l, m $2, $3
               if ($2 == "rt_per_s" && $3 > 0)
                 printf "%s %scpu_us_per_rt %.3f\n", l, m, ticks * 1e6 / hz / ($3 * s) }'
}
run_pound() { # LABEL SERVER-COMMAND...: 100 clients connect, write, read, close, again
  local label=$1; shift
  local port out rc=0 t0 t1
  start_server "$@" || return 1
  t0=$(cpu_split "$server_pid")
  out=$("$bin/loadgen" pound -c 100 -s 64 -d "$psecs" "127.0.0.1:$port" \
        2>"$work/loadgen.err") || rc=$?
  t1=$(cpu_split "$server_pid")
  stop_server
  if [ "$rc" -ne 0 ]; then cat "$work/loadgen.err" >&2; return 1; fi
  echo "$out" | split_rows "$label" pound_ conn_per_s conn "$t0" "$t1" "$psecs"
}
run_udp() { # LABEL SERVER-COMMAND...: ping-pong, then pummel, against one server process
  local label=$1; shift
  local addr out rc=0
  : > "$work/server.log" # emptied here, not by the background job: no stale port is read
  "$@" 127.0.0.1:0 >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do # the server prints its port once the socket is bound
    addr=$(sed -n 's/.* listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/server.log")
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.01
  done
  if [ -z "$addr" ]; then
    stop_server; echo "bench.sh: server $* did not start" >&2; cat "$work/server.log" >&2
    return 1
  fi
  out=$("$bin/loadgen" udp-pingpong -s 64 -d "$usecs" "$addr" 2>"$work/loadgen.err" &&
        "$bin/loadgen" udp-pummel -s 64 -d "$usecs" "$addr" 2>>"$work/loadgen.err") || rc=$?
  stop_server
  if [ "$rc" -ne 0 ]; then cat "$work/loadgen.err" >&2; return 1; fi
  echo "$out" | awk -v l="$label" 'NF == 3 { print l, $2, $3 }'
}
run_http() { # LABEL SERVER-COMMAND...: wrk, 100 connections, one thread (2-core machines)
  local label=$1; shift
  local port out rc=0
  start_server "$@" || return 1
  out=$(wrk -t1 -c100 -d"${hsecs}s" "http://127.0.0.1:$port/" 2>&1) || rc=$?
  stop_server
  if [ "$rc" -ne 0 ] || echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; return 1; fi
  echo "$label http_req_per_s $(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')"
}

run_http_cpu() { # LABEL SERVER-COMMAND...: run_http plus the server's CPU time per request
  local label=$1; shift
  local port out rc=0 t0 t1 rps
  start_server "$@" || return 1
  t0=$(cpu_ticks "$server_pid")
  out=$(wrk -t1 -c100 -d"${hsecs}s" "http://127.0.0.1:$port/" 2>&1) || rc=$?
  t1=$(cpu_ticks "$server_pid")
  stop_server
  if [ "$rc" -ne 0 ] || echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; return 1; fi
  rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
  echo "$label http_req_per_s $rps"
  awk -v l="$label" -v r="$rps" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$hsecs" \
    'BEGIN { if (r > 0) printf "%s http_cpu_us_per_req %.3f\n", l, t * 1e6 / hz / (r * s) }'
}

# workload WORKLOAD VARIANT...: each variant is "label|command words"; runs warm-up + reps
# rounds interleaved and records every line the commands print under the variant's label.
workload() {
  local wl=$1; shift
  local r v label cmd out
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" ${wl%%-*} "* ]]; then return; fi
  echo "== $wl: warm-up, then $reps interleaved repetitions" >&2
  for ((r = 0; r <= reps; r++)); do
    for v in "$@"; do
      label=${v%%|*}; cmd=${v#*|}
      if ! out=$(eval "$cmd" 2>"$work/err") || [ -z "$out" ]; then
        echo "   $label failed: $(head -c 300 "$work/err")" >&2; continue
      fi
      [ "$r" -eq 0 ] && continue
      echo "$out" | awk -v w="$wl" -v l="$label" 'NF == 3 { print w, $2, l, $3 }' \
        >> "$work/results"
      echo "   run $r $label: $(echo "$out" | awk '{ printf "%s=%s ", $2, $3 }')" >&2
    done
  done
}

have() { [ -x "$bin/$1" ]; }

# 1. ping-pong
vs=()
for be in "${backends[@]}"; do
  vs+=("ioq-$be|run_pingpong ioq-$be env IOQ_BACKEND=$be $bin/pingpong_ioq")
done
have pingpong_uv && vs+=("libuv|run_pingpong libuv $bin/pingpong_uv")
vs+=("blocking|run_pingpong blocking $bin/pingpong_blocking")
workload pingpong "${vs[@]}"

# 3. pump: bulk 64 KiB writes on one connection
if have pump_ioq; then
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|env IOQ_BACKEND=$be $bin/pump_ioq $secs")
  done
  have pump_uv && vs+=("libuv|$bin/pump_uv $secs")
  have pump_raw && vs+=("raw-write|$bin/pump_raw $secs")
  workload pump "${vs[@]}"
fi

# 2. echo under concurrency
if have loadgen && [ -x "$ex/echo_server" ]; then
  for cs in $echo_rows; do
    set -- ${cs%%:*} ${cs#*:}
    vs=()
    for be in "${backends[@]}"; do
      vs+=("ioq-$be|run_echo ioq-$be $1 $2 env IOQ_BACKEND=$be $ex/echo_server")
    done
    have echo_uv && vs+=("libuv|run_echo libuv $1 $2 $bin/echo_uv")
    have echo_uv_buf && vs+=("libuv-conn-buf|run_echo libuv-conn-buf $1 $2 $bin/echo_uv_buf")
    have echo_ev && vs+=("libev|run_echo libev $1 $2 $bin/echo_ev")
    have echo_event && vs+=("libevent|run_echo libevent $1 $2 $bin/echo_event")
    workload "echo-c$1-${2}B" "${vs[@]}"
  done

  # 4. pound: a connection per message, against the same echo servers
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|run_pound ioq-$be env IOQ_BACKEND=$be $ex/echo_server")
  done
  have echo_uv && vs+=("libuv|run_pound libuv $bin/echo_uv")
  have echo_uv_buf && vs+=("libuv-conn-buf|run_pound libuv-conn-buf $bin/echo_uv_buf")
  have echo_ev && vs+=("libev|run_pound libev $bin/echo_ev")
  have echo_event && vs+=("libevent|run_pound libevent $bin/echo_event")
  workload pound "${vs[@]}"
else
  echo "bench.sh: tests/bench/loadgen or examples/c/echo_server not built: echo left out" >&2
fi

# 7. UDP ping-pong and pummel
if have loadgen && have udp_ioq; then
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|run_udp ioq-$be env IOQ_BACKEND=$be $bin/udp_ioq")
  done
  for p in uv:libuv ev:libev event:libevent; do
    have "udp_${p%%:*}" && vs+=("${p#*:}|run_udp ${p#*:} $bin/udp_${p%%:*}")
  done
  workload udp "${vs[@]}"
fi

# 9. Python echo servers, 10 connections (ioq.aio needs the ioq package: make test-python
# installs it into <build-dir>/python-venv-test; BENCH_PYTHON picks another interpreter).
# Besides round trips/s, the server's CPU time per round trip (less sensitive to a busy
# machine than throughput).
py=${BENCH_PYTHON:-python3}
[ -z "${BENCH_PYTHON:-}" ] && [ -x "$build/python-venv-test/bin/python" ] &&
  py="$build/python-venv-test/bin/python"
here=$(cd "$(dirname "$0")" && pwd)
if have loadgen && command -v "$py" >/dev/null; then
  for size in $py_sizes; do
    vs=()
    if "$py" -c "import ioq.aio" 2>/dev/null; then
      for be in "${backends[@]}"; do
        vs+=("ioq-$be|run_secs=$lang_secs run_echo_cpu ioq-$be 10 $size env IOQ_BACKEND=$be $py \
$here/echo_py.py ioq-aio")
        # asyncio's own Protocol and streams code on ioq's event loop (ioq.aio.EventLoop)
        for st in protocol streams; do
          vs+=("ioq-loop-$be-$st|run_secs=$lang_secs run_echo_cpu ioq-loop-$be-$st 10 $size \
env IOQ_BACKEND=$be $py $here/echo_py.py ioq-loop-$st")
        done
      done
    else
      echo "bench.sh: the ioq Python package is not importable by $py: ioq.aio left out" >&2
    fi
    styles="asyncio-streams asyncio-protocol"
    "$py" -c "import uvloop" 2>/dev/null && styles+=" uvloop-streams uvloop-protocol"
    for st in $styles; do
      vs+=("$st|run_secs=$lang_secs run_echo_cpu $st 10 $size $py $here/echo_py.py $st")
    done
    workload "python-echo-c10-${size}B" "${vs[@]}"
  done
fi

# 9a. aiohttp's hello world under wrk on each event loop (ioq.aio.EventLoop, uvloop, asyncio)
if command -v wrk >/dev/null && command -v "$py" >/dev/null && "$py" -c "import aiohttp" \
   2>/dev/null; then
  vs=()
  if "$py" -c "import ioq.aio; ioq.aio.EventLoop" 2>/dev/null; then
    for be in "${backends[@]}"; do
      vs+=("ioq-loop-$be|run_http_cpu ioq-loop-$be env IOQ_BACKEND=$be $py $here/http_aiohttp.py ioq")
    done
  fi
  "$py" -c "import uvloop" 2>/dev/null && vs+=("uvloop|run_http_cpu uvloop $py $here/http_aiohttp.py uvloop")
  vs+=("asyncio|run_http_cpu asyncio $py $here/http_aiohttp.py asyncio")
  workload python-aiohttp "${vs[@]}"
else
  echo "bench.sh: wrk or aiohttp (python3-aiohttp) missing: aiohttp left out" >&2
fi

# 9b. Lua echo servers: luv against the ioq Lua binding (its plain loop and its coroutines)
if have loadgen && command -v lua5.4 >/dev/null &&
   lua_env=$("$here/lua_env.sh" "$build" 2>"$work/lua_env.err"); then
  eval "$lua_env"
  for cs in $lua_rows; do
    set -- ${cs%%:*} ${cs#*:}
    vs=()
    for be in "${backends[@]}"; do
      vs+=("ioq-$be|run_secs=$lang_secs run_echo ioq-$be $1 $2 env IOQ_BACKEND=$be lua5.4 \
$here/echo_lua.lua ioq")
    done
    vs+=("ioq-co|run_secs=$lang_secs run_echo ioq-co $1 $2 lua5.4 $here/echo_lua.lua ioq-co")
    lua5.4 -e 'require "luv"' 2>/dev/null &&
      vs+=("luv|run_secs=$lang_secs run_echo luv $1 $2 lua5.4 $here/echo_lua.lua luv")
    workload "lua-echo-c$1-${2}B" "${vs[@]}"
  done
else
  echo "bench.sh: lua5.4 or the ioq Lua module is not available: Lua echo left out" >&2
  [ -s "$work/lua_env.err" ] && tail -n 3 "$work/lua_env.err" >&2
fi

# 9c. Rust echo servers: ioq's runtime and ioq inside tokio (its driver, as the runtime's
# main future through ioq::tokio::run and as a LocalSet task of its own: ioq-tokio-task),
# with owned buffers and with the reader/writer adapters, against tokio's own sockets
# (current_thread).
rust_dir="$(dirname "$0")/../../bindings/rust"
if { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" rust "* ]]; } && have loadgen &&
   [ -n "$rust_rows" ]; then
  rust_bin=
  if ! command -v cargo >/dev/null; then
    echo "bench.sh: cargo not found: Rust echo left out" >&2
  elif [ ! -f "$build/libioq.a" ]; then
    echo "bench.sh: $build/libioq.a not built: Rust echo left out" >&2
  else
    echo "== rust: building bindings/rust/bench (cargo --release --offline)" >&2
    babs=$(cd "$build" && pwd)
    if (cd "$rust_dir" && IOQ_LIB_DIR="$babs" IOQ_LINK=static \
        CARGO_TARGET_DIR="$babs/rust-bench" \
        cargo build -q --release --offline --locked -p ioq-bench) >&2; then
      rust_bin="$babs/rust-bench/release/bench_echo"
    else
      echo "bench.sh: building the Rust echo servers failed: Rust echo left out" >&2
    fi
  fi
  if [ -n "$rust_bin" ] && [ -n "$rust_rows" ]; then
    first=1
    for cs in $rust_rows; do
      set -- ${cs%%:*} ${cs#*:}
      vs=()
      for be in "${backends[@]}"; do
        vs+=("ioq-$be|run_secs=$lang_secs run_echo_cpu ioq-$be $1 $2 env IOQ_BACKEND=$be \
$rust_bin ioq")
        vs+=("ioq-tokio-$be|run_secs=$lang_secs run_echo_cpu ioq-tokio-$be $1 $2 \
env IOQ_BACKEND=$be $rust_bin ioq-tokio")
        vs+=("ioq-tokio-task-$be|run_secs=$lang_secs run_echo_cpu ioq-tokio-task-$be $1 $2 \
env IOQ_BACKEND=$be $rust_bin ioq-tokio-task")
      done
      # The adapters' copy: one backend is enough (the copy is the same on both), and one
      # row (10 x 1 KiB).
      if [ "$first" = 1 ]; then
        vs+=("ioq-traits-${backends[0]}|run_secs=$lang_secs run_echo_cpu \
ioq-traits-${backends[0]} $1 $2 env IOQ_BACKEND=${backends[0]} $rust_bin ioq-traits")
        vs+=("ioq-tokio-traits-${backends[0]}|run_secs=$lang_secs run_echo_cpu \
ioq-tokio-traits-${backends[0]} $1 $2 env IOQ_BACKEND=${backends[0]} $rust_bin \
ioq-tokio-traits")
      fi
      vs+=("tokio|run_secs=$lang_secs run_echo_cpu tokio $1 $2 $rust_bin tokio")
      workload "rust-echo-c$1-${2}B" "${vs[@]}"
      first=0
    done
  fi
fi

# 8. HTTP hello under wrk
if command -v wrk >/dev/null && [ -x "$ex/http_hello" ]; then
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|run_http ioq-$be env IOQ_BACKEND=$be $ex/http_hello")
  done
  have http_uv && vs+=("libuv|run_http libuv $bin/http_uv")
  have http_event && vs+=("libevent|run_http libevent $bin/http_event")
  workload http "${vs[@]}"
else
  echo "bench.sh: wrk or examples/c/http_hello missing: HTTP left out" >&2
fi

# 5. timers
for mode in fire cancel; do
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|env IOQ_BACKEND=$be $bin/timers_ioq $mode $timers")
  done
  # ioq_timeout_at from one base read once, as libev and libuv count from their cached loop
  # time; the rows above count each deadline from its own call (ioq_timeout).
  for be in "${backends[@]}"; do
    vs+=("ioq-$be-at|env IOQ_BACKEND=$be $bin/timers_ioq $mode $timers at")
  done
  for p in uv:libuv ev:libev event:libevent; do
    have "timers_${p%%:*}" && vs+=("${p#*:}|$bin/timers_${p%%:*} $mode $timers")
  done
  workload "timers-$mode-$timers" "${vs[@]}"
done
# Many timers with one token (one ioq_cancel ends them all) against distinct tokens: the
# ratio stays near 1 at any count when completing and cancelling are O(1) per timer.
for mode in fire cancel; do
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|env IOQ_BACKEND=$be $bin/timers_ioq $mode $timers")
    vs+=("ioq-$be-shared|env IOQ_BACKEND=$be $bin/timers_ioq $mode $timers shared")
  done
  workload "timers-shared-$mode-$timers" "${vs[@]}"
done

# 6. cross-thread wake-ups: ioq-<backend> is a notifier (ioq_notify, coalescing like
# uv_async), ioq-post-<backend> one ioq_post per message.
if have xthread_ioq; then
  vs=()
  for be in "${backends[@]}"; do
    vs+=("ioq-$be|env IOQ_BACKEND=$be $bin/xthread_ioq $xt_rt $xt_flood")
    vs+=("ioq-post-$be|env IOQ_BACKEND=$be IOQ_XT_MODE=post $bin/xthread_ioq $xt_rt $xt_flood")
  done
  for p in uv:libuv ev:libev event:libevent; do
    have "xthread_${p%%:*}" && vs+=("${p#*:}|$bin/xthread_${p%%:*} $xt_rt $xt_flood")
  done
  workload xthread "${vs[@]}"
fi

# System calls per round trip of the echo servers (ping-pong: 1 connection; echo: 100),
# counted under strace. The counts barely move between runs: one round, no warm-up.
if { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" syscalls "* ]]; } &&
   command -v strace >/dev/null; then
  echo "== syscalls: server system calls per round trip under strace" >&2
  sc_variants=()
  for be in "${backends[@]}"; do sc_variants+=("ioq-$be"); done
  have echo_uv && sc_variants+=(libuv)
  have echo_uv_buf && sc_variants+=(libuv-conn-buf)
  have echo_ev && sc_variants+=(libev)
  if out=$(SYSCALLS_SECS=$sc_secs "$here/syscalls.sh" "$build" "${sc_variants[@]}" \
           2>"$work/err"); then
    echo "$out" | awk 'NF == 3 { print "syscalls", $2, $1, $3 }' >> "$work/results"
    echo "$out" | sed 's/^/   /' >&2
  else
    echo "   syscalls.sh failed: $(tail -n 3 "$work/err")" >&2
  fi
fi

mkdir -p "$build/bench"
python3 - "$work/results" "$build/bench" "$quick" "$reps" "$secs" <<'PY'
import json, statistics, sys, os
path, out, quick, reps, secs = sys.argv[1:]
rows = {}
order = []
for line in open(path):
    wl, metric, label, value = line.split()
    key = (wl, metric)
    if key not in rows:
        rows[key] = {}
        order.append(key)
    rows[key].setdefault(label, []).append(float(value))

def lower_better(metric):
    return ((metric.endswith("_s") and not metric.endswith("_per_s")) or "maxrss" in metric
            or metric.endswith("wakeups") or metric.endswith("_us") or "loss" in metric
            or metric.startswith("syscalls") or metric.endswith(("_per_rt", "_per_req"))
            or metric.endswith(("_per_conn", "_per_timer")))

refs = ["ioq-epoll", "ioq-io_uring"]
PEERS = ("libuv", "libuv-conn-buf", "libev", "libevent", "luv", "blocking", "raw-write",
         "asyncio-streams", "asyncio-protocol",
         "uvloop-streams", "uvloop-protocol", "tokio")
table = []
doc = {"quick": quick == "1", "repetitions": int(reps), "seconds_per_run": float(secs),
       "note": "medians of interleaved runs after one warm-up round; loopback only",
       "rows": []}
print()
hdr = "%-22s %-28s %-22s %12s %12s %12s %9s %9s" % (
    "workload", "metric", "variant", "median", "min", "max", "epoll/x", "uring/x")
print(hdr)
print("-" * len(hdr))
plot = []
for key in order:
    wl, metric = key
    res = rows[key]
    med = {l: statistics.median(v) for l, v in res.items()}
    row = {"workload": wl, "metric": metric, "lower_is_better": lower_better(metric),
           "results": {l: {"median": med[l], "runs": res[l]} for l in res}, "ratios": {}}
    for l in res:
        rs = []
        for ref in refs:
            if ref in med and med[l] > 0 and l != ref:
                r = med[ref] / med[l]
                rs.append("%.3f" % r)
                if not l.startswith("ioq-"):
                    row["ratios"]["%s/%s" % (ref, l)] = round(r, 4)
            else:
                rs.append("-")
        fmt = lambda x: ("%.4g" % x) if x < 100 else "%.0f" % x
        print("%-22s %-28s %-22s %12s %12s %12s %9s %9s" % (
            wl, metric, l, fmt(med[l]), fmt(min(res[l])), fmt(max(res[l])), rs[0], rs[1]))
    doc["rows"].append(row)
    # chart: ioq-epoll's advantage over each peer, >1 = ioq better
    if "ioq-epoll" in med:
        adv = {}
        for peer in PEERS:
            if peer in med and med[peer] > 0 and med["ioq-epoll"] > 0:
                r = med["ioq-epoll"] / med[peer]
                adv[peer] = 1 / r if lower_better(metric) else r
        plot.append(("%s %s" % (wl, metric.replace("_", "-")), adv))
print("(epoll/x, uring/x: ioq median / this median; above 1 is better for ioq in *_per_s"
      " rows, worse for time (_s), maxrss, wakeups, latency (_us) and loss rows)")
# The Lua rows also compare the two ways Lua users write a server: ioq.co coroutines
# against luv callbacks (same run, same client, interleaved).
co_rows = [(r["workload"], r["metric"], r["results"]) for r in doc["rows"]
           if "ioq-co" in r["results"] and "luv" in r["results"]]
if co_rows:
    print()
    for (wl, metric, res), r in zip(co_rows, [r for r in doc["rows"]
                                              if "ioq-co" in r["results"]
                                              and "luv" in r["results"]]):
        co, luv = res["ioq-co"]["median"], res["luv"]["median"]
        if co > 0 and luv > 0:
            ratio = luv / co if lower_better(metric) else co / luv
            r["ratios"]["ioq-co/luv"] = round(ratio, 4)
            print("%-22s %-26s ioq-co/luv %6.3f" % (wl, metric, ratio))
    print("(ioq-co/luv: the ioq.co coroutine server against luv; above 1 is better for ioq.co)")
# Python rows: ioq's asyncio event loop against uvloop and asyncio's default loop running
# the same code (same client, interleaved); above 1 is better for ioq.
for (wl, metric), res in ((k, rows[k]) for k in order):
    if not wl.startswith("python-") or metric.endswith(("_p50_us", "_p99_us")):
        continue
    med = {l: statistics.median(v) for l, v in res.items()}
    row = next(r for r in doc["rows"] if r["workload"] == wl and r["metric"] == metric)
    parts = []
    lb = lower_better(metric)
    for l in sorted(med):
        if not l.startswith("ioq-loop-") or med[l] <= 0:
            continue
        style = l.rsplit("-", 1)[1] if l.endswith(("-protocol", "-streams")) else ""
        for peer in (("uvloop-" + style, "asyncio-" + style) if style else
                     ("uvloop", "asyncio")):
            if peer in med and med[peer] > 0:
                r = med[peer] / med[l] if lb else med[l] / med[peer]
                row["ratios"]["%s/%s" % (l, peer)] = round(r, 4)
                parts.append("%s/%s %.2f" % (l, peer, r))
    if parts:
        print("%s %s: %s" % (wl, metric, ", ".join(parts)))
# Rust rows: every ioq variant against tokio (above 1 = ioq better), and the adapters' copy
# (the traits variant against owned buffers on the same runtime).
for (wl, metric), res in ((k, rows[k]) for k in order):
    if not wl.startswith("rust-") or metric.endswith(("_p50_us", "_p99_us")):
        continue
    med = {l: statistics.median(v) for l, v in res.items()}
    row = next(r for r in doc["rows"] if r["workload"] == wl and r["metric"] == metric)
    lb = lower_better(metric)
    parts = []
    for l in sorted(med):
        if l == "tokio" or "tokio" not in med or med[l] <= 0 or med["tokio"] <= 0:
            continue
        r = med["tokio"] / med[l] if lb else med[l] / med["tokio"]
        row["ratios"]["%s/tokio" % l] = round(r, 4)
        parts.append("%s %.2f" % (l, r))
    copies = []
    for l in sorted(med):
        if "-traits-" not in l:
            continue
        owned = l.replace("-traits", "")
        if owned in med and med[owned] > 0 and med[l] > 0:
            r = med[l] / med[owned]
            row["ratios"]["%s/%s" % (l, owned)] = round(r, 4)
            copies.append("%s/%s %.3f" % (l, owned, r))
    if parts:
        print("%s %s, ioq/tokio (above 1 = ioq better): %s" % (wl, metric, ", ".join(parts)))
    if copies:
        print("%s %s, adapters/owned buffers: %s" % (wl, metric, ", ".join(copies)))
# Timer rows of ioq_timeout_at (deadlines from one base read once, as libev's and libuv's
# timers count from the cached loop time) against each peer; above 1 = ioq better.
for (wl, metric), res in ((k, rows[k]) for k in order):
    if not wl.startswith("timers-") or wl.startswith("timers-shared-"):
        continue
    med = {l: statistics.median(v) for l, v in res.items()}
    row = next(r for r in doc["rows"] if r["workload"] == wl and r["metric"] == metric)
    lb = lower_better(metric)
    parts = []
    for l in sorted(med):
        if not (l.startswith("ioq-") and l.endswith("-at")) or med[l] <= 0:
            continue
        for peer in ("libev", "libuv", "libevent"):
            if peer in med and med[peer] > 0:
                r = med[peer] / med[l] if lb else med[l] / med[peer]
                row["ratios"]["%s/%s" % (l, peer)] = round(r, 4)
                parts.append("%s/%s %.3f" % (l, peer, r))
    if parts:
        print("%s %s, ioq_timeout_at (above 1 = ioq better): %s" % (wl, metric, ", ".join(parts)))
json.dump(doc, open(os.path.join(out, "results.json"), "w"), indent=1)
peers = [p for p in PEERS
         if any(p in adv for _, adv in plot)]
with open(os.path.join(out, "results.dat"), "w") as f:
    f.write("row %s\n" % " ".join(peers))
    for name, adv in plot:
        f.write('"%s" %s\n' % (name, " ".join(
            "%.4f" % adv[p] if p in adv else "?" for p in peers)))
with open(os.path.join(out, "plot.cols"), "w") as f:
    f.write(" ".join(str(i + 2) for i in range(len(peers))))
PY
echo "wrote $build/bench/results.json"

if command -v gnuplot >/dev/null && [ -s "$build/bench/plot.cols" ]; then
  gnuplot <<GP
set terminal svg size 1200,700 dynamic
set output "$build/bench/results.svg"
set title "ioq (epoll) against each peer: >1 means ioq is better (throughput up; time,\
 memory, latency, loss down)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set datafile missing "?"
set xtics rotate by -40 font ",9"
set key top right
set grid ytics
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot for [c in "$(cat "$build/bench/plot.cols")"] "$build/bench/results.dat" \
     using int(c):xtic(1) title columnheader(int(c))
GP
  echo "wrote $build/bench/results.svg"
  rm -f "$build/bench/plot.cols"
else
  echo "gnuplot not installed (scripts/install-deps.sh bench): no chart"
fi
