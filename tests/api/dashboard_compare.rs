//! The dashboard's Compare and Trends pages in a real browser (headless Chromium), over real
//! fan-outs against the server's own built-in target: two jobs picked in the job list compared
//! (the differing parameters shown, then compared anyway: a 20 ms delay judged worse, both
//! latency histograms on one chart), a comparison started from a job page with a label
//! selector, and a metric's trend filtered by a label, each point a link to its job. The pages
//! are the same whatever the job store, so this runs on the embedded SQLite store only.

use serde_json::{Value, json};

use crate::dashboard::artifacts_dir;
use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::webdriver::Browser;

/// A fan-out of 100 requests to the server's own delay target.
fn fanout(app: &TestApp, delay_ms: u64, branch: &str) -> Value {
    json!({"url": app.url(&format!("/targets/delay/{delay_ms}")), "count": 100, "max_connections": 4, "labels": {"branch": branch}})
}

async fn succeeded(app: &TestApp, kind: &str, body: &Value) -> String {
    let id = app.launch_ok(kind, body).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    id
}

/// Waits for the comparison's table and returns `[metric, verdict, method]` of each row, in
/// the order shown.
async fn metric_rows(browser: &Browser) -> Vec<(String, String, String)> {
    let rows = browser
        .wait_until(
            "the metric table",
            "const rows = [...document.querySelectorAll('#compare-metrics tbody tr')]; \
             return rows.length > 0 && rows.map(r => [r.dataset.metric, r.querySelector('td.verdict').dataset.verdict, \
                 r.querySelector('td.method').textContent])",
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| (row[0].as_str().unwrap().into(), row[1].as_str().unwrap().into(), row[2].as_str().unwrap().into()))
        .collect()
}

/// The histogram chart's series: `[name, bars]` each.
async fn histogram_series(browser: &Browser) -> Value {
    browser
        .wait_until(
            "the overlaid histograms",
            "const groups = [...document.querySelectorAll('#compare-histogram svg g.series')]; \
             return groups.length > 0 && groups.map(g => [g.dataset.series, g.querySelectorAll('rect').length])",
        )
        .await
}

