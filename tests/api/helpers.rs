//! Starting the application for a test, talking to it, and reading its event streams.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use asynclab::api::state::AppState;
use asynclab::cli::Cli;
use asynclab::config::ServeConfig;
use asynclab::startup::Application;
use asynclab::store::{JobStore, StoreLocation};
use asynclab::targets::listener::CountingListener;
use asynclab::targets::tls_listener::TlsListener;
use asynclab::targets::{TargetStats, TargetStatsSnapshot};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The PostgreSQL server tests use (override with TEST_DATABASE_SERVER).
fn database_server() -> String {
    std::env::var("TEST_DATABASE_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The job stores every API test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The PostgreSQL server.
    Postgres,
    /// An embedded SQLite file.
    Sqlite,
}

/// Generates, for each named `async fn(Backend)`, one test per store: `postgres::NAME` and
/// `sqlite::NAME`.
#[macro_export]
macro_rules! both_stores {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test($crate::helpers::Backend::Postgres).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test($crate::helpers::Backend::Sqlite).await
            })*
        }
    };
}

/// A database of its own for one test, dropped when the value is.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    backend: Backend,
    /// The SQLite file's directory.
    directory: PathBuf,
}

impl TestDatabase {
    /// A new, not yet created, database (the application creates it).
    pub fn new(backend: Backend) -> Self {
        let name = format!("asynclab_test_{}", uuid::Uuid::new_v4().simple());
        let directory = std::env::temp_dir().join(&name);
        let url = match backend {
            Backend::Postgres => format!("{}/{name}", database_server()),
            Backend::Sqlite => format!("sqlite://{}", directory.join("asynclab.db").display()),
        };
        TestDatabase { url, backend, directory }
    }

    /// Opens the store directly, as another process would.
    pub async fn open_store(&self) -> Arc<dyn JobStore> {
        StoreLocation::from_url(Some(&self.url), &self.directory).unwrap().open(2).await.expect("store opens")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            let _ = std::fs::remove_dir_all(&self.directory);
            return;
        }
        let url = self.url.clone();
        // Dropping needs async I/O; do it on a thread of its own so it works inside a runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let _ = sqlx::Postgres::force_drop_database(&url).await;
            });
        })
        .join();
    }
}

/// The API of a server at an address: launch, read jobs, follow their events.
pub struct ApiClient {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A client for it.
    pub client: reqwest::Client,
}

/// A running application; its API methods come from [`ApiClient`].
pub struct TestApp {
    /// The application's API.
    pub api: ApiClient,
    /// The application's state (store, runner…).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept alive while the app runs.
    pub data_dir: PathBuf,
}

