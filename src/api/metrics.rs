//! `GET /metrics` in the Prometheus text format, and the middleware that counts HTTP requests
//! by matched route.
//!
//! The middleware is hand-written: no tower or tower-http layer records Prometheus series, and a
//! metrics crate would bring a recorder and its dependencies for one counter and one histogram.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::state::AppState;
use crate::error::{ApiError, Problem};

/// The Prometheus exposition format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The server's measurements in the Prometheus text format: jobs finished by kind and status,
/// jobs running and queued, events written, open event streams, HTTP requests by route and
/// status with a latency histogram, and http-fanout traffic.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format"),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let queued = state.store.count_queued().await?;
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], state.services.meters.render(queued)).into_response())
}

/// Counts each request under its matched route (`/jobs/{id}`, not the raw path); the built-in
/// target's routes are left out so load tests against it pay nothing (see `/targets/stats`).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    if route.as_deref().is_some_and(|route| route.starts_with("/targets/")) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    state.services.meters.http_request(method.as_str(), route, response.status().as_u16(), started.elapsed());
    response
}
