//! The dashboard's files over HTTP (security and cache headers, served without a token) and the
//! event stream's `access_token` query parameter, which no other route accepts.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

const TOKEN: &str = "dashboard-test-token";

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.expect("GET")
}

async fn dashboard_files_carry_security_and_cache_headers(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;

    for (path, content_type) in
        [("/", "text/html; charset=utf-8"), ("/ui/app.js", "text/javascript; charset=utf-8"), ("/ui/app.css", "text/css; charset=utf-8")]
    {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-cache");

        // Revalidation: the same ETag gets a 304 without a body.
        let etag = headers["etag"].clone();
        let revalidated = app.client.get(app.url(path)).header("if-none-match", etag.clone()).send().await.unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
        assert_eq!(revalidated.headers()["etag"], etag);
        assert!(revalidated.bytes().await.unwrap().is_empty());
    }

    let html = get(&app, "/").await.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/ui/app.js\"></script>"));

    let missing = get(&app, "/ui/nothing.js").await;
    assert!(missing.headers().contains_key("content-security-policy"));
    assert_problem(missing, 404, "file").await;
    app.stop().await;
}

async fn the_token_is_taken_from_the_query_on_the_event_stream_only(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--token", TOKEN]).await;
    let bearer = format!("Bearer {TOKEN}");

    // The dashboard's files hold no data: no token needed. The data does need one.
    assert_eq!(get(&app, "/").await.status(), 200);
    assert_eq!(get(&app, "/ui/app.js").await.status(), 200);
    assert_problem(get(&app, "/experiments").await, 401, "Authorization").await;

    let launched = app
        .client
        .post(app.url("/experiments/task-local"))
        .header("authorization", &bearer)
        .json(&json!({"tasks": 2, "max_delay_ms": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(launched.status(), 202);
    let id = launched.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    for _ in 0..6000 {
        let job: serde_json::Value =
            app.client.get(app.url(&format!("/jobs/{id}"))).header("authorization", &bearer).send().await.unwrap().json().await.unwrap();
        if job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let events = format!("/jobs/{id}/events");
    assert_problem(get(&app, &events).await, 401, "Authorization").await;
    assert_problem(get(&app, &format!("{events}?access_token=wrong")).await, 401, "Authorization").await;

    let streamed = get(&app, &format!("{events}?access_token={TOKEN}")).await;
    assert_eq!(streamed.status(), 200);
    let body = streamed.text().await.unwrap();
    assert!(body.starts_with("id: 1\n"), "{body}");
    assert!(body.contains("event: result") && body.contains("event: end"), "{body}");

    // Other query parameters still count once the token is taken out.
    let resumed = get(&app, &format!("{events}?after=1&access_token={TOKEN}")).await;
    assert_eq!(resumed.status(), 200);
    assert!(resumed.text().await.unwrap().starts_with("id: 2\n"));

    // Anywhere else the query token is refused.
    for path in ["/experiments", "/jobs", &format!("/jobs/{id}")] {
        assert_problem(get(&app, &format!("{path}?access_token={TOKEN}")).await, 401, "Authorization").await;
    }
    let cancel = app.client.post(app.url(&format!("/jobs/{id}/cancel?access_token={TOKEN}"))).send().await.unwrap();
    assert_problem(cancel, 401, "Authorization").await;
    app.stop().await;
}

async fn without_a_server_token_the_query_token_is_ignored(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("task-local", &json!({"tasks": 1})).await;
    app.wait_until_ended(&id).await;
    // A token kept by a browser from another server must not break the stream.
    let streamed = get(&app, &format!("/jobs/{id}/events?access_token=stale")).await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.text().await.unwrap().contains("event: end"));
    app.stop().await;
}

crate::both_stores!(
    dashboard_files_carry_security_and_cache_headers,
    the_token_is_taken_from_the_query_on_the_event_stream_only,
    without_a_server_token_the_query_token_is_ignored,
);
