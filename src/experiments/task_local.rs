//! `task-local`: N tasks each set a `tokio::task_local!` request id, await, and read it back —
//! isolation per task. Then what a task spawned from inside sees: a task-local is not inherited
//! by `spawn` (reading it is an `AccessError`) until the spawned future is wrapped in
//! `REQUEST_ID.scope(..)`; likewise a `tracing` span current in the parent is not current in a
//! spawned task until it is `.instrument(span)`ed.
//!
//! The spans live in a private `tracing` registry passed to every task explicitly
//! (`with_subscriber`), so the results do not depend on the server's log filter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};
use tracing::instrument::WithSubscriber;
use tracing::span::Id;
use tracing::{Dispatch, Instrument, Span};
use utoipa::ToSchema;

use super::{Experiment, ExperimentError};
use crate::cpu::{CpuMeter, CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::stats::millis;
use crate::validation::{FieldErrors, Validate};

/// The most tasks one run may start.
const MAX_TASKS: u32 = 1000;
/// The longest delay a task awaits.
const MAX_DELAY_MS: u64 = 100;

tokio::task_local! {
    /// The request a task works for.
    static REQUEST_ID: String;
}

/// The experiment.
pub struct TaskLocal;

/// Parameters of a `task-local` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskLocalParams {
    /// Tasks started together, each with its own request id (1 to 1000).
    #[serde(default = "default_tasks")]
    pub tasks: u32,
    /// The longest delay a task awaits before reading its id back (0 to 100); delays are
    /// staggered so tasks resume in another order than they started.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
}

fn default_tasks() -> u32 {
    8
}

fn default_max_delay_ms() -> u64 {
    5
}

impl Validate for TaskLocalParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.range("tasks", self.tasks, 1, MAX_TASKS);
        errors.range("max_delay_ms", self.max_delay_ms, 0, MAX_DELAY_MS);
    }
}

/// What one task saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskRow {
    /// The task's number (1-based, in start order).
    pub task: u32,
    /// The request id it set.
    pub request_id: String,
    /// How long it awaited.
    pub delay_ms: u64,
    /// Its position among the tasks as they resumed after the await.
    pub resume_order: u32,
    /// The id it read back after the await.
    pub read_back: Option<String>,
    /// Whether it read its own id back.
    pub isolated: bool,
    /// The id seen by a future it awaited itself (same task).
    pub same_task_future_sees: Option<String>,
    /// The id seen by a task it spawned plainly (none: not inherited).
    pub spawned_sees: Option<String>,
    /// The error reading it there.
    pub spawned_error: Option<String>,
    /// The id seen by a task it spawned inside `REQUEST_ID.scope(id, ..)`.
    pub propagated_sees: Option<String>,
    /// Whether its own span was current while it ran.
    pub span_current: bool,
    /// Whether its span was current in the task it spawned plainly.
    pub span_in_spawned: bool,
    /// Whether its span was current in the task it spawned with `.instrument(span)`.
    pub span_in_instrumented: bool,
}

/// Tasks per finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskLocalCounts {
    /// Tasks that read their own id back after awaiting.
    pub isolated_ok: u32,
    /// Tasks whose own awaited futures saw their id.
    pub same_task_ok: u32,
    /// Plainly spawned tasks that saw the parent's id (inheritance).
    pub spawned_inherited: u32,
    /// Plainly spawned tasks whose read failed with `AccessError`.
    pub spawned_access_errors: u32,
    /// Tasks spawned inside `scope` that saw the parent's id.
    pub propagated_ok: u32,
    /// Tasks whose own span was current.
    pub span_current_ok: u32,
    /// Plainly spawned tasks in which the parent's span was current.
    pub span_inherited: u32,
    /// Tasks spawned with `.instrument(span)` in which the parent's span was current.
    pub span_propagated_ok: u32,
}

/// The report of a `task-local` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskLocalReport {
    /// Tasks run.
    pub tasks: u32,
    /// Tasks per finding.
    #[schema(inline)]
    pub counts: TaskLocalCounts,
    /// Whether the tasks resumed in another order than they started (their awaits interleaved).
    pub interleaved: bool,
    /// The error a plainly spawned task got reading the task-local.
    pub access_error: Option<String>,
    /// Every task, in start order.
    #[schema(inline)]
    pub table: Vec<TaskRow>,
    /// Time until every task had finished.
    pub elapsed_ms: f64,
    /// The CPU the run used: the polls of the job and of its request tasks, all on the control
    /// plane's shared runtime (the tiny child tasks each spawns are not counted).
    pub cpu: CpuUsage,
}

