#!/usr/bin/env bash
# Ping-pong benchmark: ioq (each available backend) against libuv and blocking sockets.
#
#   tests/bench/run.sh [build-dir]        (default: build)
#
# libuv's ping_pongs rules: one TCP connection over loopback, "PING\n", one message in
# flight, the echo server in a separate process. Programs run interleaved (A B C A B C ...)
# after a warm-up round, so that a slow phase of the machine hits every program alike.
# BENCH_QUICK=1: 3 repetitions of 1 s, else 5 repetitions of 5 s (libuv's duration).
# Prints a table of medians and writes <build-dir>/bench/results.json.
set -euo pipefail

build=${1:-build}
bin="$build/tests/bench"
if [ "${BENCH_QUICK:-0}" = 1 ]; then reps=3; secs=1; warm=0.5; else reps=5; secs=5; warm=1; fi

[ -x "$bin/pingpong_ioq" ] || { echo "run.sh: $bin/pingpong_ioq not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ioq-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Each variant: a label and a command. The ioq program runs once per backend that works
# here; IOQ_BACKEND picks it, and a backend that falls back to another is left out.
labels=()
cmds=()
for be in epoll io_uring; do
  if out=$(IOQ_BACKEND=$be "$bin/pingpong_ioq" 0.1 2>/dev/null) && [ "${out%% *}" = "ioq-$be" ]
  then
    labels+=("ioq-$be"); cmds+=("env IOQ_BACKEND=$be $bin/pingpong_ioq")
  fi
done
if [ ${#labels[@]} -eq 0 ]; then
  labels+=("ioq"); cmds+=("$bin/pingpong_ioq")
fi
if [ -x "$bin/pingpong_uv" ]; then
  labels+=("libuv"); cmds+=("$bin/pingpong_uv")
else
  echo "run.sh: pingpong_uv not built (libuv1-dev missing): libuv is left out" >&2
fi
labels+=("blocking"); cmds+=("$bin/pingpong_blocking")

n=${#labels[@]}
echo "ping-pong: 1 connection, 5-byte message, 1 in flight, server in its own process"
echo "warm-up ${warm} s each, then ${reps} interleaved repetitions of ${secs} s"
for ((i = 0; i < n; i++)); do ${cmds[i]} "$warm" >/dev/null; done

for ((r = 1; r <= reps; r++)); do
  for ((i = 0; i < n; i++)); do
    line=$(${cmds[i]} "$secs")
    value=${line##* }
    echo "  run $r ${labels[i]}: $value"
    echo "$value" >> "$work/${labels[i]}"
  done
done

median() {
  sort -n "$1" | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]
          else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
runs_json() { paste -sd, "$1"; }

uv_median=""
[ -f "$work/libuv" ] && uv_median=$(median "$work/libuv")

echo
printf '%-14s %16s %14s %14s %12s\n' program "median rt/s" min max "vs libuv"
json_results=""
json_ratios=""
for ((i = 0; i < n; i++)); do
  l=${labels[i]}
  med=$(median "$work/$l")
  min=$(sort -n "$work/$l" | head -1)
  max=$(sort -n "$work/$l" | tail -1)
  ratio="-"
  if [ -n "$uv_median" ]; then
    ratio=$(awk -v a="$med" -v b="$uv_median" 'BEGIN { printf "%.3f", a / b }')
    case $l in ioq*) json_ratios+="${json_ratios:+, }\"$l/libuv\": $ratio" ;; esac
  fi
  printf '%-14s %16s %14s %14s %12s\n' "$l" "$med" "$min" "$max" "$ratio"
  json_results+="${json_results:+,
}    \"$l\": {\"median\": $med, \"runs\": [$(runs_json "$work/$l")]}"
done

mkdir -p "$build/bench"
cat > "$build/bench/results.json" <<JSON
{
  "benchmark": "pingpong",
  "rules": "libuv ping_pongs: 1 TCP connection, PING, 1 in flight, server in a child process",
  "unit": "round trips per second",
  "seconds": $secs,
  "repetitions": $reps,
  "results": {
$json_results
  },
  "ratios": {$json_ratios}
}
JSON
echo
echo "wrote $build/bench/results.json"
