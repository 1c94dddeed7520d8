//! Retention on PostgreSQL: each batch is one transaction under a transaction-scoped advisory
//! lock, so of the replicas sharing the store only one prunes at a time (the others skip the
//! round rather than wait), and the lock goes with the transaction even if its replica dies.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::retention::{KEEP_LABEL, PRUNABLE_STATUSES, PruneBatch, Pruned, Tombstone, take_within};
use crate::store::{JobId, StoreError};

/// The advisory lock retention takes: "asynclab" in ASCII, recognisable in `pg_locks`.
const RETENTION_LOCK: i64 = 0x6173_796e_636c_6162;

/// The jobs the count limit counts and retention may prune, over `job j`: finished, not a
/// shard, not labelled `keep=true`.
fn counted() -> String {
    let (key, value) = KEEP_LABEL;
    format!(
        "j.finished_at is not null and j.parent_id is null and j.status in ({PRUNABLE_STATUSES}) \
         and not exists (select 1 from job_label l where l.job_id = j.id and l.key = '{key}' and l.value = '{value}')"
    )
}

/// Removes one batch (see `JobStore::prune_finished`).
pub(super) async fn prune(pool: &PgPool, batch: &PruneBatch) -> Result<Pruned, StoreError> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(RETENTION_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        tx.rollback().await?;
        return Ok(Pruned::Busy);
    }
    let counted = counted();
    // The newest job past the count limit: it and every job that finished before it go.
    let boundary: Option<(DateTime<Utc>, Uuid)> = match batch.keep_newest {
        Some(keep) => {
            sqlx::query_as(&format!(
                "select j.finished_at, j.id from job j where {counted} order by j.finished_at desc, j.id desc offset $1 limit 1"
            ))
            .bind(i64::try_from(keep)?)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let candidates: Vec<(Uuid, i64)> = sqlx::query_as(&format!(
        "select j.id, (select count(*) from job_event e where e.job_id = j.id) \
                    + (select count(*) from job s join job_event e on e.job_id = s.id where s.parent_id = j.id) \
         from job j where {counted} \
         and not exists (select 1 from job s where s.parent_id = j.id and s.status in ('queued', 'running')) \
         and (j.finished_at < $1 or j.finished_at < $2 or (j.finished_at = $2 and j.id <= $3)) \
         order by j.finished_at, j.id limit $4"
    ))
    .bind(batch.finished_before)
    .bind(boundary.map(|(at, _)| at))
    .bind(boundary.map(|(_, id)| id))
    .bind(i64::from(batch.max_jobs))
    .fetch_all(&mut *tx)
    .await?;
    let ids = take_within(candidates, batch.max_event_rows)?;
    let mut jobs = 0;
    if !ids.is_empty() {
        sqlx::query(
            "insert into job_tombstone (id, kind, pruned_at) \
             select id, kind, now() from job where id = any($1) or parent_id = any($1) on conflict (id) do nothing",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        jobs = sqlx::query("delete from job where id = any($1)").bind(&ids).execute(&mut *tx).await?.rows_affected();
    }
    let tombstones = sqlx::query(
        "delete from job_tombstone where id in \
         (select id from job_tombstone order by pruned_at desc, id desc offset $1 limit $2)",
    )
    .bind(i64::try_from(batch.max_tombstones)?)
    .bind(i64::from(batch.max_jobs))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Pruned::Batch { jobs, tombstones })
}

/// The tombstone of a pruned job.
pub(super) async fn find(pool: &PgPool, id: JobId) -> Result<Option<Tombstone>, StoreError> {
    let row: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("select kind, pruned_at from job_tombstone where id = $1").bind(id).fetch_optional(pool).await?;
    Ok(row.map(|(kind, pruned_at)| Tombstone { id, kind, pruned_at }))
}
