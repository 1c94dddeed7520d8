//! Pass/fail thresholds on a fan-out's report, k6 style: a missed threshold fails the job while
//! the report is kept, so a CI step can fail the build on latency, errors or throughput.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::stats::LatencySummary;
use crate::validation::FieldErrors;

/// Limits the run must meet. Latency limits apply to the corrected latency in the open model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// The median latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// The 90th percentile latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    /// The 99th percentile latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The largest latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// The share of failed requests (transport errors and statuses ≥ 400) must not exceed this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The achieved request rate must reach this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rps: Option<f64>,
}

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThresholdResult {
    /// The threshold's name, as in the parameters.
    pub name: String,
    /// The limit given.
    pub limit: f64,
    /// The value the run achieved.
    pub observed: f64,
    /// Whether the run met it.
    pub passed: bool,
}

/// What the thresholds are checked against.
pub struct Observed<'a> {
    /// Latency of the responses.
    pub latency: &'a LatencySummary,
    /// Failed requests (transport errors and statuses ≥ 400) over all requests.
    pub error_rate: f64,
    /// Requests per second achieved.
    pub achieved_rps: f64,
}

impl Thresholds {
    /// Records every invalid limit.
    pub fn validate(&self, errors: &mut FieldErrors) {
        let latencies = [("p50_ms", self.p50_ms), ("p90_ms", self.p90_ms), ("p99_ms", self.p99_ms), ("max_ms", self.max_ms)];
        for (name, limit) in latencies {
            if let Some(limit) = limit {
                errors.check(limit.is_finite() && limit > 0.0, format!("thresholds.{name}"), "must be a positive number of milliseconds");
            }
        }
        if let Some(rate) = self.error_rate {
            errors.check((0.0..=1.0).contains(&rate), "thresholds.error_rate", format!("must be between 0 and 1, got {rate}"));
        }
        if let Some(rps) = self.min_rps {
            errors.check(rps.is_finite() && rps > 0.0, "thresholds.min_rps", "must be a positive rate");
        }
    }

    /// Each threshold given, with its verdict.
    pub fn evaluate(&self, observed: &Observed<'_>) -> Vec<ThresholdResult> {
        let at_most = |name: &str, limit: f64, value: f64| ThresholdResult {
            name: name.into(),
            limit,
            observed: value,
            passed: value <= limit,
        };
        let mut results = Vec::new();
        let latency = observed.latency;
        for (name, limit, value) in [
            ("p50_ms", self.p50_ms, latency.p50_ms),
            ("p90_ms", self.p90_ms, latency.p90_ms),
            ("p99_ms", self.p99_ms, latency.p99_ms),
            ("max_ms", self.max_ms, latency.max_ms),
            ("error_rate", self.error_rate, observed.error_rate),
        ] {
            if let Some(limit) = limit {
                results.push(at_most(name, limit, value));
            }
        }
        if let Some(limit) = self.min_rps {
            results.push(ThresholdResult {
                name: "min_rps".into(),
                limit,
                observed: observed.achieved_rps,
                passed: observed.achieved_rps >= limit,
            });
        }
        results
    }
}

/// The missed thresholds, described for the job's error message.
pub fn describe_missed(results: &[ThresholdResult]) -> Vec<String> {
    results
        .iter()
        .filter(|result| !result.passed)
        .map(|result| {
            let relation = if result.name == "min_rps" { "<" } else { ">" };
            format!("{}: {} {relation} {}", result.name, round(result.observed), result.limit)
        })
        .collect()
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(latency: &LatencySummary) -> Observed<'_> {
        Observed { latency, error_rate: 0.02, achieved_rps: 900.0 }
    }

    #[test]
    fn each_given_threshold_gets_a_verdict() {
        let latency = LatencySummary { p99_ms: 12.0, max_ms: 30.0, ..LatencySummary::default() };
        let thresholds = Thresholds { p99_ms: Some(10.0), error_rate: Some(0.05), min_rps: Some(1000.0), ..Thresholds::default() };
        let results = thresholds.evaluate(&observed(&latency));
        let verdicts: Vec<(&str, bool)> = results.iter().map(|r| (r.name.as_str(), r.passed)).collect();
        assert_eq!(verdicts, [("p99_ms", false), ("error_rate", true), ("min_rps", false)]);
        assert_eq!(describe_missed(&results), ["p99_ms: 12 > 10", "min_rps: 900 < 1000"]);
    }

    #[test]
    fn limits_are_validated() {
        let thresholds = Thresholds { p99_ms: Some(-1.0), error_rate: Some(2.0), min_rps: Some(0.0), ..Thresholds::default() };
        let mut errors = FieldErrors::default();
        thresholds.validate(&mut errors);
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["thresholds.p99_ms", "thresholds.error_rate", "thresholds.min_rps"]);
    }
}
