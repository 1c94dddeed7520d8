//! The OpenAPI document: the documented routes, one launch operation per experiment kind,
//! `GET /openapi.json`, and the interactive reference at `/docs` (Swagger UI, its files built
//! into the binary, so it works offline).

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, Required, ResponseBuilder};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::Problem;
use crate::experiments;

/// The static part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "asynclab",
        description = "Async I/O experiments as an HTTP service: launch one, watch it live over server-sent events, keep its result.",
    ),
    paths(
        crate::targets::http::hello,
        crate::targets::http::delay,
        crate::targets::http::status,
        crate::targets::http::bytes,
        crate::targets::http::stats_snapshot,
    ),
    components(schemas(Problem, crate::validation::FieldError, crate::jobs::Job, crate::jobs::JobStatus,
                       crate::jobs::JobError, crate::jobs::JobEvent, crate::jobs::EventKind,
                       crate::api::launch_options::BaselineRequest, crate::api::launch_options::WebhookRequest)),
    tags(
        (name = "experiments", description = "The catalogue and launching experiments"),
        (name = "jobs", description = "Jobs, their live events and cancellation"),
        (name = "health", description = "Liveness and readiness"),
        (name = "targets", description = "The built-in load target"),
        (name = "tokens", description = "API tokens and roles (admins only), and who the caller is"),
    )
)]
pub struct ApiDoc;

/// The document, as served and as committed in `openapi/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::api::openapi())
}

/// Swagger UI at `/docs/` reading `/openapi.json`; the online validator is off, so the page
/// contacts nothing but this server.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs").config(Config::new(["/openapi.json"]).validator_url("none").display_request_duration(true))
}

/// What a launch body may carry beside the kind's parameters.
const LAUNCH_OPTIONS: &str = "Beside the parameters, the body may carry `labels` (an object of string labels), `baseline` \
(a `BaselineRequest`: a regression gate checked when the job succeeds) and `webhook` (a `WebhookRequest`: a URL POSTed the \
job's final representation once it ends).";

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

/// Adds `POST /experiments/{kind}` for every kind, each with its own parameter schema.
pub fn add_experiment_paths(api: &mut utoipa::openapi::OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    for entry in experiments::registry() {
        let mut schemas = Vec::new();
        (entry.schemas)(&mut schemas);
        components.schemas.extend(schemas);

        let timeout = ParameterBuilder::new()
            .name("timeout_ms")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("The job's time limit in milliseconds (default and maximum are server settings)"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build()))
            .build();
        let idempotency = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Repeating a launch with the same key returns the job the first one created"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(255)).build()))
            .build();
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name((entry.params_schema_name)())))
                    .example(Some((entry.example)()))
                    .build(),
            )
            .build();
        let accepted = ResponseBuilder::new()
            .description(format!(
                "Queued. `Location` is the job's URL; the report, once it succeeds, is a `{}`.",
                (entry.report_schema_name)()
            ))
            .header("Location", HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).build())
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Job"))).build())
            .build();
        let operation = OperationBuilder::new()
            .operation_id(Some(format!("launch_{}", entry.kind.replace('-', "_"))))
            .summary(Some(format!("Launch {}", entry.kind)))
            .description(Some(format!("{}\n\n{LAUNCH_OPTIONS}", entry.summary)))
            .tag("experiments")
            .parameter(timeout)
            .parameter(idempotency)
            .request_body(Some(body))
            .response("202", accepted)
            .response("400", problem("Malformed JSON or header"))
            .response("404", problem("Unknown experiment kind"))
            .response("409", problem("The experiment is unavailable here, or the idempotency key was used with other parameters"))
            .response("410", problem("The gate's baseline job was pruned by retention"))
            .response("413", problem("The body is too large"))
            .response("422", problem("Invalid parameters: each field and why"))
            .response("429", problem("Too many queued jobs, or too many launches from this client (see `Retry-After`)"))
            .response("503", problem("Shutting down"))
            .build();
        api.paths.paths.insert(format!("/experiments/{}", entry.kind), PathItem::new(HttpMethod::Post, operation));
    }
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
}
