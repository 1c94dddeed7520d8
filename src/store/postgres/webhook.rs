//! Webhook deliveries on PostgreSQL: replicas claim due deliveries with `for update skip
//! locked`, so two never take the same one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgJobStore;
use crate::store::StoreError;
use crate::store::records::DeliveryState;
use crate::store::webhook::{ClaimedDelivery, DeliveryOutcome, WebhookStore};
use crate::store::{JobId, JobStatus};

#[async_trait]
impl WebhookStore for PgJobStore {
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let terminal: Vec<&str> = JobStatus::ALL.into_iter().filter(|status| status.is_terminal()).map(JobStatus::as_str).collect();
        let rows = sqlx::query(
            "update job set webhook_next_at = $2, webhook_attempts = webhook_attempts + 1 \
             where id in (select id from job \
                          where webhook_state = 'pending' and status = any($4) \
                            and (webhook_next_at is null or webhook_next_at <= $1) \
                          order by webhook_next_at nulls first, id limit $3 for update skip locked) \
             returning id, webhook_url, webhook_attempts",
        )
        .bind(now)
        .bind(hold_until)
        .bind(i64::from(limit))
        .bind(terminal)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    job_id: row.try_get("id")?,
                    url: row.try_get("webhook_url")?,
                    attempt: u32::try_from(row.try_get::<i32, _>("webhook_attempts")?)?,
                })
            })
            .collect()
    }

    async fn record_delivery(&self, job_id: JobId, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let next_at = if outcome.state == DeliveryState::Pending { outcome.retry_at } else { None };
        sqlx::query(
            "update job set webhook_state = $2, webhook_next_at = $3, webhook_last = $4 where id = $1 and webhook_state = 'pending'",
        )
        .bind(job_id)
        .bind(outcome.state.as_str())
        .bind(next_at)
        .bind(serde_json::to_value(&outcome.attempt)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
