//! Job labels: given at launch, shown on every job representation, filtered on (AND, with the
//! kind and status filters and paging), and validated with problems naming the label.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

crate::both_stores!(labels_round_trip_and_filter, bad_labels_and_filters_are_422);

fn ids(page: &Value) -> Vec<String> {
    page["jobs"].as_array().unwrap().iter().map(|job| job["id"].as_str().unwrap().to_string()).collect()
}

async fn labels_round_trip_and_filter(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let launch = |labels: Value| {
        let app = &app;
        async move { app.launch_ok("task-local", &json!({"tasks": 1, "max_delay_ms": 1, "labels": labels})).await }
    };
    let main_a = launch(json!({"branch": "main", "commit": "aaa1111"})).await;
    let feature = launch(json!({"branch": "feature/x", "commit": "bbb2222"})).await;
    let main_b = launch(json!({"branch": "main", "commit": "ccc3333", "env": "staging"})).await;
    let unlabelled = app.launch_ok("task-local", &json!({"tasks": 1, "max_delay_ms": 1})).await;

    let shown = app.job(&main_b).await;
    assert_eq!(shown["labels"], json!({"branch": "main", "commit": "ccc3333", "env": "staging"}));
    assert_eq!(app.job(&unlabelled).await["labels"], json!({}));
    assert_eq!(app.wait_until_ended(&feature).await["labels"]["branch"], "feature/x");

    let main = app.get_json("/jobs?label=branch:main").await;
    assert_eq!(ids(&main), [main_b.clone(), main_a.clone()]);
    assert_eq!(main["jobs"][1]["labels"]["commit"], "aaa1111", "listed jobs carry their labels");
    assert_eq!(ids(&app.get_json("/jobs?label=branch:main&label=env:staging").await), [main_b.as_str()]);
    assert_eq!(ids(&app.get_json("/jobs?label=branch:feature/x&kind=task-local").await), [feature.as_str()]);
    assert!(ids(&app.get_json("/jobs?label=branch:main&kind=http-fanout").await).is_empty());

    let first = app.get_json("/jobs?label=branch:main&limit=1").await;
    assert_eq!(ids(&first), [main_b.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get_json(&format!("/jobs?label=branch:main&limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&second), [main_a.as_str()]);
    assert!(second["next_cursor"].is_null());

    for id in [&main_a, &main_b] {
        app.wait_until_ended(id).await;
    }
    app.wait_until_ended(&unlabelled).await;
    let done = app.get_json("/jobs?label=branch:main&status=succeeded").await;
    assert_eq!(ids(&done), [main_b, main_a]);
    app.stop().await;
}

async fn bad_labels_and_filters_are_422(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let refused = app.launch("task-local", &json!({"tasks": 1, "labels": {"api_token": "x"}})).await;
    let body = assert_problem(refused, 422, "labels.api_token").await;
    assert!(body.to_string().contains("credential"), "{body}");
    let refused = app.launch("task-local", &json!({"tasks": 1, "labels": {"Cookie": "a"}})).await;
    assert_problem(refused, 422, "labels.Cookie").await;
    let refused = app.launch("task-local", &json!({"tasks": 0, "labels": {"branch": "has space"}})).await;
    let body = assert_problem(refused, 422, "labels.branch").await;
    assert!(body.to_string().contains("\"tasks\""), "params and labels are reported together: {body}");
    let many: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_problem(app.launch("task-local", &json!({"tasks": 1, "labels": many})).await, 422, "labels").await;
    assert_problem(app.launch("task-local", &json!({"tasks": 1, "labels": ["a"]})).await, 422, "labels").await;

    let response = app.client.get(app.url("/jobs?label=branch")).send().await.unwrap();
    assert_problem(response, 422, "label").await;
    let page = app.get_json("/jobs").await;
    assert!(page["jobs"].as_array().unwrap().is_empty(), "no refused launch was stored");
    app.stop().await;
}
