//! The `task-local` experiment through the API: isolation per task, and what spawned tasks do
//! and do not inherit.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

async fn task_locals_are_isolated_and_only_propagated_explicitly(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("task-local", &json!({"tasks": 100, "max_delay_ms": 3})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(
        report["counts"],
        json!({"isolated_ok": 100, "same_task_ok": 100, "spawned_inherited": 0, "spawned_access_errors": 100,
               "propagated_ok": 100, "span_current_ok": 100, "span_inherited": 0, "span_propagated_ok": 100})
    );
    assert_eq!(report["access_error"], "task-local value not set");
    assert_eq!(report["interleaved"], true);
    let table = report["table"].as_array().unwrap();
    assert_eq!(table.len(), 100);
    assert_eq!(table[41]["request_id"], "req-0042");
    assert_eq!(table[41]["read_back"], "req-0042");
    assert_eq!(table[41]["spawned_sees"], serde_json::Value::Null);
    assert_eq!(table[41]["propagated_sees"], "req-0042");
    assert_eq!(app.job(&id).await["progress"]["total"], 100);
    app.stop().await;
}

async fn task_local_parameters_are_bounded(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    assert_problem(app.launch("task-local", &json!({"tasks": 0})).await, 422, "tasks").await;
    assert_problem(app.launch("task-local", &json!({"tasks": 2, "max_delay_ms": 101})).await, 422, "max_delay_ms").await;
    let id = app.launch_ok("task-local", &json!({})).await;
    assert_eq!(app.wait_until_ended(&id).await["result"]["tasks"], 8);
    app.stop().await;
}

crate::both_stores!(task_locals_are_isolated_and_only_propagated_explicitly, task_local_parameters_are_bounded);
