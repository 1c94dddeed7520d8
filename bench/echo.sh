#!/usr/bin/env bash
# The uvloop lesson measured: the same TCP echo load (CONNECTIONS clients × ROUND_TRIPS round
# trips of MESSAGE_BYTES, server and clients in one process over 127.0.0.1) on Python's asyncio
# (stdlib loop and uvloop, bench/echo_asyncio.py) and on every runtime-echo flavour through the
# API of a release asynclab, one after the other in one run, then a table of msg/s with the
# ratio of the best asynclab flavour to uvloop. See bench/README.md.
#
# Settings (environment): CONNECTIONS (100), ROUND_TRIPS (200), MESSAGE_BYTES (2048), PORT
# (a free one).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-100}
ROUND_TRIPS=${ROUND_TRIPS:-200}
MESSAGE_BYTES=${MESSAGE_BYTES:-2048}
TARGET_RATIO=2.5
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SERVER_ENV=()
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

print_machine
printf '    python: %s\n' "$(python3 --version 2>&1)"
if ! python3 -c 'import uvloop' 2>/dev/null; then
    log "installing uvloop: pip install uvloop"
    python3 -m pip install --quiet uvloop || die "cannot install uvloop"
fi
printf '    uvloop: %s\n' "$(python3 -c 'import uvloop; print(uvloop.__version__)')"
build_release

log "python asyncio echo: $CONNECTIONS connections × $ROUND_TRIPS round trips × $MESSAGE_BYTES B"
python3 bench/echo_asyncio.py --connections "$CONNECTIONS" --round-trips "$ROUND_TRIPS" \
    --message-bytes "$MESSAGE_BYTES" --loop both | tee "$workdir/python.txt"

start_server
body=$(printf '{"connections":%s,"round_trips":%s,"message_bytes":%s}' "$CONNECTIONS" "$ROUND_TRIPS" "$MESSAGE_BYTES")
log "launching: POST /experiments/runtime-echo $body"
run_job runtime-echo "$body" "$workdir/job.json"

python3 - "$workdir/python.txt" "$workdir/job.json" "$TARGET_RATIO" <<'PY'
import json, sys

python_path, job_path, target = sys.argv[1], sys.argv[2], float(sys.argv[3])
python = {}
for line in open(python_path):
    name, rate, elapsed = line.split()
    python[name] = (float(rate), float(elapsed) * 1000)
report = json.load(open(job_path))["result"]
uvloop = python.get("uvloop", (None, None))[0]

rows = [(f"python {name}", rate, elapsed, None, None) for name, (rate, elapsed) in python.items()]
rows += [
    (f"asynclab {f['flavour']}", f["msgs_per_s"], f["elapsed_ms"], f["rtt"]["p50_ms"], f["rtt"]["p99_ms"])
    for f in report["flavours"]
]
print()
print(f"{'runtime':<28} {'msg/s':>10} {'elapsed ms':>11} {'rtt p50 ms':>11} {'rtt p99 ms':>11} {'× uvloop':>9}")
for name, rate, elapsed, p50, p99 in rows:
    ratio = f"{rate / uvloop:.2f}" if uvloop else "-"
    p50 = f"{p50:.3f}" if p50 is not None else "-"
    p99 = f"{p99:.3f}" if p99 is not None else "-"
    print(f"{name:<28} {rate:>10.0f} {elapsed:>11.1f} {p50:>11} {p99:>11} {ratio:>9}")
best = max(report["flavours"], key=lambda f: f["msgs_per_s"])
print()
if uvloop:
    ratio = best["msgs_per_s"] / uvloop
    verdict = "met" if ratio >= target else "missed"
    print(f"best asynclab flavour: {best['flavour']} at {best['msgs_per_s']:.0f} msg/s = {ratio:.2f}× uvloop "
          f"(target ≥ {target}×: {verdict})")
else:
    print(f"best asynclab flavour: {best['flavour']} at {best['msgs_per_s']:.0f} msg/s (uvloop did not run)")
PY
