//! The finished job as a readable table: a heading with the outcome, then the report flattened
//! into `key  value` rows, each latency summary on one compact row, long series (histogram
//! buckets, seconds) by their length, and a per-endpoint breakdown as a table of its own.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::endpoints;

/// Arrays of scalars longer than this (as JSON text) are shown by their length.
const INLINE_ARRAY_CHARS: usize = 80;
/// Report fields holding one entry per bucket or per second: shown by their length (`--json`
/// has them all).
const SERIES_FIELDS: [&str; 2] = ["histogram", "series"];
/// Report fields that only a sharded job's merge reads.
const INTERNAL_FIELDS: [&str; 1] = ["recorded"];

/// The job as text: heading, error if any, and the result rows.
pub fn render(job: &Value) -> String {
    let mut out = format!(
        "job {}  {}  {}",
        job["id"].as_str().unwrap_or("?"),
        job["kind"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?")
    );
    if let Some(elapsed) = elapsed_ms(job) {
        out.push_str(&format!("  in {}", format_ms(elapsed)));
    }
    out.push('\n');
    if let Some(error) = job["error"].as_object() {
        out.push_str(&format!(
            "error ({}): {}\n",
            error.get("kind").and_then(Value::as_str).unwrap_or("?"),
            error.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let mut rows = Vec::new();
    flatten("", &job["result"], &mut rows);
    let width = rows.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
    for (key, value) in rows {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    for (key, value) in job["result"].as_object().into_iter().flatten() {
        if endpoints::is_breakdown(value) {
            out.push_str(&format!("\n{key}\n{}", endpoints::table(value.as_array().map_or(&[][..], Vec::as_slice))));
        }
    }
    out
}

fn elapsed_ms(job: &Value) -> Option<f64> {
    let started: DateTime<Utc> = job["started_at"].as_str()?.parse().ok()?;
    let finished: DateTime<Utc> = job["finished_at"].as_str()?.parse().ok()?;
    Some((finished - started).num_microseconds()? as f64 / 1000.0)
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

/// Appends the rows of `value` under `prefix`.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) if is_latency_summary(fields) => rows.push((prefix.to_string(), compact_row(fields))),
        Value::Object(fields) if is_cpu_usage(fields) => rows.push((prefix.to_string(), cpu_row(fields))),
        Value::Object(fields) if !fields.is_empty() => {
            for (key, inner) in fields {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match inner {
                    // Printed as a table after the rows.
                    _ if endpoints::is_breakdown(inner) => {}
                    _ if prefix.is_empty() && INTERNAL_FIELDS.contains(&key.as_str()) => {}
                    Value::Array(items) if prefix.is_empty() && SERIES_FIELDS.contains(&key.as_str()) => {
                        let noun = if items.len() == 1 { "entry" } else { "entries" };
                        rows.push((path, format!("{} {noun} (--json shows them)", items.len())));
                    }
                    _ => flatten(&path, inner, rows),
                }
            }
        }
        Value::Array(items) if items.iter().any(|item| item.is_object() || item.is_array()) => {
            for (index, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{index}]");
                match item.as_object() {
                    Some(fields) if is_flat(fields) => rows.push((path, compact_row(fields))),
                    _ => flatten(&path, item, rows),
                }
            }
        }
        Value::Array(items) => {
            let text = value.to_string();
            let shown = if text.chars().count() <= INLINE_ARRAY_CHARS { text } else { format!("[{} items]", items.len()) };
            rows.push((prefix.to_string(), shown));
        }
        Value::Null if prefix.is_empty() => {}
        other => rows.push((prefix.to_string(), format_scalar(other))),
    }
}

/// A latency summary: percentiles in milliseconds (`p50_ms`, `p99_ms`, …).
fn is_latency_summary(fields: &Map<String, Value>) -> bool {
    fields.contains_key("p50_ms") && fields.contains_key("p99_ms") && is_flat(fields)
}

/// A CPU figure (`total_ms`, `user_ms`, `system_ms`, `threads`, `processes`, `scope`).
fn is_cpu_usage(fields: &Map<String, Value>) -> bool {
    ["total_ms", "user_ms", "system_ms", "threads", "scope"].iter().all(|key| fields.contains_key(*key)) && is_flat(fields)
}

/// One row for a CPU figure: `43.4 ms (user 36.9, system 6.4) on 3 threads, 1 process  dedicated_threads`.
fn cpu_row(fields: &Map<String, Value>) -> String {
    let ms = |key: &str| fields.get(key).and_then(Value::as_f64).unwrap_or_default();
    let count = |key: &str| fields.get(key).and_then(Value::as_u64).unwrap_or_default();
    let counted = |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    let mut row = format!(
        "{:.1} ms (user {:.1}, system {:.1}) on {}",
        ms("total_ms"),
        ms("user_ms"),
        ms("system_ms"),
        counted(count("threads"), "thread", "threads")
    );
    if count("processes") > 0 {
        row.push_str(&format!(", {}", counted(count("processes"), "process", "processes")));
    }
    row.push_str(&format!("  {}", fields.get("scope").map(format_scalar).unwrap_or_default()));
    row
}

fn is_flat(fields: &Map<String, Value>) -> bool {
    fields.values().all(|value| !value.is_object() && !value.is_array())
}

/// One row for a flat object: `count 2000  p50 0.477 ms  p99 1.159 ms  max 3.2 ms`, counts
/// first, then percentiles in order, then the rest.
fn compact_row(fields: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = fields.iter().filter(|(_, value)| !value.is_null()).collect();
    entries.sort_by(|(left, _), (right, _)| order(left).partial_cmp(&order(right)).unwrap_or(std::cmp::Ordering::Equal));
    entries
        .into_iter()
        .map(|(key, value)| match key.strip_suffix("_ms") {
            Some(name) => format!("{name} {} ms", format_scalar(value)),
            None => format!("{key} {}", format_scalar(value)),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Sort key of a field in a compact row: `count`, then `pNN` as the fraction `0.NN`, then the
/// others (their order kept, the sort being stable).
fn order(key: &str) -> (u8, f64) {
    let name = key.strip_suffix("_ms").unwrap_or(key);
    if name == "count" {
        return (0, 0.0);
    }
    match name.strip_prefix('p').filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())) {
        Some(digits) => (1, format!("0.{digits}").parse().unwrap_or(0.0)),
        None => (2, 0.0),
    }
}

/// A scalar as text: strings bare, fractions to at most three decimals.
pub fn format_scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) if number.is_f64() => {
            let fixed = format!("{:.3}", number.as_f64().unwrap_or_default());
            fixed.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Value::Object(fields) if fields.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn results_flatten_into_rows() {
        let job = json!({
            "id": "j1", "kind": "http-fanout", "status": "failed",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01.5Z",
            "error": {"kind": "thresholds", "message": "thresholds missed: min_rps"},
            "result": {
                "requests": 20, "achieved_rps": 1234.56789, "status_counts": {"200": 20},
                "latency": {"count": 20, "p999_ms": 1.9, "p50_ms": 0.4771, "p99_ms": 1.2, "max_ms": 2.0, "mean_ms": 0.5},
                "thresholds": [{"name": "min_rps", "passed": false}],
                "series": [{"second": 1, "stages": [1, 2]}],
                "histogram": [{"le_ms": 0.1, "count": 2}, {"le_ms": 0.2, "count": 18}],
                "recorded": {"latency": [[100, 2]]},
                "endpoints": [{"key": "GET http://h/a", "requests": 20, "error_rate": 0.0, "achieved_rps": 1234.56789,
                               "status_counts": {"200": 20}, "error_counts": {},
                               "latency": {"p50_ms": 0.4771, "p90_ms": 0.9, "p99_ms": 1.2, "max_ms": 2.0}}],
                "urls": ["a", "b"], "empty": {},
                "cpu": {"user_ms": 36.92, "system_ms": 6.45, "total_ms": 43.37, "threads": 3, "processes": 0, "scope": "dedicated_threads"},
                "requests_per_cpu_second": 461.15, "cpu_micros_per_request": 2168.5
            }
        });
        let expected = "\
job j1  http-fanout  failed  in 1.50 s
error (thresholds): thresholds missed: min_rps
achieved_rps             1234.568
cpu                      43.4 ms (user 36.9, system 6.5) on 3 threads  dedicated_threads
cpu_micros_per_request   2168.5
empty                    {}
histogram                2 entries (--json shows them)
latency                  count 20  p50 0.477 ms  p99 1.2 ms  p999 1.9 ms  max 2 ms  mean 0.5 ms
requests                 20
requests_per_cpu_second  461.15
series                   1 entry (--json shows them)
status_counts.200        20
thresholds[0]            name min_rps  passed false
urls                     [\"a\",\"b\"]

endpoints
endpoint        requests  failed  p50 ms  p90 ms  p99 ms  max ms       rps  outcome
GET http://h/a        20       0   0.477     0.9     1.2       2  1234.568  200=20
";
        assert_eq!(render(&job), expected);
    }
}
