//! What a running experiment gets: the shared services, its cancellation token, its sandbox
//! directory, the way to report progress and log lines, and (for a job that splits itself into
//! shards) the way to start and watch child jobs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::events::EventBus;
use super::{EventKind, Job, JobId, PendingEvent};
use crate::cpu::CpuMeter;
use crate::services::Services;
use crate::store::{JobQuery, JobStore, NewJob, StoreError};

/// The shortest gap between two published progress snapshots of one job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The most shards (child jobs) one job may start.
pub const MAX_CHILDREN: usize = 64;

/// What the runner gives a job's context.
pub struct ContextParts {
    /// The job.
    pub job_id: JobId,
    /// The job's time limit, also given to its child jobs.
    pub timeout: Duration,
    /// The shared clients and pools.
    pub services: Arc<Services>,
    /// The job store, for child jobs.
    pub store: Arc<dyn JobStore>,
    /// Fired when the job must stop.
    pub token: CancellationToken,
    /// Where events go.
    pub bus: EventBus,
    /// The job's own directory.
    pub sandbox: PathBuf,
    /// The runner's tracker, for clean-ups.
    pub cleanups: TaskTracker,
    /// The job's runner slot.
    pub slot: OwnedSemaphorePermit,
}

/// A running job's handle to the outside world. Cheap to clone into the experiment's tasks.
#[derive(Clone)]
pub struct JobContext {
    job_id: JobId,
    timeout: Duration,
    services: Arc<Services>,
    store: Arc<dyn JobStore>,
    token: CancellationToken,
    bus: EventBus,
    sandbox: PathBuf,
    /// The runner's tracker: clean-ups run on it, so shutdown waits for them.
    cleanups: TaskTracker,
    /// Coalesces progress: shared by every clone of this context.
    progress: Arc<Mutex<ProgressThrottle>>,
    /// The job's runner slot until it gives it back (a job that only waits for its shards). A
    /// std mutex: only taken to drop the permit.
    slot: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    /// The CPU the job's work uses: the registry charges the job's task to it, experiments add
    /// their threads, tasks and child processes.
    cpu: CpuMeter,
}

/// The newest unpublished snapshot and when one was last published. A std mutex: held only to
/// swap a value, never across an await.
#[derive(Default)]
struct ProgressThrottle {
    last_published: Option<Instant>,
    pending: Option<Value>,
}

impl JobContext {
    /// A context for the job `parts` describe.
    pub fn new(parts: ContextParts) -> Self {
        let ContextParts { job_id, timeout, services, store, token, bus, sandbox, cleanups, slot } = parts;
        JobContext {
            job_id,
            timeout,
            services,
            store,
            token,
            bus,
            sandbox,
            cleanups,
            progress: Arc::default(),
            slot: Arc::new(Mutex::new(Some(slot))),
            cpu: CpuMeter::new(),
        }
    }

    /// Gives the job's runner slot back, so another job can run while this one only waits (for
    /// its shards).
    pub fn release_slot(&self) {
        self.slot.lock().expect("slot mutex poisoned").take();
    }

    /// Queues child jobs of `kind` (its shards), one per parameter set, with this job's time
    /// limit; any replica may claim them. Returns their ids, in order.
    pub async fn start_children(&self, kind: &str, params: Vec<Value>) -> Result<Vec<JobId>, StoreError> {
        let mut ids = Vec::with_capacity(params.len());
        for params in params.into_iter().take(MAX_CHILDREN) {
            let job = NewJob {
                id: uuid::Uuid::now_v7(),
                kind: kind.into(),
                params,
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                idempotency_key: None,
                parent_id: Some(self.job_id),
                max_attempts: 1,
                launched_by: None,
                labels: Default::default(),
                gate: None,
                webhook_url: None,
            };
            ids.push(self.store.insert_job(job).await?.job.id);
        }
        Ok(ids)
    }

    /// This job's child jobs as stored now, oldest first.
    pub async fn children(&self) -> Result<Vec<Job>, StoreError> {
        let query = JobQuery { parent: Some(self.job_id), limit: MAX_CHILDREN as u32, ..JobQuery::default() };
        let mut children = self.store.list_jobs(&query).await?;
        children.reverse();
        Ok(children)
    }

