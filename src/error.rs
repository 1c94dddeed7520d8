//! HTTP errors as RFC 9457 problem+json, and extractors whose rejections take the same shape:
//! the vocabulary the API and the built-in target answer errors in. It names no other layer;
//! the API maps lower-layer errors into it at its edge (`api::store_error`).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;

use crate::validation::{FieldError, FieldErrors};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (unparseable JSON, a bad path, query or header value).
    #[error("bad request")]
    BadRequest(FieldErrors),
    /// The parameters parsed but are not acceptable.
    #[error("invalid parameters")]
    Validation(FieldErrors),
    /// No such resource.
    #[error("not found")]
    NotFound(FieldErrors),
    /// The resource existed and was removed for good (a job pruned by retention).
    #[error("gone")]
    Gone(FieldErrors),
    /// The request conflicts with the resource's state or the server's configuration.
    #[error("conflict")]
    Conflict(FieldErrors),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Missing or wrong bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// The caller's token is valid but its role may not do this.
    #[error("forbidden")]
    Forbidden(String),
    /// The request body is larger than allowed.
    #[error("payload too large")]
    PayloadTooLarge(u64),
    /// Too many jobs waiting; retry after the given seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Why.
        reason: String,
        /// Seconds after which a retry may succeed.
        retry_after_s: u64,
    },
    /// The server cannot serve this now (shutting down, store unreachable).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure; the body is opaque, the chain is logged.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// When a client refused with `503` (store unreachable, server restarting) may try again.
const UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

/// The largest request body accepted (launch parameters are small; 1 MiB leaves room for long URL
/// lists): the API's body limit, and the size [`JsonBody`] names when it refuses a larger one.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Each offending field and why (empty when no field is to blame).
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// A 400 naming one field.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::BadRequest(FieldErrors::single(field, reason))
    }

    /// A 404 naming one field.
    pub fn not_found(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::NotFound(FieldErrors::single(field, reason))
    }

    /// A 410 naming one field.
    pub fn gone(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Gone(FieldErrors::single(field, reason))
    }

    /// A 409 naming one field.
    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Conflict(FieldErrors::single(field, reason))
    }

    /// A 422 naming one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation(FieldErrors::single(field, reason))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn problem(&self) -> Problem {
        let (slug, title, errors, detail) = match self {
            ApiError::BadRequest(errors) => ("bad-request", "Malformed request", errors.0.clone(), None),
            ApiError::Validation(errors) => ("validation", "Invalid parameters", errors.0.clone(), None),
            ApiError::NotFound(errors) => ("not-found", "Not found", errors.0.clone(), None),
            ApiError::Gone(errors) => ("gone", "Gone", errors.0.clone(), None),
            ApiError::Conflict(errors) => ("conflict", "Conflict", errors.0.clone(), None),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                vec![FieldError { field: "method".into(), reason: "this route does not accept that method".into() }],
                None,
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                "Unauthorized",
                vec![FieldError {
                    field: "Authorization".into(),
                    reason: "missing, wrong, expired or revoked bearer token: send Authorization: Bearer <token>".into(),
                }],
                None,
            ),
            ApiError::Forbidden(reason) => {
                ("forbidden", "Forbidden", vec![FieldError { field: "Authorization".into(), reason: reason.clone() }], None)
            }
            ApiError::PayloadTooLarge(limit) => (
                "payload-too-large",
                "Payload too large",
                vec![FieldError { field: "body".into(), reason: format!("larger than {limit} bytes") }],
                None,
            ),
            ApiError::TooManyRequests { reason, .. } => ("too-many-requests", "Too many requests", Vec::new(), Some(reason.clone())),
            ApiError::Unavailable(reason) => ("unavailable", "Service unavailable", Vec::new(), Some(reason.clone())),
            ApiError::Internal(_) => {
                ("internal", "Internal error", Vec::new(), Some("the server failed; the error is in its log".to_string()))
            }
        };
        let detail = detail
            .unwrap_or_else(|| errors.iter().map(|error| format!("{}: {}", error.field, error.reason)).collect::<Vec<_>>().join("; "));
        Problem {
            problem_type: format!("urn:asynclab:problem:{slug}"),
            title: title.into(),
            status: self.status().as_u16(),
            detail,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let mut response = (self.status(), problem_body(&self.problem())).into_response();
        match &self {
            ApiError::TooManyRequests { retry_after_s, .. } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            ApiError::Unavailable(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_S));
            }
            _ => {}
        }
        response
    }
}

/// A problem document as a response body with the problem+json media type.
pub fn problem_body(problem: &Problem) -> impl IntoResponse + use<> {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body)
}

/// A JSON request body, parsed whatever the `Content-Type` (curl's `-d` sends a form type); an
/// empty body is `{}`. Unparseable JSON is a 400 naming `body`.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES as u64)
            } else {
                ApiError::bad_request("body", rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|error| ApiError::bad_request("body", format!("malformed JSON: {error}")))
    }
}

/// Path parameters; a value of the wrong form is a 400 naming the parameter.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let kind = error.into_kind();
                let field = path_field(&kind, parts, state).await;
                Err(ApiError::bad_request(field, kind.to_string()))
            }
            Err(rejection) => Err(ApiError::bad_request("path", rejection.body_text())),
        }
    }
}

/// The path parameter to blame: the one named in the error, or the only one there is.
async fn path_field<S: Send + Sync>(kind: &axum::extract::path::ErrorKind, parts: &mut Parts, state: &S) -> String {
    use axum::extract::path::ErrorKind;
    if let ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } = kind {
        return key.clone();
    }
    match axum::extract::RawPathParams::from_request_parts(parts, state).await {
        Ok(params) if params.iter().count() == 1 => params.iter().next().map(|(key, _)| key.to_string()).unwrap_or_default(),
        _ => "path".into(),
    }
}

/// Query parameters; an unknown or malformed one is a 400 naming it.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(deserializer).map(AppQuery).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { "query".to_string() } else { field };
            ApiError::bad_request(field, error.into_inner().to_string())
        })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}
