//! Persistence of jobs and their events behind one trait, so the rest of the code never
//! names a database: PostgreSQL for teams and production, an embedded SQLite file when no
//! database is configured.

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_store() {
        let data = Path::new("/var/lib/asynclab");
        assert_eq!(StoreLocation::from_url(None, data).unwrap(), StoreLocation::Sqlite(data.join("asynclab.db")));
        assert_eq!(StoreLocation::from_url(Some(""), data).unwrap(), StoreLocation::Sqlite(data.join("asynclab.db")));
        assert_eq!(
            StoreLocation::from_url(Some("postgres://u@h/db"), data).unwrap(),
            StoreLocation::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            StoreLocation::from_url(Some("sqlite:///tmp/x.db"), data).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert!(StoreLocation::from_url(Some("mysql://h/db"), data).is_err());
    }
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
