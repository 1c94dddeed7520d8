//! `http-fanout`: many HTTP requests under a connection cap, an in-flight cap and a start-rate
//! cap, with HdrHistogram latency. Each connection is owned by one worker task; workers take
//! request indices from a shared counter, so `max_connections` is exact.

pub mod connection;
pub mod params;
pub mod plan;
pub mod tally;
pub mod thresholds;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use utoipa::ToSchema;

use self::connection::{Connection, FailureKind};
use self::params::{FanoutParams, HttpMethod, check_url};
use self::plan::FanoutPlan;
use self::tally::SharedTally;
use self::thresholds::{Observed, ThresholdResult, describe_missed};
use super::{Experiment, ExperimentError};
use crate::jobs::context::{JobContext, PROGRESS_INTERVAL};
use crate::state::Services;
use crate::stats::{LatencySummary, millis};
use crate::validation::FieldErrors;

/// The experiment.
pub struct HttpFanout;

/// The report of an `http-fanout` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FanoutReport {
    /// Requests sent (responses plus errors).
    pub requests: u64,
    /// Requests that got a response, whatever its status.
    pub responses: u64,
    /// Responses per status code.
    pub status_counts: BTreeMap<String, u64>,
    /// Failed requests per kind: `connect_refused`, `connect`, `timeout`, `connection_closed`,
    /// `protocol`, `invalid_request`.
    pub error_counts: BTreeMap<String, u64>,
    /// Wall time from the first request to the last.
    pub elapsed_ms: f64,
    /// Requests finished per second over the run.
    pub achieved_rps: f64,
    /// Response latency (send to last body byte).
    #[schema(inline)]
    pub latency: LatencySummary,
    /// Connections opened over the run (more than `max_connections` only when some were lost
    /// and reopened).
    pub connections_opened: u64,
    /// The connection cap the run kept to: never more connections open at once.
    pub max_connections: u32,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// Failed requests (transport errors and statuses ≥ 400) over all requests.
    pub error_rate: f64,
    /// Each threshold given, with the observed value and whether it passed.
    #[schema(inline)]
    pub thresholds: Vec<ThresholdResult>,
}

/// A live snapshot, published a few times per second.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutProgress {
    /// Requests finished so far.
    pub completed: u64,
    /// Requests to send in all.
    pub total: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Requests finished per second since the previous snapshot.
    pub current_rps: f64,
    /// The 99th percentile latency so far.
    pub p99_ms: f64,
    /// Time since the first request.
    pub elapsed_ms: f64,
}

/// What every worker shares.
struct Fanout {
    plan: FanoutPlan,
    method: hyper::Method,
    total: u64,
    /// The next request index to take.
    next: AtomicU64,
    tally: SharedTally,
    /// Present when `concurrency` is below the number of connections.
    in_flight_limit: Option<Semaphore>,
    /// When request `i` may start at the earliest: `start + i / max_per_second`.
    pacing: Option<Pacing>,
    request_timeout: Duration,
}

/// Even spacing of request starts: at most `per_second` begin in any second.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// When request 0 may start.
    pub start: Instant,
    /// Starts per second.
    pub per_second: f64,
}

impl Pacing {
    /// The earliest start of request `index`.
    pub fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.per_second)
    }
}

impl Experiment for HttpFanout {
    const KIND: &'static str = "http-fanout";
    const SUMMARY: &'static str =
        "N HTTP requests with max connections, max in flight and max per second; HdrHistogram latency";
    type Params = FanoutParams;
    type Report = FanoutReport;

    fn example() -> Self::Params {
        FanoutParams {
            url: Some("http://127.0.0.1:8080/targets/hello/{i}".into()),
            count: Some(2000),
            urls: None,
            method: HttpMethod::Get,
            max_connections: 8,
            concurrency: None,
            max_per_second: None,
            timeout_ms: 10_000,
            thresholds: None,
        }
    }

    fn admit(params: &Self::Params, services: &Services, errors: &mut FieldErrors) {
        let policy = &services.outbound;
        let targets: Vec<(String, String)> = match (&params.url, &params.urls) {
            (Some(template), _) => vec![("url".into(), template.replace("{i}", "0"))],
            (None, Some(urls)) => urls.iter().enumerate().map(|(i, url)| (format!("urls[{i}]"), url.clone())).collect(),
            (None, None) => Vec::new(),
        };
        for (field, raw) in targets {
            if let Ok(url) = check_url(&raw) {
                if let Err(reason) = policy.check_url(&url) {
                    errors.add(field, reason);
                }
            }
        }
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let plan = FanoutPlan::resolve(&params, &ctx.services().outbound).await?;
        let total = params.request_count();
        let workers = u64::from(params.max_connections).min(total) as usize;
        let in_flight_limit = params.in_flight_limit() as usize;
        let started = Instant::now();
        let fanout = Arc::new(Fanout {
            plan,
            method: params.method.to_http(),
            total,
            next: AtomicU64::new(0),
            tally: SharedTally::new(),
            in_flight_limit: (in_flight_limit < workers).then(|| Semaphore::new(in_flight_limit)),
            pacing: params.max_per_second.map(|per_second| Pacing { start: started, per_second }),
            request_timeout: Duration::from_millis(params.timeout_ms),
        });

        let mut pool = JoinSet::new();
        for worker in 0..workers {
            pool.spawn(run_worker(fanout.clone(), worker));
        }
        let mut ticker = interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = (started, 0u64);
        loop {
            tokio::select! {
                joined = pool.join_next() => match joined {
                    None => break,
                    Some(Err(error)) if error.is_panic() => {
                        return Err(ExperimentError::Internal(format!("a fan-out worker panicked: {error}")));
                    }
                    Some(_) => {}
                },
                _ = ticker.tick() => {
                    let snapshot = progress(&fanout, started, last);
                    last = (Instant::now(), snapshot.completed);
                    ctx.progress(&snapshot).await;
                }
            }
        }
        ctx.progress(progress(&fanout, started, last)).await;
        let mut report = report(&fanout, started.elapsed(), params.max_connections);
        if let Some(thresholds) = &params.thresholds {
            report.thresholds = thresholds.evaluate(&Observed {
                latency: &report.latency,
                error_rate: report.error_rate,
                achieved_rps: report.achieved_rps,
            });
            let missed = describe_missed(&report.thresholds);
            if !missed.is_empty() {
                let report = serde_json::to_value(&report).map_err(|error| ExperimentError::Internal(error.to_string()))?;
                return Err(ExperimentError::ThresholdsMissed { missed, report });
            }
        }
        Ok(report)
    }
}

