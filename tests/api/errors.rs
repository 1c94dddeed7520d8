//! Every caller mistake gets a problem+json answer naming the field, never a 500.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

async fn caller_mistakes_name_the_field_and_the_reason(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let hello = app.url("/targets/hello/{i}");

    let unknown_kind = app.launch("no-such-kind", &json!({})).await;
    let body = assert_problem(unknown_kind, 404, "kind").await;
    assert!(body["detail"].as_str().unwrap().contains("http-fanout"), "lists the known kinds: {body}");

    let malformed = app.client.post(app.url("/experiments/http-fanout")).body("{\"url\": ").send().await.unwrap();
    assert_problem(malformed, 400, "body").await;

    assert_problem(app.launch("http-fanout", &json!({"url": hello, "count": 0})).await, 422, "count").await;
    assert_problem(app.launch("http-fanout", &json!({"url": hello})).await, 422, "count").await;
    assert_problem(app.launch("http-fanout", &json!({"url": hello, "count": 1, "bogus": 1})).await, 422, "bogus").await;
    assert_problem(app.launch("http-fanout", &json!({"url": hello, "count": "many"})).await, 422, "count").await;
    assert_problem(app.launch("http-fanout", &json!({"url": "http://192.0.2.10/x", "count": 1})).await, 422, "url").await;
    assert_problem(app.launch("http-fanout", &json!({"urls": ["http://127.0.0.1/", "not a url"]})).await, 422, "urls[1]").await;
    let many = app.launch("http-fanout", &json!({"url": hello, "count": 5, "max_connections": 0, "timeout_ms": 0})).await;
    let body = assert_problem(many, 422, "max_connections").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "every problem at once: {body}");
    let tasks = json!({"mode": "join_set", "tasks": [{"name": "a", "delay_ms": 1}, {"name": "a", "delay_ms": 1}]});
    assert_problem(app.launch("structured-concurrency", &tasks).await, 422, "tasks[1].name").await;
    assert_problem(app.launch("structured-concurrency", &json!({"mode": "nope", "tasks": []})).await, 422, "mode").await;
    let quick = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    let bad_timeout = app.client.post(app.url("/experiments/structured-concurrency?timeout_ms=0")).json(&quick).send().await.unwrap();
    assert_problem(bad_timeout, 422, "timeout_ms").await;
    let unknown_query = app.client.post(app.url("/experiments/structured-concurrency?retries=2")).json(&quick).send().await.unwrap();
    assert_problem(unknown_query, 400, "retries").await;

    let huge = "x".repeat(2 * 1024 * 1024);
    let too_large = app.client.post(app.url("/experiments/http-fanout")).body(huge).send().await.unwrap();
    assert_problem(too_large, 413, "body").await;

    let missing = uuid::Uuid::now_v7();
    assert_problem(app.client.get(app.url(&format!("/jobs/{missing}"))).send().await.unwrap(), 404, "id").await;
    assert_problem(app.client.get(app.url("/jobs/not-a-uuid")).send().await.unwrap(), 400, "id").await;
    assert_problem(app.client.post(app.url(&format!("/jobs/{missing}/cancel"))).send().await.unwrap(), 404, "id").await;
    assert_problem(app.client.get(app.url(&format!("/jobs/{missing}/events"))).send().await.unwrap(), 404, "id").await;
    assert_problem(app.client.get(app.url("/jobs?status=bogus")).send().await.unwrap(), 400, "status").await;
    assert_problem(app.client.get(app.url("/jobs?limit=0")).send().await.unwrap(), 400, "limit").await;
    assert_problem(app.client.get(app.url("/jobs?cursor=zzz")).send().await.unwrap(), 400, "cursor").await;
    assert_problem(app.client.delete(app.url("/jobs")).send().await.unwrap(), 405, "method").await;
    assert_problem(app.client.get(app.url("/no/such/route")).send().await.unwrap(), 404, "path").await;

    let id = app.launch_ok("structured-concurrency", &quick).await;
    app.wait_until_ended(&id).await;
    let bad_resume = app.client.get(app.url(&format!("/jobs/{id}/events"))).header("Last-Event-ID", "x").send().await.unwrap();
    assert_problem(bad_resume, 400, "Last-Event-ID").await;
    let cancel_finished = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    let body = assert_problem(cancel_finished, 409, "status").await;
    assert!(body["detail"].as_str().unwrap().contains("succeeded"));
    app.stop().await;
}

async fn a_body_sent_as_a_form_by_curl_is_still_read_as_json(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let body = r#"{"mode":"settled","tasks":[{"name":"a","delay_ms":1}]}"#;
    let response = app
        .client
        .post(app.url("/experiments/structured-concurrency"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.stop().await;
}

async fn health_and_readiness_answer(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"], "ok");
    let port = app.address.rsplit(':').next().unwrap();
    assert!(ready["replica"].as_str().unwrap().ends_with(&format!(":{port}")), "default replica id HOSTNAME:PORT: {ready}");
    let catalogue = app.get_json("/experiments").await;
    let kinds: Vec<&str> = catalogue.as_array().unwrap().iter().map(|kind| kind["kind"].as_str().unwrap()).collect();
    let needing_nothing = ["http-fanout", "structured-concurrency", "subprocess", "task-local"];
    for expected in needing_nothing {
        assert!(kinds.contains(&expected), "{expected} missing from {kinds:?}");
    }
    for kind in catalogue.as_array().unwrap() {
        assert_eq!(kind["available"], kind["unavailable_reason"].is_null(), "{kind}");
        if needing_nothing.contains(&kind["kind"].as_str().unwrap()) {
            assert_eq!(kind["available"], true, "{kind}");
        }
        assert_eq!(kind["params_schema"]["type"], "object");
        assert!(kind["example"].is_object());
    }
    app.stop().await;
}

async fn binding_off_loopback_without_a_token_refuses_to_start(backend: Backend) {
    let database = TestDatabase::new(backend);
    let mut config = crate::helpers::test_config(&database.url, &[]);
    config.bind = "0.0.0.0:0".parse().unwrap();
    let error = asynclab::startup::Application::build(config).await.err().expect("refused");
    assert!(error.to_string().contains("ASYNCLAB_TOKEN"), "{error}");
}

async fn a_token_guards_every_route_but_healthz(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--token", "s3cret-token"]).await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_problem(app.client.get(app.url("/jobs")).send().await.unwrap(), 401, "Authorization").await;
    let wrong = app.client.get(app.url("/jobs")).bearer_auth("s3cret-tokeN").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.client.get(app.url("/jobs")).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(right.status(), 200);
    app.stop().await;
}

crate::both_stores!(
    caller_mistakes_name_the_field_and_the_reason,
    a_body_sent_as_a_form_by_curl_is_still_read_as_json,
    health_and_readiness_answer,
    binding_off_loopback_without_a_token_refuses_to_start,
    a_token_guards_every_route_but_healthz,
);
