//! Secrets stay secret: a server given an SFTP password, an S3 secret key and an API token runs
//! jobs that use them, and none appears in the job store's files, the event streams, the job
//! documents or the server's log (at debug level); neither does an API token it created, nor a
//! wrong token a caller presented (which is logged as a failed authentication).

use std::process::Stdio;

use serde_json::{Value, json};

use crate::reliability::ServerProcess;

const SFTP_URL: &str = "sftp://asynclab-sftp@127.0.0.1:2222/";
/// The password scripts/sshd.sh gives its test user.
const SFTP_PASSWORD: &str = "asynclab-test";
const S3_SECRET: &str = "Zq8xK2-s3-secret-never-shown";
const TOKEN: &str = "tok-4c1f9e2b-never-shown";
/// A wrong token a caller presents.
const GUESSED_TOKEN: &str = "alab_0192f0a1b2c3d4e5f60718293a4b5c6d_6e65766572206c6f67676564206e6f722073746f72656420616e797768657265";

#[tokio::test]
async fn no_secret_reaches_the_store_the_events_or_the_log() {
    let folder = std::env::temp_dir().join(format!("asynclab-secrets-{}", uuid::Uuid::new_v4().simple()));
    let data_dir = folder.join("data");
    std::fs::create_dir_all(&folder).unwrap();
    let log_path = folder.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let client = reqwest::Client::new();
    let flags = [
        "--token",
        TOKEN,
        "--sftp-url",
        SFTP_URL,
        "--sftp-password",
        SFTP_PASSWORD,
        "--s3-endpoint",
        "http://127.0.0.1:5000",
        "--s3-access-key-id",
        "asynclab-secrets",
        "--s3-secret-access-key",
        S3_SECRET,
    ];
    let (server, _) = ServerProcess::start_with(&data_dir, &client, &flags, (Stdio::from(log), "debug")).await;
    let authorized = |request: reqwest::RequestBuilder| request.bearer_auth(TOKEN);
    let launches = [
        ("sftp", json!({"files": 2, "size_bytes": 10_000})),
        ("s3", json!({"bucket": "asynclab-secrets", "objects": 2, "size_bytes": 10_000})),
    ];
    let mut exposed = String::new();
    for (kind, params) in launches {
        let response = authorized(client.post(format!("{}/experiments/{kind}", server.address))).json(&params).send().await.unwrap();
        assert_eq!(response.status(), 202, "{kind}");
        let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let events = authorized(client.get(format!("{}/jobs/{id}/events", server.address))).send().await.unwrap().text().await.unwrap();
        assert!(events.contains("event: end"), "{kind}: {events}");
        let job = authorized(client.get(format!("{}/jobs/{id}", server.address))).send().await.unwrap().text().await.unwrap();
        assert!(job.contains("\"status\":\"succeeded\""), "{kind} ran with the secret: {job}");
        exposed.push_str(&events);
        exposed.push_str(&job);
    }
    let listing = authorized(client.get(format!("{}/jobs", server.address))).send().await.unwrap().text().await.unwrap();
    exposed.push_str(&listing);
    // A created API token is shown once, to its creator; a wrong one is refused and logged.
    let created: Value = authorized(client.post(format!("{}/tokens", server.address)))
        .json(&json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created_token = created["token"].as_str().unwrap().to_string();
    assert_eq!(client.get(format!("{}/jobs", server.address)).bearer_auth(&created_token).send().await.unwrap().status(), 200);
    let tokens = authorized(client.get(format!("{}/tokens", server.address))).send().await.unwrap().text().await.unwrap();
    exposed.push_str(&tokens);
    let refused = client.get(format!("{}/jobs", server.address)).bearer_auth(GUESSED_TOKEN).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    server.terminate();

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&data_dir).unwrap().flatten() {
        if entry.path().is_file() {
            stored.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!stored.is_empty(), "the store's files were read");
    let stored = String::from_utf8_lossy(&stored);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG") || log.contains("INFO"), "the log was captured: {log}");
    assert!(log.contains("authentication failed"), "the refused token was logged: {log}");
    for secret in [SFTP_PASSWORD, S3_SECRET, TOKEN, GUESSED_TOKEN, created_token.as_str()] {
        assert!(!exposed.contains(secret), "{secret} in the API's answers");
        assert!(!stored.contains(secret), "{secret} in the job store's files");
        assert!(!log.contains(secret), "{secret} in the server's log");
    }
    let _ = std::fs::remove_dir_all(&folder);
}
