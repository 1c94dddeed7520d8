#!/usr/bin/env bash
# The label-filtered job list and the history query with many stored jobs, on both stores.
#
# For each store: starts `asynclab serve` on a fresh database, seeds JOBS (default 100000)
# succeeded http-fanout jobs straight into the tables (a realistic report each; a tenth labelled
# branch=main, the rest branch=feature-N; every job commit=…), then times REQUESTS (default 300)
# sequential requests of each query with curl and prints p50 / p99 in milliseconds:
#   GET /jobs?label=branch:main&kind=http-fanout&limit=50
#   GET /experiments/http-fanout/history?metric=latency.p99_ms&label=branch:main&limit=100
# ASYNCLAB_BIN picks the binary (default target/release/asynclab); PG_SERVER the PostgreSQL
# server (default postgres://postgres@127.0.0.1:5432). Needs psql, sqlite3, curl, python3.
set -euo pipefail

asynclab=${ASYNCLAB_BIN:-target/release/asynclab}
jobs=${JOBS:-100000}
requests=${REQUESTS:-300}
pg_server=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
port=${PORT:-18190}
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The seed, in SQL both stores accept: $1 the id expression, $2 the JSON text type cast.
report='{"model":"closed","requests":2000,"responses":2000,"dropped":0,"status_counts":{"200":2000},"error_counts":{},"error_rate":0.0,"elapsed_ms":250.0,"achieved_rps":8000.0,"target_rps":null,"latency":{"count":2000,"p50_ms":0.5,"p75_ms":0.7,"p90_ms":0.9,"p95_ms":1.1,"p99_ms":1.9,"p999_ms":3.0,"p9999_ms":3.5,"max_ms":3.5,"mean_ms":0.6,"stdev_ms":0.3},"histogram":[{"le_ms":0.4,"count":500},{"le_ms":0.8,"count":1200},{"le_ms":1.6,"count":280},{"le_ms":3.2,"count":19},{"le_ms":6.4,"count":1}],"series":[{"second":1,"requests":2000,"errors":0,"p50_ms":0.5,"p99_ms":1.9}],"connections_opened":8,"max_connections":8,"bytes_sent":100000,"bytes_received":26000,"thresholds":[]}'
params='{"url":"http://127.0.0.1:8080/targets/hello/{i}","count":2000,"max_connections":8}'

start_server() { # $1: database URL
    "$asynclab" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --database-url "$1" > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" > /dev/null && return; sleep 0.2; done
    echo "the server did not start:"; cat "$work/server.log"; exit 1
}

stop_server() {
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
}

measure() { # $1: store name
    for query in "/jobs?label=branch:main&kind=http-fanout&limit=50" \
                 "/experiments/http-fanout/history?metric=latency.p99_ms&label=branch:main&limit=100"; do
        for _ in $(seq "$requests"); do
            curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$query"
        done | python3 -c '
import sys
times = sorted(float(line) * 1000 for line in sys.stdin)
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{sys.argv[1]:<9} {sys.argv[2]:<90} p50 {pick(0.5):6.2f} ms  p99 {pick(0.99):6.2f} ms")' "$1" "$query"
    done
}

echo "== PostgreSQL ($jobs jobs)"
pg_url="$pg_server/asynclab_bench_history_$$"
start_server "$pg_url"
psql -q "$pg_url" <<SQL
insert into job (id, kind, status, params, result, timeout_ms, created_at, started_at, finished_at)
select (lpad(to_hex(1700000000000 + n), 12, '0') || '7000' || '8000' || lpad(to_hex(n), 12, '0'))::uuid,
       'http-fanout', 'succeeded', '$params'::jsonb, '$report'::jsonb, 600000, now(), now(), now()
from generate_series(1, $jobs) as n;
insert into job_label (job_id, key, value)
select id, 'branch', case when random() < 0.1 then 'main' else 'feature-' || (random() * 500)::int end from job;
insert into job_label (job_id, key, value) select id, 'commit', substr(md5(id::text), 1, 7) from job;
analyze;
SQL
measure postgres
stop_server
psql -q "$pg_server/postgres" -c "drop database asynclab_bench_history_$$ with (force)"

echo "== SQLite ($jobs jobs)"
sqlite_file="$work/sqlite/asynclab.db"
start_server "sqlite://$sqlite_file"
stop_server
sqlite3 "$sqlite_file" > /dev/null <<SQL
pragma journal_mode = wal;
with recursive n(i) as (select 1 union all select i + 1 from n where i < $jobs)
insert into job (id, kind, status, params, result, timeout_ms, created_at, started_at, finished_at)
select printf('%012x-7000-8000-%012x', 1700000000000 + i, i), 'http-fanout', 'succeeded', '$params', '$report', 600000,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
from n;
insert into job_label (job_id, key, value)
select id, 'branch', case when abs(random()) % 10 = 0 then 'main' else 'feature-' || (abs(random()) % 500) end from job;
insert into job_label (job_id, key, value) select id, 'commit', substr(hex(randomblob(4)), 1, 7) from job;
analyze;
SQL
start_server "sqlite://$sqlite_file"
measure sqlite
