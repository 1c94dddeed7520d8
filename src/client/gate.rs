//! `asynclab run --baseline`: after the run, the server compares the job with its baseline and
//! applies the tolerances; this prints the comparison and turns the gate into an exit code.

use serde_json::Value;

use super::Outcome;
use super::api::Server;
use super::display::Display;

/// What `--baseline`, `--max-regression` and `--baseline-optional` asked for.
pub struct GateArgs<'a> {
    /// A job id or a label selector (`branch:main`).
    pub baseline: &'a str,
    /// Tolerances as `metric=tolerance` (`p99_ms=10%`).
    pub max_regression: &'a [String],
    /// No baseline found is not an error.
    pub optional: bool,
}

/// `metric=tolerance` as the server's `metric:tolerance`.
pub fn tolerance_query(assignments: &[String]) -> anyhow::Result<Vec<String>> {
    assignments
        .iter()
        .map(|assignment| match assignment.split_once('=') {
            Some((metric, tolerance)) if !metric.is_empty() && !tolerance.is_empty() => Ok(format!("{metric}:{tolerance}")),
            _ => anyhow::bail!("--max-regression {assignment}: expected METRIC=TOLERANCE, e.g. p99_ms=10%"),
        })
        .collect()
}

/// Compares the finished job `id` with the baseline and says how the run ends.
pub async fn check(server: &Server, id: &str, gate: &GateArgs<'_>, display: &mut Display) -> anyhow::Result<Outcome> {
    let tolerances = tolerance_query(gate.max_regression)?;
    let Some(comparison) = server.compare(id, gate.baseline, &tolerances).await? else {
        if gate.optional {
            display.note(&format!("no baseline matches {}; the gate is skipped (--baseline-optional)", gate.baseline));
            return Ok(Outcome::Succeeded);
        }
        eprintln!(
            "asynclab run: no baseline matches {}: no succeeded job of this kind with that label and the same parameters",
            gate.baseline
        );
        return Ok(Outcome::Usage);
    };
    print!("{}", render(&comparison));
    Ok(if comparison["gate"]["passed"] == Value::Bool(false) { Outcome::Regressed } else { Outcome::Succeeded })
}

/// The comparison as text: the gated metrics and every metric with a verdict.
pub fn render(comparison: &Value) -> String {
    let mut text = format!("\ncompared with baseline job {}\n", comparison["baseline_id"].as_str().unwrap_or("?"));
    let empty = Vec::new();
    for metric in comparison["metrics"].as_array().unwrap_or(&empty) {
        let verdict = metric["verdict"].as_str().unwrap_or("?");
        if verdict == "no significant change" {
            continue;
        }
        let change = metric["rel_change"].as_f64().map_or_else(|| "n/a".to_string(), |change| format!("{:+.1}%", change * 100.0));
        text.push_str(&format!(
            "  {:<28} {:>12} -> {:<12} {:>8}  {verdict}\n",
            metric["metric"].as_str().unwrap_or("?"),
            number(&metric["baseline"]),
            number(&metric["candidate"]),
            change
        ));
    }
    let gate = &comparison["gate"];
    for gated in gate["gated"].as_array().unwrap_or(&empty) {
        let status = if gated["regressed"] == true { "REGRESSED" } else { "ok" };
        let tolerance = match (&gated["tolerance"]["relative"], &gated["tolerance"]["absolute"]) {
            (Value::Number(share), _) => format!("{}%", share.as_f64().unwrap_or(0.0) * 100.0),
            (_, Value::Number(amount)) => amount.to_string(),
            _ => "?".into(),
        };
        text.push_str(&format!(
            "  gate {:<23} {:<22} tolerance {tolerance:<6} {status}\n",
            gated["metric"].as_str().unwrap_or("?"),
            gated["verdict"].as_str().unwrap_or("?")
        ));
    }
    text.push_str(if gate["passed"] == false { "regression: a gated metric is worse beyond its tolerance\n" } else { "no regression\n" });
    text
}

fn number(value: &Value) -> String {
    value.as_f64().map_or_else(|| "?".into(), |number| format!("{:.3}", number))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tolerances_become_query_values() {
        assert_eq!(tolerance_query(&["p99_ms=10%".into()]).unwrap(), ["p99_ms:10%"]);
        assert!(tolerance_query(&["p99_ms".into()]).is_err());
    }

    #[test]
    fn regressions_are_shown() {
        let comparison = json!({"baseline_id": "b", "metrics": [
            {"metric": "latency.p99_ms", "baseline": 1.0, "candidate": 3.0, "rel_change": 2.0, "verdict": "worse"},
            {"metric": "requests", "baseline": 10, "candidate": 10, "rel_change": 0.0, "verdict": "no significant change"}],
            "gate": {"passed": false, "gated": [{"metric": "latency.p99_ms", "verdict": "worse", "regressed": true, "tolerance": {"relative": 0.1}}]}});
        let text = render(&comparison);
        assert!(text.contains("latency.p99_ms") && text.contains("+200.0%") && text.contains("REGRESSED"), "{text}");
        assert!(!text.contains("requests"), "{text}");
    }
}
