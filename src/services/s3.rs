//! The S3 endpoint every `s3` job talks to, built once at start-up: the configured one
//! (`AWS_ENDPOINT_URL_S3` and friends) or the in-process endpoint, with one shared
//! `aws_sdk_s3::Client`.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use secrecy::ExposeSecret;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::outbound::OutboundPolicy;
use crate::targets::s3::S3Endpoint;

/// How long connecting to the endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for multipart aborts still in flight.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// The S3 target of the `s3` experiment.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// The client, shared by every job (it pools connections).
    pub client: aws_sdk_s3::Client,
    /// The endpoint URL, for reports and messages (it carries no secret).
    pub endpoint: String,
    /// Why the experiment cannot run against this target (host not allowed, credentials
    /// missing); `None` when it can.
    pub unavailable: Option<String>,
    /// Aborts of multipart uploads whose job was dropped, so shutdown can wait for them.
    pub cleanups: TaskTracker,
    /// The in-process endpoint, when no endpoint is configured; kept alive with the client.
    pub embedded: Option<Arc<S3Endpoint>>,
}

impl S3Target {
    /// The configured endpoint, or an in-process one serving `DATA_DIR/s3` when none is.
    pub async fn build(config: &ServeConfig, outbound: &OutboundPolicy) -> anyhow::Result<S3Target> {
        let Some(endpoint) = &config.s3_endpoint else {
            let embedded = S3Endpoint::start(&config.data_dir.join("s3")).await?;
            let credentials = Credentials::new(
                embedded.access_key_id.clone(),
                embedded.secret_access_key.expose_secret(),
                None,
                None,
                "asynclab-in-process",
            );
            let client = client(&embedded.url(), &config.s3_region, credentials, true);
            return Ok(S3Target {
                client,
                endpoint: embedded.url(),
                unavailable: None,
                cleanups: TaskTracker::new(),
                embedded: Some(Arc::new(embedded)),
            });
        };
        let mut unavailable = outbound.check_url(endpoint).err().map(|reason| format!("AWS_ENDPOINT_URL_S3: {reason}"));
        let credentials = match (&config.s3_access_key_id, &config.s3_secret_access_key) {
            (Some(key_id), Some(secret)) => Credentials::new(key_id, secret.expose_secret(), None, None, "asynclab-config"),
            _ => {
                unavailable.get_or_insert_with(|| {
                    "needs credentials for AWS_ENDPOINT_URL_S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()
                });
                Credentials::new("", "", None, None, "asynclab-missing")
            }
        };
        let url = endpoint.as_str().trim_end_matches('/').to_string();
        Ok(S3Target {
            client: client(&url, &config.s3_region, credentials, config.s3_force_path_style),
            endpoint: url,
            unavailable,
            cleanups: TaskTracker::new(),
            embedded: None,
        })
    }

    /// Waits (briefly) for pending multipart aborts, then stops the in-process endpoint.
    pub async fn close(&self) {
        self.cleanups.close();
        if tokio::time::timeout(CLEANUP_WAIT, self.cleanups.wait()).await.is_err() {
            tracing::warn!("multipart aborts still pending at shutdown");
        }
        if let Some(embedded) = &self.embedded {
            embedded.stop();
        }
    }
}

/// A client for `endpoint`. Retries are off so the report counts what the server did, and
/// checksums are MD5/ETag based (see the `s3` experiment's module doc), computed by the experiment.
fn client(endpoint: &str, region: &str, credentials: Credentials, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .force_path_style(force_path_style)
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).build())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
