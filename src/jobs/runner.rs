//! The runner: claims queued jobs from the store while a slot is free, runs each as a tracked
//! task under its own cancellation token and time limit, and records how it ended. Beside it,
//! `replica.rs` keeps the claims' leases alive and listens to the other replicas.

mod replica;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{MissedTickBehavior, interval, sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::context::{ContextParts, JobContext, PROGRESS_INTERVAL};
use super::events::EventBus;
use super::kind::{JobKinds, RunFuture};
use super::{EventKind, Job, JobError, JobId, JobStatus, PendingEvent};
use crate::services::Services;
use crate::store::{Claimant, Finish, JobStore};

/// How often the dispatcher looks for queued jobs when nobody woke it (jobs inserted by another
/// process, or a wake-up lost to a store error).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often a cancel of a job running elsewhere checks whether the job has ended.
const CANCEL_POLL: Duration = Duration::from_millis(25);
/// How many times a cancel looks again when the job changed state under it.
const CANCEL_ATTEMPTS: u32 = 3;

/// A cheap handle to the runner.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn JobStore>,
    /// This replica's id and lease: what claims are made with.
    claimant: Claimant,
    bus: EventBus,
    services: Arc<Services>,
    /// The kinds this runner can run.
    kinds: Arc<dyn JobKinds>,
    /// One permit per job allowed to run at once (`max_running_jobs`).
    slots: Arc<Semaphore>,
    /// The dispatcher, every job and every experiment task.
    tracker: TaskTracker,
    /// Parent of every job's token: cancelled at shutdown.
    root: CancellationToken,
    /// Wakes the dispatcher when a job is queued or a slot frees up.
    wake: Notify,
    /// Jobs running in this process. A std mutex: only inserts, removals and lookups under it.
    running: Mutex<HashMap<JobId, RunningJob>>,
    /// Where job sandboxes are created.
    data_dir: PathBuf,
}

struct RunningJob {
    token: CancellationToken,
    /// Set when a caller (not shutdown) asked for the stop.
    cancel_requested: Arc<AtomicBool>,
    /// Cancelled once the job's end is stored.
    finished: CancellationToken,
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled.
    CancelledQueued,
    /// The job was running here; it has been told to stop.
    Stopping,
    /// The job had already ended with this status.
    AlreadyFinished(JobStatus),
    /// No such job.
    NotFound,
}

/// How a job's run ended, before it is stored.
struct Outcome {
    status: JobStatus,
    result: Option<Value>,
    error: Option<JobError>,
}

impl Outcome {
    fn failed(kind: &str, message: impl Into<String>) -> Self {
        Outcome::ended(JobStatus::Failed, kind, message)
    }

    fn ended(status: JobStatus, kind: &str, message: impl Into<String>) -> Self {
        Outcome { status, result: None, error: Some(JobError { kind: kind.into(), message: message.into() }) }
    }
}

impl Runner {
    /// A runner of `kinds` allowing `max_running` jobs at once, claiming as `claimant`; `root`
    /// stops them all.
    #[allow(clippy::too_many_arguments, reason = "each is one of the runner's collaborators, given once at start-up")]
    pub fn new(
        store: Arc<dyn JobStore>,
        claimant: Claimant,
        bus: EventBus,
        services: Arc<Services>,
        kinds: Arc<dyn JobKinds>,
        max_running: usize,
        data_dir: PathBuf,
        root: CancellationToken,
    ) -> Self {
        Runner {
            inner: Arc::new(Inner {
                store,
                claimant,
                bus,
                services,
                kinds,
                slots: Arc::new(Semaphore::new(max_running)),
                tracker: TaskTracker::new(),
                root,
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                data_dir,
            }),
        }
    }

