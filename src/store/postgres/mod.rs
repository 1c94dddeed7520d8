//! The PostgreSQL job store: the system of record for teams and production, shared by every
//! replica. Jobs are claimed under leases (`lease.rs`) and each write that other replicas must
//! hear of sends a `NOTIFY` in its transaction (`listener.rs` receives them).

mod labels;
mod lease;
mod listener;
mod retention;
mod token;
mod webhook;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{Claimant, Finish, Inserted, JobQuery, JobStore, NewJob, Renewal, StoreError, StoreSignal, queued_event};
use crate::store::retention::{PruneBatch, Pruned, Tombstone};
use crate::store::{EventKind, Job, JobError, JobEvent, JobId, JobStatus, PendingEvent};

const JOB_COLUMNS: &str = "id, kind, status, params, progress, result, error, timeout_ms, \
                           created_at, started_at, finished_at, owner, parent_id, attempts, launched_by, gate, \
                           webhook_url, webhook_state, webhook_attempts, webhook_last";

/// The channel whose payload `<job id> <seq> <replica>` says a job's events up to seq are stored.
const EVENTS_CHANNEL: &str = "asynclab_events";
/// The channel that says a job was queued.
const QUEUED_CHANNEL: &str = "asynclab_queued";
/// The channel whose payload, a job id, asks the job's replica to cancel it.
const CANCEL_CHANNEL: &str = "asynclab_cancel";

/// Jobs and events in PostgreSQL, through one shared connection pool.
#[derive(Clone)]
pub struct PgJobStore {
    /// The pool every request and the event writer share.
    pool: PgPool,
}

impl PgJobStore {
    /// Connects to `url`, creating the database when it does not exist, and runs the
    /// migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
        if !Postgres::database_exists(url).await.context("cannot reach PostgreSQL")? {
            // Another process may create it at the same moment; only a failure to find it after counts.
            if let Err(error) = Postgres::create_database(url).await
                && !Postgres::database_exists(url).await.unwrap_or(false)
            {
                return Err(error).context("cannot create the database");
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each use: it cost a round trip per query. A connection found dead
            // fails that one query as unreachable (`503` with `Retry-After` at the API, a retry
            // in the event writer) and is dropped from the pool.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL")?;
        sqlx::migrate!("./migrations").run(&pool).await.context("cannot migrate the database")?;
        Ok(PgJobStore { pool })
    }

    /// The job with its labels read.
    async fn with_labels(&self, job: Option<Job>) -> Result<Option<Job>, StoreError> {
        let mut jobs: Vec<Job> = job.into_iter().collect();
        labels::attach(&self.pool, &mut jobs).await?;
        Ok(jobs.pop())
    }
}

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    let status: String = row.try_get("status")?;
    let error: Option<Value> = row.try_get("error")?;
    let timeout_ms: i64 = row.try_get("timeout_ms")?;
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: JobStatus::parse(&status).ok_or_else(|| anyhow!("unknown job status {status:?}"))?,
        params: row.try_get("params")?,
        progress: row.try_get("progress")?,
        result: row.try_get("result")?,
        error: error.map(serde_json::from_value::<JobError>).transpose()?,
        timeout_ms: u64::try_from(timeout_ms).unwrap_or(0),
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        replica: row.try_get("owner")?,
        parent_id: row.try_get("parent_id")?,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        launched_by: row.try_get("launched_by")?,
        labels: Default::default(),
        gate: row.try_get::<Option<Value>, _>("gate")?.map(serde_json::from_value).transpose()?,
        webhook: crate::store::webhook::from_columns(
            row.try_get("webhook_url")?,
            row.try_get("webhook_state")?,
            row.try_get::<i32, _>("webhook_attempts")?.into(),
            row.try_get("webhook_last")?,
        )?,
    })
}

fn event_from_row(row: &PgRow) -> Result<JobEvent, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(JobEvent {
        job_id: row.try_get("job_id")?,
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        kind: EventKind::parse(&kind).ok_or_else(|| anyhow!("unknown event kind {kind:?}"))?,
        data: row.try_get("data")?,
    })
}

async fn insert_events<'c>(executor: impl sqlx::PgExecutor<'c>, events: &[JobEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let job_ids: Vec<Uuid> = events.iter().map(|event| event.job_id).collect();
    let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
    let ats: Vec<DateTime<Utc>> = events.iter().map(|event| event.at).collect();
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    let data: Vec<Value> = events.iter().map(|event| event.data.clone()).collect();
    sqlx::query(
        "insert into job_event (job_id, seq, at, kind, data) \
         select * from unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::jsonb[])",
    )
    .bind(job_ids)
    .bind(seqs)
    .bind(ats)
    .bind(kinds)
    .bind(data)
    .execute(executor)
    .await?;
    Ok(())
}

