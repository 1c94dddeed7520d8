//! Target services killed mid-experiment: a PostgreSQL, a MariaDB and a Redis of the test's own
//! are killed with SIGKILL while a job works on them and other jobs work on the shared services.
//! The job on the killed server fails within [`FAILS_WITHIN`] with a `connect` error that names
//! the lost server and holds no secret, its stored events complete and ending with `failed`; the
//! other jobs succeed; the server keeps answering. Each test prints the time from the kill to
//! the failed job.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::lab_services::{SHARED_REDIS_URL, TargetDatabases};
use crate::service_process::{ServiceProcess, private_mariadb, private_postgres, private_redis};

/// The password in the killed server's URL: no error, event or report may show it.
const SECRET: &str = "target-fault-secret-4f1e";
/// How soon after the kill the job must have failed: below the 10 s pool acquire and Redis
/// command timeouts, so the job noticed the dead server rather than waited a timeout out.
const FAILS_WITHIN: Duration = Duration::from_secs(8);
/// A healthy job on the shared Redis, timed so it is still running when the kill happens.
const HEALTHY_REDIS_MS: u64 = 4000;

/// A `database` run on one target that lasts far longer than the test: it only ends by failing.
fn endless_database_job(target: &str) -> Value {
    json!({"targets": [target], "rows": 1_000_000, "batch_size": 100, "concurrency": 4, "steps": ["init", "insert"]})
}

/// A short full `database` run on one target.
fn healthy_database_job(target: &str) -> Value {
    json!({"targets": [target], "rows": 5000, "batch_size": 250, "concurrency": 2})
}

/// A `redis` run on a small pool for `duration_ms`.
fn redis_job(duration_ms: u64) -> Value {
    json!({"pool_size": 2, "concurrency": 4, "duration_ms": duration_ms, "keyspace": 100})
}

