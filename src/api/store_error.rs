//! How store failures become API errors, at the API's edge: a store that cannot be reached is
//! `503` with `Retry-After`, anything else an opaque `500`.

use crate::error::ApiError;

impl From<anyhow::Error> for ApiError {
    /// A store that cannot be reached (connection lost, pool exhausted or closed, the database
    /// shutting down) is `503` with `Retry-After`: the pool reconnects by itself. Anything else
    /// is an internal error.
    fn from(error: anyhow::Error) -> Self {
        if is_store_unreachable(&error) {
            tracing::warn!(error = format!("{error:#}"), "the job store is unreachable");
            ApiError::Unavailable("the job store is unreachable; retry shortly".into())
        } else {
            ApiError::Internal(error)
        }
    }
}

/// Whether `error` says the database could not be reached, rather than that a query was wrong.
fn is_store_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| match cause.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)) => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away or not up yet.
        Some(sqlx::Error::Database(database)) => matches!(database.code().as_deref(), Some("57P01" | "57P02" | "57P03")),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn an_unreachable_store_is_503_with_retry_after_and_other_failures_are_500() {
        for lost in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())] {
            let error = ApiError::from(anyhow::Error::new(lost).context("cannot read the job"));
            assert!(matches!(error, ApiError::Unavailable(_)), "{error:?}");
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let bug = ApiError::from(anyhow::Error::new(sqlx::Error::RowNotFound));
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
