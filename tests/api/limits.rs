//! Limits on callers: launches per client, event streams per job, and cross-origin access.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget};

/// Asserts a `429` problem+json response and returns its body.
async fn too_many_requests(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:asynclab:problem:too-many-requests");
    problem
}

#[tokio::test]
async fn a_client_over_its_launch_rate_gets_429_with_retry_after() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--launch-rate", "0.5", "--launch-burst", "2"]).await;
    let params = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    for _ in 0..2 {
        assert_eq!(app.launch("structured-concurrency", &params).await.status(), 202);
    }
    let refused = app.launch("structured-concurrency", &params).await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = too_many_requests(refused).await;
    assert!(problem["detail"].as_str().unwrap().contains("127.0.0.1"), "{problem}");
    // Reading is never limited.
    assert_eq!(app.client.get(app.url("/jobs")).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_job_accepts_a_bounded_number_of_event_streams() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--max-subscribers-per-job", "2"]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/3000", target.address);
    let id = app.launch_ok("http-fanout", &json!({"url": url, "count": 1})).await;
    let first = app.open_events(&id, None).await;
    let _second = app.open_events(&id, None).await;
    let refused = app.client.get(app.url(&format!("/jobs/{id}/events"))).send().await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "5");
    too_many_requests(refused).await;
    drop(first);
    // The server notices the closed stream when it next writes to it (a keep-alive at the latest).
    let mut reopened = false;
    for _ in 0..100 {
        let response = app.client.get(app.url(&format!("/jobs/{id}/events"))).send().await.unwrap();
        if response.status() == 200 {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "the closed stream's place was never freed");
    app.stop().await;
}

#[tokio::test]
async fn cross_origin_access_is_off_unless_an_origin_is_configured() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/experiments/http-fanout"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let database = TestDatabase::new(Backend::Sqlite);
    let closed = TestApp::start(&database, &[]).await;
    let response = preflight(&closed, "https://dash.example").await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
    closed.stop().await;

    let database = TestDatabase::new(Backend::Sqlite);
    let open = TestApp::start(&database, &["--cors-origins", "https://dash.example", "--token", "t0ken"]).await;
    let allowed = preflight(&open, "https://dash.example").await.unwrap();
    assert_eq!(allowed.status(), 200, "preflights are answered before the token check");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://dash.example");
    assert!(allowed.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let other = preflight(&open, "https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let unauthenticated = open.client.get(open.url("/jobs")).header("origin", "https://dash.example").send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401, "CORS never replaces the token");
    open.stop().await;
}
