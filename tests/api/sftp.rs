//! The `sftp` experiment through the API, against the in-process server and against OpenSSH's
//! sshd on 127.0.0.1:2222 (started by scripts/sshd.sh): checksummed round trips, clear errors
//! for a wrong password and a refused connection, `remote_dir` confinement, and cancellation.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

/// The OpenSSH server scripts/sshd.sh runs, and its test user's password.
const OPENSSH_URL: &str = "sftp://asynclab-sftp@127.0.0.1:2222/";
const OPENSSH_PASSWORD: &str = "asynclab-test";

fn assert_round_trip(job: &serde_json::Value, files: u64, size: u64) {
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["files_verified"], files, "{report}");
    assert_eq!(report["bytes_verified"], files * size, "{report}");
    assert_eq!(report["remote_cleaned"], true, "{report}");
    assert!(report["host_key"].as_str().unwrap().starts_with("SHA256:"), "{report}");
    // Both servers take our first choice.
    assert_eq!(report["cipher"], "aes256-gcm@openssh.com", "{report}");
    for phase in ["upload", "download"] {
        assert_eq!(report[phase]["files"], files, "{report}");
        assert_eq!(report[phase]["latency"]["count"], files, "{report}");
        assert!(report[phase]["mb_per_s"].as_f64().unwrap() > 0.0, "{report}");
    }
}

async fn round_trip_through_the_in_process_server(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok("sftp", &json!({"files": 6, "size_bytes": 300_001, "concurrency": 3, "requests_in_flight": 8, "block_bytes": 32768, "remote_dir": "runs/a"}))
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_round_trip(&job, 6, 300_001);
    assert_eq!(job["result"]["in_process_server"], true);
    let run_dir = app.data_dir.join("sftp/runs/a");
    assert!(run_dir.is_dir());
    assert_eq!(std::fs::read_dir(&run_dir).unwrap().count(), 0, "the run's remote directory is removed");
    let upload = app.launch_ok("sftp", &json!({"direction": "upload", "files": 2, "size_bytes": 1000})).await;
    let job = app.wait_until_ended(&upload).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["files_verified"], 2);
    assert_eq!(job["result"]["download"], serde_json::Value::Null);
    app.stop().await;
}

async fn round_trip_through_openssh(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--sftp-url", OPENSSH_URL, "--sftp-password", OPENSSH_PASSWORD]).await;
    let id = app.launch_ok("sftp", &json!({"files": 5, "size_bytes": 1_000_003, "concurrency": 2, "requests_in_flight": 16})).await;
    let job = app.wait_until_ended(&id).await;
    assert_round_trip(&job, 5, 1_000_003);
    assert_eq!(job["result"]["in_process_server"], false);
    assert_eq!(job["result"]["target"], "sftp://asynclab-sftp@127.0.0.1:2222/");
    let download =
        app.launch_ok("sftp", &json!({"direction": "download", "files": 3, "size_bytes": 70_000, "remote_dir": "lab-runs"})).await;
    let job = app.wait_until_ended(&download).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["upload"], serde_json::Value::Null);
    assert_eq!(job["result"]["download"]["bytes"], 210_000);
    assert_eq!(job["result"]["remote_cleaned"], true);
    let text = job.to_string();
    assert!(!text.contains(OPENSSH_PASSWORD), "the password is never echoed");
    app.stop().await;
}

async fn a_wrong_password_fails_the_job_clearly(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--sftp-url", OPENSSH_URL, "--sftp-password", "not-the-password"]).await;
    let id = app.launch_ok("sftp", &json!({"files": 1, "size_bytes": 10})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "refused", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("authentication failed"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
    app.stop().await;
}

async fn a_refused_connection_fails_the_job_clearly(backend: Backend) {
    let database = TestDatabase::new(backend);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("sftp://nobody@127.0.0.1:{closed_port}/");
    let app = TestApp::start(&database, &["--sftp-url", &url, "--sftp-password", "x"]).await;
    let id = app.launch_ok("sftp", &json!({"files": 1, "size_bytes": 10})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "connect", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains(&format!("127.0.0.1:{closed_port}")), "{job}");
    app.stop().await;
}

async fn remote_dir_cannot_leave_the_target_directory(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    for dir in ["../outside", "/etc", "a/../../b", ""] {
        assert_problem(app.launch("sftp", &json!({"remote_dir": dir})).await, 422, "remote_dir").await;
    }
    assert_problem(app.launch("sftp", &json!({"password": "x"})).await, 422, "password").await;
    assert_problem(app.launch("sftp", &json!({"requests_in_flight": 0})).await, 422, "requests_in_flight").await;
    app.stop().await;
}

async fn cancelling_mid_transfer_leaves_no_local_files(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("sftp", &json!({"files": 400, "size_bytes": 262_144, "concurrency": 1, "direction": "both"})).await;
    let sandbox = app.data_dir.join("jobs").join(&id);
    for _ in 0..6000 {
        let job = app.job(&id).await;
        if job["progress"]["phase"] == "upload" || job["status"] != "running" && job["status"] != "queued" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(sandbox.is_dir(), "the job is writing its local files");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    assert!(!sandbox.exists(), "no local file is left behind");
    app.stop().await;
}

crate::both_stores!(
    round_trip_through_the_in_process_server,
    round_trip_through_openssh,
    a_wrong_password_fails_the_job_clearly,
    a_refused_connection_fails_the_job_clearly,
    remote_dir_cannot_leave_the_target_directory,
    cancelling_mid_transfer_leaves_no_local_files
);
