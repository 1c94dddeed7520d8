//! The HTTP surface: one module per resource, assembled here into the router and the OpenAPI
//! document.

pub mod access_token;
pub mod auth;
pub mod baseline;
pub mod compare;
pub mod connections;
pub mod docs;
pub mod events;
pub mod experiments;
pub mod health;
pub mod history;
pub mod jobs;
pub mod label_query;
pub mod launch_options;
pub mod limits;
pub mod metrics;
pub mod pruned;
pub mod retention;
pub mod server_meters;
pub mod state;
pub mod store_error;
pub mod tokens;
pub mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{get, post};
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
        .routes(routes!(compare::compare))
        .routes(routes!(history::history))
        .routes(routes!(events::stream))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(retention::show))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::whoami))
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
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authorize))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed")]),
    )
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("path", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
