//! The whole comparison of a candidate run with its baseline, as the API answers it and as a
//! gated job's result carries it: every metric, a count of verdicts, the method, and the gate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::gate::{GateOutcome, Tolerance, evaluate, tolerances};
use super::{CompareOptions, METHOD, MetricComparison, Verdict, compare_reports};

/// How many metrics got each verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerdictCounts {
    /// Metrics judged `better`.
    pub better: usize,
    /// Metrics judged `worse`.
    pub worse: usize,
    /// Metrics judged `no significant change`.
    pub no_significant_change: usize,
    /// Metrics judged `changed`.
    pub changed: usize,
}

/// Two runs of one kind compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Comparison {
    /// The experiment kind.
    pub kind: String,
    /// The run compared against.
    pub baseline_id: Uuid,
    /// The run judged.
    pub candidate_id: Uuid,
    /// How the verdicts are reached.
    pub method: String,
    /// The tests' confidence and the smallest change given a verdict.
    pub options: CompareOptions,
    /// Parameters that differ (only when the comparison was forced).
    pub differing_params: Vec<String>,
    /// Every numeric metric both reports have.
    pub metrics: Vec<MetricComparison>,
    /// How many metrics got each verdict.
    pub summary: VerdictCounts,
    /// The regression gate: the given tolerances, or the kind's defaults.
    pub gate: GateOutcome,
}

/// What to compare.
pub struct Runs<'a> {
    /// The experiment kind.
    pub kind: &'a str,
    /// The baseline's id and report.
    pub baseline: (Uuid, &'a Value),
    /// The candidate's id and report.
    pub candidate: (Uuid, &'a Value),
    /// Parameters that differ, listed in the answer.
    pub differing_params: Vec<String>,
}

impl Comparison {
    /// Compares the runs and applies the tolerances (empty: the kind's defaults); an error names
    /// a tolerance whose metric the reports do not have.
    pub fn build(runs: Runs<'_>, options: CompareOptions, max_regression: &BTreeMap<String, Tolerance>) -> Result<Comparison, String> {
        let metrics = compare_reports(runs.baseline.1, runs.candidate.1, options);
        let gate = evaluate(&tolerances(runs.kind, max_regression, &metrics)?, &metrics);
        let mut summary = VerdictCounts::default();
        for metric in &metrics {
            match metric.verdict {
                Verdict::Better => summary.better += 1,
                Verdict::Worse => summary.worse += 1,
                Verdict::NoSignificantChange => summary.no_significant_change += 1,
                Verdict::Changed => summary.changed += 1,
            }
        }
        Ok(Comparison {
            kind: runs.kind.to_string(),
            baseline_id: runs.baseline.0,
            candidate_id: runs.candidate.0,
            method: METHOD.to_string(),
            options,
            differing_params: runs.differing_params,
            metrics,
            summary,
            gate,
        })
    }
}
