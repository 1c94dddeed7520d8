//! What a running experiment gets: the shared services, its cancellation token, its sandbox
//! directory, and the way to report progress and log lines.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::events::EventBus;
use super::{EventKind, JobId, PendingEvent};
use crate::state::Services;

/// The shortest gap between two published progress snapshots of one job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// A running job's handle to the outside world. Cheap to clone into the experiment's tasks.
#[derive(Clone)]
pub struct JobContext {
    job_id: JobId,
    services: Arc<Services>,
    token: CancellationToken,
    bus: EventBus,
    sandbox: PathBuf,
    /// The runner's tracker: clean-ups run on it, so shutdown waits for them.
    cleanups: TaskTracker,
    /// Coalesces progress: shared by every clone of this context.
    progress: Arc<Mutex<ProgressThrottle>>,
}

/// The newest unpublished snapshot and when one was last published. A std mutex: held only to
/// swap a value, never across an await.
#[derive(Default)]
struct ProgressThrottle {
    last_published: Option<Instant>,
    pending: Option<Value>,
}

impl JobContext {
    /// A context for job `job_id`.
    pub fn new(
        job_id: JobId,
        services: Arc<Services>,
        token: CancellationToken,
        bus: EventBus,
        sandbox: PathBuf,
        cleanups: TaskTracker,
    ) -> Self {
        JobContext { job_id, services, token, bus, sandbox, cleanups, progress: Arc::default() }
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

fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| Value::String(format!("unserializable: {error}")))
}
