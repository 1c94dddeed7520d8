//! Event streams: resuming with Last-Event-ID, replaying finished jobs.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// Twenty tasks settling 40 ms apart: a job that emits events for about a second.
fn staggered_tasks() -> serde_json::Value {
    let tasks: Vec<_> = (0..20).map(|i| json!({"name": format!("t{i}"), "delay_ms": 40 * (i + 1)})).collect();
    json!({"mode": "settled", "tasks": tasks})
}

async fn resuming_mid_job_with_last_event_id_yields_exactly_the_missing_events(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("structured-concurrency", &staggered_tasks()).await;

    let mut first = app.open_events(&id, None).await;
    let mut received = Vec::new();
    while received.len() < 25 {
        received.push(first.next().await.expect("events before the job ends"));
    }
    drop(first);
    assert_eq!(app.job(&id).await["status"], "running", "the resume happens mid-job");

    let last_seen = received.last().unwrap().id.unwrap();
    let rest = app.all_events(&id, Some(last_seen)).await;
    assert_eq!(rest.last().unwrap().event, "end");
    received.extend(rest.into_iter().filter(|event| event.id.is_some()));

    let full = app.all_events(&id, None).await;
    let stored: Vec<_> = full.iter().filter(|event| event.id.is_some()).cloned().collect();
    assert_eq!(received, stored, "the two connections together equal the stored sequence");
    let ids: Vec<i64> = stored.iter().map(|event| event.id.unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    // queued, running, 20 starts, 20 settles, result, succeeded
    assert_eq!(ids.len(), 44);
    app.stop().await;
}

async fn a_finished_jobs_stream_replays_and_ends_at_once(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]})).await;
    app.wait_until_ended(&id).await;
    let events = app.all_events(&id, None).await;
    let kinds: Vec<&str> = events.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(kinds, ["status", "status", "progress", "progress", "result", "status", "end"]);
    let after = app.all_events(&id, Some(4)).await;
    assert_eq!(after.iter().map(|event| event.id).collect::<Vec<_>>(), [Some(5), Some(6), None]);
    let by_query = app.client.get(app.url(&format!("/jobs/{id}/events?after=5"))).send().await.unwrap().text().await.unwrap();
    assert!(by_query.starts_with("id: 6\n"), "{by_query}");
    app.stop().await;
}

async fn a_stream_opened_on_a_queued_job_follows_it_to_the_end(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--max-running-jobs", "1"]).await;
    let blocker = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "b", "delay_ms": 60000}]})).await;
    app.wait_for(&blocker, |status| status == "running").await;
    let queued = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "q", "delay_ms": 5}]})).await;
    let mut stream = app.open_events(&queued, None).await;
    assert_eq!(stream.next().await.unwrap().data["data"]["status"], "queued");
    app.client.post(app.url(&format!("/jobs/{blocker}/cancel"))).send().await.unwrap();
    let mut statuses = Vec::new();
    while let Some(event) = stream.next().await {
        if event.event == "status" {
            statuses.push(event.data["data"]["status"].as_str().unwrap().to_string());
        }
        if event.event == "end" {
            break;
        }
    }
    assert_eq!(statuses, ["running", "succeeded"]);
    app.stop().await;
}

async fn many_jobs_emitting_at_once_lose_no_events(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--max-running-jobs", "16"]).await;
    let tasks: Vec<_> = (0..50).map(|i| json!({"name": format!("t{i}"), "delay_ms": i % 7})).collect();
    let params = json!({"mode": "settled", "tasks": tasks});
    let launches = (0..16).map(|_| app.launch_ok("structured-concurrency", &params));
    let ids = futures_util::future::join_all(launches).await;
    for id in &ids {
        let job = app.wait_until_ended(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let events = app.all_events(id, None).await;
        let seqs: Vec<i64> = events.iter().filter_map(|event| event.id).collect();
        // queued, running, 50 starts, 50 settles, result, succeeded
        assert_eq!(seqs, (1..=104).collect::<Vec<_>>(), "job {id}");
    }
    app.stop().await;
}

crate::both_stores!(
    many_jobs_emitting_at_once_lose_no_events,
    resuming_mid_job_with_last_event_id_yields_exactly_the_missing_events,
    a_finished_jobs_stream_replays_and_ends_at_once,
    a_stream_opened_on_a_queued_job_follows_it_to_the_end,
);
