#!/usr/bin/env bash
# A CI smoke and load check: runs an http-fanout job on the asynclab server at $ASYNCLAB_SERVER
# (default http://127.0.0.1:8080) against its built-in target, with thresholds, and exits with
# `asynclab run`'s code: 0 passed, 1 failed, 2 thresholds missed, 3 cancelled, 4 usage or
# connection error. Starts nothing. ASYNCLAB_TOKEN is sent when set; ASYNCLAB_BIN picks the
# binary (default: `asynclab` on PATH); SMOKE_URL, SMOKE_COUNT and SMOKE_P99_MS tune the check.
set -euo pipefail

server=${ASYNCLAB_SERVER:-http://127.0.0.1:8080}
asynclab=${ASYNCLAB_BIN:-asynclab}
# The URL the server's fan-out requests (as the server sees it): its own built-in target.
default_url="$server/targets/hello/{i}"
url=${SMOKE_URL:-$default_url}

exec "$asynclab" run http-fanout --server "$server" \
    -p url="$url" \
    -p count="${SMOKE_COUNT:-2000}" \
    -p max_connections=8 \
    -p thresholds.p99_ms="${SMOKE_P99_MS:-250}" \
    -p thresholds.error_rate=0 \
    --timeout-ms 60000 \
    --timeout 2m
