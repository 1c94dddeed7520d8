-- A launch may name a URL that is POSTed the job's final representation once the job ends.
-- Deliveries are claimed from here by whichever replica is free (the claim moves
-- `webhook_next_at` past the attempt), retried with backoff, and survive restarts.
alter table job add column webhook_url text;
-- `pending` until delivered or given up (`delivered`, `failed`); null without a webhook.
alter table job add column webhook_state text;
alter table job add column webhook_attempts integer not null default 0;
-- When the next attempt is due (null: as soon as the job ends).
alter table job add column webhook_next_at timestamptz;
-- The last attempt: {"at", "status"?, "error"?}.
alter table job add column webhook_last jsonb;

create index job_webhook_pending on job (webhook_next_at) where webhook_state = 'pending';
