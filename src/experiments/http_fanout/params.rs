//! Parameters of `http-fanout` and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use super::request_spec::{TargetSpec, validate_body, validate_headers, validate_targets, validate_template};
use super::shards::{ShardOf, validate_sharding};
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
/// The longest run by duration: a day.
pub const MAX_DURATION_MS: u64 = 86_400_000;
/// The most steps a ramp may have.
pub const MAX_RAMP_STEPS: usize = 100;

/// The HTTP method of every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    #[default]
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl HttpMethod {
    /// The method's name, as on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }

    /// The method for hyper.
    pub fn to_http(self) -> hyper::Method {
        match self {
            HttpMethod::Get => hyper::Method::GET,
            HttpMethod::Head => hyper::Method::HEAD,
            HttpMethod::Post => hyper::Method::POST,
            HttpMethod::Put => hyper::Method::PUT,
            HttpMethod::Patch => hyper::Method::PATCH,
            HttpMethod::Delete => hyper::Method::DELETE,
            HttpMethod::Options => hyper::Method::OPTIONS,
        }
    }
}

/// The protocol requests use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// HTTP/1.1: one request at a time per connection.
    #[default]
    Http1,
    /// HTTP/2: many streams per connection; over `http` with prior knowledge (h2c), over
    /// `https` negotiated by ALPN (a server that does not offer `h2` fails the request as `alpn`).
    Http2,
}

/// How the closed model's worker threads wait for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusyPollMode {
    /// Worker threads sleep until a socket is ready, woken for every answer or two (the default
    /// with `pool: shared`).
    Off,
    /// Each worker thread keeps polling its sockets while requests finished within the last
    /// 200 µs, and sleeps as usual once none has: a higher rate against a fast target for a
    /// core's worth of CPU; a slow target costs next to nothing.
    Adaptive,
    /// The default with `pool: own`: a worker thread carrying 64 requests in flight or more
    /// sleeps a short pause (5-120 µs, adapted so that a pause collects about half their
    /// answers), then handles every ready answer at once; with fewer, or while no answer comes,
    /// it waits as `off` does. In `bench/fanout.sh` it beat wrk and oha on rate and wrk on
    /// requests per CPU-second, where `off` sent fewer requests per second and `adaptive` spent
    /// a whole core.
    Batched,
}

/// Whose connections the requests use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    /// The fan-out's own connections on worker threads of its own, opened for the job and
    /// closed with it: exactly `max_connections`, the least CPU per request (the default: for
    /// load).
    #[default]
    Own,
    /// The service's shared HTTP client (HTTP/1.1), whose pooled connections outlive the job:
    /// a later job to the same host finds them warm and opens none. Requests in flight stay
    /// within `max_connections`, connections only about (the pool may open one more while a
    /// used one is on its way back to it, and keeps up to 32 idle per host). For smoke checks
    /// and probes rather than load.
    Shared,
}

/// One stage of an open-model ramp.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RampStep {
    /// Arrivals per second during the step (0 pauses).
    pub rate: f64,
    /// How long the step lasts.
    pub duration_ms: u64,
}

