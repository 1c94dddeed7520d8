-- Retention: finished jobs are found oldest first by their finish, and a pruned job leaves a
-- tombstone (id, kind, when) so its id answers 410 Gone rather than 404; tombstones are bounded
-- too, the oldest dropped first.
create index job_finished on job (finished_at, id) where parent_id is null and finished_at is not null;

create table job_tombstone (
    id uuid primary key,
    kind text not null,
    pruned_at timestamptz not null
);

create index job_tombstone_pruned on job_tombstone (pruned_at, id);
