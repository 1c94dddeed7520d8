//! Restarts: jobs a dead process left running become interrupted, queued ones run.

use asynclab::jobs::JobStatus;
use asynclab::store::NewJob;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};

fn new_job(params: serde_json::Value) -> NewJob {
    NewJob {
        id: uuid::Uuid::now_v7(),
        kind: "structured-concurrency".into(),
        params,
        timeout_ms: 60_000,
        idempotency_key: None,
    }
}

async fn a_restart_interrupts_jobs_left_running_and_runs_queued_ones(backend: Backend) {
    let database = TestDatabase::new(backend);
    // A process that claimed a job and died: the row says running, nothing runs it.
    let store = database.open_store().await;
    let params = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    let orphan = store.insert_job(new_job(params.clone())).await.unwrap().job;
    let (claimed, _) = store.claim_next().await.unwrap().unwrap();
    assert_eq!(claimed.id, orphan.id);
    let waiting = store.insert_job(new_job(params)).await.unwrap().job;
    store.close().await;

    let app = TestApp::start(&database, &[]).await;
    let orphan_id = orphan.id.to_string();
    let interrupted = app.job(&orphan_id).await;
    assert_eq!(interrupted["status"], "interrupted");
    assert_eq!(interrupted["error"]["kind"], "interrupted");
    let events = app.all_events(&orphan_id, None).await;
    let statuses: Vec<&str> = events.iter().filter_map(|event| event.data["data"]["status"].as_str()).collect();
    assert_eq!(statuses, ["queued", "interrupted"]);
    assert_eq!(events.last().unwrap().data["status"], "interrupted");

    let ran = app.wait_until_ended(&waiting.id.to_string()).await;
    assert_eq!(ran["status"], "succeeded");
    app.stop().await;
}

async fn stored_results_and_events_survive_a_restart(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "join_all", "tasks": [{"name": "a", "delay_ms": 1}]})).await;
    app.wait_until_ended(&id).await;
    let before = app.all_events(&id, None).await;
    let job_before = app.job(&id).await;
    app.stop().await;

    let app = TestApp::start(&database, &[]).await;
    assert_eq!(app.all_events(&id, None).await, before);
    assert_eq!(app.job(&id).await, job_before);
    let store = app.state.store.clone();
    let job = store.get_job(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    app.stop().await;
}

crate::both_stores!(
    a_restart_interrupts_jobs_left_running_and_runs_queued_ones,
    stored_results_and_events_survive_a_restart,
);
