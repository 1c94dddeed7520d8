//! The `s3` experiment against two independent S3 implementations: the in-process endpoint
//! (s3s-fs) and moto's server on 127.0.0.1:5000 (`scripts/moto.sh`). Round trips with
//! verification, list pagination, cancellation mid-upload (no multipart upload or object left),
//! and the error paths: wrong credentials, a missing bucket, a refused connection, bad parameters.

use std::path::Path;
use std::time::Duration;

use asynclab::services::s3::S3Target;
use asynclab::targets::s3::S3Endpoint;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};

/// moto's server, started by `scripts/moto.sh`; it accepts any credentials.
const MOTO_URL: &str = "http://127.0.0.1:5000";
/// One MiB.
const MIB: u64 = 1 << 20;
/// The bucket the tests share; every run writes under its own job id.
const BUCKET: &str = "asynclab-tests";

fn moto_flags() -> [&'static str; 6] {
    ["--s3-endpoint", MOTO_URL, "--s3-access-key-id", "moto", "--s3-secret-access-key", "moto"]
}

async fn start(backend: Backend, extra: &[&str]) -> (TestDatabase, TestApp) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, extra).await;
    (database, app)
}

fn target(app: &TestApp) -> &S3Target {
    app.state.services.s3.as_ref().expect("the s3 target is built at start-up")
}

async fn run_ok(app: &TestApp, params: Value) -> Value {
    let id = app.launch_ok("s3", &params).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"].clone()
}

async fn run_failed(app: &TestApp, params: Value) -> Value {
    let id = app.launch_ok("s3", &params).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    job["error"].clone()
}

/// Keys under `prefix` in the bucket, as the app's own client lists them.
async fn keys_under(app: &TestApp, prefix: &str) -> usize {
    let listed = target(app).client.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.expect("list");
    listed.contents().len()
}

/// Polls `check` until it holds, for at most 10 s.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn assert_phase(report: &Value, phase: &str, objects: u64, bytes: u64) {
    let phase_report = &report[phase];
    assert_eq!(phase_report["objects"], objects, "{phase}: {report}");
    assert_eq!(phase_report["bytes"], bytes, "{phase}: {report}");
    assert_eq!(phase_report["latency"]["count"], objects, "{phase}: {report}");
    assert!(phase_report["objects_per_s"].as_f64().unwrap() > 0.0, "{phase}: {report}");
    if bytes > 0 {
        assert!(phase_report["mb_per_s"].as_f64().unwrap() > 0.0, "{phase}: {report}");
    }
}

/// Single-part objects, listed three keys a page: every phase runs and nothing is left.
async fn single_part_round_trip(app: &TestApp) {
    let report = run_ok(app, json!({"bucket": BUCKET, "objects": 12, "size_bytes": 100_000, "concurrency": 4, "list_page_size": 5})).await;
    assert_eq!(report["multipart"], json!({"multipart": false, "part_bytes": null, "parts_per_object": 1, "parts_uploaded": 0}));
    assert_phase(&report, "upload", 12, 1_200_000);
    assert_phase(&report, "download", 12, 1_200_000);
    assert_phase(&report, "delete", 12, 0);
    let list = &report["list"];
    assert_eq!((list["objects"].as_u64(), list["bytes"].as_u64(), list["pages"].as_u64()), (Some(12), Some(1_200_000), Some(3)), "{list}");
    assert_eq!(list["latency"]["count"], 3);
    assert_eq!(keys_under(app, report["key_prefix"].as_str().unwrap()).await, 0, "deleted");
}