    /// Stops child jobs on whichever replica runs them, in a tracked clean-up task: called when
    /// this job stops early, its own task may be dropped at once.
    pub fn stop_children_on_exit(&self, ids: Vec<JobId>) -> ChildrenGuard {
        ChildrenGuard { ctx: Some(self.clone()), ids }
    }

    /// Runs `work` in a task of its own, bounded by `limit`: for clean-up that must happen even
    /// when the job's task is stopped at once (a cancel or a time limit drops it mid-await).
    /// The task is tracked, so shutdown waits for it.
    pub fn spawn_cleanup(&self, limit: Duration, work: impl Future<Output = ()> + Send + 'static) {
        let job_id = self.job_id;
        self.cleanups.spawn(async move {
            if tokio::time::timeout(limit, work).await.is_err() {
                tracing::warn!(job.id = %job_id, "a clean-up did not finish in time");
            }
        });
    }

    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The shared clients and pools.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Fired when the job is cancelled, times out or the server shuts down.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The job's CPU ledger, for its report's `cpu` figure.
    pub fn cpu(&self) -> &CpuMeter {
        &self.cpu
    }

    /// The job's own directory under the data dir; files it writes stay inside.
    pub fn sandbox(&self) -> &std::path::Path {
        &self.sandbox
    }

    /// Reports a progress snapshot. Snapshots are coalesced: at most one per
    /// [`PROGRESS_INTERVAL`] is published, always the newest, so calling this per request is fine.
    pub async fn progress(&self, snapshot: impl Serialize) {
        let snapshot = to_json(snapshot);
        let publish_now = {
            let mut throttle = self.progress.lock().expect("progress throttle poisoned");
            let due = throttle.last_published.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
            if due {
                throttle.last_published = Some(Instant::now());
                throttle.pending = None;
            } else {
                throttle.pending = Some(snapshot.clone());
            }
            due
        };
        if publish_now {
            self.bus.publish(self.job_id, PendingEvent::now(EventKind::Progress, snapshot)).await;
        }
    }

    /// Publishes a progress snapshot at once, bypassing coalescing: for rare transitions that
    /// each matter (a task finishing), never for per-request updates.
    pub async fn milestone(&self, snapshot: impl Serialize) {
        {
            let mut throttle = self.progress.lock().expect("progress throttle poisoned");
            throttle.last_published = Some(Instant::now());
            throttle.pending = None;
        }
        self.bus.publish(self.job_id, PendingEvent::now(EventKind::Progress, to_json(snapshot))).await;
    }

    /// Publishes a log line; log events are never coalesced or dropped.
    pub async fn log(&self, line: impl Serialize) {
        self.bus.publish(self.job_id, PendingEvent::now(EventKind::Log, to_json(line))).await;
    }

    /// Publishes the snapshot held back by coalescing, if any. The runner calls this on a timer
    /// and once more when the job ends.
    pub async fn flush_progress(&self) {
        let pending = {
            let mut throttle = self.progress.lock().expect("progress throttle poisoned");
            let pending = throttle.pending.take();
            if pending.is_some() {
                throttle.last_published = Some(Instant::now());
            }
            pending
        };
        if let Some(snapshot) = pending {
            self.bus.publish(self.job_id, PendingEvent::now(EventKind::Progress, snapshot)).await;
        }
    }
}

/// Stops a job's unfinished children when dropped, unless [`ChildrenGuard::disarm`] was called.
pub struct ChildrenGuard {
    ctx: Option<JobContext>,
    ids: Vec<JobId>,
}

impl ChildrenGuard {
    /// The children ended by themselves: nothing to stop.
    pub fn disarm(mut self) {
        self.ctx = None;
    }
}

impl Drop for ChildrenGuard {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        let ids = std::mem::take(&mut self.ids);
        let store = ctx.store.clone();
        ctx.spawn_cleanup(CHILDREN_STOP_LIMIT, async move {
            for id in ids {
                let stopped = match store.cancel_queued(id).await {
                    Ok(Some(_)) => Ok(true),
                    Ok(None) => store.request_cancel(id).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = stopped {
                    tracing::warn!(job.id = %id, error = format!("{error:#}"), "cannot stop a shard");
                }
            }
        });
    }
}

/// How long stopping a job's children may take.
const CHILDREN_STOP_LIMIT: Duration = Duration::from_secs(10);

fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| Value::String(format!("unserializable: {error}")))
}
