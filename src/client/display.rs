//! Shows a job's events while it runs: on a terminal a progress bar (or a spinner) with live
//! figures, otherwise one plain line per event, `#SEQ KIND key=value …`, on standard error.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};

use super::follow::SseEvent;
use super::report::format_scalar;

/// How often the spinner moves while nothing arrives.
const TICK: Duration = Duration::from_millis(120);
/// Progress fields shown beside the bar, when present, in this order.
const HEADLINE_FIGURES: [&str; 6] = ["current_rps", "p50_ms", "p99_ms", "in_flight", "errors", "elapsed_ms"];

/// Where events are shown.
pub enum Display {
    /// An interactive terminal: a bar once a total is known, a spinner before.
    Terminal(ProgressBar),
    /// A log or a pipe: one line per event.
    Lines,
}

impl Display {
    /// A bar on a terminal, lines otherwise.
    pub fn for_stderr() -> Display {
        if !std::io::stderr().is_terminal() {
            return Display::Lines;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.enable_steady_tick(TICK);
        Display::Terminal(bar)
    }

    /// Shows one job event.
    pub fn event(&mut self, event: &SseEvent) {
        let payload = &event.data["data"];
        match self {
            Display::Lines => {
                let seq = event.id.map(|seq| seq.to_string()).unwrap_or_else(|| "-".into());
                eprintln!("#{seq} {} {}", event.name, describe(&event.name, payload));
            }
            Display::Terminal(bar) => match event.name.as_str() {
                "progress" => show_progress(bar, payload),
                "status" | "log" => bar.println(format!("{} {}", event.name, describe(&event.name, payload))),
                _ => {}
            },
        }
    }

    /// Shows a line about the client itself (reconnects, cancellation).
    pub fn note(&self, text: &str) {
        match self {
            Display::Terminal(bar) => bar.println(text),
            Display::Lines => eprintln!("{text}"),
        }
    }

    /// Removes the bar before the report is printed.
    pub fn finish(&self) {
        if let Display::Terminal(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn show_progress(bar: &ProgressBar, progress: &Value) {
    let completed = progress["completed"].as_u64();
    let total = progress["total"].as_u64();
    if let (Some(completed), Some(total)) = (completed, total) {
        if bar.length() != Some(total) {
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_length(total);
        }
        bar.set_position(completed);
        let figures: Vec<String> = HEADLINE_FIGURES
            .iter()
            .filter_map(|name| progress.get(*name).filter(|value| !value.is_null()).map(|value| format!("{name}={}", format_scalar(value))))
            .collect();
        bar.set_message(figures.join(" "));
    } else {
        bar.set_message(summary(progress));
    }
}

/// A status event as its status (and error); any other event as its [`summary`].
fn describe(name: &str, payload: &Value) -> String {
    match (name, payload["status"].as_str()) {
        ("status", Some(status)) => match payload["error"].as_object() {
            Some(error) => format!("{status} ({})", compact(error)),
            None => status.to_string(),
        },
        _ => summary(payload),
    }
}

/// The scalar fields of an event's data as `key=value`, nested objects as `{…}`.
pub fn summary(data: &Value) -> String {
    match data {
        Value::Object(fields) => compact(fields),
        other => format_scalar(other),
    }
}

fn compact(fields: &Map<String, Value>) -> String {
    fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| match value {
            Value::Object(inner) => format!("{key}={{{}}}", compact(inner)),
            Value::Array(items) => format!("{key}=[{} items]", items.len()),
            scalar => format!("{key}={}", format_scalar(scalar)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::summary;
    use serde_json::json;

    #[test]
    fn summaries_are_one_line() {
        let progress =
            json!({"completed": 1312, "total": 2000, "current_rps": 14895.71234, "last_second": null, "status_counts": {"200": 5}});
        assert_eq!(summary(&progress), "completed=1312 current_rps=14895.712 status_counts={200=5} total=2000");
        assert_eq!(summary(&json!({"status": "running"})), "status=running");
    }
}
