//! The `subprocess` experiment with real child processes (the built-in `asynclab child` and
//! programs from /usr/bin): streamed output, exit codes and signals, the allowlist, output caps,
//! the concurrency limit, the cleared environment, and no orphan after a cancel.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, SseEvent, TestApp, TestDatabase, assert_problem};

/// An app whose `asynclab-child` is the asynclab binary Cargo built for these tests.
async fn start(database: &TestDatabase, extra: &[&str]) -> TestApp {
    let mut args = vec!["--child-exe", env!("CARGO_BIN_EXE_asynclab")];
    args.extend_from_slice(extra);
    TestApp::start(database, &args).await
}

fn child(args: &[&str], timeout_ms: u64) -> Value {
    json!({"program": "asynclab-child", "args": args, "timeout_ms": timeout_ms})
}

/// Runs a job to its end; returns the job and its `log` events' data.
async fn run(app: &TestApp, params: &Value) -> (Value, Vec<Value>) {
    let id = app.launch_ok("subprocess", params).await;
    let events = app.all_events(&id, None).await;
    let logs = events.iter().filter(|event| event.event == "log").map(|event| event.data["data"].clone()).collect();
    (app.job(&id).await, logs)
}

fn lines(logs: &[Value], process: u64, stream: &str) -> Vec<String> {
    logs.iter()
        .filter(|log| log["process"] == process && log["stream"] == stream)
        .map(|log| log["line"].as_str().unwrap().to_string())
        .collect()
}

/// The pids whose command line contains `marker`.
fn processes_marked(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline).contains(marker).then_some(pid)
        })
        .collect()
}

