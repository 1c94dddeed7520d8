//! What a launch body may carry beside the experiment's parameters: `labels` for the job (and,
//! for a CI gate, a `baseline`). They are taken out of the body before the parameters'
//! strict validation, so these names are reserved in every kind's parameters.

use serde_json::Value;

use crate::store::labels::{Labels, parse_labels};
use crate::validation::FieldErrors;

/// The body field holding the job's labels.
pub const LABELS_FIELD: &str = "labels";

/// The job options of a launch body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchOptions {
    /// The job's labels.
    pub labels: Labels,
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
    options
}