/// Objects of two parts (5 MiB and a bit), parts in parallel, ETags in multipart form.
async fn multipart_round_trip(app: &TestApp) {
    let size = 5 * MIB + 4096;
    let report = run_ok(
        app,
        json!({"bucket": BUCKET, "objects": 3, "size_bytes": size, "concurrency": 4,
               "multipart_threshold_bytes": 5 * MIB, "part_bytes": 5 * MIB, "list_page_size": 2}),
    )
    .await;
    assert_eq!(report["multipart"], json!({"multipart": true, "part_bytes": 5 * MIB, "parts_per_object": 2, "parts_uploaded": 6}));
    assert_phase(&report, "upload", 3, 3 * size);
    assert_phase(&report, "download", 3, 3 * size);
    assert_eq!(report["list"]["pages"], 2);
    assert_eq!(keys_under(app, report["key_prefix"].as_str().unwrap()).await, 0, "deleted");
}

async fn round_trips_on_the_in_process_endpoint(backend: Backend) {
    let (_database, app) = start(backend, &[]).await;
    assert!(target(&app).endpoint.starts_with("http://127.0.0.1:"), "the in-process endpoint is the default");
    assert_eq!(app.get_json("/readyz").await["checks"]["s3"], "ok");
    single_part_round_trip(&app).await;
    multipart_round_trip(&app).await;
    app.stop().await;
}

async fn round_trips_on_moto(backend: Backend) {
    let (_database, app) = start(backend, &moto_flags()).await;
    assert_eq!(target(&app).endpoint, MOTO_URL);
    assert_eq!(app.get_json("/readyz").await["checks"]["s3"], "ok");
    single_part_round_trip(&app).await;
    multipart_round_trip(&app).await;
    app.stop().await;
}

