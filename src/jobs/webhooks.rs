//! Job-finished webhooks: once a job that named a webhook ends (whatever the status), its final
//! representation — the body `GET /jobs/{id}` answers — is POSTed to the URL through the shared
//! HTTP client. Deliveries live in the store ([`crate::store::webhook`]): every replica runs a
//! sender that claims due ones, so a delivery survives a restart and is retried with backoff,
//! at least once. A 2xx answer delivers it; 408, 429, 5xx and transport errors are retried;
//! any other answer is final.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::meters::Meters;
use crate::services::http_client::SharedHttpClient;
use crate::store::JobStore;
use crate::store::records::{DeliveryAttempt, DeliveryState};
use crate::store::webhook::{ClaimedDelivery, DeliveryOutcome};

/// How often the sender looks for due deliveries.
const POLL: Duration = Duration::from_millis(500);
/// How long one attempt may take, answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim holds: past it, another replica may take the delivery (its sender died).
const CLAIM_HOLD: Duration = Duration::from_secs(30);
/// Deliveries claimed at once.
const CLAIM_BATCH: u32 = 16;
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The wait before the second attempt; it doubles after each failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The header naming the event (`job.finished`).
pub const EVENT_HEADER: &str = "x-asynclab-event";
/// The header carrying the job id, the same on every attempt: receivers drop repeats with it.
pub const DELIVERY_HEADER: &str = "x-asynclab-delivery";
/// The header carrying `sha256=<hex HMAC-SHA256 of the body>` under ASYNCLAB_WEBHOOK_SECRET.
pub const SIGNATURE_HEADER: &str = "x-asynclab-signature";

/// Sends the due deliveries of the jobs in `store`.
pub struct WebhookSender {
    store: Arc<dyn JobStore>,
    client: SharedHttpClient,
    signing_key: Option<SecretString>,
    meters: Meters,
}

impl WebhookSender {
    /// A sender posting through `client`, signing bodies with `signing_key` when there is one.
    pub fn new(store: Arc<dyn JobStore>, client: SharedHttpClient, signing_key: Option<SecretString>, meters: Meters) -> Self {
        WebhookSender { store, client, signing_key, meters }
    }

    /// Claims and sends due deliveries until `stop`. An attempt cut short by `stop` is claimed
    /// again once its claim lapses.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let claimed = match self.store.claim_deliveries(Utc::now(), Utc::now() + CLAIM_HOLD, CLAIM_BATCH).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "cannot claim webhook deliveries");
                    Vec::new()
                }
            };
            let full_batch = claimed.len() == CLAIM_BATCH as usize;
            let attempts = futures_util::future::join_all(claimed.into_iter().map(|delivery| self.attempt(delivery)));
            tokio::select! {
                _ = attempts => {}
                () = stop.cancelled() => return,
            }
            if !full_batch {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }

    /// Makes one attempt and records its outcome.
    async fn attempt(&self, delivery: ClaimedDelivery) {
        let attempt = self.post(&delivery).await;
        let outcome = decide(&attempt, delivery.attempt);
        let label = match outcome.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Pending => "retry",
            DeliveryState::Failed => "failed",
        };
        self.meters.webhook_attempt(label);
        match outcome.state {
            DeliveryState::Failed => tracing::warn!(job.id = %delivery.job_id, attempt = delivery.attempt, ?attempt, "webhook given up"),
            _ => tracing::info!(job.id = %delivery.job_id, attempt = delivery.attempt, outcome = label, "webhook attempt"),
        }
        if let Err(error) = self.store.record_delivery(delivery.job_id, &outcome).await {
            tracing::warn!(job.id = %delivery.job_id, error = format!("{error:#}"), "cannot record a webhook attempt");
        }
    }

    /// POSTs the job's current representation; the answer's status or why there was none.
    async fn post(&self, delivery: &ClaimedDelivery) -> DeliveryAttempt {
        let failed = |error: String| DeliveryAttempt { at: Utc::now(), status: None, error: Some(error) };
        let job = match self.store.get_job(delivery.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => return failed("the job no longer exists".into()),
            Err(error) => return failed(format!("cannot read the job: {error:#}")),
        };
        let body = match serde_json::to_vec(&job) {
            Ok(body) => body,
            Err(error) => return failed(format!("cannot encode the job: {error}")),
        };
        let url = match Url::parse(&delivery.url) {
            Ok(url) => url,
            Err(error) => return failed(format!("invalid URL: {error}")),
        };
        let request = match self.client.request(Method::POST, &url) {
            Ok(request) => request,
            Err(refused) => return failed(refused),
        };
        let mut request = request
            .timeout(ATTEMPT_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, "job.finished")
            .header(DELIVERY_HEADER, delivery.job_id.to_string());
        if let Some(key) = &self.signing_key {
            request = request.header(SIGNATURE_HEADER, signature(key.expose_secret().as_bytes(), &body));
        }
        match request.body(body).send().await {
            Ok(response) => DeliveryAttempt { at: Utc::now(), status: Some(response.status().as_u16()), error: None },
            Err(error) if error.is_timeout() => failed("timeout".into()),
            Err(error) if error.is_connect() => failed(format!("connect: {}", root_cause(&error))),
            Err(error) => failed(root_cause(&error)),
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// What attempt number `attempt` decided: delivered, retried later, or given up.
fn decide(outcome: &DeliveryAttempt, attempt: u32) -> DeliveryOutcome {
    let retryable = match outcome.status {
        Some(status) if (200..300).contains(&status) => {
            return DeliveryOutcome { state: DeliveryState::Delivered, retry_at: None, attempt: outcome.clone() };
        }
        Some(status) => status == 408 || status == 429 || status >= 500,
        None => true,
    };
    if retryable && attempt < MAX_ATTEMPTS {
        let retry_at = outcome.at + backoff(attempt);
        DeliveryOutcome { state: DeliveryState::Pending, retry_at: Some(retry_at), attempt: outcome.clone() }
    } else {
        DeliveryOutcome { state: DeliveryState::Failed, retry_at: None, attempt: outcome.clone() }
    }
}

/// The wait after failed attempt number `attempt`: 1 s, 2 s, 4 s… up to a minute.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// The innermost error's message (reqwest's own says only "error sending request").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> DeliveryAttempt {
        DeliveryAttempt { at: Utc::now(), status: Some(status), error: None }
    }

    #[test]
    fn answers_decide_delivered_retried_or_given_up() {
        assert_eq!(decide(&answered(204), 1).state, DeliveryState::Delivered);
        for retried in [408, 429, 500, 503] {
            assert_eq!(decide(&answered(retried), 1).state, DeliveryState::Pending, "{retried}");
        }
        for refused in [301, 400, 401, 404, 410] {
            assert_eq!(decide(&answered(refused), 1).state, DeliveryState::Failed, "{refused}");
        }
        let unanswered = DeliveryAttempt { at: Utc::now(), status: None, error: Some("timeout".into()) };
        assert_eq!(decide(&unanswered, MAX_ATTEMPTS - 1).state, DeliveryState::Pending);
        assert_eq!(decide(&unanswered, MAX_ATTEMPTS).state, DeliveryState::Failed);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|attempt| backoff(attempt).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let outcome = decide(&answered(503), 3);
        assert_eq!(outcome.retry_at, Some(outcome.attempt.at + Duration::from_secs(4)));
    }

    #[test]
    fn signatures_are_the_hex_hmac_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
