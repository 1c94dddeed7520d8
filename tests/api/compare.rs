//! Comparing runs: real fan-outs against the built-in target answering in 10 ms and in 20 ms,
//! same-configuration runs judged `no significant change`, incomparable parameters, and the
//! server-side regression gate.
//!
//! The machine running these tests may be loaded, and its load changes from one second to the
//! next: runs compared for a verdict run at the same time (open model, same rate and duration),
//! so they share whatever load there is; the same-configuration check needs a 50% change
//! (`min_change=0.5`) of the median or the p75 for a verdict, the regression check 20%. The
//! server-side gate compares runs made one after the other, so its checks use a 20 ms target,
//! 40 ms of added delay and wide tolerances.
//!
//! The target sleeps on tokio's timer, whose millisecond ticks round each sleep up by 0–1 ms,
//! by the same amount for every request of an open-model run (its arrivals are 10 ms apart,
//! all at one phase of the tick): two runs of one configuration differ by up to a millisecond
//! that no sample size averages away. The delays are long enough to make that small.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget, assert_problem};

crate::both_stores!(delay_is_worse_and_same_config_is_no_change, the_server_side_gate_fails_a_regression);

/// An open-model run: 100 requests per second for 4 s, whatever the target's speed.
fn open_fanout(target: &TestTarget, delay_ms: u64, labels: Value) -> Value {
    json!({"url": format!("{}/targets/delay/{delay_ms}", target.address), "rate": 100.0, "duration_ms": 4000, "max_connections": 8, "labels": labels})
}

fn fanout(target: &TestTarget, delay_ms: u64, labels: Value) -> Value {
    json!({"url": format!("{}/targets/delay/{delay_ms}", target.address), "count": 100, "max_connections": 2, "labels": labels})
}

async fn run(app: &TestApp, body: &Value) -> String {
    let id = app.launch_ok("http-fanout", body).await;
    succeeded(app, &id).await;
    id
}

async fn succeeded(app: &TestApp, id: &str) {
    let job = app.wait_until_ended(id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

fn verdict<'a>(comparison: &'a Value, metric: &str) -> &'a str {
    let metrics = comparison["metrics"].as_array().expect("metrics");
    let found = metrics.iter().find(|entry| entry["metric"] == metric).unwrap_or_else(|| panic!("no {metric} in {comparison}"));
    found["verdict"].as_str().unwrap()
}

/// The metrics judged in the same-configuration check: the body of the distribution. Stalls of
/// a loaded machine come in bursts that the bootstrap, which takes samples as independent,
/// cannot see as such: they move the mean and the tail of one run and not the other's.
const KEY_METRICS: [&str; 2] = ["latency.p50_ms", "latency.p75_ms"];

