//! Persistence of job-finished webhook deliveries. A delivery is a row's state, not a task in
//! memory: whichever replica is free claims a due one (moving its next attempt past the attempt
//! in the same statement, so no other replica takes it meanwhile), and records the outcome; a
//! delivery cut short by a crash is claimed again once its claim lapses. At least once, then:
//! receivers tell repeats apart by the job id.

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::records::{DeliveryAttempt, DeliveryState, Webhook};
use super::{JobId, StoreError};

/// A claimed delivery: the job to send, and which attempt this is (1 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The ended job whose representation is sent.
    pub job_id: JobId,
    /// The receiver's URL.
    pub url: String,
    /// The attempt's number, counting this one.
    pub attempt: u32,
}

/// What an attempt decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    /// `Delivered`, `Failed` (given up), or `Pending` with the next attempt's time.
    pub state: DeliveryState,
    /// When to try again, for a `Pending` outcome.
    pub retry_at: Option<DateTime<Utc>>,
    /// The attempt as it went.
    pub attempt: DeliveryAttempt,
}

/// Where webhook deliveries live: the job rows themselves.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Claims up to `limit` due deliveries of ended jobs (pending, next attempt at or before
    /// `now`), counting an attempt for each and holding them until `hold_until`.
    async fn claim_deliveries(&self, now: DateTime<Utc>, hold_until: DateTime<Utc>, limit: u32)
    -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records how a claimed attempt went.
    async fn record_delivery(&self, job_id: JobId, outcome: &DeliveryOutcome) -> Result<(), StoreError>;
}

/// A job row's webhook columns as the job's `webhook`; `None` when the launch named none.
pub(super) fn from_columns(
    url: Option<String>,
    state: Option<String>,
    attempts: i64,
    last: Option<Value>,
) -> Result<Option<Webhook>, StoreError> {
    let (Some(url), Some(state)) = (url, state) else {
        return Ok(None);
    };
    Ok(Some(Webhook {
        url,
        state: DeliveryState::parse(&state).ok_or_else(|| anyhow!("unknown webhook state {state:?}"))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_attempt: last.map(serde_json::from_value).transpose()?,
    }))
}
