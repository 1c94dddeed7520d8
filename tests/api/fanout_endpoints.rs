//! http-fanout's per-endpoint breakdown: each request kind's counts checked against the target
//! that served it, its own latency and statuses, per-endpoint thresholds, the merge across
//! shards, each URL's outcome when some time out, and the launch errors of the new fields.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget, assert_problem};

/// Three built-in targets, one per kind, so each target's own counters see only its kind.
struct Mix {
    hello: TestTarget,
    delay: TestTarget,
    status: TestTarget,
}

impl Mix {
    async fn start() -> Mix {
        Mix { hello: TestTarget::start().await, delay: TestTarget::start().await, status: TestTarget::start().await }
    }

    fn hello_url(&self) -> String {
        format!("{}/targets/hello/1", self.hello.address)
    }

    /// Hello (weight 3, unnamed), a 5 ms delay (weight 1, named `slow`), a 500 (weight 1).
    fn targets(&self) -> Value {
        json!([
            {"url": self.hello_url(), "weight": 3},
            {"url": format!("{}/targets/delay/5", self.delay.address), "weight": 1, "name": "slow"},
            {"url": format!("{}/targets/status/500", self.status.address), "weight": 1}
        ])
    }
}

fn endpoint<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .and_then(|endpoints| endpoints.iter().find(|endpoint| endpoint["key"] == key))
        .unwrap_or_else(|| panic!("no endpoint {key} in {report}"))
}

async fn each_kind_is_counted_on_its_own(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let mix = Mix::start().await;
    let params = json!({"count": 500, "max_connections": 4, "targets": mix.targets()});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    let keys: Vec<&str> = report["endpoints"].as_array().unwrap().iter().map(|endpoint| endpoint["key"].as_str().unwrap()).collect();
    let status_key = format!("GET {}/targets/status/500", mix.status.address);
    let hello_key = format!("GET {}", mix.hello_url());
    assert_eq!(keys, [hello_key.as_str(), "slow", status_key.as_str()]);

    let (hello, slow, failing) = (endpoint(report, &hello_key), endpoint(report, "slow"), endpoint(report, &status_key));
    // Each kind's requests, exactly as its own target served them.
    for (kind, target, expected) in [(hello, &mix.hello, 300), (slow, &mix.delay, 100), (failing, &mix.status, 100)] {
        assert_eq!(kind["requests"], expected, "{kind}");
        assert_eq!(kind["responses"], expected, "{kind}");
        assert_eq!(target.stats().requests_served, expected, "{kind}");
        assert_eq!(kind["latency"]["count"], expected, "{kind}");
    }
    assert_eq!((slow["name"].as_str(), slow["method"].as_str()), (Some("slow"), Some("GET")));
    assert!(hello.get("name").is_none(), "{hello}");
    // The 500s on their kind only.
    assert_eq!(hello["status_counts"], json!({"200": 300}));
    assert_eq!(slow["status_counts"], json!({"200": 100}));
    assert_eq!(failing["status_counts"], json!({"500": 100}));
    assert_eq!((hello["error_rate"].as_f64(), failing["error_rate"].as_f64()), (Some(0.0), Some(1.0)));
    assert_eq!(report["status_counts"], json!({"200": 400, "500": 100}));
    // The delayed kind's own latency shows its delay; hello's does not.
    let p50 = |kind: &Value| kind["latency"]["p50_ms"].as_f64().unwrap();
    assert!(p50(slow) >= 5.0, "{slow}");
    assert!(p50(hello) < 5.0, "{hello}");
    let rates: f64 = [hello, slow, failing].iter().map(|kind| kind["achieved_rps"].as_f64().unwrap()).sum();
    assert!((rates - report["achieved_rps"].as_f64().unwrap()).abs() < 1e-6 * rates, "{report}");
    app.stop().await;
}

#[tokio::test]
async fn each_kind_is_counted_on_its_own_on_postgres() {
    each_kind_is_counted_on_its_own(Backend::Postgres).await;
}

#[tokio::test]
async fn each_kind_is_counted_on_its_own_on_sqlite() {
    each_kind_is_counted_on_its_own(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_per_endpoint_threshold_fails_the_job_naming_the_endpoint() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let mix = Mix::start().await;
    let hello_key = format!("GET {}", mix.hello_url());
    let params = json!({
        "count": 100, "max_connections": 2, "targets": mix.targets(),
        "thresholds": {"per_target": {"slow": {"p50_ms": 4.0}, hello_key.clone(): {"p99_ms": 10_000.0, "error_rate": 0.0}}}
    });
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "thresholds");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("thresholds missed: endpoint \"slow\" p50_ms: "), "{message}");
    assert!(!message.contains(&hello_key), "only the delayed kind missed: {message}");
    let verdicts: Vec<(&str, &str, bool)> = job["result"]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| (result["endpoint"].as_str().unwrap(), result["name"].as_str().unwrap(), result["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(verdicts, [(hello_key.as_str(), "p99_ms", true), (hello_key.as_str(), "error_rate", true), ("slow", "p50_ms", false)]);
    app.stop().await;
}

#[tokio::test]
async fn per_endpoint_launch_errors_name_their_field() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let url = "http://127.0.0.1:9/a";
    let unknown = json!({"url": url, "count": 1, "thresholds": {"per_target": {"checkout": {"p99_ms": 200.0}}}});
    let problem = assert_problem(app.launch("http-fanout", &unknown).await, 422, "thresholds.per_target.checkout").await;
    assert!(problem.to_string().contains(&format!("GET {url}")), "the known keys are listed: {problem}");
    let duplicate = json!({"count": 1, "targets": [{"url": url, "name": "a"}, {"url": url, "name": "a"}]});
    assert_problem(app.launch("http-fanout", &duplicate).await, 422, "targets[1].name").await;
    let bad_limit = json!({"count": 1, "targets": [{"url": url, "name": "a"}], "thresholds": {"per_target": {"a": {"error_rate": 2.0}}}});
    assert_problem(app.launch("http-fanout", &bad_limit).await, 422, "thresholds.per_target.a.error_rate").await;
    let internal = json!({"url": url, "count": 1, "shard": {"index": 0, "of": 2}});
    assert_problem(app.launch("http-fanout", &internal).await, 422, "shard").await;
    app.stop().await;
}

