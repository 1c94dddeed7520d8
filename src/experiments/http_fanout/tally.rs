//! Counters and latency histograms of a fan-out, sharded so concurrent workers rarely contend,
//! with memory fixed whatever the number of requests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::breakdown::KindTallies;
use super::connection::FailureKind;
use crate::stats::latency_histogram;

/// What a group of workers recorded.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency from each request's intended start (the open model's schedule, or its send in
    /// the closed model), in microseconds.
    pub latency: Histogram<u64>,
    /// Latency from the moment each request was sent, in microseconds.
    pub service_time: Histogram<u64>,
    /// Latency since the time series last took it (reset every second).
    pub interval_latency: Histogram<u64>,
    /// Requests finished since the time series last took it.
    pub interval_requests: u64,
    /// Failed requests since the time series last took it.
    pub interval_errors: u64,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Failed requests per failure kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Response body bytes received.
    pub body_bytes: u64,
}

impl Tally {
    /// An empty tally.
    pub(super) fn new() -> Self {
        Tally {
            latency: latency_histogram(),
            service_time: latency_histogram(),
            interval_latency: latency_histogram(),
            interval_requests: 0,
            interval_errors: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            body_bytes: 0,
        }
    }

    fn add(&mut self, other: &Tally) {
        self.latency.add(&other.latency).expect("histograms share bounds");
        self.service_time.add(&other.service_time).expect("histograms share bounds");
        self.interval_latency.add(&other.interval_latency).expect("histograms share bounds");
        self.interval_requests += other.interval_requests;
        self.interval_errors += other.interval_errors;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.body_bytes += other.body_bytes;
    }

    /// Failed requests in all.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one second of the run looked like.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Requests finished in it.
    pub requests: u64,
    /// Failed requests in it.
    pub errors: u64,
    /// Latency of its responses.
    pub latency: Histogram<u64>,
}

/// One response, as a worker measured it.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// The status code.
    pub status: u16,
    /// From the intended start to the last body byte, in microseconds.
    pub latency_micros: u64,
    /// From sending to the last body byte, in microseconds.
    pub service_micros: u64,
    /// Body bytes received.
    pub body_bytes: u64,
}

/// The fan-out's live tally.
pub struct SharedTally {
    /// One per worker thread, so workers never contend with each other, only briefly with the
    /// reporter, and merging for a snapshot adds as few histograms as there are threads
    /// (~600 KiB each). Guarded by std mutexes: each lock records one sample, never across an await.
    shards: Vec<Mutex<Tally>>,
    /// Requests finished, with a response or an error.
    pub completed: AtomicU64,
    /// Requests sent and not yet finished.
    pub in_flight: AtomicU64,
    /// Connections opened over the run.
    pub connections_opened: AtomicU64,
    /// Request bytes written (request line, headers and body; the HTTP/1.1 size over HTTP/2).
    pub bytes_sent: AtomicU64,
    /// Open-model arrivals that found the backlog full and were not sent.
    pub dropped: AtomicU64,
    /// The same per endpoint (request kind), for the breakdown.
    pub kinds: KindTallies,
}

impl SharedTally {
    /// An empty tally of `shards` shards and `kinds` endpoints; worker `w` records into shard
    /// `w mod shards`.
    pub fn new(shards: usize, kinds: usize) -> Self {
        SharedTally {
            shards: (0..shards.max(1)).map(|_| Mutex::new(Tally::new())).collect(),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            kinds: KindTallies::new(kinds, shards),
        }
    }

    fn shard(&self, worker: usize) -> std::sync::MutexGuard<'_, Tally> {
        self.shards[worker % self.shards.len()].lock().expect("tally shard poisoned")
    }

    /// Records a response to a request of endpoint `kind`.
    pub fn record_response(&self, worker: usize, kind: usize, measured: Measured) {
        {
            let mut shard = self.shard(worker);
            shard.latency.saturating_record(measured.latency_micros.max(1));
            shard.service_time.saturating_record(measured.service_micros.max(1));
            shard.interval_latency.saturating_record(measured.latency_micros.max(1));
            shard.interval_requests += 1;
            *shard.statuses.entry(measured.status).or_default() += 1;
            shard.body_bytes += measured.body_bytes;
        }
        self.kinds.record_response(worker, kind, measured.status, measured.latency_micros, measured.body_bytes);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed request of endpoint `kind`.
    pub fn record_error(&self, worker: usize, kind: usize, failure: FailureKind) {
        {
            let mut shard = self.shard(worker);
            *shard.errors.entry(failure.as_str()).or_default() += 1;
            shard.interval_requests += 1;
            shard.interval_errors += 1;
        }
        self.kinds.record_error(worker, kind, failure);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything recorded so far, merged.
    pub fn merged(&self) -> Tally {
        let mut total = Tally::new();
        for shard in &self.shards {
            total.add(&shard.lock().expect("tally shard poisoned"));
        }
        total
    }

    /// What was recorded since the previous call, starting a new interval.
    pub fn take_interval(&self) -> Interval {
        let mut interval = Interval { requests: 0, errors: 0, latency: latency_histogram() };
        for shard in &self.shards {
            let mut shard = shard.lock().expect("tally shard poisoned");
            interval.latency.add(&shard.interval_latency).expect("histograms share bounds");
            interval.requests += shard.interval_requests;
            interval.errors += shard.interval_errors;
            shard.interval_latency.reset();
            shard.interval_requests = 0;
            shard.interval_errors = 0;
        }
        interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, micros: u64) -> Measured {
        Measured { status, latency_micros: micros, service_micros: micros / 2, body_bytes: 5 }
    }

    #[test]
    fn shards_merge_into_exact_totals() {
        let tally = SharedTally::new(8, 1);
        for worker in 0..20 {
            tally.record_response(worker, 0, response(200, 1000 + worker as u64));
        }
        tally.record_error(3, 0, FailureKind::Timeout);
        tally.record_response(9, 0, response(503, 10));
        let merged = tally.merged();
        assert_eq!(merged.statuses[&200], 20);
        assert_eq!(merged.statuses[&503], 1);
        assert_eq!(merged.errors["timeout"], 1);
        assert_eq!(merged.latency.len(), 21);
        assert_eq!(merged.service_time.len(), 21);
        assert_eq!(merged.body_bytes, 105);
        assert_eq!(tally.completed.load(Ordering::Relaxed), 22);
    }

    #[test]
    fn intervals_restart_after_each_take() {
        let tally = SharedTally::new(3, 1);
        tally.record_response(0, 0, response(200, 100));
        tally.record_error(1, 0, FailureKind::Timeout);
        let first = tally.take_interval();
        assert_eq!((first.requests, first.errors, first.latency.len()), (2, 1, 1));
        tally.record_response(2, 0, response(200, 100));
        let second = tally.take_interval();
        assert_eq!((second.requests, second.errors), (1, 0));
        assert_eq!(tally.merged().latency.len(), 2, "the totals keep everything");
    }
}
