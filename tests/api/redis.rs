//! The `redis` experiment against a real Redis: exact operation counts, pool waits and their
//! timeouts, key clean-up, a Redis that dies mid-run, availability, and no connection left open,
//! for both clients (`pool` and `fred`); the client named in the report and compared as a
//! parameter.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};
use crate::lab_services::{SHARED_REDIS_URL, TestRedis, eventually, redis_cli};

async fn start(backend: Backend, redis_url: &str) -> (TestDatabase, TestApp) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--redis-url", redis_url]).await;
    (database, app)
}

async fn keys_under(port: u16, prefix: &str) -> usize {
    redis_cli(port, &["--scan", "--pattern", &format!("{prefix}*")]).await.lines().count()
}

async fn a_mixed_run_counts_every_operation_and_deletes_its_keys(backend: Backend) {
    let (_database, app) = start(backend, SHARED_REDIS_URL).await;
    let id = app
        .launch_ok(
            "redis",
            &json!({"pool_size": 2, "concurrency": 16, "ops": 3000, "pipeline_depth": 4, "value_bytes": 100,
                    "mix": {"get": 2, "set": 2, "incr": 1, "pipeline": 1}}),
        )
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["ops"], 3000);
    assert_eq!(report["pool_wait_timeouts"], 0);
    let counts = &report["op_counts"];
    let by_kind: Vec<u64> = ["get", "set", "incr", "pipeline"].iter().map(|kind| counts[kind].as_u64().unwrap()).collect();
    assert_eq!(by_kind.iter().sum::<u64>(), 3000);
    assert!(by_kind.iter().all(|count| *count > 0), "every kind ran: {counts}");
    assert_eq!(report["commands"], by_kind[0] + by_kind[1] + by_kind[2] + 4 * by_kind[3]);
    assert_eq!(report["latency"]["count"], 3000);
    assert_eq!(report["pool_wait"]["count"], 3000);
    assert!(report["pool_wait_share"].as_f64().unwrap() > 0.5, "16 tasks on 2 connections mostly wait: {report}");
    assert!(report["keys_deleted"].as_u64().unwrap() > 0);
    let prefix = report["key_prefix"].as_str().unwrap();
    assert_eq!(prefix, format!("asynclab:{id}:"));
    assert_eq!(keys_under(6379, prefix).await, 0, "the run's keys are gone");
    assert_eq!(job["progress"]["completed"].as_u64().map(|done| done <= 3000), Some(true));
    app.stop().await;
}

async fn waits_beyond_the_pool_timeout_are_counted(backend: Backend) {
    let (_database, app) = start(backend, SHARED_REDIS_URL).await;
    let id = app
        .launch_ok(
            "redis",
            &json!({"pool_size": 1, "concurrency": 8, "ops": 200, "pool_wait_timeout_ms": 1,
                    "mix": {"pipeline": 1}, "pipeline_depth": 200, "value_bytes": 1000}),
        )
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    let timeouts = report["pool_wait_timeouts"].as_u64().unwrap();
    assert!(timeouts > 0, "{report}");
    assert_eq!(report["ops"].as_u64().unwrap() + timeouts, 200, "each operation either ran or gave up waiting");
    app.stop().await;
}

async fn a_redis_that_dies_mid_run_fails_the_job_and_the_server_stays_healthy(backend: Backend) {
    dies_mid_run(backend, "pool").await;
}

async fn a_redis_that_dies_under_fred_fails_the_job_the_same_way(backend: Backend) {
    dies_mid_run(backend, "fred").await;
}

async fn dies_mid_run(backend: Backend, client: &str) {
    let mut redis = TestRedis::start().await;
    let (_database, app) = start(backend, &redis.url).await;
    let id = app.launch_ok("redis", &json!({"client": client, "pool_size": 4, "concurrency": 8, "duration_ms": 60000})).await;
    // Mid-run means operations have completed: wait for a progress event that says so.
    let mut events = app.open_events(&id, None).await;
    let under_way = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if event.event == "progress" && event.data["data"]["completed"].as_u64().is_some_and(|done| done > 0) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(under_way, Ok(true), "no progress event with completed > 0 came before the kill");
    drop(events);
    redis.kill().await;
    let killed = std::time::Instant::now();
    let job = app.wait_until_ended(&id).await;
    assert!(killed.elapsed() < std::time::Duration::from_secs(5), "the job failed promptly: {:?}", killed.elapsed());
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "connect", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("redis"), "{job}");
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_ne!(ready["checks"]["redis"], "ok", "{ready}");
    app.stop().await;
}

async fn without_redis_url_the_experiment_is_unavailable(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let catalogue = app.get_json("/experiments").await;
    let entry = catalogue.as_array().unwrap().iter().find(|entry| entry["kind"] == "redis").expect("listed");
    assert_eq!(entry["available"], false);
    assert!(entry["unavailable_reason"].as_str().unwrap().contains("REDIS_URL"), "{entry}");
    assert_problem(app.launch("redis", &json!({"ops": 10})).await, 409, "kind").await;
    app.stop().await;
}

async fn no_redis_connection_outlives_the_server(backend: Backend) {
    let redis = TestRedis::start().await;
    let (_database, app) = start(backend, &redis.url).await;
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["checks"]["redis"], "ok");
    let before = redis.clients().await;
    for client in ["pool", "fred"] {
        let id = app.launch_ok("redis", &json!({"client": client, "pool_size": 5, "concurrency": 5, "ops": 500})).await;
        assert_eq!(app.wait_until_ended(&id).await["status"], "succeeded");
        assert_eq!(eventually(before, || redis.clients()).await, before, "the {client} run closed its connections");
    }
    assert!(redis.clients().await > 0, "the shared pool stays connected while the server runs");
    app.stop().await;
    assert_eq!(eventually(0, || redis.clients()).await, 0, "Redis connections left");
}

