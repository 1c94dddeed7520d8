//! `database`: the same workload on PostgreSQL and MySQL at once, through the shared target pools:
//! create a table, insert rows (per row, multi-row batches, or PostgreSQL's COPY), stream them
//! back, commit one transaction and roll one back, truncate. Each target reports rows, rows/s,
//! statement latency percentiles and the time its statements waited for a pooled connection,
//! and the time window it ran in, so the overlap of the two targets shows.
//!
//! Each job works in a table of its own, `lab_user_<job id>`, in the target database
//! (`ASYNCLAB_PG_TARGET_URL`, `ASYNCLAB_MYSQL_TARGET_URL`), never in the job store's tables;
//! concurrent jobs therefore never collide. The table is dropped when the run ends, failed steps
//! included; a job cancelled or timed out is dropped at once and may leave it behind.
//!
//! A failing step (constraint violation, lost connection, timeout) becomes an entry in its
//! target's report and ends that target's run; the job fails only when every target failed.

mod error;
mod params;
mod progress;
mod steps;
mod target;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

pub use error::{DbError, DbErrorKind};
pub use params::{DatabaseParams, DbTarget, InsertMode, Step};
use progress::Board;
use steps::TargetRun;
pub use steps::{StepReport, TransactionReport};
use target::TargetPool;

use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::services::{Need, Services};
use crate::stats::millis;
use crate::validation::FieldErrors;

/// The experiment.
pub struct Database;

/// One target's run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetReport {
    /// The target.
    #[schema(inline)]
    pub target: DbTarget,
    /// The job's table in it.
    pub table: String,
    /// Connections its pool may open.
    pub pool_size: u32,
    /// When its first step began, in ms from the job's start.
    pub started_at_ms: f64,
    /// When its last step (and the table's drop) ended, in ms from the job's start.
    pub finished_at_ms: f64,
    /// Each step that ran, in order.
    pub steps: Vec<StepReport>,
    /// The first failure, also shown on its step; `None` when every step succeeded.
    pub error: Option<DbError>,
    /// Whether the table was dropped at the end.
    pub table_dropped: bool,
}

/// The report of a `database` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseReport {
    /// How the rows were inserted.
    #[schema(inline)]
    pub insert_mode: InsertMode,
    /// Rows the insert step wrote per target.
    pub rows: u64,
    /// Each target, in the order given.
    pub targets: Vec<TargetReport>,
    /// How long the targets' windows overlapped (0 with a single target).
    pub overlap_ms: f64,
    /// The CPU the run used on this side: the polls of the job and its insert workers on the
    /// control plane's shared runtime, which run the drivers' encoding, decoding and socket
    /// calls (sqlx does its I/O in the task that awaits the query). The database servers' CPU
    /// is not included.
    pub cpu: CpuUsage,
}

impl Experiment for Database {
    const KIND: &'static str = "database";
    const SUMMARY: &'static str =
        "The same create/insert/stream/transaction/truncate workload on PostgreSQL and MySQL at once: rows/s, latency, pool waits";
    type Params = DatabaseParams;
    type Report = DatabaseReport;

    fn example() -> DatabaseParams {
        DatabaseParams {
            targets: vec![DbTarget::Postgres, DbTarget::Mysql],
            rows: 10_000,
            batch_size: 500,
            concurrency: 4,
            insert_mode: InsertMode::MultiRow,
            steps: params::default_steps(),
            statement_timeout_ms: 30_000,
        }
    }

    fn admit(params: &DatabaseParams, services: &Services, errors: &mut FieldErrors) {
        params::admit(params, services, errors);
    }

    const NEEDS: &'static [Need] = &[Need::TargetDatabase];

