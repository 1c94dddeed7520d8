-- Several replicas share the job table: how many times a job was claimed and may be, a cancel
-- asked for on a replica that does not run the job, and the shards a sharded job is split into.
alter table job add column attempts integer not null default 0;
alter table job add column max_attempts integer not null default 1;
alter table job add column cancel_requested boolean not null default false;
alter table job add column parent_id uuid references job (id) on delete cascade;

create index job_running_lease on job (lease_until) where status = 'running';
create index job_parent on job (parent_id) where parent_id is not null;
