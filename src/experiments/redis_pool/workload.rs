//! The measured run: connect the client (the job's pool of sockets or a fred pool of
//! multiplexed connections), start the tasks, and each task's loop: pick an operation, with
//! `pool` check a connection out of the pool (timed) and run the operation on it (timed), with
//! `fred` send it on the next multiplexed connection (timed); and the tally each task keeps for
//! the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Config, Pool};
use fred::types::Key;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::connection::{Connection, RedisServer};
use super::multiplexed::{self, Command};
use super::params::{ClientKind, Op, RedisParams};
use super::pool::LabPool;
use crate::experiments::ExperimentError;
use crate::services::dependencies::REDIS_COMMAND_TIMEOUT;
use crate::stats::latency_histogram;

/// When the run stops issuing operations.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// After this many operations in total.
    Ops(u64),
    /// At this instant.
    Until(Instant),
}

/// What the run needs to start.
pub struct Plan {
    /// Where to connect.
    pub server: RedisServer,
    /// The parsed `REDIS_URL`, which the `fred` client is built from.
    pub config: Config,
    /// The parameters.
    pub params: RedisParams,
    /// Every key starts with it, so the run's keys can be found and deleted.
    pub key_prefix: String,
    /// Read by the job's progress reports while the run goes on.
    pub counters: Arc<Counters>,
}

/// Figures the job publishes as progress while the tasks run on their own thread.
#[derive(Default)]
pub struct Counters {
    /// When the pool was connected and the first task started.
    pub started: OnceLock<Instant>,
    /// Operations completed so far.
    pub completed: AtomicU64,
    /// Pool waits that timed out so far.
    pub wait_timeouts: AtomicU64,
}

/// The client the tasks share.
enum Measured {
    /// The job's sockets, lent one task at a time.
    Pool(LabPool),
    /// fred's multiplexed connections, shared by every task at once.
    Fred(Pool),
}

/// What every task shares.
struct Shared {
    client: Measured,
    /// Where the pool connects, named by errors.
    server: RedisServer,
    params: RedisParams,
    budget: Budget,
    /// The key prefix, as the bytes every key starts with.
    key_prefix: Vec<u8>,
    /// The value SET writes (a `Bytes` so that fred's commands share it without copying).
    value: Bytes,
    /// Operations taken from the budget so far (issued or given up).
    issued: AtomicU64,
    counters: Arc<Counters>,
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
    /// An empty tally, to merge into.
    pub fn empty() -> Self {
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
}

/// Connects the pool, runs `concurrency` tasks to the end of the budget and returns their
/// merged tally and the time from the first operation to the last; the first error stops them
/// all. Dropping the future drops the pool, which closes its connections.
pub async fn run(plan: Plan) -> Result<(Tally, Duration), ExperimentError> {
    let Plan { server, config, params, key_prefix, counters } = plan;
    let size = params.pool_size as usize;
    let client = match params.client {
        ClientKind::Pool => Measured::Pool(
            LabPool::connect(&server, size, Duration::from_millis(params.pool_wait_timeout_ms)).await.map_err(|error| error.at(&server))?,
        ),
        ClientKind::Fred => Measured::Fred(multiplexed::connect(&config, size, &server).await?),
    };
    let started = Instant::now();
    let _ = counters.started.set(started);
    let budget = match (params.ops, params.duration_ms) {
        (Some(ops), _) => Budget::Ops(ops),
        (None, duration_ms) => Budget::Until(started + Duration::from_millis(duration_ms.unwrap_or_default())),
    };
    let shared = Arc::new(Shared {
        client,
        server,
        value: Bytes::from(vec![b'x'; params.value_bytes as usize]),
        params,
        budget,
        key_prefix: key_prefix.into_bytes(),
        issued: AtomicU64::new(0),
        counters,
    });
    let mut tasks = JoinSet::new();
    for seed in 0..u64::from(shared.params.concurrency) {
        tasks.spawn(run_task(shared.clone(), seed));
    }
    let mut total = Tally::empty();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(tally)) => total.merge(&tally),
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(ExperimentError::Internal(format!("a task failed: {error}"))),
        }
    }
    let elapsed = started.elapsed();
    if let Measured::Fred(pool) = &shared.client {
        multiplexed::close(pool).await;
    }
    Ok((total, elapsed))
}

