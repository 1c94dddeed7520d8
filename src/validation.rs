//! Field-level validation of request parameters, collected so a caller sees every problem at once.

use std::fmt::Display;

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path, e.g. `count` or `tasks[2].name`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The problems found in a set of parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records that `field` is invalid for `reason`.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), reason: reason.into() });
    }

    /// Records `reason` against `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, reason: impl Into<String>) {
        if !ok {
            self.add(field, reason);
        }
    }

    /// Records an error unless `min <= value <= max`, naming the bounds.
    pub fn range<T: PartialOrd + Display>(&mut self, field: &str, value: T, min: T, max: T) {
        if !(value >= min && value <= max) {
            self.add(field, format!("must be between {min} and {max}, got {value}"));
        }
    }

    /// A single error.
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, reason);
        errors
    }

    /// `Ok` when nothing was recorded.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Header names that carry credentials. Parameters and labels are stored with the job and shown
/// by `GET /jobs/{id}`, so a secret must never be one.
pub const CREDENTIAL_NAMES: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// Whether `name` (lowercase) is a credential header name.
pub fn is_credential_name(name: &str) -> bool {
    CREDENTIAL_NAMES.contains(&name)
}

/// Parameters that can check themselves beyond what their types guarantee.
pub trait Validate {
    /// Records every problem found in `errors`.
    fn validate(&self, errors: &mut FieldErrors);
}
