#!/usr/bin/env bash
# The control plane under load: SUBMISSIONS (200) concurrent job launches, then WATCHERS (1000)
# concurrent SSE clients on one long `subprocess` job, against the release server (SQLite store).
# Prints errors (the target is 0), submit latency p50/p99, whether every stream saw every event
# in order, and the server's peak RSS. See bench/README.md.
#
# Settings (environment): SUBMISSIONS (200), WATCHERS (1000), PORT (18085).
set -euo pipefail

SUBMISSIONS=${SUBMISSIONS:-200}
WATCHERS=${WATCHERS:-1000}
PORT=${PORT:-18085}
# Room for every submission in the queue and every watcher on the one job.
SERVER_ENV=(ASYNCLAB_MAX_QUEUED_JOBS=$((SUBMISSIONS + 10)) ASYNCLAB_MAX_SUBSCRIBERS_PER_JOB=$((WATCHERS + 10)))

# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

# 1000 open streams need as many descriptors in the client and the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

print_machine
build_release
start_server
log "${SUBMISSIONS} concurrent launches, then ${WATCHERS} concurrent event streams on one job"
python3 "$root/bench/api_load.py" "$PORT" "$server_pid" "$SUBMISSIONS" "$WATCHERS"
