//! Retention, for admins: the policy this replica prunes by and what its last pass did.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;
use crate::jobs::retention::{JOBS_PER_BATCH, MAX_TOMBSTONES, PassReport, RetentionPolicy};

/// The retention policy and this replica's last pass.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionStatus {
    /// Whether a limit is set; off, nothing is ever pruned.
    pub enabled: bool,
    /// Prune jobs that finished more than this many days ago (`ASYNCLAB_RETENTION_DAYS`).
    pub max_age_days: Option<u32>,
    /// Keep only the newest this many finished jobs, `keep=true` ones not counted
    /// (`ASYNCLAB_RETENTION_MAX_JOBS`).
    pub max_jobs: Option<u64>,
    /// How often a pass runs (`ASYNCLAB_RETENTION_INTERVAL_MS`).
    pub interval_ms: u64,
    /// The most jobs one batch (one transaction) removes.
    pub jobs_per_batch: u32,
    /// Tombstones kept so pruned ids answer 410; beyond, the oldest are dropped.
    pub max_tombstones: u64,
    /// What this replica's last pass did; absent before the first or when retention is off.
    /// On a shared PostgreSQL store a pass another replica was running shows as `skipped`.
    pub last_pass: Option<PassReport>,
}

/// The retention policy (jobs labelled `keep=true` are never pruned) and what this replica's
/// last pass did.
#[utoipa::path(get, path = "/retention", tag = "jobs", responses((status = 200, body = RetentionStatus)))]
pub async fn show(State(state): State<AppState>) -> Json<RetentionStatus> {
    let RetentionPolicy { max_age_days, max_jobs } = state.retention.policy();
    Json(RetentionStatus {
        enabled: state.retention.policy().is_on(),
        max_age_days,
        max_jobs,
        interval_ms: u64::try_from(state.retention.interval().as_millis()).unwrap_or(u64::MAX),
        jobs_per_batch: JOBS_PER_BATCH,
        max_tombstones: MAX_TOMBSTONES,
        last_pass: state.retention.last_pass(),
    })
}
