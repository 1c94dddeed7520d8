//! Persistence of jobs and their events behind one trait, so the rest of the code never
//! names a database.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

use crate::jobs::{Job, JobError, JobEvent, JobId, JobStatus, PendingEvent};

/// What a store operation can fail with. Its text is for logs only, never for API callers.
pub type StoreError = anyhow::Error;

/// A job to be inserted as `queued`.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id to give it (UUIDv7).
    pub id: JobId,
    /// The experiment kind.
    pub kind: String,
    /// The validated parameters.
    pub params: Value,
    /// The job's time limit.
    pub timeout_ms: u64,
    /// The caller's `Idempotency-Key`, if one was sent.
    pub idempotency_key: Option<String>,
}

/// The result of an insert: the job, and whether it is new or the one an earlier request with
/// the same idempotency key created.
#[derive(Debug, Clone)]
pub struct Inserted {
    /// The stored job.
    pub job: Job,
    /// False when the idempotency key matched an existing job.
    pub created: bool,
}

/// Filters and paging for listing jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs older than this one (the previous page's last id).
    pub before: Option<JobId>,
    /// The most jobs to return.
    pub limit: u32,
}

/// How a job ended, as written in one step with its last events.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The terminal status.
    pub status: JobStatus,
    /// The report, when there is one.
    pub result: Option<Value>,
    /// The error, when the job did not succeed.
    pub error: Option<JobError>,
}

/// Where jobs and events live. Implementations must make each method atomic.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a queued job and its first `status` event (seq 1), or returns the job an earlier
    /// insert with the same idempotency key created.
    async fn insert_job(&self, job: NewJob) -> Result<Inserted, StoreError>;

    /// The job an earlier insert with this idempotency key created.
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, StoreError>;

    /// One job by id.
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Jobs matching the query, newest first.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError>;

    /// How many jobs wait in the queue.
    async fn count_queued(&self) -> Result<u64, StoreError>;

    /// Atomically moves the oldest queued job to `running` and returns it with the sequence
    /// number of its last event.
    async fn claim_next(&self) -> Result<Option<(Job, i64)>, StoreError>;

    /// Appends already-sequenced events of running jobs, and stores each job's latest
    /// progress snapshot found among them.
    async fn append_events(&self, events: &[JobEvent]) -> Result<(), StoreError>;

    /// Writes a running job's terminal state together with its last events.
    async fn finish_job(&self, id: JobId, finish: &Finish, events: &[JobEvent]) -> Result<(), StoreError>;

    /// Moves a job that is still `queued` to `cancelled` and appends the status event; returns
    /// that event, or `None` when the job was not queued.
    async fn cancel_queued(&self, id: JobId) -> Result<Option<JobEvent>, StoreError>;

    /// Marks every `running` job `interrupted` (they were left by a process that died) and
    /// returns the status events appended.
    async fn interrupt_running(&self, error: &JobError) -> Result<Vec<JobEvent>, StoreError>;

    /// A job's events with `seq > after`, in order, at most `limit` of them.
    async fn events_after(&self, id: JobId, after: i64, limit: u32) -> Result<Vec<JobEvent>, StoreError>;
}

/// The first event of every job.
pub fn queued_event() -> PendingEvent {
    PendingEvent::status(JobStatus::Queued, None)
}

/// The last progress snapshot of each job among `events`, to keep `job.progress` current.
fn latest_progress(events: &[JobEvent]) -> Vec<(JobId, Value)> {
    let mut latest: Vec<(JobId, Value)> = Vec::new();
    for event in events.iter().filter(|event| event.kind == crate::jobs::EventKind::Progress) {
        match latest.iter_mut().find(|(job_id, _)| *job_id == event.job_id) {
            Some(slot) => slot.1 = event.data.clone(),
            None => latest.push((event.job_id, event.data.clone())),
        }
    }
    latest
}
