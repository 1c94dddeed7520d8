//! A regression gate, for CI: tolerances per metric (`p99_ms=10%`), a sensible default set per
//! kind, and the verdict on a comparison: a gated metric judged `worse` by more than its
//! tolerance is a regression.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CompareOptions, MetricComparison, Verdict};

/// The tolerance every default gated metric gets.
const DEFAULT_TOLERANCE: Tolerance = Tolerance::Relative(0.10);
/// Per kind, the metrics gated when no tolerance is given.
const DEFAULT_GATED: [(&str, &[&str]); 11] = [
    ("http-fanout", &["latency.p50_ms", "latency.p99_ms", "achieved_rps", "error_rate"]),
    ("redis", &["latency.p50_ms", "latency.p99_ms", "ops_per_s"]),
    ("database", &["elapsed_ms"]),
    ("s3", &["elapsed_ms"]),
    ("sftp", &["elapsed_ms"]),
    ("file-io", &["elapsed_ms"]),
    ("runtime-echo", &["elapsed_ms"]),
    ("blocking-offload", &["elapsed_ms"]),
    ("subprocess", &["elapsed_ms"]),
    ("structured-concurrency", &["elapsed_ms"]),
    ("task-local", &["elapsed_ms"]),
];

/// How much worse a metric may get: a share of the baseline (`10%`) or an amount in the
/// metric's unit (`2` for 2 ms on a `_ms` metric).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    /// A share of the baseline's value (0.1 is 10%).
    Relative(f64),
    /// An amount in the metric's unit.
    Absolute(f64),
}

impl Tolerance {
    /// Parses `10%` or `2.5`.
    pub fn parse(text: &str) -> Result<Tolerance, String> {
        let text = text.trim();
        let (number, relative) = match text.strip_suffix('%') {
            Some(number) => (number, true),
            None => (text, false),
        };
        match number.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => {
                Ok(if relative { Tolerance::Relative(value / 100.0) } else { Tolerance::Absolute(value) })
            }
            _ => Err(format!("{text:?} is not a tolerance: a percentage such as 10% or an amount such as 2.5")),
        }
    }

    /// Whether the metric's change goes beyond this tolerance.
    fn exceeded_by(&self, comparison: &MetricComparison) -> bool {
        match *self {
            Tolerance::Relative(share) => comparison.rel_change.is_none_or(|change| change.abs() > share),
            Tolerance::Absolute(amount) => comparison.abs_change.abs() > amount,
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Relative(share) => write!(f, "{}%", share * 100.0),
            Tolerance::Absolute(amount) => write!(f, "{amount}"),
        }
    }
}

/// A launch's regression gate, stored with the job and checked when it succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Gate {
    /// The job compared against.
    pub baseline_id: Uuid,
    /// Tolerances by metric name as given (`p99_ms` or `latency.p99_ms`); empty: the kind's defaults.
    #[serde(default)]
    pub max_regression: BTreeMap<String, Tolerance>,
    /// The comparison's settings.
    #[serde(default)]
    pub options: CompareOptions,
}

/// One gated metric's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatedMetric {
    /// The metric's path.
    pub metric: String,
    /// Its tolerance.
    pub tolerance: Tolerance,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its relative change.
    pub rel_change: Option<f64>,
    /// Whether it regressed: `worse` beyond its tolerance.
    pub regressed: bool,
}

/// What a gate decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateOutcome {
    /// False when any gated metric regressed.
    pub passed: bool,
    /// Every gated metric.
    pub gated: Vec<GatedMetric>,
}

impl GateOutcome {
    /// The regressions, described for a job's error or a CLI message.
    pub fn describe_regressions(&self) -> Vec<String> {
        self.gated
            .iter()
            .filter(|gated| gated.regressed)
            .map(|gated| {
                let change = gated.rel_change.map_or_else(|| "from 0".to_string(), |change| format!("{:+.1}%", change * 100.0));
                format!("{} {change} (tolerance {})", gated.metric, gated.tolerance)
            })
            .collect()
    }
}

/// Resolves a tolerance's metric name among the compared metrics.
pub fn resolve_metric(name: &str, compared: &[MetricComparison]) -> Result<String, String> {
    let paths: Vec<&str> = compared.iter().map(|comparison| comparison.metric.as_str()).collect();
    resolve_name(name, &paths)
}

