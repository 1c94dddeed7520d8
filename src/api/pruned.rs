//! A job id the store does not hold: `410 Gone` when retention pruned it (its tombstone says
//! which kind it was and when it went), `404` when no such job ever existed or its tombstone
//! was dropped.

use chrono::SecondsFormat;

use crate::error::ApiError;
use crate::store::{JobId, JobStore};

/// The error for job `id`, named by `field`, that `store` does not hold.
pub async fn missing_job(store: &dyn JobStore, field: &str, id: JobId) -> ApiError {
    match store.find_tombstone(id).await {
        Ok(Some(tombstone)) => ApiError::gone(
            field,
            format!(
                "job {id} ({}) was pruned by retention at {}",
                tombstone.kind,
                tombstone.pruned_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        ),
        Ok(None) => ApiError::not_found(field, format!("no job {id}")),
        Err(error) => error.into(),
    }
}
