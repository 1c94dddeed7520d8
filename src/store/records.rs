//! The job records the store keeps and the API shows: ids, statuses, errors, jobs and their
//! events. They live with the store, which owns them; `jobs` re-exports them for the engine.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::labels::Labels;
use crate::compare::gate::Gate;

/// A job's identifier: a UUIDv7, so ids sort by creation time.
pub type JobId = Uuid;

/// A job's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Stored and waiting for a free runner slot.
    Queued,
    /// Claimed by a runner and executing.
    Running,
    /// Finished with a report.
    Succeeded,
    /// Finished with an error (including a timeout or a missed threshold).
    Failed,
    /// Stopped at a caller's request.
    Cancelled,
    /// Stopped because the server shut down or died while it ran.
    Interrupted,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] =
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled, JobStatus::Interrupted];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Interrupted => "interrupted",
        }
    }

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the job can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// Why a job failed, in a form a report or a script can branch on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// A stable machine-readable category, e.g. `timeout`, `panic`, `connect`, `thresholds`.
    pub kind: String,
    /// A human-readable explanation.
    pub message: String,
}

/// A job as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// The job's id (UUIDv7).
    pub id: Uuid,
    /// The experiment kind, e.g. `http-fanout`.
    pub kind: String,
    /// Where the job is in its lifecycle.
    pub status: JobStatus,
    /// The validated parameters the job runs with (defaults filled in).
    #[schema(value_type = Object)]
    pub params: Value,
    /// The latest progress snapshot, if any was published.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Value>,
    /// The experiment's report, once the job succeeded (or failed with a report, as on missed thresholds).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why the job failed, was cancelled or was interrupted.
    pub error: Option<JobError>,
    /// The time limit after which the job is stopped and marked failed.
    pub timeout_ms: u64,
    /// When the job was accepted.
    pub created_at: DateTime<Utc>,
    /// When a runner started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// The replica that runs or ran the job (its `--replica-id`), once claimed.
    pub replica: Option<String>,
    /// The sharded job this one is a shard of.
    pub parent_id: Option<Uuid>,
    /// How many times a replica claimed the job: more than once after a dead replica's job was
    /// re-queued.
    pub attempts: u32,
    /// The name of the token that launched the job (`anonymous` without one, `bootstrap` for
    /// ASYNCLAB_TOKEN); never the secret. A shard shows its parent's.
    pub launched_by: Option<String>,
    /// The labels the launch gave it (`branch`, `commit`, `keep`…).
    #[serde(default)]
    pub labels: Labels,
    /// The regression gate the launch asked for: the baseline job and the tolerances checked
    /// when the job succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// The webhook the launch named and how its delivery stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// Where a job-finished webhook's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet: the job has not ended, or an attempt failed and another is due.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the receiver refused it (a 4xx other than 408 and 429) or every attempt failed.
    Failed,
}

impl DeliveryState {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// Parses a stored state name.
    pub fn parse(name: &str) -> Option<DeliveryState> {
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed].into_iter().find(|state| state.as_str() == name)
    }
}

/// One delivery attempt's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the attempt failed without an answer (connect, timeout, refused address…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A job-finished webhook: the URL the job's final representation is POSTed to once it ends,
/// and how the delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// The receiver's URL (allowlisted like any outbound target).
    pub url: String,
    /// Where the delivery stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The latest attempt, once one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<DeliveryAttempt>,
}

/// The category of a job event, also its SSE `event:` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A status change; `data.status` is the new status.
    Status,
    /// A progress snapshot (coalesced: a few per second at most).
    Progress,
    /// A discrete log line; never coalesced or dropped.
    Log,
    /// The final report.
    Result,
}

impl EventKind {
    /// The name stored in the database and used as the SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Progress => "progress",
            EventKind::Log => "log",
            EventKind::Result => "result",
        }
    }

    /// Parses a stored event kind name.
    pub fn parse(name: &str) -> Option<EventKind> {
        [EventKind::Status, EventKind::Progress, EventKind::Log, EventKind::Result].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One stored event of a job; `seq` is dense per job, starts at 1 and is the SSE `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    /// The job the event belongs to.
    pub job_id: Uuid,
    /// Position in the job's event sequence (1, 2, 3, …).
    pub seq: i64,
    /// When the event was produced.
    pub at: DateTime<Utc>,
    /// The event's category.
    pub kind: EventKind,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl JobEvent {
    /// The status this event moves the job to, if it is a status event.
    pub fn status(&self) -> Option<JobStatus> {
        if self.kind != EventKind::Status {
            return None;
        }
        self.data.get("status").and_then(Value::as_str).and_then(JobStatus::parse)
    }
}

/// An event not yet given its sequence number.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// When the event was produced.
    pub at: DateTime<Utc>,
    /// The event's category.
    pub kind: EventKind,
    /// The event's payload.
    pub data: Value,
}

impl PendingEvent {
    /// An event produced now. The time is cut to microseconds, the precision stores keep, so a
    /// live event and its stored copy are identical.
    pub fn now(kind: EventKind, data: Value) -> Self {
        PendingEvent { at: Utc::now().trunc_subsecs(6), kind, data }
    }

    /// A status event for `status`, carrying the error when there is one.
    pub fn status(status: JobStatus, error: Option<&JobError>) -> Self {
        let mut data = serde_json::json!({ "status": status.as_str() });
        if let Some(error) = error {
            data["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
        }
        PendingEvent::now(EventKind::Status, data)
    }

    /// Gives the event its place in the job's sequence.
    pub fn sequenced(self, job_id: JobId, seq: i64) -> JobEvent {
        JobEvent { job_id, seq, at: self.at, kind: self.kind, data: self.data }
    }
}
