//! Unit tests on real sockets and real runtimes, small sizes: every flavour echoes the exact
//! bytes and counts every round trip; dropping a run stops its runtime.

use std::time::Duration;

use super::*;
use crate::experiments::dedicated_runtime::tests::wait_until_no_threads_named;

async fn echo(flavour: Flavour, connections: u32, round_trips: u32, message_bytes: usize) -> FlavourRun {
    let load = EchoLoad { connections, round_trips, message_bytes };
    let completed = Arc::new(AtomicU64::new(0));
    let run = run_flavour(flavour, load, completed.clone(), &CpuMeter::new()).await.unwrap_or_else(|error| panic!("{flavour:?}: {error}"));
    assert_eq!(completed.load(Ordering::Relaxed), load.total_round_trips(), "{flavour:?}: progress counted every round trip");
    run
}

#[tokio::test]
async fn every_flavour_echoes_every_message_exactly() {
    for flavour in Flavour::ALL {
        let run = echo(flavour, 7, 40, 3000).await;
        assert_eq!(run.round_trips, 280, "{flavour:?}");
        assert_eq!(run.rtt.len(), 280, "{flavour:?}");
        assert!(run.elapsed > Duration::ZERO);
    }
}

#[tokio::test]
async fn messages_larger_than_a_server_read_come_back_whole() {
    for flavour in [Flavour::CurrentThread, Flavour::MultiThread2, Flavour::IoUring2] {
        let run = echo(flavour, 3, 4, 200_000).await;
        assert_eq!(run.round_trips, 12, "{flavour:?}");
    }
}

#[tokio::test]
async fn one_byte_messages_and_a_single_connection_work() {
    for flavour in [Flavour::MultiThread1, Flavour::IoUring2] {
        assert_eq!(echo(flavour, 1, 5, 1).await.round_trips, 5, "{flavour:?}");
    }
}

#[tokio::test]
async fn the_report_compares_against_current_thread() {
    let params: RuntimeEchoParams = serde_json::from_value(
        serde_json::json!({"flavours": ["current_thread", "io_uring_1"], "connections": 2, "round_trips": 10, "message_bytes": 64}),
    )
    .unwrap();
    let load = EchoLoad { connections: 2, round_trips: 10, message_bytes: 64 };
    let mut runs = Vec::new();
    for &flavour in &params.flavours {
        let cpu = CpuMeter::new();
        let run = run_flavour(flavour, load, Arc::new(AtomicU64::new(0)), &cpu).await.unwrap();
        runs.push((flavour, run, cpu.usage(CpuScope::DedicatedThreads)));
    }
    let report = report(&params, &load, &runs, CpuMeter::new().usage(CpuScope::DedicatedThreads)).unwrap();
    assert_eq!(report.flavours[0].speedup_vs_current_thread, Some(1.0));
    assert_eq!(report.flavours[1].bytes, 2 * 20 * 64);
    assert!(report.flavours.iter().all(|flavour| flavour.msgs_per_s > 0.0 && flavour.rtt.count == 20));
    // Each flavour's own threads did the echoing: the kernel saw them, and the whole run sums them.
    for flavour in &report.flavours {
        assert!(flavour.cpu.threads >= 1 && flavour.cpu.total_ms >= 0.0, "{flavour:?}");
        assert!(flavour.cpu.total_ms > 0.0 || flavour.msgs_per_cpu_second == 0.0);
    }
    assert_eq!(report.cpu.threads, report.flavours.iter().map(|flavour| flavour.cpu.threads).sum::<u32>());
}

async fn drop_mid_run(flavour: Flavour) {
    let load = EchoLoad { connections: 4, round_trips: 100_000, message_bytes: 64 };
    let completed = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::new();
    let run = run_flavour(flavour, load, completed.clone(), &cpu);
    let under_way = async {
        while completed.load(Ordering::Relaxed) < 100 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::select! {
        outcome = run => panic!("{flavour:?} ended early: {outcome:?}"),
        _ = under_way => {}
    }
    wait_until_no_threads_named(THREAD_NAME_PREFIX).await;
    let at_stop = completed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(completed.load(Ordering::Relaxed), at_stop, "{flavour:?} went on after the drop");
}

#[tokio::test]
async fn dropping_a_tokio_flavour_stops_its_runtime() {
    drop_mid_run(Flavour::MultiThread2).await;
}

#[tokio::test]
async fn dropping_an_io_uring_flavour_stops_its_threads() {
    drop_mid_run(Flavour::IoUring2).await;
}
