//! runtime-echo through the API: every flavour echoes and counts exactly, progress names each
//! flavour, and cancelling stops the flavour's runtime.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDatabase, assert_problem};
use crate::offload::{threads_named, wait_until_no_threads_named};

async fn every_flavour_reports_exact_counts(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app.launch_ok("runtime-echo", &json!({"connections": 4, "round_trips": 25, "message_bytes": 512})).await;
    let events = app.all_events(&id, None).await;
    let job = app.job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let report = &job["result"];
    let names: Vec<&str> = report["flavours"].as_array().unwrap().iter().map(|f| f["flavour"].as_str().unwrap()).collect();
    assert_eq!(names, ["current_thread", "multi_thread_1", "multi_thread_2", "io_uring_1", "io_uring_2"]);
    for flavour in report["flavours"].as_array().unwrap() {
        assert_eq!(flavour["round_trips"], 100, "{flavour}");
        assert_eq!(flavour["bytes"], 2 * 100 * 512, "{flavour}");
        assert_eq!(flavour["rtt"]["count"], 100, "{flavour}");
        assert!(flavour["msgs_per_s"].as_f64().unwrap() > 0.0, "{flavour}");
        assert!(flavour["speedup_vs_current_thread"].as_f64().is_some(), "{flavour}");
    }
    assert_eq!(report["flavours"][0]["speedup_vs_current_thread"], 1.0);
    assert!(names.contains(&report["best_flavour"].as_str().unwrap()));

    let milestones: Vec<(String, String)> = events
        .iter()
        .filter(|event| event.event == "progress" && event.data["data"]["state"] == "done")
        .map(|event| (event.data["data"]["flavour"].as_str().unwrap().into(), event.data["data"]["completed_round_trips"].to_string()))
        .collect();
    let expected: Vec<(String, String)> = names.iter().map(|name| (name.to_string(), "100".to_string())).collect();
    assert_eq!(milestones, expected);
    app.stop().await;
}

async fn out_of_bounds_parameters_are_refused(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    assert_problem(app.launch("runtime-echo", &json!({"connections": 0})).await, 422, "connections").await;
    assert_problem(app.launch("runtime-echo", &json!({"flavours": ["uvloop"]})).await, 422, "flavours[0]").await;
    let response = app.launch("runtime-echo", &json!({"connections": 1000, "message_bytes": 1_048_576})).await;
    assert_problem(response, 422, "message_bytes").await;
    app.stop().await;
}

async fn cancelling_stops_the_running_flavour(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let id = app
        .launch_ok(
            "runtime-echo",
            &json!({"flavours": ["multi_thread_2", "io_uring_2"], "connections": 4, "round_trips": 100_000, "message_bytes": 64}),
        )
        .await;
    for _ in 0..1000 {
        if app.job(&id).await["progress"]["completed_round_trips"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(threads_named("echo-") > 0, "the flavour runs on threads of its own");
    let cancelled = app.client.post(app.url(&format!("/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.wait_until_ended(&id).await["status"], "cancelled");
    wait_until_no_threads_named("echo-").await;
    app.stop().await;
}

crate::both_stores!(every_flavour_reports_exact_counts, out_of_bounds_parameters_are_refused, cancelling_stops_the_running_flavour);
