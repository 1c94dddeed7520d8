-- Mirrors migrations/20261205130000_retention.sql: finished jobs by their finish, and the
-- tombstones pruned jobs leave.
create index job_finished on job (finished_at, id) where parent_id is null and finished_at is not null;

create table job_tombstone (
    id text primary key,
    kind text not null,
    pruned_at text not null
) strict, without rowid;

create index job_tombstone_pruned on job_tombstone (pruned_at, id);
