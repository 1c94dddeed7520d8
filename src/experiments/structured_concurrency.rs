//! `structured-concurrency`: a `JoinSet` scope (asyncio's TaskGroup) against `join_all`
//! semantics (gather) and settle-all (gather with `return_exceptions`): who finished, who was
//! cancelled, and which errors reached the caller when.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};
use utoipa::ToSchema;

use super::{Experiment, ExperimentError};
use crate::cpu::{CpuMeter, CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::stats::millis;
use crate::validation::{FieldErrors, Validate};

/// The most tasks one run may start.
const MAX_TASKS: usize = 1000;
/// The longest a task may sleep.
const MAX_DELAY_MS: u64 = 600_000;
/// The longest task name.
const MAX_NAME_CHARS: usize = 64;

/// The experiment.
pub struct StructuredConcurrency;

/// How the tasks are awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeMode {
    /// A `JoinSet` scope, like asyncio's TaskGroup: the first failure cancels the siblings and
    /// every error that happened is raised together once all tasks have settled.
    JoinSet,
    /// Like `asyncio.gather`: the first error reaches the caller at once, while the siblings keep
    /// running to completion unobserved.
    JoinAll,
    /// Like `gather(return_exceptions=True)`: the caller waits for all and gets errors as values.
    Settled,
}

/// One task to run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// A unique name shown in the report.
    pub name: String,
    /// How long the task sleeps before it finishes.
    pub delay_ms: u64,
    /// Whether the task fails instead of succeeding when its delay is over.
    #[serde(default)]
    pub fail: bool,
}

/// Parameters of a `structured-concurrency` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StructuredConcurrencyParams {
    /// The tasks, started together (1 to 1000, unique names).
    #[schema(inline)]
    pub tasks: Vec<TaskSpec>,
    /// How they are awaited.
    #[schema(inline)]
    pub mode: ScopeMode,
}

/// How one task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// It finished successfully.
    Ok,
    /// It failed.
    Error,
    /// It was cancelled by its scope before it finished.
    Cancelled,
}

/// One task's fate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskReport {
    /// The task's name.
    pub name: String,
    /// How it ended.
    #[schema(inline)]
    pub outcome: TaskOutcome,
    /// Its position among the tasks as they settled (1 is first).
    pub finish_order: u32,
    /// Time from the scope's start until it settled.
    pub elapsed_ms: f64,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// An error that reached the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RaisedError {
    /// The task that failed.
    pub task: String,
    /// Its error.
    pub message: String,
}

/// What the awaiting code saw.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallerView {
    /// Whether the await raised (returned an error) rather than returning values.
    pub raised: bool,
    /// The errors raised, in the order they happened (all of them for a `join_set` scope, the
    /// first for `join_all`, none for `settled`).
    pub errors: Vec<RaisedError>,
    /// When the await returned, from the scope's start.
    pub returned_after_ms: f64,
}

/// The report of a `structured-concurrency` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StructuredConcurrencyReport {
    /// The mode that ran.
    #[schema(inline)]
    pub mode: ScopeMode,
    /// What the caller saw.
    #[schema(inline)]
    pub caller: CallerView,
    /// Every task, in the order given.
    #[schema(inline)]
    pub tasks: Vec<TaskReport>,
    /// Tasks per outcome.
    pub counts: HashMap<String, u32>,
    /// Time until every task had settled (siblings may outlive the caller's await).
    pub elapsed_ms: f64,
    /// The CPU the run used: the polls of the job and of its tasks, all on the control plane's
    /// shared runtime (`threads` counts the runtime's threads that polled them).
    pub cpu: CpuUsage,
}

impl Validate for StructuredConcurrencyParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.check(
            (1..=MAX_TASKS).contains(&self.tasks.len()),
            "tasks",
            format!("must hold between 1 and {MAX_TASKS} tasks, got {}", self.tasks.len()),
        );
        let mut names = HashSet::new();
        for (index, task) in self.tasks.iter().enumerate() {
            let name_chars = task.name.chars().count();
            errors.check(
                (1..=MAX_NAME_CHARS).contains(&name_chars),
                format!("tasks[{index}].name"),
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            );
            errors.check(names.insert(&task.name), format!("tasks[{index}].name"), format!("duplicate name {:?}", task.name));
            errors.range(&format!("tasks[{index}].delay_ms"), task.delay_ms, 0, MAX_DELAY_MS);
        }
    }
}

