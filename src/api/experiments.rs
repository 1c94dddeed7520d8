//! The catalogue of experiment kinds and launching one.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::baseline::gate_for_launch;
use super::launch_options::{LaunchOptions, take_launch_options};
use crate::api::auth::Principal;
use crate::api::state::AppState;
use crate::error::{ApiError, AppPath, AppQuery, JsonBody};
use crate::experiments::{self, Availability, ExperimentEntry};
use crate::store::NewJob;
use crate::validation::FieldErrors;

/// The header that makes a launch idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a launch answered with the job an earlier request created.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Suggested wait, in seconds, when the queue is full.
const QUEUE_FULL_RETRY_AFTER_S: u64 = 5;

/// One experiment kind in the catalogue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExperimentInfo {
    /// The kind's name.
    pub kind: String,
    /// What it shows.
    pub summary: String,
    /// Where to POST its parameters.
    pub endpoint: String,
    /// Whether it can run on this server.
    pub available: bool,
    /// Why not, and which setting provides what it needs.
    pub unavailable_reason: Option<String>,
    /// The JSON Schema of its parameters.
    #[schema(value_type = Object)]
    pub params_schema: Value,
    /// Parameters for a good first run.
    #[schema(value_type = Object)]
    pub example: Value,
}

fn describe(entry: &ExperimentEntry, state: &AppState) -> ExperimentInfo {
    let availability = (entry.availability)(&state.services);
    ExperimentInfo {
        kind: entry.kind.into(),
        summary: entry.summary.into(),
        endpoint: format!("/experiments/{}", entry.kind),
        available: availability == Availability::Available,
        unavailable_reason: match availability {
            Availability::Available => None,
            Availability::Unavailable(reason) => Some(reason),
        },
        params_schema: serde_json::to_value((entry.params_schema)()).unwrap_or(Value::Null),
        example: (entry.example)(),
    }
}

/// Every experiment kind: what it shows, its parameter schema, an example, and availability.
#[utoipa::path(get, path = "/experiments", tag = "experiments",
    responses((status = 200, body = Vec<ExperimentInfo>)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<ExperimentInfo>> {
    Json(experiments::registry().iter().map(|entry| describe(entry, &state)).collect())
}

/// Options of a launch that are about the job, not the experiment.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LaunchQuery {
    /// The job's time limit in milliseconds (default and maximum are server settings).
    pub timeout_ms: Option<u64>,
}

/// Validates the parameters, records a queued job and answers 202 with it at once.
#[tracing::instrument(skip_all, fields(experiment.kind = %kind))]
pub async fn launch(
    State(state): State<AppState>,
    AppPath(kind): AppPath<String>,
    AppQuery(query): AppQuery<LaunchQuery>,
    headers: HeaderMap,
    Extension(caller): Extension<Principal>,
    JsonBody(mut raw): JsonBody,
) -> Result<Response, ApiError> {
    if state.stopping.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down; no new jobs".into()));
    }
    let entry = experiments::find(&kind).ok_or_else(|| {
        let known: Vec<&str> = experiments::registry().iter().map(|entry| entry.kind).collect();
        ApiError::not_found("kind", format!("no experiment {kind:?}; known kinds: {}", known.join(", ")))
    })?;
    if let Availability::Unavailable(reason) = (entry.availability)(&state.services) {
        return Err(ApiError::conflict("kind", format!("{kind} is unavailable on this server: {reason}")));
    }
    let idempotency_key = idempotency_key(&headers)?;
    let timeout_ms = query.timeout_ms.unwrap_or(state.config.default_job_timeout_ms);
    let max_timeout = state.config.max_job_timeout_ms;
    let mut option_errors = FieldErrors::default();
    let options = take_launch_options(&mut raw, &mut option_errors);
    if let Some(url) = &options.webhook
        && let Err(reason) = state.services.outbound.check_url(url)
    {
        option_errors.add("webhook.url", reason);
    }
    let params = (entry.prepare)(raw, &state.services).map_err(ApiError::Validation);
    let params = match (params, (1..=max_timeout).contains(&timeout_ms)) {
        (Ok(params), true) if option_errors.0.is_empty() => params,
        (Ok(_), in_range) => {
            if !in_range {
                option_errors.add("timeout_ms", format!("must be between 1 and {max_timeout}, got {timeout_ms}"));
            }
            return Err(ApiError::Validation(option_errors));
        }
        (Err(ApiError::Validation(mut errors)), in_range) => {
            if !in_range {
                errors.add("timeout_ms", format!("must be between 1 and {max_timeout}, got {timeout_ms}"));
            }
            errors.0.append(&mut option_errors.0);
            return Err(ApiError::Validation(errors));
        }
        (Err(other), _) => return Err(other),
    };

    if let Some(key) = &idempotency_key
        && let Some(existing) = state.store.find_by_idempotency_key(key).await?
    {
        return replay(existing, &kind, &params, &options);
    }
    let gate = match &options.gate {
        Some(request) => gate_for_launch(state.store.as_ref(), &kind, &params, request).await?,
        None => None,
    };
    if state.store.count_queued().await? >= state.config.max_queued_jobs {
        return Err(ApiError::TooManyRequests {
            reason: format!("{} jobs are already queued; try again later", state.config.max_queued_jobs),
            retry_after_s: QUEUE_FULL_RETRY_AFTER_S,
        });
    }
    let inserted = state
        .store
        .insert_job(NewJob {
            id: uuid::Uuid::now_v7(),
            kind: kind.clone(),
            params: params.clone(),
            timeout_ms,
            idempotency_key,
            parent_id: None,
            max_attempts: entry.max_attempts,
            launched_by: Some(caller.name.clone()),
            labels: options.labels.clone(),
            gate,
            webhook_url: options.webhook.as_ref().map(|url| url.to_string()),
        })
        .await?;
    if !inserted.created {
        return replay(inserted.job, &kind, &params, &options);
    }
    state.runner.wake();
    state.services.meters.job_launched(&caller.name);
    // The job's `queued` status event is stored with it.
    state.services.meters.events_written(1);
    tracing::info!(job.id = %inserted.job.id, "job queued");
    Ok(accepted(inserted.job, false))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| !key.is_empty() && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS).ok_or_else(|| {
        ApiError::bad_request("Idempotency-Key", format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"))
    })?;
    Ok(Some(key.to_string()))
}

/// Answers a repeated idempotency key with the job it created, unless the request differs.
fn replay(existing: crate::jobs::Job, kind: &str, params: &Value, options: &LaunchOptions) -> Result<Response, ApiError> {
    let webhook = options.webhook.as_ref().map(url::Url::as_str);
    if existing.kind != kind
        || existing.params != *params
        || existing.labels != options.labels
        || existing.webhook.as_ref().map(|hook| hook.url.as_str()) != webhook
    {
        return Err(ApiError::conflict("Idempotency-Key", format!("already used for job {} with other parameters", existing.id)));
    }
    Ok(accepted(existing, true))
}

fn accepted(job: crate::jobs::Job, replayed: bool) -> Response {
    let location = HeaderValue::from_str(&format!("/jobs/{}", job.id)).expect("a UUID path is a valid header");
    let mut response = (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response();
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