/// Polls the job until its progress shows completed operations (or steps).
async fn wait_for_progress(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) {
    for _ in 0..1000 {
        if done(&app.job(id).await["progress"]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("job {id} never made the awaited progress");
}

async fn a_cancelled_run_still_deletes_its_keys(backend: Backend) {
    let (_database, app) = start(backend, SHARED_REDIS_URL).await;
    let id = app.launch_ok("redis", &json!({"pool_size": 4, "concurrency": 8, "duration_ms": 30_000, "keyspace": 500})).await;
    wait_for_progress(&app, &id, |progress| progress["completed"].as_u64().unwrap_or(0) > 1000).await;
    let prefix = format!("asynclab:{id}:");
    assert!(keys_under(6379, &prefix).await > 0, "the run wrote keys");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    assert_eq!(eventually(0, || keys_under(6379, &prefix)).await, 0, "a cancelled run's keys are deleted");
    app.stop().await;
}

/// A Redis's count of calls of `command` since it started (`INFO commandstats`).
async fn calls(port: u16, command: &str) -> u64 {
    let stats = redis_cli(port, &["info", "commandstats"]).await;
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().expect("a call count"))
}

async fn a_fred_run_sends_exactly_the_counted_commands_and_deletes_its_keys(backend: Backend) {
    let redis = TestRedis::start().await;
    let (_database, app) = start(backend, &redis.url).await;
    let id = app
        .launch_ok(
            "redis",
            &json!({"client": "fred", "pool_size": 2, "concurrency": 16, "ops": 3000, "pipeline_depth": 4, "value_bytes": 100,
                    "mix": {"get": 2, "set": 2, "incr": 1, "pipeline": 1}}),
        )
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["client"], "fred");
    assert_eq!(report["pool_size"], 2);
    assert_eq!(report["ops"], 3000);
    let counts = &report["op_counts"];
    let by_kind: Vec<u64> = ["get", "set", "incr", "pipeline"].iter().map(|kind| counts[kind].as_u64().unwrap()).collect();
    assert_eq!(by_kind.iter().sum::<u64>(), 3000);
    assert!(by_kind.iter().all(|count| *count > 0), "every kind ran: {counts}");
    assert_eq!(report["commands"], by_kind[0] + by_kind[1] + by_kind[2] + 4 * by_kind[3]);
    assert_eq!(report["latency"]["count"], 3000);
    assert_eq!(report["pool_wait"]["count"], 0, "fred has no checkout: {report}");
    assert_eq!(report["pool_wait_timeouts"], 0);
    assert_eq!(report["pool_wait_share"], 0.0);
    // What Redis itself counted: a pipeline of 4 is 2 SETs and 2 GETs.
    assert_eq!(calls(redis.port, "set").await, by_kind[1] + 2 * by_kind[3], "SETs Redis received");
    assert_eq!(calls(redis.port, "get").await, by_kind[0] + 2 * by_kind[3], "GETs Redis received");
    assert_eq!(calls(redis.port, "incr").await, by_kind[2], "INCRs Redis received");
    let prefix = report["key_prefix"].as_str().unwrap();
    assert!(report["keys_deleted"].as_u64().unwrap() > 0);
    assert_eq!(keys_under(redis.port, prefix).await, 0, "the run's keys are gone");
    assert_eq!(redis_cli(redis.port, &["dbsize"]).await.trim(), "0", "nothing else was left");
    assert!(report["cpu"].is_object(), "{report}");
    app.stop().await;
}

async fn an_unknown_client_is_refused_naming_it(backend: Backend) {
    let (_database, app) = start(backend, SHARED_REDIS_URL).await;
    let problem = assert_problem(app.launch("redis", &json!({"ops": 10, "client": "jedis"})).await, 422, "client").await;
    assert!(problem.to_string().contains("fred"), "the reason lists the clients: {problem}");
    app.stop().await;
}

async fn runs_with_different_clients_are_not_compared_unless_forced(backend: Backend) {
    let (_database, app) = start(backend, SHARED_REDIS_URL).await;
    let body = |client: &str| json!({"client": client, "pool_size": 2, "concurrency": 4, "ops": 300});
    let pool = app.launch_ok("redis", &body("pool")).await;
    let fred = app.launch_ok("redis", &body("fred")).await;
    for id in [&pool, &fred] {
        let job = app.wait_until_ended(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    assert_eq!(app.job(&pool).await["result"]["client"], "pool");
    let refused = app.client.get(app.url(&format!("/jobs/{fred}/compare/{pool}"))).send().await.unwrap();
    assert_problem(refused, 422, "params.client").await;
    let forced = app.get_json(&format!("/jobs/{fred}/compare/{pool}?force=true")).await;
    assert_eq!(forced["differing_params"], json!(["client"]));
    app.stop().await;
}

crate::both_stores!(
    a_fred_run_sends_exactly_the_counted_commands_and_deletes_its_keys,
    an_unknown_client_is_refused_naming_it,
    runs_with_different_clients_are_not_compared_unless_forced,
    a_redis_that_dies_under_fred_fails_the_job_the_same_way,
    a_cancelled_run_still_deletes_its_keys,
    a_mixed_run_counts_every_operation_and_deletes_its_keys,
    waits_beyond_the_pool_timeout_are_counted,
    a_redis_that_dies_mid_run_fails_the_job_and_the_server_stays_healthy,
    without_redis_url_the_experiment_is_unavailable,
    no_redis_connection_outlives_the_server,
);
