//! The `access_token` query parameter of the event stream: a browser's `EventSource` cannot
//! send an `Authorization` header, so `GET /jobs/{id}/events` (and only that route) also takes
//! the token from the query. The parameter is taken out of the request before the handler sees
//! it, and request spans log the URI with its value redacted.

use axum::extract::Request;
use axum::http::{Method, Uri};
use tracing::Span;

/// The query parameter that carries the token.
pub const PARAM: &str = "access_token";
/// What request spans show instead of the token.
const REDACTED: &str = "redacted";

/// Whether `path` is a job's event stream, `/jobs/{id}/events`.
fn is_event_stream(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["jobs", id, "events"] if !id.is_empty())
}

/// On `GET /jobs/{id}/events`, removes every `access_token` parameter from the request's query
/// and returns the last one's value; on any other request, leaves it alone and returns `None`.
pub fn take_from_query(request: &mut Request) -> Option<String> {
    if request.method() != Method::GET || !is_event_stream(request.uri().path()) {
        return None;
    }
    let query = request.uri().query()?;
    let mut token = None;
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == PARAM {
            token = Some(value.into_owned());
        } else {
            kept.append_pair(&name, &value);
        }
    }
    token.as_ref()?;
    let kept = kept.finish();
    let path_and_query = if kept.is_empty() { request.uri().path().to_string() } else { format!("{}?{kept}", request.uri().path()) };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    token
}

/// The URI as logs may show it: any `access_token` value replaced.
pub fn redacted(uri: &Uri) -> String {
    let Some(query) = uri.query().filter(|query| form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == PARAM)) else {
        return uri.to_string();
    };
    let mut shown = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        shown.append_pair(&name, if name == PARAM { REDACTED } else { &value });
    }
    format!("{}?{}", uri.path(), shown.finish())
}

/// The span of one request, as tower-http's default (`method`, `uri`, `version` at debug
/// level), with the URI redacted.
pub fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    tracing::debug_span!("request", method = %request.method(), uri = %redacted(request.uri()), version = ?request.version())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(method: Method, uri: &str) -> Request {
        axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn the_event_stream_gives_up_its_token_and_keeps_other_parameters() {
        let mut events = request(Method::GET, "/jobs/0192/events?after=3&access_token=s%26cret");
        assert_eq!(take_from_query(&mut events).as_deref(), Some("s&cret"));
        assert_eq!(events.uri().to_string(), "/jobs/0192/events?after=3");

        let mut only_token = request(Method::GET, "/jobs/0192/events?access_token=a&access_token=b");
        assert_eq!(take_from_query(&mut only_token).as_deref(), Some("b"));
        assert_eq!(only_token.uri().to_string(), "/jobs/0192/events");
    }

    #[test]
    fn other_routes_and_methods_keep_the_parameter() {
        for (method, uri) in [
            (Method::GET, "/jobs?access_token=x"),
            (Method::GET, "/jobs/0192?access_token=x"),
            (Method::POST, "/jobs/0192/events?access_token=x"),
            (Method::GET, "/jobs/0192/events/more?access_token=x"),
            (Method::GET, "/jobs//events?access_token=x"),
        ] {
            let mut other = request(method, uri);
            assert_eq!(take_from_query(&mut other), None, "{uri}");
            assert_eq!(other.uri().to_string(), uri);
        }
    }

    #[test]
    fn logged_uris_never_show_the_token() {
        let uri: Uri = "/jobs/0192/events?access_token=topsecret&after=2".parse().unwrap();
        let shown = redacted(&uri);
        assert!(!shown.contains("topsecret"), "{shown}");
        assert_eq!(shown, "/jobs/0192/events?access_token=redacted&after=2");
        let plain: Uri = "/jobs?kind=http-fanout".parse().unwrap();
        assert_eq!(redacted(&plain), "/jobs?kind=http-fanout");
    }
}
