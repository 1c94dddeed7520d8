//! Finding what can be compared in any experiment's report, without knowing its kind: every
//! numeric leaf as a dotted path (`latency.p99_ms`, `modes[lines].mb_per_s`), and the
//! distributions a report carries beside them: a latency histogram next to a `latency` summary,
//! a summary's count/mean/standard deviation, and per-second series.
//!
//! Arrays of objects are keyed by a naming field when they have one (`modes[lines]`,
//! `endpoints[checkout]`), else by position, so per-item breakdowns line up between two reports.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::significance::{Buckets, Moments};

/// Report fields that are not results: raw recordings, shard bookkeeping, threshold echoes.
const SKIPPED_FIELDS: [&str; 4] = ["histogram", "recorded", "shards", "thresholds"];
/// Fields that name an item of an array, in order of preference: `key` first, the fan-out
/// endpoint's stable key (its target's name, or method and URL as written).
const NAMING_FIELDS: [&str; 11] = ["key", "name", "endpoint", "mode", "flavour", "target", "step", "phase", "operation", "kind", "url"];
/// The per-second series of a report, as an array of objects with a `second` field.
const SERIES_FIELD: &str = "second";

/// What a report offers for comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportMetrics {
    /// Every numeric leaf, by dotted path.
    pub scalars: BTreeMap<String, f64>,
    /// Latency histograms, by the path of the summary they belong to (`latency`).
    pub histograms: BTreeMap<String, Buckets>,
    /// Summaries with count, mean and standard deviation, by path.
    pub moments: BTreeMap<String, Moments>,
    /// Per-second values, by `series_path.field` (the run's last, partial, second left out).
    pub series: BTreeMap<String, Vec<f64>>,
}

impl ReportMetrics {
    /// Everything comparable in `report`.
    pub fn extract(report: &Value) -> ReportMetrics {
        let mut metrics = ReportMetrics::default();
        if let Value::Object(object) = report {
            metrics.walk_object(object, "");
        }
        metrics
    }

    /// Every metric path a history or a tolerance may name.
    pub fn paths(&self) -> Vec<String> {
        self.scalars.keys().chain(self.series.keys()).cloned().collect()
    }