/// Launches one 40 MiB object in 5 MiB parts, one request at a time, and cancels it once a
/// part is in; returns the run's key prefix.
async fn cancel_mid_upload(app: &TestApp) -> String {
    let id = app
        .launch_ok(
            "s3",
            &json!({"bucket": BUCKET, "objects": 1, "size_bytes": 40 * MIB, "concurrency": 1,
                    "multipart_threshold_bytes": 5 * MIB, "part_bytes": 5 * MIB, "operations": ["upload"]}),
        )
        .await;
    let started = app.wait_for(&id, |status| status != "queued").await;
    assert_eq!(started["status"], "running", "{started}");
    let mut progressed = false;
    for _ in 0..3000 {
        let job = app.job(&id).await;
        if job["progress"]["parts_uploaded"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(job["status"], "running", "cancelled mid-upload: {job}");
            progressed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(progressed, "a part was uploaded");
    let response = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert!(response.status().is_success(), "{:?}", response.status());
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let prefix = job["params"]["prefix"].as_str().unwrap();
    format!("{prefix}{id}/")
}

async fn a_cancelled_upload_leaves_no_multipart_upload_on_moto(backend: Backend) {
    let (_database, app) = start(backend, &moto_flags()).await;
    let prefix = cancel_mid_upload(&app).await;
    let client = &target(&app).client;
    let no_upload_left = eventually(async || {
        let uploads = client.list_multipart_uploads().bucket(BUCKET).prefix(&prefix).send().await.expect("list uploads");
        uploads.uploads().is_empty()
    })
    .await;
    assert!(no_upload_left, "the multipart upload under {prefix} was aborted");
    assert_eq!(keys_under(&app, &prefix).await, 0, "no object under {prefix}");
    app.stop().await;
}

/// Part files the in-process endpoint keeps for open multipart uploads.
fn part_files(root: &Path) -> usize {
    std::fs::read_dir(root)
        .map(|entries| entries.flatten().filter(|entry| entry.file_name().to_string_lossy().starts_with(".upload_id-")).count())
        .unwrap_or(0)
}

async fn a_cancelled_upload_leaves_no_part_on_the_in_process_endpoint(backend: Backend) {
    let (_database, app) = start(backend, &[]).await;
    let prefix = cancel_mid_upload(&app).await;
    let root = app.data_dir.join("s3");
    let mut parts = usize::MAX;
    let no_part_left = eventually(async || {
        parts = part_files(&root);
        parts == 0
    })
    .await;
    assert!(no_part_left, "{parts} part files left in {}", root.display());
    assert_eq!(keys_under(&app, &prefix).await, 0, "no object under {prefix}");
    app.stop().await;
}

async fn wrong_credentials_fail_with_a_refused_error(backend: Backend) {
    let root = std::env::temp_dir().join(format!("asynclab-s3-{}", uuid::Uuid::new_v4().simple()));
    let endpoint = S3Endpoint::start(&root).await.unwrap();
    let url = endpoint.url();
    let flags = ["--s3-endpoint", &url, "--s3-access-key-id", &endpoint.access_key_id, "--s3-secret-access-key", "not-the-secret"];
    let (_database, app) = start(backend, &flags).await;
    let error = run_failed(&app, json!({"bucket": BUCKET, "objects": 1, "size_bytes": 10})).await;
    assert_eq!(error["kind"], "refused", "{error}");
    assert!(error["message"].as_str().unwrap().contains("rejected the credentials"), "{error}");
    app.stop().await;
    drop(endpoint);
    let _ = std::fs::remove_dir_all(root);
}

async fn a_missing_bucket_fails_with_a_clear_error(backend: Backend) {
    let (_database, app) = start(backend, &[]).await;
    let error =
        run_failed(&app, json!({"bucket": "asynclab-no-such-bucket", "create_bucket": false, "objects": 1, "size_bytes": 10})).await;
    assert_eq!(error["kind"], "unavailable", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("asynclab-no-such-bucket") && message.contains("create_bucket"), "{error}");
    app.stop().await;
}

async fn a_refused_connection_fails_with_a_connect_error(backend: Backend) {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let (_database, app) = start(backend, &["--s3-endpoint", &url, "--s3-access-key-id", "a", "--s3-secret-access-key", "b"]).await;
    let error = run_failed(&app, json!({"bucket": BUCKET, "objects": 1, "size_bytes": 10})).await;
    assert_eq!(error["kind"], "connect", "{error}");
    assert!(error["message"].as_str().unwrap().contains(&url), "{error}");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "readiness depends on the job store only");
    assert_eq!(ready.json::<Value>().await.unwrap()["checks"]["s3"], "unreachable");
    app.stop().await;
}

async fn traversal_and_bad_names_are_rejected(backend: Backend) {
    let (_database, app) = start(backend, &[]).await;
    for prefix in ["../escape/", "a/../../b", "/absolute"] {
        assert_problem(app.launch("s3", &json!({"prefix": prefix})).await, 422, "prefix").await;
    }
    assert_problem(app.launch("s3", &json!({"bucket": "Not_A_Bucket"})).await, 422, "bucket").await;
    assert_problem(app.launch("s3", &json!({"part_bytes": MIB})).await, 422, "part_bytes").await;
    app.stop().await;
}

async fn an_endpoint_outside_the_allowlist_is_unavailable(backend: Backend) {
    let flags = ["--s3-endpoint", "http://s3.example.com", "--s3-access-key-id", "a", "--s3-secret-access-key", "b"];
    let (_database, app) = start(backend, &flags).await;
    let catalogue = app.get_json("/experiments").await;
    let entry = catalogue.as_array().unwrap().iter().find(|entry| entry["kind"] == "s3").expect("listed");
    assert_eq!(entry["available"], false);
    assert!(entry["unavailable_reason"].as_str().unwrap().contains("ASYNCLAB_ALLOW_HOSTS"), "{entry}");
    assert_problem(app.launch("s3", &json!({})).await, 409, "kind").await;
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["checks"].get("s3"), None, "a refused endpoint is never contacted: {ready}");
    app.stop().await;
}

crate::both_stores!(
    round_trips_on_the_in_process_endpoint,
    round_trips_on_moto,
    a_cancelled_upload_leaves_no_multipart_upload_on_moto,
    a_cancelled_upload_leaves_no_part_on_the_in_process_endpoint,
    wrong_credentials_fail_with_a_refused_error,
    a_missing_bucket_fails_with_a_clear_error,
    a_refused_connection_fails_with_a_connect_error,
    traversal_and_bad_names_are_rejected,
    an_endpoint_outside_the_allowlist_is_unavailable,
);
