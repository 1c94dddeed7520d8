//! The HTTP surface: one module per resource, assembled here into the router and the OpenAPI
//! document.

pub mod access_token;
pub mod connections;
pub mod docs;
pub mod events;
pub mod experiments;
pub mod health;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod server_meters;
pub mod state;
pub mod store_error;
pub mod ui;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, MAX_BODY_BYTES};
use state::AppState;

fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(experiments::list))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::cancel))
        .routes(routes!(events::stream))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
}

/// The OpenAPI document of every route, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = documented_routes().split_for_parts();
    docs::add_experiment_paths(&mut api);
    api
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    let (documented, _) = documented_routes().split_for_parts();
    let cors = cors_layer(&state.config.cors_origins);
    let router = documented
        .route(
            "/experiments/{kind}",
            post(experiments::launch).route_layer(middleware::from_fn_with_state(state.clone(), limits::limit_launches)),
        )
        .route("/openapi.json", get(docs::openapi_json))
        .merge(docs::swagger_ui())
        .nest("/targets", crate::targets::http::router(state.target_stats.clone()))
        .merge(ui::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(access_token::request_span))
        .with_state(state);
    // Outermost, so a browser's preflight is answered before the token check.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Cross-origin access for the configured origins only; none without configuration.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|origin| HeaderValue::from_str(origin.trim()).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id"), HeaderName::from_static("idempotency-key")])
            .expose_headers([header::LOCATION, header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed")]),
    )
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("path", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// With a token configured, every route but `/healthz` and the dashboard's files needs
/// `Authorization: Bearer <token>`; a job's event stream also takes it as `?access_token=`.
async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let query_token = access_token::take_from_query(&mut request);
    let Some(token) = &state.config.token else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" || ui::is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .or(query_token.as_deref())
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = presented.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(presented.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison_needs_an_exact_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secretx", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
