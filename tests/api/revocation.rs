//! A revoked token stops working on every replica sharing the PostgreSQL store within a
//! second (the revocation's `NOTIFY`), and at once on the replica that revoked it — even though
//! each replica holds the tokens it checked in memory.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::helpers::{ApiClient, Backend, TestDatabase};
use crate::reliability::ServerProcess;
use crate::roles::{client_with, create_token};

/// The bootstrap token of the replicas.
const BOOTSTRAP: &str = "replicas-bootstrap-secret";
/// What the tracker promises.
const PROMISED: Duration = Duration::from_secs(1);

/// Polls `client` until a request with its token is refused; how long that took from `since`.
async fn refused_after(client: &ApiClient, since: Instant) -> Duration {
    loop {
        let status = client.client.get(client.url("/whoami")).send().await.unwrap().status();
        if status == 401 {
            return since.elapsed();
        }
        assert_eq!(status, 200);
        assert!(since.elapsed() < Duration::from_secs(30), "the token still works 30 s after its revocation");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revoked_token_stops_working_on_three_replicas_within_a_second() {
    let database = TestDatabase::new(Backend::Postgres);
    let dirs: Vec<_> =
        (0..3).map(|index| std::env::temp_dir().join(format!("asynclab-revocation-{index}-{}", uuid::Uuid::new_v4().simple()))).collect();
    let url = database.url.as_str();
    let replicas = join_all(dirs.iter().enumerate().map(|(index, dir)| async move {
        let id = format!("replica-{index}");
        let flags = ["--database-url", url, "--replica-id", id.as_str(), "--token", BOOTSTRAP];
        ServerProcess::start_with(dir, &reqwest::Client::new(), &flags, (Stdio::null(), "info")).await.0
    }))
    .await;

    let admin = client_with(&replicas[0].address, BOOTSTRAP);
    let token = create_token(&admin, "ci", "launcher", None).await;
    let users: Vec<ApiClient> = replicas.iter().map(|replica| client_with(&replica.address, &token)).collect();
    // Every replica checks the token once, and so holds it in memory.
    for user in &users {
        assert_eq!(user.get_json("/whoami").await["name"], "ci");
    }

    let revoked_at = Instant::now();
    let response = admin.client.delete(admin.url("/tokens/ci")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answered = revoked_at.elapsed();
    assert_eq!(users[0].client.get(users[0].url("/whoami")).send().await.unwrap().status(), 401, "refused at once where it was revoked");
    let others = join_all(users[1..].iter().map(|user| refused_after(user, revoked_at))).await;
    for (index, after) in others.iter().enumerate() {
        assert!(*after < PROMISED, "replica-{} still took the token {after:?} after the revocation", index + 1);
    }
    eprintln!("revocation answered in {answered:?}; the token refused on the other two replicas {others:?} after it was sent");
    drop(replicas);
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
