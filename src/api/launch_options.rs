//! What a launch body may carry beside the experiment's parameters: `labels` for the job, and
//! a `baseline` for a regression gate. They are taken out of the body before the parameters'
//! strict validation, so these names are reserved in every kind's parameters.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::compare::CompareOptions;
use crate::compare::gate::Tolerance;
use crate::store::labels::{Labels, parse_labels};
use crate::validation::FieldErrors;

/// The body field holding the job's labels.
pub const LABELS_FIELD: &str = "labels";
/// The body field holding the regression gate.
pub const BASELINE_FIELD: &str = "baseline";

/// A launch's regression gate, as given: after the job succeeds its report is compared with the
/// baseline's and the job fails with `regression` when a gated metric is worse beyond its
/// tolerance.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineRequest {
    /// A job id, or a label selector `key:value`: the latest succeeded job of the same kind,
    /// same parameters, with that label.
    pub job: String,
    /// Tolerances by metric (`{"p99_ms": "10%", "error_rate": "0.01"}`); absent: the kind's defaults.
    #[serde(default)]
    pub max_regression: BTreeMap<String, String>,
    /// Launch without a gate when no baseline matches (otherwise that is a 422).
    #[serde(default)]
    pub optional: bool,
    /// Compare even when the named baseline's parameters differ.
    #[serde(default)]
    pub force: bool,
    /// The tests' confidence (default 0.99).
    pub confidence: Option<f64>,
    /// The smallest relative change given a verdict (default 0.05).
    pub min_change: Option<f64>,
}

/// A checked [`BaselineRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct GateRequest {
    /// The baseline as named.
    pub job: String,
    /// Tolerances by metric name, parsed.
    pub max_regression: BTreeMap<String, Tolerance>,
    /// Launch without a gate when no baseline matches.
    pub optional: bool,
    /// Compare even when parameters differ.
    pub force: bool,
    /// The comparison's settings.
    pub options: CompareOptions,
}

/// The job options of a launch body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchOptions {
    /// The job's labels.
    pub labels: Labels,
    /// The regression gate asked for.
    pub gate: Option<GateRequest>,
}

/// Takes the job options out of `body` (leaving the parameters), recording every problem.
pub fn take_launch_options(body: &mut Value, errors: &mut FieldErrors) -> LaunchOptions {
    let mut options = LaunchOptions::default();
    let Value::Object(fields) = body else {
        return options;
    };
    if let Some(raw) = fields.remove(LABELS_FIELD) {
        match parse_labels(&raw, LABELS_FIELD) {
            Ok(labels) => options.labels = labels,
            Err(mut problems) => errors.0.append(&mut problems.0),
        }
    }
    if let Some(raw) = fields.remove(BASELINE_FIELD) {
        options.gate = parse_gate(raw, errors);
    }
    options
}

fn parse_gate(raw: Value, errors: &mut FieldErrors) -> Option<GateRequest> {
    let request: BaselineRequest = match serde_json::from_value(raw) {
        Ok(request) => request,
        Err(error) => {
            errors.add(BASELINE_FIELD, error.to_string());
            return None;
        }
    };
    let mut max_regression = BTreeMap::new();
    for (metric, text) in &request.max_regression {
        match Tolerance::parse(text) {
            Ok(tolerance) => {
                max_regression.insert(metric.clone(), tolerance);
            }
            Err(reason) => errors.add(format!("{BASELINE_FIELD}.max_regression.{metric}"), reason),
        }
    }
    let mut options = CompareOptions::default();
    if let Some(confidence) = request.confidence {
        errors.check((0.5..=0.9999).contains(&confidence), "baseline.confidence", "must be between 0.5 and 0.9999");
        options.confidence = confidence;
    }
    if let Some(min_change) = request.min_change {
        errors.check((0.0..=10.0).contains(&min_change), "baseline.min_change", "must be between 0 and 10");
        options.min_change = min_change;
    }
    Some(GateRequest { job: request.job, max_regression, optional: request.optional, force: request.force, options })
}
