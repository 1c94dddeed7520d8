//! Parameters of `http-fanout` and their validation.

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use super::thresholds::Thresholds;
use crate::validation::{FieldErrors, Validate};

/// The most requests one job may send.
pub const MAX_COUNT: u64 = 100_000_000;
/// The most URLs a list may hold.
pub const MAX_URLS: usize = 10_000;
/// The most connections one job may open at once.
pub const MAX_CONNECTIONS: u32 = 4096;
/// The most requests one job may keep in flight.
pub const MAX_CONCURRENCY: u32 = 65_536;
/// The highest start rate one job may ask for.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;
/// The longest per-request time limit.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// The HTTP method of every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    #[default]
    Get,
    /// HEAD
    Head,
    /// POST (empty body)
    Post,
    /// PUT (empty body)
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl HttpMethod {
    /// The method for hyper.
    pub fn to_http(self) -> hyper::Method {
        match self {
            HttpMethod::Get => hyper::Method::GET,
            HttpMethod::Head => hyper::Method::HEAD,
            HttpMethod::Post => hyper::Method::POST,
            HttpMethod::Put => hyper::Method::PUT,
            HttpMethod::Delete => hyper::Method::DELETE,
            HttpMethod::Options => hyper::Method::OPTIONS,
        }
    }
}

/// Parameters of an `http-fanout` run. Give `url` with `count`, or `urls`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FanoutParams {
    /// A URL template: `{i}` in its path or query becomes the request's index (0, 1, 2, …).
    #[schema(example = "http://127.0.0.1:8080/targets/hello/{i}")]
    pub url: Option<String>,
    /// How many requests to send (1 to 100,000,000). Required with `url`; with `urls` it
    /// defaults to their number and cycles through them.
    pub count: Option<u64>,
    /// Explicit URLs (1 to 10,000), requested in order.
    pub urls: Option<Vec<String>>,
    /// The method of every request.
    #[serde(default)]
    #[schema(inline)]
    pub method: HttpMethod,
    /// The most connections open at once (1 to 4096); never exceeded.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// The most requests in flight at once (aiometer's `max_at_once`); defaults to `max_connections`.
    pub concurrency: Option<u32>,
    /// The most requests started per second (aiometer's `max_per_second`), spread evenly.
    pub max_per_second: Option<f64>,
    /// Time limit for one request, from connecting to the last body byte (1 to 600,000 ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Limits the run must meet, or the job fails with reason `thresholds` (the report is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub thresholds: Option<Thresholds>,
}

fn default_max_connections() -> u32 {
    16
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl FanoutParams {
    /// The number of requests to send.
    pub fn request_count(&self) -> u64 {
        self.count.or(self.urls.as_ref().map(|urls| urls.len() as u64)).unwrap_or(0)
    }

    /// The effective in-flight limit.
    pub fn in_flight_limit(&self) -> u32 {
        self.concurrency.unwrap_or(self.max_connections)
    }
}

/// Checks that a URL is one the fan-out can request: `http`, with a host.
pub fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|error| format!("not a valid URL: {error}"))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err("https targets are not supported yet; use http".into()),
        other => return Err(format!("scheme {other:?} is not supported; use http")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(url)
}

impl Validate for FanoutParams {
    fn validate(&self, errors: &mut FieldErrors) {
        match (&self.url, &self.urls) {
            (Some(_), Some(_)) => errors.add("urls", "give either url or urls, not both"),
            (None, None) => errors.add("url", "required unless urls is given"),
            (Some(template), None) => {
                match self.count {
                    None => errors.add("count", "required with url"),
                    Some(count) => errors.range("count", count, 1, MAX_COUNT),
                }
                validate_template(template, errors);
            }
            (None, Some(urls)) => {
                errors.check(
                    (1..=MAX_URLS).contains(&urls.len()),
                    "urls",
                    format!("must hold between 1 and {MAX_URLS} URLs, got {}", urls.len()),
                );
                if let Some(count) = self.count {
                    errors.range("count", count, 1, MAX_COUNT);
                }
                for (index, raw) in urls.iter().enumerate() {
                    if let Err(reason) = check_url(raw) {
                        errors.add(format!("urls[{index}]"), reason);
                    }
                }
            }
        }
        errors.range("max_connections", self.max_connections, 1, MAX_CONNECTIONS);
        if let Some(concurrency) = self.concurrency {
            errors.range("concurrency", concurrency, 1, MAX_CONCURRENCY);
        }
        if let Some(rate) = self.max_per_second {
            errors.check(
                rate.is_finite() && rate > 0.0 && rate <= MAX_PER_SECOND,
                "max_per_second",
                format!("must be above 0 and at most {MAX_PER_SECOND}, got {rate}"),
            );
        }
        errors.range("timeout_ms", self.timeout_ms, 1, MAX_TIMEOUT_MS);
        if let Some(thresholds) = &self.thresholds {
            thresholds.validate(errors);
        }
    }
}

fn validate_template(template: &str, errors: &mut FieldErrors) {
    let (first, second) = match (check_url(&template.replace("{i}", "0")), check_url(&template.replace("{i}", "1"))) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(reason), _) | (_, Err(reason)) => return errors.add("url", reason),
    };
    errors.check(
        first.host_str() == second.host_str() && first.port_or_known_default() == second.port_or_known_default(),
        "url",
        "{i} may only appear in the path or query, not in the host or port",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: serde_json::Value) -> FanoutParams {
        serde_json::from_value(json).unwrap()
    }

    fn fields(params: &FanoutParams) -> Vec<String> {
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn a_template_needs_a_count_and_http() {
        assert_eq!(fields(&params(serde_json::json!({"url": "http://127.0.0.1/{i}"}))), ["count"]);
        assert_eq!(fields(&params(serde_json::json!({"url": "ftp://127.0.0.1/{i}", "count": 1}))), ["url"]);
        assert_eq!(fields(&params(serde_json::json!({"url": "http://h{i}.local/", "count": 2}))), ["url"]);
        assert!(fields(&params(serde_json::json!({"url": "http://127.0.0.1/{i}", "count": 5}))).is_empty());
    }

    #[test]
    fn bounds_are_named() {
        let bad = params(serde_json::json!({
            "urls": ["http://127.0.0.1/", "nope"], "max_connections": 0, "concurrency": 0,
            "max_per_second": -1.0, "timeout_ms": 0
        }));
        assert_eq!(fields(&bad), ["urls[1]", "max_connections", "concurrency", "max_per_second", "timeout_ms"]);
    }

    #[test]
    fn urls_default_the_count() {
        let list = params(serde_json::json!({"urls": ["http://127.0.0.1/a", "http://127.0.0.1/b"]}));
        assert_eq!(list.request_count(), 2);
    }
}
