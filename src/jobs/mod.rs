//! Jobs: the engine that runs them — the runner, the job context, the event bus, start-up
//! repair, retention — generic over the kinds it is given (see [`kind`]).
//!
//! A job moves `queued → running → succeeded | failed | cancelled | interrupted`; every change
//! and every piece of progress is an event in the job's dense, append-only sequence. The records
//! themselves (ids, statuses, events) belong to the store and are re-exported here.

pub mod context;
pub mod events;
pub mod gate;
pub mod kind;
pub mod recovery;
pub mod retention;
pub mod runner;
pub mod webhooks;

pub use crate::store::records::{EventKind, Job, JobError, JobEvent, JobId, JobStatus, PendingEvent};
