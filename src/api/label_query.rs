//! Query strings with repeatable `label=key:value` filters: the form decoder takes no repeated
//! keys, so the labels are taken out first and the rest is decoded as usual (strictly, with the
//! same problem+json errors as [`AppQuery`](crate::error::AppQuery)).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::store::labels::LabelSelector;

/// The query parameter that filters by a label.
const LABEL_PARAM: &str = "label";

/// A query decoded into `T`, and its `label=key:value` filters.
pub struct LabelledQuery<T>(pub T, pub Vec<LabelSelector>);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for LabelledQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let (labels, rest): (Vec<_>, Vec<_>) = form_urlencoded::parse(query.as_bytes()).partition(|(key, _)| key == LABEL_PARAM);
        let labels: Vec<String> = labels.into_iter().map(|(_, value)| value.into_owned()).collect();
        let selectors = LabelSelector::parse_all(&labels, LABEL_PARAM).map_err(ApiError::Validation)?;
        let rest = form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(rest.as_bytes()));
        let decoded = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { "query".to_string() } else { field };
            ApiError::bad_request(field, error.into_inner().to_string())
        })?;
        Ok(LabelledQuery(decoded, selectors))
    }
}
