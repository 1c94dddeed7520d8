#!/usr/bin/env bash
# A CI smoke and load check: runs an http-fanout job on the asynclab server at $ASYNCLAB_SERVER
# (default http://127.0.0.1:8080) against its built-in target, with thresholds, and exits with
# `asynclab run`'s code: 0 passed, 1 failed, 2 thresholds missed or a regression against the
# baseline, 3 cancelled, 4 usage or connection error (or no baseline with SMOKE_BASELINE_REQUIRED).
# Starts nothing. ASYNCLAB_TOKEN is sent when set; ASYNCLAB_BIN picks the binary (default:
# `asynclab` on PATH); SMOKE_URL, SMOKE_COUNT and SMOKE_P99_MS tune the check.
#
# The run is labelled branch=SMOKE_BRANCH and commit=SMOKE_COMMIT (defaults: GitHub Actions'
# GITHUB_HEAD_REF or GITHUB_REF_NAME, and GITHUB_SHA's first 12 characters). With SMOKE_BASELINE
# set (e.g. branch:main), the run is compared with the latest succeeded run of the same
# parameters carrying that label, gated by SMOKE_MAX_REGRESSION (default p99_ms=25%, repeat with
# spaces: "p99_ms=25% p50_ms=20%"); no baseline found skips the gate unless
# SMOKE_BASELINE_REQUIRED=1. SMOKE_KEEP=1 also labels the run keep=true, so the server's
# retention never prunes it (a release's baseline).
set -euo pipefail

server=${ASYNCLAB_SERVER:-http://127.0.0.1:8080}
asynclab=${ASYNCLAB_BIN:-asynclab}
# The URL the server's fan-out requests (as the server sees it): its own built-in target.
default_url="$server/targets/hello/{i}"
url=${SMOKE_URL:-$default_url}
branch=${SMOKE_BRANCH:-${GITHUB_HEAD_REF:-${GITHUB_REF_NAME:-}}}
sha=${GITHUB_SHA:-}
commit=${SMOKE_COMMIT:-${sha:0:12}}

args=(run http-fanout --server "$server"
    -p url="$url"
    -p count="${SMOKE_COUNT:-2000}"
    -p max_connections=8
    -p thresholds.p99_ms="${SMOKE_P99_MS:-250}"
    -p thresholds.error_rate=0
    --timeout-ms 60000
    --timeout 2m)
# Label values are letters, digits and . _ - / : + @ =; anything else in a branch name becomes -.
[[ -n "$branch" ]] && args+=(--label "branch=${branch//[^A-Za-z0-9._\/:+@=-]/-}")
[[ -n "$commit" ]] && args+=(--label "commit=$commit")
[[ "${SMOKE_KEEP:-0}" == 1 ]] && args+=(--label keep=true)
if [[ -n "${SMOKE_BASELINE:-}" ]]; then
    args+=(--baseline "$SMOKE_BASELINE")
    for tolerance in ${SMOKE_MAX_REGRESSION:-p99_ms=25%}; do
        args+=(--max-regression "$tolerance")
    done
    [[ "${SMOKE_BASELINE_REQUIRED:-0}" == 1 ]] || args+=(--baseline-optional)
fi
exec "$asynclab" "${args[@]}"
