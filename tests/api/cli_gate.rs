//! `asynclab run` with labels and a baseline gate: exit 0 without a regression, 2 with one
//! (client-side `--baseline` and the server-side gate alike), 4 when no baseline matches unless
//! `--baseline-optional`.
//!
//! The target is a server of the test's own whose delay changes between runs, so the runs'
//! parameters (its URL) stay the same: 20 ms, then 60 ms for the regression, far beyond what a
//! loaded machine's noise does to a median.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::helpers::{Backend, TestApp, TestDatabase};

crate::both_stores!(the_baseline_gate_sets_the_exit_code);

async fn run_cli(server: &str, args: &[String]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_asynclab"));
    command.arg("run").args(args).args(["--server", server]).env_remove("ASYNCLAB_TOKEN").env_remove("ASYNCLAB_SERVER");
    command.stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("the client ends within 60 s").expect("the client runs")
}

fn text(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A target answering `/slow` after the current delay.
async fn adjustable_target() -> (String, Arc<AtomicU64>) {
    let delay_ms = Arc::new(AtomicU64::new(20));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let shared = delay_ms.clone();
    let router = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let delay_ms = shared.load(Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, delay_ms)
}

async fn the_baseline_gate_sets_the_exit_code(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let (url, delay_ms) = adjustable_target().await;
    let url_param = format!("url={url}");
    let fanout = ["http-fanout", "-p", &url_param, "-p", "count=100", "-p", "max_connections=2"];
    let with = |extra: &[&str]| fanout.iter().chain(extra).map(|arg| arg.to_string()).collect::<Vec<String>>();

    let baseline = run_cli(&app.address, &with(&["--label", "branch=main", "--label", "commit=aaa1111", "--json"])).await;
    assert_eq!(baseline.status.code(), Some(0), "{}", text(&baseline));
    let job: serde_json::Value = serde_json::from_slice(&baseline.stdout).unwrap();
    assert_eq!(job["labels"], serde_json::json!({"branch": "main", "commit": "aaa1111"}));
    let baseline_id = job["id"].as_str().unwrap().to_string();

    let same =
        run_cli(&app.address, &with(&["--label", "branch=pr", "--baseline", "branch:main", "--max-regression", "p50_ms=100%"])).await;
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains(&format!("compared with baseline job {baseline_id}")), "{}", text(&same));
    assert!(text(&same).contains("no regression"), "{}", text(&same));

    delay_ms.store(60, Ordering::SeqCst);
    let slower = run_cli(&app.address, &with(&["--baseline", "branch:main", "--max-regression", "p50_ms=50%"])).await;
    assert_eq!(slower.status.code(), Some(2), "{}", text(&slower));
    assert!(text(&slower).contains("REGRESSED"), "{}", text(&slower));

    let server_side = format!("baseline.job={baseline_id}");
    let gated = run_cli(&app.address, &with(&["-p", &server_side, "-p", "baseline.max_regression.p50_ms=50%"])).await;
    assert_eq!(gated.status.code(), Some(2), "the server-side gate's regression: {}", text(&gated));

    let orphan = run_cli(&app.address, &with(&["--baseline", "branch:nowhere"])).await;
    assert_eq!(orphan.status.code(), Some(4), "{}", text(&orphan));
    assert!(text(&orphan).contains("no baseline matches branch:nowhere"), "{}", text(&orphan));
    let optional = run_cli(&app.address, &with(&["--baseline", "branch:nowhere", "--baseline-optional"])).await;
    assert_eq!(optional.status.code(), Some(0), "{}", text(&optional));

    let bad = run_cli(&app.address, &with(&["--label", "password=x"])).await;
    assert_eq!(bad.status.code(), Some(4), "a refused label is a refused launch: {}", text(&bad));
    app.stop().await;
}
