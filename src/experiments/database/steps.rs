//! The steps on one target: each times its statements and its pool checkouts and reports rows,
//! elapsed time and latency percentiles.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::error::{DbError, DbErrorKind};
use super::params::{DatabaseParams, InsertMode, Step};
use super::progress::Board;
use super::target::{TargetConnection, TargetPool};
use crate::cpu::CpuMeter;
use crate::stats::{LatencySummary, latency_histogram, millis};

/// The two transactions of the `transaction` step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransactionReport {
    /// Rows before the step.
    pub count_before: u64,
    /// Rows written by the transaction that committed.
    pub committed_rows: u64,
    /// Rows written by the transaction that rolled back.
    pub rolled_back_rows: u64,
    /// Rows after the step: `count_before + committed_rows`.
    pub count_after: u64,
}

/// One step on one target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepReport {
    /// The step.
    #[schema(inline)]
    pub step: Step,
    /// Rows the step wrote or read (for `truncate`, the rows it removed).
    pub rows: u64,
    /// Rows in the table when the step ended, when the step counts them.
    pub count_after: Option<u64>,
    /// How long the step took.
    pub elapsed_ms: f64,
    /// `rows` per second of `elapsed_ms`.
    pub rows_per_s: f64,
    /// Latency of each statement (a whole batch, a whole COPY, a whole stream), checkout excluded.
    pub statements: LatencySummary,
    /// Time to take a connection from the pool before each statement.
    pub pool_wait: LatencySummary,
    /// The transaction step's counts.
    pub transaction: Option<TransactionReport>,
    /// Why the step failed; later steps did not run.
    pub error: Option<DbError>,
}

/// Latency and pool waits of a step's statements, in microseconds.
struct Timings {
    statements: Histogram<u64>,
    pool_wait: Histogram<u64>,
}

impl Timings {
    fn new() -> Self {
        Timings { statements: latency_histogram(), pool_wait: latency_histogram() }
    }

    fn merge(&mut self, other: &Timings) {
        let _ = self.statements.add(&other.statements);
        let _ = self.pool_wait.add(&other.pool_wait);
    }
}

/// What a step runs against: one target's pool, the job's table, the parameters, the progress.
#[derive(Clone)]
pub struct TargetRun {
    /// The pool.
    pub pool: TargetPool,
    /// The job's table.
    pub table: String,
    /// The run's parameters.
    pub params: Arc<DatabaseParams>,
    /// Shared progress of every target.
    pub board: Board,
    /// Which target of the board this is.
    pub target_index: usize,
    /// The job's CPU ledger, charged with the insert workers' polls.
    pub cpu: CpuMeter,
}

/// What a step produced before it was timed: rows, count after, transaction detail.
struct StepOutcome {
    rows: u64,
    count_after: Option<u64>,
    transaction: Option<TransactionReport>,
}

impl TargetRun {
    /// Runs `step`; a failure is returned inside the report.
    pub async fn run(&self, step: Step) -> StepReport {
        self.board.start_step(self.target_index, step).await;
        let started = Instant::now();
        let mut timings = Timings::new();
        let outcome = match step {
            Step::Init => self.init(&mut timings).await,
            Step::Insert => self.insert(&mut timings).await,
            Step::Stream => self.stream(&mut timings).await,
            Step::Transaction => self.transaction(&mut timings).await,
            Step::Truncate => self.truncate(&mut timings).await,
        };
        let elapsed = started.elapsed();
        let (outcome, error) = match outcome {
            Ok(outcome) => (outcome, None),
            Err(error) => (StepOutcome { rows: 0, count_after: None, transaction: None }, Some(error)),
        };
        StepReport {
            step,
            rows: outcome.rows,
            count_after: outcome.count_after,
            elapsed_ms: millis(elapsed),
            rows_per_s: outcome.rows as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            statements: LatencySummary::from_micros(&timings.statements),
            pool_wait: LatencySummary::from_micros(&timings.pool_wait),
            transaction: outcome.transaction,
            error,
        }
    }

    /// Drops the job's table, whatever happened before.
    pub async fn drop_table(&self) -> Result<(), DbError> {
        let table = self.table.clone();
        self.statement(&mut Timings::new(), |c| Box::pin(async move { c.execute(&format!("drop table if exists {table}")).await }))
            .await
            .map(|_| ())
    }

    /// Takes a connection (timing the wait) and runs one statement on it (timed, bounded); a
    /// connection error names the server.
    async fn statement<T>(
        &self,
        timings: &mut Timings,
        run: impl for<'c> FnOnce(&'c mut TargetConnection) -> futures_util::future::BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, DbError> {
        let waiting = Instant::now();
        let mut connection = self.pool.acquire().await.map_err(|error| error.at(&self.pool.server()))?;
        let _ = timings.pool_wait.record(micros(waiting.elapsed()));
        let started = Instant::now();
        let timeout_ms = self.params.statement_timeout_ms;
        let result = bounded(timeout_ms, run(&mut connection)).await.map_err(|error| error.at(&self.pool.server()))?;
        let _ = timings.statements.record(micros(started.elapsed()));
        Ok(result)
    }

