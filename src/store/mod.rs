//! Persistence of jobs and their events behind one trait, so the rest of the code never
//! names a database: PostgreSQL for teams and production, an embedded SQLite file when no
//! database is configured.

#[cfg(test)]
mod conformance;
pub mod labels;
pub mod postgres;
pub mod records;
pub mod retention;
pub mod sqlite;
pub mod token;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::compare::gate::Gate;
use labels::{LabelSelector, Labels};
pub use records::{EventKind, Job, JobError, JobEvent, JobId, JobStatus, PendingEvent};
use retention::{PruneBatch, Pruned, Tombstone};

/// What a store operation can fail with. Its text is for logs only, never for API callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached now (connection lost, pool exhausted or closed, the server
    /// shutting down or not up yet); the pool reconnects by itself, so a retry may succeed.
    #[error("the job store is unreachable: {0:#}")]
    Unreachable(anyhow::Error),
    /// Anything else: a bug, a violated constraint, an unreadable row.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl StoreError {
    /// Whether a retry later may succeed because the database could not be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable(_))
    }
}

impl From<anyhow::Error> for StoreError {
    /// Sorts a failure by its cause: a driver error saying the database could not be reached (or
    /// an unreachable store error given context) anywhere in the chain makes it
    /// [`StoreError::Unreachable`].
    fn from(error: anyhow::Error) -> Self {
        let unreachable = |cause: &(dyn std::error::Error + 'static)| {
            cause.downcast_ref::<sqlx::Error>().is_some_and(is_unreachable)
                || cause.downcast_ref::<StoreError>().is_some_and(StoreError::is_unreachable)
        };
        if error.chain().any(unreachable) { StoreError::Unreachable(error) } else { StoreError::Failed(error) }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(anyhow::Error::new(error))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Failed(error.into())
    }
}

impl From<std::num::TryFromIntError> for StoreError {
    fn from(error: std::num::TryFromIntError) -> Self {
        StoreError::Failed(error.into())
    }
}

/// Whether a driver error says the database could not be reached, rather than that a query was wrong.
fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away or not up yet.
        sqlx::Error::Database(database) => matches!(database.code().as_deref(), Some("57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

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
    /// The sharded job this one is a shard of.
    pub parent_id: Option<JobId>,
    /// How many times the job may be claimed: more than one re-queues it when its replica dies.
    pub max_attempts: u32,
    /// The name of the token that launched it; `None` for a shard, which takes its parent's.
    pub launched_by: Option<String>,
    /// The launch's labels.
    pub labels: Labels,
    /// The regression gate checked when the job succeeds.
    pub gate: Option<Gate>,
    /// The URL POSTed the job's final representation once it ends.
    pub webhook_url: Option<String>,
}

/// A replica claiming jobs: its id (stored as the job's owner) and how long a claim holds
/// without a heartbeat.
#[derive(Debug, Clone)]
pub struct Claimant {
    /// The replica's id, unique among the replicas sharing the store.
    pub replica: String,
    /// How long a claim or a renewal holds.
    pub lease: Duration,
}

/// What a heartbeat learned about the running jobs it renewed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Jobs whose lease this replica no longer holds (rescued by another replica): stop them.
    pub lost: Vec<JobId>,
    /// Jobs a caller on another replica asked to cancel.
    pub cancel_requested: Vec<JobId>,
}

/// A wake-up another replica sent through the store: only ids and positions, the data is read
/// from the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSignal {
    /// Events of a job up to `seq` are stored, written by `replica`.
    Stored {
        /// The job.
        job_id: JobId,
        /// Its last stored event.
        seq: i64,
        /// The replica that wrote them.
        replica: String,
    },
    /// A job was queued.
    Queued,
    /// A caller asked to cancel a running job.
    CancelRequested(JobId),
    /// Signals may have been missed (the listening connection was re-established): re-read.
    Resync,
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
    /// Only the shards of this job.
    pub parent: Option<JobId>,
    /// Only jobs launched by the token of this name.
    pub launched_by: Option<String>,
    /// Only jobs carrying every one of these labels.
    pub labels: Vec<LabelSelector>,
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
pub trait JobStore: token::TokenStore + webhook::WebhookStore + Send + Sync + 'static {
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the store's connections, waiting for those in use.
    async fn close(&self);

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

    /// Atomically moves the oldest queued job to `running`, owned by `claimant` under a lease,
    /// and returns it with the sequence number of its last event. A shard is left to other
    /// replicas for a moment when this one already runs one of its siblings, so shards spread.
    async fn claim_next(&self, claimant: &Claimant) -> Result<Option<(Job, i64)>, StoreError>;

    /// Extends the lease of `ids` that `claimant` still owns and still runs; says which it lost
    /// and which a caller asked to cancel.
    async fn renew_leases(&self, claimant: &Claimant, ids: &[JobId]) -> Result<Renewal, StoreError>;

    /// Running jobs whose lease expired (their replica died): each is re-queued when it has
    /// attempts left, else marked `interrupted`, touching only rows still in the state and lease
    /// read. Returns the status events appended.
    async fn rescue_expired(&self) -> Result<Vec<JobEvent>, StoreError>;

    /// Asks the replica running a job to cancel it; false when the job is not running.
    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError>;

    /// Appends already-sequenced events of jobs `replica` runs, and stores each job's latest
    /// progress snapshot found among them. Events of jobs it no longer owns are dropped; their
    /// ids are returned.
    async fn append_events(&self, replica: &str, events: &[JobEvent]) -> Result<Vec<JobId>, StoreError>;

    /// Writes a running job's terminal state together with its last events; false (and nothing
    /// written) when `replica` no longer owns the job.
    async fn finish_job(&self, replica: &str, id: JobId, finish: &Finish, events: &[JobEvent]) -> Result<bool, StoreError>;

    /// Moves a job that is still `queued` to `cancelled` and appends the status event; returns
    /// that event, or `None` when the job was not queued.
    async fn cancel_queued(&self, id: JobId) -> Result<Option<JobEvent>, StoreError>;

    /// At start-up: marks `interrupted` the running jobs this replica left behind when it died
    /// (on SQLite, a one-process store, every running job) and returns the status events
    /// appended.
    async fn interrupt_orphans(&self, replica: &str, error: &JobError) -> Result<Vec<JobEvent>, StoreError>;

    /// A job's events with `seq > after`, in order, at most `limit` of them.
    async fn events_after(&self, id: JobId, after: i64, limit: u32) -> Result<Vec<JobEvent>, StoreError>;

    /// Removes one batch of finished jobs past the batch's limits, with their events, labels and
    /// shards, in one transaction, leaving a tombstone for each job and shard removed; drops the
    /// oldest tombstones beyond the bound. On a store several replicas share, only one replica
    /// prunes at a time: the others get [`Pruned::Busy`].
    async fn prune_finished(&self, batch: &PruneBatch) -> Result<Pruned, StoreError>;

    /// The tombstone of a job retention removed, if it is still kept.
    async fn find_tombstone(&self, id: JobId) -> Result<Option<Tombstone>, StoreError>;

    /// Starts listening for other replicas' signals on `tracker` until `stop`; `None` for a store
    /// only one process uses.
    fn listen(&self, tracker: &TaskTracker, stop: CancellationToken) -> Option<mpsc::Receiver<StoreSignal>>;
}

