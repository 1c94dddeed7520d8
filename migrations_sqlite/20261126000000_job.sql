-- Jobs and their append-only event log, for a single-node SQLite store.
--
-- Mirrors migrations/20261126000000_job.sql. SQLite has no uuid, jsonb or timestamptz types:
-- ids are TEXT in canonical hyphenated lowercase form (so ordering by id is UUIDv7 time
-- order), JSON documents are TEXT, and timestamps are TEXT in RFC 3339 UTC with microseconds
-- (`2026-11-26T12:34:56.123456Z`), written by the application.
create table job (
    id text primary key not null,
    kind text not null,
    status text not null,
    params text not null,
    progress text,
    result text,
    error text,
    timeout_ms integer not null,
    idempotency_key text unique,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at text,
    finished_at text,
    owner text,
    lease_until text
) strict;

create index job_status_id on job (status, id);
create index job_kind_id on job (kind, id);

create table job_event (
    job_id text not null references job (id) on delete cascade,
    seq integer not null,
    at text not null,
    kind text not null,
    data text not null,
    primary key (job_id, seq)
) strict, without rowid;
