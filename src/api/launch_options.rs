//! What a launch body may carry beside the experiment's parameters: `labels` for the job, and
//! a `baseline` for a regression gate. They are taken out of the body before the parameters'
//! strict validation, so these names are reserved in every kind's parameters.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::compare::CompareOptions;
use crate::compare::gate::Tolerance;
use crate::store::labels::{Labels, credential_key, parse_labels};
use crate::validation::FieldErrors;

/// The body field holding the job's labels.
pub const LABELS_FIELD: &str = "labels";
/// The body field holding the regression gate.
pub const BASELINE_FIELD: &str = "baseline";
/// The body field naming the job-finished webhook.
pub const WEBHOOK_FIELD: &str = "webhook";
/// The longest webhook URL.
const MAX_WEBHOOK_URL_CHARS: usize = 2048;

/// A launch's job-finished webhook, as given: once the job ends (whatever its status), its final
/// representation is POSTed to `url`, retried with backoff until a 2xx answer.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// An `http` or `https` URL on a host the outbound allowlist allows. It is stored and shown
    /// with the job: it must not carry a credential (no user or password, no credential-looking
    /// query parameter); authenticate deliveries by their signature instead.
    pub url: String,
}

/// A launch's regression gate, as given: after the job succeeds its report is compared with the
/// baseline's and the job fails with `regression` when a gated metric is worse beyond its
/// tolerance.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineRequest {
    /// A job id, or a label selector `key:value`: the latest succeeded job of the same kind,
    /// same parameters, with that label.
    pub job: String,
    /// Tolerances by metric (`{"p99_ms": "10%", "error_rate": "0.01"}`); absent: the kind's defaults.
    #[serde(default)]
    pub max_regression: BTreeMap<String, String>,
    /// Launch without a gate when no baseline matches (otherwise that is a 422).
    #[serde(default)]
    pub optional: bool,
    /// Compare even when the named baseline's parameters differ.
    #[serde(default)]
    pub force: bool,
    /// The tests' confidence (default 0.99).
    pub confidence: Option<f64>,
    /// The smallest relative change given a verdict (default 0.05).
    pub min_change: Option<f64>,
}

/// A checked [`BaselineRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct GateRequest {
    /// The baseline as named.
    pub job: String,
    /// Tolerances by metric name, parsed.
    pub max_regression: BTreeMap<String, Tolerance>,
    /// Launch without a gate when no baseline matches.
    pub optional: bool,
    /// Compare even when parameters differ.
    pub force: bool,
    /// The comparison's settings.
    pub options: CompareOptions,
}

/// The job options of a launch body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchOptions {
    /// The job's labels.
    pub labels: Labels,
    /// The regression gate asked for.
    pub gate: Option<GateRequest>,
    /// The job-finished webhook's URL, checked for shape (the outbound policy is checked by the caller).
    pub webhook: Option<url::Url>,
}

/// Takes the job options out of `body` (leaving the parameters), recording every problem.
pub fn take_launch_options(body: &mut Value, errors: &mut FieldErrors) -> LaunchOptions {
    let mut options = LaunchOptions::default();
    let Value::Object(fields) = body else {
        return options;
    };
    if let Some(raw) = fields.remove(LABELS_FIELD) {
        match parse_labels(&raw, LABELS_FIELD) {
            Ok(labels) => options.labels = labels,
            Err(mut problems) => errors.0.append(&mut problems.0),
        }
    }
    if let Some(raw) = fields.remove(BASELINE_FIELD) {
        options.gate = parse_gate(raw, errors);
    }
    if let Some(raw) = fields.remove(WEBHOOK_FIELD) {
        options.webhook = parse_webhook(raw, errors);
    }
    options
}

fn parse_webhook(raw: Value, errors: &mut FieldErrors) -> Option<url::Url> {
    let field = format!("{WEBHOOK_FIELD}.url");
    let request: WebhookRequest = match serde_json::from_value(raw) {
        Ok(request) => request,
        Err(error) => {
            errors.add(WEBHOOK_FIELD, error.to_string());
            return None;
        }
    };
    if request.url.chars().count() > MAX_WEBHOOK_URL_CHARS {
        errors.add(field, format!("longer than {MAX_WEBHOOK_URL_CHARS} characters"));
        return None;
    }
    let url = match url::Url::parse(&request.url) {
        Ok(url) => url,
        Err(error) => {
            errors.add(field, format!("not a URL: {error}"));
            return None;
        }
    };
    let problem = if !matches!(url.scheme(), "http" | "https") {
        Some("must be an http or https URL".to_string())
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry a user or password: the URL is stored and shown with the job".to_string())
    } else if let Some((key, _)) = url.query_pairs().find(|(key, _)| credential_key(key)) {
        Some(format!("query parameter {key:?} looks like a credential: the URL is stored and shown with the job"))
    } else {
        None
    };
    match problem {
        Some(reason) => {
            errors.add(field, reason);
            None
        }
        None => Some(url),
    }
}

fn parse_gate(raw: Value, errors: &mut FieldErrors) -> Option<GateRequest> {
    let request: BaselineRequest = match serde_json::from_value(raw) {
        Ok(request) => request,
        Err(error) => {
            errors.add(BASELINE_FIELD, error.to_string());
            return None;
        }
    };
    let mut max_regression = BTreeMap::new();
    for (metric, text) in &request.max_regression {
        match Tolerance::parse(text) {
            Ok(tolerance) => {
                max_regression.insert(metric.clone(), tolerance);
            }
            Err(reason) => errors.add(format!("{BASELINE_FIELD}.max_regression.{metric}"), reason),
        }
    }
    let mut options = CompareOptions::default();
    if let Some(confidence) = request.confidence {
        errors.check((0.5..=0.9999).contains(&confidence), "baseline.confidence", "must be between 0.5 and 0.9999");
        options.confidence = confidence;
    }
    if let Some(min_change) = request.min_change {
        errors.check((0.0..=10.0).contains(&min_change), "baseline.min_change", "must be between 0 and 10");
        options.min_change = min_change;
    }
    Some(GateRequest { job: request.job, max_regression, optional: request.optional, force: request.force, options })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook(value: Value) -> (Option<url::Url>, Vec<String>) {
        let mut body = json!({ "n": 1, WEBHOOK_FIELD: value });
        let mut errors = FieldErrors::default();
        let options = take_launch_options(&mut body, &mut errors);
        assert_eq!(body, json!({ "n": 1 }), "the option is taken out of the parameters");
        (options.webhook, errors.0.iter().map(|error| error.field.clone()).collect())
    }

    #[test]
    fn webhooks_are_http_urls_without_credentials() {
        let (url, errors) = webhook(json!({ "url": "http://127.0.0.1:9000/hooks/ci?run=7" }));
        assert_eq!(url.map(String::from).as_deref(), Some("http://127.0.0.1:9000/hooks/ci?run=7"));
        assert!(errors.is_empty());
        for refused in ["ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "http://127.0.0.1/x?token=abc", "not a url"] {
            let (url, errors) = webhook(json!({ "url": refused }));
            assert_eq!((url, errors), (None, vec!["webhook.url".to_string()]), "{refused}");
        }
        let (url, errors) = webhook(json!({ "url": "http://127.0.0.1/", "secret": "x" }));
        assert_eq!((url, errors), (None, vec!["webhook".to_string()]));
    }
}
