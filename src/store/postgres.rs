//! The PostgreSQL job store: the system of record for teams and production.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{Finish, Inserted, JobQuery, JobStore, NewJob, StoreError, queued_event};
use crate::jobs::{EventKind, Job, JobError, JobEvent, JobId, JobStatus, PendingEvent};

const JOB_COLUMNS: &str = "id, kind, status, params, progress, result, error, timeout_ms, \
                           created_at, started_at, finished_at";

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
            if let Err(error) = Postgres::create_database(url).await {
                if !Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(error).context("cannot create the database");
                }
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL")?;
        sqlx::migrate!("./migrations").run(&pool).await.context("cannot migrate the database")?;
        Ok(PgJobStore { pool })
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

async fn insert_events<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    events: &[JobEvent],
) -> Result<(), StoreError> {
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
async fn append_next_event(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    id: JobId,
    event: PendingEvent,
) -> Result<JobEvent, StoreError> {
    let last: i64 = sqlx::query_scalar("select coalesce(max(seq), 0) from job_event where job_id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let event = event.sequenced(id, last + 1);
    insert_events(&mut **tx, std::slice::from_ref(&event)).await?;
    Ok(event)
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "insert into job (id, kind, status, params, timeout_ms, idempotency_key) \
             values ($1, $2, 'queued', $3, $4, $5) \
             on conflict (idempotency_key) do nothing returning {JOB_COLUMNS}"
        ))
        .bind(job.id)
        .bind(&job.kind)
        .bind(&job.params)
        .bind(i64::try_from(job.timeout_ms)?)
        .bind(&job.idempotency_key)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => {
                let stored = job_from_row(&row)?;
                insert_events(&mut *tx, &[queued_event().sequenced(stored.id, 1)]).await?;
                tx.commit().await?;
                Ok(Inserted { job: stored, created: true })
            }
            None => {
                tx.rollback().await?;
                let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = $1"))
                    .bind(&job.idempotency_key)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(Inserted { job: job_from_row(&row)?, created: false })
            }
        }
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where idempotency_key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("select {JOB_COLUMNS} from job where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
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
        sql.push(" order by id desc limit ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn count_queued(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("select count(*) from job where status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count)?)
    }

    async fn claim_next(&self) -> Result<Option<(Job, i64)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "update job set status = 'running', started_at = now() \
             where id = (select id from job where status = 'queued' order by id \
                         limit 1 for update skip locked) \
             returning {JOB_COLUMNS}"
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let last: i64 = sqlx::query_scalar("select coalesce(max(seq), 0) from job_event where job_id = $1")
            .bind(job.id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((job, last)))
    }

    async fn append_events(&self, events: &[JobEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut *tx, events).await?;
        for (job_id, progress) in super::latest_progress(events) {
            sqlx::query("update job set progress = $2 where id = $1")
                .bind(job_id)
                .bind(progress)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_job(&self, id: JobId, finish: &Finish, events: &[JobEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut *tx, events).await?;
        let progress = super::latest_progress(events).into_iter().find(|(job_id, _)| *job_id == id);
        sqlx::query(
            "update job set status = $2, result = $3, error = $4, finished_at = now(), \
             progress = coalesce($5, progress) where id = $1",
        )
        .bind(id)
        .bind(finish.status.as_str())
        .bind(&finish.result)
        .bind(finish.error.as_ref().map(serde_json::to_value).transpose()?)
        .bind(progress.map(|(_, progress)| progress))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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
        tx.commit().await?;
        Ok(Some(event))
    }

    async fn interrupt_running(&self, error: &JobError) -> Result<Vec<JobEvent>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "update job set status = 'interrupted', finished_at = now(), error = $1 \
             where status = 'running' returning id",
        )
        .bind(serde_json::to_value(error)?)
        .fetch_all(&mut *tx)
        .await?;
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
             where job_id = $1 and seq > $2 order by seq limit $3",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}
