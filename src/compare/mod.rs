//! Comparing two runs of the same experiment: every numeric metric of the two reports side by
//! side with its change and a verdict (`better`, `worse`, `no significant change`, or `changed`
//! for metrics with no better direction) decided from the distributions where the reports keep
//! them, and said to rest on one sample each where they do not.
//!
//! A verdict other than `no significant change` needs both: a statistically significant
//! difference (at `confidence`) and a change of at least `min_change` (relative), because with
//! thousands of samples a run-to-run wobble of a percent is "significant" yet means nothing.
//!
//! This module knows reports and parameters as JSON only, never a job store or a kind, so the
//! API, the CLI and the runner's regression gate share it.
//! - [`metrics`]: what a report offers (numbers, histograms, summaries, per-second series);
//! - [`significance`]: the bootstrap, rank and t tests;
//! - [`params`]: whether two runs measured the same thing;
//! - [`gate`]: tolerances and the regression verdict of a CI gate.

pub mod comparison;
pub mod gate;
pub mod metrics;
pub mod params;
pub mod significance;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use metrics::{ReportMetrics, higher_is_better, quantile_of};
use significance::{Statistic, bootstrap_difference, mann_whitney, welch};

/// The default confidence of the statistical tests.
pub const DEFAULT_CONFIDENCE: f64 = 0.99;
/// The default smallest relative change worth a verdict.
pub const DEFAULT_MIN_CHANGE: f64 = 0.05;
/// How the verdicts are reached, for the response and the README.
pub const METHOD: &str = "Latency quantiles and means of a report that keeps a latency histogram: 99% (by default) \
percentile bootstrap confidence interval of the difference, 2000 Poisson resamples of the histogram buckets with \
quantiles interpolated inside buckets; significant when the interval excludes 0. Means of latency summaries without \
a histogram: Welch's t-test on count, mean and standard deviation. Per-second series: Mann-Whitney U rank test over \
the complete seconds. Other numbers rest on one sample each: no test is possible, only the size of the change counts. \
Any verdict also needs a relative change of at least min_change.";

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Verdict {
    /// Moved the good way, significantly.
    #[serde(rename = "better")]
    Better,
    /// Moved the bad way, significantly.
    #[serde(rename = "worse")]
    Worse,
    /// Not significantly different, or by less than `min_change`.
    #[serde(rename = "no significant change")]
    NoSignificantChange,
    /// Significantly different, for a metric with no better direction (a count, a size).
    #[serde(rename = "changed")]
    Changed,
}

/// How a metric's verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Bootstrap confidence interval of the difference, from the latency histograms.
    BootstrapHistogram,
    /// Welch's t-test on the summaries' count, mean and standard deviation.
    WelchT,
    /// Mann-Whitney U rank test over the per-second values.
    MannWhitney,
    /// One value per run: the verdict rests on one sample each.
    SingleSample,
}

/// One metric of the two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricComparison {
    /// The metric's dotted path in the report (`latency.p99_ms`); per-second series as
    /// `series.p99_ms` (the median second).
    pub metric: String,
    /// The baseline's value.
    pub baseline: f64,
    /// The candidate's value.
    pub candidate: f64,
    /// candidate − baseline.
    pub abs_change: f64,
    /// (candidate − baseline) / baseline; absent when the baseline is 0.
    pub rel_change: Option<f64>,
    /// Whether a higher value is better; absent for counts and sizes.
    pub higher_is_better: Option<bool>,
    /// The verdict.
    pub verdict: Verdict,
    /// How it was reached.
    pub method: Method,
    /// Bootstrap: the confidence interval of candidate − baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// Rank and t tests: the two-sided p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Samples behind each value: `[baseline, candidate]`.
    pub samples: [u64; 2],
}

/// Settings of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompareOptions {
    /// Confidence of the tests (0.5 to 0.9999).
    pub confidence: f64,
    /// The smallest relative change given a verdict (0 to 10).
    pub min_change: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { confidence: DEFAULT_CONFIDENCE, min_change: DEFAULT_MIN_CHANGE }
    }
}

