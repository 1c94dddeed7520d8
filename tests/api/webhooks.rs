//! Job-finished webhooks: the final job POSTed to the launch's URL, signed, retried with backoff
//! on 5xx and transport errors, given up on a refusal, refused at launch outside the allowlist
//! or with a credential in the URL, and still delivered after the server restarted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{ApiClient, Backend, TestApp, TestDatabase, assert_problem};

crate::both_stores!(
    the_final_job_is_delivered_signed_after_retries,
    refusals_are_final_and_bad_urls_are_refused_at_launch,
    a_pending_delivery_survives_a_restart,
);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook receiver answering its scripted statuses in turn (the last one for ever after).
#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Vec<u16>>,
}

impl Receiver {
    /// Serves on `listener`, answering `answers` in turn.
    fn serve(listener: TcpListener, answers: &[u16]) -> Receiver {
        let receiver = Receiver { received: Arc::default(), answers: Arc::new(answers.to_vec()) };
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    async fn start(answers: &[u16]) -> (Receiver, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        (Receiver::serve(listener, answers), address)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut received = receiver.received.lock().unwrap();
    received.push(Received { headers, body });
    let answer = receiver.answers.get(received.len() - 1).or(receiver.answers.last()).copied().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap()
}

fn hook_url(address: SocketAddr) -> String {
    format!("http://{address}/hook")
}

async fn metrics(app: &ApiClient) -> String {
    app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// Polls the job until its webhook is no longer pending (at most 60 s).
async fn settled_webhook(app: &ApiClient, id: &str) -> Value {
    for _ in 0..600 {
        let job = app.job(id).await;
        if job["webhook"]["state"] != "pending" {
            return job["webhook"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the webhook of job {id} stayed pending");
}

async fn the_final_job_is_delivered_signed_after_retries(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--webhook-secret", "hook-key"]).await;
    let (receiver, address) = Receiver::start(&[503, 503, 204]).await;
    let body = json!({"tasks": 2, "max_delay_ms": 1, "labels": {"branch": "main"}, "webhook": {"url": hook_url(address)}});
    let id = app.launch_ok("task-local", &body).await;
    let accepted = app.job(&id).await;
    assert_eq!(accepted["webhook"]["url"], hook_url(address));

    let webhook = settled_webhook(&app, &id).await;
    assert_eq!(webhook["state"], "delivered", "{webhook}");
    assert_eq!(webhook["attempts"], 3, "two 503s were retried: {webhook}");
    assert_eq!(webhook["last_attempt"]["status"], 204);

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.headers["x-asynclab-delivery"], id.as_str(), "the same delivery id on every attempt");
        assert_eq!(request.headers["x-asynclab-event"], "job.finished");
        assert_eq!(request.headers["content-type"], "application/json");
        let expected = asynclab::jobs::webhooks::signature(b"hook-key", &request.body);
        assert_eq!(request.headers["x-asynclab-signature"], expected.as_str(), "signed with the configured key");
        let job: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(job["id"], id.as_str());
        assert_eq!(job["status"], "succeeded", "the final representation");
        assert!(job["result"].is_object(), "with the report");
        assert_eq!(job["labels"]["branch"], "main");
    }

    let metrics = metrics(&app).await;
    assert!(metrics.contains(r#"asynclab_webhook_attempts_total{outcome="retry"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"asynclab_webhook_attempts_total{outcome="delivered"} 1"#), "{metrics}");
    app.stop().await;
}

async fn refusals_are_final_and_bad_urls_are_refused_at_launch(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let (receiver, address) = Receiver::start(&[404]).await;
    let id = app.launch_ok("task-local", &json!({"tasks": 1, "max_delay_ms": 1, "webhook": {"url": hook_url(address)}})).await;
    let webhook = settled_webhook(&app, &id).await;
    assert_eq!(webhook["state"], "failed", "a 404 is not retried: {webhook}");
    assert_eq!(webhook["attempts"], 1);
    assert_eq!(webhook["last_attempt"]["status"], 404);
    assert!(app.job(&id).await["webhook"]["last_attempt"]["at"].is_string());
    assert_eq!(receiver.received().len(), 1);
    assert!(metrics(&app).await.contains(r#"asynclab_webhook_attempts_total{outcome="failed"} 1"#));

    for (url, reason) in [
        ("http://192.0.2.7/hook", "not allowed"),
        ("http://127.0.0.1:9/hook?api_token=abc", "credential"),
        ("http://ci:secret@127.0.0.1:9/hook", "user or password"),
        ("file:///etc/passwd", "http or https"),
    ] {
        let refused = app.launch("task-local", &json!({"tasks": 1, "webhook": {"url": url}})).await;
        let problem = assert_problem(refused, 422, "webhook.url").await;
        assert!(problem.to_string().contains(reason), "{url}: {problem}");
    }
    let refused = app.launch("task-local", &json!({"tasks": 1, "webhook": "http://127.0.0.1:9/hook"})).await;
    assert_problem(refused, 422, "webhook").await;
    assert!(app.job(&id).await["webhook"].is_object());
    let plain = app.launch_ok("task-local", &json!({"tasks": 1, "max_delay_ms": 1})).await;
    assert!(app.wait_until_ended(&plain).await.get("webhook").is_none(), "no webhook, no field");
    app.stop().await;
}

async fn a_pending_delivery_survives_a_restart(backend: Backend) {
    let database = TestDatabase::new(backend);
    // A port with nobody listening yet: every attempt is refused until the receiver starts.
    let address = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("task-local", &json!({"tasks": 1, "max_delay_ms": 1, "webhook": {"url": hook_url(address)}})).await;
    app.wait_until_ended(&id).await;
    let mut tried = Value::Null;
    for _ in 0..600 {
        tried = app.job(&id).await["webhook"].clone();
        if tried["attempts"].as_u64() >= Some(1) && tried["last_attempt"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tried["state"], "pending", "a refused connection is retried: {tried}");
    assert!(tried["last_attempt"]["error"].as_str().is_some_and(|error| !error.is_empty()), "{tried}");
    app.stop().await;

    let receiver = Receiver::serve(TcpListener::bind(address).await.unwrap(), &[200]);
    let restarted = TestApp::start(&database, &[]).await;
    let webhook = settled_webhook(&restarted, &id).await;
    assert_eq!(webhook["state"], "delivered", "{webhook}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let job: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(job["status"], "succeeded");
    restarted.stop().await;
}
