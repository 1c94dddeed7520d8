#!/usr/bin/env bash
# Insert throughput of the `database` experiment: ROWS rows per insert mode on PostgreSQL and
# MariaDB (per_row and multi_row on both targets at once, copy on PostgreSQL alone), in fresh
# databases created for the run and dropped afterwards. Prints rows/s per mode and target.
# See bench/README.md.
#
# Settings (environment): ROWS (100000), BATCH_SIZE (1000), CONCURRENCY (8), PORT (18082),
# PG_SERVER (postgres://postgres@127.0.0.1:5432), MYSQL_SERVER (mysql://root@127.0.0.1:3306).
set -euo pipefail

ROWS=${ROWS:-100000}
BATCH_SIZE=${BATCH_SIZE:-1000}
CONCURRENCY=${CONCURRENCY:-8}
PORT=${PORT:-18082}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
MYSQL_SERVER=${MYSQL_SERVER:-mysql://root@127.0.0.1:3306}

source "$(dirname "${BASH_SOURCE[0]}")/server.sh"
for tool in psql mariadb; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

database="asynclab_bench_$$"
mysql_args=(-h 127.0.0.1 -u root)
drop_databases() {
    psql -q "$PG_SERVER/postgres" -c "drop database if exists $database with (force)" >/dev/null 2>&1 || true
    mariadb "${mysql_args[@]}" -e "drop database if exists $database" >/dev/null 2>&1 || true
}
trap 'stop_server; drop_databases; rm -rf "$workdir"' EXIT

print_machine
build_release
log "creating the database $database on PostgreSQL and MariaDB"
psql -q "$PG_SERVER/postgres" -c "create database $database"
mariadb "${mysql_args[@]}" -e "create database $database"
SERVER_ENV=("ASYNCLAB_PG_TARGET_URL=$PG_SERVER/$database" "ASYNCLAB_MYSQL_TARGET_URL=$MYSQL_SERVER/$database")
start_server

for mode in per_row multi_row copy; do
    targets='["postgres","mysql"]'
    [[ $mode == copy ]] && targets='["postgres"]'
    body=$(printf '{"targets":%s,"rows":%s,"batch_size":%s,"concurrency":%s,"insert_mode":"%s","steps":["init","insert","stream"]}' \
        "$targets" "$ROWS" "$BATCH_SIZE" "$CONCURRENCY" "$mode")
    log "POST /experiments/database $body"
    run_job database "$body" "$workdir/$mode.json"
done

python3 - "$workdir" <<'PY'
import json, sys

print()
print("results (insert step; targets run concurrently within a mode)")
print(f"  {'mode':<10} {'target':<9} {'rows':>7} {'rows/s':>9} {'stmt p50':>9} {'stmt p99':>9} {'wait p99':>9} {'stream rows/s':>14}")
for mode in ("per_row", "multi_row", "copy"):
    report = json.load(open(f"{sys.argv[1]}/{mode}.json"))["result"]
    for target in report["targets"]:
        steps = {step["step"]: step for step in target["steps"]}
        insert, stream = steps["insert"], steps["stream"]
        print(f"  {mode:<10} {target['target']:<9} {insert['rows']:>7} {insert['rows_per_s']:>9.0f} "
              f"{insert['statements']['p50_ms']:>7.2f}ms {insert['statements']['p99_ms']:>7.2f}ms "
              f"{insert['pool_wait']['p99_ms']:>7.2f}ms {stream['rows_per_s']:>14.0f}")
    if len(report["targets"]) == 2:
        print(f"  {'':<10} overlap of the two targets: {report['overlap_ms'] / 1000:.2f} s")
PY
