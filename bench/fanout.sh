#!/usr/bin/env bash
# http-fanout against the load generators people use instead (wrk and oha), in one run, on the
# same targets: nginx serving a 5-byte file and `asynclab target`, each pinned to CPU 0 while
# every generator runs on CPU 1. Then the open model's rate accuracy, and each tool's peak
# memory for 1M and 10M requests. Installs wrk, nginx and oha when missing. See bench/README.md.
#
# Settings (environment): SECONDS_PER_RUN (10), CONNECTIONS (64), ROUNDS (2: tools alternate; 0: none, only the open model and memory),
# OPEN_RATE (20000), MEMORY_COUNTS ("1000000 10000000"), PORT (18080), TARGET_PORT (18091),
# NGINX_PORT (18090), OPEN_CONNECTIONS (CONNECTIONS). MEMORY_COUNTS= (empty) skips the memory runs.
set -euo pipefail

SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
OPEN_RATE=${OPEN_RATE:-20000}
OPEN_CONNECTIONS=${OPEN_CONNECTIONS:-$CONNECTIONS}
MEMORY_COUNTS=${MEMORY_COUNTS-"1000000 10000000"}
PORT=${PORT:-18080}
TARGET_PORT=${TARGET_PORT:-18091}
NGINX_PORT=${NGINX_PORT:-18090}
SERVER_ENV=(ASYNCLAB_MAX_RUNNING_JOBS=1)
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

install_peers() {
    if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
        log "installing wrk and nginx from apt"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
    fi
    oha=$(command -v oha || true)
    for candidate in "$HOME/.cargo/bin/oha" /opt/oha/bin/oha; do
        [[ -z $oha && -x $candidate ]] && oha=$candidate
    done
    if [[ -z $oha ]]; then
        log "installing oha: cargo install oha --locked (several minutes)"
        cargo install oha --locked --quiet
        oha="$HOME/.cargo/bin/oha"
    fi
}

nginx_pid=""
target_pid=""
stop_targets() {
    [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null || true
    [[ -n $target_pid ]] && kill "$target_pid" 2>/dev/null || true
    stop_server
    rm -rf "$workdir"
}
trap stop_targets EXIT

start_targets() {
    mkdir -p "$workdir/nginx"
    printf 'hello' >"$workdir/nginx/index.html"
    # nginx's worker runs unprivileged: let it read the file.
    chmod a+rx "$workdir" "$workdir/nginx"
    chmod a+r "$workdir/nginx/index.html"
    cat >"$workdir/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $workdir/nginx/nginx.pid;
error_log $workdir/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:${NGINX_PORT}; root $workdir/nginx; location / { try_files /index.html =404; } }
}
CONF
    taskset -c 0 nginx -c "$workdir/nginx/nginx.conf" -p "$workdir/nginx" &
    nginx_pid=$!
    taskset -c 0 "$binary" target --bind "127.0.0.1:${TARGET_PORT}" --echo-bind 127.0.0.1:0 --workers 1 \
        >"$workdir/target.log" 2>&1 &
    target_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fs "http://127.0.0.1:${NGINX_PORT}/" >/dev/null && curl -fs "http://127.0.0.1:${TARGET_PORT}/targets/hello/1" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "the targets did not start"
}

results="$workdir/results.tsv"

# record TARGET TOOL RPS P50_MS P99_MS
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    printf '    %-16s %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms\n' "$@"
}

run_wrk() {
    local target=$1 url=$2 out="$workdir/wrk.txt"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$url" >"$out"
    python3 - "$out" "$target" <<'PY' >>"$workdir/line"
import re, sys
text = open(sys.argv[1]).read()
def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
print(sys.argv[2], "wrk", rps, p50, p99)
PY
}

run_oha() {
    local target=$1 url=$2 out="$workdir/oha.json"
    taskset -c 1 "$oha" -c "$CONNECTIONS" -z "${SECONDS_PER_RUN}s" --no-tui --output-format json "$url" >"$out"
    python3 - "$out" "$target" <<'PY' >>"$workdir/line"
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], "oha", d["summary"]["requestsPerSec"], d["latencyPercentiles"]["p50"] * 1000, d["latencyPercentiles"]["p99"] * 1000)
PY
}

