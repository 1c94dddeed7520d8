//! The `cpu` figure every report carries, checked against work whose cost is known: a slow
//! target costs a fan-out almost nothing, CPU-bound items cost about what they burned, and every
//! kind that runs without outside services reports the documented fields.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDatabase, TestTarget};

async fn result(app: &TestApp, kind: &str, params: Value) -> Value {
    let job = app.wait_until_ended(&app.launch_ok(kind, &params).await).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"].clone()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The documented shape: user + system = total, at least one thread, the scope named.
fn assert_cpu_shape(report: &Value, scope: &str) {
    let cpu = &report["cpu"];
    assert_eq!(cpu["scope"], scope, "{cpu}");
    let (user, system, total) = (number(&cpu["user_ms"]), number(&cpu["system_ms"]), number(&cpu["total_ms"]));
    assert!(user >= 0.0 && system >= 0.0 && (user + system - total).abs() < 1e-6, "{cpu}");
    assert!(cpu["threads"].as_u64().unwrap() >= 1, "{cpu}");
    assert!(cpu["processes"].is_u64(), "{cpu}");
}

#[tokio::test]
async fn a_fanout_waiting_on_a_slow_target_costs_almost_no_cpu() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    let target = TestTarget::start().await;
    let url = format!("{}/targets/delay/50", target.address);
    // Every mode: the adaptive spinner must stop spinning when answers are 50 ms apart, and the
    // batching threads (64 connections each, one thread per core) must stop pausing. Each
    // request costs tens of microseconds of work; waiting costs nothing. The share of one core
    // allowed leaves room for a slow, loaded machine: several times the expected figure with 8
    // connections, more than twice with batching's 16 times as many requests (measured in a
    // debug build on two cores: 10% of a core for `off` with as many connections, 13-15% for
    // `batched`, which pays a pause and a poll after each lone answer). A thread that kept
    // pausing would wake every 40 µs, a spinning one would use a whole core.
    let batching_connections = 64 * std::thread::available_parallelism().map_or(1, |cores| cores.get());
    for (busy_poll, connections, core_share) in [("off", 8, 0.1), ("adaptive", 8, 0.1), ("batched", batching_connections, 0.35)] {
        let params = json!({"url": url, "duration_ms": 2000, "max_connections": connections, "busy_poll": busy_poll});
        let report = result(&app, "http-fanout", params).await;
        assert_cpu_shape(&report, "dedicated_threads");
        let requests = report["requests"].as_u64().unwrap();
        assert!(requests >= 12 * connections as u64, "{connections} connections × 50 ms for 2 s: {report}");
        let (cpu_ms, elapsed_ms) = (number(&report["cpu"]["total_ms"]), number(&report["elapsed_ms"]));
        assert!(cpu_ms < core_share * elapsed_ms, "busy_poll {busy_poll}: {cpu_ms} ms of CPU in {elapsed_ms} ms: {}", report["cpu"]);
        // The derived figures agree with the measured ones.
        let per_request = number(&report["cpu_micros_per_request"]);
        assert!((per_request - cpu_ms * 1000.0 / requests as f64).abs() < 1e-6 * per_request.max(1.0), "{report}");
        if cpu_ms > 0.0 {
            let per_cpu_second = number(&report["requests_per_cpu_second"]);
            assert!((per_cpu_second - requests as f64 / (cpu_ms / 1000.0)).abs() <= 1e-6 * per_cpu_second, "{report}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn cpu_bound_work_reports_about_what_it_burned() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &[]).await;
    // 6 items of 100 ms hashing, 2 at a time on the blocking pool: up to 600 ms of CPU.
    let params = json!({"items": 6, "work": {"kind": "cpu_ms", "amount": 100}, "mode": "spawn_blocking", "concurrency": 2});
    let report = result(&app, "blocking-offload", params).await;
    assert_cpu_shape(&report, "dedicated_threads");
    let cpu = &report["cpu"];
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as f64;
    // The items burn wall time: on a machine busy with other work they get only part of a core.
    assert!(number(&cpu["total_ms"]) >= 60.0, "{cpu}");
    assert!(number(&cpu["total_ms"]) <= number(&report["elapsed_ms"]) * cores + 200.0, "{cpu}");
    assert!(number(&cpu["user_ms"]) > number(&cpu["system_ms"]), "hashing is user time: {cpu}");
    app.stop().await;
}

#[tokio::test]
async fn every_kind_that_needs_no_service_reports_its_cpu() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--child-exe", env!("CARGO_BIN_EXE_asynclab")]).await;
    let runs = [
        ("structured-concurrency", json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 5}]}), "shared_runtime"),
        ("task-local", json!({"tasks": 4, "max_delay_ms": 2}), "shared_runtime"),
        ("file-io", json!({"files": 2, "modes": ["whole", "blocking"]}), "shared_runtime"),
        ("runtime-echo", json!({"flavours": ["current_thread"], "connections": 2, "round_trips": 50}), "dedicated_threads"),
        (
            "subprocess",
            json!({"processes": [{"program": "asynclab-child", "args": ["--lines", "2"], "timeout_ms": 10_000}]}),
            "child_processes",
        ),
    ];
    for (kind, params, scope) in runs {
        let report = result(&app, kind, params).await;
        assert_cpu_shape(&report, scope);
        if kind == "subprocess" {
            assert_eq!(report["cpu"]["processes"], 1, "{report}");
            assert!(report["processes"][0]["cpu_ms"].is_number(), "{report}");
            // A whole process started, ran and exited: the kernel saw some of its time.
            assert!(number(&report["cpu"]["total_ms"]) > 0.0, "{report}");
        }
        if kind == "runtime-echo" {
            let flavour = &report["flavours"][0];
            assert!(number(&flavour["cpu"]["total_ms"]) > 0.0, "100 echoed messages cost something: {flavour}");
            assert!(number(&flavour["msgs_per_cpu_second"]) > 0.0, "{flavour}");
        }
    }
    app.stop().await;
}