    /// Starts the dispatcher, the heartbeat that keeps leases and rescues dead replicas' jobs,
    /// and the listener for other replicas' signals.
    pub fn start(&self) {
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move { inner.dispatch().await });
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move { inner.heartbeat().await });
        if let Some(signals) = self.inner.store.listen(&self.inner.tracker, self.inner.root.clone()) {
            let inner = self.inner.clone();
            self.inner.tracker.spawn(async move { inner.follow_signals(signals).await });
        }
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.inner.claimant.replica
    }

    /// Tells the dispatcher a job was queued.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops every job (they end `interrupted`) and waits up to `grace` for them to be recorded.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.inner.root.cancel();
        self.inner.tracker.close();
        tokio::time::timeout(grace, self.inner.tracker.wait()).await.is_ok()
    }

    /// Cancels a job: a queued one at once, a running one by firing its token — through the
    /// store when another replica runs it. When it was running, waits up to `wait` for its end to
    /// be stored.
    pub async fn cancel(&self, id: JobId, wait: Duration) -> Result<CancelOutcome, crate::store::StoreError> {
        let inner = &self.inner;
        for _ in 0..CANCEL_ATTEMPTS {
            if let Some(finished) = inner.request_stop(id) {
                let _ = tokio::time::timeout(wait, finished.cancelled()).await;
                return Ok(CancelOutcome::Stopping);
            }
            if let Some(event) = inner.store.cancel_queued(id).await? {
                inner.bus.announce_final(id, &[event]);
                inner.services.meters.events_written(1);
                if let Some(job) = inner.store.get_job(id).await? {
                    inner.services.meters.job_ended(&job.kind, JobStatus::Cancelled, false);
                }
                return Ok(CancelOutcome::CancelledQueued);
            }
            match inner.store.get_job(id).await? {
                None => return Ok(CancelOutcome::NotFound),
                Some(job) if job.status.is_terminal() => return Ok(CancelOutcome::AlreadyFinished(job.status)),
                // Running on another replica (or claimed here a moment ago): the store carries
                // the request to whoever runs it.
                Some(job) if job.status == JobStatus::Running && inner.store.request_cancel(id).await? => {
                    inner.await_end(id, wait).await?;
                    return Ok(CancelOutcome::Stopping);
                }
                // It changed state meanwhile (ended, or was queued again): look again.
                Some(_) => {}
            }
        }
        match inner.store.get_job(id).await? {
            None => Ok(CancelOutcome::NotFound),
            Some(job) if job.status.is_terminal() => Ok(CancelOutcome::AlreadyFinished(job.status)),
            Some(_) => Ok(CancelOutcome::Stopping),
        }
    }
}

