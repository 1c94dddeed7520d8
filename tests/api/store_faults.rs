//! The PostgreSQL job store losing its connections mid-run: every backend of the test's database
//! is terminated (`pg_terminate_backend`) again and again while a job runs and a client polls;
//! the API answers `200` or `503` with `Retry-After` (never `500`), the pool reconnects by itself,
//! and the job ends with every event stored.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// Terminates every other connection to `database`; returns how many.
async fn terminate_backends(database: &str) -> i64 {
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await.unwrap();
    sqlx::query_scalar("select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()")
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn losing_the_store_connections_mid_run_loses_no_job_and_no_event() {
    let database = TestDatabase::new(Backend::Postgres);
    let name = database.url.rsplit('/').next().unwrap().to_string();
    let app = TestApp::start(&database, &[]).await;
    let tasks: Vec<_> = (0..20).map(|index| json!({"name": format!("t{index}"), "delay_ms": 100 + 60 * index})).collect();
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": tasks})).await;
    let (mut ok, mut unavailable, mut terminated) = (0, 0, 0);
    for round in 0..60 {
        if round % 10 == 0 {
            terminated += terminate_backends(&name).await;
        }
        let response = app.client.get(app.url(&format!("/jobs/{id}"))).send().await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(response.headers()["content-type"], "application/problem+json");
                unavailable += 1;
            }
            other => panic!("answered {other}: {}", response.text().await.unwrap()),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(terminated > 0, "the store's connections were terminated");
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let events = app.all_events(&id, None).await;
    let seqs: Vec<i64> = events.iter().filter_map(|event| event.id).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "every event stored once, in order");
    assert_eq!(events.last().unwrap().event, "end");
    println!("store faults: {terminated} connections terminated, {ok} answers 200, {unavailable} answers 503, 0 events lost");
    app.stop().await;
}
