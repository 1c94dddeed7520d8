//! `subprocess`: allowlisted child processes run concurrently under a limit, every stdout and
//! stderr line streamed as a `log` event, each process's deadline enforced with SIGTERM and then
//! SIGKILL, every child reaped. Children get argv only (no shell), a cleared environment and
//! the job's sandbox as their directory; dropping the run kills them (`kill_on_drop`), and the
//! kernel kills them if the server itself dies (`PR_SET_PDEATHSIG`).

pub mod output;
pub mod params;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use self::output::{OutputCaps, OutputLine};
use self::params::{ProcessSpec, SubprocessParams};
use self::process::{AliveGauge, ProcessOutcome, ProcessReport, ProcessSettings, run_process};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::services::programs::{AllowedProgram, CHILD_PROGRAM};
use crate::services::{Need, Services};
use crate::stats::millis;
use crate::validation::FieldErrors;

/// Events in flight from the processes to the publisher; readers wait when it is full, and
/// their children then block on a full pipe, so output never piles up in memory.
const EVENT_BUFFER: usize = 256;

/// The experiment.
pub struct Subprocess;

/// What a process task tells the publisher.
#[derive(Debug)]
pub enum RunEvent {
    /// A line to log.
    Line(OutputLine),
    /// A process started or ended: published as a progress milestone.
    Transition(ProcessTransition),
}

/// A process starting or ending, as a progress event shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessTransition {
    /// The process's index in the parameters.
    pub process: usize,
    /// `started`, `exited`, `signalled` or `failed`.
    pub state: &'static str,
    /// Its process id.
    pub pid: Option<u32>,
    /// Processes alive after this transition.
    pub alive: u32,
}

/// Totals over every process of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SubprocessTotals {
    /// Processes that exited with code 0.
    pub succeeded: u32,
    /// Processes that exited with another code.
    pub exited_nonzero: u32,
    /// Processes a signal ended.
    pub signalled: u32,
    /// Processes that could not be started or waited for.
    pub failed: u32,
    /// Processes still running at their timeout.
    pub timed_out: u32,
    /// Processes that needed SIGKILL.
    pub killed: u32,
    /// Lines read from every stream.
    pub lines: u64,
    /// Bytes read from every stream.
    pub bytes: u64,
    /// Lines sent as `log` events.
    pub logged_lines: u64,
}

/// The report of a `subprocess` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubprocessReport {
    /// Every process, in the order given.
    #[schema(inline)]
    pub processes: Vec<ProcessReport>,
    /// Totals over them.
    #[schema(inline)]
    pub totals: SubprocessTotals,
    /// The concurrency limit the run kept to.
    pub concurrency: u32,
    /// The most processes alive at once, observed from spawn to reaping.
    pub max_concurrent: u32,
    /// From the run's start until the last process was reaped.
    pub elapsed_ms: f64,
    /// The CPU the run used: the child processes' (each with the children it waited for, read
    /// from the kernel once it exited), plus the job's tasks on the control plane that started
    /// them, read their output and reaped them (`threads` counts those control-plane threads).
    pub cpu: CpuUsage,
}

impl Experiment for Subprocess {
    const KIND: &'static str = "subprocess";
    const SUMMARY: &'static str =
        "Allowlisted child processes run concurrently, output streamed as log events, timeout → SIGTERM → SIGKILL, always reaped";
    type Params = SubprocessParams;
    type Report = SubprocessReport;

