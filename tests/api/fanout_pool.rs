//! http-fanout with `pool: shared`: requests go through the service's shared HTTP client, whose
//! connections stay open between jobs, so a second job to the same target opens none; the
//! default `pool: own` opens its own for every job. Counted at the target, not only in reports.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestCertificates, TestDatabase, TestTarget, assert_problem};

#[tokio::test]
async fn a_shared_pool_finds_its_connections_warm_in_the_next_job() {
    let target = TestTarget::start().await;
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let url = format!("{}/targets/hello/{{i}}", target.address);

    let first = json!({"url": url, "count": 200, "max_connections": 4, "pool": "shared"});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &first).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["status_counts"], json!({"200": 200}), "{job}");
    let opened = report["connections_opened"].as_u64().unwrap();
    assert!(opened >= 1, "{report}");
    assert_eq!(target.stats().connections_accepted, opened, "the report counts what the target accepted");
    assert_eq!(report["cpu"]["scope"], "shared_runtime", "{report}");
    assert!(report["cpu"]["total_ms"].as_f64().unwrap() > 0.0, "{report}");

    // Fewer workers than the first job left connections: each request finds one idle.
    let second = json!({"url": url, "count": 200, "max_connections": 2, "pool": "shared"});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &second).await).await;
    assert_eq!(job["result"]["status_counts"], json!({"200": 200}), "{job}");
    assert_eq!(job["result"]["connections_opened"], 0, "{job}");
    assert_eq!(target.stats().connections_accepted, opened, "no connection was opened for the second job");

    // The fan-out's own pool opens its connections for each job.
    let own = json!({"url": url, "count": 200, "max_connections": 2});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &own).await).await;
    assert_eq!(job["result"]["connections_opened"], 2, "{job}");
    assert_eq!(job["result"]["cpu"]["scope"], "dedicated_threads", "{job}");
    assert_eq!(target.stats().connections_accepted, opened + 2);
    assert_eq!(target.stats().requests_served, 600);
    app.stop().await;
}

#[tokio::test]
async fn a_shared_pool_sorts_failures_like_the_own_pool() {
    let certificates = TestCertificates::create();
    let untrusted = TestTarget::start_tls(&certificates).await;
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cases = [
        (format!("{}/targets/hello/{{i}}", untrusted.address), json!({"tls": 3})),
        (format!("http://127.0.0.1:{closed_port}/"), json!({"connect_refused": 3})),
    ];
    for (url, errors) in cases {
        let params = json!({"url": url, "count": 3, "max_connections": 1, "pool": "shared"});
        let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["error_counts"], errors, "{job}");
    }
    assert_eq!(untrusted.stats().requests_served, 0);

    // A request time limit cuts a slow answer, and the pool drops that connection.
    let slow = TestTarget::start().await;
    let params = json!({"url": format!("{}/targets/delay/2000", slow.address), "count": 2, "max_connections": 2,
                        "timeout_ms": 100, "pool": "shared"});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["result"]["error_counts"], json!({"timeout": 2}), "{job}");
    app.stop().await;
}

#[tokio::test]
async fn what_only_the_own_pool_does_is_refused_with_a_shared_pool() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let base = json!({"url": "http://127.0.0.1:9/", "count": 1, "pool": "shared"});
    for (field, value) in
        [("http_version", json!("http2")), ("keep_alive", json!(false)), ("busy_poll", json!("adaptive")), ("busy_poll", json!("batched"))]
    {
        let mut params = base.clone();
        params[field] = value;
        let problem = assert_problem(app.launch("http-fanout", &params).await, 422, field).await;
        assert!(problem.to_string().contains("pool: own"), "{problem}");
    }
    let outside = json!({"url": "http://192.0.2.1/", "count": 1, "pool": "shared"});
    assert_problem(app.launch("http-fanout", &outside).await, 422, "url").await;
    app.stop().await;
}