/// Appends one event after the job's last, inside the caller's transaction.
async fn append_next_event(tx: &mut sqlx::Transaction<'_, Postgres>, id: JobId, event: PendingEvent) -> Result<JobEvent, StoreError> {
    let last: i64 =
        sqlx::query_scalar("select coalesce(max(seq), 0) from job_event where job_id = $1").bind(id).fetch_one(&mut **tx).await?;
    let event = event.sequenced(id, last + 1);
    insert_events(&mut **tx, std::slice::from_ref(&event)).await?;
    Ok(event)
}

/// Tells every replica, when the transaction commits, that these events are stored.
async fn notify_stored<'c>(executor: impl sqlx::PgExecutor<'c>, replica: &str, events: &[JobEvent]) -> Result<(), StoreError> {
    let mut last: Vec<(JobId, i64)> = Vec::new();
    for event in events {
        match last.iter_mut().find(|(job_id, _)| *job_id == event.job_id) {
            Some(slot) => slot.1 = slot.1.max(event.seq),
            None => last.push((event.job_id, event.seq)),
        }
    }
    if last.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = last.iter().map(|(job_id, seq)| format!("{job_id} {seq} {replica}")).collect();
    sqlx::query("select pg_notify($1, payload) from unnest($2::text[]) as payload")
        .bind(EVENTS_CHANNEL)
        .bind(payloads)
        .execute(executor)
        .await?;
    Ok(())
}

/// Tells every replica, when the transaction commits, that `channel` has news (`payload`).
async fn notify<'c>(executor: impl sqlx::PgExecutor<'c>, channel: &str, payload: &str) -> Result<(), StoreError> {
    sqlx::query("select pg_notify($1, $2)").bind(channel).bind(payload).execute(executor).await?;
    Ok(())
}