/// Polls until `marker`'s process count satisfies `done` (at most 10 s); returns the count.
pub async fn wait_for_processes(marker: &str, done: impl Fn(usize) -> bool) -> usize {
    for _ in 0..1000 {
        let count = processes_marked(marker).len();
        if done(count) {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    processes_marked(marker).len()
}

async fn output_is_streamed_as_log_events_in_order_with_exit_codes(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let params = json!({"processes": [
        child(&["--lines", "5", "--stream", "both", "--interval-ms", "5", "--prefix", "a"], 10_000),
        child(&["--lines", "3", "--stream", "stderr", "--prefix", "b", "--exit-code", "3"], 10_000),
        {"program": "seq", "args": ["1", "4"]},
    ]});
    let (job, logs) = run(&app, &params).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(lines(&logs, 0, "stdout"), ["a 1", "a 2", "a 3", "a 4", "a 5"]);
    assert_eq!(lines(&logs, 0, "stderr"), ["a 1", "a 2", "a 3", "a 4", "a 5"]);
    assert_eq!(lines(&logs, 1, "stderr"), ["b 1", "b 2", "b 3"]);
    assert!(lines(&logs, 1, "stdout").is_empty());
    assert_eq!(lines(&logs, 2, "stdout"), ["1", "2", "3", "4"]);
    let report = &job["result"];
    let processes = report["processes"].as_array().unwrap();
    assert_eq!(processes[0]["outcome"], "exited");
    assert_eq!(processes[0]["exit_code"], 0);
    assert_eq!(processes[0]["stdout"]["lines"], 5);
    assert_eq!(processes[0]["stdout"]["bytes"], 20);
    assert_eq!(processes[1]["exit_code"], 3);
    assert_eq!(processes[1]["stderr"]["lines"], 3);
    assert_eq!(processes[2]["program"], "seq");
    assert_eq!(report["totals"]["succeeded"], 2);
    assert_eq!(report["totals"]["exited_nonzero"], 1);
    assert_eq!(report["totals"]["lines"], 17);
    app.stop().await;
}

async fn a_timeout_sends_sigterm_and_a_child_ignoring_it_gets_sigkill(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let params = json!({"kill_after_ms": 300, "processes": [
        child(&["--lines", "1", "--hang"], 100),
        child(&["--lines", "1", "--hang", "--ignore-term"], 100),
    ]});
    let (job, logs) = run(&app, &params).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(lines(&logs, 1, "stdout"), ["line 1"]);
    let processes = job["result"]["processes"].as_array().unwrap();
    let terminated = &processes[0];
    assert_eq!(terminated["outcome"], "signalled");
    assert_eq!(terminated["signal_name"], "SIGTERM");
    assert_eq!((terminated["timed_out"].as_bool(), terminated["sigkill_sent"].as_bool()), (Some(true), Some(false)));
    assert!(terminated["duration_ms"].as_f64().unwrap() < 400.0, "ended before SIGKILL was due: {terminated}");
    let killed = &processes[1];
    assert_eq!(killed["outcome"], "signalled");
    assert_eq!(killed["signal_name"], "SIGKILL");
    assert_eq!(killed["signal"], 9);
    assert_eq!((killed["sigterm_sent"].as_bool(), killed["sigkill_sent"].as_bool()), (Some(true), Some(true)));
    assert!(killed["duration_ms"].as_f64().unwrap() >= 400.0, "timeout 100 ms + kill_after 300 ms: {killed}");
    assert_eq!(job["result"]["totals"]["timed_out"], 2);
    assert_eq!(job["result"]["totals"]["killed"], 1);
    app.stop().await;
}

async fn programs_outside_the_allowlist_are_refused(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let response = app.launch("subprocess", &json!({"processes": [{"program": "echo"}, {"program": "sh", "args": ["-c", "id"]}]})).await;
    let body = assert_problem(response, 422, "processes[1].program").await;
    assert!(body["detail"].as_str().unwrap().contains("\"sh\" is not allowed"), "{body}");
    let response = app.launch("subprocess", &json!({"processes": [{"program": "/usr/bin/echo"}]})).await;
    assert_problem(response, 422, "processes[0].program").await;
    app.stop().await;

    let restricted = start(&database, &["--allow-programs", "echo"]).await;
    let response = restricted.launch("subprocess", &json!({"processes": [child(&[], 1000)]})).await;
    assert_problem(response, 422, "processes[0].program").await;
    restricted.launch_ok("subprocess", &json!({"processes": [{"program": "echo", "args": ["hi"]}]})).await;
    restricted.stop().await;

    let none = start(&database, &["--allow-programs", ""]).await;
    let catalogue = none.get_json("/experiments").await;
    let entry = catalogue.as_array().unwrap().iter().find(|entry| entry["kind"] == "subprocess").unwrap().clone();
    assert_eq!(entry["available"], false);
    assert!(entry["unavailable_reason"].as_str().unwrap().contains("ASYNCLAB_ALLOW_PROGRAMS"), "{entry}");
    let response = none.launch("subprocess", &json!({"processes": [{"program": "echo"}]})).await;
    assert_eq!(response.status(), 409);
    none.stop().await;
}

async fn output_caps_cut_long_lines_and_count_the_rest(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let params = json!({"max_lines": 5, "max_line_bytes": 100, "processes": [child(&["--lines", "20", "--width", "300"], 10_000)]});
    let (job, logs) = run(&app, &params).await;
    assert_eq!(logs.len(), 5);
    assert!(logs.iter().all(|log| log["line"].as_str().unwrap().len() == 100 && log["cut"] == true), "{logs:?}");
    assert!(logs[0]["line"].as_str().unwrap().starts_with("line 1."));
    let stdout = &job["result"]["processes"][0]["stdout"];
    assert_eq!(stdout["lines"], 20);
    assert_eq!(stdout["bytes"], 20 * 301);
    assert_eq!(stdout["logged_lines"], 5);
    assert_eq!(stdout["cut_lines"], 5);
    assert_eq!(stdout["dropped_lines"], 15);
    assert_eq!(stdout["truncated"], true);
    app.stop().await;
}

async fn the_concurrency_limit_is_respected(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let processes: Vec<Value> = (0..6).map(|_| child(&["--lines", "2", "--interval-ms", "50"], 10_000)).collect();
    let (job, _) = run(&app, &json!({"concurrency": 2, "processes": processes})).await;
    let report = &job["result"];
    assert_eq!(report["max_concurrent"], 2, "{report}");
    assert_eq!(report["concurrency"], 2);
    assert_eq!(report["totals"]["succeeded"], 6);
    assert!(report["elapsed_ms"].as_f64().unwrap() >= 150.0, "three waves of 50 ms");
    app.stop().await;
}

async fn children_get_a_cleared_environment(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let (job, logs) = run(&app, &json!({"processes": [child(&["--print-env", "--lines", "0"], 10_000)]})).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(lines(&logs, 0, "stdout"), ["env 2: LANG,PATH"]);
    app.stop().await;
}

async fn cancelling_the_job_leaves_no_child_behind(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = start(&database, &[]).await;
    let marker = format!("orphan-check-{}", uuid::Uuid::new_v4().simple());
    let hanging: Vec<Value> = (0..3).map(|_| child(&["--lines", "1", "--hang", "--ignore-term", "--prefix", &marker], 60_000)).collect();
    let id = app.launch_ok("subprocess", &json!({"processes": hanging})).await;
    let mut stream = app.open_events(&id, None).await;
    let mut started = 0;
    while started < 3 {
        let event: SseEvent = stream.next().await.expect("events until the children run");
        if event.event == "progress" && event.data["data"]["state"] == "started" {
            started += 1;
        }
    }
    assert_eq!(wait_for_processes(&marker, |count| count == 3).await, 3, "three children run");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    assert_eq!(wait_for_processes(&marker, |count| count == 0).await, 0, "no child survives the cancel");
    app.stop().await;
}

crate::both_stores!(
    output_is_streamed_as_log_events_in_order_with_exit_codes,
    a_timeout_sends_sigterm_and_a_child_ignoring_it_gets_sigkill,
    programs_outside_the_allowlist_are_refused,
    output_caps_cut_long_lines_and_count_the_rest,
    the_concurrency_limit_is_respected,
    children_get_a_cleared_environment,
    cancelling_the_job_leaves_no_child_behind,
);
