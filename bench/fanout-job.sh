#!/usr/bin/env bash
# Benchmark of one http-fanout job against the server's own /targets/hello route: builds the
# release binary, starts it on a spare port with a temporary data directory, runs one fan-out
# job (followed over its event stream), then prints throughput, latency, the job's CPU, the
# server's peak memory and how many events the job stored. See bench/README.md (fanout-job.sh).
#
# Settings (environment): COUNT (200000), CONNECTIONS (64), PORT (18080), BENCH_DATABASE_URL
# (unset: the server's default store, a SQLite file in the temporary data directory; set it to
# e.g. postgres://postgres@127.0.0.1:5432/asynclab_bench to measure with PostgreSQL; a
# DATABASE_URL in the environment is ignored so a development database is never touched).
set -euo pipefail

COUNT=${COUNT:-200000}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
SERVER_ENV=()
if [[ -n ${BENCH_DATABASE_URL:-} ]]; then
    SERVER_ENV=(DATABASE_URL="$BENCH_DATABASE_URL")
fi
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

print_machine
build_release
start_server
body=$(printf '{"url":"%s/targets/hello/{i}","count":%s,"max_connections":%s}' "$base" "$COUNT" "$CONNECTIONS")
log "launching: POST /experiments/http-fanout $body"
job_id=$(api /experiments/http-fanout -X POST -H 'Content-Type: application/json' --data "$body" | json 'd["id"]')
log "job $job_id; following GET /jobs/$job_id/events"

# One idle curl follows the event stream (polling would start processes on the cores being
# measured); awk prints every 8th progress snapshot, about one every 2 s.
while true; do
    curl -sN "${base}/jobs/$job_id/events" | awk '
        /^event: / { kind = $2 }
        /^data: / && kind == "progress" && (++seen % 8) == 1 {
            completed = $0; sub(/.*"completed":/, "", completed); sub(/[,}].*/, "", completed)
            rps = $0; sub(/.*"current_rps":/, "", rps); sub(/[,}].*/, "", rps)
            printf "    running: %s requests, %.0f req/s now\n", completed, rps
            fflush()
        }' || true
    api "/jobs/$job_id" -o "$workdir/job.json"
    status=$(json 'd["status"]' <"$workdir/job.json")
    case $status in
        queued | running) sleep "$POLL_INTERVAL_S" ;; # the stream broke: follow it again
        *) break ;;
    esac
done
log "job ended: $status"

log "reading the stored events: GET /jobs/$job_id/events"
curl -sSN --max-time 120 "${base}/jobs/$job_id/events" >"$workdir/events.txt"
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
    cpu = report.get("cpu")
    if cpu:
        print(f"  job CPU:          {cpu['total_ms'] / 1000:.2f} CPU-s (user {cpu['user_ms'] / 1000:.2f}, system {cpu['system_ms'] / 1000:.2f}) on {cpu['threads']} threads")
        print(f"  requests/CPU-s:   {report['requests_per_cpu_second']:.0f} ({report['cpu_micros_per_request']:.1f} µs CPU per request; the target shares the process and is not counted)")
if job.get("error"):
    print(f"  error:            {job['error']['kind']}: {job['error']['message']}")
print(f"  job time:         {job_s:.2f} s (started to finished)")
print(f"  peak RSS:         {int(peak_rss_kib) / 1024:.1f} MiB (server VmHWM, target and client in one process)")
print(f"  events stored:    {events} ({', '.join(f'{kind} {n}' for kind, n in sorted(kinds.items()) if kind != 'end')})")
print(f"  events/s:         {events / job_s if job_s > 0 else 0:.1f} (per second of job time)")
print(f"  shutdown:         {stop_s} s after SIGTERM")
PY

[[ $status == succeeded ]] || die "the job ended $status"