/// A task's progress, published as it happens.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// The task's name.
    pub task: String,
    /// `started`, `ok`, `error` or `cancelled`.
    pub state: &'static str,
    /// Tasks settled so far.
    pub settled: usize,
    /// Tasks in the scope.
    pub total: usize,
}

impl Experiment for StructuredConcurrency {
    const KIND: &'static str = "structured-concurrency";
    const SUMMARY: &'static str = "JoinSet scope (TaskGroup) vs join_all (gather) vs settled (return_exceptions): who finished, who was cancelled, which errors surfaced";
    const RESTARTABLE: bool = true;
    type Params = StructuredConcurrencyParams;
    type Report = StructuredConcurrencyReport;

    fn example() -> Self::Params {
        let task = |name: &str, delay_ms, fail| TaskSpec { name: name.into(), delay_ms, fail };
        StructuredConcurrencyParams {
            tasks: vec![task("fast", 100, false), task("broken", 200, true), task("slow", 400, false)],
            mode: ScopeMode::JoinSet,
        }
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        // Room for every transition (a start and a settle per task), so sending never waits.
        let (sender, mut transitions) = mpsc::channel(2 * params.tasks.len() + 1);
        let scope = run_scope(&params.tasks, params.mode, sender, ctx.cpu());
        let publish = async {
            while let Some(transition) = transitions.recv().await {
                ctx.milestone(&transition).await;
            }
        };
        let (report, ()) = tokio::join!(scope, publish);
        Ok(report)
    }
}

