//! Parameters of a `database` run: the targets, the workload, the steps, their defaults and bounds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::services::Services;
use crate::validation::{FieldErrors, Validate};

/// The most rows one run may insert.
const MAX_ROWS: u64 = 1_000_000;
/// The most rows in one multi-row statement or COPY: three parameters a row stays far below
/// both servers' 65 535 bind parameters.
const MAX_BATCH_SIZE: u32 = 10_000;
/// The most concurrent statement streams per target.
const MAX_CONCURRENCY: u32 = 64;
/// The longest a single statement may take.
const MAX_STATEMENT_TIMEOUT_MS: u64 = 600_000;

/// A database the experiment works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DbTarget {
    /// The PostgreSQL database of `ASYNCLAB_PG_TARGET_URL`.
    Postgres,
    /// The MySQL or MariaDB database of `ASYNCLAB_MYSQL_TARGET_URL`.
    Mysql,
}

impl DbTarget {
    /// The name used in reports and progress.
    pub fn name(self) -> &'static str {
        match self {
            DbTarget::Postgres => "postgres",
            DbTarget::Mysql => "mysql",
        }
    }

    /// The setting that configures it.
    pub fn setting(self) -> &'static str {
        match self {
            DbTarget::Postgres => "ASYNCLAB_PG_TARGET_URL",
            DbTarget::Mysql => "ASYNCLAB_MYSQL_TARGET_URL",
        }
    }
}

/// How the `insert` step writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsertMode {
    /// One `insert` statement per row.
    PerRow,
    /// One multi-row `insert … values (…), (…)` per batch of `batch_size` rows.
    MultiRow,
    /// One `copy … from stdin` per batch (PostgreSQL only).
    Copy,
}

/// A step of the run; steps run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `create table lab_user_<job>(id, name, created_at)`.
    Init,
    /// Insert `rows` rows.
    Insert,
    /// Read every row back as a stream, never holding them all in memory.
    Stream,
    /// Commit one transaction and roll another back, counting rows before and after.
    Transaction,
    /// `truncate table`.
    Truncate,
}

/// Parameters of a `database` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseParams {
    /// The databases to run on, concurrently (`postgres`, `mysql` or both).
    #[serde(default = "default_targets")]
    pub targets: Vec<DbTarget>,
    /// Rows the `insert` step writes (1 to 1 000 000).
    #[serde(default = "default_rows")]
    pub rows: u64,
    /// Rows per multi-row statement or COPY, and per progress update (1 to 10 000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Statements in flight at once per target (1 to 64); above the pool size, they wait for
    /// connections and the report's `pool_wait` shows it.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// How `insert` writes.
    #[serde(default = "default_insert_mode")]
    pub insert_mode: InsertMode,
    /// The steps, in order, starting with `init` (the table is the job's own).
    #[serde(default = "default_steps")]
    pub steps: Vec<Step>,
    /// The longest one statement may take (1 to 600 000 ms).
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

fn default_targets() -> Vec<DbTarget> {
    vec![DbTarget::Postgres, DbTarget::Mysql]
}
fn default_rows() -> u64 {
    10_000
}
fn default_batch_size() -> u32 {
    500
}
fn default_concurrency() -> u32 {
    4
}
fn default_insert_mode() -> InsertMode {
    InsertMode::MultiRow
}
/// Every step.
pub fn default_steps() -> Vec<Step> {
    vec![Step::Init, Step::Insert, Step::Stream, Step::Transaction, Step::Truncate]
}
fn default_statement_timeout_ms() -> u64 {
    30_000
}

impl Validate for DatabaseParams {
    fn validate(&self, errors: &mut FieldErrors) {
        let unique_targets = self.targets.windows(2).all(|pair| pair[0] != pair[1]);
        errors.check(
            !self.targets.is_empty() && self.targets.len() <= 2 && unique_targets,
            "targets",
            "give postgres, mysql or both, once each",
        );
        errors.range("rows", self.rows, 1, MAX_ROWS);
        errors.range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE);
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        errors.range("statement_timeout_ms", self.statement_timeout_ms, 1, MAX_STATEMENT_TIMEOUT_MS);
        let ordered = self.steps.windows(2).all(|pair| pair[0] < pair[1]);
        errors.check(
            self.steps.first() == Some(&Step::Init) && ordered,
            "steps",
            "start with init, then any of insert, stream, transaction, truncate, once each and in that order",
        );
        errors.check(
            self.insert_mode != InsertMode::Copy || self.targets.iter().all(|target| *target == DbTarget::Postgres),
            "insert_mode",
            "copy is PostgreSQL only: use it with targets [\"postgres\"]",
        );
    }
}

/// Refuses a target this server has no URL for.
pub fn admit(params: &DatabaseParams, services: &Services, errors: &mut FieldErrors) {
    for target in &params.targets {
        let configured = match target {
            DbTarget::Postgres => services.pg_target.is_some(),
            DbTarget::Mysql => services.mysql_target.is_some(),
        };
        errors.check(configured, "targets", format!("{} is not configured on this server: set {}", target.name(), target.setting()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(raw: serde_json::Value) -> Vec<String> {
        let params: DatabaseParams = serde_json::from_value(raw).expect("parameters parse");
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(fields(json!({})).is_empty());
    }

    #[test]
    fn steps_start_with_init_in_order() {
        assert!(fields(json!({"steps": ["init", "stream"]})).is_empty());
        assert_eq!(fields(json!({"steps": ["insert"]})), ["steps"]);
        assert_eq!(fields(json!({"steps": ["init", "stream", "insert"]})), ["steps"]);
        assert_eq!(fields(json!({"steps": []})), ["steps"]);
    }

    #[test]
    fn copy_needs_postgres_alone() {
        assert!(fields(json!({"targets": ["postgres"], "insert_mode": "copy"})).is_empty());
        assert_eq!(fields(json!({"insert_mode": "copy"})), ["insert_mode"]);
    }

    #[test]
    fn bounds_and_targets_name_the_field() {
        assert_eq!(fields(json!({"targets": ["mysql", "mysql"], "rows": 0, "concurrency": 65})), ["targets", "rows", "concurrency"]);
        assert_eq!(fields(json!({"targets": []})), ["targets"]);
    }
}