/// Compares every metric the two reports share, in path order.
pub fn compare_reports(baseline: &Value, candidate: &Value, options: CompareOptions) -> Vec<MetricComparison> {
    let (before, after) = (ReportMetrics::extract(baseline), ReportMetrics::extract(candidate));
    let mut compared: Vec<MetricComparison> = before
        .scalars
        .iter()
        .filter_map(|(path, &value)| Some((path, value, *after.scalars.get(path)?)))
        .map(|(path, baseline, candidate)| compare_scalar(path, baseline, candidate, &before, &after, options))
        .collect();
    for (path, values) in &before.series {
        if let Some(other) = after.series.get(path) {
            compared.push(compare_series(path, values, other, options));
        }
    }
    compared.sort_by(|a, b| a.metric.cmp(&b.metric));
    compared
}

fn compare_scalar(
    path: &str,
    baseline: f64,
    candidate: f64,
    before: &ReportMetrics,
    after: &ReportMetrics,
    options: CompareOptions,
) -> MetricComparison {
    let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
    let statistic = if field == "mean_ms" { Some(Statistic::Mean) } else { quantile_of(field).map(Statistic::Quantile) };
    let mut comparison = base(path, baseline, candidate, Method::SingleSample, [1, 1]);
    if let (Some(statistic), Some(first), Some(second)) = (statistic, before.histograms.get(parent), after.histograms.get(parent))
        && let Some((low, high)) = bootstrap_difference(first, second, statistic, options.confidence)
    {
        comparison.method = Method::BootstrapHistogram;
        comparison.interval = Some([low, high]);
        comparison.samples = [first.total(), second.total()];
        comparison.verdict = verdict(&comparison, low > 0.0 || high < 0.0, options);
    } else if let (Some(Statistic::Mean), Some(first), Some(second)) = (statistic, before.moments.get(parent), after.moments.get(parent))
        && let Some(p_value) = welch(*first, *second)
    {
        comparison.method = Method::WelchT;
        comparison.p_value = Some(p_value);
        comparison.samples = [first.count as u64, second.count as u64];
        comparison.verdict = verdict(&comparison, p_value < 1.0 - options.confidence, options);
    } else {
        comparison.verdict = verdict(&comparison, baseline != candidate, options);
    }
    comparison
}

/// Per-second values compared by rank; the values shown are the median seconds.
fn compare_series(path: &str, baseline: &[f64], candidate: &[f64], options: CompareOptions) -> MetricComparison {
    let mut comparison =
        base(path, median(baseline), median(candidate), Method::MannWhitney, [baseline.len() as u64, candidate.len() as u64]);
    let p_value = mann_whitney(baseline, candidate).unwrap_or(1.0);
    comparison.p_value = Some(p_value);
    comparison.verdict = verdict(&comparison, p_value < 1.0 - options.confidence, options);
    comparison
}

fn base(path: &str, baseline: f64, candidate: f64, method: Method, samples: [u64; 2]) -> MetricComparison {
    MetricComparison {
        metric: path.to_string(),
        baseline,
        candidate,
        abs_change: candidate - baseline,
        rel_change: (baseline != 0.0).then(|| (candidate - baseline) / baseline.abs()),
        higher_is_better: higher_is_better(path),
        verdict: Verdict::NoSignificantChange,
        method,
        interval: None,
        p_value: None,
        samples,
    }
}

