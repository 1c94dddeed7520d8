//! `redis`: redis-py's `BlockingConnectionPool` lesson, measured. `concurrency` tasks share a
//! pool of `pool_size` connections; each operation first checks a connection out (waiting up to
//! `pool_wait_timeout_ms`), then runs GET, SET, INCR or a pipeline on it. The report separates
//! the time spent waiting for a connection from the time Redis took, so a user sees whether the
//! pool or Redis is the limit. With `client: "fred"` the same workload runs through fred
//! instead: a fred pool of `pool_size` multiplexed connections that every task sends on at once,
//! with nothing to wait for; the lesson is the difference between the two.
//!
//! # Design
//! The shared fred pool built from `REDIS_URL` multiplexes many callers over each connection,
//! so it has no waits to measure. Each job therefore opens its own pool ([`pool::LabPool`]) of
//! exactly `pool_size` connections, lends each to one task at a time behind a semaphore, and
//! times every checkout. A connection is a plain TCP stream speaking RESP2
//! ([`connection::Connection`], [`resp`]): the task that holds it writes its commands (a
//! pipeline in one write) and reads the replies itself, with no connection task in between, so
//! a command costs no extra task wake-up. The pool and its tasks run on a current-thread runtime
//! on a thread of their own: a task and its socket never change threads, and the job's load
//! never slows the API down. Connections log in (AUTH, SELECT) as `REDIS_URL` says; `rediss://`
//! (TLS), clusters and sentinels make the experiment unavailable. They do not reconnect: a
//! connection that breaks fails the job with a `connect` error. The `fred` client
//! ([`multiplexed`]) is built per job from the same `REDIS_URL`, on the same thread and runtime,
//! and does not reconnect either.
//!
//! Keys live under `asynclab:{job id}:` and are deleted (SCAN + UNLINK on the shared fred pool)
//! when the run ends, successfully or not; a job cancelled or timed out mid-run is dropped at
//! once, and a tracked clean-up task deletes its keys then.

mod connection;
mod multiplexed;
mod params;
mod pool;
mod resp;
mod workload;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fred::prelude::{Client, ClientLike, ErrorKind, KeysInterface};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use connection::RedisServer;
pub use params::{ClientKind, OpMix, RedisParams};
use workload::{Counters, Plan, Tally};

use super::dedicated_runtime::{run_on_own_thread, run_tokio};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::services::{Need, Services};
use crate::stats::{LatencySummary, millis};

/// The name of the thread the workload runs on.
const THREAD_NAME: &str = "redis-pool";
/// How often progress is published.
const PROGRESS_PERIOD: Duration = Duration::from_millis(250);
/// Keys deleted per UNLINK.
const UNLINK_BATCH: usize = 500;
/// How long deleting the run's keys may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the clean-up is tried after the run failed.
const FAILED_CLEANUP_TIMEOUT: Duration = Duration::from_secs(1);

/// The experiment.
pub struct RedisPool;

/// Completed operations by kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpCounts {
    /// GETs.
    pub get: u64,
    /// SETs.
    pub set: u64,
    /// INCRs.
    pub incr: u64,
    /// Pipelines.
    pub pipeline: u64,
}

/// The report of a `redis` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RedisReport {
    /// The prefix of every key the run used.
    pub key_prefix: String,
    /// The client that ran the workload.
    pub client: ClientKind,
    /// Connections the client opened: sockets lent one task at a time (`pool`), or multiplexed
    /// connections shared by every task (`fred`).
    pub pool_size: u32,
    /// Tasks sharing them.
    pub concurrency: u32,
    /// Operations completed (a pipeline is one).
    pub ops: u64,
    /// Commands sent (a pipeline counts its depth).
    pub commands: u64,
    /// Completed operations by kind.
    pub op_counts: OpCounts,
    /// From the first operation to the last.
    pub elapsed_ms: f64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Commands per second.
    pub commands_per_s: f64,
    /// Operation latency, connection checkout excluded.
    pub latency: LatencySummary,
    /// Time to check a connection out of the pool (waits that timed out excluded); empty with
    /// `fred`, which has no checkout.
    pub pool_wait: LatencySummary,
    /// Checkouts that gave up after `pool_wait_timeout_ms`; their operations were not sent.
    pub pool_wait_timeouts: u64,
    /// Share of the tasks' time spent waiting for a connection rather than in Redis (0 to 1):
    /// near 1, the pool is the limit.
    pub pool_wait_share: f64,
    /// Keys the clean-up deleted.
    pub keys_deleted: u64,
    /// The CPU the run used: the workload's own thread (every operation, on its own sockets, and
    /// with `fred` its connection tasks),
    /// plus the job's polls on the control plane (progress, the clean-up's calls; the shared
    /// fred client's connection tasks, which carry the clean-up, are not counted).
    pub cpu: CpuUsage,
}

