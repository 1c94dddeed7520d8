//! A metric's history: `GET /experiments/{kind}/history?metric=latency.p99_ms&label=branch:main`
//! gives the metric's value in each of the latest succeeded jobs of the kind, oldest first, for
//! trend charts.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::label_query::LabelledQuery;
use super::state::AppState;
use crate::compare::metrics::ReportMetrics;
use crate::error::{ApiError, AppPath, Problem};
use crate::experiments;
use crate::store::{JobQuery, JobStatus};

/// Points when the caller does not say.
const DEFAULT_POINTS: u32 = 100;
/// The most points one query returns.
const MAX_POINTS: u32 = 1000;

/// The metric and the jobs of a history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The metric, a dotted path into the report (`latency.p99_ms`, `achieved_rps`).
    pub metric: String,
    /// The latest jobs to include (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// One job's value of the metric.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryPoint {
    /// The job.
    pub job_id: Uuid,
    /// When it was launched.
    pub created_at: DateTime<Utc>,
    /// Its value of the metric.
    pub value: f64,
}

/// A metric's values over time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    /// The experiment kind.
    pub kind: String,
    /// The metric.
    pub metric: String,
    /// The values, oldest first (jobs whose report lacks the metric are left out).
    pub points: Vec<HistoryPoint>,
}

/// The metric's value in each of the latest succeeded jobs of the kind (filtered by labels),
/// oldest first. An unknown metric is a 422 listing the metrics the reports have.
#[utoipa::path(get, path = "/experiments/{kind}/history", tag = "experiments",
    params(("kind" = String, Path, description = "The experiment kind"), HistoryQuery,
           ("label" = Option<Vec<String>>, Query, explode, description = "Only jobs carrying this label, as `key:value`; repeatable")),
    responses((status = 200, body = History),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such kind"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "An unknown metric (the problem lists the available ones) or a bad label")))]
pub async fn history(
    State(state): State<AppState>,
    AppPath(kind): AppPath<String>,
    LabelledQuery(query, labels): LabelledQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    if experiments::find(&kind).is_none() {
        return Err(ApiError::not_found("kind", format!("no experiment {kind:?}")));
    }
    let limit = query.limit.unwrap_or(DEFAULT_POINTS);
    if !(1..=MAX_POINTS).contains(&limit) {
        return Err(ApiError::bad_request("limit", format!("must be between 1 and {MAX_POINTS}, got {limit}")));
    }
    let jobs = state
        .store
        .list_jobs(&JobQuery { kind: Some(kind.clone()), status: Some(JobStatus::Succeeded), labels, limit, ..JobQuery::default() })
        .await?;
    let mut points = Vec::with_capacity(jobs.len());
    let mut available: Option<Vec<String>> = None;
    for job in &jobs {
        let Some(report) = &job.result else { continue };
        let metrics = ReportMetrics::extract(report);
        match metrics.scalars.get(&query.metric) {
            Some(&value) => points.push(HistoryPoint { job_id: job.id, created_at: job.created_at, value }),
            None if available.is_none() => available = Some(metrics.scalars.keys().cloned().collect()),
            None => {}
        }
    }
    if points.is_empty()
        && let Some(available) = available
    {
        return Err(ApiError::invalid(
            "metric",
            format!("no metric {:?} in {kind} reports; available: {}", query.metric, available.join(", ")),
        ));
    }
    points.reverse();
    Ok(Json(History { kind, metric: query.metric, points }))
}
