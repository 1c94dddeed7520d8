#!/usr/bin/env bash
# Makes this machine ready for the test suite: checks the services the tests talk to on loopback
# and starts each one that is down (PostgreSQL 5432, Redis 6379, MariaDB 3306; OpenSSH's sshd on
# 2222 through scripts/sshd.sh; moto's S3 server on 5000 through scripts/moto.sh), installs
# headless Chromium and chromedriver (Debian's packages) for the dashboard's browser tests, and
# cargo-nextest when it is missing. Idempotent: on a machine already set up it only checks, in a
# few seconds. Fails when a service cannot be started. Needs root (apt-get, useradd).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# How long to wait for a service after starting it, in seconds.
SERVICE_WAIT_S=30

log() {
    printf '==> %s\n' "$*"
}

# wait_until SECONDS COMMAND...: runs COMMAND every second until it succeeds or time is up.
wait_until() {
    local limit=$1
    shift
    local waited=0
    until "$@" >/dev/null 2>&1; do
        if ((waited >= limit)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

postgres_up() {
    pg_isready -q -h 127.0.0.1 -p 5432
}

start_postgres() {
    local version
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    if [[ -z $version ]]; then
        log "no PostgreSQL cluster under /etc/postgresql"
        return 1
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

redis_up() {
    [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]
}

start_redis() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

mariadb_up() {
    mariadb-admin -h 127.0.0.1 -uroot ping
}

start_mariadb() {
    # The socket directory is on a tmpfs that a reboot empties.
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

# ensure_service NAME: checks NAME with NAME_up, starts it with start_NAME when down and waits
# up to SERVICE_WAIT_S seconds for it. Fails when it is still down.
ensure_service() {
    local name=$1
    if "${name}_up" >/dev/null 2>&1; then
        log "$name: up"
        return 0
    fi
    log "$name: down, starting it"
    if ! "start_${name}"; then
        log "$name: the start command failed"
        return 1
    fi
    if wait_until "$SERVICE_WAIT_S" "${name}_up"; then
        log "$name: up"
    else
        log "$name: still down after ${SERVICE_WAIT_S} s"
        return 1
    fi
}

for service in postgres redis mariadb; do
    ensure_service "$service"
done

# OpenSSH on 127.0.0.1:2222, the real peer of the `sftp` experiment's tests.
bash scripts/sshd.sh

# moto's S3 server on 127.0.0.1:5000, the second S3 implementation the `s3` experiment's tests use.
bash scripts/moto.sh

# Headless Chromium and chromedriver for the dashboard's browser tests (they fail without them).
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    log "chromium: installing chromium and chromium-driver"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null
fi
log "chromium: $(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/chromedriver --version)"

if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest is missing: installing it from crates.io"
    cargo install cargo-nextest --locked
fi
