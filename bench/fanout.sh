#!/usr/bin/env bash
# http-fanout against the load generators people use instead (wrk and oha), in one run, on the
# same targets: nginx serving a 5-byte file and `asynclab target`, each pinned to CPU 0 while
# every generator runs on CPU 1. Then the open model's rate accuracy, and each tool's peak
# memory for 1M and 10M requests. Installs wrk, nginx and oha when missing. See bench/README.md.
#
# Every run counts errors and non-2xx answers (a run with any is marked) and the generator's CPU,
# measured alike for all three: user + system time of the tool's process (/usr/bin/time for wrk
# and oha, /proc/PID/stat before and after for the asynclab server, whose whole process is
# counted, control plane included). The summary gives the median of the rounds with their
# spread (min-max) as a Markdown table ready for the README.
#
# asynclab runs once per BUSY_POLL mode, as `asynclab-batched` (`busy_poll: batched`, the
# default: short pauses, then every ready answer at once), `asynclab-off` (sleep until a socket is
# ready) and `asynclab-adaptive` (spin while answers keep coming), so the default can be judged by
# its requests per CPU-second as well as its rate.
#
# Settings (environment): BUSY_POLL ("batched off adaptive"), SECONDS_PER_RUN (10), CONNECTIONS (64), ROUNDS (5: tools alternate; 0: none, only the open model and memory),
# OPEN_RATE (20000), MEMORY_COUNTS ("1000000 10000000"), PORT (18080), TARGET_PORT (18091),
# NGINX_PORT (18090), OPEN_CONNECTIONS (CONNECTIONS), OHA_VERSION (~1.16, the version cargo
# installs when oha is missing). MEMORY_COUNTS= (empty) skips the memory runs.
set -euo pipefail

SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-5}
OHA_VERSION=${OHA_VERSION:-~1.16}
BUSY_POLL=${BUSY_POLL:-batched off adaptive}
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
        log "installing oha $OHA_VERSION: cargo install oha --version '$OHA_VERSION' --locked (several minutes)"
        cargo install oha --version "$OHA_VERSION" --locked --quiet
        oha="$HOME/.cargo/bin/oha"
    fi
    command -v /usr/bin/time >/dev/null || die "/usr/bin/time is needed to measure the tools' CPU (apt-get install time)"
    log "$(wrk --version 2>&1 | head -n 1 || true); $("$oha" --version)"
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
    start_nginx
    taskset -c 0 "$binary" target --bind "127.0.0.1:${TARGET_PORT}" --echo-bind 127.0.0.1:0 --workers 1 \
        >"$workdir/target.log" 2>&1 &
    target_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fs "http://127.0.0.1:${TARGET_PORT}/targets/hello/1" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "the targets did not start"
}

results="$workdir/results.tsv"

# record TARGET TOOL RPS P50_MS P99_MS REQUESTS ERRORS NON_2XX CPU_S: one run, kept for the
# summary and printed (marked when it had errors or non-2xx answers: not equal work).
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    local mark=""
    (($7 + $8 > 0)) && mark="  << $7 errors, $8 non-2xx"
    printf '    %-16s %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %9d requests  %6.2f CPU-s  %8.0f req/CPU-s%s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$9" "$(echo "$6 / $9" | bc -l)" "$mark"
}

# timed OUT COMMAND...: runs COMMAND on CPU 1 and writes its user + system CPU seconds to OUT.
timed() {
    local out=$1
    shift
    /usr/bin/time -f '%U %S' -o "$out.time" taskset -c 1 "$@"
    awk '{ print $1 + $2 }' "$out.time" >"$out"
}

run_wrk() {
    local target=$1 url=$2 out="$workdir/wrk.txt"
    timed "$workdir/cpu" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$url" >"$out"
    python3 - "$out" "$target" "$(cat "$workdir/cpu")" <<'PY' >>"$workdir/line"
import re, sys
text = open(sys.argv[1]).read()
def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = sum(int(n) for n in socket.groups()) if socket else 0
non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(sys.argv[2], "wrk", rps, p50, p99, requests, errors, int(non_2xx.group(1)) if non_2xx else 0, sys.argv[3])
PY
}

run_oha() {
    local target=$1 url=$2 out="$workdir/oha.json"
    timed "$workdir/cpu" "$oha" -c "$CONNECTIONS" -z "${SECONDS_PER_RUN}s" --no-tui --output-format json "$url" >"$out"
    python3 - "$out" "$target" "$(cat "$workdir/cpu")" <<'PY' >>"$workdir/line"
import json, sys
d = json.load(open(sys.argv[1]))
statuses = {int(code): n for code, n in d.get("statusCodeDistribution", {}).items()}
errors = sum(d.get("errorDistribution", {}).values())
non_2xx = sum(n for code, n in statuses.items() if not 200 <= code < 300)
requests = sum(statuses.values()) + errors
print(sys.argv[2], "oha", d["summary"]["requestsPerSec"], d["latencyPercentiles"]["p50"] * 1000, d["latencyPercentiles"]["p99"] * 1000,
      requests, errors, non_2xx, sys.argv[3])
PY
}