    fn walk_object(&mut self, object: &Map<String, Value>, path: &str) {
        if let (Some(histogram), Some(Value::Object(_))) = (object.get("histogram"), object.get("latency"))
            && let Some(buckets) = buckets(histogram)
        {
            self.histograms.insert(join(path, "latency"), buckets);
        }
        if let Some(moments) = moments(object) {
            self.moments.insert(path.to_string(), moments);
        }
        for (field, value) in object {
            if SKIPPED_FIELDS.contains(&field.as_str()) {
                continue;
            }
            let at = join(path, field);
            match value {
                Value::Number(number) => {
                    if let Some(number) = number.as_f64() {
                        self.scalars.insert(at, number);
                    }
                }
                Value::Object(inner) => self.walk_object(inner, &at),
                Value::Array(items) if is_series(items) => self.add_series(items, &at),
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        if let Value::Object(inner) = item {
                            self.walk_object(inner, &format!("{at}[{}]", item_name(inner).unwrap_or_else(|| index.to_string())));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn add_series(&mut self, items: &[Value], path: &str) {
        // The last second is cut short by the end of the run: it would bias counts per second.
        let complete = if items.len() > 2 { &items[..items.len() - 1] } else { items };
        let mut fields: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for item in complete.iter().filter_map(Value::as_object) {
            for (field, value) in item.iter().filter(|(field, _)| *field != SERIES_FIELD) {
                if let Some(number) = value.as_f64() {
                    fields.entry(field.clone()).or_default().push(number);
                }
            }
        }
        for (field, values) in fields {
            self.series.insert(join(path, &field), values);
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn is_series(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|item| item.get(SERIES_FIELD).is_some_and(Value::is_u64))
}

fn item_name(item: &Map<String, Value>) -> Option<String> {
    NAMING_FIELDS.iter().find_map(|field| item.get(*field).and_then(Value::as_str)).map(str::to_string)
}

/// A `[{le_ms, count}]` histogram.
fn buckets(histogram: &Value) -> Option<Buckets> {
    let buckets: Option<Vec<(f64, u64)>> =
        histogram.as_array()?.iter().map(|bucket| Some((bucket.get("le_ms")?.as_f64()?, bucket.get("count")?.as_u64()?))).collect();
    buckets.filter(|buckets| !buckets.is_empty()).map(|buckets| Buckets { buckets })
}

/// A latency summary's count, mean and standard deviation.
fn moments(object: &Map<String, Value>) -> Option<Moments> {
    let number = |field: &str| object.get(field).and_then(Value::as_f64);
    Some(Moments { count: number("count")?, mean: number("mean_ms")?, stdev: number("stdev_ms")? })
}

/// Which way a metric should move, guessed from its name: rates up, times and failures down,
/// and no direction for counts and sizes that the parameters decide.
pub fn higher_is_better(path: &str) -> Option<bool> {
    let name = path.rsplit('.').next().unwrap_or(path);
    let name = name.split('[').next().unwrap_or(name);
    if name.ends_with("_per_s") || name.ends_with("per_second") || name.ends_with("rps") || name.contains("speedup") {
        return Some(true);
    }
    let lower = ["_ms", "_us", "_micros", "error_rate", "errors", "dropped", "timeouts", "lag", "wait_share", "failed"];
    if lower.iter().any(|suffix| name.ends_with(suffix)) {
        return Some(false);
    }
    None
}

/// A quantile named like `p99_ms` or `p999_ms`: 0.99, 0.999.
pub fn quantile_of(field: &str) -> Option<f64> {
    let digits = field.strip_prefix('p')?.strip_suffix("_ms")?;
    if digits.len() < 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<f64>().ok()? / 10f64.powi(digits.len() as i32))
}

/// A numeric value at a dotted path of a report (`latency.p99_ms`, `modes[lines].mb_per_s`).
pub fn value_at(report: &Value, path: &str) -> Option<f64> {
    ReportMetrics::extract(report).scalars.get(path).copied()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fanout_like() -> Value {
        json!({
            "requests": 100, "error_rate": 0.0, "achieved_rps": 950.5,
            "latency": {"count": 100, "p50_ms": 1.1, "p99_ms": 2.5, "mean_ms": 1.2, "stdev_ms": 0.3},
            "histogram": [{"le_ms": 0.8, "count": 10}, {"le_ms": 1.6, "count": 80}, {"le_ms": 3.2, "count": 10}],
            "series": [{"second": 1, "requests": 500, "p99_ms": 2.0}, {"second": 2, "requests": 480, "p99_ms": 2.4},
                       {"second": 3, "requests": 20, "p99_ms": 9.0}],
            "thresholds": [{"name": "p99_ms", "limit": 5.0, "observed": 2.5, "passed": true}],
            "modes": [{"mode": "lines", "mb_per_s": 10.0}, {"mode": "whole", "mb_per_s": 30.0}],
            "status_counts": {"200": 100}
        })
    }

    #[test]
    fn numeric_leaves_become_dotted_paths() {
        let metrics = ReportMetrics::extract(&fanout_like());
        let paths: Vec<&str> = metrics.scalars.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "achieved_rps",
                "error_rate",
                "latency.count",
                "latency.mean_ms",
                "latency.p50_ms",
                "latency.p99_ms",
                "latency.stdev_ms",
                "modes[lines].mb_per_s",
                "modes[whole].mb_per_s",
                "requests",
                "status_counts.200"
            ]
        );
        assert_eq!(value_at(&fanout_like(), "modes[whole].mb_per_s"), Some(30.0));
    }

    #[test]
    fn fanout_endpoints_are_keyed_by_their_stable_key() {
        let report = json!({"endpoints": [
            {"key": "checkout", "name": "checkout", "url": "http://127.0.0.1:1/a", "latency": {"count": 10, "p99_ms": 4.0, "mean_ms": 2.0, "stdev_ms": 1.0}},
            {"key": "GET http://127.0.0.1:1/b/{i}", "url": "http://127.0.0.1:1/b/{i}", "latency": {"count": 10, "p99_ms": 9.0, "mean_ms": 3.0, "stdev_ms": 1.0}}
        ]});
        let metrics = ReportMetrics::extract(&report);
        assert_eq!(metrics.scalars["endpoints[checkout].latency.p99_ms"], 4.0);
        assert_eq!(metrics.scalars["endpoints[GET http://127.0.0.1:1/b/{i}].latency.p99_ms"], 9.0);
        assert!(metrics.moments.contains_key("endpoints[checkout].latency"), "{:?}", metrics.moments.keys());
    }

    #[test]
    fn distributions_are_found_beside_the_numbers() {
        let metrics = ReportMetrics::extract(&fanout_like());
        assert_eq!(metrics.histograms["latency"].total(), 100);
        assert_eq!(metrics.moments["latency"], Moments { count: 100.0, mean: 1.2, stdev: 0.3 });
        assert_eq!(metrics.series["series.requests"], [500.0, 480.0], "the partial last second is left out");
    }

    #[test]
    fn directions_and_quantiles_come_from_names() {
        assert_eq!(higher_is_better("achieved_rps"), Some(true));
        assert_eq!(higher_is_better("modes[lines].mb_per_s"), Some(true));
        assert_eq!(higher_is_better("latency.p99_ms"), Some(false));
        assert_eq!(higher_is_better("error_rate"), Some(false));
        assert_eq!(higher_is_better("requests"), None);
        assert_eq!(quantile_of("p99_ms"), Some(0.99));
        assert_eq!(quantile_of("p9999_ms"), Some(0.9999));
        assert_eq!(quantile_of("max_ms"), None);
    }
}
