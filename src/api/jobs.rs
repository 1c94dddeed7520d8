//! Jobs: list, show, cancel.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::label_query::LabelledQuery;
use super::pruned::missing_job;
use crate::api::auth::Principal;
use crate::api::state::AppState;
use crate::error::{ApiError, AppPath, Problem};
use crate::jobs::runner::CancelOutcome;
use crate::jobs::{Job, JobId, JobStatus};
use crate::store::JobQuery;
use crate::store::token::Role;
use uuid::Uuid;

/// Jobs per page when the caller does not say.
const DEFAULT_PAGE: u32 = 50;
/// The largest page.
const MAX_PAGE: u32 = 200;
/// How long a cancel waits for a running job to record its end before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Filters and paging of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs of this experiment kind.
    pub kind: Option<String>,
    /// Only jobs in this status.
    #[param(inline)]
    pub status: Option<JobStatus>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Jobs per page (1 to 200, default 50).
    pub limit: Option<u32>,
    /// Only jobs launched by the token of this name (`anonymous`: without a token).
    pub launched_by: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Lists jobs, newest first, with optional kind, status and label filters and cursor paging.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    params(ListQuery,
           ("label" = Option<Vec<String>>, Query, explode, description = "Only jobs carrying this label, as `key:value`; repeat to require several (at most 8)")),
    responses((status = 200, body = JobPage),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "A malformed label filter")))]
pub async fn list(
    State(state): State<AppState>,
    LabelledQuery(query, labels): LabelledQuery<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request("limit", format!("must be between 1 and {MAX_PAGE}, got {limit}")));
    }
    let mut jobs = state
        .store
        .list_jobs(&JobQuery {
            kind: query.kind,
            status: query.status,
            before: query.cursor,
            parent: None,
            launched_by: query.launched_by,
            labels,
            limit: limit + 1,
        })
        .await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = if more { jobs.last().map(|job| job.id) } else { None };
    Ok(Json(JobPage { jobs, next_cursor }))
}

/// One job: status, parameters, progress, timestamps and, once finished, its report or error.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, body = Job),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json", description = "The job was pruned by retention (the reason says when)")))]
pub async fn show(State(state): State<AppState>, AppPath(id): AppPath<JobId>) -> Result<Json<Job>, ApiError> {
    match state.store.get_job(id).await? {
        Some(job) => Ok(Json(job)),
        None => Err(missing_job(state.store.as_ref(), "id", id).await),
    }
}

/// Cancels a job: a queued one never starts; a running one is stopped (its work ends) and
/// recorded `cancelled`. Answers with the job as it is then. A launcher may cancel the jobs it
/// launched, an admin any job.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, body = Job, description = "The job after the cancel (normally `cancelled`)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "A launcher's token did not launch the job"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The job already ended"),
              (status = 410, body = Problem, content_type = "application/problem+json", description = "The job was pruned by retention (the reason says when)")))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    AppPath(id): AppPath<JobId>,
) -> Result<Json<Job>, ApiError> {
    if caller.role < Role::Admin {
        let Some(job) = state.store.get_job(id).await? else {
            return Err(missing_job(state.store.as_ref(), "id", id).await);
        };
        if job.launched_by.as_deref() != Some(caller.name.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "the token {:?} ({}) may cancel only the jobs it launched; this one was launched by {:?}",
                caller.name,
                caller.role.as_str(),
                job.launched_by.unwrap_or_default()
            )));
        }
    }
    match state.runner.cancel(id, CANCEL_WAIT).await? {
        CancelOutcome::NotFound => return Err(missing_job(state.store.as_ref(), "id", id).await),
        CancelOutcome::AlreadyFinished(status) => {
            return Err(ApiError::conflict("status", format!("the job already ended: {}", status.as_str())));
        }
        CancelOutcome::CancelledQueued | CancelOutcome::Stopping => {}
    }
    match state.store.get_job(id).await? {
        Some(job) => Ok(Json(job)),
        None => Err(missing_job(state.store.as_ref(), "id", id).await),
    }
}
