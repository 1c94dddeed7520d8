//! http-fanout requests beyond a plain GET: weighted `targets` with their own method, headers
//! and body, `https` targets over HTTP/1.1 and HTTP/2 (ALPN) with a CA the server trusts, and
//! redirects, which are counted and never followed.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestCertificates, TestDatabase, TestTarget};

/// One request as the recording server saw it: method, path, `x-kind` header, body.
type Seen = (String, String, String, String);

/// An HTTP server that records every request it answers.
async fn recording_server() -> (String, Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = |State(seen): State<Arc<Mutex<Vec<Seen>>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let kind = headers.get("x-kind").and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
        let run = headers.get("x-run").and_then(|value| value.to_str().ok()).unwrap_or_default();
        seen.lock().unwrap().push((
            method.to_string(),
            uri.path().to_string(),
            format!("{kind}/{run}"),
            String::from_utf8_lossy(&body).into_owned(),
        ));
        "ok"
    };
    let router = axum::Router::new().fallback(record).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (address, seen, server)
}

#[tokio::test]
async fn weighted_targets_send_their_own_method_headers_and_body() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let (address, seen, server) = recording_server().await;
    let params = json!({
        "count": 400, "max_connections": 4,
        "headers": {"x-run": "r1", "x-kind": "read"},
        "targets": [
            {"url": format!("{address}/items/{{i}}"), "weight": 3},
            {"url": format!("{address}/items"), "weight": 1, "method": "POST",
             "headers": {"x-kind": "write", "content-type": "application/json"}, "body": "{\"name\":\"x\"}"}
        ]
    });
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["status_counts"], json!({"200": 400}));
    let seen = seen.lock().unwrap().clone();
    let reads: Vec<&Seen> = seen.iter().filter(|request| request.0 == "GET").collect();
    let writes: Vec<&Seen> = seen.iter().filter(|request| request.0 == "POST").collect();
    assert_eq!((reads.len(), writes.len()), (300, 100));
    assert!(reads.iter().all(|read| read.1.starts_with("/items/") && read.2 == "read/r1" && read.3.is_empty()), "{reads:?}");
    assert!(writes.iter().all(|write| write.1 == "/items" && write.2 == "write/r1" && write.3 == "{\"name\":\"x\"}"), "{writes:?}");
    // Request bytes include the bodies.
    assert!(job["result"]["bytes_sent"].as_u64().unwrap() > 100 * 12, "{job}");
    server.abort();
    app.stop().await;
}

#[tokio::test]
async fn credentials_and_managed_headers_are_refused_by_field() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let response = app
        .launch(
            "http-fanout",
            &json!({"count": 1, "targets": [{"url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer s3cr3t"}}]}),
        )
        .await;
    let problem = crate::helpers::assert_problem(response, 422, "targets[0].headers.Authorization").await;
    assert!(!problem.to_string().contains("s3cr3t"), "{problem}");
    let response = app.launch("http-fanout", &json!({"url": "http://127.0.0.1:9/", "count": 1, "headers": {"host": "x"}})).await;
    crate::helpers::assert_problem(response, 422, "headers.host").await;
    let response = app.launch("http-fanout", &json!({"url": "http://127.0.0.1:9/", "count": 1, "targets": []})).await;
    crate::helpers::assert_problem(response, 422, "url").await;
    app.stop().await;
}

#[tokio::test]
async fn https_targets_work_over_http1_and_negotiate_http2() {
    let certificates = TestCertificates::create();
    let target = TestTarget::start_tls(&certificates).await;
    let database = TestDatabase::new(Backend::Sqlite);
    let ca = certificates.ca_certificate.display().to_string();
    let app = TestApp::start(&database, &["--tls-ca-file", &ca]).await;
    let url = format!("{}/targets/hello/{{i}}", target.address);

    let http1 = json!({"url": url, "count": 200, "max_connections": 4});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &http1).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["status_counts"], json!({"200": 200}), "{job}");
    assert_eq!(job["result"]["connections_opened"], 4);

    let http2 = json!({"url": url, "count": 200, "max_connections": 2, "concurrency": 32, "http_version": "http2"});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &http2).await).await;
    assert_eq!(job["result"]["status_counts"], json!({"200": 200}), "{job}");
    assert_eq!(job["result"]["connections_opened"], 2, "{job}");
    assert_eq!(target.stats().requests_served, 400);
    app.stop().await;
}

#[tokio::test]
async fn an_untrusted_certificate_fails_each_request_as_tls() {
    let certificates = TestCertificates::create();
    let target = TestTarget::start_tls(&certificates).await;
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let params = json!({"url": format!("{}/targets/hello/{{i}}", target.address), "count": 5, "max_connections": 1});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["error_counts"], json!({"tls": 5}), "{job}");
    assert_eq!(target.stats().requests_served, 0);
    app.stop().await;
}

#[tokio::test]
async fn redirects_are_counted_and_never_followed() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let (landing, seen, landing_server) = recording_server().await;
    let location = format!("{landing}/landed");
    let redirect = |axum::extract::Path(code): axum::extract::Path<u16>| async move {
        (axum::http::StatusCode::from_u16(code).unwrap(), [("location", location)])
    };
    let router = axum::Router::new().route("/moved/{code}", axum::routing::any(redirect));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let redirecting = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let codes = [301, 302, 303, 307, 308];
    let targets: Vec<_> = codes.iter().map(|code| json!({"url": format!("{address}/moved/{code}")})).collect();
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &json!({"count": 50, "targets": targets})).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let counts = job["result"]["status_counts"].as_object().unwrap();
    let mut answered: Vec<&str> = counts.keys().map(String::as_str).collect();
    answered.sort();
    assert_eq!(answered, ["301", "302", "303", "307", "308"], "{job}");
    assert_eq!(counts.values().filter_map(|count| count.as_u64()).sum::<u64>(), 50, "{job}");
    assert!(seen.lock().unwrap().is_empty(), "no request followed a redirect");
    redirecting.abort();
    landing_server.abort();
    app.stop().await;
}
