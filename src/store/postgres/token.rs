//! API tokens in PostgreSQL. A revocation sends `NOTIFY` in its transaction, and every replica
//! holds one `LISTEN` connection for them, so a revoked token stops working everywhere at once.

use anyhow::anyhow;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::PgJobStore;
use super::listener::{self, Subscription};
use crate::store::StoreError;
use crate::store::token::{Role, TokenRecord, TokenSignal, TokenStore};

/// The channel whose payload, a token id, says the token was revoked.
const REVOKED_CHANNEL: &str = "asynclab_token_revoked";
/// Every replica's subscription to revocations; after a lost connection it forgets every
/// token it checked (`Resync`), since revocations sent meanwhile are lost.
const REVOCATIONS: Subscription<TokenSignal> = Subscription {
    channels: &[REVOKED_CHANNEL],
    parse: |notification| notification.payload().parse().ok().map(TokenSignal::Revoked),
    resync: || TokenSignal::Resync,
    what: "token revocations",
    // Revocations are rare: a small buffer is plenty.
    buffer: 256,
};

const TOKEN_COLUMNS: &str = "id, name, role, secret_hash, created_by, created_at, expires_at, revoked_at";

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| anyhow!("unknown role {role:?}"))?,
        secret_hash: row.try_get("secret_hash")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl TokenStore for PgJobStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "insert into api_token ({TOKEN_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, null) \
             on conflict (name) where revoked_at is null do nothing returning {TOKEN_COLUMNS}"
        ))
        .bind(token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn find_token(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!("select {TOKEN_COLUMNS} from api_token where id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query(&format!("select {TOKEN_COLUMNS} from api_token order by created_at desc, id desc")).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "update api_token set revoked_at = now() where name = $1 and revoked_at is null returning {TOKEN_COLUMNS}"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let revoked = row.as_ref().map(token_from_row).transpose()?;
        if let Some(token) = &revoked {
            sqlx::query("select pg_notify($1, $2)").bind(REVOKED_CHANNEL).bind(token.id.to_string()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn token_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("insert into token_key (id, key) values (1, $1) on conflict (id) do nothing")
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("select key from token_key where id = 1").fetch_one(&self.pool).await?)
    }

    fn listen_for_tokens(&self, tracker: &TaskTracker, stop: CancellationToken) -> Option<mpsc::Receiver<TokenSignal>> {
        Some(listener::spawn(self.pool.clone(), REVOCATIONS, tracker, stop))
    }
}
