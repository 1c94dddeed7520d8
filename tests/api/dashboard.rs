//! The web dashboard in a real browser (headless Chromium): launching an http-fanout job from
//! the generated form, a validation error shown next to its field, the job followed live to its
//! report, the job list, and no request leaving the server. The page is the same whatever the
//! job store, so this runs on the embedded SQLite store only.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget};
use crate::webdriver::Browser;

/// Where test artifacts go: `$CARGO_TARGET_DIR/test-artifacts`, or `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

fn number(text: &str) -> Option<f64> {
    text.replace(',', "").trim().parse().ok()
}

#[tokio::test]
async fn the_dashboard_launches_a_fanout_and_follows_it_to_its_report() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let browser = Browser::start().await;

    browser.goto(&app.url("/")).await;
    browser.wait_for("a[data-kind='http-fanout']").await;

    // An experiment whose service is not configured is shown, disabled, with the reason.
    browser.click(&browser.wait_for("a[data-kind='redis']").await).await;
    let reason = browser.wait_for("#unavailable-reason").await;
    assert!(browser.text(&reason).await.contains("REDIS_URL"));
    let disabled = browser.execute("return document.querySelector('#launch').matches(':disabled')", json!([])).await;
    assert_eq!(disabled, true, "the unavailable experiment's Launch button is disabled");

    browser.click(&browser.wait_for("a[data-kind='http-fanout']").await).await;
    browser
        .wait_until("the http-fanout form", "return location.hash === '#/experiments/http-fanout' && document.querySelector('#field-url')")
        .await;
    let example = browser.property(&browser.wait_for("#field-count").await, "value").await;
    assert_eq!(example, "2000", "the form is filled with the catalogue's example");

    // A value the server refuses: its reason appears next to the field.
    let url = app.url("/targets/delay/100?seed={i}");
    browser.fill("#field-url", &url).await;
    browser.fill("#field-max_connections", "4").await;
    browser.fill("#field-count", "0").await;
    browser.click(&browser.wait_for("#launch").await).await;
    let error = browser
        .wait_until("the count error", "const e = document.querySelector('#field-count-error'); return e && !e.hidden && e.textContent")
        .await;
    assert!(error.as_str().unwrap().contains("must be between 1 and"), "count error: {error}");
    let invalid = browser.property(&browser.wait_for("#field-count").await, "ariaInvalid").await;
    assert_eq!(invalid, "true");
    let hash = browser.execute("return location.hash", json!([])).await;
    assert_eq!(hash, "#/experiments/http-fanout", "a refused launch stays on the form");
    browser.execute("document.querySelector('#field-count').scrollIntoView({block: 'center'})", json!([])).await;
    std::fs::write(artifacts_dir().join("dashboard-validation.png"), browser.screenshot().await).expect("screenshot written");

    // The raw JSON view holds what the form holds, and back.
    browser.click(&browser.wait_for("#raw-toggle").await).await;
    let raw = browser.property(&browser.wait_for("#raw-json").await, "value").await;
    let raw: Value = serde_json::from_str(raw.as_str().unwrap()).expect("the raw view is JSON");
    assert_eq!((raw["url"].as_str(), raw["count"].as_i64(), raw["max_connections"].as_i64()), (Some(url.as_str()), Some(0), Some(4)));
    browser.fill("#raw-json", &json!({"url": url, "count": 100, "max_connections": 4}).to_string()).await;
    browser.click(&browser.wait_for("#raw-toggle").await).await;
    let count = browser.property(&browser.wait_for("#field-count").await, "value").await;
    assert_eq!(count, "100", "the form took the raw JSON's values");
    let method = browser.property(&browser.wait_for("#field-method").await, "value").await;
    assert_eq!(method, "", "a parameter left out of the JSON is left to the server's default");
    let keep_alive =
        browser.execute("const k = document.querySelector('#field-keep_alive'); return [k.indeterminate, k.checked]", json!([])).await;
    assert_eq!(keep_alive, json!([true, false]), "a switch left out shows as mixed and is not sent");

    // 100 requests of 100 ms over 4 connections: about 2.5 s, several progress snapshots.
    browser.click(&browser.wait_for("#launch").await).await;
    let hash = browser.wait_until("the job page", "return location.hash.startsWith('#/jobs/') && location.hash").await;
    let job_id = hash.as_str().unwrap().trim_start_matches("#/jobs/").to_string();

    let mut seen = Vec::new();
    loop {
        let state = browser
            .execute(
                "const c = document.querySelector('[data-figure=\"completed\"] dd'); \
                 const s = document.querySelector('#job-status'); \
                 return [c ? c.textContent : null, s ? s.textContent : null]",
                json!([]),
            )
            .await;
        if let Some(completed) = state[0].as_str().and_then(number)
            && seen.last() != Some(&completed)
        {
            seen.push(completed);
        }
        let status = state[1].as_str().unwrap_or_default().to_string();
        if status == "succeeded" && seen.last() == Some(&100.0) {
            break;
        }
        assert!(
            !matches!(status.as_str(), "failed" | "cancelled" | "interrupted"),
            "the job ended {status}: {}",
            browser.page_text().await
        );
        assert!(seen.len() < 10_000, "never finished");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert!(seen.iter().any(|completed| *completed > 0.0 && *completed < 100.0), "no progress update before the end: {seen:?}");

    // The report as tables, and the charts of a fan-out.
    let report = browser.wait_until("the report table", "const t = document.querySelector('#report table'); return t && t.innerText").await;
    let report = report.as_str().unwrap();
    assert!(report.contains("achieved_rps") && report.contains("status_counts") && report.contains("latency"), "report: {report}");
    assert!(report.contains("requests_per_cpu_second") && report.contains("cpu_micros_per_request"), "report: {report}");
    let cpu = browser.text(&browser.wait_for("#cpu-summary").await).await;
    assert!(cpu.contains("ms CPU (user") && cpu.contains("requests per CPU-second") && cpu.contains("µs CPU per request"), "{cpu}");
    let charts = browser
        .wait_until(
            "three charts",
            "const ids = [...document.querySelectorAll('#charts figure')].map(f => f.id); return ids.length >= 3 && ids",
        )
        .await;
    assert_eq!(charts, json!(["chart-rps", "chart-latency", "chart-histogram"]));
    // The report can show before the stream's `end` event arrives: wait for the end.
    browser.wait_until("the stream's end", "return document.querySelector('#stream-state').textContent === 'ended'").await;

    let job = app.job(&job_id).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"]["requests"], 100);

    let screenshot = browser.screenshot().await;
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts_dir().join("dashboard.png"), &screenshot).expect("screenshot written");

    // The job list shows it with its status badge.
    browser.execute("location.hash = '#/jobs'", json!([])).await;
    let badge = browser
        .wait_until(
            "the job's row",
            &format!("const b = document.querySelector('tr[data-job=\"{job_id}\"] .badge'); return b && b.textContent"),
        )
        .await;
    assert_eq!(badge, "succeeded");

    // Nothing was fetched from anywhere but this server, and nothing was refused or broken.
    let urls = browser.execute("return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]", json!([])).await;
    let origin = format!("{}/", app.address);
    for url in urls.as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&origin), "a request off the server: {url}");
    }
    let problems: Vec<Value> = browser.console().await.into_iter().filter(|entry| entry["level"] == "SEVERE").collect();
    let expected_422 = |entry: &Value| entry["message"].as_str().unwrap_or_default().contains("422");
    assert!(problems.iter().any(expected_422), "the console shows the refused launch, so it would show a CSP violation too: {problems:?}");
    assert!(problems.iter().all(expected_422), "browser console errors (a CSP violation or a failed load?): {problems:?}");

    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn with_a_server_token_the_dashboard_asks_for_it_streams_with_it_and_cancels() {
    let database = TestDatabase::new(Backend::Sqlite);
    let token = "dashboard-browser-token";
    let app = TestApp::start(&database, &["--token", token]).await;
    let browser = Browser::start().await;

    // The shell loads without a token; the catalogue's 401 opens the token dialog.
    browser.goto(&app.url("/#/experiments/task-local")).await;
    browser.wait_until("the token dialog", "return document.querySelector('#token-dialog').open").await;
    browser.fill("#token-input", "wrong-token").await;
    browser.click(&browser.wait_for("#token-form button[type='submit']").await).await;
    let hint = browser
        .wait_until("the refusal", "const d = document.querySelector('#token-dialog'); return d.open && d.querySelector('#token-hint').textContent.includes('refused')")
        .await;
    assert_eq!(hint, true);
    browser.fill("#token-input", token).await;
    browser.click(&browser.wait_for("#token-form button[type='submit']").await).await;

    // The example's parameters launch a job, whose page follows it over the event stream.
    browser.wait_until("the task-local form", "return document.querySelector('#field-tasks')").await;
    browser.click(&browser.wait_for("#launch").await).await;
    browser
        .wait_until("the job's end", "const s = document.querySelector('#job-status'); return s && s.textContent === 'succeeded' && document.querySelector('#report table')")
        .await;
    // The event stream was followed to its end with the query token.
    browser.wait_until("the stream's end", "return document.querySelector('#stream-state').textContent === 'ended'").await;
    let kept = browser.execute("return sessionStorage.getItem('asynclab.token')", json!([])).await;
    assert_eq!(kept, token);

    // A slow fan-out (against a target of its own: the server's asks for the token too),
    // cancelled from its page.
    let target = TestTarget::start().await;
    browser.execute("location.hash = '#/experiments/http-fanout'", json!([])).await;
    browser.fill("#field-url", &format!("{}/targets/delay/5000", target.address)).await;
    browser.fill("#field-count", "10").await;
    browser.fill("#field-max_connections", "1").await;
    browser.click(&browser.wait_for("#launch").await).await;
    browser.wait_until("the running job", "const s = document.querySelector('#job-status'); return s && s.textContent === 'running'").await;
    browser.click(&browser.wait_for("#cancel").await).await;
    browser
        .wait_until("the cancelled job", "const s = document.querySelector('#job-status'); return s && s.textContent === 'cancelled' && document.querySelector('#stream-state').textContent === 'ended'")
        .await;
    let cancel_disabled = browser.execute("return document.querySelector('#cancel').disabled", json!([])).await;
    assert_eq!(cancel_disabled, true);

    // The list's status filter: only the cancelled job is left.
    browser.execute("location.hash = '#/jobs'", json!([])).await;
    browser.wait_until("two rows", "return document.querySelectorAll('#jobs-body tr[data-job]').length === 2").await;
    browser
        .execute(
            "const s = document.querySelector('#filter-status'); s.value = 'cancelled'; s.dispatchEvent(new Event('change'))",
            json!([]),
        )
        .await;
    let kinds = browser
        .wait_until("the filtered list", "const rows = [...document.querySelectorAll('#jobs-body tr[data-job]')]; return rows.length === 1 && rows.map(r => r.cells[1].textContent)")
        .await;
    assert_eq!(kinds, json!(["http-fanout"]));

    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_event_stream_resumes_without_gaps_or_repeats() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--child-exe", env!("CARGO_BIN_EXE_asynclab")]).await;
    let id = app
        .launch_ok("subprocess", &json!({"processes": [{"program": "asynclab-child", "args": ["--lines", "40", "--interval-ms", "100"]}]}))
        .await;
    let browser = Browser::start().await;
    browser.goto(&app.url(&format!("/#/jobs/{id}"))).await;
    browser
        .wait_until("the first log lines", "const l = document.querySelector('#log'); return l && l.textContent.split('\\n').length > 4")
        .await;

    // The server closes every event stream from now on (as when a replica shuts down); the
    // browser reconnects with Last-Event-ID, is replayed what it missed, and is dropped again,
    // until the job's end reaches it.
    app.state.streams_closing.cancel();
    let ended = browser
        .wait_until(
            "the stream's end",
            "const s = document.querySelector('#stream-state'); return s.textContent === 'ended' && [document.querySelector('#job-status').textContent, s.dataset.resumes || null, s.dataset.resumedAfter || null]",
        )
        .await;
    assert_eq!(ended[0], "succeeded", "{}", browser.page_text().await);
    // The page keeps how often the stream was resumed and after which event: a resume after a
    // drop that the browser reconnected from too fast to see is still counted.
    let resumes: u32 = ended[1].as_str().expect("the stream was never dropped and resumed").parse().unwrap();
    assert!(resumes >= 1, "resumes: {resumes}");
    let resumed_after: u64 = ended[2].as_str().unwrap().parse().unwrap();
    assert!(resumed_after >= 1, "the stream resumed after event {resumed_after}, not from the start");
    let log = browser.execute("return document.querySelector('#log').textContent", json!([])).await;
    let expected: String = (1..=40).map(|line| format!("[#0 stdout] line {line}\n")).collect();
    assert_eq!(log.as_str().unwrap(), expected, "every log line once, in order");

    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn a_fanout_page_shows_a_live_per_endpoint_table_sortable_by_p99_and_failures() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let status_key = format!("GET {}/targets/status/500", target.address);
    let hello_key = format!("GET {}/targets/hello/1", target.address);
    // A minute-long run, cancelled once the table is checked: the live figures are what is shown.
    let params = json!({
        "duration_ms": 60_000, "max_connections": 2,
        "targets": [
            {"url": format!("{}/targets/hello/1", target.address), "weight": 3},
            {"url": format!("{}/targets/delay/50", target.address), "name": "slow"},
            {"url": format!("{}/targets/status/500", target.address)}
        ]
    });
    let id = app.launch_ok("http-fanout", &params).await;
    let browser = Browser::start().await;
    browser.goto(&app.url(&format!("/#/jobs/{id}"))).await;

    // Every endpoint has answered some requests and the slow one's p99 shows its delay.
    let keys_in_order = "return [...document.querySelectorAll('#endpoint-table tbody tr')].map(r => r.dataset.endpoint)";
    let rows = browser
        .wait_until(
            "three live rows",
            "const rows = [...document.querySelectorAll('#endpoint-table tbody tr')]; \
             const n = (r, f) => Number(r.querySelector(`td[data-field=\"${f}\"]`).textContent.replace(/,/g, '')); \
             return rows.length === 3 && rows.every(r => n(r, 'requests') > 0) && n(rows[1], 'p99_ms') >= 50 \
                 && rows.map(r => [r.dataset.endpoint, n(r, 'failures') > 0])",
        )
        .await;
    assert_eq!(rows, json!([[hello_key, false], ["slow", false], [status_key, true]]));
    assert_eq!(app.job(&id).await["status"], "running", "the table was filled from live progress");

    // Sorting by p99 puts the slow endpoint first; by failures, the failing one.
    browser.click(&browser.wait_for("#endpoint-table button[data-sort='p99_ms']").await).await;
    let sorted = browser.wait_until("p99 order", &format!("const k = (() => {{ {keys_in_order} }})(); return k[0] === 'slow' && k")).await;
    assert_eq!(sorted[0], "slow");
    let heading = browser
        .execute(
            "return document.querySelector('#endpoint-table button[data-sort=\"p99_ms\"]').parentElement.getAttribute('aria-sort')",
            json!([]),
        )
        .await;
    assert_eq!(heading, "descending");
    browser.click(&browser.wait_for("#endpoint-table button[data-sort='failures']").await).await;
    let sorted =
        browser.wait_until("failures order", &format!("const k = (() => {{ {keys_in_order} }})(); return k[0] !== 'slow' && k")).await;
    assert_eq!(sorted[0], json!(status_key));
    std::fs::write(artifacts_dir().join("dashboard-endpoints.png"), browser.screenshot().await).expect("screenshot written");

    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    app.wait_until_ended(&id).await;
    browser.quit().await;
    app.stop().await;
}
