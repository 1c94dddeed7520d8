//! The committed OpenAPI document matches the code.

use crate::helpers::{Backend, TestApp, TestDatabase};

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = asynclab::api::openapi().to_pretty_json().unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}

async fn the_served_document_is_the_generated_one(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let served = app.get_json("/openapi.json").await;
    let generated = serde_json::to_value(asynclab::api::openapi()).unwrap();
    assert_eq!(served, generated);
    for kind in ["http-fanout", "structured-concurrency"] {
        assert!(served["paths"][format!("/experiments/{kind}")]["post"].is_object(), "{kind} documented");
    }
    for path in ["/experiments", "/jobs", "/jobs/{id}", "/jobs/{id}/cancel", "/jobs/{id}/events", "/healthz", "/readyz"] {
        assert!(served["paths"][path].is_object(), "{path} documented");
    }
    app.stop().await;
}

crate::both_stores!(the_served_document_is_the_generated_one,);
