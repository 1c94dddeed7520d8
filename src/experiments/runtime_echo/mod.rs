//! `runtime-echo`: the uvloop lesson, swapping the event loop. A TCP echo server and its
//! clients run together on one runtime flavour after another — tokio current-thread, tokio
//! multi-thread with one and two workers, monoio (io_uring) on one and two threads — each on
//! a fresh runtime on threads of its own, never on the control plane's. The report compares
//! message rates, bandwidth and round-trip times.

pub mod io_uring_flavour;
pub mod load;
pub mod params;
pub mod tokio_flavour;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::time::{MissedTickBehavior, interval};
use utoipa::ToSchema;

use self::io_uring_flavour::UringFailure;
use self::load::{EchoLoad, FlavourRun};
use self::params::{Flavour, RuntimeEchoParams};
use super::dedicated_runtime::{run_on_own_thread, run_tokio};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuMeter, CpuScope, CpuUsage};
use crate::jobs::context::{JobContext, PROGRESS_INTERVAL};
use crate::stats::{LatencySummary, millis};

/// Name prefix of every thread the experiment starts.
pub const THREAD_NAME_PREFIX: &str = "echo-";
/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// The experiment.
pub struct RuntimeEcho;

/// One flavour's figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlavourReport {
    /// The flavour.
    #[schema(inline)]
    pub flavour: Flavour,
    /// The runtime behind it.
    pub runtime: String,
    /// OS threads that ran tasks.
    pub threads: usize,
    /// From the first connect to the last echo.
    pub elapsed_ms: f64,
    /// Round trips done, each echo checked byte for byte.
    pub round_trips: u64,
    /// Bytes moved, both directions counted.
    pub bytes: u64,
    /// Messages echoed per second (one per round trip).
    pub msgs_per_s: f64,
    /// MiB per second, both directions counted.
    pub mib_per_s: f64,
    /// Round-trip time: write a message, read its whole echo.
    #[schema(inline)]
    pub rtt: LatencySummary,
    /// `msgs_per_s` over `current_thread`'s (absent when `current_thread` did not run).
    pub speedup_vs_current_thread: Option<f64>,
    /// The CPU this flavour used, clients and servers together (both run on its own threads).
    pub cpu: CpuUsage,
    /// Round trips per CPU-second: what the runtime costs for the same work.
    pub msgs_per_cpu_second: f64,
}

/// The report of a `runtime-echo` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuntimeEchoReport {
    /// Client connections.
    pub connections: u32,
    /// Round trips per connection.
    pub round_trips: u32,
    /// Bytes per message.
    pub message_bytes: u32,
    /// Each flavour, in the order run.
    #[schema(inline)]
    pub flavours: Vec<FlavourReport>,
    /// The flavour with the highest message rate.
    #[schema(inline)]
    pub best_flavour: Flavour,
    /// The CPU of the whole run: every flavour's, plus the job's polls on the control plane
    /// (progress).
    pub cpu: CpuUsage,
}

/// A live snapshot: which flavour runs and how far it is.
#[derive(Debug, Clone, Serialize)]
pub struct EchoProgress {
    /// The flavour running.
    pub flavour: &'static str,
    /// Its position among the flavours (1 is first).
    pub flavour_number: usize,
    /// Flavours to run.
    pub flavours: usize,
    /// `running` or `done`.
    pub state: &'static str,
    /// Its round trips done.
    pub completed_round_trips: u64,
    /// Its round trips in all.
    pub total_round_trips: u64,
    /// Its message rate, once done.
    pub msgs_per_s: Option<f64>,
}

impl Experiment for RuntimeEcho {
    const KIND: &'static str = "runtime-echo";
    const SUMMARY: &'static str = "TCP echo load on tokio current_thread vs multi_thread vs monoio io_uring runtimes: msg/s, MiB/s, RTT";
    const RESTARTABLE: bool = true;
    type Params = RuntimeEchoParams;
    type Report = RuntimeEchoReport;

    fn example() -> Self::Params {
        serde_json::from_value(serde_json::json!({})).expect("defaults deserialize")
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let load =
            EchoLoad { connections: params.connections, round_trips: params.round_trips, message_bytes: params.message_bytes as usize };
        let mut runs = Vec::with_capacity(params.flavours.len());
        for (index, &flavour) in params.flavours.iter().enumerate() {
            let snapshot = |state, completed, msgs_per_s| EchoProgress {
                flavour: flavour.name(),
                flavour_number: index + 1,
                flavours: params.flavours.len(),
                state,
                completed_round_trips: completed,
                total_round_trips: load.total_round_trips(),
                msgs_per_s,
            };
            ctx.milestone(snapshot("running", 0, None)).await;
            let completed = Arc::new(AtomicU64::new(0));
            let flavour_cpu = CpuMeter::new();
            let run = run_flavour(flavour, load, completed.clone(), &flavour_cpu);
            tokio::pin!(run);
            let mut ticker = interval(PROGRESS_INTERVAL);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let run = loop {
                tokio::select! {
                    run = &mut run => break run?,
                    _ = ticker.tick() => ctx.progress(snapshot("running", completed.load(Ordering::Relaxed), None)).await,
                }
            };
            let msgs_per_s = rate(run.round_trips as f64, &run);
            ctx.milestone(snapshot("done", run.round_trips, Some(msgs_per_s))).await;
            runs.push((flavour, run, flavour_cpu.usage(CpuScope::DedicatedThreads)));
        }
        report(&params, &load, &runs, ctx.cpu().usage(CpuScope::DedicatedThreads))
    }
}

