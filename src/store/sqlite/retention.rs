//! Retention on SQLite: each batch is one write transaction on the single writer connection, so
//! it is serialized with every other write (one process uses the file: no lock between replicas
//! is needed) and holds the write lock only for one small batch.

use chrono::Utc;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{BEGIN_WRITE, decode_time, encode_id, encode_time};
use crate::store::retention::{KEEP_LABEL, PRUNABLE_STATUSES, PruneBatch, Pruned, Tombstone, take_within};
use crate::store::{JobId, StoreError};

/// The jobs the count limit counts and retention may prune, over `job j`: finished, not a
/// shard, not labelled `keep=true`.
fn counted() -> String {
    let (key, value) = KEEP_LABEL;
    format!(
        "j.finished_at is not null and j.parent_id is null and j.status in ({PRUNABLE_STATUSES}) \
         and not exists (select 1 from job_label l where l.job_id = j.id and l.key = '{key}' and l.value = '{value}')"
    )
}

/// Adds `(?, ?, …)` binding `ids` to `sql`.
fn push_ids(sql: &mut QueryBuilder<'_, Sqlite>, ids: &[String]) {
    sql.push("(");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    sql.push(")");
}

/// Removes one batch (see `JobStore::prune_finished`).
pub(super) async fn prune(writer: &SqlitePool, batch: &PruneBatch) -> Result<Pruned, StoreError> {
    let mut tx = writer.begin_with(BEGIN_WRITE).await?;
    let counted = counted();
    // The newest job past the count limit: it and every job that finished before it go.
    let boundary: Option<(String, String)> = match batch.keep_newest {
        Some(keep) => {
            sqlx::query_as(&format!(
                "select j.finished_at, j.id from job j where {counted} order by j.finished_at desc, j.id desc limit 1 offset ?1"
            ))
            .bind(i64::try_from(keep)?)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let (boundary_at, boundary_id) = boundary.unzip();
    let candidates: Vec<(String, i64)> = sqlx::query_as(&format!(
        "select j.id, (select count(*) from job_event e where e.job_id = j.id) \
                    + (select count(*) from job s join job_event e on e.job_id = s.id where s.parent_id = j.id) \
         from job j where {counted} \
         and not exists (select 1 from job s where s.parent_id = j.id and s.status in ('queued', 'running')) \
         and (j.finished_at < ?1 or j.finished_at < ?2 or (j.finished_at = ?2 and j.id <= ?3)) \
         order by j.finished_at, j.id limit ?4"
    ))
    .bind(batch.finished_before.map(encode_time))
    .bind(boundary_at)
    .bind(boundary_id)
    .bind(i64::from(batch.max_jobs))
    .fetch_all(&mut *tx)
    .await?;
    let ids = take_within(candidates, batch.max_event_rows)?;
    let mut jobs = 0;
    if !ids.is_empty() {
        let mut sql = QueryBuilder::<Sqlite>::new("insert into job_tombstone (id, kind, pruned_at) select id, kind, ");
        sql.push_bind(encode_time(Utc::now())).push(" from job where id in ");
        push_ids(&mut sql, &ids);
        sql.push(" or parent_id in ");
        push_ids(&mut sql, &ids);
        sql.push(" on conflict (id) do nothing");
        sql.build().execute(&mut *tx).await?;
        let mut sql = QueryBuilder::<Sqlite>::new("delete from job where id in ");
        push_ids(&mut sql, &ids);
        jobs = sql.build().execute(&mut *tx).await?.rows_affected();
    }
    let tombstones = sqlx::query(
        "delete from job_tombstone where id in \
         (select id from job_tombstone order by pruned_at desc, id desc limit ?2 offset ?1)",
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
pub(super) async fn find(reader: &SqlitePool, id: JobId) -> Result<Option<Tombstone>, StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("select kind, pruned_at from job_tombstone where id = ?1").bind(encode_id(id)).fetch_optional(reader).await?;
    row.map(|(kind, pruned_at)| Ok(Tombstone { id, kind, pruned_at: decode_time(&pruned_at)? })).transpose()
}
