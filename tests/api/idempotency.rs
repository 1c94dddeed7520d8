//! `Idempotency-Key`: a repeated launch returns the job the first one created.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

async fn a_repeated_key_returns_the_same_job(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let params = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    let launch = |params: serde_json::Value| {
        app.client.post(app.url("/experiments/structured-concurrency")).header("Idempotency-Key", "build-42").json(&params).send()
    };
    let first = launch(params.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();

    let again = launch(params.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let all = app.get_json("/jobs").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1);

    let other = launch(json!({"mode": "join_all", "tasks": [{"name": "a", "delay_ms": 1}]})).await.unwrap();
    assert_problem(other, 409, "Idempotency-Key").await;
    app.stop().await;
}

async fn concurrent_launches_with_one_key_create_one_job(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let params = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    let launches = (0..8)
        .map(|_| app.client.post(app.url("/experiments/structured-concurrency")).header("Idempotency-Key", "same").json(&params).send());
    let responses = futures_util::future::join_all(launches).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        let job: serde_json::Value = response.json().await.unwrap();
        ids.insert(job["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    app.stop().await;
}

crate::both_stores!(a_repeated_key_returns_the_same_job, concurrent_launches_with_one_key_create_one_job,);
