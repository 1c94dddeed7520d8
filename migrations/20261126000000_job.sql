-- Jobs and their append-only event log: the system of record for every experiment run.
create table job (
    id uuid primary key,
    kind text not null,
    status text not null,
    params jsonb not null,
    progress jsonb,
    result jsonb,
    error jsonb,
    timeout_ms bigint not null,
    idempotency_key text unique,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    owner text,
    lease_until timestamptz
);

create index job_status_id on job (status, id);
create index job_kind_id on job (kind, id);

create table job_event (
    job_id uuid not null references job (id) on delete cascade,
    seq bigint not null,
    at timestamptz not null,
    kind text not null,
    data jsonb not null,
    primary key (job_id, seq)
);
