//! The meter against real work: threads that spin, a runtime's threads, attributed polls and a
//! child process, each checked for CPU the kernel saw.

use std::time::{Duration, Instant};

use super::*;

/// Burns at least `micros` of the calling thread's CPU (wall time is no guide on a busy machine).
fn burn(micros: u64) {
    let before = current_thread_times();
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let spent = current_thread_times() - before;
        if spent.user_micros + spent.system_micros >= micros || Instant::now() > give_up {
            return;
        }
        std::hint::black_box(spent);
    }
}

#[test]
fn a_tracked_thread_counts_from_start_to_end_and_once() {
    let meter = CpuMeter::new();
    burn(20_000); // before tracking: not counted
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let _tracked = meter.track_current_thread();
                burn(30_000);
            });
        }
    });
    let usage = meter.usage(CpuScope::DedicatedThreads);
    assert!(usage.total_ms >= 60.0, "{usage:?}");
    // Two threads that each burned a little over 30 ms; generous against a slow machine.
    assert!(usage.total_ms < 2_000.0, "{usage:?}");
    assert_eq!(usage.threads, 2);
    assert_eq!(usage.processes, 0);
    assert!((usage.user_ms + usage.system_ms - usage.total_ms).abs() < 1e-9);
}

#[test]
fn a_live_tracked_thread_is_read_from_proc() {
    let meter = CpuMeter::new();
    let (started, wait_started) = std::sync::mpsc::channel();
    let (finish, wait_finish) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn({
        let meter = meter.clone();
        move || {
            let _tracked = meter.track_current_thread();
            burn(50_000);
            started.send(()).unwrap();
            wait_finish.recv().unwrap();
        }
    });
    wait_started.recv().unwrap();
    // Whole ticks only: at least 50 ms less a 10 ms tick each for user and system time.
    assert!(meter.usage(CpuScope::DedicatedThreads).total_ms >= 30.0);
    finish.send(()).unwrap();
    thread.join().unwrap();
    assert!(meter.usage(CpuScope::DedicatedThreads).total_ms >= 50.0);
}

#[test]
fn an_instrumented_runtime_counts_its_workers_and_blocking_threads() {
    let meter = CpuMeter::new();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    meter.instrument(&mut builder);
    let runtime = builder.build().unwrap();
    runtime.block_on(async {
        tokio::spawn(async { burn(20_000) }).await.unwrap();
        tokio::task::spawn_blocking(|| burn(20_000)).await.unwrap();
    });
    drop(runtime);
    let usage = meter.usage(CpuScope::DedicatedThreads);
    assert!(usage.total_ms >= 40.0, "{usage:?}");
    assert!(usage.threads >= 3, "two workers and a blocking thread: {usage:?}");
}

#[tokio::test]
async fn attributed_polls_count_once_when_nested() {
    let meter = CpuMeter::new();
    let inner = meter.attribute(async { burn(30_000) });
    meter.attribute(inner).await;
    let usage = meter.usage(CpuScope::SharedRuntime);
    assert!(usage.total_ms >= 30.0, "{usage:?}");
    assert!(usage.total_ms < 1_000.0, "counted once: {usage:?}");
    assert_eq!(usage.threads, 1);
}

#[tokio::test]
async fn an_exited_child_is_measured_before_it_is_reaped() {
    // A shell loop burns CPU in the child.
    let mut child = tokio::process::Command::new("sh").args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]).spawn().unwrap();
    let exit = process::ChildExit::watch(child.id().unwrap()).expect("pidfds are available");
    exit.exited().await;
    let times = exit.times().expect("the zombie is still there");
    assert!(child.wait().await.unwrap().success());
    assert!(exit.times().is_none(), "reaped now");
    let meter = CpuMeter::new();
    meter.add_process(times);
    let usage = meter.usage(CpuScope::ChildProcesses);
    assert!(usage.total_ms >= 10.0, "{usage:?}");
    assert_eq!(usage.processes, 1);
}
