//! Leases on SQLite: claims and renewals of running jobs, and the rescue of expired ones. One
//! process uses a SQLite file, so its writer connection serializes all of them.

use chrono::Utc;
use sqlx::SqlitePool;

use super::{BEGIN_WRITE, JOB_COLUMNS, append_next_event, decode_id, encode_id, encode_json, encode_time, job_from_row, last_seq};
use crate::store::{Claimant, Renewal, StoreError, rescue_verdict};
use crate::store::{Job, JobEvent, JobId, JobStatus, PendingEvent};

/// Claims the oldest queued job.
pub(super) async fn claim_next(writer: &SqlitePool, claimant: &Claimant) -> Result<Option<(Job, i64)>, StoreError> {
    let now = Utc::now();
    let mut tx = writer.begin_with(BEGIN_WRITE).await?;
    let row = sqlx::query(&format!(
        "update job set status = 'running', started_at = ?1, owner = ?2, lease_until = ?3, \
                attempts = attempts + 1, cancel_requested = 0 \
         where id = (select id from job where status = 'queued' order by id limit 1) \
         returning {JOB_COLUMNS}"
    ))
    .bind(encode_time(now))
    .bind(&claimant.replica)
    .bind(encode_time(now + claimant.lease))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let job = job_from_row(&row)?;
    let last = last_seq(&mut tx, job.id).await?;
    tx.commit().await?;
    Ok(Some((job, last)))
}

/// Extends the leases `claimant` still holds among `ids`.
pub(super) async fn renew(writer: &SqlitePool, claimant: &Claimant, ids: &[JobId]) -> Result<Renewal, StoreError> {
    let lease_until = encode_time(Utc::now() + claimant.lease);
    let mut renewal = Renewal::default();
    let mut tx = writer.begin_with(BEGIN_WRITE).await?;
    for &id in ids {
        let cancel_requested: Option<bool> = sqlx::query_scalar(
            "update job set lease_until = ?3 where id = ?1 and owner = ?2 and status = 'running' \
             returning cancel_requested",
        )
        .bind(encode_id(id))
        .bind(&claimant.replica)
        .bind(&lease_until)
        .fetch_optional(&mut *tx)
        .await?;
        match cancel_requested {
            None => renewal.lost.push(id),
            Some(true) => renewal.cancel_requested.push(id),
            Some(false) => {}
        }
    }
    tx.commit().await?;
    Ok(renewal)
}

/// Re-queues or interrupts running jobs whose lease expired.
pub(super) async fn rescue_expired(writer: &SqlitePool) -> Result<Vec<JobEvent>, StoreError> {
    let now = encode_time(Utc::now());
    let mut tx = writer.begin_with(BEGIN_WRITE).await?;
    let expired: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
        "select id, owner, attempts, max_attempts from job \
         where status = 'running' and lease_until < ?1 order by id",
    )
    .bind(&now)
    .fetch_all(&mut *tx)
    .await?;
    let mut events = Vec::with_capacity(expired.len());
    for (id, owner, attempts, max_attempts) in expired {
        let id = decode_id(&id)?;
        let (status, error) = rescue_verdict(owner.as_deref(), attempts, max_attempts);
        let requeue = status == JobStatus::Queued;
        // The single writer connection serializes this with every renewal.
        sqlx::query(
            "update job set status = ?2, finished_at = ?3, error = ?4, \
                    owner = case when ?5 then null else owner end, lease_until = null where id = ?1",
        )
        .bind(encode_id(id))
        .bind(status.as_str())
        .bind((!requeue).then(|| now.clone()))
        .bind((!requeue).then(|| serde_json::to_value(&error).map(|error| encode_json(&error))).transpose()?)
        .bind(requeue)
        .execute(&mut *tx)
        .await?;
        events.push(append_next_event(&mut tx, id, PendingEvent::status(status, Some(&error))).await?);
    }
    tx.commit().await?;
    Ok(events)
}
