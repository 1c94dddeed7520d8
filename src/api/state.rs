//! What every request handler shares: the store, the event bus, the runner, retention, the
//! services, the HTTP limits and the shutdown signals, built once at start-up and cheap to clone.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::Limits;
use crate::config::ServeConfig;
use crate::jobs::events::EventBus;
use crate::jobs::retention::Retention;
use crate::jobs::runner::Runner;
use crate::services::Services;
use crate::store::JobStore;
use crate::targets::TargetStats;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Where jobs and events live.
    pub store: Arc<dyn JobStore>,
    /// Live events.
    pub bus: EventBus,
    /// Runs jobs.
    pub runner: Runner,
    /// Prunes finished jobs past the retention limits; says what its last pass did.
    pub retention: Retention,
    /// Shared clients for experiments.
    pub services: Arc<Services>,
    /// The configuration the server started with.
    pub config: Arc<ServeConfig>,
    /// Counters of the built-in target.
    pub target_stats: Arc<TargetStats>,
    /// Per-client launch rate and per-job stream limits.
    pub limits: Arc<Limits>,
    /// Checks presented tokens.
    pub auth: Arc<crate::api::auth::Authenticator>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<crate::api::auth::failures::FailureLimiter>,
    /// Fired when shutdown begins: new jobs are refused from then on.
    pub stopping: CancellationToken,
    /// Event streams, tracked so shutdown can wait for them.
    pub streams: TaskTracker,
    /// Fired when open event streams must close (after running jobs were recorded).
    pub streams_closing: CancellationToken,
}