#[tokio::test]
async fn two_jobs_picked_in_the_list_or_one_from_its_page_are_compared() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let base = succeeded(&app, "http-fanout", &fanout(&app, 1, "main")).await;
    let slow = succeeded(&app, "http-fanout", &fanout(&app, 20, "slow")).await;
    let same = succeeded(&app, "http-fanout", &fanout(&app, 1, "pr")).await;
    let browser = Browser::start().await;

    // The list: pick the slow run and the baseline (in that order; the newer is the candidate).
    browser.goto(&app.url("/#/jobs")).await;
    browser.wait_until("three rows", "return document.querySelectorAll('#jobs-body tr[data-job]').length === 3").await;
    let disabled = browser.execute("return document.querySelector('#jobs-compare').disabled", json!([])).await;
    assert_eq!(disabled, true, "Compare waits for two jobs");
    for id in [&slow, &base] {
        // One script each: the list refreshes its rows every few seconds.
        browser.execute(&format!("document.querySelector('#jobs-body input.pick[data-job=\"{id}\"]').click()"), json!([])).await;
    }
    browser.wait_until("Compare enabled", "return !document.querySelector('#jobs-compare').disabled").await;
    browser.click(&browser.wait_for("#jobs-compare").await).await;

    // Their URLs differ: the page names the parameter and offers to compare anyway.
    let differing = browser
        .wait_until(
            "the differing parameters",
            "const items = [...document.querySelectorAll('#compare-differing li')]; return items.length > 0 && items.map(li => li.dataset.field)",
        )
        .await;
    assert_eq!(differing, json!(["params.url"]));
    let hash = browser.execute("return location.hash", json!([])).await;
    assert_eq!(hash, format!("#/compare/{slow}/{base}"), "the newer job is the candidate");
    browser.click(&browser.wait_for("#compare-force").await).await;

    let rows = metric_rows(&browser).await;
    let row = |metric: &str| rows.iter().find(|row| row.0 == metric).unwrap_or_else(|| panic!("no {metric} row in {rows:?}")).clone();
    assert_eq!(row("latency.p50_ms").1, "worse", "20 ms against 1 ms: {rows:?}");
    assert_eq!(row("latency.p50_ms").2, "bootstrap");
    assert_eq!(row("requests").1, "no significant change", "both sent 100 requests");
    assert_eq!(row("requests").2, "single sample");
    assert_eq!(rows[0].1, "worse", "worse metrics come first: {rows:?}");
    let verdict_cell = browser
        .execute("return document.querySelector('#compare-metrics tr[data-metric=\"latency.p50_ms\"] td.verdict').textContent", json!([]))
        .await;
    assert!(verdict_cell.as_str().unwrap().contains("worse"), "{verdict_cell}");
    let runs = browser
        .execute("return ['baseline', 'candidate'].map(r => document.querySelector(`#compare-${r} a[data-job]`).dataset.job)", json!([]))
        .await;
    assert_eq!(runs, json!([base, slow]));
    let forced = browser.text(&browser.wait_for("#compare-forced").await).await;
    assert!(forced.contains("url"), "{forced}");
    let summary =
        browser.execute("return document.querySelector('#compare-summary [data-verdict=\"worse\"]').dataset.count", json!([])).await;
    assert!(summary.as_str().unwrap().parse::<u32>().unwrap() >= 1, "{summary}");
    let series = histogram_series(&browser).await;
    let names: Vec<&str> = series.as_array().unwrap().iter().map(|one| one[0].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "candidate"]);
    assert!(series.as_array().unwrap().iter().all(|one| one[1].as_u64().unwrap() >= 2), "{series}");
    browser.execute("document.querySelector('#compare-histogram').scrollIntoView({block: 'end'})", json!([])).await;
    std::fs::write(artifacts_dir().join("dashboard-compare.png"), browser.screenshot().await).expect("screenshot written");

    // Sorted by metric name on request.
    browser.click(&browser.wait_for("#compare-metrics button[data-sort='metric']").await).await;
    let sorted = browser
        .wait_until(
            "the name order",
            "const m = [...document.querySelectorAll('#compare-metrics tbody tr')].map(r => r.dataset.metric); \
             return m.every((name, i) => i === 0 || m[i - 1].localeCompare(name) <= 0) && m",
        )
        .await;
    assert_eq!(sorted.as_array().unwrap().len(), rows.len());

    // A job's page: its recent same-kind runs to pick, and a label selector as the baseline.
    browser.execute(&format!("location.hash = '#/jobs/{same}'"), json!([])).await;
    let offered = browser
        .wait_until(
            "the recent runs",
            "const links = [...document.querySelectorAll('#compare-recent a[data-job]')]; return links.length === 2 && links.map(l => [l.dataset.job, l.getAttribute('href')])",
        )
        .await;
    assert_eq!(offered, json!([[slow, format!("#/compare/{same}/{slow}")], [base, format!("#/compare/{same}/{base}")]]));
    browser.fill("#compare-with", "branch:main").await;
    browser.click(&browser.wait_for("#compare-go").await).await;
    let rows = metric_rows(&browser).await;
    let verdicts = ["better", "worse", "changed", "no significant change"];
    assert!(rows.iter().all(|row| verdicts.contains(&row.1.as_str())), "{rows:?}");
    let runs = browser
        .wait_until(
            "both runs",
            "const ids = ['baseline', 'candidate'].map(r => document.querySelector(`#compare-${r} a[data-job]`)); return ids.every(Boolean) && ids.map(a => a.dataset.job)",
        )
        .await;
    assert_eq!(runs, json!([base, same]), "the selector found the job labelled branch:main");
    assert!(browser.find("#compare-forced").await.is_none(), "same parameters: nothing forced");
    assert_eq!(histogram_series(&browser).await.as_array().unwrap().len(), 2);

    // A selector nothing matches: the server's reason, and the way back.
    browser.execute(&format!("location.hash = '#/compare/{same}/branch:nowhere'"), json!([])).await;
    let error = browser.wait_until("the refusal", "const e = document.querySelector('#compare-error'); return e && e.textContent").await;
    assert!(error.as_str().unwrap().contains("baseline"), "{error}");

    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn the_trends_page_charts_a_metric_of_the_jobs_with_a_label() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let url = app.url("/targets/hello/{i}");
    let mut main = Vec::new();
    for (count, branch) in [(10, "main"), (20, "feature"), (30, "main")] {
        let id = succeeded(&app, "http-fanout", &json!({"url": url, "count": count, "labels": {"branch": branch}})).await;
        if branch == "main" {
            main.push(id);
        }
    }
    let browser = Browser::start().await;
    browser.goto(&app.url("/#/trends")).await;

    // The chooser offers what the reports hold; the fan-out's p99 is chosen first, all three jobs.
    let metrics = browser
        .wait_until(
            "the metric chooser",
            "const s = document.querySelector('#trend-metric'); return s && s.options.length > 0 && [s.value, [...s.options].map(o => o.value)]",
        )
        .await;
    assert_eq!(metrics[0], "latency.p99_ms");
    assert!(metrics[1].as_array().unwrap().iter().any(|metric| metric == "requests"), "{metrics}");
    browser.wait_until("three points", "return document.querySelectorAll('#trend-chart a[data-job]').length === 3").await;

    // `requests` of the jobs labelled branch:main: one point each, oldest first, linking to it.
    browser
        .execute("const s = document.querySelector('#trend-metric'); s.value = 'requests'; s.dispatchEvent(new Event('change'))", json!([]))
        .await;
    browser.fill("#trend-label", "branch:main").await;
    browser.execute("document.querySelector('form[aria-label=\"What to chart\"]').requestSubmit()", json!([])).await;
    let points = browser
        .wait_until(
            "the labelled points",
            "const links = [...document.querySelectorAll('#trend-chart a[data-job]')]; \
             return links.length === 2 && location.hash.includes('label=') && links.map(a => [a.dataset.job, a.getAttribute('href')])",
        )
        .await;
    let expected: Vec<Value> = main.iter().map(|id| json!([id, format!("#/jobs/{id}")])).collect();
    assert_eq!(points, json!(expected));
    let values = browser
        .execute(
            "return [...document.querySelectorAll('#trend-points tbody tr')].map(r => [r.dataset.job, r.cells[2].textContent])",
            json!([]),
        )
        .await;
    assert_eq!(values, json!([[main[1], "30"], [main[0], "10"]]), "the table lists the newest first");
    let hash = browser.execute("return location.hash", json!([])).await;
    assert_eq!(hash, "#/trends/http-fanout?metric=requests&label=branch%3Amain", "the address keeps the choices");
    std::fs::write(artifacts_dir().join("dashboard-trends.png"), browser.screenshot().await).expect("screenshot written");

    // A point opens its job.
    browser.click(&browser.wait_for(&format!("#trend-chart a[data-job='{}'] circle", main[0])).await).await;
    browser
        .wait_until("the job page", &format!("return location.hash === '#/jobs/{}' && document.querySelector('#job-status')", main[0]))
        .await;

    // The address alone shows the same; a label nothing has, and a malformed one, say so.
    browser.execute("location.hash = '#/trends/http-fanout?metric=requests&label=branch:nowhere'", json!([])).await;
    let empty =
        browser.wait_until("the empty history", "const e = document.querySelector('#trend-empty'); return e && e.textContent").await;
    assert!(empty.as_str().unwrap().contains("branch:nowhere"), "{empty}");
    browser.execute("location.hash = '#/trends/http-fanout?metric=requests&label=nocolon'", json!([])).await;
    let error =
        browser.wait_until("the refused label", "const e = document.querySelector('#trend-error'); return e && e.textContent").await;
    assert!(error.as_str().unwrap().contains("label"), "{error}");

    // A kind with no succeeded job yet.
    browser.execute("location.hash = '#/trends/task-local'", json!([])).await;
    let none = browser.wait_until("no jobs", "const e = document.querySelector('#trend-empty'); return e && e.textContent").await;
    assert!(none.as_str().unwrap().contains("task-local"), "{none}");

    browser.quit().await;
    app.stop().await;
}