/// Parameters of an `http-fanout` run. Give `url` or `targets` with `count` or `duration_ms`, or `urls`.
/// Without `rate` or `ramp` the load model is closed (each worker sends its next request when
/// the previous one is answered); with them it is open (requests arrive on a fixed schedule
/// whatever the server does, and latency is measured from each request's intended start).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FanoutParams {
    /// A URL template: `{i}` in its path or query becomes the request's index (0, 1, 2, …).
    #[schema(example = "http://127.0.0.1:8080/targets/hello/{i}")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How many requests to send (1 to 100,000,000; closed model). With `urls` it defaults to
    /// their number and cycles through them; with `duration_ms` it is an upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Explicit URLs (1 to 10,000), requested in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// A weighted mix of requests (1 to 1000 entries), each with its own URL template, method,
    /// headers and body; requests take turns in proportion to the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetSpec>>,
    /// The method of every request (a target's own `method` overrides it).
    #[serde(default)]
    #[schema(inline)]
    pub method: HttpMethod,
    /// Extra headers on every request (at most 32; not `Host`, framing or hop-by-hop headers,
    /// and no credentials: parameters are stored with the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// The body of every request, sent with `Content-Length` (at most 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The most connections open at once (1 to 4096); never exceeded.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// The most requests in flight at once (aiometer's `max_at_once`); defaults to
    /// `max_connections`. Over HTTP/1.1 at most `max_connections` are in flight anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The most requests started per second (aiometer's `max_per_second`), spread evenly (closed model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_second: Option<f64>,
    /// How long to send (closed model: stop starting requests after it; open model: the
    /// schedule's length with `rate`). Up to a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Open model: requests arriving per second, evenly spaced, for `duration_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open model: consecutive stages of constant arrival rate, instead of `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub ramp: Option<Vec<RampStep>>,
    /// Open model: how long an arrival may wait for a free connection; past it the request is
    /// not sent and counted as `pool_timeout`. Unset, arrivals wait while the backlog (as long
    /// as `concurrency`) has room; arrivals finding it full while every connection is busy are
    /// counted as `dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_timeout_ms: Option<u64>,
    /// Time limit for opening a connection (defaults to `timeout_ms`); counted as `connect_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Reuse connections (true) or open one per request and send `Connection: close` (false; HTTP/1.1 only).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: bool,
    /// `http1`, or `http2` (h2c: `concurrency` streams shared over `max_connections` connections).
    #[serde(default)]
    #[schema(inline)]
    pub http_version: HttpVersion,
    /// How the closed model's worker threads wait for answers: `batched` (short pauses, then
    /// every ready answer at once, with 64 requests in flight or more per worker thread; the
    /// default with `pool: own`), `off` (sleep until a socket is ready; the default and the only
    /// choice with `pool: shared`) or `adaptive` (spin while answers keep coming). The open
    /// model always waits as `off` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub busy_poll: Option<BusyPollMode>,
    /// `own` (the fan-out's own connections, opened for the job; the default) or `shared` (the
    /// service's pooled HTTP/1.1 client, whose connections stay warm between jobs).
    #[serde(default)]
    #[schema(inline)]
    pub pool: PoolMode,
    /// Time limit for one request, from connecting to the last body byte (1 to 600,000 ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Limits the run must meet, or the job fails with reason `thresholds` (the report is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub thresholds: Option<Thresholds>,
    /// Split the load into this many child jobs (2 to 64), which any replica sharing the
    /// PostgreSQL store may claim; the job's report merges theirs exactly. Requests, connections,
    /// `concurrency` and the rates are divided among the shards; `thresholds` apply to the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// Internal, not a launch parameter (absent from the schema, refused by validation): set by
    /// a sharded job on the parameters of each shard it stores, to say which part of the load
    /// that shard sends. Its report then carries its recorded latencies for the merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub shard: Option<ShardOf>,
}

fn default_max_connections() -> u32 {
    16
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_keep_alive() -> bool {
    true
}

/// One kind of request the parameters name: the `url` template, one of `urls`, or one of
/// `targets` (which may also set its method, headers, body, weight and name).
#[derive(Debug)]
pub struct RequestKind<'a> {
    /// Where the URL was given, for error messages: `url`, `urls[2]`, `targets[1].url`.
    pub field: String,
    /// The URL, `{i}` included.
    pub url: &'a str,
    /// The method its requests use.
    pub method: HttpMethod,
    /// The target entry, when the kind comes from `targets`.
    pub target: Option<&'a TargetSpec>,
}

impl RequestKind<'_> {
    /// The kind's key in the per-endpoint breakdown and in `thresholds.per_target`: the target's
    /// `name`, or the method and the URL as written (`GET http://host/items/{i}`).
    pub fn key(&self) -> String {
        match self.target.and_then(|target| target.name.as_ref()) {
            Some(name) => name.clone(),
            None => format!("{} {}", self.method.as_str(), self.url),
        }
    }
}