    fn example() -> Self::Params {
        let process = |args: &[&str], timeout_ms| ProcessSpec {
            program: CHILD_PROGRAM.into(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            timeout_ms,
        };
        SubprocessParams {
            processes: vec![
                process(&["--lines", "5", "--interval-ms", "100"], 10_000),
                process(&["--lines", "2", "--stream", "stderr", "--exit-code", "3"], 10_000),
                process(&["--lines", "1", "--hang", "--ignore-term"], 500),
            ],
            concurrency: 2,
            kill_after_ms: 300,
            max_lines: 1000,
            max_line_bytes: 1024,
        }
    }

    fn admit(params: &Self::Params, services: &Services, errors: &mut FieldErrors) {
        for (index, process) in params.processes.iter().enumerate() {
            if services.programs.get(&process.program).is_none() {
                errors.add(
                    format!("processes[{index}].program"),
                    format!(
                        "{:?} is not allowed: the allowed programs are [{}] (ASYNCLAB_ALLOW_PROGRAMS)",
                        process.program,
                        services.programs.names().join(", ")
                    ),
                );
            }
        }
    }

    const NEEDS: &'static [Need] = &[Need::Programs];

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let mut plan = Vec::with_capacity(params.processes.len());
        for (index, spec) in params.processes.iter().enumerate() {
            // Checked at launch, but a queued job may run on a server with another allowlist.
            let program =
                ctx.services().programs.get(&spec.program).ok_or_else(|| {
                    ExperimentError::Refused(format!("processes[{index}].program: {:?} is not allowed here", spec.program))
                })?;
            plan.push((spec.clone(), program.clone()));
        }
        let settings = ProcessSettings {
            kill_after: Duration::from_millis(params.kill_after_ms),
            caps: OutputCaps { max_lines: params.max_lines, max_line_bytes: params.max_line_bytes as usize },
            sandbox: ctx.sandbox().to_path_buf(),
            run_started: Instant::now(),
            cpu: ctx.cpu().clone(),
        };
        let (sender, mut receiver) = mpsc::channel(EVENT_BUFFER);
        let processes = run_processes(plan, settings, params.concurrency, sender);
        let publish = async {
            while let Some(event) = receiver.recv().await {
                match event {
                    RunEvent::Line(line) => ctx.log(&line).await,
                    RunEvent::Transition(transition) => ctx.milestone(&transition).await,
                }
            }
        };
        let (report, ()) = tokio::join!(processes, publish);
        Ok(report)
    }
}

/// Runs the planned processes, at most `concurrency` alive at once, sending their output and
/// transitions on `events`.
pub async fn run_processes(
    plan: Vec<(ProcessSpec, AllowedProgram)>,
    settings: ProcessSettings,
    concurrency: u32,
    events: mpsc::Sender<RunEvent>,
) -> SubprocessReport {
    let settings = Arc::new(settings);
    let gauge = Arc::new(AliveGauge::default());
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let mut running = JoinSet::new();
    for (index, (spec, program)) in plan.into_iter().enumerate() {
        let (settings, gauge, slots, events) = (settings.clone(), gauge.clone(), slots.clone(), events.clone());
        let cpu = settings.cpu.clone();
        running.spawn(cpu.attribute(async move {
            let _slot = slots.acquire_owned().await.expect("the slot semaphore is never closed");
            run_process(index, &spec, &program, &settings, &gauge, &events).await
        }));
    }
    drop(events);
    let mut processes = Vec::new();
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(report) => processes.push(report),
            Err(error) => tracing::error!(%error, "a process task ended abnormally"),
        }
    }
    processes.sort_by_key(|process| process.index);
    SubprocessReport {
        totals: totals(&processes),
        processes,
        concurrency,
        max_concurrent: gauge.peak(),
        elapsed_ms: millis(settings.run_started.elapsed()),
        cpu: settings.cpu.usage(CpuScope::ChildProcesses),
    }
}

fn totals(processes: &[ProcessReport]) -> SubprocessTotals {
    let mut totals = SubprocessTotals::default();
    for process in processes {
        match (process.outcome, process.exit_code) {
            (ProcessOutcome::Exited, Some(0)) => totals.succeeded += 1,
            (ProcessOutcome::Exited, _) => totals.exited_nonzero += 1,
            (ProcessOutcome::Signalled, _) => totals.signalled += 1,
            (ProcessOutcome::Failed, _) => totals.failed += 1,
        }
        totals.timed_out += u32::from(process.timed_out);
        totals.killed += u32::from(process.sigkill_sent);
        for stream in [&process.stdout, &process.stderr] {
            totals.lines += stream.lines;
            totals.bytes += stream.bytes;
            totals.logged_lines += stream.logged_lines;
        }
    }
    totals
}

#[cfg(test)]
mod tests;
