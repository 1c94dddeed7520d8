#!/usr/bin/env bash
# Launch latency as a CI script feels it: LAUNCHES (200) sequential launches of a tiny
# `structured-concurrency` job, each timed POST -> 202 and POST -> the first event of its stream.
# The job store is SQLite, or PostgreSQL when DATABASE_URL is set (a fresh database named in it
# is created). See bench/README.md.
#
# Settings (environment): LAUNCHES (200), PORT (18087), DATABASE_URL (unset: SQLite),
# PROFILE (release; `debug` skips the release build and uses the debug binary).
set -euo pipefail

LAUNCHES=${LAUNCHES:-200}
PORT=${PORT:-18087}
PROFILE=${PROFILE:-release}
SERVER_ENV=()
if [[ -n ${DATABASE_URL:-} ]]; then
    SERVER_ENV+=("DATABASE_URL=$DATABASE_URL")
fi

# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

print_machine
if [[ $PROFILE == debug ]]; then
    cargo build
    binary="${CARGO_TARGET_DIR:-target}/debug/asynclab"
else
    build_release
fi
start_server
if [[ -n ${DATABASE_URL:-} ]]; then log "store: PostgreSQL"; else log "store: SQLite"; fi
python3 "$root/bench/first_event.py" "$PORT" "$LAUNCHES"
