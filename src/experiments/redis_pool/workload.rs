//! One task's loop: pick an operation, check a connection out of the pool (timed), run the
//! operation (timed), give the connection back; and the tally each task keeps for the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Client, ErrorKind, KeysInterface, Value};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::params::{Op, RedisParams};
use super::pool::LabPool;
use crate::experiments::ExperimentError;
use crate::stats::latency_histogram;

/// When the run stops issuing operations.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// After this many operations in total.
    Ops(u64),
    /// At this instant.
    Until(Instant),
}

/// What every task shares.
pub struct Shared {
    /// The pool.
    pub pool: LabPool,
    /// The parameters.
    pub params: RedisParams,
    /// When to stop.
    pub budget: Budget,
    /// Every key starts with it, so the run's keys can be found and deleted.
    pub key_prefix: String,
    /// The value SET writes.
    pub value: Bytes,
    /// Operations taken from the budget so far (issued or given up).
    pub issued: AtomicU64,
    /// Operations completed so far, for progress.
    pub completed: AtomicU64,
    /// Pool waits that timed out so far, for progress.
    pub wait_timeouts: AtomicU64,
}

/// What one task saw.
pub struct Tally {
    /// Operation latency, checkout excluded, in microseconds.
    pub latency: Histogram<u64>,
    /// Time to check a connection out, in microseconds (timed-out waits excluded).
    pub pool_wait: Histogram<u64>,
    /// Total time spent waiting for connections, timed-out waits included.
    pub wait_total: Duration,
    /// Total time spent in operations.
    pub busy_total: Duration,
    /// Completed operations by kind: get, set, incr, pipeline.
    pub counts: [u64; 4],
    /// Commands sent (a pipeline counts its depth).
    pub commands: u64,
    /// Checkouts that gave up after `pool_wait_timeout_ms`.
    pub wait_timeouts: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: latency_histogram(),
            pool_wait: latency_histogram(),
            wait_total: Duration::ZERO,
            busy_total: Duration::ZERO,
            counts: [0; 4],
            commands: 0,
            wait_timeouts: 0,
        }
    }

    /// Adds another task's tally.
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        let _ = self.pool_wait.add(&other.pool_wait);
        self.wait_total += other.wait_total;
        self.busy_total += other.busy_total;
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.commands += other.commands;
        self.wait_timeouts += other.wait_timeouts;
    }

    /// An empty tally to merge into.
    pub fn empty() -> Self {
        Tally::new()
    }
}

/// Runs operations until the budget is spent; the first Redis error ends the task with it.
pub async fn run_task(shared: Arc<Shared>, seed: u64) -> Result<Tally, ExperimentError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::new();
    loop {
        let more = match shared.budget {
            Budget::Ops(ops) => shared.issued.fetch_add(1, Ordering::Relaxed) < ops,
            Budget::Until(deadline) => Instant::now() < deadline,
        };
        if !more {
            return Ok(tally);
        }
        let op = shared.params.mix.pick(&mut rng);
        let wait_started = Instant::now();
        let checkout = shared.pool.checkout().await;
        let waited = wait_started.elapsed();
        tally.wait_total += waited;
        let Ok(checkout) = checkout else {
            tally.wait_timeouts += 1;
            shared.wait_timeouts.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = tally.pool_wait.record(waited.as_micros().max(1) as u64);
        let started = Instant::now();
        let commands = execute(op, checkout.client(), &shared, &mut rng).await?;
        let took = started.elapsed();
        drop(checkout);
        tally.busy_total += took;
        let _ = tally.latency.record(took.as_micros().max(1) as u64);
        tally.counts[op as usize] += 1;
        tally.commands += commands;
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs one operation; returns how many commands it sent.
async fn execute(op: Op, client: &Client, shared: &Shared, rng: &mut SmallRng) -> Result<u64, ExperimentError> {
    let keyspace = shared.params.keyspace;
    let mut key = || format!("{}k:{}", shared.key_prefix, rng.random_range(0..keyspace));
    match op {
        Op::Get => {
            client.get::<Option<Bytes>, _>(key()).await.map_err(classify)?;
            Ok(1)
        }
        Op::Set => {
            client.set::<(), _, _>(key(), shared.value.clone(), None, None, false).await.map_err(classify)?;
            Ok(1)
        }
        Op::Incr => {
            let counter = format!("{}c:{}", shared.key_prefix, rng.random_range(0..keyspace));
            client.incr::<i64, _>(counter).await.map_err(classify)?;
            Ok(1)
        }
        Op::Pipeline => {
            let pipeline = client.pipeline();
            let depth = shared.params.pipeline_depth;
            for index in 0..depth {
                if index % 2 == 0 {
                    pipeline.set::<(), _, _>(key(), shared.value.clone(), None, None, false).await.map_err(classify)?;
                } else {
                    pipeline.get::<(), _>(key()).await.map_err(classify)?;
                }
            }
            pipeline.all::<Vec<Value>>().await.map_err(classify)?;
            Ok(u64::from(depth))
        }
    }
}

/// A Redis error in the job's error categories.
pub fn classify(error: fred::error::Error) -> ExperimentError {
    let message = format!("redis: {error}");
    match error.kind() {
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing => ExperimentError::Connect(message),
        ErrorKind::Timeout => ExperimentError::Timeout(message),
        _ => ExperimentError::Protocol(message),
    }
}
