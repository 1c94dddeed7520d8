//! Several `asynclab serve` processes on one PostgreSQL act as one service: jobs spread across
//! them, a stream on one replica follows a job running on another, a cancel reaches the replica
//! that runs the job, and a killed replica's jobs are rescued once (interrupted, or run again
//! when restartable) within the lease and one heartbeat.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{ApiClient, Backend, SseEvent, TestDatabase};
use crate::reliability::ServerProcess;

/// The lease the replicas run with: short, so a rescue comes quickly.
const LEASE_MS: u64 = 1500;
/// The longest a test waits for a stream to end.
const STREAM_LIMIT: Duration = Duration::from_secs(60);

/// A replica process and a client of its API.
struct Replica {
    /// The replica's id (`--replica-id`).
    id: String,
    process: ServerProcess,
    api: ApiClient,
}

/// Starts replica `id` on `database` with `extra` flags.
async fn start_replica(database: &TestDatabase, data_dir: &std::path::Path, id: &str, extra: &[&str]) -> Replica {
    let lease = LEASE_MS.to_string();
    let mut flags = vec!["--database-url", database.url.as_str(), "--replica-id", id, "--lease-ms", lease.as_str()];
    flags.extend_from_slice(extra);
    let (process, _) = ServerProcess::start_with(data_dir, &reqwest::Client::new(), &flags, (Stdio::null(), "info")).await;
    let api = ApiClient::new(process.address.clone());
    Replica { id: id.into(), process, api }
}

/// A fresh directory for a replica's local files.
fn data_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("asynclab-replica-{name}-{}", uuid::Uuid::new_v4().simple()))
}

/// Starts replicas `replica-a`, `replica-b` and `replica-c` with `extra` flags; returns them
/// with their data directories.
async fn start_three(database: &TestDatabase, extra: &[&str]) -> (Vec<Replica>, Vec<std::path::PathBuf>) {
    let ids = ["replica-a", "replica-b", "replica-c"];
    let dirs: Vec<_> = ids.iter().map(|id| data_dir(id)).collect();
    let replicas = join_all(ids.iter().zip(&dirs).map(|(id, dir)| start_replica(database, dir, id, extra))).await;
    (replicas, dirs)
}

/// A `subprocess` job whose child prints `lines` lines, one every 50 ms.
fn printing_job(lines: u32) -> Value {
    json!({"processes": [{"program": "asynclab-child", "args": ["--lines", lines.to_string(), "--interval-ms", "50"], "timeout_ms": 120_000}]})
}

/// Reads a job's whole stream, failing after [`STREAM_LIMIT`].
async fn stream_to_end(api: &ApiClient, id: &str) -> Vec<SseEvent> {
    tokio::time::timeout(STREAM_LIMIT, api.all_events(id, None)).await.expect("the stream ends")
}

/// The `status` values among a job's events, in order.
fn statuses(events: &[SseEvent]) -> Vec<String> {
    events.iter().filter_map(|event| event.data["data"]["status"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn three_replicas_share_the_jobs_and_stream_each_others_events_live() {
    let database = TestDatabase::new(Backend::Postgres);
    let (replicas, dirs) = start_three(&database, &["--max-running-jobs", "1"]).await;

    // One slot each: three jobs launched on A run on three replicas at once.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(replicas[0].api.launch_ok("subprocess", &printing_job(40)).await);
    }
    let mut owners = Vec::new();
    for id in &ids {
        let job = replicas[0].api.wait_for(id, |status| status != "queued").await;
        owners.push(job["replica"].as_str().expect("a running job names its replica").to_string());
    }
    let mut distinct = owners.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, ["replica-a", "replica-b", "replica-c"], "owners: {owners:?}");

    // Each job followed, while it runs, from a replica that does not run it.
    let followed = join_all(ids.iter().zip(&owners).map(|(id, owner)| {
        let follower = replicas.iter().find(|replica| &replica.id != owner).expect("another replica");
        stream_to_end(&follower.api, id)
    }))
    .await;
    for ((id, owner), events) in ids.iter().zip(&owners).zip(&followed) {
        let owner = replicas.iter().find(|replica| &replica.id == owner).unwrap();
        let stored = stream_to_end(&owner.api, id).await;
        assert_eq!(events, &stored, "the stream on another replica equals the owner's");
        let seqs: Vec<i64> = events.iter().filter_map(|event| event.id).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "dense, in order, no duplicate");
        let lines = events.iter().filter(|event| event.event == "log").count();
        assert_eq!(lines, 40);
        assert_eq!(statuses(events), ["queued", "running", "succeeded"]);
        assert_eq!(events.last().unwrap().event, "end");
    }
    drop(replicas);
    dirs.iter().for_each(|dir| drop(std::fs::remove_dir_all(dir)));
}