/// The SQLite file used when no database URL is configured.
pub const DEFAULT_SQLITE_FILE: &str = "asynclab.db";

/// Which store a database URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A PostgreSQL server (`postgres://` or `postgresql://`).
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// PostgreSQL for `postgres://…`, SQLite for `sqlite://path` or when `database_url` is unset
    /// (then `<data_dir>/asynclab.db`).
    pub fn from_url(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let Some(url) = database_url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(StoreLocation::Sqlite(data_dir.join(DEFAULT_SQLITE_FILE)));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                bail!("DATABASE_URL sqlite: needs a file path, e.g. sqlite://./data/asynclab.db");
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite://")
    }

    /// Opens the store, creating the database or file when missing and migrating it.
    pub async fn open(&self, max_connections: u32) -> anyhow::Result<Arc<dyn JobStore>> {
        Ok(match self {
            StoreLocation::Postgres(url) => {
                let store = postgres::PgJobStore::connect(url, max_connections).await?;
                tracing::info!(database = %crate::config::redacted_url(url), "job store: PostgreSQL");
                Arc::new(store)
            }
            StoreLocation::Sqlite(path) => {
                let store = sqlite::SqliteJobStore::open(path).await?;
                tracing::info!(file = %path.display(), "job store: SQLite (set DATABASE_URL=postgres://… for PostgreSQL)");
                Arc::new(store)
            }
        })
    }
}

/// The first event of every job.
pub fn queued_event() -> PendingEvent {
    PendingEvent::status(JobStatus::Queued, None)
}

/// What a rescue makes of a running job whose lease expired: queued again while it has attempts
/// left, else `interrupted`; the error names the replica that stopped renewing the lease.
fn rescue_verdict(owner: Option<&str>, attempts: i64, max_attempts: i64) -> (JobStatus, JobError) {
    let owner = owner.unwrap_or("an unknown replica");
    if attempts < max_attempts {
        let message = format!("{owner} stopped renewing the job's lease; queued again (attempt {} of {max_attempts})", attempts + 1);
        (JobStatus::Queued, JobError { kind: "requeued".into(), message })
    } else {
        let message = format!("{owner} stopped renewing the job's lease (it died or lost the database)");
        (JobStatus::Interrupted, JobError { kind: "interrupted".into(), message })
    }
}

/// The last progress snapshot of each job among `events`, to keep `job.progress` current.
fn latest_progress(events: &[JobEvent]) -> Vec<(JobId, Value)> {
    let mut latest: Vec<(JobId, Value)> = Vec::new();
    for event in events.iter().filter(|event| event.kind == EventKind::Progress) {
        match latest.iter_mut().find(|(job_id, _)| *job_id == event.job_id) {
            Some(slot) => slot.1 = event.data.clone(),
            None => latest.push((event.job_id, event.data.clone())),
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_unreachable_and_other_failures_are_not() {
        for lost in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())] {
            let error = StoreError::from(anyhow::Error::new(lost).context("cannot read the job"));
            assert!(error.is_unreachable(), "{error:?}");
        }
        let lost = StoreError::from(sqlx::Error::PoolClosed);
        assert!(StoreError::from(anyhow::Error::new(lost).context("while claiming")).is_unreachable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unreachable());
        assert!(!StoreError::from(anyhow::anyhow!("a corrupt row")).is_unreachable());
    }

    #[test]
    fn urls_select_the_store() {
        let data = Path::new("/var/lib/asynclab");
        assert_eq!(StoreLocation::from_url(None, data).unwrap(), StoreLocation::Sqlite(data.join("asynclab.db")));
        assert_eq!(StoreLocation::from_url(Some(""), data).unwrap(), StoreLocation::Sqlite(data.join("asynclab.db")));
        assert_eq!(StoreLocation::from_url(Some("postgres://u@h/db"), data).unwrap(), StoreLocation::Postgres("postgres://u@h/db".into()));
        assert_eq!(StoreLocation::from_url(Some("sqlite:///tmp/x.db"), data).unwrap(), StoreLocation::Sqlite(PathBuf::from("/tmp/x.db")));
        assert!(StoreLocation::from_url(Some("mysql://h/db"), data).is_err());
    }
}
