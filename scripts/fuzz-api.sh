#!/usr/bin/env bash
# API fuzzing with schemathesis (4.x, installed from PyPI when missing) against every operation of
# the OpenAPI document: starts the release binary on a free loopback port (SQLite store in a
# temporary directory; jobs limited to 2 s and 2 at a time so launched jobs stay cheap), runs
# FUZZ_EXAMPLES (50) examples per operation with the checks that responses are never server
# errors and always match the document (status codes, content types, headers, bodies), and
# stops the server. Exits non-zero on any failure. `/targets/status/{code}` is left out: it
# answers whatever status it is asked for, 5xx included, by design. The stateful phase is left
# out: from a launch's `Location` it infers a link to `GET /retention` (which takes no id) and
# then rejects its own link as invalid.
#
# Settings (environment): FUZZ_EXAMPLES (50), FUZZ_TIMEOUT_S (900), ASYNCLAB_BIN (target/release/asynclab).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-50}
FUZZ_TIMEOUT_S=${FUZZ_TIMEOUT_S:-900}
binary=${ASYNCLAB_BIN:-${CARGO_TARGET_DIR:-target}/release/asynclab}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

log() {
    printf '==> %s\n' "$*"
}

if ! schemathesis --version 2>/dev/null | grep -q 'version 4\.'; then
    log "fuzz: installing schemathesis 4 from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi
[[ -x $binary ]] || { log "fuzz: no binary at $binary (cargo build --release first)"; exit 1; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/asynclab-fuzz.XXXXXX")
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$workdir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u DATABASE_URL -u ASYNCLAB_TOKEN RUST_LOG=warn ASYNCLAB_BIND="127.0.0.1:${port}" ASYNCLAB_DATA_DIR="$workdir/data" \
    ASYNCLAB_DEFAULT_JOB_TIMEOUT_MS=2000 ASYNCLAB_MAX_RUNNING_JOBS=2 ASYNCLAB_MAX_QUEUED_JOBS=20 \
    "$binary" serve >"$workdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:${port}/readyz" >/dev/null && break
    sleep 0.2
done

log "fuzz: schemathesis against http://127.0.0.1:${port}/openapi.json, ${FUZZ_EXAMPLES} examples per operation"
status=0
timeout "$FUZZ_TIMEOUT_S" schemathesis run "http://127.0.0.1:${port}/openapi.json" \
    --checks "$CHECKS" --max-examples "$FUZZ_EXAMPLES" --exclude-path '/targets/status/{code}' --phases examples,coverage,fuzzing \
    --no-color || status=$?
if ((status != 0)); then
    log "fuzz: failed (exit $status); the server's log:"
    tail -n 50 "$workdir/server.log"
fi
exit "$status"
