//! What the runner runs: job kinds it knows only by name, each behind a type-erased entry point.
//! The concrete kinds (the experiments) implement [`JobKinds`] above this layer; start-up hands
//! the runner one such registry.

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::JobError;
use super::context::JobContext;

/// How a run failed, as the runner records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    /// The error stored on the job.
    pub error: JobError,
    /// A report kept although the run failed (missed thresholds keep theirs).
    pub report: Option<Value>,
}

/// A run in progress: the report as JSON, or why it failed.
pub type RunFuture = BoxFuture<'static, Result<Value, RunFailure>>;

/// The kinds a runner can run, looked up by the name stored on each job.
pub trait JobKinds: Send + Sync + 'static {
    /// Starts a run of `kind` with the stored parameters, or `None` when this build has no such
    /// kind. Dropping the future must stop all of the run's work.
    fn start(&self, kind: &str, ctx: JobContext, params: Value) -> Option<RunFuture>;
}
