//! http-fanout against a target of its own: connection cap, rate cap, cancellation.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget};

async fn max_connections_is_never_exceeded(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/0-2?seed={{i}}", target.address);
    let id = app.launch_ok("http-fanout", &json!({"url": url, "count": 3000, "max_connections": 5})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["status_counts"]["200"], 3000);
    let stats = target.stats();
    assert_eq!(stats.requests_served, 3000);
    assert_eq!(stats.connections_accepted, 5, "{stats:?}");
    assert!(stats.connections_peak <= 5, "{stats:?}");
    assert_eq!(job["result"]["connections_opened"], 5);
}

async fn a_url_list_cycles_and_counts_statuses_and_errors(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let urls = [
        format!("{}/targets/status/200", target.address),
        format!("{}/targets/status/503", target.address),
        format!("http://127.0.0.1:{closed_port}/refused"),
    ];
    let id = app.launch_ok("http-fanout", &json!({"urls": urls, "count": 9, "max_connections": 1})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded");
    let report = &job["result"];
    assert_eq!(report["status_counts"], json!({"200": 3, "503": 3}));
    assert_eq!(report["error_counts"], json!({"connect_refused": 3}));
    assert_eq!(report["requests"], 9);
}

async fn max_per_second_spaces_request_starts(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/hello/{{i}}", target.address);
    let id = app.launch_ok("http-fanout", &json!({"url": url, "count": 11, "max_connections": 4, "max_per_second": 20.0})).await;
    let job = app.wait_until_ended(&id).await;
    // 11 starts at 20 per second: the last may not start before 500 ms.
    assert!(job["result"]["elapsed_ms"].as_f64().unwrap() >= 500.0, "{job}");
    assert_eq!(job["result"]["status_counts"]["200"], 11);
}

async fn request_timeouts_are_counted_as_such(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/2000", target.address);
    let id = app.launch_ok("http-fanout", &json!({"url": url, "count": 4, "max_connections": 4, "timeout_ms": 100})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["result"]["error_counts"], json!({"timeout": 4}));
    assert_eq!(job["result"]["responses"], 0);
}

async fn cancelling_a_running_fanout_stops_its_requests(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/5?seed={{i}}", target.address);
    let id = app.launch_ok("http-fanout", &json!({"url": url, "count": 1_000_000, "max_connections": 4})).await;
    while target.stats().requests_served < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    let job: serde_json::Value = cancelled.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["kind"], "cancelled");
    let served_at_cancel = target.stats().requests_served;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = target.stats();
    assert!(stats.requests_served <= served_at_cancel + 4, "requests went on after cancel: {stats:?}");
    assert_eq!(stats.connections_open, 0, "the fan-out's connections were closed");
    let events = app.all_events(&id, None).await;
    assert_eq!(events.last().unwrap().data["status"], "cancelled");
    app.stop().await;
}

async fn missed_thresholds_fail_the_job_and_keep_the_report(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/5", target.address);
    let strict = json!({"url": url, "count": 20, "max_connections": 4,
                        "thresholds": {"p99_ms": 1.0, "error_rate": 0.0, "min_rps": 1.0}});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &strict).await).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "thresholds");
    assert!(job["error"]["message"].as_str().unwrap().starts_with("thresholds missed: p99_ms: "), "{job}");
    let verdicts: Vec<(&str, bool)> = job["result"]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(verdicts, [("p99_ms", false), ("error_rate", true), ("min_rps", true)]);
    assert_eq!(job["result"]["status_counts"]["200"], 20);

    let lenient = json!({"url": url, "count": 20, "max_connections": 4, "thresholds": {"p99_ms": 10000.0}});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &lenient).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["thresholds"][0]["passed"], true);

    let failing_statuses = json!({"url": format!("{}/targets/status/500", target.address), "count": 10,
                                  "thresholds": {"error_rate": 0.5}});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &failing_statuses).await).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["result"]["error_rate"], 1.0);
    app.stop().await;
}

crate::both_stores!(
    missed_thresholds_fail_the_job_and_keep_the_report,
    max_connections_is_never_exceeded,
    a_url_list_cycles_and_counts_statuses_and_errors,
    max_per_second_spaces_request_starts,
    request_timeouts_are_counted_as_such,
    cancelling_a_running_fanout_stops_its_requests,
);
