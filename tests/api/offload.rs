//! blocking-offload through the API: the inline mode starves its own runtime, never the
//! control plane; the semaphore caps HTTP items; cancelling stops the runtime's threads.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

/// How many threads of this process have a name starting with `prefix` (Linux `comm`). Each
/// test runs in a process of its own under nextest, so only its own threads are counted.
pub fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Waits (polling, at most 10 s) until no thread's name starts with `prefix`.
pub async fn wait_until_no_threads_named(prefix: &str) {
    for _ in 0..1000 {
        if threads_named(prefix) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("threads named {prefix}* still run");
}

async fn an_inline_run_starves_its_runtime_but_not_the_api(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok(
            "blocking-offload",
            &json!({"items": 16, "work": {"kind": "sleep_ms", "amount": 100}, "mode": "inline", "concurrency": 4}),
        )
        .await;
    app.wait_for(&id, |status| status != "queued").await;
    let mut slowest = Duration::ZERO;
    let mut answered_while_running = 0;
    while app.job(&id).await["status"] == "running" {
        let sent = Instant::now();
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        slowest = slowest.max(sent.elapsed());
        answered_while_running += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered_while_running >= 5, "only {answered_while_running} health checks during the run");
    assert!(slowest < Duration::from_millis(100), "the API answered in {slowest:?} during an inline run");

    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["items"], 16);
    assert_eq!(report["outcomes"], json!({"done": 16}));
    assert!(report["heartbeat"]["lag"]["max_ms"].as_f64().unwrap() >= 90.0, "{report}");
    assert!(report["os_threads_used"].as_u64().unwrap() <= 2, "{report}");
    assert_eq!(job["progress"]["completed"], 16);
    app.stop().await;
}

async fn http_items_behind_a_semaphore_never_exceed_its_permits(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let url = app.url("/targets/delay/20");
    let id = app
        .launch_ok(
            "blocking-offload",
            &json!({"items": 12, "work": {"kind": "http", "url": url}, "mode": "spawn_blocking_semaphore",
                    "permits": 4, "concurrency": 12}),
        )
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["outcomes"], json!({"200": 12}));
    assert_eq!(report["max_concurrency_observed"], 4);
    assert!(report["heartbeat"]["lag"]["p99_ms"].as_f64().unwrap() < 25.0, "{report}");
    app.stop().await;
}

async fn bad_parameters_and_forbidden_hosts_are_refused(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let sleep = json!({"kind": "sleep_ms", "amount": 1});
    let response = app.launch("blocking-offload", &json!({"items": 1, "work": sleep, "mode": "spawn_blocking_semaphore"})).await;
    assert_problem(response, 422, "permits").await;
    let response = app.launch("blocking-offload", &json!({"items": 0, "work": sleep, "mode": "inline"})).await;
    assert_problem(response, 422, "items").await;
    let forbidden = json!({"kind": "http", "url": "http://10.20.30.40/"});
    let response = app.launch("blocking-offload", &json!({"items": 1, "work": forbidden, "mode": "inline"})).await;
    assert_problem(response, 422, "work.url").await;
    app.stop().await;
}

async fn cancelling_an_inline_run_stops_its_runtime(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok(
            "blocking-offload",
            &json!({"items": 100_000, "work": {"kind": "sleep_ms", "amount": 50}, "mode": "inline", "concurrency": 4}),
        )
        .await;
    for _ in 0..1000 {
        if app.job(&id).await["progress"]["completed"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(threads_named("offload-") > 0, "the run has threads of its own");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "cancelled");
    wait_until_no_threads_named("offload-").await;
    app.stop().await;
}

crate::both_stores!(
    an_inline_run_starves_its_runtime_but_not_the_api,
    http_items_behind_a_semaphore_never_exceed_its_permits,
    bad_parameters_and_forbidden_hosts_are_refused,
    cancelling_an_inline_run_stops_its_runtime,
);
