//! Job labels on PostgreSQL: one `job_label` row per label, written with the job (in
//! `insert_job`'s statement), read for every job representation, and `label=key:value` filters
//! as indexed semi-joins.

use std::collections::HashMap;

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::store::Job;
use crate::store::StoreError;
use crate::store::labels::{LabelSelector, Labels};

/// Fills in the labels of `jobs` with one query.
pub(super) async fn attach<'c>(executor: impl PgExecutor<'c>, jobs: &mut [Job]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("select job_id, key, value from job_label where job_id = any($1)").bind(ids).fetch_all(executor).await?;
    let mut by_job: HashMap<Uuid, Labels> = HashMap::new();
    for (id, key, value) in rows {
        by_job.entry(id).or_default().insert(key, value);
    }
    for job in jobs {
        job.labels = by_job.remove(&job.id).unwrap_or_default();
    }
    Ok(())
}

/// Adds `and <job carries the label>` for each selector to a query over `job`.
pub(super) fn push_filters(sql: &mut QueryBuilder<'_, Postgres>, selectors: &[LabelSelector]) {
    for selector in selectors {
        sql.push(" and exists (select 1 from job_label label where label.job_id = job.id and label.key = ")
            .push_bind(selector.key.clone())
            .push(" and label.value = ")
            .push_bind(selector.value.clone())
            .push(")");
    }
}
