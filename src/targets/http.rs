//! The built-in HTTP target under `/targets`: cheap deterministic endpoints to aim load at.
//! Every endpoint answers any method, so a fan-out may use whichever it tests.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{TargetStats, TargetStatsSnapshot};
use crate::error::{ApiError, AppPath, AppQuery, Problem};

/// The longest delay `/targets/delay` sleeps.
pub const MAX_DELAY_MS: u64 = 600_000;
/// The largest body `/targets/bytes` sends.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The target routes, to be nested under `/targets`.
pub fn router<S>(stats: Arc<TargetStats>) -> Router<S> {
    Router::new()
        .route("/hello/{n}", any(hello))
        .route("/delay/{spec}", any(delay))
        .route("/status/{code}", any(status))
        .route("/bytes/{n}", any(bytes))
        .route("/stats", get(stats_snapshot))
        .with_state(stats)
}

/// The body of `/targets/hello/{n}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Hello {
    /// The number from the path.
    pub hello: u64,
}

/// Answers a small JSON body at once.
#[utoipa::path(get, path = "/targets/hello/{n}", tag = "targets",
    params(("n" = u64, Path, description = "Any number; echoed back")),
    responses((status = 200, body = Hello), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn hello(State(stats): State<Arc<TargetStats>>, AppPath(n): AppPath<u64>) -> Json<Hello> {
    stats.request_served();
    Json(Hello { hello: n })
}

/// Query of `/targets/delay`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DelayQuery {
    /// Makes a random delay a function of this number (use `{i}` in a fan-out template).
    pub seed: Option<u64>,
}

/// The body of `/targets/delay/{spec}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Delayed {
    /// How long the answer was held back.
    pub delay_ms: u64,
}

/// Answers after a delay: `{ms}` exactly, or `{min}-{max}` uniformly at random.
#[utoipa::path(get, path = "/targets/delay/{spec}", tag = "targets",
    params(("spec" = String, Path, description = "`250` or `1000-4000` (milliseconds, at most 600000)"), DelayQuery),
    responses((status = 200, body = Delayed), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn delay(
    State(stats): State<Arc<TargetStats>>,
    AppPath(spec): AppPath<String>,
    AppQuery(query): AppQuery<DelayQuery>,
) -> Result<Json<Delayed>, ApiError> {
    let (min, max) = parse_delay(&spec).map_err(|reason| ApiError::bad_request("spec", reason))?;
    let delay_ms = if min == max {
        min
    } else {
        let seed = query.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            nanos as u64 ^ stats.snapshot().requests_served.rotate_left(32)
        });
        seeded_delay(seed, min, max)
    };
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    stats.request_served();
    Ok(Json(Delayed { delay_ms }))
}

/// The delay `/targets/delay/{min}-{max}?seed={seed}` sleeps: uniform in the range, a function
/// of the seed (so a test can compute what a fan-out will meet).
pub fn seeded_delay(seed: u64, min: u64, max: u64) -> u64 {
    SmallRng::seed_from_u64(seed).random_range(min..=max)
}

fn parse_delay(spec: &str) -> Result<(u64, u64), String> {
    let number = |text: &str| text.trim().parse::<u64>().map_err(|_| format!("{text:?} is not a number of milliseconds"));
    let (min, max) = match spec.split_once('-') {
        Some((min, max)) => (number(min)?, number(max)?),
        None => {
            let exact = number(spec)?;
            (exact, exact)
        }
    };
    if min > max {
        return Err(format!("the minimum {min} is above the maximum {max}"));
    }
    if max > MAX_DELAY_MS {
        return Err(format!("at most {MAX_DELAY_MS} ms"));
    }
    Ok((min, max))
}

/// The body of `/targets/status/{code}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusEcho {
    /// The status answered.
    pub status: u16,
}

/// Answers with the given status code (200 to 599).
#[utoipa::path(get, path = "/targets/status/{code}", tag = "targets",
    params(("code" = u16, Path, description = "A status code from 200 to 599", minimum = 200, maximum = 599)),
    responses((status = 200, body = StatusEcho, description = "The status asked for: 200 here"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = "default", body = StatusEcho, description = "Whichever other status was asked for")))]
pub async fn status(State(stats): State<Arc<TargetStats>>, AppPath(code): AppPath<u16>) -> Result<impl IntoResponse, ApiError> {
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|_| (200..=599).contains(&code))
        .ok_or_else(|| ApiError::bad_request("code", format!("must be between 200 and 599, got {code}")))?;
    stats.request_served();
    Ok((status, Json(StatusEcho { status: code })))
}

/// Answers `n` bytes of `application/octet-stream`.
#[utoipa::path(get, path = "/targets/bytes/{n}", tag = "targets",
    params(("n" = u64, Path, description = "Body size in bytes, at most 67108864")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn bytes(State(stats): State<Arc<TargetStats>>, AppPath(n): AppPath<u64>) -> Result<impl IntoResponse, ApiError> {
    if n > MAX_BYTES {
        return Err(ApiError::bad_request("n", format!("at most {MAX_BYTES} bytes, got {n}")));
    }
    stats.request_served();
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Bytes::from(vec![b'x'; n as usize])))
}

/// Connections and requests this server counted.
#[utoipa::path(get, path = "/targets/stats", tag = "targets", responses((status = 200, body = TargetStatsSnapshot)))]
pub async fn stats_snapshot(State(stats): State<Arc<TargetStats>>) -> Json<TargetStatsSnapshot> {
    Json(stats.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_specs_parse_with_bounds() {
        assert_eq!(parse_delay("250"), Ok((250, 250)));
        assert_eq!(parse_delay("1000-4000"), Ok((1000, 4000)));
        assert!(parse_delay("5-1").is_err());
        assert!(parse_delay("x").is_err());
        assert!(parse_delay("600001").is_err());
    }

    #[test]
    fn seeded_delays_are_reproducible() {
        let draw = |seed| seeded_delay(seed, 1000, 4000);
        assert_eq!(draw(7), draw(7));
        assert!((1000..=4000).contains(&draw(8)));
    }
}
