//! The SQLite job store: one local file, for a single node (development, demos, small installs).
//!
//! It behaves exactly like the PostgreSQL store. SQLite lacks PostgreSQL's types, so:
//! - ids are TEXT in canonical hyphenated lowercase form, so ordering by id text is UUIDv7
//!   time order;
//! - JSON documents are TEXT;
//! - timestamps are TEXT in RFC 3339 UTC with exactly six fractional digits, the precision of
//!   `timestamptz`, and the store sets them from the application clock.
//!
//! All writes go through a pool of exactly one connection and each runs in a
//! `begin immediate` transaction, so writers are serialized in the process (read-then-write
//! methods such as `claim_next` can never race) and take the file's write lock up front. Reads
//! use a separate pool; in WAL mode they never block the writer nor wait for it.

mod labels;
mod lease;
mod retention;
mod token;
mod webhook;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
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

/// How many connections serve reads.
const READER_CONNECTIONS: u32 = 4;

/// How long a write waits for the single writer connection before failing.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a read waits for a reader connection before failing.
const READER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long SQLite waits on a lock held by another connection (or process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Events per multi-row insert, well below SQLite's limit on bound parameters.
const EVENTS_PER_INSERT: usize = 500;

/// The statement every write transaction starts with: it takes the write lock at once.
const BEGIN_WRITE: &str = "begin immediate";

/// Jobs and events in one SQLite file, through a single-connection writer pool and a reader
/// pool.
#[derive(Clone)]
pub struct SqliteJobStore {
    /// The one connection every write goes through.
    writer: SqlitePool,
    /// The connections reads go through.
    reader: SqlitePool,
}

impl SqliteJobStore {
    /// Opens the database at `path`, creating its directory and the file when they do not
    /// exist, and runs the migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.with_context(|| format!("cannot create the directory {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        sqlx::migrate!("./migrations_sqlite").run(&writer).await.context("cannot migrate the SQLite database")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .acquire_timeout(READER_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        Ok(SqliteJobStore { writer, reader })
    }

    /// The job with its labels read.
    async fn with_labels(&self, job: Option<Job>) -> Result<Option<Job>, StoreError> {
        let mut jobs: Vec<Job> = job.into_iter().collect();
        labels::attach(&self.reader, &mut jobs).await?;
        Ok(jobs.pop())
    }
}

/// A timestamp as stored: RFC 3339 in UTC with exactly six fractional digits (truncated, as
/// `timestamptz` stores them), so stored values have a fixed width and sort by time.
fn encode_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn decode_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .with_context(|| format!("invalid stored timestamp {text:?}"))
        .map_err(StoreError::from)
}

fn decode_optional_time(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(decode_time).transpose()
}

fn encode_json(value: &Value) -> String {
    value.to_string()
}

fn decode_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).with_context(|| format!("invalid stored JSON {text:?}")).map_err(StoreError::from)
}

fn decode_optional_json(text: Option<String>) -> Result<Option<Value>, StoreError> {
    text.as_deref().map(decode_json).transpose()
}

/// An id as stored: canonical hyphenated lowercase.
fn encode_id(id: JobId) -> String {
    id.hyphenated().to_string()
}