/// Runs the load on a fresh runtime of `flavour` on threads of its own; dropping the future
/// stops it. `completed` counts round trips as they finish; the threads' CPU is charged to `cpu`.
pub async fn run_flavour(
    flavour: Flavour,
    load: EchoLoad,
    completed: Arc<AtomicU64>,
    cpu: &CpuMeter,
) -> Result<FlavourRun, ExperimentError> {
    let failed = move |message: String| ExperimentError::Protocol(format!("{}: {message}", flavour.name()));
    let threads_cpu = cpu.clone();
    run_on_own_thread(&format!("{THREAD_NAME_PREFIX}driver"), cpu, move |stop| {
        let mut builder = match flavour {
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavour::MultiThread1 | Flavour::MultiThread2 => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(flavour.threads());
                builder
            }
            Flavour::IoUring1 | Flavour::IoUring2 => {
                return io_uring_flavour::run(load, flavour.threads() as u32, &completed, &stop, &threads_cpu).map_err(|failure| {
                    match failure {
                        UringFailure::Unavailable(reason) => ExperimentError::Unavailable(reason),
                        UringFailure::Load(message) => failed(message),
                    }
                });
            }
        };
        // Nothing here blocks: one pool thread at most, should tokio want one.
        builder.thread_name(format!("{THREAD_NAME_PREFIX}worker")).max_blocking_threads(1);
        match run_tokio(builder, &threads_cpu, stop, tokio_flavour::run(load, completed))? {
            Some(outcome) => outcome.map_err(failed),
            None => Err(ExperimentError::Internal("the flavour was stopped".into())),
        }
    })
    .await?
}

fn rate(count: f64, run: &FlavourRun) -> f64 {
    let seconds = run.elapsed.as_secs_f64();
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

fn runtime_name(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::CurrentThread => "tokio current_thread (epoll)",
        Flavour::MultiThread1 => "tokio multi_thread, 1 worker (epoll)",
        Flavour::MultiThread2 => "tokio multi_thread, 2 workers (epoll)",
        Flavour::IoUring1 => "monoio (io_uring), 1 thread",
        Flavour::IoUring2 => "monoio (io_uring), thread per core, 2 threads",
    }
}

/// The report of the flavours' runs, each with its CPU; `job_cpu` is the job's own on the
/// control plane.
fn report(
    params: &RuntimeEchoParams,
    load: &EchoLoad,
    runs: &[(Flavour, FlavourRun, CpuUsage)],
    job_cpu: CpuUsage,
) -> Result<RuntimeEchoReport, ExperimentError> {
    let baseline =
        runs.iter().find(|(flavour, _, _)| *flavour == Flavour::CurrentThread).map(|(_, run, _)| rate(run.round_trips as f64, run));
    let flavours: Vec<FlavourReport> = runs
        .iter()
        .map(|(flavour, run, cpu)| {
            let bytes = 2 * run.round_trips * load.message_bytes as u64;
            let msgs_per_s = rate(run.round_trips as f64, run);
            FlavourReport {
                flavour: *flavour,
                runtime: runtime_name(*flavour).into(),
                threads: flavour.threads(),
                elapsed_ms: millis(run.elapsed),
                round_trips: run.round_trips,
                bytes,
                msgs_per_s,
                mib_per_s: rate(bytes as f64 / MIB, run),
                rtt: LatencySummary::from_micros(&run.rtt),
                speedup_vs_current_thread: baseline.filter(|base| *base > 0.0).map(|base| msgs_per_s / base),
                msgs_per_cpu_second: cpu.per_cpu_second(run.round_trips),
                cpu: cpu.clone(),
            }
        })
        .collect();
    let best_flavour = flavours
        .iter()
        .max_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s))
        .map(|best| best.flavour)
        .ok_or_else(|| ExperimentError::Internal("no flavour ran".into()))?;
    Ok(RuntimeEchoReport {
        connections: params.connections,
        round_trips: params.round_trips,
        message_bytes: params.message_bytes,
        flavours,
        best_flavour,
        cpu: CpuUsage::sum(runs.iter().map(|(_, _, cpu)| cpu).chain([&job_cpu]), CpuScope::DedicatedThreads),
    })
}

#[cfg(test)]
mod tests;
