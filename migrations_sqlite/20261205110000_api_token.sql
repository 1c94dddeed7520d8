-- API tokens with roles, and which token launched each job. Mirrors
-- migrations/20261205110000_api_token.sql; ids and timestamps are TEXT as in the job table.
create table api_token (
    id text primary key not null,
    name text not null,
    role text not null check (role in ('viewer', 'launcher', 'admin')),
    secret_hash blob not null,
    created_by text not null,
    created_at text not null,
    expires_at text,
    revoked_at text
) strict;

create unique index api_token_active_name on api_token (name) where revoked_at is null;

create table token_key (
    id integer primary key check (id = 1),
    key blob not null
) strict;

alter table job add column launched_by text;

create index job_launched_by_id on job (launched_by, id);