fn decode_id(text: &str) -> Result<JobId, StoreError> {
    Uuid::parse_str(text).with_context(|| format!("invalid stored id {text:?}")).map_err(StoreError::from)
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let params: String = row.try_get("params")?;
    let error: Option<String> = row.try_get("error")?;
    let timeout_ms: i64 = row.try_get("timeout_ms")?;
    let created_at: String = row.try_get("created_at")?;
    Ok(Job {
        id: decode_id(&id)?,
        kind: row.try_get("kind")?,
        status: JobStatus::parse(&status).ok_or_else(|| anyhow!("unknown job status {status:?}"))?,
        params: decode_json(&params)?,
        progress: decode_optional_json(row.try_get("progress")?)?,
        result: decode_optional_json(row.try_get("result")?)?,
        error: decode_optional_json(error)?.map(serde_json::from_value::<JobError>).transpose()?,
        timeout_ms: u64::try_from(timeout_ms).unwrap_or(0),
        created_at: decode_time(&created_at)?,
        started_at: decode_optional_time(row.try_get("started_at")?)?,
        finished_at: decode_optional_time(row.try_get("finished_at")?)?,
        replica: row.try_get("owner")?,
        parent_id: row.try_get::<Option<String>, _>("parent_id")?.as_deref().map(decode_id).transpose()?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        launched_by: row.try_get("launched_by")?,
        labels: Default::default(),
        gate: decode_optional_json(row.try_get("gate")?)?.map(serde_json::from_value).transpose()?,
        webhook: crate::store::webhook::from_columns(
            row.try_get("webhook_url")?,
            row.try_get("webhook_state")?,
            row.try_get("webhook_attempts")?,
            decode_optional_json(row.try_get("webhook_last")?)?,
        )?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<JobEvent, StoreError> {
    let job_id: String = row.try_get("job_id")?;
    let at: String = row.try_get("at")?;
    let kind: String = row.try_get("kind")?;
    let data: String = row.try_get("data")?;
    Ok(JobEvent {
        job_id: decode_id(&job_id)?,
        seq: row.try_get("seq")?,
        at: decode_time(&at)?,
        kind: EventKind::parse(&kind).ok_or_else(|| anyhow!("unknown event kind {kind:?}"))?,
        data: decode_json(&data)?,
    })
}

async fn insert_events(conn: &mut SqliteConnection, events: &[JobEvent]) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut sql = QueryBuilder::<Sqlite>::new("insert into job_event (job_id, seq, at, kind, data) ");
        sql.push_values(chunk, |mut row, event| {
            row.push_bind(encode_id(event.job_id))
                .push_bind(event.seq)
                .push_bind(encode_time(event.at))
                .push_bind(event.kind.as_str())
                .push_bind(encode_json(&event.data));
        });
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn last_seq(conn: &mut SqliteConnection, id: JobId) -> Result<i64, StoreError> {
    let last: i64 = sqlx::query_scalar("select coalesce(max(seq), 0) from job_event where job_id = ?1")
        .bind(encode_id(id))
        .fetch_one(&mut *conn)
        .await?;
    Ok(last)
}

/// Appends one event after the job's last, inside the caller's transaction.
async fn append_next_event(conn: &mut SqliteConnection, id: JobId, event: PendingEvent) -> Result<JobEvent, StoreError> {
    let last = last_seq(conn, id).await?;
    let event = event.sequenced(id, last + 1);
    insert_events(conn, std::slice::from_ref(&event)).await?;
    Ok(event)
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_job(&self, job: NewJob) -> Result<Inserted, StoreError> {
        let timeout_ms = i64::try_from(job.timeout_ms)?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let row = sqlx::query(&format!(
            "insert into job (id, kind, status, params, timeout_ms, idempotency_key, created_at, parent_id, max_attempts, launched_by, gate, \
                              webhook_url, webhook_state) \
             values (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, coalesce(?9, (select launched_by from job where id = ?7)), ?10, \
                     ?11, case when ?11 is null then null else 'pending' end) \
             on conflict (idempotency_key) do nothing returning {JOB_COLUMNS}"
        ))
        .bind(encode_id(job.id))
        .bind(&job.kind)
        .bind(encode_json(&job.params))
        .bind(timeout_ms)
        .bind(&job.idempotency_key)
        .bind(encode_time(Utc::now()))
        .bind(job.parent_id.map(encode_id))
        .bind(i64::from(job.max_attempts))
        .bind(&job.launched_by)
        .bind(job.gate.as_ref().map(serde_json::to_value).transpose()?.as_ref().map(encode_json))
        .bind(&job.webhook_url)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => {
                let mut stored = job_from_row(&row)?;
                labels::insert(&mut tx, stored.id, &job.labels).await?;
                stored.labels = job.labels;
                insert_events(&mut tx, &[queued_event().sequenced(stored.id, 1)]).await?;
                tx.commit().await?;
                Ok(Inserted { job: stored, created: true })
            }
            None => {
                let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = ?1"))
                    .bind(&job.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.rollback().await?;
                Ok(Inserted { job: self.with_labels(Some(job_from_row(&row)?)).await?.expect("the job was just read"), created: false })
            }
        }
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = ?1"))
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        self.with_labels(row.as_ref().map(job_from_row).transpose()?).await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row =
            sqlx::query(&format!("select {JOB_COLUMNS} from job where id = ?1")).bind(encode_id(id)).fetch_optional(&self.reader).await?;
        self.with_labels(row.as_ref().map(job_from_row).transpose()?).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!("select {JOB_COLUMNS} from job where true"));
        if let Some(kind) = &query.kind {
            sql.push(" and kind = ").push_bind(kind.clone());
        }
        if let Some(status) = query.status {
            sql.push(" and status = ").push_bind(status.as_str());
        }
        if let Some(before) = query.before {
            sql.push(" and id < ").push_bind(encode_id(before));
        }
        if let Some(parent) = query.parent {
            sql.push(" and parent_id = ").push_bind(encode_id(parent));
        }
        if let Some(launched_by) = &query.launched_by {
            sql.push(" and launched_by = ").push_bind(launched_by.clone());
        }
        labels::push_filters(&mut sql, &query.labels);
        sql.push(" order by id desc limit ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.reader).await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
        labels::attach(&self.reader, &mut jobs).await?;
        Ok(jobs)
    }

    async fn count_queued(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("select count(*) from job where status = 'queued'").fetch_one(&self.reader).await?;
        Ok(u64::try_from(count)?)
    }

    async fn claim_next(&self, claimant: &Claimant) -> Result<Option<(Job, i64)>, StoreError> {
        lease::claim_next(&self.writer, claimant).await
    }

    async fn renew_leases(&self, claimant: &Claimant, ids: &[JobId]) -> Result<Renewal, StoreError> {
        lease::renew(&self.writer, claimant, ids).await
    }

    async fn rescue_expired(&self) -> Result<Vec<JobEvent>, StoreError> {
        lease::rescue_expired(&self.writer).await
    }

    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query("update job set cancel_requested = 1 where id = ?1 and status = 'running'")
            .bind(encode_id(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn append_events(&self, replica: &str, events: &[JobEvent]) -> Result<Vec<JobId>, StoreError> {
        let mut job_ids: Vec<JobId> = events.iter().map(|event| event.job_id).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let mut dropped = Vec::new();
        for &id in &job_ids {
            let owned: Option<i64> = sqlx::query_scalar("select 1 from job where id = ?1 and status = 'running' and owner = ?2")
                .bind(encode_id(id))
                .bind(replica)
                .fetch_optional(&mut *tx)
                .await?;
            if owned.is_none() {
                dropped.push(id);
            }
        }
        let kept: Vec<JobEvent> = events.iter().filter(|event| !dropped.contains(&event.job_id)).cloned().collect();
        insert_events(&mut tx, &kept).await?;
        for (job_id, progress) in super::latest_progress(&kept) {
            sqlx::query("update job set progress = ?2 where id = ?1")
                .bind(encode_id(job_id))
                .bind(encode_json(&progress))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }

    async fn finish_job(&self, replica: &str, id: JobId, finish: &Finish, events: &[JobEvent]) -> Result<bool, StoreError> {
        let error = finish.error.as_ref().map(serde_json::to_value).transpose()?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let progress = super::latest_progress(events).into_iter().find(|(job_id, _)| *job_id == id);
        let updated = sqlx::query(
            "update job set status = ?2, result = ?3, error = ?4, finished_at = ?5, lease_until = null, \
             progress = coalesce(?6, progress) where id = ?1 and status = 'running' and owner = ?7",
        )
        .bind(encode_id(id))
        .bind(finish.status.as_str())
        .bind(finish.result.as_ref().map(encode_json))
        .bind(error.as_ref().map(encode_json))
        .bind(encode_time(Utc::now()))
        .bind(progress.map(|(_, progress)| encode_json(&progress)))
        .bind(replica)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel_queued(&self, id: JobId) -> Result<Option<JobEvent>, StoreError> {
        let error = JobError { kind: "cancelled".into(), message: "cancelled before it started".into() };
        let error_json = serde_json::to_value(&error)?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "update job set status = 'cancelled', finished_at = ?2, error = ?3 \
             where id = ?1 and status = 'queued'",
        )
        .bind(encode_id(id))
        .bind(encode_time(Utc::now()))
        .bind(encode_json(&error_json))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let event = append_next_event(&mut tx, id, PendingEvent::status(JobStatus::Cancelled, Some(&error))).await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    /// Every running job: one process uses a SQLite file, so at its start none can be alive.
    async fn interrupt_orphans(&self, _replica: &str, error: &JobError) -> Result<Vec<JobEvent>, StoreError> {
        let error_json = serde_json::to_value(error)?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "update job set status = 'interrupted', finished_at = ?1, error = ?2, lease_until = null \
             where status = 'running' returning id",
        )
        .bind(encode_time(Utc::now()))
        .bind(encode_json(&error_json))
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = ids.iter().map(|id| decode_id(id)).collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        let mut events = Vec::with_capacity(ids.len());
        for id in ids {
            let status = PendingEvent::status(JobStatus::Interrupted, Some(error));
            events.push(append_next_event(&mut tx, id, status).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    async fn events_after(&self, id: JobId, after: i64, limit: u32) -> Result<Vec<JobEvent>, StoreError> {
        let rows = sqlx::query(
            "select job_id, seq, at, kind, data from job_event \
             where job_id = ?1 and seq > ?2 order by seq limit ?3",
        )
        .bind(encode_id(id))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn prune_finished(&self, batch: &PruneBatch) -> Result<Pruned, StoreError> {
        retention::prune(&self.writer, batch).await
    }

    async fn find_tombstone(&self, id: JobId) -> Result<Option<Tombstone>, StoreError> {
        retention::find(&self.reader, id).await
    }

    fn listen(&self, _tracker: &TaskTracker, _stop: CancellationToken) -> Option<mpsc::Receiver<StoreSignal>> {
        None
    }
}

#[cfg(test)]
mod tests;