#[tokio::test]
async fn a_cancel_on_one_replica_stops_the_job_on_another() {
    let database = TestDatabase::new(Backend::Postgres);
    let (dir_a, dir_b) = (data_dir("a"), data_dir("b"));
    let a = start_replica(&database, &dir_a, "replica-a", &["--max-running-jobs", "1"]).await;
    let b = start_replica(&database, &dir_b, "replica-b", &["--max-running-jobs", "1"]).await;
    let id = a.api.launch_ok("subprocess", &printing_job(1200)).await;
    let job = a.api.wait_for(&id, |status| status == "running").await;
    let owner = job["replica"].as_str().unwrap();
    let other = if owner == a.id { &b } else { &a };

    let started = Instant::now();
    let response = other.api.client.post(other.api.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answered: Value = response.json().await.unwrap();
    let job = other.api.wait_until_ended(&id).await;
    let elapsed = started.elapsed();
    println!("cancel from {} of a job on {owner}: answered {:?}, ended after {elapsed:?}", other.id, answered["status"]);
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["kind"], "cancelled");
    assert!(elapsed < Duration::from_secs(5), "the cancel took {elapsed:?}");
    assert_eq!(statuses(&stream_to_end(&other.api, &id).await), ["queued", "running", "cancelled"]);
    drop((a, b));
    let _ = (std::fs::remove_dir_all(dir_a), std::fs::remove_dir_all(dir_b));
}

#[tokio::test]
async fn a_killed_replicas_jobs_are_rescued_once_within_the_lease_and_a_heartbeat() {
    let database = TestDatabase::new(Backend::Postgres);
    let (dir_a, dir_b) = (data_dir("a"), data_dir("b"));
    // B alone first, so it claims both jobs.
    let b = start_replica(&database, &dir_b, "replica-b", &["--max-running-jobs", "2"]).await;
    let plain = b.api.launch_ok("subprocess", &printing_job(1200)).await;
    let restartable =
        b.api.launch_ok("structured-concurrency", &json!({"mode": "join_all", "tasks": [{"name": "slow", "delay_ms": 2000}]})).await;
    for id in [&plain, &restartable] {
        let job = b.api.wait_for(id, |status| status == "running").await;
        assert_eq!(job["replica"], "replica-b");
        // The `running` event is stored too (events are written in batches after the claim).
        let mut events = b.api.open_events(id, None).await;
        while let Some(event) = tokio::time::timeout(STREAM_LIMIT, events.next()).await.expect("events arrive") {
            if event.data["data"]["status"] == "running" {
                break;
            }
        }
    }
    let a = start_replica(&database, &dir_a, "replica-a", &[]).await;

    let killed = Instant::now();
    drop(b.process);
    let job = a.api.wait_until_ended(&plain).await;
    let rescued_after = killed.elapsed();
    let limit = Duration::from_millis(LEASE_MS + LEASE_MS / 3 + 1000);
    println!("killed replica-b; its subprocess job ended {:?} after the kill (limit {limit:?})", rescued_after);
    assert_eq!(job["status"], "interrupted", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("replica-b"), "{job}");
    assert!(rescued_after < limit, "rescued after {rescued_after:?}");

    // The restartable job runs again on A and succeeds: one end, never two.
    let job = a.api.wait_until_ended(&restartable).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((job["replica"].as_str(), job["attempts"].as_u64()), (Some("replica-a"), Some(2)));
    let events = stream_to_end(&a.api, &restartable).await;
    assert_eq!(statuses(&events), ["queued", "running", "queued", "running", "succeeded"]);
    assert_eq!(events.iter().filter(|event| event.event == "result").count(), 1);
    let events = stream_to_end(&a.api, &plain).await;
    assert_eq!(statuses(&events), ["queued", "running", "interrupted"]);

    // B restarts under its id; jobs launched around the restart all run, on either replica.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(a.api.launch_ok("subprocess", &printing_job(5)).await);
    }
    let b = start_replica(&database, &dir_b, "replica-b", &[]).await;
    for _ in 0..3 {
        ids.push(b.api.launch_ok("subprocess", &printing_job(5)).await);
    }
    for id in &ids {
        let job = a.api.wait_until_ended(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let events = stream_to_end(&b.api, id).await;
        assert_eq!(events.iter().filter(|event| event.event == "log").count(), 5);
    }
    drop((a, b));
    let _ = (std::fs::remove_dir_all(dir_a), std::fs::remove_dir_all(dir_b));
}

