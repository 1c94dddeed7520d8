//! The requests of a fan-out: which endpoint and path request `i` goes to, resolved once
//! before the first request and checked against the outbound allowlist.

use std::borrow::Cow;
use std::net::SocketAddr;

use hyper::http::uri::PathAndQuery;
use url::{Position, Url};

use super::params::{FanoutParams, check_url};
use crate::experiments::ExperimentError;
use crate::outbound::OutboundPolicy;

/// A server the fan-out talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`, as the `Host` header and HTTP/2's `:authority` carry it.
    pub authority: String,
    /// `authority` as a ready header value (cloning it is a reference count).
    pub host_header: hyper::header::HeaderValue,
    /// The address connections go to (the first the host resolved to).
    pub address: SocketAddr,
}

#[derive(Debug)]
enum Requests {
    /// One endpoint; `{i}` in the path is replaced per request.
    Template { path: String },
    /// Explicit URLs, cycled: (endpoint index, path and query).
    List(Vec<(usize, String)>),
}

/// Every request of a fan-out, computed on demand so memory does not grow with `count`.
#[derive(Debug)]
pub struct FanoutPlan {
    /// The distinct servers.
    pub endpoints: Vec<Endpoint>,
    requests: Requests,
}

impl FanoutPlan {
    /// Resolves the parameters' targets through the outbound policy.
    pub async fn resolve(params: &FanoutParams, policy: &OutboundPolicy) -> Result<Self, ExperimentError> {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut endpoint_of = async |url: &Url| -> Result<usize, ExperimentError> {
            let authority = authority(url);
            if let Some(index) = endpoints.iter().position(|endpoint| endpoint.authority == authority) {
                return Ok(index);
            }
            policy.check_url(url).map_err(ExperimentError::Refused)?;
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(80);
            let addresses = policy.resolve(host, port).await.map_err(ExperimentError::Refused)?;
            let host_header = hyper::header::HeaderValue::from_str(&authority)
                .map_err(|_| ExperimentError::Refused(format!("{authority} is not a valid host")))?;
            endpoints.push(Endpoint { authority, host_header, address: addresses[0] });
            Ok(endpoints.len() - 1)
        };
        let requests = match (&params.url, &params.urls) {
            (Some(template), _) => {
                let url = parse(&template.replace("{i}", "0"))?;
                endpoint_of(&url).await?;
                let path = template_path(template);
                PathAndQuery::try_from(path.replace("{i}", "0"))
                    .map_err(|error| ExperimentError::Refused(format!("url path is not valid: {error}")))?;
                Requests::Template { path }
            }
            (None, Some(urls)) => {
                let mut list = Vec::with_capacity(urls.len());
                for raw in urls {
                    let url = parse(raw)?;
                    let endpoint = endpoint_of(&url).await?;
                    list.push((endpoint, url[Position::BeforePath..Position::AfterQuery].to_string()));
                }
                Requests::List(list)
            }
            (None, None) => return Err(ExperimentError::Internal("no target in validated parameters".into())),
        };
        Ok(FanoutPlan { endpoints, requests })
    }

    /// The endpoint index and the path-and-query of request `index`.
    pub fn request(&self, index: u64) -> (usize, Cow<'_, str>) {
        match &self.requests {
            Requests::Template { path } if path.contains("{i}") => (0, Cow::Owned(path.replace("{i}", &index.to_string()))),
            Requests::Template { path } => (0, Cow::Borrowed(path)),
            Requests::List(list) => {
                let (endpoint, path) = &list[(index % list.len() as u64) as usize];
                (*endpoint, Cow::Borrowed(path))
            }
        }
    }
}

fn parse(raw: &str) -> Result<Url, ExperimentError> {
    check_url(raw).map_err(ExperimentError::Refused)
}

fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The raw path and query of a URL template (everything after the authority, without a
/// fragment), kept unparsed so `{i}` is not percent-encoded.
fn template_path(template: &str) -> String {
    let after_scheme = template.find("://").map_or(0, |at| at + 3);
    let rest = &template[after_scheme..];
    let path = rest.find(['/', '?']).map_or("", |at| &rest[at..]);
    let path = path.split('#').next().unwrap_or_default();
    if path.is_empty() {
        "/".into()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: serde_json::Value) -> FanoutParams {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn template_paths_keep_the_placeholder() {
        assert_eq!(template_path("http://127.0.0.1:8080/targets/hello/{i}?x={i}#frag"), "/targets/hello/{i}?x={i}");
        assert_eq!(template_path("http://127.0.0.1:8080"), "/");
        assert_eq!(template_path("http://127.0.0.1?q={i}"), "/?q={i}");
    }

    #[tokio::test]
    async fn template_requests_substitute_the_index() {
        let plan = FanoutPlan::resolve(
            &params(serde_json::json!({"url": "http://127.0.0.1:9/n/{i}", "count": 3})),
            &OutboundPolicy::default(),
        )
        .await
        .unwrap();
        assert_eq!(plan.endpoints.len(), 1);
        assert_eq!(plan.endpoints[0].authority, "127.0.0.1:9");
        assert_eq!(plan.request(41).1, "/n/41");
    }

    #[tokio::test]
    async fn url_lists_share_endpoints_and_cycle() {
        let plan = FanoutPlan::resolve(
            &params(serde_json::json!({"urls": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b?c=1", "http://localhost:10/"]})),
            &OutboundPolicy::default(),
        )
        .await
        .unwrap();
        assert_eq!(plan.endpoints.len(), 2);
        assert_eq!(plan.request(1), (0, Cow::Borrowed("/b?c=1")));
        assert_eq!(plan.request(5), (1, Cow::Borrowed("/")));
    }

    #[tokio::test]
    async fn hosts_outside_the_allowlist_are_refused() {
        let refused = FanoutPlan::resolve(
            &params(serde_json::json!({"url": "http://192.0.2.1/", "count": 1})),
            &OutboundPolicy::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(refused, ExperimentError::Refused(_)), "{refused:?}");
    }
}
