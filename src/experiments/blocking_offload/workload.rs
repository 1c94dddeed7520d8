//! The workload, run on the job's dedicated runtime: `concurrency` async tasks take item
//! numbers from a shared counter and make each item's blocking call the way `mode` says, while
//! a heartbeat task on the same runtime measures how late its 1 ms ticks fire.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::params::OffloadMode;
use super::work::{BlockingCall, ItemOutcome};
use crate::stats::latency_histogram;

/// The heartbeat's period.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(1);

/// What the run does.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Each item's blocking call.
    pub call: BlockingCall,
    /// Where the call runs.
    pub mode: OffloadMode,
    /// How many items.
    pub items: u32,
    /// Async tasks taking items.
    pub concurrency: u32,
    /// The semaphore's size, in `spawn_blocking_semaphore` mode.
    pub permits: Option<u32>,
}

/// Counters the runtime's threads update and the control plane reads for progress.
#[derive(Debug, Default)]
pub struct Tally {
    /// Items finished.
    pub completed: AtomicU64,
    /// Blocking calls running now.
    pub running: AtomicU32,
    /// The most blocking calls seen running at once.
    pub max_running: AtomicU32,
    /// The heartbeat's largest lag so far, in microseconds.
    pub max_lag_micros: AtomicU64,
    /// Every thread that made a blocking call. A std mutex: one insert per item, never across
    /// an await.
    threads: Mutex<HashSet<ThreadId>>,
    /// Items per outcome (`done`, an HTTP status, or a failure kind). Same reasoning.
    outcomes: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    /// Distinct threads that made a blocking call.
    pub fn thread_count(&self) -> usize {
        self.threads.lock().expect("thread set poisoned").len()
    }

    /// Items per outcome.
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        self.outcomes.lock().expect("outcome counts poisoned").clone()
    }

    fn record(&self, outcome: ItemOutcome) {
        let key = match outcome {
            ItemOutcome::Done => "done".to_string(),
            ItemOutcome::Response(status) => status.to_string(),
            ItemOutcome::Failed(kind) => kind.to_string(),
        };
        *self.outcomes.lock().expect("outcome counts poisoned").entry(key).or_default() += 1;
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the workload measured.
#[derive(Debug)]
pub struct WorkloadOutcome {
    /// From the first item's start to the last item's end.
    pub elapsed: Duration,
    /// Heartbeat lag (how late each tick fired), in microseconds.
    pub lag: Histogram<u64>,
}

/// Runs every item, then stops the heartbeat. Must run on the runtime under test.
pub async fn run(workload: Workload, tally: Arc<Tally>, stop: CancellationToken) -> WorkloadOutcome {
    let heartbeat_done = CancellationToken::new();
    let mut heartbeat = JoinSet::new();
    // The first tick is due one period after the spawn, however late the task first runs.
    heartbeat.spawn(beat(Instant::now() + HEARTBEAT_PERIOD, tally.clone(), heartbeat_done.clone()));

    let workload = Arc::new(workload);
    let next_item = Arc::new(AtomicU32::new(0));
    let semaphore = workload.permits.map(|permits| Arc::new(Semaphore::new(permits as usize)));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..workload.concurrency.min(workload.items) {
        workers.spawn(take_items(workload.clone(), next_item.clone(), semaphore.clone(), tally.clone(), stop.clone()));
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();

    heartbeat_done.cancel();
    let lag = match heartbeat.join_next().await {
        Some(Ok(lag)) => lag,
        _ => latency_histogram(),
    };
    WorkloadOutcome { elapsed, lag }
}

/// One async task: takes item numbers until none is left and makes each item's call.
async fn take_items(
    workload: Arc<Workload>,
    next_item: Arc<AtomicU32>,
    semaphore: Option<Arc<Semaphore>>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    // Inline calls never yield to the runtime, so a stop is seen here, between two items.
    while !stop.is_cancelled() && next_item.fetch_add(1, Ordering::Relaxed) < workload.items {
        let outcome = match workload.mode {
            OffloadMode::Inline => perform(&workload.call, &tally, &stop),
            OffloadMode::SpawnBlocking | OffloadMode::SpawnBlockingSemaphore => {
                let _permit = match &semaphore {
                    Some(semaphore) => Some(semaphore.acquire().await.expect("the semaphore is never closed")),
                    None => None,
                };
                let (workload, tally, stop) = (workload.clone(), tally.clone(), stop.clone());
                tokio::task::spawn_blocking(move || perform(&workload.call, &tally, &stop)).await.unwrap_or(ItemOutcome::Failed("panic"))
            }
        };
        tally.record(outcome);
    }
}

/// Makes one blocking call on the current thread, keeping the concurrency gauge and the
/// thread set.
fn perform(call: &BlockingCall, tally: &Tally, stop: &CancellationToken) -> ItemOutcome {
    let running = tally.running.fetch_add(1, Ordering::SeqCst) + 1;
    tally.max_running.fetch_max(running, Ordering::SeqCst);
    tally.threads.lock().expect("thread set poisoned").insert(std::thread::current().id());
    let outcome = call.perform(stop);
    tally.running.fetch_sub(1, Ordering::SeqCst);
    outcome
}

/// Ticks every [`HEARTBEAT_PERIOD`] from `first_due` until `done`, recording how late each
/// tick fired. After a late tick the next is due a period later (no burst of catch-up ticks,
/// so one stall is one sample). The first tick is always recorded, even when the task first
/// runs after `done` fired: a heartbeat starved for the whole run is the largest lag of all.
async fn beat(first_due: Instant, tally: Arc<Tally>, done: CancellationToken) -> Histogram<u64> {
    let mut lag = latency_histogram();
    let mut due = first_due;
    loop {
        sleep_until(due).await;
        let now = Instant::now();
        let late = u64::try_from(now.saturating_duration_since(due).as_micros()).unwrap_or(u64::MAX);
        lag.saturating_record(late);
        tally.max_lag_micros.fetch_max(late, Ordering::Relaxed);
        if done.is_cancelled() {
            return lag;
        }
        due = now + HEARTBEAT_PERIOD;
    }
}
