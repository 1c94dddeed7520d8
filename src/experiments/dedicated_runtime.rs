//! Runs a job's workload on OS threads of its own, never on the control plane's runtime, so a
//! workload that blocks its threads (on purpose, as `blocking-offload`'s inline mode does) or
//! saturates them (`runtime-echo`) cannot slow the API down. Dropping the awaiting future stops
//! the workload: its stop token fires and the runtime is shut down.

use std::future::Future;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::ExperimentError;
use crate::cpu::CpuMeter;

/// Runs `work` on a new OS thread named `thread_name` and waits for its result without blocking
/// the caller's runtime. `work` gets a token that fires when the caller's future is dropped
/// (job cancelled, timed out, server stopping); it must return soon after. The thread's CPU,
/// from its start to the end of `work`, is charged to `cpu`.
pub async fn run_on_own_thread<T, W>(thread_name: &str, cpu: &CpuMeter, work: W) -> Result<T, ExperimentError>
where
    T: Send + 'static,
    W: FnOnce(CancellationToken) -> T + Send + 'static,
{
    let stop = CancellationToken::new();
    // Fires `stop` when this future is dropped before the thread has answered.
    let stop_on_drop = stop.clone().drop_guard();
    let (result_sender, result) = oneshot::channel();
    let cpu = cpu.clone();
    std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            let outcome = {
                // Counted until the work ends, before the caller hears of it.
                let _tracked = cpu.track_current_thread();
                work(stop)
            };
            let _ = result_sender.send(outcome);
        })
        .map_err(|error| ExperimentError::Internal(format!("cannot start a thread: {error}")))?;
    let outcome = result.await.map_err(|_| ExperimentError::Internal(format!("thread {thread_name} panicked")));
    stop_on_drop.disarm();
    outcome
}

/// Builds a tokio runtime from `builder` on the current thread, runs `workload` on it as a task
/// until it ends or `stop` fires, then shuts the runtime down without waiting for threads stuck
/// in blocking calls (they exit when their call returns). `None` when stopped. The runtime's own
/// threads (workers, blocking pool) are charged to `cpu`.
pub fn run_tokio<F>(
    mut builder: tokio::runtime::Builder,
    cpu: &CpuMeter,
    stop: CancellationToken,
    workload: F,
) -> Result<Option<F::Output>, ExperimentError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    cpu.instrument(&mut builder);
    let runtime = builder.enable_all().build().map_err(|error| ExperimentError::Internal(format!("cannot build a runtime: {error}")))?;
    let task = runtime.spawn(workload);
    let outcome = runtime.block_on(async {
        tokio::select! {
            biased;
            _ = stop.cancelled() => Ok(None),
            joined = task => joined
                .map(Some)
                .map_err(|error| ExperimentError::Internal(format!("the workload failed: {error}"))),
        }
    });
    runtime.shutdown_background();
    outcome
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// How many threads of this process have a name starting with `prefix` (Linux `comm`).
    pub(crate) fn threads_named(prefix: &str) -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    /// Waits (polling, at most 10 s) until no thread is named with `prefix`.
    pub(crate) async fn wait_until_no_threads_named(prefix: &str) {
        for _ in 0..1000 {
            if threads_named(prefix) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("threads named {prefix}* still run");
    }

    #[tokio::test]
    async fn the_result_comes_back_from_the_thread() {
        let answer = run_on_own_thread("dedicated-ok", &CpuMeter::new(), |_stop| 42).await.unwrap();
        assert_eq!(answer, 42);
    }

    #[tokio::test]
    async fn dropping_the_caller_stops_the_runtime_and_its_threads() {
        let started = CancellationToken::new();
        let cpu = CpuMeter::new();
        let run = run_on_own_thread("dedicated-drop", &cpu, {
            let cpu = cpu.clone();
            let started = started.clone();
            move |stop| {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(2).thread_name("dedicated-drop");
                run_tokio(builder, &cpu, stop, async move {
                    started.cancel();
                    std::future::pending::<()>().await
                })
            }
        });
        tokio::select! {
            _ = run => panic!("a pending workload ended"),
            _ = started.cancelled() => {}
        }
        wait_until_no_threads_named("dedicated-drop").await;
    }
}
