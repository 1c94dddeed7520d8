//! Application state shared by every request handler: the store, the event bus, the runner and
//! the shared clients, built once at start-up and cheap to clone.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::jobs::events::EventBus;
use crate::jobs::runner::Runner;
use crate::outbound::OutboundPolicy;
use crate::store::JobStore;
use crate::targets::TargetStats;

/// Clients and policies experiments share, built once.
#[derive(Debug, Default)]
pub struct Services {
    /// Where experiments may connect.
    pub outbound: OutboundPolicy,
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Where jobs and events live.
    pub store: Arc<dyn JobStore>,
    /// Live events.
    pub bus: EventBus,
    /// Runs jobs.
    pub runner: Runner,
    /// Shared clients for experiments.
    pub services: Arc<Services>,
    /// The configuration the server started with.
    pub config: Arc<ServeConfig>,
    /// Counters of the built-in target.
    pub target_stats: Arc<TargetStats>,
    /// Fired when shutdown begins: new jobs are refused from then on.
    pub stopping: CancellationToken,
    /// Event streams, tracked so shutdown can wait for them.
    pub streams: TaskTracker,
    /// Fired when open event streams must close (after running jobs were recorded).
    pub streams_closing: CancellationToken,
}
