#!/usr/bin/env bash
# The `sftp` experiment against OpenSSH's `sftp` client, in one run, on the same OpenSSH server
# (scripts/sshd.sh, 127.0.0.1:2222) with the same files: FILES × SIZE_BYTES uploaded then
# downloaded by `sftp` (batch mode, one file after another, its default 64 requests of 32 KiB in
# flight), then an `sftp` job moving the same count and size both ways. Prints MB/s of each
# direction for both and their ratio (the target: ≥ 1.0 × OpenSSH sftp). See bench/README.md.
# Both sides use the same cipher: the job offers AES-256-GCM first and the server takes the
# client's first choice it supports, so OpenSSH's sftp is given SFTP_CIPHER (by default the same;
# its own default would be ChaCha20-Poly1305). Each side's negotiated cipher is printed: OpenSSH's
# from its own debug log, the job's from the report (`cipher`). Set SFTP_CIPHER to another name
# to compare the orders.
#
# Settings (environment): FILES (8), SIZE_BYTES (33554432), CONCURRENCY (1),
# REQUESTS_IN_FLIGHT (64), BLOCK_BYTES (32768), PORT (18083), SFTP_PASSWORD (asynclab-test),
# SFTP_CIPHER (aes256-gcm@openssh.com).
set -euo pipefail

FILES=${FILES:-8}
SIZE_BYTES=${SIZE_BYTES:-33554432}
CONCURRENCY=${CONCURRENCY:-1}
REQUESTS_IN_FLIGHT=${REQUESTS_IN_FLIGHT:-64}
BLOCK_BYTES=${BLOCK_BYTES:-32768}
PORT=${PORT:-18083}
SFTP_PASSWORD=${SFTP_PASSWORD:-asynclab-test}
SFTP_USER=asynclab-sftp
SFTP_CIPHER=${SFTP_CIPHER:-aes256-gcm@openssh.com}

source "$(dirname "${BASH_SOURCE[0]}")/server.sh"
ASYNCLAB_SFTP_TEST_PASSWORD=$SFTP_PASSWORD bash scripts/sshd.sh
for tool in sftp sshpass; do
    command -v "$tool" >/dev/null || die "$tool is required (scripts/sshd.sh installs it)"
done

remote_dir="bench-$$"
# openssh_sftp BATCHFILE: runs OpenSSH's sftp client with a batch of commands, prints seconds taken.
openssh_sftp() {
    local started ended
    started=$(date +%s.%N)
    # -o BatchMode=no must come before -b, which otherwise turns batch mode (no password) on.
    SSHPASS=$SFTP_PASSWORD sshpass -e sftp -o BatchMode=no -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -c "$SFTP_CIPHER" -o LogLevel=ERROR -q -P 2222 -b "$1" "${SFTP_USER}@127.0.0.1" >/dev/null || die "sftp -b $1 failed"
    ended=$(date +%s.%N)
    python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$started" "$ended"
}

print_machine
build_release

log "generating $FILES files of $SIZE_BYTES bytes"
mkdir -p "$workdir/source" "$workdir/fetched"
for ((index = 0; index < FILES; index++)); do
    head -c "$SIZE_BYTES" /dev/urandom >"$workdir/source/file-$index.bin"
done
printf 'bye\n' >"$workdir/connect.batch"
{
    printf 'mkdir %s\n' "$remote_dir"
    for ((index = 0; index < FILES; index++)); do
        printf 'put %s %s/\n' "$workdir/source/file-$index.bin" "$remote_dir"
    done
} >"$workdir/put.batch"
{
    for ((index = 0; index < FILES; index++)); do
        printf 'get %s/file-%s.bin %s/\n' "$remote_dir" "$index" "$workdir/fetched"
    done
} >"$workdir/get.batch"
{
    for ((index = 0; index < FILES; index++)); do
        printf 'rm %s/file-%s.bin\n' "$remote_dir" "$index"
    done
    printf 'rmdir %s\n' "$remote_dir"
} >"$workdir/clean.batch"

log "OpenSSH sftp: connect only, then put and get of every file"
connect_s=$(openssh_sftp "$workdir/connect.batch")
# The cipher OpenSSH's client negotiated, from its debug log ("kex: client->server cipher: …").
openssh_cipher=$(SSHPASS=$SFTP_PASSWORD sshpass -e sftp -o BatchMode=no -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -c "$SFTP_CIPHER" -v -P 2222 -b "$workdir/connect.batch" "${SFTP_USER}@127.0.0.1" 2>&1 >/dev/null |
    sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' | head -n 1)
put_s=$(openssh_sftp "$workdir/put.batch")
get_s=$(openssh_sftp "$workdir/get.batch")
openssh_sftp "$workdir/clean.batch" >/dev/null
cmp -s <(cat "$workdir"/source/*) <(cat "$workdir"/fetched/*) || die "OpenSSH sftp fetched different bytes"

SERVER_ENV=("ASYNCLAB_SFTP_URL=sftp://${SFTP_USER}@127.0.0.1:2222/" "ASYNCLAB_SFTP_PASSWORD=$SFTP_PASSWORD")
start_server
body=$(printf '{"direction":"both","files":%s,"size_bytes":%s,"concurrency":%s,"requests_in_flight":%s,"block_bytes":%s}' \
    "$FILES" "$SIZE_BYTES" "$CONCURRENCY" "$REQUESTS_IN_FLIGHT" "$BLOCK_BYTES")
log "POST /experiments/sftp $body"
run_job sftp "$body" "$workdir/job.json"

python3 - "$workdir/job.json" "$FILES" "$SIZE_BYTES" "$connect_s" "$put_s" "$get_s" "${openssh_cipher:-unknown}" <<'PY'
import json, sys
openssh_cipher = sys.argv[7]

job_path, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
connect_s, put_s, get_s = map(float, sys.argv[4:7])
total_mb = files * size / 1e6
# The sftp client's times include starting ssh, the key exchange and authentication: take off a
# session that only connects, as the job's phases start after connecting.
openssh = {"upload": total_mb / max(put_s - connect_s, 1e-9), "download": total_mb / max(get_s - connect_s, 1e-9)}
report = json.load(open(job_path))["result"]
print()
print("results")
print(f"  files:              {files} × {size} bytes = {total_mb:.1f} MB each way, OpenSSH sshd on 127.0.0.1:2222")
print(f"  OpenSSH sftp:       connect {connect_s:.3f} s (taken off), put {put_s:.3f} s, get {get_s:.3f} s")
print(f"  ciphers:            OpenSSH sftp {openssh_cipher} | sftp experiment {report.get('cipher', 'not reported')}")
for direction in ("upload", "download"):
    phase = report[direction]
    ratio = phase["mb_per_s"] / openssh[direction]
    print(f"  {direction:<9}           OpenSSH sftp {openssh[direction]:7.1f} MB/s | sftp experiment {phase['mb_per_s']:7.1f} MB/s "
          f"(per file p50 {phase['latency']['p50_ms']:.1f} ms) | ratio {ratio:.2f} ×")
print(f"  verified:           {report['files_verified']} files, {report['bytes_verified']} bytes; remote cleaned: {report['remote_cleaned']}")
print("  target:             ≥ 1.0 × OpenSSH sftp MB/s")
PY