/// Polls until `id`'s progress satisfies `working` (at most 30 s).
async fn wait_for_work(app: &TestApp, id: &str, working: impl Fn(&Value) -> bool) {
    for _ in 0..3000 {
        let job = app.job(id).await;
        assert_eq!(job["status"].as_str().map(|status| matches!(status, "queued" | "running")), Some(true), "{job}");
        if working(&job["progress"]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never showed progress");
}

/// Kills `server` under the running job `doomed` and checks the job fails promptly with a
/// connection error naming `lost` (and no secret), with complete events; `healthy` jobs were
/// running when the kill happened. Returns the time from the kill to the failed job, and its error.
async fn kill_and_check(app: &TestApp, server: &mut ServiceProcess, doomed: &str, lost: &str, healthy: &[&str]) -> (Duration, String) {
    for id in healthy {
        let status = app.job(id).await["status"].clone();
        assert!(status == "running" || status == "queued", "healthy job {id} still at work at the kill: {status}");
    }
    server.kill().await;
    let killed = Instant::now();
    let job = app.wait_until_ended(doomed).await;
    let took = killed.elapsed();
    assert_eq!(job["status"], "failed", "{job}");
    assert!(took < FAILS_WITHIN, "the job failed {took:?} after the kill: {job}");
    assert_eq!(job["error"]["kind"], "connect", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(lost), "the error names {lost}: {message}");
    assert!(!job.to_string().contains(SECRET), "{job}");

    let events = app.all_events(doomed, None).await;
    let seqs: Vec<i64> = events.iter().filter_map(|event| event.id).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "every event stored once, in order");
    let kinds: Vec<&str> = events.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(kinds[..2], ["status", "status"]);
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    let [.., last_status, end] = events.as_slice() else { panic!("{kinds:?}") };
    assert_eq!((last_status.event.as_str(), &last_status.data["data"]["status"]), ("status", &json!("failed")));
    assert_eq!((end.event.as_str(), &end.data["status"]), ("end", &json!("failed")));
    let stream = serde_json::to_string(&events.iter().map(|event| &event.data).collect::<Vec<_>>()).unwrap();
    assert!(!stream.contains(SECRET), "the event stream holds no secret");
    (took, message.to_string())
}

/// Checks the other jobs succeeded and the server still answers, its store ready and the lost
/// `dependency` reported as not ok.
async fn check_the_rest(app: &TestApp, healthy: &[&str], dependency: &str) {
    for id in healthy {
        let job = app.wait_until_ended(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "only the store decides readiness");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_ne!(ready["checks"][dependency], "ok", "{ready}");
}

/// Starts an app on `backend` with `flags`.
async fn start(backend: Backend, flags: &[String]) -> (TestDatabase, TestApp) {
    let database = TestDatabase::new(backend);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--target-db-max-connections", "4"]);
    let app = TestApp::start(&database, &args).await;
    (database, app)
}

/// Whether the first target of a `database` progress snapshot has written rows.
fn rows_written(progress: &Value) -> bool {
    progress["targets"][0]["step"] == "insert" && progress["targets"][0]["step_rows"].as_u64().unwrap_or(0) > 0
}

async fn a_postgres_target_killed_mid_run_fails_only_its_job(backend: Backend) {
    let mut postgres = private_postgres().await;
    let shared = TargetDatabases::create().await;
    let pg_url = format!("postgres://postgres:{SECRET}@127.0.0.1:{}/postgres", postgres.port);
    let flags = ["--pg-target-url", &pg_url, "--mysql-target-url", &shared.mysql_url, "--redis-url", SHARED_REDIS_URL].map(String::from);
    let (_database, app) = start(backend, &flags).await;
    let doomed = app.launch_ok("database", &endless_database_job("postgres")).await;
    let healthy =
        [app.launch_ok("database", &healthy_database_job("mysql")).await, app.launch_ok("redis", &redis_job(HEALTHY_REDIS_MS)).await];
    wait_for_work(&app, &doomed, rows_written).await;
    let lost = format!("server 127.0.0.1:{}", postgres.port);
    let (took, error) = kill_and_check(&app, &mut postgres, &doomed, &lost, &[&healthy[1]]).await;
    check_the_rest(&app, &[&healthy[0], &healthy[1]], "postgres_target").await;
    println!("target faults ({backend:?} store): postgres killed -> job failed in {} ms: {error}", took.as_millis());
    app.stop().await;
}

async fn a_mariadb_target_killed_mid_run_fails_only_its_job(backend: Backend) {
    let mut mariadb = private_mariadb().await;
    let shared = TargetDatabases::create().await;
    let mysql_url = format!("mysql://root:{SECRET}@127.0.0.1:{}/lab", mariadb.port);
    let flags = ["--pg-target-url", &shared.pg_url, "--mysql-target-url", &mysql_url, "--redis-url", SHARED_REDIS_URL].map(String::from);
    let (_database, app) = start(backend, &flags).await;
    let doomed = app.launch_ok("database", &endless_database_job("mysql")).await;
    let healthy =
        [app.launch_ok("database", &healthy_database_job("postgres")).await, app.launch_ok("redis", &redis_job(HEALTHY_REDIS_MS)).await];
    wait_for_work(&app, &doomed, rows_written).await;
    let lost = format!("server 127.0.0.1:{}", mariadb.port);
    let (took, error) = kill_and_check(&app, &mut mariadb, &doomed, &lost, &[&healthy[1]]).await;
    check_the_rest(&app, &[&healthy[0], &healthy[1]], "mysql_target").await;
    println!("target faults ({backend:?} store): mariadb killed -> job failed in {} ms: {error}", took.as_millis());
    app.stop().await;
}

async fn a_redis_killed_mid_run_fails_only_its_job(backend: Backend) {
    let mut redis = private_redis(Some(SECRET)).await;
    let shared = TargetDatabases::create().await;
    let redis_url = format!("redis://:{SECRET}@127.0.0.1:{}", redis.port);
    let mut flags = shared.flags();
    flags.extend(["--redis-url".to_string(), redis_url]);
    let (_database, app) = start(backend, &flags).await;
    let doomed = app.launch_ok("redis", &redis_job(600_000)).await;
    let healthy =
        [app.launch_ok("database", &json!({"targets": ["postgres", "mysql"], "rows": 20_000, "batch_size": 100, "concurrency": 2})).await];
    wait_for_work(&app, &doomed, |progress| progress["completed"].as_u64().unwrap_or(0) > 0).await;
    let lost = format!("redis 127.0.0.1:{}", redis.port);
    let (took, error) = kill_and_check(&app, &mut redis, &doomed, &lost, &[&healthy[0]]).await;
    check_the_rest(&app, &[&healthy[0]], "redis").await;
    println!("target faults ({backend:?} store): redis killed -> job failed in {} ms: {error}", took.as_millis());
    app.stop().await;
}

crate::both_stores!(
    a_postgres_target_killed_mid_run_fails_only_its_job,
    a_mariadb_target_killed_mid_run_fails_only_its_job,
    a_redis_killed_mid_run_fails_only_its_job,
);