/// A task's progress snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLocalProgress {
    /// Tasks finished.
    pub completed: u32,
    /// Tasks in all.
    pub total: u32,
}

impl Experiment for TaskLocal {
    const KIND: &'static str = "task-local";
    const SUMMARY: &'static str =
        "task_local! isolation per task, what spawn does not inherit (task-locals, tracing spans) and how scope/instrument propagate them";
    const RESTARTABLE: bool = true;
    type Params = TaskLocalParams;
    type Report = TaskLocalReport;

    fn example() -> Self::Params {
        TaskLocalParams { tasks: default_tasks(), max_delay_ms: default_max_delay_ms() }
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let progress = |completed| ctx.progress(TaskLocalProgress { completed, total: params.tasks });
        Ok(run_tasks(&params, progress, ctx.cpu()).await)
    }
}

/// What a spawned task saw.
struct ChildView {
    request_id: Result<String, String>,
    span: Option<Id>,
}

/// How a child task was spawned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spawned {
    Plain,
    Propagated,
}

/// Runs the tasks, calling `progress` with the number finished after each; their polls are
/// charged to `cpu`.
pub async fn run_tasks<F: Future<Output = ()>>(params: &TaskLocalParams, progress: impl Fn(u32) -> F, cpu: &CpuMeter) -> TaskLocalReport {
    let started = Instant::now();
    let dispatch = Dispatch::new(tracing_subscriber::registry());
    let resumed = Arc::new(AtomicU32::new(0));
    let mut scope = JoinSet::new();
    for task in 1..=params.tasks {
        let request_id = format!("req-{task:04}");
        let delay_ms = params.max_delay_ms - u64::from(task - 1) % (params.max_delay_ms + 1);
        let span = tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("request", request_id = %request_id));
        let body = request_task(task, request_id.clone(), delay_ms, span.id(), resumed.clone(), dispatch.clone());
        scope.spawn(cpu.attribute(REQUEST_ID.scope(request_id, body).instrument(span).with_subscriber(dispatch.clone())));
    }
    let mut table = Vec::with_capacity(params.tasks as usize);
    while let Some(joined) = scope.join_next().await {
        if let Ok(row) = joined {
            table.push(row);
        }
        progress(table.len() as u32).await;
    }
    table.sort_by_key(|row| row.task);
    let counts = count(&table);
    let interleaved = table.windows(2).any(|pair| pair[0].resume_order > pair[1].resume_order);
    let access_error = table.iter().find_map(|row| row.spawned_error.clone());
    TaskLocalReport {
        tasks: params.tasks,
        counts,
        interleaved,
        access_error,
        table,
        elapsed_ms: millis(started.elapsed()),
        cpu: cpu.usage(CpuScope::SharedRuntime),
    }
}

/// One task's body, run inside its request id's scope and its span.
async fn request_task(
    task: u32,
    request_id: String,
    delay_ms: u64,
    own_span: Option<Id>,
    resumed: Arc<AtomicU32>,
    dispatch: Dispatch,
) -> TaskRow {
    tokio::task::yield_now().await;
    sleep(Duration::from_millis(delay_ms)).await;
    let resume_order = resumed.fetch_add(1, Ordering::SeqCst) + 1;
    let read_back = REQUEST_ID.try_with(Clone::clone).ok();
    let (same_task_future_sees, _) = tokio::join!(
        async {
            tokio::task::yield_now().await;
            REQUEST_ID.try_with(Clone::clone).ok()
        },
        tokio::task::yield_now()
    );
    let span_current = own_span.is_some() && Span::current().id() == own_span;

    let mut children = JoinSet::new();
    children.spawn(async { (Spawned::Plain, observe().await) }.with_subscriber(dispatch.clone()));
    let propagated = REQUEST_ID.scope(request_id.clone(), async { (Spawned::Propagated, observe().await) });
    children.spawn(propagated.instrument(Span::current()).with_subscriber(dispatch));
    let (mut plain, mut instrumented) = (None, None);
    while let Some(Ok((spawned, view))) = children.join_next().await {
        match spawned {
            Spawned::Plain => plain = Some(view),
            Spawned::Propagated => instrumented = Some(view),
        }
    }
    let sees_own_span = |view: &Option<ChildView>| own_span.is_some() && view.as_ref().is_some_and(|view| view.span == own_span);
    TaskRow {
        task,
        isolated: read_back.as_deref() == Some(request_id.as_str()),
        span_in_spawned: sees_own_span(&plain),
        span_in_instrumented: sees_own_span(&instrumented),
        spawned_sees: plain.as_ref().and_then(|view| view.request_id.clone().ok()),
        spawned_error: plain.as_ref().and_then(|view| view.request_id.clone().err()),
        propagated_sees: instrumented.as_ref().and_then(|view| view.request_id.clone().ok()),
        request_id,
        delay_ms,
        resume_order,
        read_back,
        same_task_future_sees,
        span_current,
    }
}

