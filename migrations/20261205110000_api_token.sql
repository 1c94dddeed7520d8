-- API tokens with roles: only an HMAC of each secret is stored, under a key the replicas share
-- (`token_key`, unless ASYNCLAB_TOKEN_KEY provides it); and which token launched each job.
create table api_token (
    id uuid primary key,
    name text not null,
    role text not null check (role in ('viewer', 'launcher', 'admin')),
    secret_hash bytea not null,
    created_by text not null,
    created_at timestamptz not null,
    expires_at timestamptz,
    revoked_at timestamptz
);

create unique index api_token_active_name on api_token (name) where revoked_at is null;

create table token_key (
    id integer primary key check (id = 1),
    key bytea not null
);

alter table job add column launched_by text;

create index job_launched_by_id on job (launched_by, id);
