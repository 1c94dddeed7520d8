//! What a fan-out reports: the final report, the live progress snapshots and the per-second
//! time series, all built from the tally.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::breakdown::{EndpointLabel, EndpointProgress, EndpointStats, endpoint_stats, live};
use super::load::LoadPlan;
use super::shards::{RecordedLatency, ShardSummary};
use super::tally::{Interval, SharedTally};
use super::thresholds::ThresholdResult;
use crate::cpu::CpuUsage;
use crate::stats::{HistogramBucket, LatencySummary, log_buckets, millis};

/// The longest time series kept: a day of seconds, about 3 MiB.
const MAX_SERIES_SECONDS: usize = 86_400;

/// The load model that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    /// Each worker sends its next request when the previous one is answered.
    Closed,
    /// Requests arrive on a schedule whatever the server does.
    Open,
}

/// One second of the run, for charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecondStats {
    /// Seconds since the start (1 is the first second).
    pub second: u64,
    /// Requests finished in that second.
    pub requests: u64,
    /// Failed requests in that second.
    pub errors: u64,
    /// Median latency of its responses.
    pub p50_ms: f64,
    /// 99th percentile latency of its responses.
    pub p99_ms: f64,
}

/// The report of an `http-fanout` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FanoutReport {
    /// `closed` or `open`.
    #[schema(inline)]
    pub model: LoadModel,
    /// Requests sent (responses plus errors).
    pub requests: u64,
    /// Requests that got a response, whatever its status.
    pub responses: u64,
    /// Open model: arrivals not sent because every connection was busy and the backlog was full.
    pub dropped: u64,
    /// Responses per status code.
    pub status_counts: BTreeMap<String, u64>,
    /// Failed requests per kind: `connect_refused`, `connect`, `connect_timeout`, `timeout`,
    /// `pool_timeout`, `connection_closed`, `protocol`, `invalid_request`.
    pub error_counts: BTreeMap<String, u64>,
    /// Failed requests (transport errors and statuses ≥ 400) over all requests.
    pub error_rate: f64,
    /// Wall time from the first request to the last.
    pub elapsed_ms: f64,
    /// Requests finished per second over the run.
    pub achieved_rps: f64,
    /// Open model: the mean rate the schedule asked for.
    pub target_rps: Option<f64>,
    /// Latency from each request's intended start to its last body byte: in the open model this
    /// includes waiting for a connection (coordinated omission corrected, like wrk2).
    #[schema(inline)]
    pub latency: LatencySummary,
    /// Latency from sending to the last body byte (uncorrected service time).
    #[schema(inline)]
    pub service_time: LatencySummary,
    /// `latency` in buckets doubling from 0.1 ms, for charts.
    #[schema(inline)]
    pub histogram: Vec<HistogramBucket>,
    /// Requests, errors, p50 and p99 per second.
    #[schema(inline)]
    pub series: Vec<SecondStats>,
    /// Connections opened over the run (more than `max_connections` only when some were lost
    /// and reopened, or with `keep_alive` off). With `pool: shared`, those the shared pool
    /// opened while the run lasted (0 when it found them warm; other users of the pool count too).
    pub connections_opened: u64,
    /// The connection cap the run kept to: never more connections open at once.
    pub max_connections: u32,
    /// Request bytes written (request line, headers, body); over HTTP/2, whose headers are
    /// compressed, the HTTP/1.1 size, an upper bound. With `pool: shared`, the size the
    /// fan-out's own client would write (the shared client adds `user-agent` and `accept`).
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Each endpoint's own figures (key, counts, statuses, errors, latency, rate), one entry per
    /// request kind (a `targets` entry, one of `urls`, or the `url` template) in the order the
    /// parameters give them; entries alike in method and URL are one endpoint.
    #[serde(default)]
    pub endpoints: Vec<EndpointStats>,
    /// The CPU the run used: its worker threads (all of the sending and receiving) and the
    /// job's few polls on the control plane (progress, the report). A sharded job: its shards'
    /// sum. With `pool: shared`, the polls of its workers on the control plane only (scope
    /// `shared_runtime`): the shared client's connection tasks are not counted.
    pub cpu: CpuUsage,
    /// Requests per CPU-second (`requests` over `cpu.total_ms`): what a load generator leaves of
    /// the machine.
    pub requests_per_cpu_second: f64,
    /// CPU microseconds per request.
    pub cpu_micros_per_request: f64,
    /// Each threshold given, with the observed value and whether it passed.
    #[schema(inline)]
    pub thresholds: Vec<ThresholdResult>,
    /// A sharded job: each shard's job, replica and share of the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<ShardSummary>>,
    /// A shard: its recorded latencies, which the sharded job merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<RecordedLatency>,
}

