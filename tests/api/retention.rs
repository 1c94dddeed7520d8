//! Retention: finished jobs past the age or count limit are pruned with their events while
//! other jobs run and stream, jobs labelled `keep=true` never are, a pruned id answers 410 Gone
//! (an unknown one 404), `/metrics` counts what was pruned, and bad settings stop start-up.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

crate::both_stores!(old_jobs_are_pruned_but_kept_ones_and_a_running_stream_are_untouched, the_count_limit_keeps_the_newest_finished_jobs,);

/// How long a condition may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn quick(labels: Value) -> Value {
    json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}], "labels": labels})
}

/// A job that emits events for about six seconds.
fn streaming() -> Value {
    let tasks: Vec<_> = (0..60).map(|i| json!({"name": format!("t{i}"), "delay_ms": 100 * (i + 1)})).collect();
    json!({"mode": "settled", "tasks": tasks})
}

/// Moves the finish of `ids` `days` into the past, as if they had finished then.
async fn backdate(database: &TestDatabase, backend: Backend, ids: &[String], days: i64) {
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
            for id in ids {
                let id = uuid::Uuid::parse_str(id).unwrap();
                sqlx::query("update job set finished_at = $1 where id = $2").bind(at).bind(id).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&database.url).await.unwrap();
            let at = at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            for id in ids {
                sqlx::query("update job set finished_at = ?1 where id = ?2").bind(&at).bind(id).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}

/// The status `GET /jobs/{id}` answers.
async fn job_status(app: &TestApp, id: &str) -> u16 {
    app.client.get(app.url(&format!("/jobs/{id}"))).send().await.unwrap().status().as_u16()
}

/// Waits until every one of `ids` answers 410.
async fn wait_until_pruned(app: &TestApp, ids: &[String]) {
    let started = tokio::time::Instant::now();
    for id in ids {
        while job_status(app, id).await != 410 {
            assert!(started.elapsed() < DEADLINE, "job {id} was not pruned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until `/metrics` counts `expected` pruned jobs.
async fn wait_for_pruned_count(app: &TestApp, expected: u64) {
    let started = tokio::time::Instant::now();
    loop {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let count = text
            .lines()
            .find_map(|line| line.strip_prefix("asynclab_jobs_pruned_total "))
            .map(|value| value.trim().parse::<f64>().expect("a number"))
            .expect("the counter is shown from the start");
        if count == expected as f64 {
            return;
        }
        assert!(count < expected as f64, "counted {count} pruned jobs, expected {expected}");
        assert!(started.elapsed() < DEADLINE, "counted {count} pruned jobs, expected {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn old_jobs_are_pruned_but_kept_ones_and_a_running_stream_are_untouched(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--retention-days", "7", "--retention-interval-ms", "100"]).await;
    wait_for_pruned_count(&app, 0).await;
    let mut old = Vec::new();
    for _ in 0..12 {
        old.push(app.launch_ok("structured-concurrency", &quick(json!({"branch": "main"}))).await);
    }
    let kept = app.launch_ok("structured-concurrency", &quick(json!({"keep": "true", "branch": "main"}))).await;
    let recent = app.launch_ok("structured-concurrency", &quick(json!({}))).await;
    for id in old.iter().chain([&kept, &recent]) {
        assert_eq!(app.wait_until_ended(id).await["status"], "succeeded");
    }

    let long = app.launch_ok("structured-concurrency", &streaming()).await;
    let mut stream = app.open_events(&long, None).await;
    let mut events = vec![stream.next().await.expect("the first event")];
    let mut backdated = old.clone();
    backdated.push(kept.clone());
    backdate(&database, backend, &backdated, 30).await;
    wait_until_pruned(&app, &old).await;
    assert_eq!(app.job(&long).await["status"], "running", "pruning ran while the job streamed");
    while let Some(event) = stream.next().await {
        let end = event.event == "end";
        events.push(event);
        if end {
            break;
        }
    }
    let end = events.pop().expect("the end event");
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "succeeded");
    let ids: Vec<i64> = events.iter().map(|event| event.id.expect("stored events have ids")).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "the stream lost nothing");
    assert_eq!(ids.len(), 124, "queued, running, 60 starts, 60 settles, result, succeeded");

    assert_eq!(job_status(&app, &kept).await, 200, "keep=true is never pruned");
    assert_eq!(app.all_events(&kept, None).await.last().unwrap().data["status"], "succeeded");
    assert_eq!(job_status(&app, &recent).await, 200);
    assert_eq!(job_status(&app, &long).await, 200);
    let listed = app.get_json("/jobs?label=branch:main").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    wait_for_pruned_count(&app, 12).await;
    app.stop().await;
}

async fn the_count_limit_keeps_the_newest_finished_jobs(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--retention-max-jobs", "2", "--retention-interval-ms", "100"]).await;
    let kept = app.launch_ok("structured-concurrency", &quick(json!({"keep": "true"}))).await;
    app.wait_until_ended(&kept).await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let id = app.launch_ok("structured-concurrency", &quick(json!({}))).await;
        app.wait_until_ended(&id).await;
        jobs.push(id);
    }
    wait_until_pruned(&app, &jobs[..2]).await;
    wait_for_pruned_count(&app, 2).await;
    for stays in [&kept, &jobs[2], &jobs[3]] {
        assert_eq!(job_status(&app, stays).await, 200, "the newest two and the kept one stay");
    }

    // A pruned id is 410 wherever a job id is taken; an unknown one stays 404.
    let pruned = &jobs[0];
    let unknown = uuid::Uuid::now_v7().to_string();
    let get = |path: String| app.client.get(app.url(&path)).send();
    let body = assert_problem(get(format!("/jobs/{pruned}")).await.unwrap(), 410, "id").await;
    assert_eq!(body["type"], "urn:asynclab:problem:gone");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(pruned) && detail.contains("structured-concurrency") && detail.contains("pruned by retention at 20"),
        "{detail}"
    );
    assert_problem(get(format!("/jobs/{pruned}/events")).await.unwrap(), 410, "id").await;
    let cancel = app.client.post(app.url(&format!("/jobs/{pruned}/cancel"))).send().await.unwrap();
    assert_problem(cancel, 410, "id").await;
    assert_problem(get(format!("/jobs/{pruned}/compare/{}", jobs[3])).await.unwrap(), 410, "id").await;
    assert_problem(get(format!("/jobs/{}/compare/{pruned}", jobs[3])).await.unwrap(), 410, "baseline").await;
    let mut gated = quick(json!({}));
    gated["baseline"] = json!({"job": pruned});
    assert_problem(app.launch("structured-concurrency", &gated).await, 410, "baseline.job").await;
    assert_problem(get(format!("/jobs/{unknown}")).await.unwrap(), 404, "id").await;
    assert_problem(get(format!("/jobs/{unknown}/events")).await.unwrap(), 404, "id").await;
    let cancel = app.client.post(app.url(&format!("/jobs/{unknown}/cancel"))).send().await.unwrap();
    assert_problem(cancel, 404, "id").await;
    assert_problem(get(format!("/jobs/{unknown}/compare/{}", jobs[3])).await.unwrap(), 404, "id").await;

    let status = app.get_json("/retention").await;
    assert_eq!(status["enabled"], true);
    assert_eq!(status["max_jobs"], 2);
    assert!(status["max_age_days"].is_null());
    assert_eq!(status["interval_ms"], 100);
    assert_eq!(status["last_pass"]["outcome"], "pruned", "{status}");
    app.stop().await;
}

#[tokio::test]
async fn retention_is_off_by_default() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--retention-interval-ms", "100"]).await;
    let id = app.launch_ok("structured-concurrency", &quick(json!({}))).await;
    app.wait_until_ended(&id).await;
    backdate(&database, Backend::Sqlite, std::slice::from_ref(&id), 36_500).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(job_status(&app, &id).await, 200);
    let status = app.get_json("/retention").await;
    assert_eq!(status["enabled"], false);
    assert!(status["last_pass"].is_null(), "{status}");
    wait_for_pruned_count(&app, 0).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_retention_settings_stop_start_up_with_a_clear_error() {
    for (variable, value, expected) in [
        ("ASYNCLAB_RETENTION_DAYS", "0", "--retention-days"),
        ("ASYNCLAB_RETENTION_DAYS", "a week", "--retention-days"),
        ("ASYNCLAB_RETENTION_MAX_JOBS", "0", "--retention-max-jobs"),
        ("ASYNCLAB_RETENTION_MAX_JOBS", "-5", "--retention-max-jobs"),
        ("ASYNCLAB_RETENTION_INTERVAL_MS", "5", "--retention-interval-ms"),
    ] {
        let data_dir = std::env::temp_dir().join(format!("asynclab-test-{}", uuid::Uuid::new_v4().simple()));
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_asynclab"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env(variable, value)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(DEADLINE, output).await.expect("start-up fails at once").unwrap();
        let _ = std::fs::remove_dir_all(&data_dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}={value}: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains(&format!("'{value}'")), "{variable}={value}: {stderr}");
    }
}

