# Shared by the bench scripts (sourced, not run): prints the machine, builds
# the release binary, starts it on a spare port with a temporary data directory (SQLite store),
# launches jobs through the API, waits for them, and stops the server on exit.
#
# Callers set PORT and put the server's extra environment in SERVER_ENV (an array of NAME=value).

POLL_INTERVAL_S=0.5
READY_TIMEOUT_S=60
STOP_TIMEOUT_S=40

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
base="http://127.0.0.1:${PORT}"

log() {
    printf '==> %s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

for tool in cargo curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# api PATH [curl options...]: a request to the server that fails on an HTTP error status.
api() {
    local path=$1
    shift
    curl -fsS --max-time 30 "$@" "${base}${path}"
}

# The interpreter itself, found once: a version manager's `python3` shim starts several
# processes on every call.
python=$(python3 -c 'import sys; print(sys.executable)')

# json EXPRESSION: evaluates a Python expression over the JSON document on stdin (bound to `d`).
json() {
    "$python" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

print_machine() {
    log "machine"
    printf '    cores:  %s\n' "$(nproc)"
    printf '    cpu:    %s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf '    kernel: %s\n' "$(uname -srm)"
}

build_release() {
    log "building: cargo build --release"
    cargo build --release
    binary="${CARGO_TARGET_DIR:-target}/release/asynclab"
    [[ -x $binary ]] || die "no binary at $binary"
}

workdir=$(mktemp -d "${TMPDIR:-/tmp}/asynclab-bench.XXXXXX")
server_pid=""

stop_server() {
    [[ -n $server_pid ]] || return 0
    local pid=$server_pid
    server_pid=""
    kill -TERM "$pid" 2>/dev/null || return 0
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT_S * 10)); then
            log "the server did not stop within ${STOP_TIMEOUT_S} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_server
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server: starts the binary with SERVER_ENV and waits for /readyz.
start_server() {
    python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$PORT" 2>/dev/null ||
        die "port $PORT is taken: choose another with PORT=..."
    log "starting $binary on 127.0.0.1:${PORT} (data directory $workdir/data)"
    env -u DATABASE_URL "${SERVER_ENV[@]}" RUST_LOG=warn ASYNCLAB_BIND="127.0.0.1:${PORT}" ASYNCLAB_DATA_DIR="$workdir/data" \
        "$binary" serve >"$workdir/server.log" 2>&1 &
    server_pid=$!
    local i
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            server_pid=""
            cat "$workdir/server.log" >&2
            die "the server exited during startup"
        fi
        if api /readyz -o /dev/null 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$workdir/server.log" >&2
    die "not ready after ${READY_TIMEOUT_S} s"
}

# run_job KIND BODY OUT: launches a job, follows its event stream until the job ends, stores the
# job's JSON in OUT. Following the stream is one idle curl, where polling would start processes
# every fraction of a second on the cores being measured.
run_job() {
    local kind=$1 body=$2 out=$3 job_id status
    job_id=$(api "/experiments/$kind" -X POST -H 'Content-Type: application/json' --data "$body" | json 'd["id"]')
    while true; do
        # The stream ends with the job; a broken one is followed again after a pause.
        curl -sN "${base}/jobs/${job_id}/events" >/dev/null || sleep "$POLL_INTERVAL_S"
        api "/jobs/$job_id" -o "$out"
        status=$(json 'd["status"]' <"$out")
        case $status in
            queued | running) ;;
            succeeded) return 0 ;;
            *)
                json 'd["error"]' <"$out" >&2
                die "job $job_id ended $status"
                ;;
        esac
    done
}

# start_nginx: serves a 5-byte file with one nginx worker on 127.0.0.1:NGINX_PORT, pinned to
# CPU 0, from the working directory; sets nginx_pid and waits until it answers.
start_nginx() {
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
    local i
    for ((i = 0; i < 100; i++)); do
        curl -fs "http://127.0.0.1:${NGINX_PORT}/" >/dev/null && return 0
        sleep 0.1
    done
    die "nginx did not start"
}