/// A live snapshot, published a few times per second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutProgress {
    /// Requests finished so far.
    pub completed: u64,
    /// Requests to send in all, when known.
    pub total: Option<u64>,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Open-model arrivals dropped so far.
    pub dropped: u64,
    /// Requests finished per second since the previous snapshot.
    pub current_rps: f64,
    /// The median latency so far.
    pub p50_ms: f64,
    /// The 99th percentile latency so far.
    pub p99_ms: f64,
    /// Time since the first request.
    pub elapsed_ms: f64,
    /// The most recent complete second, for live charts.
    pub last_second: Option<SecondStats>,
    /// Each endpoint's live figures, in the report's `endpoints` order, when there are 2 to 20
    /// endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<EndpointProgress>>,
}

/// Builds snapshots and the time series as the run goes.
pub struct Reporter {
    started: Instant,
    total: Option<u64>,
    last_snapshot: (Instant, u64),
    series: Vec<SecondStats>,
}

impl Reporter {
    /// A reporter for a run that started at `started` and sends `total` requests if known.
    pub fn new(started: Instant, total: Option<u64>) -> Self {
        Reporter { started, total, last_snapshot: (started, 0), series: Vec::new() }
    }

    /// Closes the current second of the time series.
    pub fn close_second(&mut self, tally: &SharedTally) {
        self.push_second(tally.take_interval());
    }

    fn push_second(&mut self, Interval { requests, errors, latency }: Interval) {
        if self.series.len() < MAX_SERIES_SECONDS {
            let summary = LatencySummary::from_micros(&latency);
            self.series.push(SecondStats {
                second: self.series.len() as u64 + 1,
                requests,
                errors,
                p50_ms: summary.p50_ms,
                p99_ms: summary.p99_ms,
            });
        }
    }

    /// A progress snapshot now, with the live figures of `labels`' endpoints when they are few.
    pub fn snapshot(&mut self, tally: &SharedTally, labels: &[EndpointLabel]) -> FanoutProgress {
        let merged = tally.merged();
        let completed = tally.completed.load(Ordering::Relaxed);
        let (last_at, last_completed) = self.last_snapshot;
        let window = last_at.elapsed().as_secs_f64();
        self.last_snapshot = (Instant::now(), completed);
        let latency = LatencySummary::from_micros(&merged.latency);
        let elapsed = self.started.elapsed();
        FanoutProgress {
            completed,
            total: self.total,
            in_flight: tally.in_flight.load(Ordering::Relaxed),
            errors: merged.error_count(),
            dropped: tally.dropped.load(Ordering::Relaxed),
            current_rps: if window > 0.0 { completed.saturating_sub(last_completed) as f64 / window } else { 0.0 },
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            elapsed_ms: millis(elapsed),
            last_second: self.series.last().cloned(),
            endpoints: live(labels, &tally.kinds, &merged, elapsed),
        }
    }

    /// The final report, with the breakdown of `labels`' endpoints and the CPU the run used; a
    /// shard's (`load.is_shard`) with its recorded latencies for the merge.
    pub fn report(
        mut self,
        tally: &SharedTally,
        labels: &[EndpointLabel],
        model: LoadModel,
        target_rps: Option<f64>,
        load: &LoadPlan,
        cpu: CpuUsage,
    ) -> FanoutReport {
        let elapsed = self.started.elapsed();
        let last_second = tally.take_interval();
        if last_second.requests > 0 || self.series.is_empty() {
            self.push_second(last_second);
        }
        let merged = tally.merged();
        let kinds = tally.kinds.take_merged();
        let responses: u64 = merged.statuses.values().sum();
        let requests = responses + merged.error_count();
        let failed_statuses: u64 = merged.statuses.iter().filter(|(status, _)| **status >= 400).map(|(_, count)| count).sum();
        FanoutReport {
            model,
            requests,
            responses,
            dropped: tally.dropped.load(Ordering::Relaxed),
            status_counts: merged.statuses.iter().map(|(status, count)| (status.to_string(), *count)).collect(),
            error_counts: merged.errors.iter().map(|(kind, count)| (kind.to_string(), *count)).collect(),
            error_rate: ratio(merged.error_count() + failed_statuses, requests),
            elapsed_ms: millis(elapsed),
            achieved_rps: per_second(requests, elapsed),
            target_rps,
            latency: LatencySummary::from_micros(&merged.latency),
            service_time: LatencySummary::from_micros(&merged.service_time),
            histogram: log_buckets(&merged.latency),
            series: self.series,
            connections_opened: tally.connections_opened.load(Ordering::Relaxed),
            max_connections: load.max_connections,
            bytes_sent: tally.bytes_sent.load(Ordering::Relaxed),
            bytes_received: merged.body_bytes,
            endpoints: endpoint_stats(labels, &kinds, &merged, elapsed),
            requests_per_cpu_second: cpu.per_cpu_second(requests),
            cpu_micros_per_request: cpu.micros_per(requests),
            cpu,
            thresholds: Vec::new(),
            shards: None,
            recorded: load.is_shard.then(|| RecordedLatency::of(&merged, &kinds)),
        }
    }
}

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

pub(super) fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() { 0.0 } else { count as f64 / elapsed.as_secs_f64() }
}
