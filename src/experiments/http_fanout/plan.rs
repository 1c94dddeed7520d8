//! A fan-out's plan, resolved once from its parameters before the first request: which
//! endpoint, method, path, headers and body request `i` carries (checked against the outbound
//! allowlist), the endpoints of the per-endpoint breakdown, and how the load runs ([`LoadPlan`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use rustls_pki_types::ServerName;
use url::{Position, Url};

use super::breakdown::EndpointLabel;
use super::dial::server_name;
use super::http1::request::{EncodedRequest, RequestParts};
use super::load::LoadPlan;
use super::params::{FanoutParams, check_url};
use super::request_spec::weighted_cycle;
use crate::experiments::ExperimentError;
use crate::outbound::OutboundPolicy;

/// A server the fan-out talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`, as the `Host` header and HTTP/2's `:authority` carry it.
    pub authority: String,
    /// The address connections go to (the first the host resolved to).
    pub address: SocketAddr,
    /// For `https`: the name the server's certificate must carry.
    pub tls_name: Option<ServerName<'static>>,
}

impl Endpoint {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_name.is_some() { "https" } else { "http" }
    }
}

/// One kind of request: where it goes and what it carries.
#[derive(Debug)]
pub struct RequestTemplate {
    /// Its endpoint's index in [`FanoutPlan::labels`], where the breakdown records it.
    pub kind: usize,
    /// The endpoint's index in [`FanoutPlan::endpoints`].
    pub endpoint: usize,
    /// The path and query; `{i}` is replaced by the request's number when `numbered`.
    path: String,
    /// Whether `path` holds `{i}`.
    numbered: bool,
    /// The method.
    pub method: hyper::Method,
    /// Extra headers, added to every request of this kind.
    pub headers: HeaderMap,
    /// The body (empty for none); cloning it is a reference count.
    pub body: Bytes,
    /// The request in HTTP/1.1 bytes, ready to write.
    pub http1: EncodedRequest,
}

impl RequestTemplate {
    /// The path and query of request `index`.
    pub fn path(&self, index: u64) -> Cow<'_, str> {
        if self.numbered { Cow::Owned(self.path.replace("{i}", &index.to_string())) } else { Cow::Borrowed(&self.path) }
    }
}

/// How request numbers map to request kinds.
#[derive(Debug)]
enum Order {
    /// Request `i` is kind `i mod n`.
    Cycle,
    /// Request `i` is the kind at `i mod len` of a weighted cycle.
    Weighted(Vec<u16>),
}

/// Every request of a fan-out, computed on demand so memory does not grow with `count`.
#[derive(Debug)]
pub struct FanoutPlan {
    /// The distinct servers.
    pub endpoints: Vec<Endpoint>,
    /// How the load runs: model, workers, time limits, protocol.
    pub load: LoadPlan,
    /// The endpoints of the per-endpoint breakdown, one per distinct key (two `urls` entries
    /// alike are one endpoint).
    pub labels: Vec<EndpointLabel>,
    /// The kinds of request.
    templates: Vec<RequestTemplate>,
    order: Order,
}

impl FanoutPlan {
    /// Resolves the parameters' targets through the outbound policy.
    pub async fn resolve(params: &FanoutParams, policy: &OutboundPolicy) -> Result<Self, ExperimentError> {
        let kinds = params.request_kinds();
        if kinds.is_empty() {
            return Err(ExperimentError::Internal("no target in validated parameters".into()));
        }
        // Kinds from `targets` carry weights; URLs take turns.
        let order = match kinds.iter().map(|kind| kind.target.map(|target| target.weight)).collect::<Option<Vec<u32>>>() {
            Some(weights) => Order::Weighted(weighted_cycle(&weights)),
            None => Order::Cycle,
        };
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut templates = Vec::with_capacity(kinds.len());
        let mut labels: Vec<EndpointLabel> = Vec::new();
        let mut label_index: HashMap<String, usize> = HashMap::new();
        for kind in kinds {
            let key = kind.key();
            let label = *label_index.entry(key.clone()).or_insert_with(|| {
                labels.push(EndpointLabel {
                    key,
                    name: kind.target.and_then(|target| target.name.clone()),
                    method: kind.method.as_str(),
                    url: kind.url.to_string(),
                });
                labels.len() - 1
            });
            let url = parse(&kind.url.replace("{i}", "0"))?;
            let endpoint = endpoint_index(&mut endpoints, &url, policy).await?;
            // A template stays raw so `{i}` is not percent-encoded; a plain URL is normalized.
            let path = match kind.url.contains("{i}") {
                true => template_path(kind.url),
                false => url[Position::BeforePath..Position::AfterQuery].to_string(),
            };
            PathAndQuery::try_from(path.replace("{i}", "0"))
                .map_err(|error| ExperimentError::Refused(format!("url path is not valid: {error}")))?;
            let mut headers = HeaderMap::new();
            for (name, value) in params.headers.iter().chain(kind.target.and_then(|target| target.headers.as_ref())).flatten() {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ExperimentError::Refused(format!("{name} is not a valid header name")))?;
                let value = HeaderValue::from_str(value)
                    .map_err(|_| ExperimentError::Refused(format!("the value of {name} is not a valid header value")))?;
                headers.insert(name, value);
            }
            let method = kind.method.to_http();
            let body = kind
                .target
                .and_then(|target| target.body.as_ref())
                .or(params.body.as_ref())
                .map_or_else(Bytes::new, |body| Bytes::from(body.clone()));
            let http1 = EncodedRequest::new(&RequestParts {
                method: &method,
                path: &path,
                host: &endpoints[endpoint].authority,
                headers: &headers,
                body: &body,
                keep_alive: params.keep_alive,
            });
            templates.push(RequestTemplate { kind: label, endpoint, numbered: path.contains("{i}"), path, method, headers, body, http1 });
        }
        Ok(FanoutPlan { endpoints, load: LoadPlan::of(params), labels, templates, order })
    }

    /// The kind of request `index`.
    pub fn request(&self, index: u64) -> &RequestTemplate {
        let kind = match &self.order {
            Order::Cycle => (index % self.templates.len() as u64) as usize,
            Order::Weighted(cycle) => usize::from(cycle[(index % cycle.len() as u64) as usize]),
        };
        &self.templates[kind]
    }

    /// Whether any endpoint is `https`.
    pub fn needs_tls(&self) -> bool {
        self.endpoints.iter().any(|endpoint| endpoint.tls_name.is_some())
    }
}