/// What a spawned task sees of the request id and the current span.
async fn observe() -> ChildView {
    tokio::task::yield_now().await;
    ChildView { request_id: REQUEST_ID.try_with(Clone::clone).map_err(|error| error.to_string()), span: Span::current().id() }
}

fn count(table: &[TaskRow]) -> TaskLocalCounts {
    let mut counts = TaskLocalCounts::default();
    for row in table {
        let own = Some(row.request_id.as_str());
        counts.isolated_ok += u32::from(row.isolated);
        counts.same_task_ok += u32::from(row.same_task_future_sees.as_deref() == own);
        counts.spawned_inherited += u32::from(row.spawned_sees.is_some());
        counts.spawned_access_errors += u32::from(row.spawned_error.is_some());
        counts.propagated_ok += u32::from(row.propagated_sees.as_deref() == own);
        counts.span_current_ok += u32::from(row.span_current);
        counts.span_inherited += u32::from(row.span_in_spawned);
        counts.span_propagated_ok += u32::from(row.span_in_instrumented);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(tasks: u32, max_delay_ms: u64) -> TaskLocalReport {
        run_tasks(&TaskLocalParams { tasks, max_delay_ms }, |_| async {}, &CpuMeter::new()).await
    }

    #[tokio::test(start_paused = true)]
    async fn each_task_reads_its_own_id_and_spawn_inherits_nothing_until_propagated() {
        let report = run(50, 5).await;
        let all = 50;
        assert_eq!(
            report.counts,
            TaskLocalCounts {
                isolated_ok: all,
                same_task_ok: all,
                spawned_inherited: 0,
                spawned_access_errors: all,
                propagated_ok: all,
                span_current_ok: all,
                span_inherited: 0,
                span_propagated_ok: all,
            }
        );
        assert!(report.interleaved);
        assert_eq!(report.access_error.as_deref(), Some("task-local value not set"));
        let first = &report.table[0];
        assert_eq!((first.task, first.request_id.as_str(), first.delay_ms), (1, "req-0001", 5));
        let undelayed: Vec<&TaskRow> = report.table.iter().filter(|row| row.delay_ms == 0).collect();
        assert_eq!(undelayed.len(), 8, "tasks 6, 12, … 48");
        assert!(undelayed.iter().all(|row| row.resume_order <= 8), "tasks without delay resume first");
        assert_eq!(report.elapsed_ms.round(), 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_task_without_delay_is_not_interleaved() {
        let report = run(1, 0).await;
        assert!(!report.interleaved);
        assert_eq!(report.counts.isolated_ok, 1);
        assert_eq!(report.table[0].spawned_sees, None);
        assert_eq!(report.table[0].propagated_sees.as_deref(), Some("req-0001"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn findings_hold_on_a_multi_thread_runtime() {
        let report = run(200, 2).await;
        assert_eq!(report.counts.isolated_ok, 200);
        assert_eq!((report.counts.spawned_inherited, report.counts.span_inherited), (0, 0));
        assert_eq!((report.counts.propagated_ok, report.counts.span_propagated_ok), (200, 200));
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut errors = FieldErrors::default();
        TaskLocalParams { tasks: 0, max_delay_ms: MAX_DELAY_MS + 1 }.validate(&mut errors);
        let fields: Vec<_> = errors.0.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["tasks", "max_delay_ms"]);
    }
}
