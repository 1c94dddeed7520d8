//! The per-endpoint breakdown of a fan-out: each kind of request (a `targets` entry, one of
//! `urls`, or the `url` template) gets its own counts and latency histogram, recorded by index
//! into a fixed vector (no hashing or allocation per request), so memory grows with the number
//! of kinds, never with the number of requests. With a single kind the breakdown is the total,
//! and nothing more is recorded.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::connection::FailureKind;
use super::report::{per_second, ratio};
use super::tally::Tally;
use crate::stats::{LatencySummary, recorded_values};

/// An endpoint's latency keeps two significant digits (within 1%, as Locust rounds response
/// times): about 13 KiB per histogram, against 188 KiB for the total's three digits.
const ENDPOINT_SIGNIFICANT_DIGITS: u8 = 2;
/// The longest latency recorded exactly, as for the total: an hour, in microseconds.
const MAX_TRACKABLE_MICROS: u64 = 3_600_000_000;
/// Each worker thread records into its own copy of the endpoints' tallies while all copies fit
/// in this; beyond it (hundreds of endpoints) threads share one copy, each endpoint under its
/// own lock, so memory stays about 13 KiB per endpoint: 130 MiB for 10,000 URLs.
const PER_THREAD_BUDGET_BYTES: usize = 32 << 20;
/// Progress events carry each endpoint's live figures when there are at most this many.
pub const LIVE_ENDPOINTS: usize = 20;

/// A new endpoint latency histogram in microseconds. `u32` counts: one bucket would need more
/// than four billion samples of one endpoint to saturate.
pub fn endpoint_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_MICROS, ENDPOINT_SIGNIFICANT_DIGITS).expect("histogram bounds are valid constants")
}

/// How the report names an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLabel {
    /// The stable key: the target's `name`, or `METHOD URL` with `{i}` as written.
    pub key: String,
    /// The target's `name`, when given.
    pub name: Option<String>,
    /// The method.
    pub method: &'static str,
    /// The URL as written, `{i}` kept.
    pub url: String,
}

/// What one endpoint recorded on one stripe.
#[derive(Debug, Clone)]
pub struct KindTally {
    /// Responses per status code; a handful of codes at most, so a short list searched in place.
    statuses: Vec<(u16, u64)>,
    /// Failed requests, indexed by [`FailureKind::index`].
    errors: [u64; FailureKind::ALL.len()],
    /// Latency from each request's intended start, in microseconds.
    latency: Histogram<u32>,
    /// Response body bytes received.
    body_bytes: u64,
}

impl KindTally {
    fn new() -> Self {
        KindTally { statuses: Vec::new(), errors: [0; FailureKind::ALL.len()], latency: endpoint_histogram(), body_bytes: 0 }
    }

    /// What a tally taken out of [`KindTallies`] leaves: nothing, in a histogram of a few bytes.
    fn spent() -> Self {
        let latency = Histogram::new(ENDPOINT_SIGNIFICANT_DIGITS).expect("a valid precision");
        KindTally { statuses: Vec::new(), errors: [0; FailureKind::ALL.len()], latency, body_bytes: 0 }
    }

    fn record_response(&mut self, status: u16, latency_micros: u64, body_bytes: u64) {
        match self.statuses.iter_mut().find(|(code, _)| *code == status) {
            Some((_, count)) => *count += 1,
            None => self.statuses.push((status, 1)),
        }
        self.latency.saturating_record(latency_micros.max(1));
        self.body_bytes += body_bytes;
    }

    fn add(&mut self, other: &KindTally) {
        for &(status, count) in &other.statuses {
            match self.statuses.iter_mut().find(|(code, _)| *code == status) {
                Some((_, total)) => *total += count,
                None => self.statuses.push((status, count)),
            }
        }
        for (total, count) in self.errors.iter_mut().zip(other.errors) {
            *total += count;
        }
        self.latency.add(&other.latency).expect("histograms share bounds");
        self.body_bytes += other.body_bytes;
    }

    fn status_counts(&self) -> BTreeMap<String, u64> {
        self.statuses.iter().map(|(status, count)| (status.to_string(), *count)).collect()
    }

