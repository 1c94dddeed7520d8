//! Leases on PostgreSQL: claiming queued jobs with `for update skip locked`, renewing the
//! leases of running jobs, and rescuing the jobs of replicas that stopped renewing.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{JOB_COLUMNS, QUEUED_CHANNEL, append_next_event, job_from_row, notify, notify_stored};
use crate::store::{Claimant, Renewal, StoreError, rescue_verdict};
use crate::store::{Job, JobEvent, JobId, JobStatus, PendingEvent};

/// How long a queued shard waits for a replica not yet running one of its siblings before
/// any replica may take it.
const SHARD_SPREAD_WAIT_MS: i64 = 2_000;
/// The most expired jobs one rescue pass handles.
const RESCUE_BATCH: i64 = 100;

fn lease_ms(claimant: &Claimant) -> Result<i64, StoreError> {
    Ok(i64::try_from(claimant.lease.as_millis())?)
}

/// Claims the oldest queued job that `claimant` may take.
pub(super) async fn claim_next(pool: &PgPool, claimant: &Claimant) -> Result<Option<(Job, i64)>, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<PgRow> = sqlx::query(&format!(
        "update job set status = 'running', started_at = now(), owner = $1, \
                lease_until = now() + $2 * interval '1 millisecond', attempts = attempts + 1, \
                cancel_requested = false \
         where id = (select queued.id from job queued where queued.status = 'queued' \
                     and (queued.parent_id is null \
                          or queued.created_at < now() - $3 * interval '1 millisecond' \
                          or not exists (select 1 from job sibling where sibling.parent_id = queued.parent_id \
                                         and sibling.status = 'running' and sibling.owner = $1)) \
                     order by queued.id limit 1 for update skip locked) \
         returning {JOB_COLUMNS}"
    ))
    .bind(&claimant.replica)
    .bind(lease_ms(claimant)?)
    .bind(SHARD_SPREAD_WAIT_MS)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let job = job_from_row(&row)?;
    let last: i64 =
        sqlx::query_scalar("select coalesce(max(seq), 0) from job_event where job_id = $1").bind(job.id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(Some((job, last)))
}

/// Extends the leases `claimant` still holds among `ids`.
pub(super) async fn renew(pool: &PgPool, claimant: &Claimant, ids: &[JobId]) -> Result<Renewal, StoreError> {
    if ids.is_empty() {
        return Ok(Renewal::default());
    }
    let kept: Vec<(Uuid, bool)> = sqlx::query_as(
        "update job set lease_until = now() + $3 * interval '1 millisecond' \
         where id = any($2) and owner = $1 and status = 'running' returning id, cancel_requested",
    )
    .bind(&claimant.replica)
    .bind(ids)
    .bind(lease_ms(claimant)?)
    .fetch_all(pool)
    .await?;
    Ok(Renewal {
        lost: ids.iter().copied().filter(|id| !kept.iter().any(|(kept, _)| kept == id)).collect(),
        cancel_requested: kept.into_iter().filter(|(_, cancel)| *cancel).map(|(id, _)| id).collect(),
    })
}

/// A running job whose lease expired, as the rescuer read it.
#[derive(sqlx::FromRow)]
struct Expired {
    id: Uuid,
    owner: Option<String>,
    lease_until: DateTime<Utc>,
    attempts: i32,
    max_attempts: i32,
}

/// Re-queues or interrupts running jobs whose lease expired.
pub(super) async fn rescue_expired(pool: &PgPool) -> Result<Vec<JobEvent>, StoreError> {
    let mut tx = pool.begin().await?;
    // Row locks: a concurrent renewal either committed before (the row no longer matches) or
    // waits for this transaction.
    let expired: Vec<Expired> = sqlx::query_as(
        "select id, owner, lease_until, attempts, max_attempts from job \
         where status = 'running' and lease_until < now() order by id limit $1 for update skip locked",
    )
    .bind(RESCUE_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut events = Vec::with_capacity(expired.len());
    let mut requeued = false;
    for job in expired {
        let (status, error) = rescue_verdict(job.owner.as_deref(), job.attempts.into(), job.max_attempts.into());
        let updated = sqlx::query(
            "update job set status = $2, \
                    finished_at = case when $2 = 'queued' then null else now() end, \
                    error = case when $2 = 'queued' then null else $3 end, \
                    owner = case when $2 = 'queued' then null else owner end, \
                    lease_until = null \
             where id = $1 and status = 'running' and owner is not distinct from $4 and lease_until = $5",
        )
        .bind(job.id)
        .bind(status.as_str())
        .bind(serde_json::to_value(&error)?)
        .bind(&job.owner)
        .bind(job.lease_until)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            continue;
        }
        requeued |= status == JobStatus::Queued;
        events.push(append_next_event(&mut tx, job.id, PendingEvent::status(status, Some(&error))).await?);
    }
    notify_stored(&mut *tx, "", &events).await?;
    if requeued {
        notify(&mut *tx, QUEUED_CHANNEL, "").await?;
    }
    tx.commit().await?;
    Ok(events)
}