/// The index of `url`'s endpoint, resolving and checking it the first time it is seen.
async fn endpoint_index(endpoints: &mut Vec<Endpoint>, url: &Url, policy: &OutboundPolicy) -> Result<usize, ExperimentError> {
    let authority = authority(url);
    let tls = url.scheme() == "https";
    if let Some(index) = endpoints.iter().position(|endpoint| endpoint.authority == authority && endpoint.tls_name.is_some() == tls) {
        return Ok(index);
    }
    policy.check_url(url).map_err(ExperimentError::Refused)?;
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses = policy.resolve(host, port).await.map_err(ExperimentError::Refused)?;
    HeaderValue::from_str(&authority).map_err(|_| ExperimentError::Refused(format!("{authority} is not a valid host")))?;
    let tls_name = match tls {
        true => Some(server_name(host).ok_or_else(|| ExperimentError::Refused(format!("{host} is not a valid TLS server name")))?),
        false => None,
    };
    endpoints.push(Endpoint { authority, address: addresses[0], tls_name });
    Ok(endpoints.len() - 1)
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
        let plan =
            FanoutPlan::resolve(&params(serde_json::json!({"url": "http://127.0.0.1:9/n/{i}", "count": 3})), &OutboundPolicy::default())
                .await
                .unwrap();
        assert_eq!(plan.endpoints.len(), 1);
        assert_eq!(plan.endpoints[0].authority, "127.0.0.1:9");
        assert_eq!(plan.request(41).path(41), "/n/41");
        assert_eq!(plan.labels[0].key, "GET http://127.0.0.1:9/n/{i}");
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
        assert_eq!((plan.request(1).endpoint, plan.request(1).path(1)), (0, Cow::Borrowed("/b?c=1")));
        let keys: Vec<&str> = plan.labels.iter().map(|label| label.key.as_str()).collect();
        assert_eq!(keys, ["GET http://127.0.0.1:9/a", "GET http://127.0.0.1:9/b?c=1", "GET http://localhost:10/"]);
        assert_eq!((plan.request(4).kind, plan.request(5).kind), (1, 2));
        assert_eq!((plan.request(5).endpoint, plan.request(5).path(5)), (1, Cow::Borrowed("/")));
    }

    #[tokio::test]
    async fn weighted_targets_carry_their_own_method_headers_and_body() {
        let plan = FanoutPlan::resolve(
            &params(serde_json::json!({
                "count": 8, "headers": {"x-run": "7", "x-kind": "shared"}, "body": "shared",
                "targets": [
                    {"url": "http://127.0.0.1:9/a/{i}", "weight": 3, "name": "reads"},
                    {"url": "https://localhost:9/b", "method": "POST", "headers": {"x-kind": "own"}, "body": "own"}
                ]
            })),
            &OutboundPolicy::default(),
        )
        .await
        .unwrap();
        assert_eq!(plan.endpoints.len(), 2);
        assert!(plan.needs_tls());
        assert_eq!(plan.endpoints[1].scheme(), "https");
        let kinds: Vec<usize> = (0..8).map(|index| plan.request(index).endpoint).collect();
        assert_eq!(kinds, [0, 0, 1, 0, 0, 0, 1, 0]);
        let (first, second) = (plan.request(0), plan.request(2));
        assert_eq!((first.method.as_str(), first.path(4).as_ref(), &first.body[..]), ("GET", "/a/4", &b"shared"[..]));
        assert_eq!((second.method.as_str(), second.path(2).as_ref(), &second.body[..]), ("POST", "/b", &b"own"[..]));
        assert_eq!(first.headers["x-kind"], "shared");
        assert_eq!(second.headers["x-kind"], "own");
        assert_eq!(second.headers["x-run"], "7");
        let keys: Vec<&str> = plan.labels.iter().map(|label| label.key.as_str()).collect();
        assert_eq!(keys, ["reads", "POST https://localhost:9/b"]);
    }

    #[tokio::test]
    async fn hosts_outside_the_allowlist_are_refused() {
        let refused = FanoutPlan::resolve(&params(serde_json::json!({"url": "http://192.0.2.1/", "count": 1})), &OutboundPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(refused, ExperimentError::Refused(_)), "{refused:?}");
    }
}
