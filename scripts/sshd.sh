#!/usr/bin/env bash
# Installs and starts an OpenSSH server for the `sftp` experiment's tests and benchmark: its own
# config, host key and pid file under /var/lib/asynclab-sshd, listening on 127.0.0.1:2222, with a
# password user `asynclab-sftp` (password from ASYNCLAB_SFTP_TEST_PASSWORD, default
# `asynclab-test`). Idempotent: does nothing when it already answers. Needs root.
set -euo pipefail

SSHD_DIR=/var/lib/asynclab-sshd
SSHD_PORT=2222
SSHD_USER=asynclab-sftp
SSHD_PASSWORD=${ASYNCLAB_SFTP_TEST_PASSWORD:-asynclab-test}
# How long to wait for the port to answer after starting sshd, in seconds.
SSHD_WAIT_S=20

log() {
    printf '==> sshd: %s\n' "$*"
}

port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/${SSHD_PORT}") 2>/dev/null
}

if [[ -f "$SSHD_DIR/sshd.pid" ]] && kill -0 "$(cat "$SSHD_DIR/sshd.pid")" 2>/dev/null && port_answers; then
    log "already running on 127.0.0.1:${SSHD_PORT}"
    exit 0
fi

if [[ ! -x /usr/sbin/sshd ]] || ! command -v sshpass >/dev/null 2>&1; then
    log "installing openssh-server and sshpass"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server sshpass >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server sshpass >/dev/null; }
fi

mkdir -p /run/sshd "$SSHD_DIR"
chmod 0755 /run/sshd

if ! id "$SSHD_USER" >/dev/null 2>&1; then
    log "creating user $SSHD_USER"
    useradd -m -s /bin/bash "$SSHD_USER"
fi
echo "${SSHD_USER}:${SSHD_PASSWORD}" | chpasswd

if [[ ! -f "$SSHD_DIR/host_ed25519" ]]; then
    ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_ed25519"
fi

cat >"$SSHD_DIR/sshd_config" <<CONFIG
Port ${SSHD_PORT}
ListenAddress 127.0.0.1
HostKey ${SSHD_DIR}/host_ed25519
PidFile ${SSHD_DIR}/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM yes
AllowUsers ${SSHD_USER}
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
CONFIG

/usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config"
log "starting on 127.0.0.1:${SSHD_PORT} (log: $SSHD_DIR/sshd.log)"
/usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log"

waited=0
until port_answers; do
    if ((waited >= SSHD_WAIT_S * 10)); then
        log "port ${SSHD_PORT} does not answer; the log says:"
        tail -n 20 "$SSHD_DIR/sshd.log" >&2 || true
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done
log "up on 127.0.0.1:${SSHD_PORT}"
