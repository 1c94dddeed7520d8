//! Reliability under faults: a server killed with SIGKILL loses no event a client saw and
//! repairs its jobs at start-up; a client that drops its stream at random points and resumes
//! with `Last-Event-ID` sees every event exactly once. Each test prints its figures.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{Backend, SseEvent, TestApp, TestDatabase};
use crate::subprocess::wait_for_processes;

/// An `asynclab serve` process of its own, so it can be killed for real.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
}

impl ServerProcess {
    /// Starts the server on `data_dir` (SQLite store) and waits until it answers `/healthz`; returns
    /// it with the time start-up took.
    async fn start(data_dir: &std::path::Path, client: &reqwest::Client) -> (ServerProcess, Duration) {
        Self::start_with(data_dir, client, &[], (Stdio::null(), "info")).await
    }

    /// Starts the server with `extra` flags (SQLite store in `data_dir` unless they give
    /// `--database-url`), its log (stderr) going to `log.0` at level `log.1`.
    pub async fn start_with(
        data_dir: &std::path::Path,
        client: &reqwest::Client,
        extra: &[&str],
        log: (Stdio, &str),
    ) -> (ServerProcess, Duration) {
        let port = crate::service_process::spare_port();
        let binary = env!("CARGO_BIN_EXE_asynclab");
        let started = Instant::now();
        let mut command = Command::new(binary);
        command.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--child-exe", binary]);
        if !extra.contains(&"--max-running-jobs") {
            command.args(["--max-running-jobs", "10"]);
        }
        let child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("DATABASE_URL")
            .env_remove("ASYNCLAB_TOKEN")
            .env("RUST_LOG", log.1)
            .stdout(Stdio::null())
            .stderr(log.0)
            .spawn()
            .expect("the server starts");
        let server = ServerProcess { child, address: format!("http://127.0.0.1:{port}") };
        for _ in 0..600 {
            if client.get(format!("{}/healthz", server.address)).send().await.is_ok_and(|response| response.status() == 200) {
                return (server, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server did not become ready");
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn terminate(mut self) {
        // SAFETY: kill(2) on the child's own pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads up to `count` events of `id` after `after` from a server, then drops the stream.
async fn read_events(client: &reqwest::Client, address: &str, id: &str, after: i64, count: usize) -> Vec<SseEvent> {
    let response =
        client.get(format!("{address}/jobs/{id}/events")).header("Last-Event-ID", after.to_string()).send().await.expect("events request");
    assert_eq!(response.status(), 200);
    let mut reader = crate::helpers::SseReader::new(response);
    let mut events = Vec::new();
    while events.len() < count {
        match reader.next().await {
            Some(event) if event.event == "end" => break,
            Some(event) => events.push(event),
            None => break,
        }
    }
    events
}

#[tokio::test]
async fn a_killed_server_keeps_every_event_a_client_saw_and_repairs_its_jobs_at_start_up() {
    let data_dir = std::env::temp_dir().join(format!("asynclab-crash-{}", uuid::Uuid::new_v4().simple()));
    let client = reqwest::Client::new();
    let (mut server, _) = ServerProcess::start(&data_dir, &client).await;
    let marker = format!("crash-{}", uuid::Uuid::new_v4().simple());
    let params = json!({"processes": [{"program": "asynclab-child", "timeout_ms": 60_000,
                        "args": ["--lines", "2000", "--interval-ms", "10", "--prefix", marker]}]});
    let mut ids = Vec::new();
    for _ in 0..10 {
        let response = client.post(format!("{}/experiments/subprocess", server.address)).json(&params).send().await.unwrap();
        assert_eq!(response.status(), 202);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    // Each client reads a share of its job's events while the job runs.
    let mut seen: Vec<Vec<SseEvent>> = Vec::new();
    for id in &ids {
        seen.push(read_events(&client, &server.address, id, 0, 40).await);
    }
    assert!(seen.iter().all(|events| events.iter().any(|event| event.event == "log")), "every job was running");
    assert_eq!(wait_for_processes(&marker, |count| count == 10).await, 10);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The kernel takes the children with the server.
    assert_eq!(wait_for_processes(&marker, |count| count == 0).await, 0, "children outlived the server");

    let (server, start_up) = ServerProcess::start(&data_dir, &client).await;
    let mut received = 0;
    for (id, events) in ids.iter().zip(&seen) {
        let job: Value = client.get(format!("{}/jobs/{id}", server.address)).send().await.unwrap().json().await.unwrap();
        assert_eq!(job["status"], "interrupted", "{job}");
        let stored = read_events(&client, &server.address, id, 0, usize::MAX).await;
        for event in events {
            let kept = stored.iter().find(|candidate| candidate.id == event.id).unwrap_or_else(|| panic!("event {:?} lost", event.id));
            assert_eq!(kept.data, event.data);
        }
        received += events.len();
    }
    let running = client.get(format!("{}/jobs?status=running", server.address)).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(running["jobs"].as_array().map_or(0, Vec::len), 0, "{running}");
    println!(
        "crash: 10 running jobs, {received} events received by clients before SIGKILL, all still stored; \
         0 jobs left running; restart to ready (jobs already interrupted) in {} ms; 0 orphaned children",
        start_up.as_millis()
    );
    assert!(start_up < Duration::from_secs(5), "start-up took {start_up:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn a_client_resuming_at_100_random_points_sees_every_event_exactly_once() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--child-exe", env!("CARGO_BIN_EXE_asynclab")]).await;
    let params =
        json!({"processes": [{"program": "asynclab-child", "args": ["--lines", "1500", "--interval-ms", "2"], "timeout_ms": 60_000}]});
    let id = app.launch_ok("subprocess", &params).await;
    let mut rng = SmallRng::seed_from_u64(7);
    let mut collected: Vec<SseEvent> = Vec::new();
    for _ in 0..100 {
        let after = collected.last().and_then(|event| event.id).unwrap_or(0);
        collected.extend(read_events(&app.client, &app.address, &id, after, rng.random_range(1..=20)).await);
    }
    let after = collected.last().and_then(|event| event.id).unwrap_or(0);
    collected.extend(read_events(&app.client, &app.address, &id, after, usize::MAX).await);
    let stored = read_events(&app.client, &app.address, &id, 0, usize::MAX).await;
    let seqs: Vec<i64> = collected.iter().map(|event| event.id.unwrap()).collect();
    let expected: Vec<i64> = (1..=stored.len() as i64).collect();
    let gaps = expected.iter().filter(|seq| !seqs.contains(seq)).count();
    let duplicates = seqs.len() - {
        let mut unique = seqs.clone();
        unique.dedup();
        unique.len()
    };
    println!("sse torture: 100 reconnections, {} events, {gaps} gaps, {duplicates} duplicates", seqs.len());
    assert_eq!(seqs, expected, "the resumed stream differs from the stored sequence");
    assert!(collected.iter().zip(&stored).all(|(seen, kept)| seen.data == kept.data));
    assert_eq!(app.job(&id).await["status"], "succeeded");
    app.stop().await;
}