run_asynclab() {
    local target=$1 url=$2 out="$workdir/job.json"
    run_job http-fanout "{\"url\":\"$url\",\"duration_ms\":$((SECONDS_PER_RUN * 1000)),\"max_connections\":$CONNECTIONS}" "$out"
    json "' '.join(['$target', 'asynclab', str(d['result']['achieved_rps']), str(d['result']['latency']['p50_ms']), str(d['result']['latency']['p99_ms'])])" <"$out" >>"$workdir/line"
}

print_machine
install_peers
build_release
start_server
taskset -a -pc 1 "$server_pid" >/dev/null
start_targets
log "generators on CPU 1, targets on CPU 0; ${CONNECTIONS} connections, ${SECONDS_PER_RUN} s per run, ${ROUNDS} rounds"

for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round"
    for target in nginx asynclab-target; do
        if [[ $target == nginx ]]; then url="http://127.0.0.1:${NGINX_PORT}/"; else url="http://127.0.0.1:${TARGET_PORT}/targets/hello/1"; fi
        for tool in wrk oha asynclab; do
            : >"$workdir/line"
            "run_$tool" "$target" "$url"
            read -r t name rps p50 p99 <"$workdir/line"
            record "$t" "$name" "$rps" "$p50" "$p99"
        done
    done
done

if ((ROUNDS > 0)); then
log "summary (mean of ${ROUNDS} rounds)"
python3 - "$results" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    target, tool, rps, p50, p99 = line.split("\t")
    runs[(target, tool)].append((float(rps), float(p50), float(p99)))
print(f"    {'target':<16} {'tool':<9} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
for (target, tool), values in runs.items():
    n = len(values)
    print(f"    {target:<16} {tool:<9} {sum(v[0] for v in values)/n:>10.0f} {sum(v[1] for v in values)/n:>8.3f} {sum(v[2] for v in values)/n:>8.3f}")
for target in sorted({t for t, _ in runs}):
    mean = lambda tool: sum(v[0] for v in runs[(target, tool)]) / len(runs[(target, tool)])
    print(f"    {target}: asynclab/oha = {mean('asynclab') / mean('oha'):.2f}x, asynclab/wrk = {mean('asynclab') / mean('wrk'):.2f}x")
PY
fi

log "open model: ${OPEN_RATE} req/s for ${SECONDS_PER_RUN} s against nginx, ${OPEN_CONNECTIONS} connections"
run_job http-fanout "{\"url\":\"http://127.0.0.1:${NGINX_PORT}/\",\"rate\":${OPEN_RATE},\"duration_ms\":$((SECONDS_PER_RUN * 1000)),\"max_connections\":$OPEN_CONNECTIONS}" "$workdir/open.json"
json "'    target %.0f req/s, sent %d + dropped %d of %d scheduled, achieved %.1f req/s (%.2f%% off), corrected p99 %.3f ms, service p99 %.3f ms' % (d['result']['target_rps'], d['result']['requests'], d['result']['dropped'], d['result']['requests'] + d['result']['dropped'], d['result']['achieved_rps'], abs(d['result']['achieved_rps'] - d['result']['target_rps']) / d['result']['target_rps'] * 100, d['result']['latency']['p99_ms'], d['result']['service_time']['p99_ms'])" <"$workdir/open.json"

log "peak memory (RSS) against nginx"
peak_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
for count in $MEMORY_COUNTS; do
    echo 5 >"/proc/$server_pid/clear_refs"
    run_job http-fanout "{\"url\":\"http://127.0.0.1:${NGINX_PORT}/\",\"count\":$count,\"max_connections\":$CONNECTIONS}" "$workdir/mem.json"
    asynclab_kib=$(peak_kib "$server_pid")
    oha_kib=$( { /usr/bin/time -f '%M' taskset -c 1 "$oha" -c "$CONNECTIONS" -n "$count" --no-tui --output-format quiet "http://127.0.0.1:${NGINX_PORT}/" >/dev/null; } 2>&1 | tail -n 1)
    printf '    %9d requests: asynclab server %6.1f MiB (whole process), oha %6.1f MiB\n' "$count" \
        "$(echo "$asynclab_kib / 1024" | bc -l)" "$(echo "$oha_kib / 1024" | bc -l)"
done