/// A progress snapshot.
#[derive(Debug, Serialize)]
struct Progress {
    completed: u64,
    pool_wait_timeouts: u64,
    elapsed_ms: f64,
}

impl Experiment for RedisPool {
    const KIND: &'static str = "redis";
    const SUMMARY: &'static str =
        "Operations on a pool of N Redis connections shared by M tasks: ops/s, latency, and time spent waiting for a connection";
    type Params = RedisParams;
    type Report = RedisReport;

    fn example() -> RedisParams {
        RedisParams {
            client: ClientKind::Pool,
            pool_size: 10,
            concurrency: 50,
            ops: Some(100_000),
            duration_ms: None,
            mix: OpMix { get: 1, set: 1, incr: 0, pipeline: 0 },
            pipeline_depth: 10,
            value_bytes: 3,
            keyspace: 1000,
            pool_wait_timeout_ms: 1000,
        }
    }

    const NEEDS: &'static [Need] = &[Need::Redis];

    fn usable(services: &Services) -> Result<(), String> {
        services.redis.as_ref().map_or(Ok(()), |redis| RedisServer::from_target(redis).map(drop))
    }

    async fn run(ctx: JobContext, params: RedisParams) -> Result<RedisReport, ExperimentError> {
        let redis = ctx.services().redis.clone().ok_or_else(|| ExperimentError::Unavailable("REDIS_URL is not set".into()))?;
        let server = RedisServer::from_target(&redis).map_err(ExperimentError::Unavailable)?;
        let key_prefix = format!("asynclab:{}:", ctx.job_id());
        let (client_kind, pool_size, concurrency) = (params.client, params.pool_size, params.concurrency);
        let counters = Arc::new(Counters::default());
        let plan = Plan { server, config: redis.config.clone(), params, key_prefix: key_prefix.clone(), counters: counters.clone() };
        let mut leftover = LeftoverKeys { ctx: ctx.clone(), client: redis.pool.next().clone(), prefix: Some(key_prefix.clone()) };
        let outcome = drive(&ctx, plan, &counters).await;
        leftover.prefix = None;
        let client = redis.pool.next();
        let (tally, elapsed) = match outcome {
            Ok(run) => run,
            Err(error) => {
                // Redis may be gone: try briefly, and not at all when the shared pool has already
                // lost it; the run's own error is what matters.
                if client.is_connected() {
                    let _ = tokio::time::timeout(FAILED_CLEANUP_TIMEOUT, delete_keys(client, &key_prefix)).await;
                }
                return Err(error);
            }
        };
        let cleanup = tokio::time::timeout(CLEANUP_TIMEOUT, delete_keys(client, &key_prefix)).await;
        let keys_deleted = match cleanup {
            Ok(Ok(deleted)) => deleted,
            Ok(Err(error)) => return Err(classify(error)),
            Err(_) => return Err(ExperimentError::Timeout(format!("deleting the keys under {key_prefix} took too long"))),
        };
        let cpu = ctx.cpu().usage(CpuScope::DedicatedThreads);
        Ok(report(key_prefix, client_kind, pool_size, concurrency, tally, elapsed, keys_deleted, cpu))
    }
}

/// Deletes the run's keys when the run is dropped before it could (a cancel or the job's time
/// limit stops it mid-await): the clean-up then runs as a tracked task of its own.
struct LeftoverKeys {
    ctx: JobContext,
    client: Client,
    /// `Some` until the run reaches its own clean-up.
    prefix: Option<String>,
}