impl FanoutParams {
    /// The kinds of request, in order: the `url` template, each of `urls`, or each of `targets`
    /// (the first of the three given; validation allows exactly one).
    pub fn request_kinds(&self) -> Vec<RequestKind<'_>> {
        let plain = |field: String, url| RequestKind { field, url, method: self.method, target: None };
        match (&self.url, &self.urls, &self.targets) {
            (Some(template), _, _) => vec![plain("url".into(), template)],
            (None, Some(urls), _) => urls.iter().enumerate().map(|(i, url)| plain(format!("urls[{i}]"), url)).collect(),
            (None, None, Some(targets)) => targets
                .iter()
                .enumerate()
                .map(|(i, target)| RequestKind {
                    field: format!("targets[{i}].url"),
                    url: &target.url,
                    method: target.method.unwrap_or(self.method),
                    target: Some(target),
                })
                .collect(),
            (None, None, None) => Vec::new(),
        }
    }

    /// Whether requests follow a schedule (open model) rather than answers (closed model).
    pub fn is_open_model(&self) -> bool {
        self.rate.is_some() || self.ramp.is_some()
    }

    /// The open model's stages: `ramp`, or one stage of `rate` for `duration_ms`.
    pub fn stages(&self) -> Vec<RampStep> {
        match (&self.ramp, self.rate) {
            (Some(ramp), _) => ramp.clone(),
            (None, Some(rate)) => vec![RampStep { rate, duration_ms: self.duration_ms.unwrap_or(0) }],
            (None, None) => Vec::new(),
        }
    }

    /// The closed model's request cap: `count`, or the number of `urls` unless a duration bounds the run.
    pub fn request_cap(&self) -> Option<u64> {
        match (self.count, &self.urls, self.duration_ms) {
            (Some(count), _, _) => Some(count),
            (None, Some(urls), None) => Some(urls.len() as u64),
            _ => None,
        }
    }
}

/// Checks that a URL is one the fan-out can request: `http` or `https`, with a host.
pub fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|error| format!("not a valid URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not supported; use http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(url)
}

impl Validate for FanoutParams {
    fn validate(&self, errors: &mut FieldErrors) {
        let given = [self.url.is_some(), self.urls.is_some(), self.targets.is_some()].iter().filter(|given| **given).count();
        let needs_count = self.count.is_none() && self.duration_ms.is_none() && !self.is_open_model();
        match (&self.url, &self.urls, &self.targets) {
            _ if given > 1 => errors.add("url", "give one of url, urls or targets"),
            (None, None, None) => errors.add("url", "required unless urls or targets is given"),
            (Some(template), _, _) => {
                errors.check(!needs_count, "count", "required with url unless duration_ms, rate or ramp is given");
                validate_template(template, "url", errors);
            }
            (_, _, Some(targets)) => {
                errors.check(!needs_count, "count", "required with targets unless duration_ms, rate or ramp is given");
                validate_targets(targets, errors);
            }
            (None, Some(urls), None) => {
                errors.check(
                    (1..=MAX_URLS).contains(&urls.len()),
                    "urls",
                    format!("must hold between 1 and {MAX_URLS} URLs, got {}", urls.len()),
                );
                for (index, raw) in urls.iter().enumerate() {
                    if let Err(reason) = check_url(raw) {
                        errors.add(format!("urls[{index}]"), reason);
                    }
                }
            }
        }
        if let Some(count) = self.count {
            errors.range("count", count, 1, MAX_COUNT);
        }
        if let Some(headers) = &self.headers {
            validate_headers(headers, "headers", errors);
        }
        if let Some(body) = &self.body {
            validate_body(body, "body", errors);
        }
        if let Some(duration) = self.duration_ms {
            errors.range("duration_ms", duration, 1, MAX_DURATION_MS);
        }
        self.validate_open_model(errors);
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
        errors.check(self.keep_alive || self.http_version == HttpVersion::Http1, "keep_alive", "HTTP/2 always keeps its connections");
        if let Some(connect) = self.connect_timeout_ms {
            errors.range("connect_timeout_ms", connect, 1, MAX_TIMEOUT_MS);
        }
        if self.pool == PoolMode::Shared {
            self.validate_shared_pool(errors);
        }
        if let Some(thresholds) = &self.thresholds {
            let keys: Vec<String> = self.request_kinds().iter().map(RequestKind::key).collect();
            thresholds.validate(&keys, errors);
        }
        validate_sharding(self, errors);
    }
}

impl FanoutParams {
    /// What the shared client cannot do: it speaks HTTP/1.1, keeps its connections, connects
    /// within its own limit, and its tasks run on the control plane, which must not spin.
    fn validate_shared_pool(&self, errors: &mut FieldErrors) {
        errors.check(self.http_version == HttpVersion::Http1, "http_version", "the shared pool speaks HTTP/1.1 only; use pool: own");
        errors.check(self.keep_alive, "keep_alive", "the shared pool always keeps its connections; use pool: own");
        errors.check(
            self.connect_timeout_ms.is_none(),
            "connect_timeout_ms",
            "the shared pool connects within its own 5 s limit; use pool: own",
        );
        errors.check(
            matches!(self.busy_poll, None | Some(BusyPollMode::Off)),
            "busy_poll",
            "only the fan-out's own worker threads pause or spin; leave busy_poll out or use pool: own",
        );
    }

