//! What a fan-out request carries besides its URL: the weighted `targets` mix, extra headers and
//! a body, and their validation.

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{HttpMethod, check_url};
use crate::validation::{FieldErrors, is_credential_name};

/// The most entries `targets` may hold.
pub const MAX_TARGETS: usize = 1000;
/// The highest weight of one target.
pub const MAX_WEIGHT: u32 = 1000;
/// The most extra headers one request may carry.
pub const MAX_HEADERS: usize = 32;
/// The longest header value.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// The largest request body.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// The longest endpoint name.
pub const MAX_NAME_CHARS: usize = 100;

/// Headers the connection manages itself (framing, hop-by-hop), so a caller cannot set them.
const MANAGED_HEADERS: [&str; 8] =
    ["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "proxy-connection"];

/// One entry of a weighted mix of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The endpoint's name in the report's per-endpoint breakdown and in `thresholds.per_target`
    /// (unique, 1 to 100 characters); defaults to the method and URL, e.g.
    /// `GET http://127.0.0.1:8080/targets/hello/{i}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "checkout")]
    pub name: Option<String>,
    /// The URL; `{i}` in its path or query becomes the request's index.
    #[schema(example = "http://127.0.0.1:8080/targets/hello/{i}")]
    pub url: String,
    /// The target's share of the requests (1 to 1000): weights 3 and 1 send 75% and 25%,
    /// interleaved evenly.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The method; defaults to the fan-out's `method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub method: Option<HttpMethod>,
    /// Headers added to the fan-out's `headers` (a name given in both takes this value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// The body; defaults to the fan-out's `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn default_weight() -> u32 {
    1
}

/// Checks a `targets` list: its length, each URL, weight, method, headers and body.
pub fn validate_targets(targets: &[TargetSpec], errors: &mut FieldErrors) {
    errors.check(
        (1..=MAX_TARGETS).contains(&targets.len()),
        "targets",
        format!("must hold between 1 and {MAX_TARGETS} targets, got {}", targets.len()),
    );
    for (index, target) in targets.iter().enumerate() {
        let field = |name: &str| format!("targets[{index}].{name}");
        if let Some(name) = &target.name {
            let chars = name.chars().count();
            errors.check(
                (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control),
                field("name"),
                format!("must be 1 to {MAX_NAME_CHARS} characters, none of them control characters"),
            );
            let first = targets.iter().position(|other| other.name.as_ref() == Some(name));
            errors.check(
                first == Some(index),
                field("name"),
                format!("targets[{}] has the same name; names must be unique", first.unwrap_or_default()),
            );
        }
        validate_template(&target.url, &field("url"), errors);
        errors.range(&field("weight"), target.weight, 1, MAX_WEIGHT);
        if let Some(headers) = &target.headers {
            validate_headers(headers, &field("headers"), errors);
        }
        if let Some(body) = &target.body {
            validate_body(body, &field("body"), errors);
        }
    }
}

/// Checks a URL template: a valid `http`/`https` URL whose host and port `{i}` does not touch.
pub fn validate_template(template: &str, field: &str, errors: &mut FieldErrors) {
    let (first, second) = match (check_url(&template.replace("{i}", "0")), check_url(&template.replace("{i}", "1"))) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(reason), _) | (_, Err(reason)) => return errors.add(field, reason),
    };
    errors.check(
        first.host_str() == second.host_str() && first.port_or_known_default() == second.port_or_known_default(),
        field,
        "{i} may only appear in the path or query, not in the host or port",
    );
}

/// Checks extra headers: valid names and values, none the connection manages, no credentials.
pub fn validate_headers(headers: &BTreeMap<String, String>, field: &str, errors: &mut FieldErrors) {
    errors.check(headers.len() <= MAX_HEADERS, field, format!("must hold at most {MAX_HEADERS} headers, got {}", headers.len()));
    for (name, value) in headers {
        let at = format!("{field}.{name}");
        let Ok(parsed) = HeaderName::from_bytes(name.as_bytes()) else {
            errors.add(at, "not a valid header name");
            continue;
        };
        if MANAGED_HEADERS.contains(&parsed.as_str()) {
            errors.add(at, "set by the connection itself; it cannot be given");
        } else if is_credential_name(parsed.as_str()) {
            errors.add(at, "credentials are not accepted: parameters are stored with the job and shown to anyone who reads it");
        } else if value.len() > MAX_HEADER_VALUE_BYTES {
            errors.add(at, format!("must be at most {MAX_HEADER_VALUE_BYTES} bytes, got {}", value.len()));
        } else if HeaderValue::from_str(value).is_err() {
            errors.add(at, "not a valid header value (visible ASCII, spaces and tabs only)");
        }
    }
}

/// Checks a request body's size.
pub fn validate_body(body: &str, field: &str, errors: &mut FieldErrors) {
    errors.check(
        body.len() <= MAX_REQUEST_BODY_BYTES,
        field,
        format!("must be at most {MAX_REQUEST_BODY_BYTES} bytes, got {}", body.len()),
    );
}

/// The order in which weighted targets take turns: each target appears `weight / g` times in
/// one cycle (`g` the weights' greatest common divisor), spread evenly by smooth weighted
/// round-robin, so any run of requests follows the weights closely, not in blocks.
pub fn weighted_cycle(weights: &[u32]) -> Vec<u16> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights.iter().map(|weight| i64::from(weight / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (credit, weight) in current.iter_mut().zip(&weights) {
                *credit += weight;
            }
            let (chosen, _) =
                current.iter().enumerate().max_by_key(|&(index, credit)| (*credit, std::cmp::Reverse(index))).expect("at least one target");
            current[chosen] -= total;
            u16::try_from(chosen).expect("targets are bounded by MAX_TARGETS")
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(check: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut errors = FieldErrors::default();
        check(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn weights_interleave_in_proportion() {
        assert_eq!(weighted_cycle(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(weighted_cycle(&[2, 2]), [0, 1]);
        let cycle = weighted_cycle(&[5, 3, 2]);
        assert_eq!(cycle.len(), 10);
        for (target, weight) in [(0u16, 5), (1, 3), (2, 2)] {
            assert_eq!(cycle.iter().filter(|&&chosen| chosen == target).count(), weight);
        }
        // No target takes two turns in a row while another is owed one.
        assert!(cycle.windows(2).filter(|pair| pair[0] == pair[1]).count() <= 1, "{cycle:?}");
    }

    #[test]
    fn managed_and_credential_headers_are_refused() {
        let headers: BTreeMap<String, String> =
            [("x-trace", "1"), ("Content-Length", "5"), ("authorization", "Bearer x"), ("bad name", "v"), ("x-newline", "a\nb")]
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
        assert_eq!(
            fields(|errors| validate_headers(&headers, "headers", errors)),
            ["headers.Content-Length", "headers.authorization", "headers.bad name", "headers.x-newline"]
        );
    }

    #[test]
    fn targets_are_checked_one_by_one() {
        let targets = vec![
            TargetSpec { name: Some("a".into()), url: "http://127.0.0.1/{i}".into(), weight: 1, method: None, headers: None, body: None },
            TargetSpec {
                name: Some("a".into()),
                url: "ftp://127.0.0.1/".into(),
                weight: 0,
                method: None,
                headers: None,
                body: Some("x".repeat(MAX_REQUEST_BODY_BYTES + 1)),
            },
        ];
        assert_eq!(
            fields(|errors| validate_targets(&targets, errors)),
            ["targets[1].name", "targets[1].url", "targets[1].weight", "targets[1].body"]
        );
        assert_eq!(fields(|errors| validate_targets(&[], errors)), ["targets"]);
    }
}
