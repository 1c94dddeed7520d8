//! Job labels: a small map of string keys to string values a launch gives a job (`branch=main`,
//! `commit=3f2a9c1`, `keep=true`), their validation, and the `key:value` selectors that filter
//! jobs by them. Labels are stored with the job, so credential-looking keys are refused.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::validation::{FieldErrors, is_credential_name};

/// A job's labels, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// The most labels one job may carry.
pub const MAX_LABELS: usize = 16;
/// The longest label key.
pub const MAX_KEY_CHARS: usize = 63;
/// The longest label value.
pub const MAX_VALUE_CHARS: usize = 128;
/// The label that keeps a job from retention: `keep=true`.
pub const KEEP_LABEL: (&str, &str) = ("keep", "true");
/// The most `label=` filters one query may combine.
pub const MAX_SELECTORS: usize = 8;

/// Words that make a key look like it names a secret (beside the credential header names).
const SECRET_WORDS: [&str; 7] = ["password", "passwd", "secret", "token", "apikey", "api_key", "api-key"];

/// Whether `key` is a valid label key: 1 to 63 ASCII letters, digits, `.`, `_`, `-` or `/`,
/// starting with a letter or a digit.
fn valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY_CHARS
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// Whether `value` is a valid label value: 1 to 128 ASCII letters, digits or `. _ - / : + @ =`.
fn valid_value(value: &str) -> bool {
    (1..=MAX_VALUE_CHARS).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '+' | '@' | '='))
}

/// Whether a key (a label key, a URL's query parameter) looks like it names a credential,
/// which must never be stored.
pub fn credential_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    is_credential_name(&lower) || SECRET_WORDS.iter().any(|word| lower.contains(word))
}

/// Checks one key and value, recording problems against `field.key`.
fn check_label(key: &str, value: &str, field: &str, errors: &mut FieldErrors) {
    let at = format!("{field}.{key}");
    if !valid_key(key) {
        errors
            .add(at, format!("a key is 1 to {MAX_KEY_CHARS} ASCII letters, digits, '.', '_', '-' or '/', starting with a letter or digit"));
    } else if credential_key(key) {
        errors.add(at, "looks like a credential: labels are stored with the job and shown to anyone who reads it");
    } else if !valid_value(value) {
        errors.add(at, format!("a value is 1 to {MAX_VALUE_CHARS} ASCII letters, digits or '. _ - / : + @ ='"));
    }
}

/// Reads and checks the `labels` object of a launch (`field` names it in errors).
pub fn parse_labels(raw: &Value, field: &str) -> Result<Labels, FieldErrors> {
    let Value::Object(map) = raw else {
        return Err(FieldErrors::single(field, "must be an object of string keys to string values"));
    };
    let mut errors = FieldErrors::default();
    errors.check(map.len() <= MAX_LABELS, field, format!("at most {MAX_LABELS} labels, got {}", map.len()));
    let mut labels = Labels::new();
    for (key, value) in map {
        match value.as_str() {
            Some(value) => {
                check_label(key, value, field, &mut errors);
                labels.insert(key.clone(), value.to_string());
            }
            None => errors.add(format!("{field}.{key}"), "must be a string"),
        }
    }
    errors.into_result().map(|()| labels)
}

/// One `key:value` filter: only jobs carrying that label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    /// The label's key.
    pub key: String,
    /// The value it must have.
    pub value: String,
}

impl LabelSelector {
    /// Parses `key:value` (the value may itself hold `:`), checked like a label.
    pub fn parse(text: &str, field: &str) -> Result<LabelSelector, FieldErrors> {
        let Some((key, value)) = text.split_once(':') else {
            return Err(FieldErrors::single(field, format!("{text:?} is not key:value, e.g. branch:main")));
        };
        let mut errors = FieldErrors::default();
        if !valid_key(key) || !valid_value(value) {
            errors.add(field, format!("{text:?} is not a valid key:value label"));
        }
        errors.into_result().map(|()| LabelSelector { key: key.into(), value: value.into() })
    }

    /// Parses every selector, at most [`MAX_SELECTORS`] of them.
    pub fn parse_all(texts: &[String], field: &str) -> Result<Vec<LabelSelector>, FieldErrors> {
        if texts.len() > MAX_SELECTORS {
            return Err(FieldErrors::single(field, format!("at most {MAX_SELECTORS} label filters, got {}", texts.len())));
        }
        let mut errors = FieldErrors::default();
        let mut selectors = Vec::new();
        for text in texts {
            match LabelSelector::parse(text, field) {
                Ok(selector) => selectors.push(selector),
                Err(mut problems) => errors.0.append(&mut problems.0),
            }
        }
        errors.into_result().map(|()| selectors)
    }

    /// Whether `labels` carry this label.
    pub fn matches(&self, labels: &Labels) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: FieldErrors) -> Vec<String> {
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn good_labels_parse() {
        let labels = parse_labels(&json!({"branch": "feature/x-1", "commit": "3f2a9c1", "keep": "true"}), "labels").unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["branch"], "feature/x-1");
    }

    #[test]
    fn bad_keys_values_and_credentials_are_named() {
        let errors =
            parse_labels(&json!({"": "x", "Authorization": "Bearer", "db_password": "x", "ok": "", "n": 3, "spaced": "a b"}), "labels")
                .unwrap_err();
        assert_eq!(fields(errors), ["labels.", "labels.Authorization", "labels.db_password", "labels.n", "labels.ok", "labels.spaced"]);
    }

    #[test]
    fn too_many_labels_are_refused() {
        let many: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(fields(parse_labels(&Value::Object(many), "labels").unwrap_err()), ["labels"]);
        assert_eq!(fields(parse_labels(&json!(["a"]), "labels").unwrap_err()), ["labels"]);
    }

    #[test]
    fn selectors_split_at_the_first_colon() {
        let selector = LabelSelector::parse("image:repo:tag", "label").unwrap();
        assert_eq!((selector.key.as_str(), selector.value.as_str()), ("image", "repo:tag"));
        assert!(LabelSelector::parse("nocolon", "label").is_err());
        assert!(LabelSelector::parse("k:", "label").is_err());
        assert!(LabelSelector::parse_all(&vec!["a:b".to_string(); 9], "label").is_err());
    }
}
