-- Mirrors migrations/20261126120000_replica.sql: claim attempts, a cancel asked for on another
-- replica (never the case with one process, kept for one schema), and a sharded job's shards.
alter table job add column attempts integer not null default 0;
alter table job add column max_attempts integer not null default 1;
alter table job add column cancel_requested integer not null default 0;
alter table job add column parent_id text references job (id) on delete cascade;

create index job_running_lease on job (lease_until) where status = 'running';
create index job_parent on job (parent_id) where parent_id is not null;