#[async_trait]
impl JobStore for PgJobStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_job(&self, job: NewJob) -> Result<Inserted, StoreError> {
        // One statement, so one round trip and one commit: the job, its labels, its `queued`
        // event and the wake-up of the dispatchers, all or nothing (a conflicting idempotency
        // key inserts no job, and so nothing else).
        let queued = queued_event().sequenced(job.id, 1);
        let keys: Vec<&str> = job.labels.keys().map(String::as_str).collect();
        let values: Vec<&str> = job.labels.values().map(String::as_str).collect();
        let row = sqlx::query(&format!(
            "with inserted as ( \
                 insert into job (id, kind, status, params, timeout_ms, idempotency_key, parent_id, max_attempts, launched_by, gate, \
                                  webhook_url, webhook_state) \
                 values ($1, $2, 'queued', $3, $4, $5, $6, $7, coalesce($8, (select launched_by from job where id = $6)), $9, \
                         $10, case when $10 is null then null else 'pending' end) \
                 on conflict (idempotency_key) do nothing returning {JOB_COLUMNS}), \
             labelled as ( \
                 insert into job_label (job_id, key, value) \
                 select inserted.id, label.key, label.value from inserted, unnest($11::text[], $12::text[]) as label(key, value)), \
             queued as ( \
                 insert into job_event (job_id, seq, at, kind, data) select inserted.id, 1, $13, $14, $15 from inserted), \
             woken as (select pg_notify('{QUEUED_CHANNEL}', '') from inserted) \
             select inserted.*, (select count(*) from woken) as woken from inserted"
        ))
        .bind(job.id)
        .bind(&job.kind)
        .bind(&job.params)
        .bind(i64::try_from(job.timeout_ms)?)
        .bind(&job.idempotency_key)
        .bind(job.parent_id)
        .bind(i32::try_from(job.max_attempts)?)
        .bind(&job.launched_by)
        .bind(job.gate.as_ref().map(serde_json::to_value).transpose()?)
        .bind(&job.webhook_url)
        .bind(keys)
        .bind(values)
        .bind(queued.at)
        .bind(queued.kind.as_str())
        .bind(&queued.data)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let mut stored = job_from_row(&row)?;
                stored.labels = job.labels;
                Ok(Inserted { job: stored, created: true })
            }
            None => {
                let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = $1"))
                    .bind(&job.idempotency_key)
                    .fetch_one(&self.pool)
                    .await?;
                let mut existing = [job_from_row(&row)?];
                labels::attach(&self.pool, &mut existing).await?;
                let [existing] = existing;
                Ok(Inserted { job: existing, created: false })
            }
        }
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row =
            sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = $1")).bind(key).fetch_optional(&self.pool).await?;
        self.with_labels(row.as_ref().map(job_from_row).transpose()?).await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where id = $1")).bind(id).fetch_optional(&self.pool).await?;
        self.with_labels(row.as_ref().map(job_from_row).transpose()?).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(format!("select {JOB_COLUMNS} from job where true"));
        if let Some(kind) = &query.kind {
            sql.push(" and kind = ").push_bind(kind.clone());
        }
        if let Some(status) = query.status {
            sql.push(" and status = ").push_bind(status.as_str());
        }
        if let Some(before) = query.before {
            sql.push(" and id < ").push_bind(before);
        }
        if let Some(parent) = query.parent {
            sql.push(" and parent_id = ").push_bind(parent);
        }
        if let Some(launched_by) = &query.launched_by {
            sql.push(" and launched_by = ").push_bind(launched_by.clone());
        }
        labels::push_filters(&mut sql, &query.labels);
        sql.push(" order by id desc limit ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
        labels::attach(&self.pool, &mut jobs).await?;
        Ok(jobs)
    }

    async fn count_queued(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("select count(*) from job where status = 'queued'").fetch_one(&self.pool).await?;
        Ok(u64::try_from(count)?)
    }

    async fn claim_next(&self, claimant: &Claimant) -> Result<Option<(Job, i64)>, StoreError> {
        lease::claim_next(&self.pool, claimant).await
    }

    async fn renew_leases(&self, claimant: &Claimant, ids: &[JobId]) -> Result<Renewal, StoreError> {
        lease::renew(&self.pool, claimant, ids).await
    }

    async fn rescue_expired(&self) -> Result<Vec<JobEvent>, StoreError> {
        lease::rescue_expired(&self.pool).await
    }

    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated =
            sqlx::query("update job set cancel_requested = true where id = $1 and status = 'running'").bind(id).execute(&mut *tx).await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        notify(&mut *tx, CANCEL_CHANNEL, &id.to_string()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn append_events(&self, replica: &str, events: &[JobEvent]) -> Result<Vec<JobId>, StoreError> {
        let mut job_ids: Vec<JobId> = events.iter().map(|event| event.job_id).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let mut tx = self.pool.begin().await?;
        // A share lock: a rescuer's update waits for these events, and then sees them.
        let owned: Vec<Uuid> = sqlx::query_scalar("select id from job where id = any($1) and status = 'running' and owner = $2 for share")
            .bind(&job_ids)
            .bind(replica)
            .fetch_all(&mut *tx)
            .await?;
        let kept: Vec<JobEvent> = events.iter().filter(|event| owned.contains(&event.job_id)).cloned().collect();
        insert_events(&mut *tx, &kept).await?;
        for (job_id, progress) in super::latest_progress(&kept) {
            sqlx::query("update job set progress = $2 where id = $1").bind(job_id).bind(progress).execute(&mut *tx).await?;
        }
        notify_stored(&mut *tx, replica, &kept).await?;
        tx.commit().await?;
        Ok(job_ids.into_iter().filter(|id| !owned.contains(id)).collect())
    }

    async fn finish_job(&self, replica: &str, id: JobId, finish: &Finish, events: &[JobEvent]) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let progress = super::latest_progress(events).into_iter().find(|(job_id, _)| *job_id == id);
        let updated = sqlx::query(
            "update job set status = $2, result = $3, error = $4, finished_at = now(), lease_until = null, \
             progress = coalesce($5, progress) where id = $1 and status = 'running' and owner = $6",
        )
        .bind(id)
        .bind(finish.status.as_str())
        .bind(&finish.result)
        .bind(finish.error.as_ref().map(serde_json::to_value).transpose()?)
        .bind(progress.map(|(_, progress)| progress))
        .bind(replica)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_events(&mut *tx, events).await?;
        notify_stored(&mut *tx, replica, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel_queued(&self, id: JobId) -> Result<Option<JobEvent>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let error = JobError { kind: "cancelled".into(), message: "cancelled before it started".into() };
        let updated = sqlx::query(
            "update job set status = 'cancelled', finished_at = now(), error = $2 \
             where id = $1 and status = 'queued'",
        )
        .bind(id)
        .bind(serde_json::to_value(&error)?)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let event = append_next_event(&mut tx, id, PendingEvent::status(JobStatus::Cancelled, Some(&error))).await?;
        notify_stored(&mut *tx, "", std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    async fn interrupt_orphans(&self, replica: &str, error: &JobError) -> Result<Vec<JobEvent>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "update job set status = 'interrupted', finished_at = now(), error = $1, lease_until = null \
             where status = 'running' and (owner = $2 or owner is null) returning id",
        )
        .bind(serde_json::to_value(error)?)
        .bind(replica)
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::with_capacity(ids.len());
        for id in ids {
            let status = PendingEvent::status(JobStatus::Interrupted, Some(error));
            events.push(append_next_event(&mut tx, id, status).await?);
        }
        notify_stored(&mut *tx, replica, &events).await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn events_after(&self, id: JobId, after: i64, limit: u32) -> Result<Vec<JobEvent>, StoreError> {
        let rows = sqlx::query(
            "select job_id, seq, at, kind, data from job_event \
             where job_id = $1 and seq > $2 order by seq limit $3",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn prune_finished(&self, batch: &PruneBatch) -> Result<Pruned, StoreError> {
        retention::prune(&self.pool, batch).await
    }

    async fn find_tombstone(&self, id: JobId) -> Result<Option<Tombstone>, StoreError> {
        retention::find(&self.pool, id).await
    }

    fn listen(&self, tracker: &TaskTracker, stop: CancellationToken) -> Option<mpsc::Receiver<StoreSignal>> {
        Some(listener::start(self.pool.clone(), tracker, stop))
    }
}