async fn delay_is_worse_and_same_config_is_no_change(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    // Launched together, so that they run at the same time (4 jobs may run at once).
    let baseline = app.launch_ok("http-fanout", &open_fanout(&target, 10, json!({"branch": "main"}))).await;
    let same = app.launch_ok("http-fanout", &open_fanout(&target, 10, json!({"branch": "pr-1"}))).await;
    let slower = app.launch_ok("http-fanout", &open_fanout(&target, 20, json!({"branch": "pr-2"}))).await;
    for id in [&baseline, &same, &slower] {
        succeeded(&app, id).await;
    }

    // Two runs of one configuration on a shared machine: a real change of a 10 ms median is
    // large (the slower run's is about +80%), so this check asks for half of the median before
    // a verdict; the timer's phase and CI's noise move it by a millisecond or two.
    let comparison = app.get_json(&format!("/jobs/{same}/compare/{baseline}?min_change=0.5")).await;
    for metric in KEY_METRICS {
        assert_eq!(verdict(&comparison, metric), "no significant change", "{metric}: {comparison}");
    }
    let p50 = comparison["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "latency.p50_ms").unwrap();
    assert_eq!(p50["method"], "bootstrap_histogram");
    let samples: Vec<u64> = p50["samples"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    assert!(samples.iter().all(|&n| n >= 350), "each run's 400 requests, less any the schedule dropped: {samples:?}");
    assert!(comparison["method"].as_str().unwrap().contains("bootstrap"));

    let by_label = app.get_json(&format!("/jobs/{same}/compare/branch:main?min_change=0.2")).await;
    assert_eq!(by_label["baseline_id"], baseline.as_str(), "the selector finds the labelled job");

    let refused = app.client.get(app.url(&format!("/jobs/{slower}/compare/{baseline}"))).send().await.unwrap();
    let problem = assert_problem(refused, 422, "params.url").await;
    assert!(problem.to_string().contains("force=true"), "{problem}");
    let missing = app.client.get(app.url(&format!("/jobs/{slower}/compare/branch:main"))).send().await.unwrap();
    assert_problem(missing, 404, "baseline").await;

    let forced = app.get_json(&format!("/jobs/{slower}/compare/{baseline}?force=true&min_change=0.2")).await;
    // The median moves by the full 10 ms; a loaded machine's stalls reach the mean and the tail
    // and may hide the shift there with these few samples, but never turn it into an improvement.
    assert_eq!(verdict(&forced, "latency.p50_ms"), "worse", "{forced}");
    for metric in ["latency.mean_ms", "latency.p90_ms"] {
        assert_ne!(verdict(&forced, metric), "better", "{metric}: {forced}");
    }
    assert_eq!(forced["differing_params"], json!(["url"]));
    assert!(forced["summary"]["worse"].as_u64().unwrap() >= 1);
    let gated = app.get_json(&format!("/jobs/{slower}/compare/{baseline}?force=true&max_regression=p50_ms:20%25")).await;
    assert_eq!(gated["gate"]["passed"], false, "{}", gated["gate"]);
    assert_eq!(gated["gate"]["gated"][0]["metric"], "latency.p50_ms");
    app.stop().await;
}

async fn the_server_side_gate_fails_a_regression(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let baseline = run(&app, &fanout(&target, 20, json!({"branch": "main"}))).await;

    let mut slower = fanout(&target, 60, json!({"branch": "pr"}));
    slower["baseline"] = json!({"job": baseline, "force": true, "max_regression": {"p50_ms": "50%"}});
    let id = app.launch_ok("http-fanout", &slower).await;
    let job = app.wait_until_ended(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "regression");
    assert!(job["error"]["message"].as_str().unwrap().contains("latency.p50_ms"), "{}", job["error"]);
    assert_eq!(job["result"]["comparison"]["baseline_id"], baseline.as_str());
    assert_eq!(job["result"]["comparison"]["gate"]["passed"], false);
    assert_eq!(job["gate"]["baseline_id"], baseline.as_str());

    let mut same = fanout(&target, 20, json!({"branch": "pr"}));
    same["baseline"] = json!({"job": "branch:main", "max_regression": {"p50_ms": "100%"}});
    let passed = run(&app, &same).await;
    let job = app.job(&passed).await;
    assert_eq!(job["result"]["comparison"]["gate"]["passed"], true, "{}", job["result"]["comparison"]["gate"]);

    let mut orphan = fanout(&target, 20, json!({}));
    orphan["baseline"] = json!({"job": "branch:nowhere"});
    assert_problem(app.launch("http-fanout", &orphan).await, 422, "baseline.job").await;
    orphan["baseline"] = json!({"job": "branch:nowhere", "optional": true});
    let ungated = app.launch_ok("http-fanout", &orphan).await;
    assert!(app.job(&ungated).await.get("gate").is_none());
    orphan["baseline"] = json!({"job": baseline, "max_regression": {"p99_ms": "lots"}});
    assert_problem(app.launch("http-fanout", &orphan).await, 422, "baseline.max_regression.p99_ms").await;
    orphan["baseline"] = json!({"job": baseline, "force": true, "max_regression": {"nonsense_ms": "5%"}});
    let problem = assert_problem(app.launch("http-fanout", &orphan).await, 422, "baseline.max_regression.nonsense_ms").await;
    assert!(problem.to_string().contains("latency.p99_ms"), "the problem lists the metrics: {problem}");
    app.wait_until_ended(&ungated).await;
    app.stop().await;
}

/// A fan-out of two named endpoints where one gets slower: the comparison judges each endpoint
/// on its own, and a gate can name one endpoint's metric.
#[tokio::test]
async fn endpoints_are_compared_one_by_one() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let mix = |slow_ms: u64, branch: &str| {
        json!({
            "targets": [
                {"name": "fast", "url": format!("{}/targets/hello/1", target.address)},
                {"name": "slow", "url": format!("{}/targets/delay/{slow_ms}", target.address)}
            ],
            "count": 200, "max_connections": 4, "labels": {"branch": branch}
        })
    };
    let baseline = run(&app, &mix(1, "main")).await;
    let candidate = run(&app, &mix(20, "pr")).await;

    let compared = app
        .get_json(&format!("/jobs/{candidate}/compare/{baseline}?force=true&max_regression=endpoints%5Bslow%5D.latency.mean_ms:10%25"))
        .await;
    assert_eq!(verdict(&compared, "endpoints[slow].latency.mean_ms"), "worse", "{compared}");
    assert!(!verdict(&compared, "endpoints[fast].latency.mean_ms").is_empty(), "the fast endpoint is compared too");
    assert_eq!(compared["gate"]["passed"], false, "{}", compared["gate"]);
    assert_eq!(compared["gate"]["gated"][0]["metric"], "endpoints[slow].latency.mean_ms", "{}", compared["gate"]);
    app.stop().await;
}
