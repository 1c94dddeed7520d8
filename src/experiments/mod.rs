//! The experiments: one module per kind, each implementing [`Experiment`], and the single
//! registry that wires every kind to its route, its OpenAPI schema and the catalogue.

pub mod blocking_offload;
pub mod database;
pub mod dedicated_runtime;
pub mod file_io;
pub mod http_fanout;
pub mod redis_pool;
pub mod runtime_echo;
pub mod s3;
pub mod sftp;
pub mod structured_concurrency;
pub mod subprocess;
pub mod task_local;

use std::future::Future;
use std::sync::LazyLock;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::jobs::JobError;
use crate::jobs::context::JobContext;
use crate::jobs::kind::{JobKinds, RunFailure, RunFuture};
use crate::services::{Need, Services};
use crate::validation::{FieldErrors, Validate};

/// One kind of experiment.
pub trait Experiment: Send + Sync + 'static {
    /// The kind's name in URLs and job records, e.g. `http-fanout`.
    const KIND: &'static str;
    /// One line saying what the experiment shows.
    const SUMMARY: &'static str;
    /// The parameters a launch accepts; unknown fields are refused.
    type Params: DeserializeOwned + Serialize + ToSchema + Validate + Send + 'static;
    /// What a successful run reports.
    type Report: Serialize + ToSchema + Send + 'static;

    /// Whether a run cut short by its replica's death may simply run again: true only for kinds
    /// whose work stays inside the job (nothing half-written elsewhere). Such jobs are queued
    /// again, up to [`RESTART_ATTEMPTS`] claims in all; others end `interrupted`.
    const RESTARTABLE: bool = false;

    /// Parameters that make a good first run, shown in the catalogue.
    fn example() -> Self::Params;

    /// Checks parameters against this server's configuration (allowlists, limits) at launch,
    /// beyond what [`Validate`] can see.
    fn admit(_params: &Self::Params, _services: &Services, _errors: &mut FieldErrors) {}

    /// The services the experiment needs. While one is not configured the kind is listed as
    /// unavailable, with the setting that provides it, and a launch is refused with `409`.
    const NEEDS: &'static [Need] = &[];

    /// Whether the experiment can work with the services it needs as they are configured, beyond
    /// their presence (e.g. a client that speaks no TLS); checked once [`Experiment::NEEDS`] are met.
    fn usable(_services: &Services) -> Result<(), String> {
        Ok(())
    }

    /// Runs the experiment. Dropping the future must stop all of its work: spawn into a
    /// `JoinSet`, never detach.
    fn run(ctx: JobContext, params: Self::Params) -> impl Future<Output = Result<Self::Report, ExperimentError>> + Send;
}

/// How many times a replica may claim a job of a restartable kind.
pub const RESTART_ATTEMPTS: u32 = 3;

/// Whether an experiment can run on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Everything it needs is configured.
    Available,
    /// It needs a service that is not configured; the text says which setting provides it.
    Unavailable(String),
}

/// Why an experiment failed, in categories a report or a script can branch on.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A peer could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A peer answered something unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A service the experiment needs is missing.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The experiment refused a target or resource at run time (e.g. a host outside the allowlist).
    #[error("refused: {0}")]
    Refused(String),
    /// Something inside the experiment went wrong.
    #[error("{0}")]
    Internal(String),
    /// A shard of a sharded job did not succeed.
    #[error("a shard did not succeed: {0}")]
    Shard(String),
    /// The run completed but missed thresholds the caller set; the report is kept.
    #[error("thresholds missed: {}", missed.join("; "))]
    ThresholdsMissed {
        /// Each missed threshold, e.g. `p99_ms: 12.3 > 10`.
        missed: Vec<String>,
        /// The full report, stored as the job's result.
        report: Value,
    },
}

