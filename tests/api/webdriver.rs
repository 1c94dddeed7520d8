//! A headless Chromium driven over the W3C WebDriver protocol (chromedriver on a free loopback
//! port, spoken to with plain JSON over reqwest): navigate, find, type, click, run scripts,
//! read text and the browser's console, take screenshots.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Where Debian's `chromium` and `chromium-driver` packages put the browser and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for the page lasts before the test fails (the machine may be busy).
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A browser session and the chromedriver serving it; both end when this is dropped.
pub struct Browser {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    /// Killed on drop, which also ends the browser it started.
    _driver: Child,
    /// The browser's fresh profile, removed on drop.
    profile: PathBuf,
    closed: bool,
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the dashboard's browser test needs Chromium and chromedriver \
         (apt-get install -y --no-install-recommends chromium chromium-driver; `bash .ci/run` installs them); \
         package {package}"
    );
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and a laptop-sized window.
    pub async fn start() -> Browser {
        require(CHROMIUM, "chromium");
        require(CHROMEDRIVER, "chromium-driver");
        let port = crate::service_process::spare_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let status = client.get(format!("{base}/status")).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < PAGE_WAIT, "chromedriver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("asynclab-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("profile directory");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1366,1500",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let response = client.post(format!("{base}/session")).json(&capabilities).send().await.expect("new session request");
        let body: Value = response.json().await.expect("new session answer");
        let id = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {body}")).to_string();
        Browser { client, session: format!("{base}/session/{id}"), _driver: driver, profile, closed: false }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut request = self.client.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver request");
        let ok = response.status().is_success();
        let body: Value = response.json().await.expect("WebDriver answer is JSON");
        if ok { Ok(body["value"].clone()) } else { Err(body["value"].clone()) }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await.unwrap_or_else(|error| panic!("POST {path}: {error}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await.unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The first element matching the CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        match self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await {
            Ok(found) => Some(Element(found[ELEMENT_KEY].as_str().expect("element reference").to_string())),
            Err(error) if error["error"] == "no such element" => None,
            Err(error) => panic!("find {css}: {error}"),
        }
    }

    /// Waits for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(started.elapsed() < PAGE_WAIT, "no element {css} after {PAGE_WAIT:?}; the page says: {}", self.page_text().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` (a function body) returns a truthy value, and returns it.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.execute(script, json!([])).await;
            if !matches!(value, Value::Null | Value::Bool(false)) && value != "" {
                return value;
            }
            assert!(started.elapsed() < PAGE_WAIT, "waited {PAGE_WAIT:?} for {what}; the page says: {}", self.page_text().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// The element's visible text.
    pub async fn text(&self, element: &Element) -> String {
        self.get(&format!("/element/{}/text", element.0)).await.as_str().unwrap_or_default().to_string()
    }

    /// An attribute or property of the element, as the page sees it now.
    pub async fn property(&self, element: &Element, name: &str) -> Value {
        self.get(&format!("/element/{}/property/{name}", element.0)).await
    }

    /// Empties an input.
    pub async fn clear(&self, element: &Element) {
        self.post(&format!("/element/{}/clear", element.0), json!({})).await;
    }

    /// Types into an element.
    pub async fn send_keys(&self, element: &Element, text: &str) {
        self.post(&format!("/element/{}/value", element.0), json!({ "text": text })).await;
    }

    /// Replaces an input's content.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        self.clear(&input).await;
        self.send_keys(&input, text).await;
    }

    /// Clicks an element.
    pub async fn click(&self, element: &Element) {
        self.post(&format!("/element/{}/click", element.0), json!({})).await;
    }

    /// The page's text, for failure messages.
    pub async fn page_text(&self) -> String {
        match self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.body.innerText", "args": []}))).await
        {
            Ok(text) => text.as_str().unwrap_or_default().chars().take(2000).collect(),
            Err(error) => format!("(unreadable: {error})"),
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD.decode(encoded.as_str().expect("base64 PNG")).expect("valid base64")
    }

    /// The browser console's entries since the last call (`level`, `message`).
    pub async fn console(&self) -> Vec<Value> {
        match self.post("/se/log", json!({ "type": "browser" })).await {
            Value::Array(entries) => entries,
            other => panic!("unexpected log answer: {other}"),
        }
    }

    /// Ends the session (the browser quits) and the driver.
    pub async fn quit(mut self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // A failing test drops the browser without `quit`: end the session from a thread of
            // its own (dropping cannot await), so no Chromium is left behind.
            let session = self.session.clone();
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let _ = reqwest::Client::new().delete(session).timeout(Duration::from_secs(10)).send().await;
                });
            })
            .join();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
