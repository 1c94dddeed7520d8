//! `GET /metrics`: the Prometheus series after real jobs, event streams and requests, and the
//! token rule.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// One sample: the series name, its labels and its value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_string(), value.trim_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels, value.parse().expect("a numeric value"))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app.client.get(app.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    parse(&response.text().await.unwrap())
}

/// The value of the series `name` with exactly `labels`, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    samples.iter().find(|(series, labels, _)| series == name && *labels == wanted).map(|(_, _, value)| *value)
}

async fn jobs_events_requests_and_fanout_traffic_are_measured(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--max-running-jobs", "1"]).await;
    let fanout = app.launch_ok("http-fanout", &json!({"url": app.url("/targets/hello/{i}"), "count": 25, "max_connections": 2})).await;
    let job = app.wait_until_ended(&fanout).await;
    assert_eq!(job["status"], "succeeded");
    let stored = app.all_events(&fanout, None).await.iter().filter(|event| event.id.is_some()).count();
    let _ = app.client.get(app.url("/no/such/route")).send().await.unwrap();

    let samples = scrape(&app).await;
    let finished = [("kind", "http-fanout"), ("status", "succeeded")];
    assert_eq!(value(&samples, "asynclab_jobs_finished_total", &finished), Some(1.0));
    assert_eq!(value(&samples, "asynclab_jobs_running", &[("kind", "http-fanout")]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_jobs_queued", &[]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_events_written_total", &[]), Some(stored as f64));
    assert_eq!(value(&samples, "asynclab_fanout_requests_total", &[]), Some(25.0));
    assert_eq!(value(&samples, "asynclab_fanout_bytes_sent_total", &[]), job["result"]["bytes_sent"].as_f64());
    assert_eq!(value(&samples, "asynclab_fanout_bytes_received_total", &[]), job["result"]["bytes_received"].as_f64());
    assert!(job["result"]["bytes_received"].as_f64().unwrap() > 0.0);
    let launch = [("method", "POST"), ("route", "/experiments/{kind}")];
    assert_eq!(value(&samples, "asynclab_http_requests_total", &[launch[0], launch[1], ("status", "202")]), Some(1.0));
    assert_eq!(value(&samples, "asynclab_http_request_duration_seconds_count", &launch), Some(1.0));
    assert_eq!(value(&samples, "asynclab_http_request_duration_seconds_bucket", &[launch[0], launch[1], ("le", "+Inf")]), Some(1.0));
    let polls = value(&samples, "asynclab_http_requests_total", &[("method", "GET"), ("route", "/jobs/{id}"), ("status", "200")]);
    assert!(polls.is_some_and(|polls| polls >= 1.0), "{polls:?}");
    assert_eq!(value(&samples, "asynclab_http_requests_total", &[("method", "GET"), ("route", "unmatched"), ("status", "404")]), Some(1.0));
    assert!(samples.iter().all(|(name, labels, _)| name != "asynclab_http_requests_total" || !labels["route"].starts_with("/targets/")));

    // A running job with a stream open, and one queued behind it (one runner slot).
    let sleeper = json!({"processes": [{"program": "sleep", "args": ["30"]}]});
    let running = app.launch_ok("subprocess", &sleeper).await;
    app.wait_for(&running, |status| status == "running").await;
    let queued = app.launch_ok("subprocess", &sleeper).await;
    let mut stream = app.open_events(&running, None).await;
    assert!(stream.next().await.is_some());
    let samples = scrape(&app).await;
    assert_eq!(value(&samples, "asynclab_jobs_running", &[("kind", "subprocess")]), Some(1.0));
    assert_eq!(value(&samples, "asynclab_jobs_queued", &[]), Some(1.0));
    assert_eq!(value(&samples, "asynclab_sse_subscribers", &[]), Some(1.0));

    for id in [&queued, &running] {
        let response = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    while stream.next().await.is_some() {}
    drop(stream);
    let mut samples = scrape(&app).await;
    for _ in 0..500 {
        if value(&samples, "asynclab_sse_subscribers", &[]) == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        samples = scrape(&app).await;
    }
    assert_eq!(value(&samples, "asynclab_sse_subscribers", &[]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_jobs_finished_total", &[("kind", "subprocess"), ("status", "cancelled")]), Some(2.0));
    assert_eq!(value(&samples, "asynclab_jobs_running", &[("kind", "subprocess")]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_jobs_queued", &[]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_jobs_finished_total", &finished), Some(1.0), "another app's jobs never show here");
    app.stop().await;
}

async fn metrics_need_the_token(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--token", "metrics-token"]).await;
    let refused = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = app.client.get(app.url("/metrics")).bearer_auth("metrics-token").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    let samples = parse(&allowed.text().await.unwrap());
    assert_eq!(value(&samples, "asynclab_jobs_queued", &[]), Some(0.0));
    assert_eq!(value(&samples, "asynclab_http_requests_total", &[("method", "GET"), ("route", "/metrics"), ("status", "401")]), Some(1.0));
    app.stop().await;
}

crate::both_stores!(jobs_events_requests_and_fanout_traffic_are_measured, metrics_need_the_token);
