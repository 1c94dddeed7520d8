//! `blocking-offload`: the "call a blocking library from async code" lesson (Python's
//! `to_thread` + `Semaphore`), measured. Items make a blocking call inline (blocking a runtime
//! worker), through `spawn_blocking`, or through `spawn_blocking` behind a semaphore; a 1 ms
//! heartbeat on the same runtime shows the starvation. The workload runs on a runtime of its
//! own (2 workers, a bounded blocking pool) on threads of its own, so even the inline mode
//! never slows the control plane.

pub mod params;
pub mod work;
pub mod workload;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::time::{MissedTickBehavior, interval};
use utoipa::ToSchema;

use self::params::{BlockingOffloadParams, OffloadMode, WorkItem, check_http_url};
use self::work::BlockingCall;
use self::workload::{Tally, Workload, WorkloadOutcome};
use super::dedicated_runtime::{run_on_own_thread, run_tokio};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuMeter, CpuScope, CpuUsage};
use crate::jobs::context::{JobContext, PROGRESS_INTERVAL};
use crate::services::Services;
use crate::stats::{LatencySummary, millis};
use crate::validation::FieldErrors;

/// Worker threads of the dedicated runtime: few, so that inline calls visibly starve it.
pub const WORKER_THREADS: usize = 2;
/// The dedicated runtime's blocking pool never grows past this many threads.
pub const MAX_BLOCKING_THREADS: usize = 64;
/// Name prefix of every thread the experiment starts (the runtime's driver, workers and
/// blocking pool).
pub const THREAD_NAME_PREFIX: &str = "offload-";

/// The experiment.
pub struct BlockingOffload;

/// The heartbeat's view of the runtime.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReport {
    /// The heartbeat's period.
    pub period_ms: f64,
    /// How late its ticks fired (0 on an idle runtime, about the blocking call's length when
    /// every worker is blocked).
    #[schema(inline)]
    pub lag: LatencySummary,
}

/// The report of a `blocking-offload` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockingOffloadReport {
    /// The mode that ran.
    #[schema(inline)]
    pub mode: OffloadMode,
    /// Items done.
    pub items: u64,
    /// Items per outcome: `done` (sleep, CPU), the HTTP status, or `connect`, `timeout`,
    /// `io`, `protocol`, `panic`.
    pub outcomes: BTreeMap<String, u64>,
    /// From the first item's start to the last item's end.
    pub elapsed_ms: f64,
    /// Items finished per second.
    pub items_per_s: f64,
    /// The most blocking calls that ran at once.
    pub max_concurrency_observed: u32,
    /// Distinct OS threads that made a blocking call.
    pub os_threads_used: usize,
    /// Worker threads of the run's runtime.
    pub worker_threads: usize,
    /// The run's blocking pool limit.
    pub max_blocking_threads: usize,
    /// Runtime starvation as a 1 ms heartbeat on the same runtime saw it.
    #[schema(inline)]
    pub heartbeat: HeartbeatReport,
    /// The CPU the run used: the run's own runtime (its driver, workers and blocking pool, which
    /// did every item), plus the job's polls on the control plane (preparing, progress).
    /// `threads` counts them all; `os_threads_used` only those that made a blocking call.
    pub cpu: CpuUsage,
}

/// A live snapshot, published a few times per second.
#[derive(Debug, Clone, Serialize)]
pub struct OffloadProgress {
    /// Items finished.
    pub completed: u64,
    /// Items in all.
    pub total: u32,
    /// Blocking calls running now.
    pub running: u32,
    /// The most seen at once so far.
    pub max_concurrency_observed: u32,
    /// The heartbeat's largest lag so far.
    pub max_heartbeat_lag_ms: f64,
}

impl Experiment for BlockingOffload {
    const KIND: &'static str = "blocking-offload";
    const SUMMARY: &'static str =
        "blocking calls inline vs spawn_blocking vs spawn_blocking + semaphore, with a 1 ms heartbeat that shows runtime starvation";
    const RESTARTABLE: bool = true;
    type Params = BlockingOffloadParams;
    type Report = BlockingOffloadReport;

    fn example() -> Self::Params {
        BlockingOffloadParams {
            items: 40,
            work: WorkItem::SleepMs { amount: 20 },
            mode: OffloadMode::Inline,
            concurrency: 8,
            permits: None,
        }
    }

    fn admit(params: &Self::Params, services: &Services, errors: &mut FieldErrors) {
        if let WorkItem::Http { url, .. } = &params.work
            && let Ok(url) = check_http_url(url)
            && let Err(reason) = services.outbound.check_url(&url)
        {
            errors.add("work.url", reason);
        }
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let call = BlockingCall::prepare(&params.work, &ctx.services().outbound).await?;
        let workload = Workload { call, mode: params.mode, items: params.items, concurrency: params.concurrency, permits: params.permits };
        let tally = Arc::new(Tally::default());
        let run = run_dedicated(workload, tally.clone(), ctx.cpu());
        tokio::pin!(run);
        let mut ticker = interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome?,
                _ = ticker.tick() => ctx.progress(progress(&tally, params.items)).await,
            }
        };
        ctx.progress(progress(&tally, params.items)).await;
        Ok(report(params.mode, &tally, &outcome, ctx.cpu().usage(CpuScope::DedicatedThreads)))
    }
}

/// Runs `workload` on a new runtime on threads of its own, charged to `cpu`; dropping the future
/// shuts it down.
pub async fn run_dedicated(workload: Workload, tally: Arc<Tally>, cpu: &CpuMeter) -> Result<WorkloadOutcome, ExperimentError> {
    let runtime_cpu = cpu.clone();
    let outcome = run_on_own_thread(&format!("{THREAD_NAME_PREFIX}driver"), cpu, move |stop| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(WORKER_THREADS)
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name(format!("{THREAD_NAME_PREFIX}worker"));
        run_tokio(builder, &runtime_cpu, stop.clone(), workload::run(workload, tally, stop))
    })
    .await??;
    outcome.ok_or_else(|| ExperimentError::Internal("the workload was stopped".into()))
}

fn progress(tally: &Tally, total: u32) -> OffloadProgress {
    OffloadProgress {
        completed: tally.completed.load(Ordering::Relaxed),
        total,
        running: tally.running.load(Ordering::Relaxed),
        max_concurrency_observed: tally.max_running.load(Ordering::Relaxed),
        max_heartbeat_lag_ms: tally.max_lag_micros.load(Ordering::Relaxed) as f64 / 1000.0,
    }
}

/// The report of a finished run.
pub fn report(mode: OffloadMode, tally: &Tally, outcome: &WorkloadOutcome, cpu: CpuUsage) -> BlockingOffloadReport {
    let items = tally.completed.load(Ordering::Relaxed);
    let seconds = outcome.elapsed.as_secs_f64();
    BlockingOffloadReport {
        mode,
        items,
        outcomes: tally.outcomes(),
        elapsed_ms: millis(outcome.elapsed),
        items_per_s: if seconds > 0.0 { items as f64 / seconds } else { 0.0 },
        max_concurrency_observed: tally.max_running.load(Ordering::Relaxed),
        os_threads_used: tally.thread_count(),
        worker_threads: WORKER_THREADS,
        max_blocking_threads: MAX_BLOCKING_THREADS,
        heartbeat: HeartbeatReport { period_ms: millis(workload::HEARTBEAT_PERIOD), lag: LatencySummary::from_micros(&outcome.lag) },
        cpu,
    }
}