/// Runs the tasks under `mode`, sending each transition as it happens; their polls are charged
/// to `cpu`.
pub async fn run_scope(
    tasks: &[TaskSpec],
    mode: ScopeMode,
    transitions: mpsc::Sender<Transition>,
    cpu: &CpuMeter,
) -> StructuredConcurrencyReport {
    let total = tasks.len();
    let started = Instant::now();
    let mut scope = JoinSet::new();
    let mut index_of = HashMap::new();
    for (index, task) in tasks.iter().enumerate() {
        let (name, delay_ms, fail) = (task.name.clone(), task.delay_ms, task.fail);
        let handle = scope.spawn(cpu.attribute(async move {
            sleep(Duration::from_millis(delay_ms)).await;
            if fail { Err(format!("{name} failed after {delay_ms} ms")) } else { Ok(()) }
        }));
        index_of.insert(handle.id(), index);
        let _ = transitions.try_send(Transition { task: task.name.clone(), state: "started", settled: 0, total });
    }

    let mut settled: Vec<Option<TaskReport>> = vec![None; total];
    let mut raised = Vec::new();
    let mut returned_after = None;
    let mut finish_order = 0;
    while let Some(joined) = scope.join_next_with_id().await {
        let (id, outcome, error) = match joined {
            Ok((id, Ok(()))) => (id, TaskOutcome::Ok, None),
            Ok((id, Err(message))) => (id, TaskOutcome::Error, Some(message)),
            Err(join_error) if join_error.is_cancelled() => (join_error.id(), TaskOutcome::Cancelled, None),
            Err(join_error) => (join_error.id(), TaskOutcome::Error, Some(format!("panicked: {join_error}"))),
        };
        let task = &tasks[index_of[&id]];
        finish_order += 1;
        if let Some(message) = &error {
            let raise = RaisedError { task: task.name.clone(), message: message.clone() };
            match mode {
                ScopeMode::JoinSet => {
                    if raised.is_empty() {
                        scope.abort_all();
                    }
                    raised.push(raise);
                }
                ScopeMode::JoinAll if raised.is_empty() => {
                    raised.push(raise);
                    returned_after = Some(started.elapsed());
                }
                ScopeMode::JoinAll | ScopeMode::Settled => {}
            }
        }
        let state = match outcome {
            TaskOutcome::Ok => "ok",
            TaskOutcome::Error => "error",
            TaskOutcome::Cancelled => "cancelled",
        };
        let _ = transitions.try_send(Transition { task: task.name.clone(), state, settled: finish_order as usize, total });
        settled[index_of[&id]] =
            Some(TaskReport { name: task.name.clone(), outcome, finish_order, elapsed_ms: millis(started.elapsed()), error });
    }

    let elapsed = started.elapsed();
    let tasks: Vec<TaskReport> = settled.into_iter().flatten().collect();
    let mut counts = HashMap::new();
    for task in &tasks {
        let key = serde_json::to_value(task.outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        *counts.entry(key).or_insert(0) += 1;
    }
    StructuredConcurrencyReport {
        mode,
        caller: CallerView { raised: !raised.is_empty(), errors: raised, returned_after_ms: millis(returned_after.unwrap_or(elapsed)) },
        tasks,
        counts,
        elapsed_ms: millis(elapsed),
        cpu: cpu.usage(CpuScope::SharedRuntime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_tasks() -> Vec<TaskSpec> {
        vec![
            TaskSpec { name: "a".into(), delay_ms: 100, fail: false },
            TaskSpec { name: "b".into(), delay_ms: 200, fail: true },
            TaskSpec { name: "c".into(), delay_ms: 300, fail: false },
        ]
    }

    async fn run(mode: ScopeMode) -> (StructuredConcurrencyReport, Vec<Transition>) {
        let (sender, mut receiver) = mpsc::channel(16);
        let report = run_scope(&three_tasks(), mode, sender, &CpuMeter::new()).await;
        let mut transitions = Vec::new();
        while let Ok(transition) = receiver.try_recv() {
            transitions.push(transition);
        }
        (report, transitions)
    }

    fn outcomes(report: &StructuredConcurrencyReport) -> Vec<(TaskOutcome, u32)> {
        report.tasks.iter().map(|task| (task.outcome, task.finish_order)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn join_set_cancels_siblings_on_first_failure() {
        let (report, transitions) = run(ScopeMode::JoinSet).await;
        assert_eq!(outcomes(&report), [(TaskOutcome::Ok, 1), (TaskOutcome::Error, 2), (TaskOutcome::Cancelled, 3)]);
        assert!(report.caller.raised);
        assert_eq!(report.caller.errors.len(), 1);
        assert_eq!(report.caller.errors[0].task, "b");
        assert_eq!(report.caller.returned_after_ms.round(), 200.0);
        assert_eq!(report.elapsed_ms.round(), 200.0);
        let states: Vec<_> = transitions.iter().map(|t| (t.task.as_str(), t.state)).collect();
        assert_eq!(states, [("a", "started"), ("b", "started"), ("c", "started"), ("a", "ok"), ("b", "error"), ("c", "cancelled")]);
    }

    #[tokio::test(start_paused = true)]
    async fn join_set_raises_every_error_that_happened_together() {
        let tasks = vec![
            TaskSpec { name: "x".into(), delay_ms: 50, fail: true },
            TaskSpec { name: "y".into(), delay_ms: 50, fail: true },
            TaskSpec { name: "z".into(), delay_ms: 500, fail: false },
        ];
        let (sender, _receiver) = mpsc::channel(16);
        let report = run_scope(&tasks, ScopeMode::JoinSet, sender, &CpuMeter::new()).await;
        let raised: HashSet<_> = report.caller.errors.iter().map(|error| error.task.as_str()).collect();
        assert_eq!(raised, HashSet::from(["x", "y"]));
        assert_eq!(report.tasks[2].outcome, TaskOutcome::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn join_all_surfaces_the_first_error_while_siblings_run_on() {
        let (report, _) = run(ScopeMode::JoinAll).await;
        assert_eq!(outcomes(&report), [(TaskOutcome::Ok, 1), (TaskOutcome::Error, 2), (TaskOutcome::Ok, 3)]);
        assert!(report.caller.raised);
        assert_eq!(report.caller.returned_after_ms.round(), 200.0);
        assert_eq!(report.elapsed_ms.round(), 300.0);
    }

    #[tokio::test(start_paused = true)]
    async fn settled_returns_errors_as_values_after_all_finish() {
        let (report, _) = run(ScopeMode::Settled).await;
        assert_eq!(outcomes(&report), [(TaskOutcome::Ok, 1), (TaskOutcome::Error, 2), (TaskOutcome::Ok, 3)]);
        assert!(!report.caller.raised);
        assert!(report.caller.errors.is_empty());
        assert_eq!(report.caller.returned_after_ms.round(), 300.0);
        assert_eq!(report.counts["error"], 1);
    }

    #[test]
    fn validation_names_each_bad_field() {
        let params = StructuredConcurrencyParams {
            tasks: vec![
                TaskSpec { name: "dup".into(), delay_ms: 1, fail: false },
                TaskSpec { name: "dup".into(), delay_ms: MAX_DELAY_MS + 1, fail: false },
            ],
            mode: ScopeMode::Settled,
        };
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        let fields: Vec<_> = errors.0.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["tasks[1].name", "tasks[1].delay_ms"]);
    }
}