/// Runs operations until the budget is spent; the first Redis error ends the task with it.
async fn run_task(shared: Arc<Shared>, seed: u64) -> Result<Tally, ExperimentError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::empty();
    // The key of the next command, built in place: no allocation per operation.
    let mut key = Vec::with_capacity(shared.key_prefix.len() + 16);
    loop {
        let more = match shared.budget {
            Budget::Ops(ops) => shared.issued.fetch_add(1, Ordering::Relaxed) < ops,
            Budget::Until(deadline) => Instant::now() < deadline,
        };
        if !more {
            return Ok(tally);
        }
        let op = shared.params.mix.pick(&mut rng);
        let (commands, took) = match &shared.client {
            Measured::Pool(pool) => {
                let wait_started = Instant::now();
                let checkout = pool.checkout().await;
                let waited = wait_started.elapsed();
                tally.wait_total += waited;
                let Ok(mut checkout) = checkout else {
                    tally.wait_timeouts += 1;
                    shared.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let _ = tally.pool_wait.record(waited.as_micros().max(1) as u64);
                let started = Instant::now();
                let commands = execute(op, checkout.connection(), &shared, &mut rng, &mut key).await?;
                (commands, started.elapsed())
            }
            Measured::Fred(pool) => {
                let started = Instant::now();
                let commands = execute_multiplexed(op, pool, &shared, &mut rng, &mut key).await?;
                (commands, started.elapsed())
            }
        };
        tally.busy_total += took;
        let _ = tally.latency.record(took.as_micros().max(1) as u64);
        tally.counts[op as usize] += 1;
        tally.commands += commands;
        shared.counters.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs one operation; returns how many commands it sent.
async fn execute(
    op: Op,
    connection: &mut Connection,
    shared: &Shared,
    rng: &mut SmallRng,
    key: &mut Vec<u8>,
) -> Result<u64, ExperimentError> {
    let mut next_key = |family: &[u8], key: &mut Vec<u8>| next_key(shared, rng, family, key);
    let commands = match op {
        Op::Get => {
            next_key(b"k:", key);
            connection.queue(&[b"GET", key]);
            1
        }
        Op::Set => {
            next_key(b"k:", key);
            connection.queue(&[b"SET", key, &shared.value]);
            1
        }
        Op::Incr => {
            next_key(b"c:", key);
            connection.queue(&[b"INCR", key]);
            1
        }
        Op::Pipeline => {
            for index in 0..shared.params.pipeline_depth {
                next_key(b"k:", key);
                if index % 2 == 0 {
                    connection.queue(&[b"SET", key, &shared.value]);
                } else {
                    connection.queue(&[b"GET", key]);
                }
            }
            shared.params.pipeline_depth as usize
        }
    };
    match tokio::time::timeout(REDIS_COMMAND_TIMEOUT, connection.exchange(commands)).await {
        Ok(Ok(_)) => Ok(commands as u64),
        Ok(Err(error)) => Err(error.at(&shared.server)),
        Err(_) => Err(ExperimentError::Timeout(format!("{}: no reply within {} s", shared.server.name(), REDIS_COMMAND_TIMEOUT.as_secs()))),
    }
}

/// Runs one operation on fred's next multiplexed connection; returns how many commands it sent.
async fn execute_multiplexed(op: Op, pool: &Pool, shared: &Shared, rng: &mut SmallRng, key: &mut Vec<u8>) -> Result<u64, ExperimentError> {
    let mut next_key = |family: &[u8]| {
        next_key(shared, rng, family, key);
        Key::from(Bytes::copy_from_slice(key))
    };
    let (command, commands) = match op {
        Op::Get => (Command::Get(next_key(b"k:")), 1),
        Op::Set => (Command::Set(next_key(b"k:"), &shared.value), 1),
        Op::Incr => (Command::Incr(next_key(b"c:")), 1),
        Op::Pipeline => {
            let keys = (0..shared.params.pipeline_depth).map(|_| next_key(b"k:")).collect();
            (Command::Pipeline(keys, &shared.value), u64::from(shared.params.pipeline_depth))
        }
    };
    multiplexed::execute(pool, command, &shared.server).await?;
    Ok(commands)
}

/// Builds in `key` the next key of `family`: the run's prefix, the family, a random number below
/// `keyspace`; no allocation per operation.
fn next_key(shared: &Shared, rng: &mut SmallRng, family: &[u8], key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(&shared.key_prefix);
    key.extend_from_slice(family);
    key.extend_from_slice(itoa::Buffer::new().format(rng.random_range(0..shared.params.keyspace)).as_bytes());
}
