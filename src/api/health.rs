//! Liveness and readiness.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::state::AppState;
use crate::error::{Problem, problem_body};
use crate::validation::FieldError;

/// How long readiness waits for the store.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness and the state of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// This replica's id (`--replica-id`), the `replica` of the jobs it runs.
    pub replica: String,
    /// Each dependency and its state (`ok` or why not): the store, and each configured
    /// experiment dependency (`postgres_target`, `mysql_target`, `redis`). Only the store decides
    /// readiness: an experiment dependency that is down makes its experiment fail, not the server.
    pub checks: BTreeMap<String, String>,
}

/// Whether the process is alive. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Whether the server can take work: the store answers and shutdown has not begun. Each
/// configured experiment dependency is listed too, without deciding readiness.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Problem, content_type = "application/problem+json",
     description = "Not ready: each failing check is in `errors`")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let store = match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "store readiness check failed");
            "unreachable".to_string()
        }
        Err(_) => "timed out".to_string(),
    };
    checks.insert("store".to_string(), store);
    if state.stopping.is_cancelled() {
        checks.insert("server".to_string(), "shutting down".to_string());
    }
    let failing: Vec<FieldError> = checks
        .iter()
        .filter(|(_, state)| *state != "ok")
        .map(|(name, state)| FieldError { field: name.clone(), reason: state.clone() })
        .collect();
    for (name, dependency) in state.services.readiness().await {
        checks.insert(name.to_string(), dependency);
    }
    if failing.is_empty() {
        return (StatusCode::OK, Json(Readiness { status: "ready".into(), replica: state.runner.replica_id().into(), checks }))
            .into_response();
    }
    let problem = Problem {
        problem_type: "urn:asynclab:problem:not-ready".into(),
        title: "Not ready".into(),
        status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        detail: failing.iter().map(|check| format!("{}: {}", check.field, check.reason)).collect::<Vec<_>>().join("; "),
        errors: failing,
    };
    (StatusCode::SERVICE_UNAVAILABLE, problem_body(&problem)).into_response()
}