#[tokio::test]
async fn the_breakdown_is_merged_across_shards() {
    let database = TestDatabase::new(Backend::Postgres);
    let app = TestApp::start(&database, &[]).await;
    let mix = Mix::start().await;
    let params = json!({"count": 1000, "max_connections": 6, "shards": 3, "targets": mix.targets()});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    let hello_key = format!("GET {}", mix.hello_url());
    assert_eq!(endpoint(report, &hello_key)["requests"], 600);
    assert_eq!(endpoint(report, "slow")["requests"], 200);
    assert_eq!(mix.delay.stats().requests_served, 200);
    assert!(endpoint(report, "slow")["latency"]["p50_ms"].as_f64().unwrap() >= 5.0, "{report}");
    assert_eq!(endpoint(report, "slow")["latency"]["count"], 200);

    // Each endpoint's merged latency is that of the union of the shards' samples.
    let mut union = asynclab::experiments::http_fanout::breakdown::endpoint_histogram();
    let mut statuses = 0;
    for shard in report["shards"].as_array().unwrap() {
        let child = app.job(shard["job_id"].as_str().unwrap()).await;
        let slow_index = child["result"]["endpoints"].as_array().unwrap().iter().position(|endpoint| endpoint["key"] == "slow").unwrap();
        for pair in child["result"]["recorded"]["endpoints"][slow_index].as_array().unwrap() {
            union.record_n(pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap() as u32).unwrap();
        }
        statuses += child["result"]["endpoints"][2]["status_counts"]["500"].as_u64().unwrap();
    }
    let expected = asynclab::stats::LatencySummary::from_micros(&union);
    let merged: asynclab::stats::LatencySummary = serde_json::from_value(endpoint(report, "slow")["latency"].clone()).unwrap();
    assert_eq!(
        (merged.count, merged.p50_ms, merged.p99_ms, merged.max_ms),
        (expected.count, expected.p50_ms, expected.p99_ms, expected.max_ms)
    );
    assert_eq!(statuses, 200);
    assert_eq!(endpoint(report, &format!("GET {}/targets/status/500", mix.status.address))["status_counts"], json!({"500": 200}));
    app.stop().await;
}

/// The Python toolbox's fan-out demo, scaled down: some URLs answer, the others time out, and
/// the breakdown says which.
#[tokio::test]
async fn each_url_shows_its_own_outcome() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let urls: Vec<String> = (0..8)
        .map(|n| {
            let delay = if n % 2 == 0 { 1 } else { 5_000 };
            format!("{}/targets/delay/{delay}?seed={n}", target.address)
        })
        .collect();
    let params = json!({"urls": urls, "max_connections": 8, "timeout_ms": 1_000});
    let job = app.wait_until_ended(&app.launch_ok("http-fanout", &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let endpoints = job["result"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 8);
    for (n, endpoint) in endpoints.iter().enumerate() {
        assert_eq!(endpoint["key"], format!("GET {}", urls[n]));
        assert_eq!(endpoint["requests"], 1);
        if n % 2 == 0 {
            assert_eq!((&endpoint["status_counts"], &endpoint["error_counts"]), (&json!({"200": 1}), &json!({})), "{endpoint}");
        } else {
            assert_eq!((&endpoint["status_counts"], &endpoint["error_counts"]), (&json!({}), &json!({"timeout": 1})), "{endpoint}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn progress_events_carry_each_endpoints_live_figures() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let mix = Mix::start().await;
    let params = json!({"count": 500, "max_connections": 2, "targets": mix.targets()});
    let id = app.launch_ok("http-fanout", &params).await;
    let events = app.all_events(&id, None).await;
    let last = events.iter().rfind(|event| event.event == "progress").expect("a progress event");
    let live = last.data["data"]["endpoints"].as_array().unwrap_or_else(|| panic!("{}", last.data));
    let figures: Vec<(&str, u64, u64)> = live
        .iter()
        .map(|endpoint| (endpoint["key"].as_str().unwrap(), endpoint["requests"].as_u64().unwrap(), endpoint["failures"].as_u64().unwrap()))
        .collect();
    let (hello_key, status_key) = (format!("GET {}", mix.hello_url()), format!("GET {}/targets/status/500", mix.status.address));
    assert_eq!(figures, [(hello_key.as_str(), 300, 0), ("slow", 100, 0), (status_key.as_str(), 100, 100)]);
    assert!(live[1]["p99_ms"].as_f64().unwrap() >= 5.0, "{live:?}");
    app.stop().await;
}
