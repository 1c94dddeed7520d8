//! `asynclab run` against a real server: an exit code per outcome, `--json` output, the token,
//! and resuming an event stream the network cut.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestApp, TestDatabase};

/// Runs `asynclab run ARGS --server SERVER` with a clean environment (plus `env`).
async fn run_cli(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_asynclab"));
    command
        .arg("run")
        .args(args)
        .args(["--server", server])
        .env_remove("ASYNCLAB_TOKEN")
        .env_remove("ASYNCLAB_SERVER")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("the client ends within 60 s").expect("the client runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The job id from the client's `job ID (KIND) launched` line.
fn launched_id(output: &Output) -> String {
    let text = stderr(output);
    let line = text.lines().find(|line| line.starts_with("job ")).unwrap_or_else(|| panic!("no launch line in {text}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// The sequence numbers of the `#SEQ KIND …` lines the client printed.
fn printed_seqs(output: &Output) -> Vec<i64> {
    stderr(output).lines().filter_map(|line| line.strip_prefix('#')?.split_whitespace().next()?.parse().ok()).collect()
}

fn sleeper() -> &'static str {
    r#"processes=[{"program":"sleep","args":["30"]}]"#
}

async fn exit_codes_follow_the_job_outcome(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let url = format!("url={}/targets/hello/{{i}}", app.address);

    let succeeded = run_cli(&app.address, &["http-fanout", "-p", &url, "-p", "count=40", "-p", "max_connections=2"], &[]).await;
    assert_eq!(succeeded.status.code(), Some(0), "{}", stderr(&succeeded));
    let table = stdout(&succeeded);
    assert!(table.starts_with(&format!("job {}  http-fanout  succeeded", launched_id(&succeeded))), "{table}");
    assert!(table.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == ["requests", "40"]), "{table}");
    assert!(table.lines().any(|line| line.starts_with("latency ") && line.contains(" p99 ")), "{table}");
    assert_eq!(printed_seqs(&succeeded).first(), Some(&1), "{}", stderr(&succeeded));

    let missed = run_cli(&app.address, &["http-fanout", "-p", &url, "-p", "count=20", "-p", "thresholds.min_rps=1e9"], &[]).await;
    assert_eq!(missed.status.code(), Some(2), "{}", stderr(&missed));
    assert!(stdout(&missed).contains("error (thresholds): thresholds missed: min_rps"), "{}", stdout(&missed));

    let failed = run_cli(&app.address, &["subprocess", "-p", sleeper(), "--timeout-ms", "300"], &[]).await;
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(app.job(&launched_id(&failed)).await["error"]["kind"], "timeout");

    let cancelled = run_cli(&app.address, &["subprocess", "-p", sleeper(), "--timeout", "1s", "--json"], &[]).await;
    assert_eq!(cancelled.status.code(), Some(3), "{}", stderr(&cancelled));
    assert!(stderr(&cancelled).contains("the --timeout passed: cancelling job"), "{}", stderr(&cancelled));
    let printed: Value = serde_json::from_str(&stdout(&cancelled)).expect("--json prints the job");
    assert_eq!(printed["status"], "cancelled");
    assert_eq!(app.job(printed["id"].as_str().unwrap()).await["status"], "cancelled");
    app.stop().await;
}

async fn ctrl_c_cancels_the_job_and_exits_3(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let mut client = tokio::process::Command::new(env!("CARGO_BIN_EXE_asynclab"))
        .args(["run", "subprocess", "-p", sleeper(), "--json", "--server", &app.address])
        .env_remove("ASYNCLAB_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client starts");
    let mut lines = BufReader::new(client.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("a line").unwrap() {
        let running = line.starts_with('#') && line.ends_with(" status running");
        seen.push(line);
        if running {
            break;
        }
    }
    let pid = i32::try_from(client.id().expect("still running")).unwrap();
    // SAFETY: kill(2) with a pid this test spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(line);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), client.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(3), "{seen:?}");
    assert!(seen.iter().any(|line| line.starts_with("interrupted: cancelling job")), "{seen:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("--json prints the job");
    assert_eq!(app.job(printed["id"].as_str().unwrap()).await["status"], "cancelled");
    app.stop().await;
}

async fn json_output_is_the_stored_job(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let params = std::env::temp_dir().join(format!("asynclab-cli-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&params, format!(r#"{{"url": "{}/targets/hello/{{i}}", "count": 1000}}"#, app.address)).unwrap();
    let output = run_cli(&app.address, &["http-fanout", "--params-file", params.to_str().unwrap(), "-p", "count=30", "--json"], &[]).await;
    std::fs::remove_file(&params).unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).expect("stdout is only the job's JSON");
    assert_eq!(printed, app.job(printed["id"].as_str().unwrap()).await);
    assert_eq!(printed["params"]["count"], 30, "-p overrides the file");

    let queued = run_cli(
        &app.address,
        &["http-fanout", "-p", &format!("url={}/targets/hello/{{i}}", app.address), "-p", "count=5", "--no-wait"],
        &[],
    )
    .await;
    assert_eq!(queued.status.code(), Some(0), "{}", stderr(&queued));
    let id = stdout(&queued).trim().to_string();
    assert_eq!(app.wait_until_ended(&id).await["status"], "succeeded");
    app.stop().await;
}

async fn refused_launches_and_unreachable_servers_exit_4(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--token", "s3cret-token"]).await;
    let url = format!("url={}/targets/hello/{{i}}", app.address);
    let token = [("ASYNCLAB_TOKEN", "s3cret-token")];

    let invalid = run_cli(&app.address, &["http-fanout", "-p", &url, "-p", "count=0", "-p", "max_connections=0"], &token).await;
    assert_eq!(invalid.status.code(), Some(4));
    let text = stderr(&invalid);
    assert!(text.contains("Invalid parameters (422)\n  count: must be between 1"), "{text}");
    assert!(text.contains("\n  max_connections: must be between 1 and 4096, got 0"), "{text}");

    let unknown = run_cli(&app.address, &["no-such-kind"], &token).await;
    assert_eq!(unknown.status.code(), Some(4));
    assert!(stderr(&unknown).contains("(404)"), "{}", stderr(&unknown));

    let no_token = run_cli(&app.address, &["http-fanout", "-p", &url, "-p", "count=5"], &[]).await;
    assert_eq!(no_token.status.code(), Some(4));
    assert!(stderr(&no_token).contains("(401)"), "{}", stderr(&no_token));

    let with_token = run_cli(&app.address, &["http-fanout", "-p", &url, "-p", "count=5"], &token).await;
    assert_eq!(with_token.status.code(), Some(0), "{}", stderr(&with_token));
    assert!(!stdout(&with_token).contains("s3cret") && !stderr(&with_token).contains("s3cret"));

    let malformed = run_cli(&app.address, &["http-fanout", "-p", "count"], &token).await;
    assert_eq!(malformed.status.code(), Some(4));
    assert!(stderr(&malformed).contains("-p count: expected KEY=VALUE"), "{}", stderr(&malformed));
    let usage = run_cli(&app.address, &["--timeout", "soon"], &token).await;
    assert_eq!(usage.status.code(), Some(4), "{}", stderr(&usage));

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let unreachable = run_cli(&format!("http://{closed}"), &["http-fanout", "-p", &url], &[]).await;
    assert_eq!(unreachable.status.code(), Some(4));
    assert!(stderr(&unreachable).contains("cannot reach"), "{}", stderr(&unreachable));
    app.stop().await;
}

async fn a_dropped_event_stream_is_resumed(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let upstream: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let proxy = CuttingProxy::start(upstream, 200).await;
    let url = format!("url={}/targets/hello/{{i}}", app.address);
    let output = run_cli(&proxy.address, &["http-fanout", "-p", &url, "-p", "count=150", "-p", "max_per_second=100"], &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy cut a stream");
    assert!(stderr(&output).contains("event stream dropped"), "{}", stderr(&output));

    let stored: Vec<i64> = app.all_events(&launched_id(&output), None).await.iter().filter_map(|event| event.id).collect();
    assert!(stored.len() > 4, "{stored:?}");
    assert_eq!(printed_seqs(&output), stored, "every event once, in order:\n{}", stderr(&output));
    app.stop().await;
}

crate::both_stores!(
    exit_codes_follow_the_job_outcome,
    ctrl_c_cancels_the_job_and_exits_3,
    json_output_is_the_stored_job,
    refused_launches_and_unreachable_servers_exit_4,
    a_dropped_event_stream_is_resumed,
);

/// A TCP proxy that cuts the first event stream it carries a few bytes after its response
/// header, then lets every later connection through.
struct CuttingProxy {
    address: String,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr, keep_bytes: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let armed = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, armed.clone(), keep_bytes));
            }
        });
        CuttingProxy { address, cut }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, cut: Arc<AtomicBool>, keep_bytes: usize) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut allowance: Option<usize> = None;
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        let header = chunk.windows(17).position(|window| window == b"text/event-stream");
        if let Some(at) = header.filter(|_| allowance.is_none() && !cut.swap(true, Ordering::SeqCst)) {
            allowance = Some(at + keep_bytes);
        }
        match allowance {
            Some(left) if chunk.len() >= left => {
                let _ = client_write.write_all(&chunk[..left]).await;
                break;
            }
            Some(left) => allowance = Some(left - chunk.len()),
            None => {}
        }
        if client_write.write_all(chunk).await.is_err() {
            break;
        }
    }
    requests.abort();
}