    fn error_counts(&self) -> BTreeMap<String, u64> {
        FailureKind::ALL
            .iter()
            .zip(self.errors)
            .filter(|(_, count)| *count > 0)
            .map(|(kind, count)| (kind.as_str().to_string(), count))
            .collect()
    }
}

/// The endpoints' live tallies: `stripes` copies of one [`KindTally`] per endpoint, worker `w`
/// recording into copy `w mod stripes`. Empty with a single endpoint, whose figures are the total's.
pub struct KindTallies {
    kinds: usize,
    stripes: usize,
    /// Stripe-major: endpoint `k` of stripe `s` at `s * kinds + k`. Std mutexes, each held to
    /// record one sample, never across an await.
    cells: Vec<Mutex<KindTally>>,
}

impl KindTallies {
    /// Tallies for `kinds` endpoints recorded by workers on `threads` threads.
    pub fn new(kinds: usize, threads: usize) -> Self {
        if kinds <= 1 {
            return KindTallies { kinds, stripes: 0, cells: Vec::new() };
        }
        let stripes = stripes(kinds, threads);
        KindTallies { kinds, stripes, cells: (0..kinds * stripes).map(|_| Mutex::new(KindTally::new())).collect() }
    }

    fn cell(&self, worker: usize, kind: usize) -> Option<MutexGuard<'_, KindTally>> {
        if self.cells.is_empty() {
            return None;
        }
        Some(self.cells[(worker % self.stripes) * self.kinds + kind].lock().expect("endpoint tally poisoned"))
    }

    /// Records a response to a request of endpoint `kind`.
    pub fn record_response(&self, worker: usize, kind: usize, status: u16, latency_micros: u64, body_bytes: u64) {
        if let Some(mut tally) = self.cell(worker, kind) {
            tally.record_response(status, latency_micros, body_bytes);
        }
    }

    /// Records a failed request of endpoint `kind`.
    pub fn record_error(&self, worker: usize, kind: usize, failure: FailureKind) {
        if let Some(mut tally) = self.cell(worker, kind) {
            tally.errors[failure.index()] += 1;
        }
    }

    /// Each endpoint's tally over all stripes, taken out (the tallies are left spent): for the
    /// final report, so the largest breakdowns are never held twice. Empty with a single endpoint.
    pub fn take_merged(&self) -> Vec<KindTally> {
        let take = |cell: &Mutex<KindTally>| std::mem::replace(&mut *cell.lock().expect("endpoint tally poisoned"), KindTally::spent());
        let Some(first) = self.cells.get(..self.kinds) else {
            return Vec::new();
        };
        let mut merged: Vec<KindTally> = first.iter().map(take).collect();
        for (index, cell) in self.cells.iter().enumerate().skip(self.kinds) {
            merged[index % self.kinds].add(&take(cell));
        }
        merged
    }

    /// Each endpoint's tally over all stripes; empty with a single endpoint.
    pub fn merged(&self) -> Vec<KindTally> {
        let mut merged = vec![KindTally::new(); if self.cells.is_empty() { 0 } else { self.kinds }];
        for (index, cell) in self.cells.iter().enumerate() {
            merged[index % self.kinds].add(&cell.lock().expect("endpoint tally poisoned"));
        }
        merged
    }
}

/// How many copies of `kinds` endpoints' tallies fit the budget, one per thread at most.
fn stripes(kinds: usize, threads: usize) -> usize {
    let bytes = endpoint_histogram().distinct_values() * size_of::<u32>() + size_of::<Mutex<KindTally>>();
    (PER_THREAD_BUDGET_BYTES / (kinds.max(1) * bytes)).clamp(1, threads.max(1))
}

