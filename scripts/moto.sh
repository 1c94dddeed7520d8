#!/usr/bin/env bash
# Installs and starts moto's S3-compatible server for the `s3` experiment's tests: a second,
# independent S3 implementation in a process of its own, on 127.0.0.1:5000 (ASYNCLAB_MOTO_PORT),
# accepting any credentials. Its pid file and log live under /var/lib/asynclab-moto (or
# ASYNCLAB_MOTO_DIR). Idempotent: does nothing when it already answers.
set -euo pipefail

MOTO_DIR=${ASYNCLAB_MOTO_DIR:-/var/lib/asynclab-moto}
MOTO_PORT=${ASYNCLAB_MOTO_PORT:-5000}
# How long to wait for the server to answer after starting it, in seconds.
MOTO_WAIT_S=30

log() {
    printf '==> moto: %s\n' "$*"
}

answers() {
    curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${MOTO_PORT}/moto-api/" 2>/dev/null
}

if answers; then
    log "already running on 127.0.0.1:${MOTO_PORT}"
    exit 0
fi

# Before 5.2.5 moto answered CompleteMultipartUpload with the wrong XML root element
# (getmoto/moto#10055), which aws-sdk-s3 rejects.
MOTO_MIN_VERSION=5.2.5

recent_enough() {
    python3 - "$MOTO_MIN_VERSION" <<'PYTHON'
import importlib.metadata, sys
def parse(version):
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
try:
    installed = importlib.metadata.version("moto")
except importlib.metadata.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if parse(installed) >= parse(sys.argv[1]) else 1)
PYTHON
}

if ! command -v moto_server >/dev/null 2>&1 || ! recent_enough; then
    log "installing moto[server]>=${MOTO_MIN_VERSION} from PyPI"
    python3 -m pip install --quiet "moto[server]>=${MOTO_MIN_VERSION}"
    hash -r
fi

mkdir -p "$MOTO_DIR"
log "starting on 127.0.0.1:${MOTO_PORT} (log: $MOTO_DIR/moto.log)"
nohup moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_DIR/moto.log" 2>&1 &
echo $! >"$MOTO_DIR/moto.pid"

waited=0
until answers; do
    if ! kill -0 "$(cat "$MOTO_DIR/moto.pid")" 2>/dev/null; then
        log "the server exited; its log:"
        cat "$MOTO_DIR/moto.log"
        exit 1
    fi
    if ((waited >= MOTO_WAIT_S)); then
        log "no answer after ${MOTO_WAIT_S} s; its log:"
        cat "$MOTO_DIR/moto.log"
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done
log "up on 127.0.0.1:${MOTO_PORT}"
