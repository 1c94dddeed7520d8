//! The regression gate a launch may ask for, checked when the job succeeds: its report is
//! compared with the baseline's, the comparison is added to the result (as `comparison`), and
//! the job fails with `regression` when a gated metric is worse beyond its tolerance.

use serde_json::Value;

use crate::compare::comparison::{Comparison, Runs};
use crate::compare::gate::Gate;
use crate::compare::params::differing_params;
use crate::store::{JobError, JobId, JobStore};

/// The result field a gated job's comparison is stored in.
pub const COMPARISON_FIELD: &str = "comparison";

/// A gated job's result, and the error when the gate failed it.
pub struct Gated {
    /// The report, with the comparison added when there is one.
    pub result: Value,
    /// `regression` when a gated metric regressed; `baseline` when the gate could not be checked.
    pub error: Option<JobError>,
}

/// Checks `report` of job `id` (of `kind`, run with `params`) against the gate's baseline.
pub async fn check(store: &dyn JobStore, id: JobId, kind: &str, params: &Value, gate: &Gate, mut report: Value) -> Gated {
    let failed = |report: Value, message: String| Gated { result: report, error: Some(JobError { kind: "baseline".into(), message }) };
    let baseline = match store.get_job(gate.baseline_id).await {
        Ok(Some(baseline)) => baseline,
        Ok(None) => return failed(report, format!("the baseline job {} no longer exists", gate.baseline_id)),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "cannot read the baseline job");
            return failed(report, format!("cannot read the baseline job {}", gate.baseline_id));
        }
    };
    let Some(baseline_report) = &baseline.result else {
        return failed(report, format!("the baseline job {} has no report", baseline.id));
    };
    let runs = Runs {
        kind,
        baseline: (baseline.id, baseline_report),
        candidate: (id, &report),
        differing_params: differing_params(&baseline.params, params),
    };
    let comparison = match Comparison::build(runs, gate.options, &gate.max_regression) {
        Ok(comparison) => comparison,
        Err(reason) => return failed(report, reason),
    };
    let regressions = comparison.gate.describe_regressions();
    if let Value::Object(fields) = &mut report {
        fields.insert(COMPARISON_FIELD.into(), serde_json::to_value(&comparison).unwrap_or(Value::Null));
    }
    let error = (!regressions.is_empty()).then(|| JobError {
        kind: "regression".into(),
        message: format!("worse than baseline job {}: {}", baseline.id, regressions.join("; ")),
    });
    Gated { result: report, error }
}
