-- Labels a launch gives a job (branch=main, commit=3f2a9c1…), to filter, compare against a
-- baseline, and keep a job from retention; and the regression gate a launch may ask for.
create table job_label (
    job_id uuid not null references job (id) on delete cascade,
    key text not null,
    value text not null,
    primary key (job_id, key)
);

-- `label=key:value` filters find a label's jobs newest first.
create index job_label_key_value on job_label (key, value, job_id);

-- The baseline job and tolerances a launch named; checked when the job succeeds.
alter table job add column gate jsonb;