#[tokio::test]
async fn a_sharded_fanout_runs_on_three_replicas_and_merges_their_reports_exactly() {
    let database = TestDatabase::new(Backend::Postgres);
    let (replicas, dirs) = start_three(&database, &["--max-running-jobs", "2"]).await;
    let target = format!("{}/targets/hello/{{i}}", replicas[2].api.address);
    let params = json!({"url": target, "count": 20_000, "max_connections": 6, "shards": 3, "thresholds": {"min_rps": 1.0}});
    let id = replicas[0].api.launch_ok("http-fanout", &params).await;
    let job = replicas[1].api.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["requests"], 20_000);
    assert_eq!(report["status_counts"]["200"], 20_000);
    assert_eq!(report["thresholds"][0]["passed"], true);
    let shards = report["shards"].as_array().expect("the shards are listed");
    let mut owners: Vec<&str> = shards.iter().map(|shard| shard["replica"].as_str().unwrap()).collect();
    owners.sort_unstable();
    assert_eq!(owners, ["replica-a", "replica-b", "replica-c"], "one shard per replica");

    // The merged percentiles are those of the union of the shards' samples.
    let mut union = asynclab::stats::latency_histogram();
    let mut requests = 0;
    for shard in shards {
        let child = replicas[2].api.job(shard["job_id"].as_str().unwrap()).await;
        assert_eq!(child["parent_id"], json!(id));
        requests += child["result"]["requests"].as_u64().unwrap();
        for pair in child["result"]["recorded"]["latency"].as_array().unwrap() {
            union.record_n(pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap()).unwrap();
        }
    }
    assert_eq!(requests, 20_000);
    let merged: asynclab::stats::LatencySummary = serde_json::from_value(report["latency"].clone()).unwrap();
    let expected = asynclab::stats::LatencySummary::from_micros(&union);
    assert_eq!(merged.count, 20_000);
    // Percentiles exactly; mean and deviation up to the last digit JSON parsing may round.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(merged.mean_ms, expected.mean_ms) && close(merged.stdev_ms, expected.stdev_ms), "{merged:?} vs {expected:?}");
    let merged = asynclab::stats::LatencySummary { mean_ms: expected.mean_ms, stdev_ms: expected.stdev_ms, ..merged };
    assert_eq!(merged, expected);

    // Its stream shows the shards' combined progress, up to the whole count.
    let events = stream_to_end(&replicas[0].api, &id).await;
    let completed: Vec<u64> =
        events.iter().filter(|event| event.event == "progress").filter_map(|event| event.data["data"]["completed"].as_u64()).collect();
    assert_eq!(completed.last(), Some(&20_000), "{completed:?}");
    assert!(completed.windows(2).all(|pair| pair[0] <= pair[1]), "{completed:?}");
    drop(replicas);
    dirs.iter().for_each(|dir| drop(std::fs::remove_dir_all(dir)));
}

#[tokio::test]
async fn cancelling_a_sharded_job_stops_its_shards() {
    let database = TestDatabase::new(Backend::Postgres);
    let app = crate::helpers::TestApp::start(&database, &["--max-running-jobs", "3"]).await;
    let params =
        json!({"url": app.url("/targets/hello/{i}"), "duration_ms": 60_000, "max_connections": 2, "max_per_second": 100.0, "shards": 2});
    let id = app.launch_ok("http-fanout", &params).await;
    let mut shard_ids = Vec::new();
    for _ in 0..500 {
        let listed = app.get_json("/jobs?status=running&kind=http-fanout").await;
        shard_ids = listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|job| job["parent_id"] == json!(id))
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect();
        if shard_ids.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shard_ids.len(), 2, "both shards run");
    let response = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    for shard in &shard_ids {
        let job = app.wait_until_ended(shard).await;
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    app.stop().await;
}
