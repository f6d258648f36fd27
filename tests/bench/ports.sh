# Sourced by the benchmark scripts: free_port prints a TCP port on 127.0.0.1 that nothing
# listens on. Servers listen below the ephemeral range: the clients' many connections (and
# their TIME_WAIT remains) can occupy any port inside it.
bench_eph_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null ||
                echo 32768)
free_port() {
  local p span=$((bench_eph_low > 12000 ? bench_eph_low - 10000 : 2000))
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "$(basename "$0"): no free port" >&2; return 1
}
