//! The `file-io` experiment through the API: every read mode verifies what was written, names
//! cannot leave the sandbox, and temporary files are gone at the end.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

async fn every_mode_reads_back_verified_bytes(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok(
            "file-io",
            &json!({"files": 3, "lines": 1000, "line_bytes": 64, "concurrency": 2, "subdir": "work", "chunk_bytes": 4096}),
        )
        .await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    assert_eq!(report["write"]["bytes"], 3 * 64_000);
    let modes = report["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|mode| mode["mode"].as_str().unwrap()).collect();
    assert_eq!(names, ["lines", "whole", "chunked", "blocking"]);
    for mode in modes {
        assert_eq!(mode["verified"], true, "{mode}");
        assert_eq!(mode["bytes"], 192_000, "{mode}");
        assert_eq!(mode["lines"], 3000, "{mode}");
        assert!(mode["mb_per_s"].as_f64().unwrap() > 0.0, "{mode}");
    }
    let threads = modes[3]["blocking_threads"].as_u64().unwrap();
    // One thread per file at most; fewer when the pool reuses an idle one.
    assert!((1..=3).contains(&threads), "{threads}");
    assert_eq!(modes[0]["blocking_threads"], serde_json::Value::Null);
    assert_eq!(report["bytes_verified"], 4 * 192_000);
    assert!(!app.data_dir.join("jobs").join(&id).exists(), "the sandbox is removed");
    app.stop().await;
}

async fn temporary_files_are_deleted(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("file-io", &json!({"files": 5, "size_bytes": 10_000, "modes": ["whole"], "temp_files": true})).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["temp_files_deleted"], 5);
    assert_eq!(job["result"]["modes"][0]["verified"], true);
    assert!(!app.data_dir.join("jobs").join(&id).exists());
    app.stop().await;
}

async fn names_and_sizes_are_checked(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    for subdir in ["../escape", "/etc", "a/b", ".."] {
        assert_problem(app.launch("file-io", &json!({"subdir": subdir})).await, 422, "subdir").await;
    }
    assert_problem(app.launch("file-io", &json!({"files": 1001})).await, 422, "files").await;
    assert_problem(app.launch("file-io", &json!({"files": 1000, "size_bytes": 2_000_000})).await, 422, "size_bytes").await;
    assert_problem(app.launch("file-io", &json!({"modes": ["lines", "lines"]})).await, 422, "modes").await;
    assert_problem(app.launch("file-io", &json!({"modes": ["mmap"]})).await, 422, "modes[0]").await;
    app.stop().await;
}

crate::both_stores!(every_mode_reads_back_verified_bytes, temporary_files_are_deleted, names_and_sizes_are_checked);
