//! The `database` experiment against the real PostgreSQL and MariaDB, each test on fresh
//! databases: exact counts per step and insert mode, both targets at once, availability,
//! readiness, and no connection left open after shutdown.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};
use crate::lab_services::{TargetDatabases, eventually};

async fn start(backend: Backend, databases: &TargetDatabases) -> (TestDatabase, TestApp) {
    let database = TestDatabase::new(backend);
    let flags = databases.flags();
    let app = TestApp::start(&database, &flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    (database, app)
}

/// Asserts the exact counts of every step of a full run of `rows` rows on one target.
fn assert_exact_counts(target: &Value, rows: u64) {
    let name = &target["target"];
    assert_eq!(target["error"], Value::Null, "{name}: {target}");
    assert_eq!(target["table_dropped"], true, "{name}");
    let steps = target["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|step| step["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["init", "insert", "stream", "transaction", "truncate"], "{name}");
    let insert = &steps[1];
    assert_eq!(insert["rows"], rows, "{name} insert");
    assert_eq!(insert["count_after"], rows, "{name} insert");
    assert_eq!(insert["pool_wait"]["count"], insert["statements"]["count"], "{name}: one checkout per statement");
    assert!(insert["rows_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(steps[2]["rows"], rows, "{name} stream");
    let transaction = &steps[3]["transaction"];
    assert_eq!(transaction["count_before"], rows, "{name}");
    assert_eq!(transaction["committed_rows"], 1);
    assert_eq!(transaction["rolled_back_rows"], 1);
    assert_eq!(transaction["count_after"], rows + 1, "{name}: the rolled-back row is gone");
    assert_eq!(steps[4]["rows"], rows + 1, "{name} truncate removed every row");
    assert_eq!(steps[4]["count_after"], 0, "{name} truncate");
}

async fn every_step_and_mode_counts_exactly_on_both_targets_at_once(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let (_database, app) = start(backend, &databases).await;
    for (targets, mode, batch_size) in
        [(json!(["postgres", "mysql"]), "multi_row", 250), (json!(["postgres", "mysql"]), "per_row", 1), (json!(["postgres"]), "copy", 300)]
    {
        let id = app
            .launch_ok(
                "database",
                &json!({"targets": targets, "rows": 1000, "batch_size": batch_size, "concurrency": 4, "insert_mode": mode}),
            )
            .await;
        let job = app.wait_until_ended(&id).await;
        assert_eq!(job["status"], "succeeded", "{mode}: {job}");
        let report = &job["result"];
        assert_eq!(report["insert_mode"], mode);
        let reported = report["targets"].as_array().unwrap();
        assert_eq!(reported.len(), targets.as_array().unwrap().len());
        for target in reported {
            assert_exact_counts(target, 1000);
            let expected_statements = if mode == "per_row" { 1000 } else { 1000_u64.div_ceil(batch_size) };
            assert_eq!(target["steps"][1]["statements"]["count"], expected_statements, "{mode}");
        }
        if reported.len() == 2 {
            let windows: Vec<(f64, f64)> = reported
                .iter()
                .map(|target| (target["started_at_ms"].as_f64().unwrap(), target["finished_at_ms"].as_f64().unwrap()))
                .collect();
            assert!(windows[0].0 < windows[1].1 && windows[1].0 < windows[0].1, "windows overlap: {windows:?}");
            assert!(report["overlap_ms"].as_f64().unwrap() > 0.0);
        }
    }
    assert_eq!(databases.tables().await, (0, 0), "every job dropped its table");
    app.stop().await;
}

async fn progress_is_published_per_step_and_batch(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let (_database, app) = start(backend, &databases).await;
    let id = app.launch_ok("database", &json!({"targets": ["mysql"], "rows": 400, "batch_size": 100, "steps": ["init", "insert"]})).await;
    let events = app.all_events(&id, None).await;
    let steps: Vec<String> = events
        .iter()
        .filter(|event| event.event == "progress")
        .filter_map(|event| event.data["data"]["targets"][0]["step"].as_str().map(String::from))
        .collect();
    assert_eq!(steps.first().map(String::as_str), Some("init"));
    assert!(steps.iter().any(|step| step == "insert"), "{steps:?}");
    let last = events.iter().rev().find(|event| event.event == "progress").unwrap();
    assert_eq!(last.data["data"]["targets"][0]["steps_done"], 2, "{:?}", last.data);
    app.stop().await;
}

async fn unconfigured_targets_make_the_experiment_unavailable(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let catalogue = app.get_json("/experiments").await;
    let entry = catalogue.as_array().unwrap().iter().find(|entry| entry["kind"] == "database").expect("listed");
    assert_eq!(entry["available"], false);
    assert!(entry["unavailable_reason"].as_str().unwrap().contains("ASYNCLAB_PG_TARGET_URL"), "{entry}");
    let response = app.launch("database", &json!({})).await;
    assert_problem(response, 409, "kind").await;
    app.stop().await;
}

async fn a_target_without_a_url_is_refused_by_name(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--pg-target-url", &databases.pg_url]).await;
    let body = assert_problem(app.launch("database", &json!({"targets": ["mysql"]})).await, 422, "targets").await;
    assert!(body.to_string().contains("ASYNCLAB_MYSQL_TARGET_URL"), "{body}");
    app.stop().await;
}

async fn readiness_lists_each_target_and_an_unreachable_one_does_not_stop_the_server(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let database = TestDatabase::new(backend);
    let closed_port = crate::service_process::spare_port();
    let unreachable = format!("mysql://root@127.0.0.1:{closed_port}/nothing");
    let app = TestApp::start(&database, &["--pg-target-url", &databases.pg_url, "--mysql-target-url", &unreachable]).await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "only the store decides readiness");
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["postgres_target"], "ok");
    assert_ne!(ready["checks"]["mysql_target"], "ok", "{ready}");
    assert_eq!(ready["checks"].get("redis"), None, "unconfigured dependencies are not listed");
    app.stop().await;
}

async fn no_connection_outlives_the_server(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let (_database, app) = start(backend, &databases).await;
    let id =
        app.launch_ok("database", &json!({"rows": 200, "concurrency": 8, "steps": ["init", "insert"], "insert_mode": "per_row"})).await;
    assert_eq!(app.wait_until_ended(&id).await["status"], "succeeded");
    assert!(databases.pg_connections().await > 0, "the pool keeps connections while the server runs");
    assert!(databases.mysql_connections().await > 0);
    app.stop().await;
    assert_eq!(eventually(0, || databases.pg_connections()).await, 0, "PostgreSQL connections left");
    assert_eq!(eventually(0, || databases.mysql_connections()).await, 0, "MariaDB connections left");
}

async fn a_cancelled_run_still_drops_its_tables(backend: Backend) {
    let databases = TargetDatabases::create().await;
    let (_database, app) = start(backend, &databases).await;
    let params = json!({"targets": ["postgres", "mysql"], "rows": 1_000_000, "batch_size": 1, "concurrency": 2,
                        "insert_mode": "per_row", "steps": ["init", "insert"]});
    let id = app.launch_ok("database", &params).await;
    let mut inserting = false;
    for _ in 0..1000 {
        let job = app.job(&id).await;
        let targets = job["progress"]["targets"].as_array().cloned().unwrap_or_default();
        if targets.len() == 2 && targets.iter().all(|target| target["step"] == "insert") {
            inserting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(inserting, "both targets reached the insert step");
    assert_eq!(databases.tables().await, (1, 1), "each target has the job's table");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    assert_eq!(eventually((0, 0), || databases.tables()).await, (0, 0), "a cancelled run's tables are dropped");
    app.stop().await;
}

crate::both_stores!(
    a_cancelled_run_still_drops_its_tables,
    every_step_and_mode_counts_exactly_on_both_targets_at_once,
    progress_is_published_per_step_and_batch,
    unconfigured_targets_make_the_experiment_unavailable,
    a_target_without_a_url_is_refused_by_name,
    readiness_lists_each_target_and_an_unreachable_one_does_not_stop_the_server,
    no_connection_outlives_the_server,
);
