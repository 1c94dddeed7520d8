//! The translation of S3 SDK errors into job errors a user can act on. The endpoint and its
//! client are built by [`crate::services::s3`].

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::experiments::ExperimentError;

/// A job error for a failed `action` (e.g. `upload of k`): connection failures, time-outs,
/// rejected credentials and a missing bucket each get their own kind and a message saying what
/// to check.
pub fn classify<E>(action: &str, endpoint: &str, error: SdkError<E>) -> ExperimentError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // HEAD answers (only the bucket check sends one) carry no error body: the status is all there is.
    let status = error.raw_response().map(|response| response.status().as_u16());
    match &error {
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            ExperimentError::Timeout(format!("{action}: {endpoint} did not answer in time"))
        }
        SdkError::DispatchFailure(_) => {
            ExperimentError::Connect(format!("{action}: cannot reach {endpoint}: {}", DisplayErrorContext(&error)))
        }
        SdkError::TimeoutError(_) => ExperimentError::Timeout(format!("{action}: {endpoint} did not answer in time")),
        _ => match error.code().or(match status {
            Some(403) => Some("AccessDenied"),
            Some(404) => Some("NoSuchBucket"),
            _ => None,
        }) {
            Some(code @ ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "InvalidSecurity" | "ExpiredToken")) => {
                ExperimentError::Refused(format!(
                    "{action}: {endpoint} rejected the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ))
            }
            Some(code @ ("NoSuchBucket" | "NotFound")) => ExperimentError::Unavailable(format!(
                "{action}: the bucket does not exist ({code}); launch with create_bucket: true to create it"
            )),
            Some(code) => ExperimentError::Protocol(format!("{action}: {code}: {}", error.message().unwrap_or("no message"))),
            None => ExperimentError::Protocol(format!("{action}: {}", DisplayErrorContext(&error))),
        },
    }
}