impl Drop for LeftoverKeys {
    fn drop(&mut self) {
        let Some(prefix) = self.prefix.take() else { return };
        let client = self.client.clone();
        self.ctx.spawn_cleanup(CLEANUP_TIMEOUT, async move {
            if let Err(error) = delete_keys(&client, &prefix).await {
                tracing::warn!(%prefix, %error, "cannot delete a stopped run's keys");
            }
        });
    }
}

/// Runs the workload on a current-thread runtime of its own thread, so each task and the
/// socket it holds stay on one thread, and publishes progress meanwhile. Dropping the future
/// stops the workload and closes its connections.
async fn drive(ctx: &JobContext, plan: Plan, counters: &Counters) -> Result<(Tally, Duration), ExperimentError> {
    let cpu = ctx.cpu().clone();
    let workload = run_on_own_thread(THREAD_NAME, ctx.cpu(), move |stop| {
        run_tokio(tokio::runtime::Builder::new_current_thread(), &cpu, stop, workload::run(plan))
    });
    tokio::pin!(workload);
    let mut ticker = tokio::time::interval(PROGRESS_PERIOD);
    loop {
        tokio::select! {
            // Outer: the thread; middle: the runtime; `None`: stopped; inner: the run.
            ran = &mut workload => return ran??.unwrap_or_else(|| Err(ExperimentError::Internal("the workload was stopped".into()))),
            _ = ticker.tick() => ctx.progress(Progress {
                completed: counters.completed.load(Ordering::Relaxed),
                pool_wait_timeouts: counters.wait_timeouts.load(Ordering::Relaxed),
                elapsed_ms: counters.started.get().map_or(0.0, |started| millis(started.elapsed())),
            }).await,
        }
    }
}

/// Deletes every key under `prefix`; returns how many there were.
async fn delete_keys(client: &Client, prefix: &str) -> Result<u64, fred::error::Error> {
    let mut keys = client.scan_buffered(format!("{prefix}*"), Some(1000), None).chunks(UNLINK_BATCH);
    let mut deleted = 0;
    while let Some(batch) = keys.next().await {
        let batch = batch.into_iter().collect::<Result<Vec<_>, _>>()?;
        deleted += client.unlink::<u64, _>(batch).await?;
    }
    Ok(deleted)
}

/// A clean-up error in the job's error categories.
fn classify(error: fred::error::Error) -> ExperimentError {
    let message = format!("redis: {error}");
    match error.kind() {
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing => ExperimentError::Connect(message),
        ErrorKind::Timeout => ExperimentError::Timeout(message),
        _ => ExperimentError::Protocol(message),
    }
}

#[allow(clippy::too_many_arguments, reason = "the figures of one run, each given once by `run`")]
fn report(
    key_prefix: String,
    client: ClientKind,
    pool_size: u32,
    concurrency: u32,
    tally: Tally,
    elapsed: Duration,
    keys_deleted: u64,
    cpu: CpuUsage,
) -> RedisReport {
    let ops: u64 = tally.counts.iter().sum();
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let waiting = tally.wait_total.as_secs_f64();
    let busy = tally.busy_total.as_secs_f64();
    RedisReport {
        key_prefix,
        client,
        pool_size,
        concurrency,
        ops,
        commands: tally.commands,
        op_counts: OpCounts { get: tally.counts[0], set: tally.counts[1], incr: tally.counts[2], pipeline: tally.counts[3] },
        elapsed_ms: millis(elapsed),
        ops_per_s: ops as f64 / seconds,
        commands_per_s: tally.commands as f64 / seconds,
        latency: LatencySummary::from_micros(&tally.latency),
        pool_wait: LatencySummary::from_micros(&tally.pool_wait),
        pool_wait_timeouts: tally.wait_timeouts,
        pool_wait_share: if waiting + busy > 0.0 { waiting / (waiting + busy) } else { 0.0 },
        keys_deleted,
        cpu,
    }
}