/// On a PostgreSQL store several replicas share, one prunes at a time: while another session
/// holds retention's advisory lock (as a replica mid-batch does), this replica skips its passes.
#[tokio::test]
async fn replicas_sharing_postgres_prune_one_at_a_time() {
    const RETENTION_LOCK: i64 = 0x6173_796e_636c_6162;
    let database = TestDatabase::new(Backend::Postgres);
    let app = TestApp::start(&database, &["--retention-days", "1", "--retention-interval-ms", "100"]).await;
    let id = app.launch_ok("structured-concurrency", &quick(json!({}))).await;
    app.wait_until_ended(&id).await;
    let other_replica = sqlx::PgPool::connect(&database.url).await.unwrap();
    let mut holder = other_replica.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock($1)").bind(RETENTION_LOCK).execute(&mut *holder).await.unwrap();
    backdate(&database, Backend::Postgres, std::slice::from_ref(&id), 3).await;

    let started = tokio::time::Instant::now();
    loop {
        // Only this replica prunes here, so a skipped pass is one that found the lock taken.
        let status = app.get_json("/retention").await;
        if status["last_pass"]["outcome"] == "skipped" {
            assert_eq!(status["last_pass"]["jobs_pruned"], 0);
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no pass was skipped: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job_status(&app, &id).await, 200, "nothing is pruned while another replica holds the lock");

    sqlx::query("select pg_advisory_unlock($1)").bind(RETENTION_LOCK).execute(&mut *holder).await.unwrap();
    drop(holder);
    other_replica.close().await;
    wait_until_pruned(&app, std::slice::from_ref(&id)).await;
    wait_for_pruned_count(&app, 1).await;
    app.stop().await;
}
