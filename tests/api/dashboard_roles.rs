//! The dashboard as a viewer, in a real browser (headless Chromium): it shows the token's name
//! and role, offers no launch form and no cancel button, and still shows jobs, who launched
//! them, their reports, comparisons and trends.

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::roles::{client_with, create_token};
use crate::webdriver::Browser;

const BOOTSTRAP: &str = "dashboard-roles-bootstrap";

#[tokio::test]
async fn a_viewer_sees_jobs_and_reports_but_no_launch_form_or_cancel_button() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--token", BOOTSTRAP]).await;
    let admin = client_with(&app.address, BOOTSTRAP);
    let viewer = create_token(&admin, "watcher", "viewer", None).await;
    let finished = admin
        .launch_ok(
            "structured-concurrency",
            &json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 5}, {"name": "b", "delay_ms": 10}]}),
        )
        .await;
    admin.wait_until_ended(&finished).await;
    let running = admin.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "t", "delay_ms": 60000}]})).await;

    let browser = Browser::start().await;
    browser.goto(&app.url("/#/experiments/structured-concurrency")).await;
    browser.wait_until("the token dialog", "return document.querySelector('#token-dialog').open").await;
    browser.fill("#token-input", &viewer).await;
    browser.click(&browser.wait_for("#token-form button[type='submit']").await).await;

    // The role is shown, and the experiment page explains instead of offering a form.
    let role = browser.wait_until("the role", "const r = document.querySelector('#identity-role'); return r && r.textContent").await;
    assert_eq!(role, "viewer");
    assert_eq!(browser.text(&browser.wait_for("#identity-name").await).await, "watcher");
    let note = browser.text(&browser.wait_for("#launch-not-allowed").await).await;
    assert!(note.contains("viewer"), "{note}");
    let form = browser.execute("return [document.querySelector('#launch'), document.querySelector('form fieldset')]", json!([])).await;
    assert_eq!(form, json!([null, null]), "no launch form for a viewer");

    // A finished job's page: its report is readable, it names who launched it, no cancel.
    browser.execute(&format!("location.hash = '#/jobs/{finished}'"), json!([])).await;
    let report = browser.wait_until("the report table", "const t = document.querySelector('#report table'); return t && t.innerText").await;
    assert!(report.as_str().unwrap().contains("tasks"), "report: {report}");
    let page = browser.page_text().await;
    assert!(page.contains("launched by") && page.contains("bootstrap"), "{page}");
    let launch_link =
        browser.execute("return [...document.querySelectorAll('a')].some((a) => a.textContent === 'Launch another')", json!([])).await;
    assert_eq!(launch_link, false);

    // Comparisons and trends are reading: a viewer gets both.
    browser.wait_for("#compare-with").await;
    browser.execute(&format!("location.hash = '#/compare/{finished}/{finished}'"), json!([])).await;
    browser.wait_until("the metric table", "return document.querySelectorAll('#compare-metrics tbody tr[data-verdict]').length > 0").await;
    browser.execute("location.hash = '#/trends/structured-concurrency'", json!([])).await;
    let point = browser
        .wait_until(
            "the trend",
            "const p = [...document.querySelectorAll('#trend-chart a[data-job]')]; return p.length === 1 && p[0].dataset.job",
        )
        .await;
    assert_eq!(point, json!(finished));

    // A running job another token launched: the viewer gets no cancel button.
    browser.execute(&format!("location.hash = '#/jobs/{running}'"), json!([])).await;
    browser.wait_until("the running job", "const s = document.querySelector('#job-status'); return s && s.textContent === 'running'").await;
    let cancel_hidden = browser.execute("return document.querySelector('#cancel').hidden", json!([])).await;
    assert_eq!(cancel_hidden, true);

    // The list shows who launched each job and filters on it.
    browser.execute("location.hash = '#/jobs'", json!([])).await;
    browser.wait_until("two rows", "return document.querySelectorAll('#jobs-body tr[data-job]').length === 2").await;
    let launched_by =
        browser.execute("return [...document.querySelectorAll('#jobs-body td.launched-by')].map((td) => td.textContent)", json!([])).await;
    assert_eq!(launched_by, json!(["bootstrap", "bootstrap"]));
    browser
        .execute(
            "const f = document.querySelector('#filter-launched-by'); f.value = 'someone-else'; f.dispatchEvent(new Event('change'))",
            json!([]),
        )
        .await;
    browser.wait_until("no rows", "return document.querySelectorAll('#jobs-body tr[data-job]').length === 0").await;
    browser.quit().await;
    app.stop().await;
}
