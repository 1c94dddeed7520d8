#!/usr/bin/env bash
# Benchmark of the http-fanout experiment against the server's own /targets/hello route:
# builds the release binary, starts it on a spare port with a temporary data directory, runs
# one fan-out job, then prints throughput, latency, the server's peak memory and how many
# events the job stored. See bench/README.md (fanout-job.sh).
#
# Settings (environment): COUNT (200000), CONNECTIONS (64), PORT (18080), BENCH_DATABASE_URL
# (unset: the server's default store, a SQLite file in the temporary data directory; set it to
# e.g. postgres://postgres@127.0.0.1:5432/asynclab_bench to measure with PostgreSQL; a
# DATABASE_URL in the environment is ignored so a development database is never touched),
# ASYNCLAB_TOKEN (sent as a bearer token when set).
set -euo pipefail

COUNT=${COUNT:-200000}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-}
POLL_INTERVAL_S=0.5
READY_TIMEOUT_S=60
STOP_TIMEOUT_S=40

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
base="http://127.0.0.1:${PORT}"

log() {
    printf '==> %s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

for tool in cargo curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

auth=()
if [[ -n ${ASYNCLAB_TOKEN:-} ]]; then
    auth=(-H "Authorization: Bearer ${ASYNCLAB_TOKEN}")
fi

# api PATH [curl options...]: a request to the server that fails on an HTTP error status.
api() {
    local path=$1
    shift
    curl -fsS --max-time 30 "${auth[@]}" "$@" "${base}${path}"
}

# json EXPRESSION: evaluates a Python expression over the JSON document on stdin (bound to `d`).
json() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

log "machine"
printf '    cores:  %s\n' "$(nproc)"
printf '    cpu:    %s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
printf '    kernel: %s\n' "$(uname -srm)"
printf '    memory: %s MiB\n' "$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)"
printf '    load:   %s (1, 5, 15 min; other work on the machine lowers the numbers)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

log "building: cargo build --release"
cargo build --release
binary="${CARGO_TARGET_DIR:-target}/release/asynclab"
[[ -x $binary ]] || die "no binary at $binary"

if ! python3 - "$PORT" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(f"port {sys.argv[1]} is taken: {e}")
PY
then
    die "choose another port with PORT=..."
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/asynclab-bench.XXXXXX")
server_pid=""

stop_server() {
    [[ -n $server_pid ]] || return 0
    local pid=$server_pid
    server_pid=""
    kill -TERM "$pid" 2>/dev/null || return 0
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT_S * 10)); then
            log "the server did not stop within ${STOP_TIMEOUT_S} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_server
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n $BENCH_DATABASE_URL ]]; then
    store=$(sed -E 's#(://[^:/@]+):[^@/]*@#\1:***@#' <<<"$BENCH_DATABASE_URL")
    export DATABASE_URL=$BENCH_DATABASE_URL
else
    store="SQLite in the data directory (the default)"
    unset DATABASE_URL
fi
log "starting $binary on 127.0.0.1:${PORT}"
log "    data directory: $workdir/data; store: $store"
RUST_LOG=warn ASYNCLAB_BIND="127.0.0.1:${PORT}" ASYNCLAB_DATA_DIR="$workdir/data" \
    "$binary" serve >"$workdir/server.log" 2>&1 &
server_pid=$!

ready=false
for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        server_pid=""
        cat "$workdir/server.log" >&2
        die "the server exited during startup"
    fi
    if api /readyz -o /dev/null 2>/dev/null; then
        ready=true
        break
    fi
    sleep 0.1
done
$ready || { cat "$workdir/server.log" >&2; die "not ready after ${READY_TIMEOUT_S} s"; }
log "ready"

body=$(printf '{"url":"%s/targets/hello/{i}","count":%s,"max_connections":%s}' "$base" "$COUNT" "$CONNECTIONS")
log "launching: POST /experiments/http-fanout $body"
job_id=$(api /experiments/http-fanout -X POST -H 'Content-Type: application/json' --data "$body" | json 'd["id"]')
log "job $job_id; polling GET /jobs/$job_id every ${POLL_INTERVAL_S} s"

polls=0
while true; do
    api "/jobs/$job_id" -o "$workdir/job.json"
    status=$(json 'd["status"]' <"$workdir/job.json")
    case $status in
        queued | running) ;;
        *) break ;;
    esac
    # A progress line about every 2 s.
    if ((polls % 4 == 0)); then
        json '"    {}: {}".format(d["status"], "{completed}/{total} requests, {current_rps:.0f} req/s now".format(**d["progress"]) if d.get("progress") else "no progress yet")' <"$workdir/job.json"
    fi
    polls=$((polls + 1))
    sleep "$POLL_INTERVAL_S"
done
log "job ended: $status"

log "reading the stored events: GET /jobs/$job_id/events"
curl -sSN --max-time 120 "${auth[@]}" "${base}/jobs/$job_id/events" >"$workdir/events.txt"
events=$(grep -c '^id:' "$workdir/events.txt" || true)

peak_rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")

log "stopping the server (SIGTERM)"
stop_started=$(date +%s.%N)
stop_server
stop_s=$(python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$stop_started")

python3 - "$workdir/job.json" "$workdir/events.txt" "$events" "$peak_rss_kib" "$stop_s" <<'PY'
import collections, datetime, json, sys

job_path, events_path, events, peak_rss_kib, stop_s = sys.argv[1:]
job = json.load(open(job_path))
events = int(events)

def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))

job_s = (when(job["finished_at"]) - when(job["started_at"])).total_seconds()
kinds = collections.Counter(
    line[len("event:"):].strip() for line in open(events_path) if line.startswith("event:")
)

print()
print("results")
print(f"  job:              {job['id']} ({job['status']})")
print(f"  params:           count={job['params'].get('count')} max_connections={job['params'].get('max_connections')}")
report = job.get("result")
if report:
    latency = report["latency"]
    errors = sum(report["error_counts"].values())
    print(f"  requests:         {report['requests']} ({report['responses']} responses, {errors} errors)")
    print(f"  status codes:     {', '.join(f'{code}: {n}' for code, n in report['status_counts'].items()) or '-'}")
    print(f"  requests/s:       {report['achieved_rps']:.0f}")
    print(f"  latency:          p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms, max {latency['max_ms']:.3f} ms")
    print(f"  elapsed:          {report['elapsed_ms'] / 1000:.2f} s (first request to last)")
    print(f"  connections:      {report['connections_opened']} opened")
if job.get("error"):
    print(f"  error:            {job['error']['kind']}: {job['error']['message']}")
print(f"  job time:         {job_s:.2f} s (started to finished)")
print(f"  peak RSS:         {int(peak_rss_kib) / 1024:.1f} MiB (server VmHWM, target and client in one process)")
print(f"  events stored:    {events} ({', '.join(f'{kind} {n}' for kind, n in sorted(kinds.items()) if kind != 'end')})")
print(f"  events/s:         {events / job_s if job_s > 0 else 0:.1f} (per second of job time)")
print(f"  shutdown:         {stop_s} s after SIGTERM")
PY

[[ $status == succeeded ]] || die "the job ended $status"
