//! The web dashboard: an HTML shell at `/` and its scripts, styles and icon under `/ui/`, all
//! embedded in the binary. The pages hold no data — the browser fetches it from the JSON API —
//! so they are served without a token, under a content security policy that allows nothing
//! but this server's own files (no inline script or style, no framing, no other origin).

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::state::AppState;
use crate::error::{ApiError, AppPath};

/// The policy of every dashboard response: this origin's files only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Browsers revalidate every file (an ETag makes that a 304), so a new binary's files are
/// never mixed with an old page.
const CACHE_CONTROL: &str = "no-cache";

/// One embedded file.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its media type.
    content_type: &'static str,
    /// Its content.
    body: &'static str,
}

/// The HTML shell served at `/`.
const SHELL: Asset = Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_str!("ui/index.html") };

/// The files under `/ui/`.
const ASSETS: &[Asset] = &[
    js("app.js", include_str!("ui/app.js")),
    js("api.js", include_str!("ui/api.js")),
    js("dom.js", include_str!("ui/dom.js")),
    js("experiments.js", include_str!("ui/experiments.js")),
    js("schema_form.js", include_str!("ui/schema_form.js")),
    js("jobs.js", include_str!("ui/jobs.js")),
    js("identity.js", include_str!("ui/identity.js")),
    js("job.js", include_str!("ui/job.js")),
    js("charts.js", include_str!("ui/charts.js")),
    js("job_charts.js", include_str!("ui/job_charts.js")),
    js("endpoints.js", include_str!("ui/endpoints.js")),
    js("report.js", include_str!("ui/report.js")),
    js("compare.js", include_str!("ui/compare.js")),
    js("compare_form.js", include_str!("ui/compare_form.js")),
    js("trends.js", include_str!("ui/trends.js")),
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("ui/app.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_str!("ui/icon.svg") },
];

const fn js(name: &'static str, body: &'static str) -> Asset {
    Asset { name, content_type: "text/javascript; charset=utf-8", body }
}

/// The dashboard's routes, each response with the security headers.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(shell)).route("/ui/{file}", get(asset)).layer(middleware::from_fn(security_headers))
}

/// Whether `path` is a dashboard route, served without a token (it carries no data).
pub fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

async fn shell(headers: HeaderMap) -> Response {
    serve(&SHELL, &headers)
}

async fn asset(AppPath(file): AppPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset =
        ASSETS.iter().find(|asset| asset.name == file).ok_or_else(|| ApiError::not_found("file", format!("no dashboard file {file:?}")))?;
    Ok(serve(asset, &headers))
}

/// The file, or `304 Not Modified` when the browser's copy (`If-None-Match`) is current.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = etag(asset.body);
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let validators = [(header::ETAG, etag), (header::CACHE_CONTROL, CACHE_CONTROL.to_string())];
    if cached {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (validators, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

/// A strong validator of the content (stable for a given build).
fn etag(body: &str) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// Adds the security headers to every dashboard response, errors included.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_loads_only_embedded_files_and_nothing_inline() {
        let html = SHELL.body;
        for reference in html.split(['"', '\'']).filter(|part| part.starts_with("/ui/")) {
            let name = &reference["/ui/".len()..];
            assert!(ASSETS.iter().any(|asset| asset.name == name), "{reference} is not embedded");
        }
        assert!(!html.contains("<style") && !html.contains("style="), "inline style");
        let inline_handler = html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!inline_handler, "inline event handler");
        assert!(html.split("<script").skip(1).all(|tag| tag.trim_start().starts_with("type=\"module\" src=")), "inline script");
    }

    #[test]
    fn every_module_import_is_embedded() {
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for line in asset.body.lines().filter(|line| line.starts_with("import ")) {
                let target = line.rsplit("from").next().unwrap().trim().trim_end_matches(';').trim_matches('"');
                let name = target.strip_prefix("./").unwrap_or_else(|| panic!("{}: non-relative import {target}", asset.name));
                assert!(ASSETS.iter().any(|other| other.name == name), "{}: imports {name}, which is not embedded", asset.name);
            }
        }
    }
}
