//! A metric's history: values of the latest succeeded jobs of a kind, oldest first, filtered by
//! labels; an unknown metric is a 422 listing the available ones.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget, assert_problem};

crate::both_stores!(history_lists_a_metric_over_time);

async fn history_lists_a_metric_over_time(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/hello/{{i}}", target.address);
    let mut ids = Vec::new();
    for (count, branch) in [(10, "main"), (20, "feature"), (30, "main")] {
        let id = app.launch_ok("http-fanout", &json!({"url": url, "count": count, "labels": {"branch": branch}})).await;
        assert_eq!(app.wait_until_ended(&id).await["status"], "succeeded");
        ids.push(id);
    }
    let history = app.get_json("/experiments/http-fanout/history?metric=requests&label=branch:main").await;
    let points: Vec<(Value, Value)> =
        history["points"].as_array().unwrap().iter().map(|p| (p["job_id"].clone(), p["value"].clone())).collect();
    assert_eq!(points, [(json!(ids[0]), json!(10.0)), (json!(ids[2]), json!(30.0))], "oldest first, only branch:main");
    let latest = app.get_json("/experiments/http-fanout/history?metric=requests&limit=1").await;
    assert_eq!(latest["points"][0]["value"], 30.0);
    assert!(app.get_json("/experiments/http-fanout/history?metric=latency.p99_ms").await["points"][2]["value"].as_f64().unwrap() > 0.0);

    let unknown = app.client.get(app.url("/experiments/http-fanout/history?metric=latency.p42")).send().await.unwrap();
    let problem = assert_problem(unknown, 422, "metric").await;
    assert!(problem.to_string().contains("latency.p99_ms"), "the problem lists the available metrics: {problem}");
    let missing = app.client.get(app.url("/experiments/nope/history?metric=x")).send().await.unwrap();
    assert_problem(missing, 404, "kind").await;
    app.stop().await;
}
