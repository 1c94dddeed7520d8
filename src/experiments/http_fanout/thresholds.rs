//! Pass/fail thresholds on a fan-out's report, k6 style: a missed threshold fails the job while
//! the report is kept, so a CI step can fail the build on latency, errors or throughput.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::stats::LatencySummary;
use crate::validation::FieldErrors;

/// How many endpoint keys an unknown `per_target` key's error lists.
const KEYS_LISTED: usize = 10;

/// Limits the run must meet, on the whole run and per endpoint. Latency limits apply to the
/// corrected latency in the open model.
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
    /// Limits for single endpoints, by their key in the report's `endpoints` (a target's `name`,
    /// or method and URL as written: `GET http://127.0.0.1:8080/targets/hello/{i}`), checked
    /// against that endpoint's own figures, e.g. `{"checkout": {"p99_ms": 200, "error_rate": 0}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_target: Option<BTreeMap<String, Limits>>,
}

/// The limits one endpoint must meet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The endpoint's median latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// Its 90th percentile latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    /// Its 99th percentile latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Its largest latency must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// Its share of failed requests must not exceed this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Its achieved request rate must reach this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rps: Option<f64>,
}

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThresholdResult {
    /// The threshold's name, as in the parameters.
    pub name: String,
    /// For a `per_target` limit: the endpoint's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The limit given.
    pub limit: f64,
    /// The value the run achieved.
    pub observed: f64,
    /// Whether the run met it.
    pub passed: bool,
}

/// What the thresholds are checked against: the whole run, or one endpoint.
pub struct Observed<'a> {
    /// Latency of the responses.
    pub latency: &'a LatencySummary,
    /// Failed requests (transport errors and statuses ≥ 400) over all requests.
    pub error_rate: f64,
    /// Requests per second achieved.
    pub achieved_rps: f64,
}

impl Thresholds {
    /// Records every invalid limit, and every `per_target` key that is none of `keys` (the
    /// endpoints' keys).
    pub fn validate(&self, keys: &[String], errors: &mut FieldErrors) {
        self.overall().validate("thresholds", errors);
        for (key, limits) in self.per_target.iter().flatten() {
            let field = format!("thresholds.per_target.{key}");
            if !keys.contains(key) {
                let mut known: Vec<&str> = keys.iter().take(KEYS_LISTED).map(String::as_str).collect();
                if keys.len() > KEYS_LISTED {
                    known.push("…");
                }
                errors.add(&field, format!("no endpoint has this key; the endpoints are: {}", known.join(", ")));
            }
            limits.validate(&field, errors);
        }
    }

    /// Each threshold given, with its verdict: the overall ones against `overall`, each
    /// `per_target` one against `endpoint(key)` (an endpoint without a figure is skipped).
    pub fn evaluate<'a>(&self, overall: &Observed<'_>, endpoint: impl Fn(&str) -> Option<Observed<'a>>) -> Vec<ThresholdResult> {
        let mut results = self.overall().evaluate(overall, None);
        for (key, limits) in self.per_target.iter().flatten() {
            if let Some(observed) = endpoint(key) {
                results.extend(limits.evaluate(&observed, Some(key)));
            }
        }
        results
    }

    fn overall(&self) -> Limits {
        Limits {
            p50_ms: self.p50_ms,
            p90_ms: self.p90_ms,
            p99_ms: self.p99_ms,
            max_ms: self.max_ms,
            error_rate: self.error_rate,
            min_rps: self.min_rps,
        }
    }
}

impl Limits {
    /// Records every invalid limit, as fields under `prefix`.
    fn validate(&self, prefix: &str, errors: &mut FieldErrors) {
        let latencies = [("p50_ms", self.p50_ms), ("p90_ms", self.p90_ms), ("p99_ms", self.p99_ms), ("max_ms", self.max_ms)];
        for (name, limit) in latencies {
            if let Some(limit) = limit {
                errors.check(limit.is_finite() && limit > 0.0, format!("{prefix}.{name}"), "must be a positive number of milliseconds");
            }
        }
        if let Some(rate) = self.error_rate {
            errors.check((0.0..=1.0).contains(&rate), format!("{prefix}.error_rate"), format!("must be between 0 and 1, got {rate}"));
        }
        if let Some(rps) = self.min_rps {
            errors.check(rps.is_finite() && rps > 0.0, format!("{prefix}.min_rps"), "must be a positive rate");
        }
    }

    /// Each limit given, with its verdict against `observed`.
    fn evaluate(&self, observed: &Observed<'_>, endpoint: Option<&str>) -> Vec<ThresholdResult> {
        let verdict = |name: &str, limit: f64, value: f64, passed: bool| ThresholdResult {
            name: name.into(),
            endpoint: endpoint.map(str::to_string),
            limit,
            observed: value,
            passed,
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
                results.push(verdict(name, limit, value, value <= limit));
            }
        }
        if let Some(limit) = self.min_rps {
            results.push(verdict("min_rps", limit, observed.achieved_rps, observed.achieved_rps >= limit));
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
            let endpoint = result.endpoint.as_ref().map(|key| format!("endpoint {key:?} ")).unwrap_or_default();
            format!("{endpoint}{}: {} {relation} {}", result.name, round(result.observed), result.limit)
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
        let results = thresholds.evaluate(&observed(&latency), |_| None);
        let verdicts: Vec<(&str, bool)> = results.iter().map(|r| (r.name.as_str(), r.passed)).collect();
        assert_eq!(verdicts, [("p99_ms", false), ("error_rate", true), ("min_rps", false)]);
        assert_eq!(describe_missed(&results), ["p99_ms: 12 > 10", "min_rps: 900 < 1000"]);
    }

    #[test]
    fn per_target_limits_are_checked_against_their_endpoint() {
        let (fast, slow) =
            (LatencySummary { p99_ms: 2.0, ..LatencySummary::default() }, LatencySummary { p99_ms: 40.0, ..LatencySummary::default() });
        let limits = Limits { p99_ms: Some(10.0), ..Limits::default() };
        let thresholds = Thresholds {
            per_target: Some(BTreeMap::from([("fast".to_string(), limits.clone()), ("slow".to_string(), limits)])),
            ..Thresholds::default()
        };
        let results = thresholds.evaluate(&observed(&fast), |key| Some(observed(if key == "slow" { &slow } else { &fast })));
        let verdicts: Vec<(Option<&str>, bool)> = results.iter().map(|r| (r.endpoint.as_deref(), r.passed)).collect();
        assert_eq!(verdicts, [(Some("fast"), true), (Some("slow"), false)]);
        assert_eq!(describe_missed(&results), ["endpoint \"slow\" p99_ms: 40 > 10"]);
    }

    #[test]
    fn limits_are_validated() {
        let thresholds = Thresholds {
            p99_ms: Some(-1.0),
            error_rate: Some(2.0),
            min_rps: Some(0.0),
            per_target: Some(BTreeMap::from([
                ("known".to_string(), Limits { max_ms: Some(0.0), ..Limits::default() }),
                ("unknown".to_string(), Limits::default()),
            ])),
            ..Thresholds::default()
        };
        let mut errors = FieldErrors::default();
        thresholds.validate(&["known".to_string()], &mut errors);
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "thresholds.p99_ms",
                "thresholds.error_rate",
                "thresholds.min_rps",
                "thresholds.per_target.known.max_ms",
                "thresholds.per_target.unknown"
            ]
        );
        assert_eq!(errors.0[4].reason, "no endpoint has this key; the endpoints are: known");
    }
}
