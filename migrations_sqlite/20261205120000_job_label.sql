-- Mirrors migrations/20261205120000_job_label.sql: a job's labels and its regression gate.
create table job_label (
    job_id text not null references job (id) on delete cascade,
    key text not null,
    value text not null,
    primary key (job_id, key)
) strict, without rowid;

create index job_label_key_value on job_label (key, value, job_id);

alter table job add column gate text;