    fn validate_open_model(&self, errors: &mut FieldErrors) {
        let valid_rate = |rate: f64| rate.is_finite() && (0.0..=MAX_PER_SECOND).contains(&rate);
        if let Some(rate) = self.rate {
            errors.check(valid_rate(rate) && rate > 0.0, "rate", format!("must be above 0 and at most {MAX_PER_SECOND}, got {rate}"));
            errors.check(self.duration_ms.is_some(), "duration_ms", "required with rate");
            errors.check(self.ramp.is_none(), "ramp", "give either rate or ramp, not both");
        }
        if let Some(ramp) = &self.ramp {
            errors.check(
                (1..=MAX_RAMP_STEPS).contains(&ramp.len()),
                "ramp",
                format!("must hold between 1 and {MAX_RAMP_STEPS} steps, got {}", ramp.len()),
            );
            for (index, step) in ramp.iter().enumerate() {
                errors.check(valid_rate(step.rate), format!("ramp[{index}].rate"), format!("must be between 0 and {MAX_PER_SECOND}"));
                errors.range(&format!("ramp[{index}].duration_ms"), step.duration_ms, 1, MAX_DURATION_MS);
            }
            errors.check(self.duration_ms.is_none(), "duration_ms", "the ramp's steps give the duration");
        }
        if self.is_open_model() {
            errors.check(self.count.is_none(), "count", "not used by the open model: the schedule sets the count");
            errors.check(self.max_per_second.is_none(), "max_per_second", "not used by the open model: rate sets the pace");
            let arrivals: f64 = self.stages().iter().map(|step| step.rate * step.duration_ms as f64 / 1000.0).sum();
            errors.check(arrivals <= MAX_COUNT as f64, "rate", format!("the schedule has {arrivals:.0} requests, more than {MAX_COUNT}"));
        } else {
            errors.check(self.pool_timeout_ms.is_none(), "pool_timeout_ms", "only the open model waits for connections");
        }
        if let Some(wait) = self.pool_timeout_ms {
            errors.range("pool_timeout_ms", wait, 1, MAX_TIMEOUT_MS);
        }
    }
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
        assert!(fields(&params(serde_json::json!({"url": "http://127.0.0.1/{i}", "duration_ms": 500}))).is_empty());
        assert_eq!(fields(&params(serde_json::json!({"url": "ftp://127.0.0.1/{i}", "count": 1}))), ["url"]);
        assert!(fields(&params(serde_json::json!({"url": "https://127.0.0.1/{i}", "count": 1}))).is_empty());
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
        assert_eq!(list.request_cap(), Some(2));
        let timed = params(serde_json::json!({"urls": ["http://127.0.0.1/a"], "duration_ms": 100}));
        assert_eq!(timed.request_cap(), None);
    }

    #[test]
    fn the_open_model_needs_a_schedule_and_refuses_closed_settings() {
        let open = params(serde_json::json!({"url": "http://127.0.0.1/", "rate": 100.0}));
        assert_eq!(fields(&open), ["duration_ms"]);
        let mixed = params(serde_json::json!({"url": "http://127.0.0.1/", "rate": 100.0, "duration_ms": 10,
                                              "count": 5, "max_per_second": 3.0}));
        assert_eq!(fields(&mixed), ["count", "max_per_second"]);
        let ramp = params(serde_json::json!({"url": "http://127.0.0.1/", "ramp": [{"rate": 10.0, "duration_ms": 0}]}));
        assert_eq!(fields(&ramp), ["ramp[0].duration_ms"]);
        let closed = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool_timeout_ms": 5}));
        assert_eq!(fields(&closed), ["pool_timeout_ms"]);
    }

    #[test]
    fn the_shared_pool_refuses_what_only_the_own_pool_does() {
        let shared = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool": "shared"}));
        assert!(fields(&shared).is_empty());
        let refused = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool": "shared", "http_version": "http2",
                                                "connect_timeout_ms": 5, "busy_poll": "adaptive"}));
        assert_eq!(fields(&refused), ["http_version", "connect_timeout_ms", "busy_poll"]);
        let batched = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool": "shared", "busy_poll": "batched"}));
        assert_eq!(fields(&batched), ["busy_poll"]);
        let sleeping = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool": "shared", "busy_poll": "off"}));
        assert!(fields(&sleeping).is_empty());
        let closing = params(serde_json::json!({"url": "http://127.0.0.1/", "count": 1, "pool": "shared", "keep_alive": false}));
        assert_eq!(fields(&closing), ["keep_alive"]);
    }
}
