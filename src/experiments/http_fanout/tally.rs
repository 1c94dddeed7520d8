//! Counters and the latency histogram of a fan-out, sharded so concurrent workers rarely
//! contend, with memory fixed whatever the number of requests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::stats::latency_histogram;

/// Independent shards; a worker always uses the same one. Eight keeps contention low on
/// machines with up to a few dozen cores at ~200 KiB per shard.
const SHARDS: usize = 8;

/// What a group of workers recorded.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Response latency in microseconds.
    pub latency: Histogram<u64>,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Failed requests per failure kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Response body bytes received.
    pub body_bytes: u64,
}

impl Tally {
    fn new() -> Self {
        Tally { latency: latency_histogram(), statuses: BTreeMap::new(), errors: BTreeMap::new(), body_bytes: 0 }
    }

    fn add(&mut self, other: &Tally) {
        self.latency.add(&other.latency).expect("histograms share bounds");
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

/// The fan-out's live tally.
pub struct SharedTally {
    /// Guarded by std mutexes: each lock records one sample, never across an await.
    shards: Vec<Mutex<Tally>>,
    /// Requests finished, with a response or an error.
    pub completed: AtomicU64,
    /// Requests sent and not yet finished.
    pub in_flight: AtomicU64,
    /// Connections opened over the run.
    pub connections_opened: AtomicU64,
}

impl SharedTally {
    /// An empty tally.
    pub fn new() -> Self {
        SharedTally {
            shards: (0..SHARDS).map(|_| Mutex::new(Tally::new())).collect(),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
        }
    }

    fn shard(&self, worker: usize) -> std::sync::MutexGuard<'_, Tally> {
        self.shards[worker % SHARDS].lock().expect("tally shard poisoned")
    }

    /// Records a response.
    pub fn record_response(&self, worker: usize, status: u16, micros: u64, body_bytes: u64) {
        {
            let mut shard = self.shard(worker);
            shard.latency.saturating_record(micros.max(1));
            *shard.statuses.entry(status).or_default() += 1;
            shard.body_bytes += body_bytes;
        }
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed request.
    pub fn record_error(&self, worker: usize, kind: &'static str) {
        *self.shard(worker).errors.entry(kind).or_default() += 1;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_exact_totals() {
        let tally = SharedTally::new();
        for worker in 0..20 {
            tally.record_response(worker, 200, 1000 + worker as u64, 5);
        }
        tally.record_error(3, "timeout");
        tally.record_response(9, 503, 10, 0);
        let merged = tally.merged();
        assert_eq!(merged.statuses[&200], 20);
        assert_eq!(merged.statuses[&503], 1);
        assert_eq!(merged.errors["timeout"], 1);
        assert_eq!(merged.latency.len(), 21);
        assert_eq!(merged.body_bytes, 100);
        assert_eq!(tally.completed.load(Ordering::Relaxed), 22);
    }
}
