//! A report's per-endpoint breakdown as a table, one line per endpoint: requests, failures,
//! latency percentiles, rate and outcome (status and error counts), like Locust's statistics table.

use serde_json::{Map, Value};

use super::report::format_scalar;

/// How a column reads its cell from an endpoint.
type Cell = fn(&Map<String, Value>) -> String;

/// The table's columns after the endpoint: heading and how to read the value.
const COLUMNS: [(&str, Cell); 8] = [
    ("requests", |endpoint| number(&endpoint["requests"])),
    ("failed", failed),
    ("p50 ms", |endpoint| latency(endpoint, "p50_ms")),
    ("p90 ms", |endpoint| latency(endpoint, "p90_ms")),
    ("p99 ms", |endpoint| latency(endpoint, "p99_ms")),
    ("max ms", |endpoint| latency(endpoint, "max_ms")),
    ("rps", |endpoint| number(&endpoint["achieved_rps"])),
    ("outcome", outcome),
];

/// Whether `value` is a breakdown: a list of objects, each with a `key` and a `latency`.
pub fn is_breakdown(value: &Value) -> bool {
    value.as_array().is_some_and(|items| {
        !items.is_empty()
            && items.iter().all(|item| item.get("key").is_some_and(Value::is_string) && item.get("latency").is_some_and(Value::is_object))
    })
}

/// The table: a heading line, then one line per endpoint; numbers right-aligned, the outcome last.
pub fn table(endpoints: &[Value]) -> String {
    let mut rows: Vec<Vec<String>> =
        vec![std::iter::once("endpoint").chain(COLUMNS.iter().map(|(heading, _)| *heading)).map(str::to_string).collect()];
    for endpoint in endpoints.iter().filter_map(Value::as_object) {
        let key = endpoint.get("key").map(format_scalar).unwrap_or_default();
        rows.push(std::iter::once(key).chain(COLUMNS.iter().map(|(_, read)| read(endpoint))).collect());
    }
    let widths: Vec<usize> =
        (0..=COLUMNS.len()).map(|column| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = format!("{:<width$}", row[0], width = widths[0]);
        for (column, cell) in row.iter().enumerate().skip(1) {
            if column == COLUMNS.len() {
                line.push_str(&format!("  {cell}"));
            } else {
                line.push_str(&format!("  {cell:>width$}", width = widths[column]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn number(value: &Value) -> String {
    if value.is_null() { "-".into() } else { format_scalar(value) }
}

/// A latency figure, or `-` for an endpoint that got no response.
fn latency(endpoint: &Map<String, Value>, field: &str) -> String {
    match endpoint["latency"]["count"].as_u64() {
        Some(0) => "-".into(),
        _ => number(&endpoint["latency"][field]),
    }
}

/// Failed requests: transport errors and statuses ≥ 400.
fn failed(endpoint: &Map<String, Value>) -> String {
    match (endpoint["requests"].as_u64(), endpoint["error_rate"].as_f64()) {
        (Some(requests), Some(rate)) => ((requests as f64 * rate).round() as u64).to_string(),
        _ => "-".into(),
    }
}

/// Status counts then error counts, `200=300 timeout=2`.
fn outcome(endpoint: &Map<String, Value>) -> String {
    ["status_counts", "error_counts"]
        .iter()
        .filter_map(|field| endpoint.get(*field).and_then(Value::as_object))
        .flatten()
        .map(|(name, count)| format!("{name}={}", format_scalar(count)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_endpoint() {
        let endpoints = json!([
            {"key": "GET http://h/a", "requests": 300, "error_rate": 0.0, "achieved_rps": 1500.25,
             "status_counts": {"200": 300}, "error_counts": {},
             "latency": {"p50_ms": 0.31, "p90_ms": 0.5, "p99_ms": 1.2, "max_ms": 3.0}},
            {"key": "slow", "requests": 4, "error_rate": 0.5, "achieved_rps": 20.0,
             "status_counts": {"200": 2}, "error_counts": {"timeout": 2},
             "latency": {"count": 2, "p50_ms": 2000.0, "p90_ms": 2990.0, "p99_ms": 2990.0, "max_ms": 2990.0}},
            {"key": "down", "requests": 1, "error_rate": 1.0, "achieved_rps": 5.0,
             "status_counts": {}, "error_counts": {"connect_refused": 1},
             "latency": {"count": 0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}}
        ]);
        assert!(is_breakdown(&endpoints));
        assert!(!is_breakdown(&json!([{"key": "x"}])));
        let expected = "\
endpoint        requests  failed  p50 ms  p90 ms  p99 ms  max ms      rps  outcome
GET http://h/a       300       0    0.31     0.5     1.2       3  1500.25  200=300
slow                   4       2    2000    2990    2990    2990       20  200=2 timeout=2
down                   1       1       -       -       -       -        5  connect_refused=1
";
        assert_eq!(table(endpoints.as_array().unwrap()), expected);
    }
}