async fn run_worker(fanout: Arc<Fanout>, worker: usize) {
    let mut connection: Option<Connection> = None;
    loop {
        let _permit = match &fanout.in_flight_limit {
            Some(limit) => Some(limit.acquire().await.expect("the in-flight semaphore is never closed")),
            None => None,
        };
        let index = fanout.next.fetch_add(1, Ordering::Relaxed);
        if index >= fanout.total {
            return;
        }
        if let Some(pacing) = fanout.pacing {
            sleep_until(pacing.due(index)).await;
        }
        let (endpoint, path) = fanout.plan.request(index);
        let request = Request::builder()
            .method(fanout.method.clone())
            .uri(path.as_ref())
            .header(hyper::header::HOST, &fanout.plan.endpoints[endpoint].authority)
            .body(Empty::<Bytes>::new());
        let Ok(request) = request else {
            fanout.tally.record_error(worker, FailureKind::InvalidRequest.as_str());
            continue;
        };
        fanout.tally.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let outcome = timeout(fanout.request_timeout, send(&fanout, &mut connection, endpoint, request)).await;
        fanout.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(Ok(response)) => {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                fanout.tally.record_response(worker, response.status, micros, response.body_bytes);
            }
            Ok(Err(kind)) => {
                connection = None;
                fanout.tally.record_error(worker, kind.as_str());
            }
            Err(_elapsed) => {
                // The connection may still carry the unfinished response: never reuse it.
                connection = None;
                fanout.tally.record_error(worker, FailureKind::Timeout.as_str());
            }
        }
    }
}

/// Sends one request on the worker's connection, opening one (or replacing one to another
/// endpoint, or one the server closed) first.
async fn send(
    fanout: &Fanout,
    connection: &mut Option<Connection>,
    endpoint: usize,
    request: Request<Empty<Bytes>>,
) -> Result<connection::Response, FailureKind> {
    let reusable = connection.as_mut().is_some_and(|open| open.endpoint == endpoint && open.is_reusable());
    if !reusable {
        *connection = None;
        let address = fanout.plan.endpoints[endpoint].address;
        *connection = Some(Connection::open(endpoint, address).await?);
        fanout.tally.connections_opened.fetch_add(1, Ordering::Relaxed);
    }
    connection.as_mut().expect("a connection was just ensured").exchange(request).await
}

fn progress(fanout: &Fanout, started: Instant, (last_at, last_completed): (Instant, u64)) -> FanoutProgress {
    let tally = fanout.tally.merged();
    let completed = fanout.tally.completed.load(Ordering::Relaxed);
    let window = last_at.elapsed().as_secs_f64();
    FanoutProgress {
        completed,
        total: fanout.total,
        in_flight: fanout.tally.in_flight.load(Ordering::Relaxed),
        errors: tally.error_count(),
        current_rps: if window > 0.0 { (completed - last_completed) as f64 / window } else { 0.0 },
        p99_ms: LatencySummary::from_micros(&tally.latency).p99_ms,
        elapsed_ms: millis(started.elapsed()),
    }
}

fn report(fanout: &Fanout, elapsed: Duration, max_connections: u32) -> FanoutReport {
    let tally = fanout.tally.merged();
    let responses: u64 = tally.statuses.values().sum();
    let requests = responses + tally.error_count();
    let failed_statuses: u64 = tally.statuses.iter().filter(|(status, _)| **status >= 400).map(|(_, count)| count).sum();
    FanoutReport {
        requests,
        responses,
        status_counts: tally.statuses.iter().map(|(status, count)| (status.to_string(), *count)).collect(),
        error_counts: tally.errors.iter().map(|(kind, count)| (kind.to_string(), *count)).collect(),
        elapsed_ms: millis(elapsed),
        achieved_rps: if elapsed.is_zero() { 0.0 } else { requests as f64 / elapsed.as_secs_f64() },
        latency: LatencySummary::from_micros(&tally.latency),
        connections_opened: fanout.tally.connections_opened.load(Ordering::Relaxed),
        max_connections,
        body_bytes: tally.body_bytes,
        error_rate: if requests == 0 { 0.0 } else { (tally.error_count() + failed_statuses) as f64 / requests as f64 },
        thresholds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacing_spreads_starts_evenly() {
        let pacing = Pacing { start: Instant::now(), per_second: 4.0 };
        assert_eq!(pacing.due(0), pacing.start);
        assert_eq!(pacing.due(1) - pacing.start, Duration::from_millis(250));
        assert_eq!(pacing.due(8) - pacing.start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn paced_starts_never_exceed_the_rate_in_any_second() {
        let pacing = Pacing { start: Instant::now(), per_second: 10.0 };
        let starts: Vec<Duration> = (0..100).map(|i| pacing.due(i) - pacing.start).collect();
        for (i, first) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|at| **at < *first + Duration::from_secs(1)).count();
            assert!(in_window <= 10, "{in_window} starts within a second from {first:?}");
        }
    }
}
