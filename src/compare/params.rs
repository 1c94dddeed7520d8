//! Whether two runs measured the same thing: their kinds must match and their parameters too,
//! except those that only judge a run (thresholds) and never change what is measured.

use serde_json::Value;

/// Parameters that judge a run without changing it.
const JUDGING_PARAMS: [&str; 1] = ["thresholds"];

/// The parameters (dotted paths) whose values differ between two runs, judging ones left out.
pub fn differing_params(baseline: &Value, candidate: &Value) -> Vec<String> {
    let mut differing = Vec::new();
    diff(baseline, candidate, "", &mut differing);
    differing.retain(|path| !JUDGING_PARAMS.iter().any(|name| path == name || path.starts_with(&format!("{name}."))));
    differing
}

/// Whether the two parameter sets measure the same thing.
pub fn comparable(baseline: &Value, candidate: &Value) -> bool {
    differing_params(baseline, candidate).is_empty()
}

fn diff(baseline: &Value, candidate: &Value, path: &str, differing: &mut Vec<String>) {
    match (baseline, candidate) {
        (Value::Object(before), Value::Object(after)) => {
            let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                diff(before.get(key).unwrap_or(&Value::Null), after.get(key).unwrap_or(&Value::Null), &at, differing);
            }
        }
        (before, after) if before != after => differing.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differing_params_are_named_by_path() {
        let baseline = json!({"url": "http://a/", "concurrency": 10, "thresholds": {"p99_ms": 5}, "tls": {"http2": false}});
        let candidate = json!({"url": "http://b/", "concurrency": 10, "thresholds": {"p99_ms": 9}, "tls": {"http2": true}, "extra": 1});
        assert_eq!(differing_params(&baseline, &candidate), ["extra", "tls.http2", "url"]);
        assert!(comparable(&json!({"a": [1, 2], "thresholds": {"x": 1}}), &json!({"a": [1, 2]})));
    }
}
