//! http-fanout as a load generator: the open model, HTTP/2, duration-bound runs, keep-alive off,
//! and the classic asyncio fan-out demo against its queueing model.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget};

async fn run(app: &TestApp, params: serde_json::Value) -> serde_json::Value {
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"].clone()
}

async fn open_model_sends_on_schedule_and_counts_what_it_could_not(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;

    let hello = format!("{}/targets/hello/{{i}}", target.address);
    let report = run(&app, json!({"url": hello, "rate": 400.0, "duration_ms": 500, "max_connections": 8})).await;
    assert_eq!(report["model"], "open");
    assert_eq!(report["target_rps"], 400.0);
    assert_eq!(report["requests"].as_u64().unwrap() + report["dropped"].as_u64().unwrap(), 200);
    assert_eq!(target.stats().requests_served, report["requests"].as_u64().unwrap());

    // 2 connections, 200 ms per answer: at most ~10 per second are served; 500 arrive.
    let slow = format!("{}/targets/delay/200", target.address);
    let report = run(&app, json!({"url": slow, "rate": 1000.0, "duration_ms": 500, "max_connections": 2})).await;
    let (requests, dropped) = (report["requests"].as_u64().unwrap(), report["dropped"].as_u64().unwrap());
    assert_eq!(requests + dropped, 500);
    assert!(dropped >= 480, "{report}");
    assert!(report["latency"]["p50_ms"].as_f64().unwrap() >= 200.0);
    assert!(
        report["latency"]["max_ms"].as_f64().unwrap() >= report["service_time"]["max_ms"].as_f64().unwrap(),
        "latency from the intended start includes the wait: {report}"
    );

    let waited = json!({"url": slow, "rate": 100.0, "duration_ms": 300, "max_connections": 1, "pool_timeout_ms": 50});
    let report = run(&app, waited).await;
    let errors = &report["error_counts"];
    assert!(errors["pool_timeout"].as_u64().unwrap() >= 1, "{report}");
    assert!(errors.get("timeout").is_none(), "a pool wait is not a request timeout: {report}");
    app.stop().await;
}

async fn http2_multiplexes_requests_over_few_connections(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/100", target.address);
    let params = json!({"url": url, "count": 64, "max_connections": 2, "concurrency": 32, "http_version": "http2"});
    let report = run(&app, params).await;
    assert_eq!(report["status_counts"]["200"], 64);
    let stats = target.stats();
    assert_eq!(stats.connections_accepted, 2, "{stats:?}");
    // Over HTTP/1.1, two connections would need 32 rounds of 100 ms.
    assert!(report["elapsed_ms"].as_f64().unwrap() < 1500.0, "{report}");
    app.stop().await;
}

async fn closed_runs_can_be_bounded_by_time_and_keep_alive_can_be_off(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/10", target.address);
    let report = run(&app, json!({"url": url, "duration_ms": 300, "max_connections": 2})).await;
    assert_eq!(report["model"], "closed");
    let elapsed = report["elapsed_ms"].as_f64().unwrap();
    assert!((300.0..1000.0).contains(&elapsed), "{report}");
    assert!(report["requests"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(report["series"][0]["second"], 1);

    let before = target.stats().connections_accepted;
    let report = run(&app, json!({"url": url, "count": 10, "max_connections": 2, "keep_alive": false})).await;
    assert_eq!(report["status_counts"], json!({"200": 10}), "{report}");
    assert_eq!(report["connections_opened"], 10);
    assert_eq!(target.stats().connections_accepted - before, 10);
    assert!(report["bytes_sent"].as_u64().unwrap() > 10 * 20);
    app.stop().await;
}

/// The demo: 100 URLs, answers after 1–4 s, 20 connections, 3 s timeout. Each connection takes
/// the next URL when free and holds it for min(delay, timeout); the run lasts as long as the
/// busiest connection.
async fn the_classic_fanout_demo_matches_its_queueing_model(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let delays: Vec<u64> = (0..100).map(|i| asynclab::targets::http::seeded_delay(i, 1000, 4000)).collect();
    let mut free_at = [0u64; 20];
    for delay in &delays {
        let earliest = free_at.iter_mut().min().unwrap();
        *earliest += (*delay).min(3000);
    }
    let model_ms = *free_at.iter().max().unwrap() as f64;
    let expected_timeouts = delays.iter().filter(|delay| **delay > 3000).count() as u64;

    let url = format!("{}/targets/delay/1000-4000?seed={{i}}", target.address);
    let report = run(&app, json!({"url": url, "count": 100, "max_connections": 20, "timeout_ms": 3000})).await;
    let elapsed = report["elapsed_ms"].as_f64().unwrap();
    assert!((elapsed - model_ms).abs() / model_ms < 0.03, "took {elapsed} ms, the model says {model_ms} ms");
    assert_eq!(report["error_counts"]["timeout"], expected_timeouts);
    assert_eq!(report["status_counts"]["200"], 100 - expected_timeouts);
    app.stop().await;
}

crate::both_stores!(
    open_model_sends_on_schedule_and_counts_what_it_could_not,
    http2_multiplexes_requests_over_few_connections,
    closed_runs_can_be_bounded_by_time_and_keep_alive_can_be_off,
    the_classic_fanout_demo_matches_its_queueing_model,
);