/// The verdict of a change the test found `significant` (or not).
fn verdict(comparison: &MetricComparison, significant: bool, options: CompareOptions) -> Verdict {
    let large_enough = comparison.rel_change.is_none_or(|change| change.abs() >= options.min_change);
    if !significant || !large_enough || comparison.abs_change == 0.0 {
        return Verdict::NoSignificantChange;
    }
    match comparison.higher_is_better {
        None => Verdict::Changed,
        Some(higher) if higher == (comparison.abs_change > 0.0) => Verdict::Better,
        Some(_) => Verdict::Worse,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(center_ms: f64, per_second: [f64; 8]) -> Value {
        // Buckets doubling from 0.1 ms, 1000 samples spread over the bucket holding the centre and its neighbours.
        let bounds: Vec<f64> = (0..12).map(|i| 0.1 * 2f64.powi(i)).collect();
        let home = bounds.iter().position(|&bound| center_ms <= bound).unwrap();
        let histogram: Vec<Value> = bounds
            .iter()
            .enumerate()
            .map(|(i, bound)| json!({"le_ms": bound, "count": if i == home { 800 } else if i + 1 == home || i == home + 1 { 100 } else { 0 }}))
            .collect();
        let series: Vec<Value> = per_second.iter().enumerate().map(|(i, p99)| json!({"second": i + 1, "p99_ms": p99})).collect();
        json!({"requests": 1000, "achieved_rps": 1000.0 / center_ms, "latency": {"count": 1000, "p50_ms": center_ms, "p99_ms": center_ms * 2.0},
               "histogram": histogram, "series": series})
    }

    fn find<'a>(compared: &'a [MetricComparison], metric: &str) -> &'a MetricComparison {
        compared.iter().find(|comparison| comparison.metric == metric).unwrap()
    }

    #[test]
    fn a_slower_candidate_is_worse_from_its_distributions() {
        let compared = compare_reports(
            &report(1.2, [2.0, 2.1, 2.0, 2.2, 2.1, 2.0, 2.1, 9.0]),
            &report(3.2, [6.0, 6.2, 6.1, 6.3, 6.0, 6.1, 6.2, 9.0]),
            CompareOptions::default(),
        );
        let p50 = find(&compared, "latency.p50_ms");
        assert_eq!((p50.verdict, p50.method, p50.samples), (Verdict::Worse, Method::BootstrapHistogram, [1000, 1000]));
        assert!(p50.interval.unwrap()[0] > 0.0);
        let series = find(&compared, "series.p99_ms");
        assert_eq!((series.verdict, series.method, series.samples), (Verdict::Worse, Method::MannWhitney, [7, 7]));
        let rps = find(&compared, "achieved_rps");
        assert_eq!((rps.verdict, rps.method, rps.higher_is_better), (Verdict::Worse, Method::SingleSample, Some(true)));
        assert_eq!(find(&compared, "requests").verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn the_same_distribution_is_no_significant_change() {
        let compared = compare_reports(
            &report(1.2, [2.0, 2.1, 2.0, 2.2, 2.1, 2.0, 2.2, 2.0]),
            &report(1.2, [2.1, 2.0, 2.2, 2.0, 2.1, 2.0, 2.1, 2.0]),
            CompareOptions::default(),
        );
        assert!(compared.iter().all(|comparison| comparison.verdict == Verdict::NoSignificantChange), "{compared:#?}");
    }

    #[test]
    fn a_faster_candidate_is_better_and_small_changes_are_ignored() {
        let compared = compare_reports(&report(3.2, [6.0; 8]), &report(1.2, [2.0; 8]), CompareOptions::default());
        assert_eq!(find(&compared, "latency.p50_ms").verdict, Verdict::Better);
        let options = CompareOptions { min_change: 10.0, ..CompareOptions::default() };
        let compared = compare_reports(&report(3.2, [6.0; 8]), &report(1.2, [2.0; 8]), options);
        assert_eq!(find(&compared, "latency.p50_ms").verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn summaries_without_histograms_use_welch() {
        let summary = |mean: f64| json!({"latency": {"count": 500, "mean_ms": mean, "stdev_ms": 0.5, "p99_ms": mean * 2.0}});
        let compared = compare_reports(&summary(2.0), &summary(2.5), CompareOptions::default());
        let mean = find(&compared, "latency.mean_ms");
        assert_eq!((mean.method, mean.verdict), (Method::WelchT, Verdict::Worse));
        assert!(mean.p_value.unwrap() < 0.001);
        assert_eq!(find(&compared, "latency.p99_ms").method, Method::SingleSample);
    }
}
