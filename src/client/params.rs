//! The launch parameters from `--params-file` and `-p key=value`: values are JSON when they parse
//! as JSON, text otherwise; dotted keys build nested objects; `-p` overrides the file.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The parameters: the file's object (if any) with every assignment applied in order.
pub fn collect(file: Option<&Path>, assignments: &[String]) -> anyhow::Result<Value> {
    let mut params = match file {
        Some(path) => read_file(path)?,
        None => Map::new(),
    };
    for assignment in assignments {
        assign(&mut params, assignment).with_context(|| format!("-p {assignment}"))?;
    }
    Ok(Value::Object(params))
}

/// The `--label KEY=VALUE` arguments as the launch's `labels` object (the server checks them).
pub fn labels(assignments: &[String]) -> anyhow::Result<Value> {
    let mut labels = Map::new();
    for assignment in assignments {
        let Some((key, value)) = assignment.split_once('=') else {
            bail!("--label {assignment}: expected KEY=VALUE");
        };
        labels.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(Value::Object(labels))
}

/// Reads a JSON object from `path`, or from standard input for `-`.
fn read_file(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the parameters from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    match serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))? {
        Value::Object(object) => Ok(object),
        _ => bail!("{} must hold a JSON object", path.display()),
    }
}

/// Applies one `key=value`, `key` possibly dotted (`thresholds.p99_ms=50`).
pub fn assign(params: &mut Map<String, Value>, assignment: &str) -> anyhow::Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        bail!("expected KEY=VALUE");
    };
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let path: Vec<&str> = key.split('.').collect();
    if path.iter().any(|part| part.is_empty()) {
        bail!("the key {key:?} has an empty part");
    }
    let (last, parents) = path.split_last().expect("split yields at least one part");
    let mut object = params;
    for part in parents {
        let slot = object.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        object = slot.as_object_mut().expect("made an object just above");
    }
    object.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(assignments: &[&str]) -> Value {
        let mut params = Map::new();
        for assignment in assignments {
            assign(&mut params, assignment).unwrap();
        }
        Value::Object(params)
    }

    #[test]
    fn values_are_json_when_they_parse_and_text_otherwise() {
        let params = apply(&["count=1000", "keep_alive=false", "url=http://h/{i}", "name=\"7\"", "headers={\"a\":1}", "rate=2.5"]);
        assert_eq!(
            params,
            json!({"count": 1000, "keep_alive": false, "url": "http://h/{i}", "name": "7", "headers": {"a": 1}, "rate": 2.5})
        );
    }

    #[test]
    fn dotted_keys_nest_and_later_assignments_win() {
        let params = apply(&["thresholds.p99_ms=50", "thresholds.min_rps=1e9", "count=1", "count=2", "a=1", "a.b=2"]);
        assert_eq!(params, json!({"thresholds": {"p99_ms": 50, "min_rps": 1e9}, "count": 2, "a": {"b": 2}}));
    }

    #[test]
    fn malformed_assignments_are_refused() {
        let mut params = Map::new();
        assert!(assign(&mut params, "count").is_err());
        assert!(assign(&mut params, "a..b=1").is_err());
        assert!(assign(&mut params, "=1").is_err());
    }

    #[test]
    fn assignments_override_the_file() {
        let file = std::env::temp_dir().join(format!("asynclab-params-{}.json", std::process::id()));
        std::fs::write(&file, r#"{"count": 5, "thresholds": {"p99_ms": 10, "error_rate": 0}}"#).unwrap();
        let params = collect(Some(&file), &["count=7".into(), "thresholds.p99_ms=20".into()]).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(params, json!({"count": 7, "thresholds": {"p99_ms": 20, "error_rate": 0}}));
    }
}
