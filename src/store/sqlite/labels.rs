//! Job labels on SQLite: one `job_label` row per label, written with the job, read for every
//! job representation, and `label=key:value` filters as indexed semi-joins.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::{decode_id, encode_id};
use crate::store::StoreError;
use crate::store::labels::{LabelSelector, Labels};
use crate::store::{Job, JobId};

/// Stores a new job's labels.
pub(super) async fn insert(conn: &mut SqliteConnection, id: JobId, labels: &Labels) -> Result<(), StoreError> {
    if labels.is_empty() {
        return Ok(());
    }
    let mut sql = QueryBuilder::<Sqlite>::new("insert into job_label (job_id, key, value) ");
    sql.push_values(labels, |mut row, (key, value)| {
        row.push_bind(encode_id(id)).push_bind(key.clone()).push_bind(value.clone());
    });
    sql.build().execute(conn).await?;
    Ok(())
}

/// Fills in the labels of `jobs` with one query.
pub(super) async fn attach(pool: &SqlitePool, jobs: &mut [Job]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut sql = QueryBuilder::<Sqlite>::new("select job_id, key, value from job_label where job_id in (");
    let mut ids = sql.separated(", ");
    for job in jobs.iter() {
        ids.push_bind(encode_id(job.id));
    }
    sql.push(")");
    let rows: Vec<(String, String, String)> = sql.build_query_as().fetch_all(pool).await?;
    let mut by_job: HashMap<JobId, Labels> = HashMap::new();
    for (id, key, value) in rows {
        by_job.entry(decode_id(&id)?).or_default().insert(key, value);
    }
    for job in jobs {
        job.labels = by_job.remove(&job.id).unwrap_or_default();
    }
    Ok(())
}

/// Adds `and <job carries the label>` for each selector to a query over `job`.
pub(super) fn push_filters(sql: &mut QueryBuilder<'_, Sqlite>, selectors: &[LabelSelector]) {
    for selector in selectors {
        sql.push(" and exists (select 1 from job_label label where label.job_id = job.id and label.key = ")
            .push_bind(selector.key.clone())
            .push(" and label.value = ")
            .push_bind(selector.value.clone())
            .push(")");
    }
}
