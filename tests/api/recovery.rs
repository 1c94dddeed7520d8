//! Restarts: jobs a dead process left running become interrupted (at once when it restarts
//! under its replica id, after their lease otherwise, or queued again when restartable), and
//! queued ones run.

use std::time::Duration;

use asynclab::jobs::JobStatus;
use asynclab::store::{Claimant, NewJob};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// The replica id the restarted app runs under, and the dead process claimed under.
const RESTARTED_REPLICA: &str = "restarted-replica";

fn claimant(replica: &str, lease_ms: u64) -> Claimant {
    Claimant { replica: replica.into(), lease: Duration::from_millis(lease_ms) }
}

fn new_job(params: serde_json::Value) -> NewJob {
    NewJob {
        id: uuid::Uuid::now_v7(),
        kind: "structured-concurrency".into(),
        params,
        timeout_ms: 60_000,
        idempotency_key: None,
        parent_id: None,
        max_attempts: 1,
        launched_by: None,
        labels: Default::default(),
        gate: None,
        webhook_url: None,
    }
}

async fn a_restart_interrupts_jobs_left_running_and_runs_queued_ones(backend: Backend) {
    let database = TestDatabase::new(backend);
    // A process that claimed a job and died: the row says running, nothing runs it.
    let store = database.open_store().await;
    let params = json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]});
    let orphan = store.insert_job(new_job(params.clone())).await.unwrap().job;
    let (claimed, _) = store.claim_next(&claimant(RESTARTED_REPLICA, 600_000)).await.unwrap().unwrap();
    assert_eq!(claimed.id, orphan.id);
    let waiting = store.insert_job(new_job(params)).await.unwrap().job;
    store.close().await;

    // Restarted under the same id, it knows at once that the job's lease is its own and dead.
    let app = TestApp::start(&database, &["--replica-id", RESTARTED_REPLICA]).await;
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

/// A job claimed by a replica that died and never came back.
async fn claim_as_dead_replica(database: &TestDatabase, max_attempts: u32) -> String {
    let store = database.open_store().await;
    let mut job = new_job(json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]}));
    job.max_attempts = max_attempts;
    let job = store.insert_job(job).await.unwrap().job;
    let (claimed, _) = store.claim_next(&claimant("dead-replica", 300)).await.unwrap().unwrap();
    assert_eq!(claimed.id, job.id);
    store.close().await;
    job.id.to_string()
}

// Leases matter where replicas share the store: PostgreSQL. A SQLite store has one process,
// which interrupts every job left running when it starts.

#[tokio::test]
async fn a_dead_replicas_job_is_interrupted_when_its_lease_expires() {
    let database = TestDatabase::new(Backend::Postgres);
    let id = claim_as_dead_replica(&database, 1).await;
    let app = TestApp::start(&database, &["--lease-ms", "900"]).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "interrupted");
    assert_eq!(job["error"]["kind"], "interrupted");
    assert!(job["error"]["message"].as_str().unwrap().contains("dead-replica"), "{job}");
    let statuses: Vec<String> =
        app.all_events(&id, None).await.iter().filter_map(|event| event.data["data"]["status"].as_str().map(str::to_owned)).collect();
    assert_eq!(statuses, ["queued", "interrupted"]);
    app.stop().await;
}

#[tokio::test]
async fn a_dead_replicas_restartable_job_runs_again_elsewhere() {
    let database = TestDatabase::new(Backend::Postgres);
    let id = claim_as_dead_replica(&database, 3).await;
    let app = TestApp::start(&database, &["--lease-ms", "900", "--replica-id", "rescuer"]).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["replica"], "rescuer");
    let events = app.all_events(&id, None).await;
    let statuses: Vec<&str> = events.iter().filter_map(|event| event.data["data"]["status"].as_str()).collect();
    assert_eq!(statuses, ["queued", "queued", "running", "succeeded"]);
    assert_eq!(events[1].data["data"]["error"]["kind"], "requeued");
    app.stop().await;
}

crate::both_stores!(a_restart_interrupts_jobs_left_running_and_runs_queued_ones, stored_results_and_events_survive_a_restart,);