/// One endpoint's figures in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointStats {
    /// The stable key: the target's `name`, or `METHOD URL` with `{i}` as written.
    pub key: String,
    /// The target's `name`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The method.
    pub method: String,
    /// The URL as written, `{i}` kept.
    pub url: String,
    /// Requests sent (responses plus errors).
    pub requests: u64,
    /// Requests that got a response, whatever its status.
    pub responses: u64,
    /// Responses per status code.
    pub status_counts: BTreeMap<String, u64>,
    /// Failed requests per kind (`timeout`, `connect_refused`, …, as the total's `error_counts`).
    pub error_counts: BTreeMap<String, u64>,
    /// Failed requests (transport errors and statuses ≥ 400) over its requests.
    pub error_rate: f64,
    /// Its requests per second over the whole run.
    pub achieved_rps: f64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Its latency, from each request's intended start (two significant digits when the run
    /// has several endpoints).
    #[schema(inline)]
    pub latency: LatencySummary,
}

impl EndpointStats {
    /// An endpoint's figures from its counts and latency.
    pub fn new(
        label: (&str, Option<&str>, &str, &str),
        status_counts: BTreeMap<String, u64>,
        error_counts: BTreeMap<String, u64>,
        latency: LatencySummary,
        bytes_received: u64,
        elapsed: Duration,
    ) -> Self {
        let (key, name, method, url) = label;
        let responses: u64 = status_counts.values().sum();
        let requests = responses + error_counts.values().sum::<u64>();
        let failed_statuses: u64 = status_counts
            .iter()
            .filter(|(status, _)| status.parse::<u16>().is_ok_and(|status| status >= 400))
            .map(|(_, count)| count)
            .sum();
        EndpointStats {
            key: key.into(),
            name: name.map(str::to_string),
            method: method.into(),
            url: url.into(),
            requests,
            responses,
            error_rate: ratio(requests - responses + failed_statuses, requests),
            achieved_rps: per_second(requests, elapsed),
            status_counts,
            error_counts,
            bytes_received,
            latency,
        }
    }
}

/// One endpoint's live figures in a progress event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointProgress {
    /// The endpoint's key.
    pub key: String,
    /// Requests finished so far.
    pub requests: u64,
    /// Failed requests so far (transport errors and statuses ≥ 400).
    pub failures: u64,
    /// Its median latency so far; none before its first response.
    pub p50_ms: Option<f64>,
    /// Its 99th percentile latency so far; none before its first response.
    pub p99_ms: Option<f64>,
}

impl EndpointProgress {
    fn of(stats: EndpointStats) -> Self {
        let answered = stats.latency.count > 0;
        EndpointProgress {
            failures: (stats.error_rate * stats.requests as f64).round() as u64,
            key: stats.key,
            requests: stats.requests,
            p50_ms: answered.then_some(stats.latency.p50_ms),
            p99_ms: answered.then_some(stats.latency.p99_ms),
        }
    }
}

/// Every endpoint's figures, in the order of `labels`; `kinds` is [`KindTallies::merged`], empty
/// with a single endpoint, whose figures are then the `total`'s.
pub fn endpoint_stats(labels: &[EndpointLabel], kinds: &[KindTally], total: &Tally, elapsed: Duration) -> Vec<EndpointStats> {
    fn label(label: &EndpointLabel) -> (&str, Option<&str>, &str, &str) {
        (label.key.as_str(), label.name.as_deref(), label.method, label.url.as_str())
    }
    if kinds.is_empty() {
        return labels
            .iter()
            .take(1)
            .map(|only| {
                EndpointStats::new(
                    label(only),
                    total.statuses.iter().map(|(status, count)| (status.to_string(), *count)).collect(),
                    total.errors.iter().map(|(kind, count)| (kind.to_string(), *count)).collect(),
                    LatencySummary::from_micros(&total.latency),
                    total.body_bytes,
                    elapsed,
                )
            })
            .collect();
    }
    labels
        .iter()
        .zip(kinds)
        .map(|(endpoint, tally)| {
            EndpointStats::new(
                label(endpoint),
                tally.status_counts(),
                tally.error_counts(),
                LatencySummary::from_micros(&tally.latency),
                tally.body_bytes,
                elapsed,
            )
        })
        .collect()
}

/// Each endpoint's recorded latencies, for a sharded job's merge; empty with a single endpoint.
pub fn recorded(kinds: &[KindTally]) -> Vec<Vec<[u64; 2]>> {
    kinds.iter().map(|tally| recorded_values(&tally.latency)).collect()
}

