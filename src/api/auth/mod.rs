//! Who may do what: every request but the public ones (`/healthz`, the dashboard's files) is
//! made by a [`Principal`] — the bootstrap token's admin, a stored token with a role, or, on a
//! server with no token configured, an anonymous admin — and the route's [`policy::Access`]
//! decides whether it may. Refusals are problem+json (`401` for a missing, wrong, expired or
//! revoked token, `403` for a role too weak, `429` for an address over its failed-authentication
//! limit), logged without the token and counted in `/metrics`.
//!
//! The middleware is hand-written: tower-http's bearer check knows one fixed token, not stored
//! tokens with roles.

pub mod authenticator;
pub mod failures;
pub mod policy;
pub mod secret;

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use authenticator::{Authenticator, Principal};
use policy::Access;

use crate::api::access_token;
use crate::api::limits::{self, ClientAddress};
use crate::api::state::AppState;
use crate::error::ApiError;

/// Route middleware: authenticates the caller, checks the route's access, and hands the
/// handler the [`Principal`] as a request extension.
pub async fn authorize(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let query_token = access_token::take_from_query(&mut request);
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| request.uri().path().to_string(), |path| path.as_str().to_string());
    let access = policy::access(request.method(), &route);
    if access == Access::Public {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_string)
        .or(query_token);
    let principal = match presented {
        None => match state.auth.anonymous() {
            Some(anonymous) => anonymous,
            None => {
                state.services.meters.auth_failure("missing");
                return ApiError::Unauthorized.into_response();
            }
        },
        Some(presented) => match authenticate(&state, client_address(&request), &route, &presented).await {
            Ok(principal) => principal,
            Err(refused) => return refused,
        },
    };
    if !access.admits(principal.role) {
        let needed = access.weakest_role().map_or("", |role| role.as_str());
        return ApiError::Forbidden(format!(
            "the token {:?} has the role {}; {} {route} needs {needed}",
            principal.name,
            principal.role.as_str(),
            request.method()
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Checks a presented token from `client`, within its failed-authentication limit.
async fn authenticate(state: &AppState, client: IpAddr, route: &str, presented: &str) -> Result<Principal, Response> {
    let now = Instant::now();
    if let Some(wait) = state.auth_failures.refused_for(client, now) {
        state.services.meters.auth_failure("rate_limited");
        return Err(too_many_failures(client, wait));
    }
    let refusal = match state.auth.authenticate(presented).await {
        Ok(Ok(principal)) => return Ok(principal),
        Ok(Err(refusal)) => refusal,
        Err(error) => return Err(ApiError::from(crate::store::StoreError::from(error)).into_response()),
    };
    // An open server (no token configured) ignores a token it cannot use, such as one a
    // browser kept from another server: the request acts as anyone's would.
    if let Some(anonymous) = state.auth.anonymous() {
        return Ok(anonymous);
    }
    state.services.meters.auth_failure(refusal.as_str());
    tracing::warn!(%client, route, reason = refusal.as_str(), "authentication failed");
    match state.auth_failures.failed(client, now) {
        Some(wait) => Err(too_many_failures(client, wait)),
        None => Err(ApiError::Unauthorized.into_response()),
    }
}

fn too_many_failures(client: IpAddr, wait: std::time::Duration) -> Response {
    ApiError::TooManyRequests {
        reason: format!("too many failed authentications from {client}; try again later"),
        retry_after_s: limits::retry_after_seconds(wait),
    }
    .into_response()
}

/// The address the request came from (`0.0.0.0` when unknown, as in unit tests).
fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<ClientAddress>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(ClientAddress(address))| address.ip())
}
