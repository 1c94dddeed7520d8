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

/// A path or query parameter that is not free text (an id, a number, a flag) can be malformed,
/// and the extractors answer that with a 400 problem: every such operation must document it.
#[test]
fn every_operation_with_typed_parameters_documents_the_400() {
    let document = serde_json::to_value(asynclab::api::openapi()).unwrap();
    let mut undocumented = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let typed = parameters.iter().any(|parameter| {
                let schema = &parameter["schema"];
                let is_text = schema["type"] == "string" && schema.get("format").is_none();
                (parameter["in"] == "path" || parameter["in"] == "query") && !is_text
            });
            if typed && operation["responses"].get("400").is_none() {
                undocumented.push(format!("{method} {path}"));
            }
        }
    }
    assert!(undocumented.is_empty(), "operations with typed parameters but no documented 400: {undocumented:?}");
}