/// The live figures of every endpoint, when there are several and at most [`LIVE_ENDPOINTS`]
/// (a single endpoint's are the total's).
pub fn live(labels: &[EndpointLabel], kinds: &KindTallies, total: &Tally, elapsed: Duration) -> Option<Vec<EndpointProgress>> {
    if !(2..=LIVE_ENDPOINTS).contains(&labels.len()) {
        return None;
    }
    Some(endpoint_stats(labels, &kinds.merged(), total, elapsed).into_iter().map(EndpointProgress::of).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(count: usize) -> Vec<EndpointLabel> {
        (0..count)
            .map(|index| EndpointLabel { key: format!("k{index}"), name: None, method: "GET", url: format!("http://h/{index}") })
            .collect()
    }

    #[test]
    fn each_endpoint_counts_only_its_own_requests() {
        let kinds = KindTallies::new(3, 2);
        for worker in 0..4 {
            kinds.record_response(worker, 0, 200, 1_000, 10);
            kinds.record_response(worker, 1, 500, 20_000, 0);
        }
        kinds.record_error(1, 2, FailureKind::Timeout);
        kinds.record_error(0, 1, FailureKind::ConnectionClosed);
        let stats = endpoint_stats(&labels(3), &kinds.merged(), &Tally::new(), Duration::from_secs(2));
        assert_eq!((stats[0].requests, stats[0].error_rate, stats[0].bytes_received), (4, 0.0, 40));
        assert_eq!(stats[0].status_counts, BTreeMap::from([("200".into(), 4)]));
        assert_eq!((stats[1].requests, stats[1].responses, stats[1].error_rate), (5, 4, 1.0));
        assert_eq!(stats[1].error_counts, BTreeMap::from([("connection_closed".into(), 1)]));
        assert!((stats[1].latency.p50_ms - 20.0).abs() <= 0.2, "{:?}", stats[1].latency);
        assert_eq!((stats[2].requests, stats[2].responses, stats[2].achieved_rps), (1, 0, 0.5));
        assert_eq!(stats[2].error_counts, BTreeMap::from([("timeout".into(), 1)]));
    }

    #[test]
    fn taking_the_tallies_out_merges_every_stripe_once() {
        let kinds = KindTallies::new(2, 3);
        for worker in 0..6 {
            kinds.record_response(worker, worker % 2, 200, 1_000, 1);
        }
        let taken = kinds.take_merged();
        assert_eq!(taken.iter().map(|tally| tally.latency.len()).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(taken[1].status_counts(), BTreeMap::from([("200".into(), 3)]));
        assert!(kinds.merged().iter().all(|tally| tally.latency.is_empty()), "nothing is left behind");
    }

    #[test]
    fn one_endpoint_is_the_total() {
        let kinds = KindTallies::new(1, 4);
        kinds.record_response(0, 0, 200, 1_000, 10);
        assert!(kinds.merged().is_empty());
        let mut total = Tally::new();
        total.statuses.insert(204, 7);
        total.errors.insert("timeout", 1);
        let stats = endpoint_stats(&labels(1), &kinds.merged(), &total, Duration::from_secs(1));
        assert_eq!((stats.len(), stats[0].requests, stats[0].responses), (1, 8, 7));
    }

    #[test]
    fn many_endpoints_share_one_copy_and_few_get_one_per_thread() {
        assert_eq!(stripes(3, 8), 8);
        assert_eq!(stripes(100, 8), 8);
        assert_eq!(stripes(1_000, 8), 2);
        assert_eq!(stripes(10_000, 8), 1);
    }

    #[test]
    fn live_figures_stop_past_the_limit() {
        let total = Tally::new();
        assert_eq!(live(&labels(2), &KindTallies::new(2, 1), &total, Duration::from_secs(1)).map(|live| live.len()), Some(2));
        assert!(live(&labels(LIVE_ENDPOINTS + 1), &KindTallies::new(LIVE_ENDPOINTS + 1, 1), &total, Duration::from_secs(1)).is_none());
        assert!(live(&labels(1), &KindTallies::new(1, 1), &total, Duration::from_secs(1)).is_none());
    }
}
