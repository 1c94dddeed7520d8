//! Submit → follow over SSE → stored result, and the runner's limits on a job.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};

async fn fanout_runs_from_launch_to_stored_report(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let url = app.url("/targets/hello/{i}");
    let response = app.launch("http-fanout", &json!({"url": url, "count": 2000, "max_connections": 8})).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job: serde_json::Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    assert_eq!(location, format!("/jobs/{id}"));
    assert_eq!(job["kind"], "http-fanout");
    assert_eq!(job["status"], "queued");

    let events = app.all_events(id, None).await;
    let ids: Vec<i64> = events.iter().filter_map(|event| event.id).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "dense sequence from 1");
    assert_eq!(events[0].event, "status");
    assert_eq!(events[0].data["data"]["status"], "queued");
    assert_eq!(events[1].data["data"]["status"], "running");
    assert!(events.iter().any(|event| event.event == "progress"));
    let result = events.iter().find(|event| event.event == "result").expect("a result event");
    assert_eq!(result.data["data"]["status_counts"]["200"], 2000);
    let end = events.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "succeeded");
    assert_eq!(end.id, None);

    let stored = app.job(id).await;
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["params"]["count"], 2000);
    assert_eq!(stored["result"]["requests"], 2000);
    assert_eq!(stored["result"]["responses"], 2000);
    assert_eq!(stored["result"]["latency"]["count"], 2000);
    assert_eq!(stored["progress"]["completed"], 2000);
    assert!(stored["started_at"].is_string() && stored["finished_at"].is_string());
    app.stop().await;
}

async fn structured_concurrency_reports_each_task_and_its_transitions(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok(
            "structured-concurrency",
            &json!({"mode": "join_set", "tasks": [
                {"name": "fast", "delay_ms": 10}, {"name": "broken", "delay_ms": 60, "fail": true},
                {"name": "slow", "delay_ms": 5000}]}),
        )
        .await;
    let events = app.all_events(id.as_str(), None).await;
    let transitions: Vec<(String, String)> = events
        .iter()
        .filter(|event| event.event == "progress")
        .map(|event| (event.data["data"]["task"].as_str().unwrap().into(), event.data["data"]["state"].as_str().unwrap().into()))
        .collect();
    assert_eq!(transitions.len(), 6, "one progress event per task transition: {transitions:?}");
    assert!(transitions.ends_with(&[("fast".into(), "ok".into()), ("broken".into(), "error".into()), ("slow".into(), "cancelled".into())]));
    let job = app.job(&id).await;
    assert_eq!(job["status"], "succeeded");
    let report = &job["result"];
    assert_eq!(report["caller"]["raised"], true);
    assert_eq!(report["caller"]["errors"][0]["task"], "broken");
    let outcomes: Vec<&str> = report["tasks"].as_array().unwrap().iter().map(|t| t["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "error", "cancelled"]);
    assert!(report["elapsed_ms"].as_f64().unwrap() < 4000.0, "the slow task was cancelled, not awaited");
    app.stop().await;
}

async fn a_job_past_its_time_limit_fails_with_the_reason(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let response = app
        .client
        .post(app.url("/experiments/structured-concurrency?timeout_ms=150"))
        .json(&json!({"mode": "settled", "tasks": [{"name": "long", "delay_ms": 60000}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: serde_json::Value = response.json().await.unwrap();
    assert_eq!(job["timeout_ms"], 150);
    let ended = app.wait_until_ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["status"], "failed");
    assert_eq!(ended["error"]["kind"], "timeout");
    assert!(ended["error"]["message"].as_str().unwrap().contains("150 ms"));
    app.stop().await;
}

async fn jobs_beyond_the_running_limit_wait_in_the_queue(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--max-running-jobs", "1"]).await;
    let long = json!({"mode": "settled", "tasks": [{"name": "t", "delay_ms": 60000}]});
    let first = app.launch_ok("structured-concurrency", &long).await;
    app.wait_for(&first, |status| status == "running").await;
    let second = app.launch_ok("structured-concurrency", &long).await;
    let page = app.get_json("/jobs?status=queued").await;
    assert_eq!(page["jobs"][0]["id"], second.as_str());
    assert_eq!(app.job(&second).await["status"], "queued");

    let cancelled = app.client.post(app.url(&format!("/jobs/{first}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    app.wait_for(&second, |status| status == "running").await;
    let cancelled_queued = app.client.post(app.url(&format!("/jobs/{second}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled_queued.status(), 200);
    app.stop().await;
}

async fn a_full_queue_answers_429_with_retry_after(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--max-running-jobs", "1", "--max-queued-jobs", "1"]).await;
    let long = json!({"mode": "settled", "tasks": [{"name": "t", "delay_ms": 60000}]});
    let running = app.launch_ok("structured-concurrency", &long).await;
    app.wait_for(&running, |status| status == "running").await;
    app.launch_ok("structured-concurrency", &long).await;
    let refused = app.launch("structured-concurrency", &long).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

async fn listing_filters_and_pages_newest_first(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let quick = json!({"mode": "settled", "tasks": [{"name": "t", "delay_ms": 0}]});
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.launch_ok("structured-concurrency", &quick).await);
    }
    let target = app.url("/targets/hello/{i}");
    let fanout = app.launch_ok("http-fanout", &json!({"url": target, "count": 1})).await;
    for id in ids.iter().chain([&fanout]) {
        app.wait_until_ended(id).await;
    }
    let first = app.get_json("/jobs?kind=structured-concurrency&limit=2").await;
    let page_ids = |page: &serde_json::Value| -> Vec<String> {
        page["jobs"].as_array().unwrap().iter().map(|job| job["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(page_ids(&first), [ids[4].clone(), ids[3].clone()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get_json(&format!("/jobs?kind=structured-concurrency&limit=2&cursor={cursor}")).await;
    assert_eq!(page_ids(&second), [ids[2].clone(), ids[1].clone()]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = app.get_json(&format!("/jobs?kind=structured-concurrency&limit=2&cursor={cursor}")).await;
    assert_eq!(page_ids(&last), [ids[0].clone()]);
    assert!(last["next_cursor"].is_null());
    let fanouts = app.get_json("/jobs?kind=http-fanout&status=succeeded").await;
    assert_eq!(page_ids(&fanouts), [fanout]);
    app.stop().await;
}

async fn shutdown_interrupts_running_jobs_and_ends_their_streams(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "t", "delay_ms": 60000}]})).await;
    app.wait_for(&id, |status| status == "running").await;
    let mut stream = app.open_events(&id, None).await;
    let shutdown = tokio::spawn(app.stop());
    let mut last = None;
    while let Some(event) = stream.next().await {
        last = Some(event);
    }
    let last = last.expect("events before the end");
    assert_eq!(last.event, "end");
    assert_eq!(last.data["status"], "interrupted");
    shutdown.await.unwrap();
    let store = database.open_store().await;
    let job = store.get_job(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(job.status.as_str(), "interrupted");
}

crate::both_stores!(
    fanout_runs_from_launch_to_stored_report,
    structured_concurrency_reports_each_task_and_its_transitions,
    a_job_past_its_time_limit_fails_with_the_reason,
    jobs_beyond_the_running_limit_wait_in_the_queue,
    a_full_queue_answers_429_with_retry_after,
    listing_filters_and_pages_newest_first,
    shutdown_interrupts_running_jobs_and_ends_their_streams,
);
