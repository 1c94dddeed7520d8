//! Retention: a background task that prunes finished jobs past the configured age or count,
//! with their events, in small batches with a pause between them, so launches and event
//! streams never wait long behind it. Jobs labelled `keep=true` stay (the store's rule). On a
//! PostgreSQL store several replicas share, one prunes at a time and the others skip the round.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use crate::meters::Meters;
use crate::store::retention::{PruneBatch, Pruned};
use crate::store::{JobStore, StoreError};

/// The most jobs one batch removes: with their events, a few hundred rows, so a batch's
/// transaction (and on SQLite the write lock) is held for milliseconds.
pub const JOBS_PER_BATCH: u32 = 100;

/// The most event rows one batch removes with its jobs (a job with more still goes, alone).
pub const EVENT_ROWS_PER_BATCH: u64 = 2_000;

/// The pause between two batches of a pass, leaving the store to other work.
pub const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// Tombstones kept, so a pruned id answers `410 Gone`: about 100 bytes each, a few MB in all;
/// beyond it the oldest are dropped and their ids answer `404`.
pub const MAX_TOMBSTONES: u64 = 100_000;

/// Which finished jobs to prune.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Prune jobs that finished more than this many days ago (`ASYNCLAB_RETENTION_DAYS`).
    pub max_age_days: Option<u32>,
    /// Keep only the newest this many finished jobs (`ASYNCLAB_RETENTION_MAX_JOBS`), not
    /// counting those labelled `keep=true`.
    pub max_jobs: Option<u64>,
}

impl RetentionPolicy {
    /// Whether any limit is set (off by default: stored results are the point of the tool).
    pub fn is_on(&self) -> bool {
        self.max_age_days.is_some() || self.max_jobs.is_some()
    }

    /// The batch a pass at `now` runs, repeatedly, until nothing is left.
    pub fn batch(&self, now: DateTime<Utc>) -> PruneBatch {
        PruneBatch {
            finished_before: self.max_age_days.map(|days| now - chrono::Duration::days(i64::from(days))),
            keep_newest: self.max_jobs,
            max_jobs: JOBS_PER_BATCH,
            max_event_rows: EVENT_ROWS_PER_BATCH,
            max_tombstones: MAX_TOMBSTONES,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PassReport {
    /// When the pass started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Jobs pruned (a sharded job with its shards counts once).
    pub jobs_pruned: u64,
    /// Tombstones dropped to keep them bounded.
    pub tombstones_dropped: u64,
    /// Batches run.
    pub batches: u64,
    /// How the pass ended.
    pub outcome: PassOutcome,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PassOutcome {
    /// It pruned everything past the limits (possibly nothing).
    Pruned,
    /// Another replica was pruning the shared store.
    Skipped,
    /// The store failed; the next pass tries again.
    Failed,
    /// Shutdown began during the pass.
    Stopped,
}

/// The retention task's handle: the policy, how often it runs, what its last pass did.
#[derive(Clone)]
pub struct Retention {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the jobs are pruned (and, on PostgreSQL, the lock between replicas).
    store: Arc<dyn JobStore>,
    /// The limits; both unset, the task never starts.
    policy: RetentionPolicy,
    /// The time between the starts of two passes.
    interval: Duration,
    /// Counts the pruned jobs for `/metrics`.
    meters: Meters,
    /// The last pass's report; a std mutex, held only to copy a report in or out.
    last_pass: Mutex<Option<PassReport>>,
    /// The task, waited for at shutdown so no batch is cut by the store closing.
    tracker: TaskTracker,
}

impl Retention {
    /// A handle for `policy`, passes every `interval`; nothing runs before [`Retention::start`].
    pub fn new(store: Arc<dyn JobStore>, policy: RetentionPolicy, interval: Duration, meters: Meters) -> Self {
        let inner = Inner { store, policy, interval, meters, last_pass: Mutex::new(None), tracker: TaskTracker::new() };
        Retention { inner: Arc::new(inner) }
    }

    /// The policy.
    pub fn policy(&self) -> RetentionPolicy {
        self.inner.policy
    }

    /// How often a pass runs.
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// What the last pass did; `None` before the first, or when retention is off.
    pub fn last_pass(&self) -> Option<PassReport> {
        self.inner.last_pass.lock().expect("the last pass lock is never poisoned").clone()
    }

    /// Starts the passes (the first at once) until `stop`, when the policy sets a limit.
    pub fn start(&self, stop: CancellationToken) {
        if !self.inner.policy.is_on() {
            return;
        }
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move {
            let mut ticks = tokio::time::interval(inner.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let report = inner.pass(&stop).await;
                *inner.last_pass.lock().expect("the last pass lock is never poisoned") = Some(report);
            }
        });
    }

    /// Waits up to `grace` for a pass in progress to finish its batch (the stop token ends it).
    pub async fn stop(&self, grace: Duration) {
        self.inner.tracker.close();
        let _ = tokio::time::timeout(grace, self.inner.tracker.wait()).await;
    }
}

impl Inner {
    /// Runs batches until one finds nothing, with a pause between them.
    async fn pass(&self, stop: &CancellationToken) -> PassReport {
        let started_at = Utc::now();
        let batch = self.policy.batch(started_at);
        let mut report = PassReport {
            started_at,
            finished_at: started_at,
            jobs_pruned: 0,
            tombstones_dropped: 0,
            batches: 0,
            outcome: PassOutcome::Pruned,
        };
        report.outcome = loop {
            let pruned: Result<Pruned, StoreError> = self.store.prune_finished(&batch).await;
            report.batches += 1;
            match pruned {
                Ok(Pruned::Busy) => break PassOutcome::Skipped,
                Ok(Pruned::Batch { jobs: 0, tombstones: 0 }) => break PassOutcome::Pruned,
                Ok(Pruned::Batch { jobs, tombstones }) => {
                    report.jobs_pruned += jobs;
                    report.tombstones_dropped += tombstones;
                    self.meters.jobs_pruned(jobs);
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "retention: pruning failed; the next pass tries again");
                    break PassOutcome::Failed;
                }
            }
            tokio::select! {
                () = stop.cancelled() => break PassOutcome::Stopped,
                () = tokio::time::sleep(BATCH_PAUSE) => {}
            }
        };
        report.finished_at = Utc::now();
        if report.jobs_pruned > 0 || report.tombstones_dropped > 0 {
            tracing::info!(
                jobs = report.jobs_pruned,
                tombstones = report.tombstones_dropped,
                batches = report.batches,
                "retention: pruned finished jobs"
            );
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_policy_gives_the_cutoff_from_the_clock_and_the_count() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let off = RetentionPolicy::default();
        assert!(!off.is_on());
        let batch = off.batch(now);
        assert_eq!((batch.finished_before, batch.keep_newest), (None, None));

        let both = RetentionPolicy { max_age_days: Some(30), max_jobs: Some(500) };
        assert!(both.is_on());
        let batch = both.batch(now);
        assert_eq!(batch.finished_before, Some(Utc.with_ymd_and_hms(2026, 11, 5, 12, 0, 0).unwrap()));
        assert_eq!(batch.keep_newest, Some(500));
        assert_eq!((batch.max_jobs, batch.max_event_rows, batch.max_tombstones), (JOBS_PER_BATCH, EVENT_ROWS_PER_BATCH, MAX_TOMBSTONES));
        assert!(RetentionPolicy { max_age_days: None, max_jobs: Some(1) }.is_on());
    }
}
