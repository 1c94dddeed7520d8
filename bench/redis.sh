#!/usr/bin/env bash
# The `redis` experiment against redis-benchmark, in one run, on the same Redis with the same
# connection count and operations: redis-benchmark -c CLIENTS -n REQUESTS -t set,get, then a
# `redis` job with client `pool`, pool_size = concurrency = CLIENTS and 2 × REQUESTS operations
# (SET and GET, half each, 3-byte values like redis-benchmark's default), then the same job with
# client `fred` on FRED_CONNECTIONS multiplexed connections. Prints each one's rate, p50/p99 and
# CPU, and the pool job's ratio to redis-benchmark; the target is ≥ 0.8. See bench/README.md.
#
# Settings (environment): REDIS_URL (redis://127.0.0.1:6379), CLIENTS (50), REQUESTS (200000),
# FRED_CONNECTIONS (2), PORT (18081).
set -euo pipefail

REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
CLIENTS=${CLIENTS:-50}
REQUESTS=${REQUESTS:-200000}
FRED_CONNECTIONS=${FRED_CONNECTIONS:-2}
PORT=${PORT:-18081}

source "$(dirname "${BASH_SOURCE[0]}")/server.sh"
command -v redis-benchmark >/dev/null || die "redis-benchmark is required (apt install redis-tools)"

redis_host=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "127.0.0.1")' "$REDIS_URL")
redis_port=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 6379)' "$REDIS_URL")

print_machine
build_release
SERVER_ENV=("REDIS_URL=$REDIS_URL")
start_server

log "redis-benchmark -h $redis_host -p $redis_port -c $CLIENTS -n $REQUESTS -t set,get -q"
redis-benchmark -h "$redis_host" -p "$redis_port" -c "$CLIENTS" -n "$REQUESTS" -t set,get -q | tr '\r' '\n' |
    grep -E '^(SET|GET): [0-9.]+ requests per second' | tee "$workdir/redis-benchmark.txt"

ops=$((2 * REQUESTS))
body=$(printf '{"client":"pool","pool_size":%s,"concurrency":%s,"ops":%s,"mix":{"get":1,"set":1},"value_bytes":3}' "$CLIENTS" "$CLIENTS" "$ops")
log "POST /experiments/redis $body"
run_job redis "$body" "$workdir/job.json"

body=$(printf '{"client":"fred","pool_size":%s,"concurrency":%s,"ops":%s,"mix":{"get":1,"set":1},"value_bytes":3}' "$FRED_CONNECTIONS" "$CLIENTS" "$ops")
log "POST /experiments/redis $body"
run_job redis "$body" "$workdir/fred-job.json"

python3 - "$workdir/redis-benchmark.txt" "$workdir/job.json" "$REQUESTS" "$workdir/fred-job.json" <<'PY'
import json, re, sys

bench_path, job_path, requests, fred_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rates = {}
for line in open(bench_path):
    match = re.match(r"(SET|GET): ([\d.]+) requests per second", line)
    if match:
        rates[match.group(1)] = float(match.group(2))
# redis-benchmark runs all SETs then all GETs: its combined rate is total requests over total time.
combined = 2 * requests / sum(requests / rate for rate in rates.values())
report = json.load(open(job_path))["result"]
ratio = report["ops_per_s"] / combined
print()
print("results")
print(f"  redis-benchmark:   SET {rates['SET']:.0f}/s, GET {rates['GET']:.0f}/s, combined {combined:.0f} ops/s")
print(f"  redis experiment:  {report['ops_per_s']:.0f} ops/s ({report['op_counts']['set']} SET + {report['op_counts']['get']} GET "
      f"in {report['elapsed_ms'] / 1000:.2f} s, pool {report['pool_size']}, {report['concurrency']} tasks)")
latency, wait = report["latency"], report["pool_wait"]
print(f"  latency:           p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms, max {latency['max_ms']:.3f} ms")
print(f"  pool wait:         p50 {wait['p50_ms']:.3f} ms, p99 {wait['p99_ms']:.3f} ms, "
      f"{report['pool_wait_timeouts']} timed out, share {report['pool_wait_share']:.2f}")
print(f"  ratio:             {ratio:.2f} × redis-benchmark (target ≥ 0.8)")

def cpu_line(report):
    cpu = report["cpu"]
    return f"CPU {cpu['total_ms'] / 1000:.2f} s ({report['ops'] / max(cpu['total_ms'], 1e-9) * 1000:.0f} ops per CPU-second)"

fred = json.load(open(fred_path))["result"]
print()
print("clients (same operations, same tasks)")
for report in (report, fred):
    latency = report["latency"]
    print(f"  {report['client']:<5} {report['pool_size']:>3} connections: {report['ops_per_s']:.0f} ops/s, "
          f"p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms, {cpu_line(report)}")
PY