/// Resolves a metric name among `paths`: the exact path, else `latency.NAME`, else the only
/// path ending in `.NAME`.
pub fn resolve_name(name: &str, paths: &[&str]) -> Result<String, String> {
    if paths.contains(&name) {
        return Ok(name.to_string());
    }
    let latency = format!("latency.{name}");
    if paths.contains(&latency.as_str()) {
        return Ok(latency);
    }
    let suffix = format!(".{name}");
    let matching: Vec<&str> = paths.iter().copied().filter(|path| path.ends_with(&suffix)).collect();
    match matching.as_slice() {
        [only] => Ok((*only).to_string()),
        [] => Err(format!("no metric {name:?}; the reports have: {}", paths.join(", "))),
        several => Err(format!("{name:?} is ambiguous: {}", several.join(", "))),
    }
}

/// The tolerances to apply: the given ones resolved to metric paths, or the kind's defaults
/// (those the reports have).
pub fn tolerances(
    kind: &str,
    given: &BTreeMap<String, Tolerance>,
    compared: &[MetricComparison],
) -> Result<Vec<(String, Tolerance)>, String> {
    if !given.is_empty() {
        return given.iter().map(|(name, tolerance)| Ok((resolve_metric(name, compared)?, *tolerance))).collect();
    }
    let defaults = DEFAULT_GATED.iter().find(|(name, _)| *name == kind).map_or(&[][..], |(_, metrics)| *metrics);
    Ok(defaults
        .iter()
        .filter(|metric| compared.iter().any(|comparison| comparison.metric == **metric))
        .map(|metric| (metric.to_string(), DEFAULT_TOLERANCE))
        .collect())
}

/// The gate's verdict over a comparison.
pub fn evaluate(tolerances: &[(String, Tolerance)], compared: &[MetricComparison]) -> GateOutcome {
    let gated: Vec<GatedMetric> = tolerances
        .iter()
        .filter_map(|(metric, tolerance)| {
            let comparison = compared.iter().find(|comparison| &comparison.metric == metric)?;
            Some(GatedMetric {
                metric: metric.clone(),
                tolerance: *tolerance,
                verdict: comparison.verdict,
                rel_change: comparison.rel_change,
                regressed: comparison.verdict == Verdict::Worse && tolerance.exceeded_by(comparison),
            })
        })
        .collect();
    GateOutcome { passed: gated.iter().all(|gated| !gated.regressed), gated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Method;

    fn metric(path: &str, rel_change: f64, verdict: Verdict) -> MetricComparison {
        MetricComparison {
            metric: path.into(),
            baseline: 10.0,
            candidate: 10.0 * (1.0 + rel_change),
            abs_change: 10.0 * rel_change,
            rel_change: Some(rel_change),
            higher_is_better: Some(false),
            verdict,
            method: Method::BootstrapHistogram,
            interval: None,
            p_value: None,
            samples: [100, 100],
        }
    }

    #[test]
    fn tolerances_parse() {
        assert_eq!(Tolerance::parse("10%"), Ok(Tolerance::Relative(0.1)));
        assert_eq!(Tolerance::parse("2.5"), Ok(Tolerance::Absolute(2.5)));
        assert!(Tolerance::parse("-3%").is_err());
        assert!(Tolerance::parse("ten").is_err());
    }

    #[test]
    fn worse_beyond_tolerance_regresses() {
        let compared = [
            metric("latency.p99_ms", 0.3, Verdict::Worse),
            metric("latency.p50_ms", 0.06, Verdict::Worse),
            metric("series.p99_ms", 0.3, Verdict::Worse),
        ];
        let given = BTreeMap::from([("p99_ms".to_string(), Tolerance::Relative(0.1)), ("p50_ms".to_string(), Tolerance::Relative(0.1))]);
        let tolerances = tolerances("http-fanout", &given, &compared).unwrap();
        let outcome = evaluate(&tolerances, &compared);
        assert!(!outcome.passed);
        assert_eq!(outcome.describe_regressions(), ["latency.p99_ms +30.0% (tolerance 10%)"]);
    }

    #[test]
    fn defaults_apply_per_kind_and_names_must_resolve() {
        let compared =
            [metric("latency.p99_ms", 0.3, Verdict::NoSignificantChange), metric("service_time.p99_ms", 0.0, Verdict::NoSignificantChange)];
        let defaults = tolerances("http-fanout", &BTreeMap::new(), &compared).unwrap();
        assert_eq!(defaults, [("latency.p99_ms".to_string(), DEFAULT_TOLERANCE)]);
        assert!(evaluate(&defaults, &compared).passed);
        assert!(resolve_metric("nope", &compared).is_err());
        assert_eq!(resolve_metric("p99_ms", &compared).unwrap(), "latency.p99_ms");
    }
}