    async fn init(&self, timings: &mut Timings) -> Result<StepOutcome, DbError> {
        let table = self.table.clone();
        self.statement(timings, |c| Box::pin(async move { c.create_table(&table).await })).await?;
        Ok(StepOutcome { rows: 0, count_after: Some(0), transaction: None })
    }

    async fn insert(&self, timings: &mut Timings) -> Result<StepOutcome, DbError> {
        let next_batch = Arc::new(AtomicU64::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..self.params.concurrency {
            let run = self.clone();
            let next_batch = next_batch.clone();
            let cpu = run.cpu.clone();
            workers.spawn(cpu.attribute(async move { run.insert_worker(&next_batch).await }));
        }
        let mut rows = 0;
        while let Some(joined) = workers.join_next().await {
            let (worker_rows, worker_timings) =
                joined.map_err(|error| DbError { kind: DbErrorKind::Database, message: error.to_string() })??;
            rows += worker_rows;
            timings.merge(&worker_timings);
        }
        let count = self.count().await?;
        Ok(StepOutcome { rows, count_after: Some(count), transaction: None })
    }

    /// Takes batches until none is left and writes them in the configured mode.
    async fn insert_worker(&self, next_batch: &AtomicU64) -> Result<(u64, Timings), DbError> {
        let mut timings = Timings::new();
        let mut rows = 0;
        let batch_size = u64::from(self.params.batch_size);
        loop {
            let first = next_batch.fetch_add(1, Ordering::Relaxed) * batch_size;
            if first >= self.params.rows {
                return Ok((rows, timings));
            }
            let ids = (first as i64 + 1)..=((first + batch_size).min(self.params.rows) as i64);
            let now = chrono::Utc::now().naive_utc();
            let table = self.table.clone();
            let written = match self.params.insert_mode {
                InsertMode::PerRow => {
                    let mut written = 0;
                    for id in ids.clone() {
                        let table = table.clone();
                        written += self.statement(&mut timings, |c| Box::pin(async move { c.insert_row(&table, id, now).await })).await?;
                    }
                    written
                }
                InsertMode::MultiRow => {
                    let ids = ids.clone();
                    self.statement(&mut timings, |c| Box::pin(async move { c.insert_rows(&table, ids, now).await })).await?
                }
                InsertMode::Copy => {
                    let ids = ids.clone();
                    self.statement(&mut timings, |c| Box::pin(async move { c.copy_rows(&table, ids, now).await })).await?
                }
            };
            rows += written;
            self.board.add_rows(self.target_index, written).await;
        }
    }

    async fn stream(&self, timings: &mut Timings) -> Result<StepOutcome, DbError> {
        let table = self.table.clone();
        let rows = self.statement(timings, |c| Box::pin(async move { c.stream_rows(&table).await })).await?;
        self.board.add_rows(self.target_index, rows).await;
        Ok(StepOutcome { rows, count_after: None, transaction: None })
    }

    async fn transaction(&self, timings: &mut Timings) -> Result<StepOutcome, DbError> {
        let count_before = self.count().await?;
        let now = chrono::Utc::now().naive_utc();
        for (offset, commit) in [(1, true), (2, false)] {
            let table = self.table.clone();
            let id = self.params.rows as i64 + offset;
            self.statement(timings, |c| Box::pin(async move { c.insert_in_transaction(&table, id, now, commit).await })).await?;
        }
        let count_after = self.count().await?;
        let transaction = TransactionReport { count_before, committed_rows: 1, rolled_back_rows: 1, count_after };
        Ok(StepOutcome { rows: 2, count_after: Some(count_after), transaction: Some(transaction) })
    }

    async fn truncate(&self, timings: &mut Timings) -> Result<StepOutcome, DbError> {
        let removed = self.count().await?;
        let table = self.table.clone();
        self.statement(timings, |c| Box::pin(async move { c.execute(&format!("truncate table {table}")).await })).await?;
        let count = self.count().await?;
        Ok(StepOutcome { rows: removed, count_after: Some(count), transaction: None })
    }

    /// Rows in the table (not timed in the step's statements).
    async fn count(&self) -> Result<u64, DbError> {
        let table = self.table.clone();
        self.statement(&mut Timings::new(), |c| Box::pin(async move { c.count(&table).await })).await
    }
}

/// Runs `statement` for at most `timeout_ms`.
async fn bounded<T>(timeout_ms: u64, statement: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, DbError> {
    match tokio::time::timeout(Duration::from_millis(timeout_ms), statement).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DbError::statement_timeout(timeout_ms)),
    }
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros().max(1) as u64
}
