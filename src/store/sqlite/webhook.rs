//! Webhook deliveries on SQLite: one process uses the file, and its single writer connection
//! serializes claims.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{BEGIN_WRITE, SqliteJobStore, decode_id, encode_id, encode_json, encode_time};
use crate::store::StoreError;
use crate::store::records::DeliveryState;
use crate::store::webhook::{ClaimedDelivery, DeliveryOutcome, WebhookStore};
use crate::store::{JobId, JobStatus};

#[async_trait]
impl WebhookStore for SqliteJobStore {
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let terminal = serde_json::to_string(
            &JobStatus::ALL.into_iter().filter(|status| status.is_terminal()).map(JobStatus::as_str).collect::<Vec<_>>(),
        )?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let rows = sqlx::query(
            "update job set webhook_next_at = ?2, webhook_attempts = webhook_attempts + 1 \
             where id in (select id from job \
                          where webhook_state = 'pending' and status in (select value from json_each(?4)) \
                            and (webhook_next_at is null or webhook_next_at <= ?1) \
                          order by webhook_next_at nulls first, id limit ?3) \
             returning id, webhook_url, webhook_attempts",
        )
        .bind(encode_time(now))
        .bind(encode_time(hold_until))
        .bind(i64::from(limit))
        .bind(terminal)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                Ok(ClaimedDelivery {
                    job_id: decode_id(&id)?,
                    url: row.try_get("webhook_url")?,
                    attempt: u32::try_from(row.try_get::<i64, _>("webhook_attempts")?)?,
                })
            })
            .collect()
    }

    async fn record_delivery(&self, job_id: JobId, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let next_at = if outcome.state == DeliveryState::Pending { outcome.retry_at.map(encode_time) } else { None };
        sqlx::query(
            "update job set webhook_state = ?2, webhook_next_at = ?3, webhook_last = ?4 where id = ?1 and webhook_state = 'pending'",
        )
        .bind(encode_id(job_id))
        .bind(outcome.state.as_str())
        .bind(next_at)
        .bind(encode_json(&serde_json::to_value(&outcome.attempt)?))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