impl Inner {
    /// Waits up to `wait` for a job to end, stopping it here if it turns out to run here.
    async fn await_end(&self, id: JobId, wait: Duration) -> Result<(), crate::store::StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if let Some(finished) = self.request_stop(id) {
                let _ = tokio::time::timeout_at(deadline, finished.cancelled()).await;
                return Ok(());
            }
            if self.store.get_job(id).await?.is_none_or(|job| job.status.is_terminal()) {
                return Ok(());
            }
            sleep(CANCEL_POLL).await;
        }
        Ok(())
    }

    fn request_stop(&self, id: JobId) -> Option<CancellationToken> {
        let running = self.running.lock().expect("running map poisoned");
        let job = running.get(&id)?;
        job.cancel_requested.store(true, Ordering::SeqCst);
        job.token.cancel();
        Some(job.finished.clone())
    }

    async fn dispatch(self: Arc<Self>) {
        loop {
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
                () = self.root.cancelled() => return,
            };
            match self.store.claim_next(&self.claimant).await {
                Ok(Some((job, last_seq))) => {
                    let running = RunningJob {
                        token: self.root.child_token(),
                        cancel_requested: Arc::new(AtomicBool::new(false)),
                        finished: CancellationToken::new(),
                    };
                    let handles = (running.token.clone(), running.cancel_requested.clone(), running.finished.clone());
                    // Registered before the task starts, so a cancel never misses a claimed job.
                    self.running.lock().expect("running map poisoned").insert(job.id, running);
                    let inner = self.clone();
                    self.tracker.spawn(async move { inner.run_job(job, last_seq, handles, slot).await });
                }
                Ok(None) => {
                    drop(slot);
                    self.idle().await;
                }
                Err(error) => {
                    drop(slot);
                    tracing::error!(error = format!("{error:#}"), "cannot claim a queued job");
                    self.idle().await;
                }
            }
            if self.root.is_cancelled() {
                return;
            }
        }
    }

    async fn idle(&self) {
        tokio::select! {
            () = self.wake.notified() => {}
            () = sleep(IDLE_POLL) => {}
            () = self.root.cancelled() => {}
        }
    }

    #[tracing::instrument(skip_all, fields(job.id = %job.id, job.kind = %job.kind))]
    async fn run_job(
        self: Arc<Self>,
        job: Job,
        last_seq: i64,
        (token, cancel_requested, finished): (CancellationToken, Arc<AtomicBool>, CancellationToken),
        slot: OwnedSemaphorePermit,
    ) {
        let id = job.id;
        tracing::info!("job started");
        self.services.meters.job_started(&job.kind);
        self.bus.open(id, last_seq).await;
        self.bus.publish(id, PendingEvent::status(JobStatus::Running, None)).await;
        let sandbox = self.data_dir.join("jobs").join(id.to_string());
        let ctx = JobContext::new(ContextParts {
            job_id: id,
            timeout: Duration::from_millis(job.timeout_ms),
            services: self.services.clone(),
            store: self.store.clone(),
            token: token.clone(),
            bus: self.bus.clone(),
            sandbox: sandbox.clone(),
            cleanups: self.tracker.clone(),
            slot,
        });
        let params = job.params.clone();
        let run = self.kinds.start(&job.kind, ctx.clone(), job.params);
        let outcome = match (run, tokio::fs::create_dir_all(&sandbox).await) {
            (None, _) => Outcome::failed("unknown_kind", format!("no experiment kind {:?} in this build", job.kind)),
            (_, Err(error)) => Outcome::failed("sandbox", format!("cannot create the job directory: {error}")),
            (Some(run), Ok(())) => {
                let timeout = Duration::from_millis(job.timeout_ms);
                self.execute(run, &ctx, timeout, &token, &cancel_requested).await
            }
        };
        let outcome = match (&job.gate, outcome) {
            (Some(gate), Outcome { status: JobStatus::Succeeded, result: Some(report), .. }) => {
                let gated = super::gate::check(self.store.as_ref(), id, &job.kind, &params, gate, report).await;
                let status = if gated.error.is_some() { JobStatus::Failed } else { JobStatus::Succeeded };
                Outcome { status, result: Some(gated.result), error: gated.error }
            }
            (_, outcome) => outcome,
        };
        if let Err(error) = tokio::fs::remove_dir_all(&sandbox).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, "cannot remove the job directory");
        }
        ctx.flush_progress().await;
        let mut events = Vec::with_capacity(2);
        if let Some(report) = &outcome.result {
            events.push(PendingEvent::now(EventKind::Result, report.clone()));
        }
        events.push(PendingEvent::status(outcome.status, outcome.error.as_ref()));
        tracing::info!(status = outcome.status.as_str(), "job ended");
        self.services.meters.job_ended(&job.kind, outcome.status, true);
        let finish = Finish { status: outcome.status, result: outcome.result, error: outcome.error };
        self.bus.finish(id, finish, events).await;
        self.running.lock().expect("running map poisoned").remove(&id);
        finished.cancel();
        self.wake.notify_one();
    }

    /// Runs the experiment as its own task, so a panic fails only this job, until it ends, the
    /// token fires or the time limit passes.
    async fn execute(
        &self,
        run: RunFuture,
        ctx: &JobContext,
        timeout: Duration,
        token: &CancellationToken,
        cancel_requested: &AtomicBool,
    ) -> Outcome {
        let mut experiment = AbortOnDropHandle::new(self.tracker.spawn(run));
        let deadline = sleep(timeout);
        tokio::pin!(deadline);
        let mut progress_timer = interval(PROGRESS_INTERVAL);
        progress_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                joined = &mut experiment => {
                    return match joined {
                        Ok(Ok(report)) => Outcome { status: JobStatus::Succeeded, result: Some(report), error: None },
                        Ok(Err(failure)) => Outcome { status: JobStatus::Failed, result: failure.report, error: Some(failure.error) },
                        Err(join_error) if join_error.is_panic() => {
                            Outcome::failed("panic", format!("the experiment panicked: {}", panic_message(join_error.into_panic())))
                        }
                        Err(join_error) => Outcome::failed("internal", format!("the experiment task ended: {join_error}")),
                    };
                }
                () = token.cancelled() => {
                    break if cancel_requested.load(Ordering::SeqCst) {
                        Outcome::ended(JobStatus::Cancelled, "cancelled", "cancelled by request")
                    } else {
                        Outcome::ended(JobStatus::Interrupted, "interrupted", "the server shut down while the job was running")
                    };
                }
                () = &mut deadline => {
                    break Outcome::failed("timeout", format!("the job exceeded its time limit of {} ms", timeout.as_millis()));
                }
                _ = progress_timer.tick() => ctx.flush_progress().await,
            }
        };
        token.cancel();
        experiment.abort();
        let _ = experiment.await;
        outcome
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "unknown panic".into(), |s| (*s).to_string()),
    }
}