# The server process's user + system CPU seconds so far.
server_cpu_s() {
    python3 -c 'import os, sys; f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split(); print((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))' "$server_pid"
}

# run_asynclab TARGET URL MODE: one job with `busy_poll: MODE`, named `asynclab-MODE`.
run_asynclab() {
    local target=$1 url=$2 mode=$3 out="$workdir/job.json" before after name
    name="asynclab-$mode"
    before=$(server_cpu_s)
    run_job http-fanout "{\"url\":\"$url\",\"duration_ms\":$((SECONDS_PER_RUN * 1000)),\"max_connections\":$CONNECTIONS,\"busy_poll\":\"$mode\"}" "$out"
    after=$(server_cpu_s)
    python3 - "$out" "$target" "$(echo "$after - $before" | bc -l)" "$name" <<'PY' >>"$workdir/line"
import json, sys
r = json.load(open(sys.argv[1]))["result"]
non_2xx = sum(n for code, n in r["status_counts"].items() if not 200 <= int(code) < 300)
print(sys.argv[2], sys.argv[4], r["achieved_rps"], r["latency"]["p50_ms"], r["latency"]["p99_ms"], r["requests"],
      sum(r["error_counts"].values()), non_2xx, sys.argv[3])
PY
    # Printed under the run's line, once it is recorded.
    json "'      (the job alone: %.2f CPU-s on %d threads, %.0f req/CPU-s)' % (d['result']['cpu']['total_ms'] / 1000, d['result']['cpu']['threads'], d['result']['requests_per_cpu_second'])" <"$out" >"$workdir/job_line"
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
        for tool in wrk oha $BUSY_POLL; do
            : >"$workdir/line"
            : >"$workdir/job_line"
            case $tool in
                wrk | oha) "run_$tool" "$target" "$url" ;;
                *) run_asynclab "$target" "$url" "$tool" ;;
            esac
            read -r t name rps p50 p99 requests errors non_2xx cpu_s <"$workdir/line"
            record "$t" "$name" "$rps" "$p50" "$p99" "$requests" "$errors" "$non_2xx" "$cpu_s"
            cat "$workdir/job_line"
        done
    done
done

if ((ROUNDS > 0)); then
log "summary: median of ${ROUNDS} rounds (min-max), Markdown for the README"
python3 - "$results" "$SECONDS_PER_RUN" "$CONNECTIONS" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    target, tool, rps, p50, p99, requests, errors, non_2xx, cpu_s = line.split("\t")
    cpu = float(cpu_s)
    runs[(target, tool)].append({"rps": float(rps), "p50": float(p50), "p99": float(p99), "cpu": cpu,
                                 "per_cpu": int(requests) / cpu if cpu > 0 else 0.0, "bad": int(errors) + int(non_2xx)})
def cell(values, key, digits):
    xs = [v[key] for v in values]
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"
print(f"bench/fanout.sh, {sys.argv[2]} s runs, {sys.argv[3]} connections, generator on CPU 1, target on CPU 0")
print()
print("| target | tool | req/s | p50 ms | p99 ms | CPU-s per run | req per CPU-s | runs with errors |")
print("|---|---|---|---|---|---|---|---|")
for (target, tool), values in runs.items():
    bad = sum(1 for v in values if v["bad"] > 0)
    print(f"| {target} | {tool} | {cell(values, 'rps', 0)} | {cell(values, 'p50', 3)} | {cell(values, 'p99', 3)} | "
          f"{cell(values, 'cpu', 2)} | {cell(values, 'per_cpu', 0)} | {bad} of {len(values)} |")
print()
for target in sorted({t for t, _ in runs}):
    median = lambda tool, key: statistics.median(v[key] for v in runs[(target, tool)])
    for ours in sorted(tool for t, tool in runs if t == target and tool.startswith("asynclab")):
        print(f"- {target}, {ours}: req/s vs oha {median(ours, 'rps') / median('oha', 'rps'):.2f}x, "
              f"vs wrk {median(ours, 'rps') / median('wrk', 'rps'):.2f}x; req per CPU-s vs wrk "
              f"{median(ours, 'per_cpu') / median('wrk', 'per_cpu'):.2f}x, vs oha {median(ours, 'per_cpu') / median('oha', 'per_cpu'):.2f}x")
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