/// Settings for a test app: its own data dir, port 0, the given database.
pub fn test_config(database_url: &str, extra: &[&str]) -> ServeConfig {
    let data_dir = std::env::temp_dir().join(format!("asynclab-test-{}", uuid::Uuid::new_v4().simple()));
    let mut args = vec![
        "asynclab".to_string(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        database_url.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--shutdown-grace-ms".into(),
        "5000".into(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    Cli::try_parse_from(args).expect("test arguments parse").serve
}

impl TestApp {
    /// Starts an app on `database` with extra command-line flags.
    pub async fn start(database: &TestDatabase, extra: &[&str]) -> TestApp {
        let config = test_config(&database.url, extra);
        let data_dir = config.data_dir.clone();
        let application = Application::build(config).await.expect("application builds");
        let address = format!("http://{}", application.address());
        let state = application.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        TestApp { api: ApiClient::new(address), state, shutdown: Some(shutdown), server: Some(server), data_dir }
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    async fn stop_in_place(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stops cleanly");
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl std::ops::Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl ApiClient {
    /// A client for the server at `address` (`http://HOST:PORT`).
    pub fn new(address: String) -> ApiClient {
        ApiClient { address, client: reqwest::Client::new() }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs `body` to `/experiments/{kind}`.
    pub async fn launch(&self, kind: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(&format!("/experiments/{kind}"))).json(body).send().await.expect("launch request")
    }

    /// Launches and returns the accepted job's id.
    pub async fn launch_ok(&self, kind: &str, body: &Value) -> String {
        let response = self.launch(kind, body).await;
        assert_eq!(response.status(), 202, "launch answered {:?}", response.text().await);
        let job: Value = response.json().await.expect("job json");
        job["id"].as_str().expect("job id").to_string()
    }

    /// GET `path` as JSON, asserting 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json body")
    }

    /// The job as the API shows it.
    pub async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/jobs/{id}")).await
    }

    /// Polls until the job's status satisfies `done` (at most 60 s).
    pub async fn wait_for(&self, id: &str, done: impl Fn(&str) -> bool) -> Value {
        for _ in 0..6000 {
            let job = self.job(id).await;
            if done(job["status"].as_str().unwrap_or_default()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} never reached the awaited status");
    }

    /// Polls until the job has ended.
    pub async fn wait_until_ended(&self, id: &str) -> Value {
        self.wait_for(id, |status| !matches!(status, "queued" | "running")).await
    }

    /// Opens the job's event stream, resuming after `last_event_id` when given.
    pub async fn open_events(&self, id: &str, last_event_id: Option<i64>) -> SseReader {
        let mut request = self.client.get(self.url(&format!("/jobs/{id}/events")));
        if let Some(last) = last_event_id {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let response = request.send().await.expect("events request");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        SseReader::new(response)
    }

    /// Reads the job's whole event stream (after `last_event_id`) up to its `end` event.
    pub async fn all_events(&self, id: &str, last_event_id: Option<i64>) -> Vec<SseEvent> {
        let mut reader = self.open_events(id, last_event_id).await;
        let mut events = Vec::new();
        while let Some(event) = reader.next().await {
            let end = event.event == "end";
            events.push(event);
            if end {
                break;
            }
        }
        events
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:`, when present.
    pub id: Option<i64>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:` parsed as JSON.
    pub data: Value,
}

/// Parses an event stream as it arrives.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// Parses the body of an event-stream response.
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event, or `None` when the stream ends (10 s without one fails the test).
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next()).await.expect("an event within 10 s");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(error)) => panic!("event stream broke: {error}"),
                None => return None,
            }
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = "message".to_string();
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    if data.is_empty() {
        return None; // a keep-alive comment
    }
    Some(SseEvent { id, event, data: serde_json::from_str(&data).expect("event data is JSON") })
}

/// A built-in HTTP target on its own port, so its counters see only the test's traffic.
pub struct TestTarget {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    stats: Arc<TargetStats>,
    server: JoinHandle<()>,
}

impl TestTarget {
    /// A loopback listener counting into fresh counters, its address, and the target's routes.
    async fn parts() -> (CountingListener, std::net::SocketAddr, Arc<TargetStats>, axum::Router) {
        let stats = Arc::new(TargetStats::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let address = listener.local_addr().expect("bound address");
        let router = axum::Router::new().nest("/targets", asynclab::targets::http::router(stats.clone()));
        (CountingListener::new(listener, stats.clone()), address, stats, router)
    }

    /// Starts a target server.
    pub async fn start() -> TestTarget {
        let (listener, address, stats, router) = Self::parts().await;
        let address = format!("http://{address}");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("target serves");
        });
        TestTarget { address, stats, server }
    }

    /// Starts an `https` target (HTTP/2 and HTTP/1.1 by ALPN) with `certificates`' server
    /// certificate; its address names the host `localhost`, as the certificate does.
    pub async fn start_tls(certificates: &TestCertificates) -> TestTarget {
        let (listener, address, stats, router) = Self::parts().await;
        let address = format!("https://localhost:{}", address.port());
        let config = asynclab::tls::server_config(&certificates.server_certificate, &certificates.server_key).expect("server TLS");
        let listener = TlsListener::new(listener, config).expect("TLS listener");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("target serves");
        });
        TestTarget { address, stats, server }
    }

    /// The target's counters now.
    pub fn stats(&self) -> TargetStatsSnapshot {
        self.stats.snapshot()
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A throw-away certificate authority and a server certificate it signed for `localhost` and
/// 127.0.0.1, made with the `openssl` command.
pub struct TestCertificates {
    /// The CA's certificate (PEM): what a client must trust.
    pub ca_certificate: PathBuf,
    /// The server's certificate (PEM).
    pub server_certificate: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
}

impl TestCertificates {
    /// Creates the CA and the server certificate in a new temporary folder.
    pub fn create() -> TestCertificates {
        let folder = std::env::temp_dir().join(format!("asynclab-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = |name: &str| folder.join(name).display().to_string();
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl").args(args).output().expect("the openssl command runs");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=asynclab test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.csr"),
        ]);
        std::fs::write(
            folder.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("server.ext"),
            "-out",
            &path("server.pem"),
        ]);
        TestCertificates {
            ca_certificate: folder.join("ca.pem"),
            server_certificate: folder.join("server.pem"),
            server_key: folder.join("server.key"),
        }
    }
}

/// Asserts a problem+json response with `status` that names `field`; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, field: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&field), "expected field {field} in {body}");
    body
}