impl ExperimentError {
    /// The report to keep although the job failed, if any.
    pub fn report(&self) -> Option<&Value> {
        match self {
            ExperimentError::ThresholdsMissed { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The error as stored on the job.
    pub fn to_job_error(&self) -> JobError {
        let kind = match self {
            ExperimentError::Timeout(_) => "timeout",
            ExperimentError::Connect(_) => "connect",
            ExperimentError::Protocol(_) => "protocol",
            ExperimentError::Unavailable(_) => "unavailable",
            ExperimentError::Refused(_) => "refused",
            ExperimentError::Internal(_) => "internal",
            ExperimentError::Shard(_) => "shard",
            ExperimentError::ThresholdsMissed { .. } => "thresholds",
        };
        JobError { kind: kind.into(), message: self.to_string() }
    }
}

/// A kind as the registry holds it: its metadata and its type-erased entry points.
pub struct ExperimentEntry {
    /// The kind's name.
    pub kind: &'static str,
    /// One line saying what it shows.
    pub summary: &'static str,
    /// How many times a replica may claim one of its jobs (see [`Experiment::RESTARTABLE`]).
    pub max_attempts: u32,
    /// Parameters for a good first run, as JSON.
    pub example: fn() -> Value,
    /// The services it needs.
    pub needs: &'static [Need],
    /// Whether it can run here: its needs met and the services usable.
    pub availability: fn(&Services) -> Availability,
    /// Parses and validates parameters; returns them normalised (defaults filled in).
    pub prepare: fn(Value, &Services) -> Result<Value, FieldErrors>,
    /// Runs with parameters `prepare` accepted; returns the report as JSON.
    pub run: fn(JobContext, Value) -> BoxFuture<'static, Result<Value, ExperimentError>>,
    /// The parameter schema's component name.
    pub params_schema_name: fn() -> String,
    /// The report schema's component name.
    pub report_schema_name: fn() -> String,
    /// The parameter schema, self-contained.
    pub params_schema: fn() -> RefOr<Schema>,
    /// Adds the parameter and report schemas (and what they reference) to an OpenAPI component list.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
}

fn entry<E: Experiment>() -> ExperimentEntry {
    ExperimentEntry {
        kind: E::KIND,
        summary: E::SUMMARY,
        max_attempts: if E::RESTARTABLE { RESTART_ATTEMPTS } else { 1 },
        example: || serde_json::to_value(E::example()).expect("example parameters serialize"),
        needs: E::NEEDS,
        availability: availability::<E>,
        prepare: prepare::<E>,
        // The job's own task runs on the control plane's runtime: its polls are charged to the
        // job's CPU meter.
        run: |ctx, params| {
            let cpu = ctx.cpu().clone();
            cpu.attribute(async move {
                let params: E::Params = serde_json::from_value(params)
                    .map_err(|error| ExperimentError::Internal(format!("stored parameters unreadable: {error}")))?;
                let report = E::run(ctx, params).await?;
                serde_json::to_value(report).map_err(|error| ExperimentError::Internal(format!("report unserializable: {error}")))
            })
            .boxed()
        },
        params_schema_name: || E::Params::name().into_owned(),
        report_schema_name: || E::Report::name().into_owned(),
        params_schema: E::Params::schema,
        schemas: |schemas| {
            schemas.push((E::Params::name().into_owned(), E::Params::schema()));
            E::Params::schemas(schemas);
            schemas.push((E::Report::name().into_owned(), E::Report::schema()));
            E::Report::schemas(schemas);
        },
    }
}

fn availability<E: Experiment>(services: &Services) -> Availability {
    match E::NEEDS.iter().find_map(|need| services.missing(*need)).map_or_else(|| E::usable(services), Err) {
        Ok(()) => Availability::Available,
        Err(reason) => Availability::Unavailable(reason),
    }
}

fn prepare<E: Experiment>(raw: Value, services: &Services) -> Result<Value, FieldErrors> {
    let params: E::Params = serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        FieldErrors::single(field, error.into_inner().to_string())
    })?;
    let mut errors = FieldErrors::default();
    params.validate(&mut errors);
    if errors.0.is_empty() {
        E::admit(&params, services, &mut errors);
    }
    errors.into_result()?;
    serde_json::to_value(params).map_err(|error| FieldErrors::single("body", error.to_string()))
}

static REGISTRY: LazyLock<Vec<ExperimentEntry>> = LazyLock::new(|| {
    vec![
        entry::<http_fanout::HttpFanout>(),
        entry::<structured_concurrency::StructuredConcurrency>(),
        entry::<blocking_offload::BlockingOffload>(),
        entry::<runtime_echo::RuntimeEcho>(),
        entry::<subprocess::Subprocess>(),
        entry::<task_local::TaskLocal>(),
        entry::<database::Database>(),
        entry::<redis_pool::RedisPool>(),
        entry::<file_io::FileIo>(),
        entry::<sftp::Sftp>(),
        entry::<s3::S3>(),
    ]
});

/// Every experiment kind, in catalogue order.
pub fn registry() -> &'static [ExperimentEntry] {
    &REGISTRY
}

/// The entry for `kind`, if there is such a kind.
pub fn find(kind: &str) -> Option<&'static ExperimentEntry> {
    registry().iter().find(|entry| entry.kind == kind)
}

/// The registry as the runner sees it: every kind by name, its failures recorded as job errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl JobKinds for Registry {
    fn start(&self, kind: &str, ctx: JobContext, params: Value) -> Option<RunFuture> {
        let run = (find(kind)?.run)(ctx, params);
        Some(async move { run.await.map_err(|error| RunFailure { report: error.report().cloned(), error: error.to_job_error() }) }.boxed())
    }
}
