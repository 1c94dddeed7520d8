//! asynclab: the classic async-I/O experiments as an HTTP service.
//!
//! A `POST /experiments/{kind}` validates parameters and records a queued job; the runner
//! claims it, runs the experiment as a tracked task and streams its events (stored first, then
//! broadcast) to SSE clients; the result lands in the job store.
//!
//! # Layout
//! - [`config`]: every setting (flags with environment fallbacks) and the subcommands.
//! - [`startup`]: builds the application and runs it until shutdown.
//! - [`state`]: the shared state handlers and experiments use.
//! - [`dependencies`]: the external services experiments use (target databases, Redis).
//! - [`api`]: HTTP routes, one module per resource, and the OpenAPI document.
//! - [`error`]: problem+json errors and the extractors that produce them.
//! - [`jobs`]: job types, the runner, the job context, the event bus, start-up repair.
//! - [`meters`]: the Prometheus measurements `GET /metrics` renders.
//! - [`store`]: the `JobStore` trait and its PostgreSQL implementation.
//! - [`experiments`]: the `Experiment` trait, the registry, one module per kind.
//! - [`targets`]: the built-in load target.
//! - [`client`]: the `asynclab run` client CI scripts use.
//! - [`child`]: the built-in child program the `subprocess` experiment runs.
//! - [`outbound`]: where experiments may connect.
//! - [`tls`]: trusted roots and certificates for https targets.
//! - [`stats`], [`validation`], [`telemetry`]: shared helpers.

pub mod api;
pub mod child;
pub mod client;
pub mod config;
pub mod dependencies;
pub mod error;
pub mod experiments;
pub mod jobs;
pub mod meters;
pub mod outbound;
pub mod startup;
pub mod state;
pub mod stats;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod tls;
pub mod validation;
