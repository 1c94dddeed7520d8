//! Unit tests of the modes on real threads with small amounts: starvation shows in inline mode
//! only, the semaphore caps the calls in progress, HTTP items make real requests, and dropping
//! the run shuts its runtime down.

use std::sync::Arc;
use std::time::Duration;

use super::params::{OffloadMode, WorkItem};
use super::work::BlockingCall;
use super::workload::{Tally, Workload};
use super::*;
use crate::cpu::{CpuMeter, CpuScope};
use crate::experiments::dedicated_runtime::tests::wait_until_no_threads_named;
use crate::outbound::OutboundPolicy;
use crate::targets::TargetStats;

async fn offload(work: WorkItem, mode: OffloadMode, items: u32, concurrency: u32, permits: Option<u32>) -> BlockingOffloadReport {
    let call = BlockingCall::prepare(&work, &OutboundPolicy::default()).await.expect("work prepares");
    let tally = Arc::new(Tally::default());
    let workload = Workload { call, mode, items, concurrency, permits };
    let cpu = CpuMeter::new();
    let outcome = run_dedicated(workload, tally.clone(), &cpu).await.expect("the run succeeds");
    report(mode, &tally, &outcome, cpu.usage(CpuScope::DedicatedThreads))
}

fn sleep_ms(amount: u64) -> WorkItem {
    WorkItem::SleepMs { amount }
}

#[tokio::test]
async fn cpu_work_shows_in_the_report_and_sleeping_costs_almost_none() {
    // 4 × 100 ms of hashing on the blocking pool: up to 400 ms of CPU, less on a busy machine
    // (the work burns wall time, and the machine may give it only part of a core).
    let busy = offload(WorkItem::CpuMs { amount: 100 }, OffloadMode::SpawnBlocking, 4, 4, None).await;
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as f64;
    assert!(busy.cpu.total_ms >= 40.0, "{:?}", busy.cpu);
    assert!(busy.cpu.total_ms <= busy.elapsed_ms * cores + 200.0, "no more than the cores could give: {:?}", busy.cpu);
    assert!(busy.cpu.user_ms > busy.cpu.system_ms, "hashing is user time: {:?}", busy.cpu);
    assert!(busy.cpu.threads >= 3, "the driver, the workers, the blocking threads: {:?}", busy.cpu);
    // The same calls asleep: wake-ups only.
    let asleep = offload(sleep_ms(100), OffloadMode::SpawnBlocking, 4, 4, None).await;
    assert!(asleep.cpu.total_ms < busy.cpu.total_ms, "{:?} vs {:?}", asleep.cpu, busy.cpu);
    assert!(asleep.cpu.total_ms < 100.0, "{:?}", asleep.cpu);
}

#[tokio::test]
async fn inline_calls_starve_the_heartbeat_for_a_whole_call() {
    let report = offload(sleep_ms(100), OffloadMode::Inline, 6, 4, None).await;
    assert_eq!(report.items, 6);
    assert_eq!(report.outcomes["done"], 6);
    assert!(report.heartbeat.lag.max_ms >= 90.0, "{:?}", report.heartbeat);
    assert!(report.os_threads_used <= WORKER_THREADS, "inline calls ran on {} threads", report.os_threads_used);
    assert!(report.max_concurrency_observed <= WORKER_THREADS as u32);
    // Two workers, six 100 ms calls: at least three rounds.
    assert!(report.elapsed_ms >= 290.0, "{report:?}");
}

#[tokio::test]
async fn spawn_blocking_keeps_the_heartbeat_on_time() {
    let report = offload(sleep_ms(100), OffloadMode::SpawnBlocking, 8, 8, None).await;
    assert_eq!(report.outcomes["done"], 8);
    assert!(report.heartbeat.lag.p99_ms < 25.0, "{:?}", report.heartbeat);
    assert!(report.heartbeat.lag.count >= 40, "the heartbeat ticked through the run: {:?}", report.heartbeat);
    assert_eq!(report.max_concurrency_observed, 8);
    assert_eq!(report.os_threads_used, 8);
    assert!(report.elapsed_ms < 290.0, "eight calls overlapped: {report:?}");
}

#[tokio::test]
async fn the_semaphore_caps_calls_in_progress_at_its_permits() {
    let permits = 3;
    let report = offload(sleep_ms(30), OffloadMode::SpawnBlockingSemaphore, 12, 12, Some(permits)).await;
    assert_eq!(report.outcomes["done"], 12);
    assert_eq!(report.max_concurrency_observed, permits);
    // Twelve 30 ms calls, three at a time: four rounds at least.
    assert!(report.elapsed_ms >= 118.0, "{report:?}");
}

#[tokio::test]
async fn cpu_items_run_their_course() {
    let report = offload(WorkItem::CpuMs { amount: 5 }, OffloadMode::SpawnBlocking, 4, 2, None).await;
    assert_eq!(report.outcomes["done"], 4);
    assert!(report.elapsed_ms >= 10.0, "{report:?}");
}

#[tokio::test]
async fn http_items_make_real_requests_and_count_failures() {
    let stats = Arc::new(TargetStats::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router: axum::Router = axum::Router::new().nest("/targets", crate::targets::http::router(stats.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let work = WorkItem::Http { url: format!("http://{address}/targets/status/503"), timeout_ms: 5000 };
    let report = offload(work, OffloadMode::SpawnBlocking, 5, 5, None).await;
    assert_eq!(report.outcomes, BTreeMap::from([("503".to_string(), 5)]));

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let work = WorkItem::Http { url: format!("http://127.0.0.1:{closed_port}/"), timeout_ms: 5000 };
    let report = offload(work, OffloadMode::Inline, 2, 1, None).await;
    assert_eq!(report.outcomes, BTreeMap::from([("connect".to_string(), 2)]));
    server.abort();
}

#[tokio::test]
async fn http_targets_outside_the_policy_are_refused_at_run_time() {
    let work = WorkItem::Http { url: "http://10.1.2.3/".into(), timeout_ms: 100 };
    let refused = BlockingCall::prepare(&work, &OutboundPolicy::default()).await.unwrap_err();
    assert!(matches!(refused, ExperimentError::Refused(_)), "{refused:?}");
}

#[tokio::test]
async fn dropping_the_run_shuts_its_runtime_down() {
    let call = BlockingCall::prepare(&sleep_ms(50), &OutboundPolicy::default()).await.unwrap();
    let tally = Arc::new(Tally::default());
    let workload = Workload { call, mode: OffloadMode::Inline, items: 100_000, concurrency: 4, permits: None };
    let cpu = CpuMeter::new();
    let run = run_dedicated(workload, tally.clone(), &cpu);
    let first_item_done = async {
        while tally.completed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        _ = run => panic!("100,000 items cannot be done yet"),
        _ = first_item_done => {}
    }
    wait_until_no_threads_named(THREAD_NAME_PREFIX).await;
    let completed = tally.completed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(tally.completed.load(Ordering::Relaxed), completed, "items went on after the drop");
}
