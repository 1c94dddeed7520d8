//! How store failures become API errors, at the API's edge: a store that cannot be reached is
//! `503` with `Retry-After` (the pool reconnects by itself), anything else an opaque `500`.

use crate::error::ApiError;
use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unreachable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "the job store is unreachable");
                ApiError::Unavailable("the job store is unreachable; retry shortly".into())
            }
            StoreError::Failed(cause) => ApiError::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn an_unreachable_store_is_503_with_retry_after_and_other_failures_are_500() {
        for lost in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())] {
            let error = ApiError::from(StoreError::from(anyhow::Error::new(lost).context("cannot read the job")));
            assert!(matches!(error, ApiError::Unavailable(_)), "{error:?}");
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let bug = ApiError::from(StoreError::from(sqlx::Error::RowNotFound));
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = bug.into_response();
        assert_eq!(body.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