    async fn run(ctx: JobContext, params: DatabaseParams) -> Result<DatabaseReport, ExperimentError> {
        let job_started = Instant::now();
        let table = format!("lab_user_{}", ctx.job_id().to_string().replace('-', ""));
        let params = Arc::new(params);
        let board = Board::new(ctx.clone(), &params.targets, params.rows);
        let mut runs = Vec::new();
        for (index, target) in params.targets.iter().enumerate() {
            let pool = TargetPool::of(*target, ctx.services())
                .ok_or_else(|| ExperimentError::Unavailable(format!("{} is not configured: set {}", target.name(), target.setting())))?;
            runs.push((
                *target,
                TargetRun {
                    pool,
                    table: table.clone(),
                    params: params.clone(),
                    board: board.clone(),
                    target_index: index,
                    cpu: ctx.cpu().clone(),
                },
            ));
        }
        let mut leftover = LeftoverTables { ctx: ctx.clone(), runs: runs.iter().map(|(_, run)| run.clone()).collect() };
        let mut runs = runs.into_iter();
        let first = runs.next().map(|(target, run)| run_target(target, run, job_started));
        let second = runs.next().map(|(target, run)| run_target(target, run, job_started));
        let (first, second) = tokio::join!(optional(first), optional(second));
        // Each target dropped its table itself.
        leftover.runs.clear();
        let targets: Vec<TargetReport> = first.into_iter().chain(second).collect();
        if let Some(error) = all_failed(&targets) {
            return Err(error);
        }
        let overlap_ms = match targets.as_slice() {
            [a, b] => (a.finished_at_ms.min(b.finished_at_ms) - a.started_at_ms.max(b.started_at_ms)).max(0.0),
            _ => 0.0,
        };
        let cpu = ctx.cpu().usage(CpuScope::SharedRuntime);
        Ok(DatabaseReport { insert_mode: params.insert_mode, rows: params.rows, targets, overlap_ms, cpu })
    }
}

/// How long dropping a stopped run's tables may take.
const LEFTOVER_CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Drops the job's tables when the run is dropped before its targets could (a cancel or the
/// job's time limit stops it mid-statement): the clean-up then runs as a tracked task.
struct LeftoverTables {
    ctx: JobContext,
    /// The targets whose table may still exist; emptied once they dropped it themselves.
    runs: Vec<TargetRun>,
}

impl Drop for LeftoverTables {
    fn drop(&mut self) {
        if self.runs.is_empty() {
            return;
        }
        let runs = std::mem::take(&mut self.runs);
        self.ctx.spawn_cleanup(LEFTOVER_CLEANUP_TIMEOUT, async move {
            for run in runs {
                if let Err(error) = run.drop_table().await {
                    tracing::warn!(table = %run.table, error = %error.message, "cannot drop a stopped run's table");
                }
            }
        });
    }
}

async fn optional<T>(future: Option<impl Future<Output = T>>) -> Option<T> {
    match future {
        Some(future) => Some(future.await),
        None => None,
    }
}

/// Runs the steps on one target until one fails, then drops the table.
async fn run_target(target: DbTarget, run: TargetRun, job_started: Instant) -> TargetReport {
    let started_at_ms = millis(job_started.elapsed());
    let mut steps = Vec::new();
    let mut error = None;
    let mut created = false;
    for step in run.params.steps.iter().copied() {
        let report = run.run(step).await;
        created |= step == Step::Init && report.error.is_none();
        error = report.error.clone();
        steps.push(report);
        if error.is_some() {
            break;
        }
    }
    let table_dropped = if created {
        match run.drop_table().await {
            Ok(()) => true,
            Err(drop_error) => {
                error.get_or_insert(drop_error);
                false
            }
        }
    } else {
        false
    };
    run.board.finish(run.target_index).await;
    TargetReport {
        target,
        table: run.table.clone(),
        pool_size: run.pool.size(),
        started_at_ms,
        finished_at_ms: millis(job_started.elapsed()),
        steps,
        error,
        table_dropped,
    }
}

/// The job's error when no target completed its steps.
fn all_failed(targets: &[TargetReport]) -> Option<ExperimentError> {
    let errors: Vec<(DbTarget, &DbError)> =
        targets.iter().map(|report| report.error.as_ref().map(|error| (report.target, error))).collect::<Option<_>>()?;
    let (_, first) = errors.first()?;
    let message = errors.iter().map(|(target, error)| format!("{}: {}", target.name(), error.message)).collect::<Vec<_>>().join("; ");
    Some(match first.kind {
        DbErrorKind::Connection => ExperimentError::Connect(message),
        DbErrorKind::Timeout => ExperimentError::Timeout(message),
        DbErrorKind::Constraint | DbErrorKind::Database => ExperimentError::Protocol(message),
    })
}
