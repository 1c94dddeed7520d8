//! asynclab: the classic async-I/O experiments as an HTTP service.
//!
//! A `POST /experiments/{kind}` validates parameters and records a queued job; the runner
//! claims it, runs the experiment as a tracked task and streams its events (stored first, then
//! broadcast) to SSE clients; the result lands in the job store (PostgreSQL, or an embedded
//! SQLite file when no `DATABASE_URL` is set).
//!
//! # Layers
//!
//! Each line is a layer; a module imports only from the lines below its own (modules on one line
//! do not import each other). The test `layers` in `tests/api/layers.rs` reads this map and
//! fails on an import that points up or sideways, or on a module missing from the map.
//!
//! ```text
//! startup, cli    the top: config -> store -> services -> event bus -> registry -> runner -> router
//! api             HTTP: routes, state, SSE, dashboard, OpenAPI; maps store errors to problem+json
//! experiments     the kinds, each one `Experiment` impl plus a registry line; the runner's `Registry`
//! jobs            the engine: runner, event bus, job context, start-up repair, retention; runs any `JobKinds`
//! services        what experiments use: outbound policy, target databases, Redis, SFTP, S3, programs
//! targets         the built-in load target: HTTP, echo, in-process SFTP and S3 servers
//! meters          the Prometheus measurements
//! store           persistence of jobs and events, and the job records (ids, statuses, events)
//! error           problem+json errors and the extractors that produce them
//! config, client, child, outbound, tls, stats, validation, telemetry, compare, cpu    leaves
//! ```
//!
//! # Modules
//! - [`startup`]: builds the application and runs it until shutdown.
//! - [`cli`]: the command line and its subcommands.
//! - [`api`]: HTTP routes, one module per resource, the handlers' shared state, the OpenAPI
//!   document.
//! - [`experiments`]: the `Experiment` trait, the registry, one module per kind.
//! - [`jobs`]: the runner, the job context, the event bus, start-up repair, retention, the `JobKinds` it
//!   runs.
//! - [`services`]: the services experiments use, built once, checked by `/readyz`, closed at shutdown.
//! - [`targets`]: the built-in load target.
//! - [`meters`]: the Prometheus measurements `GET /metrics` renders.
//! - [`store`]: the `JobStore` trait, its PostgreSQL and SQLite implementations, the job records.
//! - [`error`]: problem+json errors and the extractors that produce them.
//! - [`config`]: every setting of the control plane (flags with environment fallbacks).
//! - [`client`]: the `asynclab run` client CI scripts use.
//! - [`child`]: the built-in child program the `subprocess` experiment runs.
//! - [`outbound`]: where experiments may connect.
//! - [`tls`]: trusted roots and certificates for https targets.
//! - [`compare`]: comparing two runs' reports, metric by metric, and the regression gate.
//! - [`cpu`]: the CPU a job's work used, from the kernel's accounting, for every report.
//! - [`stats`], [`validation`], [`telemetry`]: shared helpers.

pub mod api;
pub mod child;
pub mod cli;
pub mod client;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod error;
pub mod experiments;
pub mod jobs;
pub mod meters;
pub mod outbound;
pub mod services;
pub mod startup;
pub mod stats;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod tls;
pub mod validation;
