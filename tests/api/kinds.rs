//! Every registered experiment kind against what it declares: its summary is one line of prose,
//! its example is valid against its own parameter schema and launches, its restartability is the
//! one the README documents, and its availability follows the services it declares it needs.

use std::collections::BTreeSet;

use asynclab::experiments::{self, Availability};
use asynclab::services::Services;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::lab_services::{SHARED_REDIS_URL, TargetDatabases};

/// What gives code away in a line meant for people: declarations, statements, assignments,
/// inline code and line breaks. (API names such as `spawn_blocking` or `std::fs` are fine.)
const CODE_MARKS: [&str; 9] = ["const ", "fn ", "let ", ";", "=", "`", "\n", "\r", "\t"];

#[test]
fn every_summary_is_one_line_of_prose() {
    for entry in experiments::registry() {
        let summary = entry.summary;
        assert!(!summary.trim().is_empty() && summary.trim() == summary, "{}: summary {summary:?}", entry.kind);
        for mark in CODE_MARKS {
            assert!(!summary.contains(mark), "{}: the summary holds {mark:?}: {summary:?}", entry.kind);
        }
        assert!(!summary.contains("  "), "{}: the summary holds a run of spaces: {summary:?}", entry.kind);
    }
}

/// The kinds the README lists as restartable (in "Scaling out", the sentence on rescues).
fn documented_restartable_kinds() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("restartable (`").expect("the README names the restartable kinds") + "restartable (".len();
    let end = start + readme[start..].find(':').expect("the list ends with a colon");
    readme[start..end].split(',').map(|name| name.trim().trim_matches('`').to_string()).collect()
}

#[test]
fn restartable_kinds_are_the_ones_the_readme_names() {
    let registered: BTreeSet<String> =
        experiments::registry().iter().filter(|entry| entry.max_attempts > 1).map(|entry| entry.kind.to_string()).collect();
    assert_eq!(registered, documented_restartable_kinds());
    for entry in experiments::registry() {
        assert!(entry.max_attempts == 1 || entry.max_attempts == experiments::RESTART_ATTEMPTS, "{}", entry.kind);
    }
}

#[test]
fn availability_follows_the_declared_needs() {
    let bare = Services::default();
    for entry in experiments::registry() {
        let expected = match entry.needs.iter().find_map(|need| bare.missing(*need)) {
            Some(reason) => Availability::Unavailable(reason),
            None => Availability::Available,
        };
        assert_eq!((entry.availability)(&bare), expected, "{} needs {:?}", entry.kind, entry.needs);
    }
    // Each need is one a bare server lacks, so every kind that declares one is unavailable there.
    for entry in experiments::registry().iter().filter(|entry| !entry.needs.is_empty()) {
        assert!(matches!((entry.availability)(&bare), Availability::Unavailable(_)), "{}", entry.kind);
    }
}

/// `schema` with the OpenAPI document's components beside it, so its `$ref`s resolve.
fn with_components(schema: &Value, openapi: &Value) -> Value {
    let mut schema = schema.clone();
    schema["components"] = openapi["components"].clone();
    schema
}

#[tokio::test]
async fn every_example_matches_its_schema_and_launches_where_its_needs_are_met() {
    let databases = TargetDatabases::create().await;
    let database = TestDatabase::new(Backend::Sqlite);
    let mut flags: Vec<String> = databases.flags();
    flags.extend(["--redis-url".into(), SHARED_REDIS_URL.into(), "--child-exe".into(), env!("CARGO_BIN_EXE_asynclab").into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = TestApp::start(&database, &flags).await;

    let openapi = app.get_json("/openapi.json").await;
    let catalogue = app.get_json("/experiments").await;
    let catalogue = catalogue.as_array().expect("the catalogue is a list");
    let listed: Vec<&str> = catalogue.iter().map(|entry| entry["kind"].as_str().unwrap()).collect();
    let registered: Vec<&str> = experiments::registry().iter().map(|entry| entry.kind).collect();
    assert_eq!(listed, registered);

    for entry in catalogue {
        let kind = entry["kind"].as_str().unwrap();
        assert_eq!(entry["available"], true, "every need is met here: {entry}");
        let schema = with_components(&entry["params_schema"], &openapi);
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|error| panic!("{kind}: schema does not compile: {error}"));
        let example = &entry["example"];
        let errors: Vec<String> = validator.iter_errors(example).map(|error| format!("{}: {error}", error.instance_path())).collect();
        assert!(errors.is_empty(), "{kind}: the example does not match its schema: {errors:?}\n{example}");

        let response = app.launch(kind, example).await;
        assert_eq!(response.status(), 202, "{kind}: the example is refused: {}", response.text().await.unwrap());
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["kind"], kind);
        let cancel = app.client.post(app.url(&format!("/jobs/{}/cancel", job["id"].as_str().unwrap()))).send().await.unwrap();
        assert!(cancel.status().is_success(), "{kind}: cancel answered {}", cancel.status());
    }
    app.stop().await;
}

#[tokio::test]
async fn a_kind_whose_needs_are_not_met_is_listed_unavailable_and_refused() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--allow-programs", ""]).await;
    let catalogue = app.get_json("/experiments").await;
    for entry in experiments::registry() {
        let listed = catalogue.as_array().unwrap().iter().find(|listed| listed["kind"] == entry.kind).unwrap();
        let unmet = entry.needs.iter().find_map(|need| app.state.services.missing(*need));
        assert_eq!(listed["available"], unmet.is_none(), "{listed}");
        assert_eq!(listed["unavailable_reason"].as_str(), unmet.as_deref(), "{listed}");
        if unmet.is_some() {
            let response = app.launch(entry.kind, &listed["example"]).await;
            crate::helpers::assert_problem(response, 409, "kind").await;
        }
    }
    // Nothing provides target databases, Redis or programs here.
    let unavailable: BTreeSet<&str> = catalogue
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["available"] == false)
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(unavailable, BTreeSet::from(["database", "redis", "subprocess"]));
    app.stop().await;
}
