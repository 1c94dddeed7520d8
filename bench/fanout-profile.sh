#!/usr/bin/env bash
# Where the fan-out generator's time goes: nginx (one worker, a 5-byte file) pinned to CPU 0,
# `asynclab serve` pinned to CPU 1 running one closed-model `http-fanout` job per BUSY_POLL mode,
# with perf on the server process for the job's duration: system calls, context switches and
# CPU per request (`perf stat`, software events and syscall tracepoints, which work in a VM
# without hardware counters), and the share of samples in the kernel and the hottest symbols
# (`perf record`, from a second into the job, once its worker threads exist). Installs nginx and
# perf when missing; needs root for the tracepoints.
#
# Settings (environment): BUSY_POLL ("batched off adaptive"), SECONDS_PER_RUN (8), CONNECTIONS (64),
# PORT (18080), NGINX_PORT (18090), TOP (15 symbols).
set -euo pipefail

SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CONNECTIONS=${CONNECTIONS:-64}
BUSY_POLL=${BUSY_POLL:-batched off adaptive}
PORT=${PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18090}
TOP=${TOP:-15}
SERVER_ENV=(ASYNCLAB_MAX_RUNNING_JOBS=1)
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

if ! command -v nginx >/dev/null || ! command -v perf >/dev/null; then
    log "installing nginx and perf from apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light linux-perf >/dev/null
fi

nginx_pid=""
stop_all() {
    [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null || true
    stop_server
    rm -rf "$workdir"
}
trap stop_all EXIT

print_machine
build_release
start_server
taskset -a -pc 1 "$server_pid" >/dev/null
start_nginx
log "$(perf --version); generator on CPU 1, nginx on CPU 0; ${CONNECTIONS} connections, ${SECONDS_PER_RUN} s per job"

events=task-clock,context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_sched_yield,syscalls:sys_enter_clock_nanosleep
for mode in $BUSY_POLL; do
    log "busy_poll: $mode"
    # The job's worker threads start with it, and perf attaches to the threads that exist: both
    # start a second into the job and measure a window of all but its first and last second.
    window=$((SECONDS_PER_RUN - 2))
    (sleep 1 && perf stat -x, -e "$events" -p "$server_pid" -o "$workdir/stat.csv" -- sleep "$window" 2>/dev/null) &
    stat_pid=$!
    (sleep 1 && perf record -q -F 999 -g -p "$server_pid" -o "$workdir/perf.data" -- sleep "$window" >/dev/null 2>&1) &
    record_pid=$!
    run_job http-fanout "{\"url\":\"http://127.0.0.1:${NGINX_PORT}/\",\"duration_ms\":$((SECONDS_PER_RUN * 1000)),\"max_connections\":$CONNECTIONS,\"busy_poll\":\"$mode\"}" "$workdir/job.json"
    wait "$stat_pid" "$record_pid" || true
    # The window's requests, taken at the job's average rate.
    requests=$(json "round(d['result']['achieved_rps'] * $window)" <"$workdir/job.json")
    json "'    %d requests, %.0f req/s, p99 %.3f ms; the job: %.2f CPU-s, %.0f req/CPU-s' % (d['result']['requests'], d['result']['achieved_rps'], d['result']['latency']['p99_ms'], d['result']['cpu']['total_ms'] / 1000, d['result']['requests_per_cpu_second'])" <"$workdir/job.json"
    "$python" - "$workdir/stat.csv" "$requests" <<'PY'
import sys
requests = int(sys.argv[2])
print(f"    per request (whole server process, perf stat over the window, ~{requests} requests):")
for line in open(sys.argv[1]):
    fields = line.strip().split(",")
    if len(fields) < 3 or line.startswith("#") or not fields[0].replace(".", "").isdigit():
        continue
    value, event = float(fields[0]), fields[2]
    if event == "task-clock":
        print(f"      {'CPU (task-clock)':<28} {value * 1000 / requests:8.2f} us")
    else:
        print(f"      {event.replace('syscalls:sys_enter_', ''):<28} {value / requests:8.3f}")
PY
    printf '    samples by object (perf record):\n'
    perf report -i "$workdir/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | awk '/%/ && !/^#/ && n++ < 5 { printf "      %s\n", $0 }'
    printf '    hottest symbols:\n'
    perf report -i "$workdir/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | awk -v top="$TOP" '/%/ && !/^#/ && n++ < top { printf "      %s\n", $0 }'
done
