//! API tokens in the SQLite store: one process uses the file, so a revocation needs no signal
//! (the revoking request forgets the token itself).

use anyhow::anyhow;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{BEGIN_WRITE, SqliteJobStore, decode_id, decode_optional_time, decode_time, encode_id, encode_time};
use crate::store::StoreError;
use crate::store::token::{Role, TokenRecord, TokenSignal, TokenStore};

const TOKEN_COLUMNS: &str = "id, name, role, secret_hash, created_by, created_at, expires_at, revoked_at";

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
    let id: String = row.try_get("id")?;
    let created_at: String = row.try_get("created_at")?;
    Ok(TokenRecord {
        id: decode_id(&id)?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| anyhow!("unknown role {role:?}"))?,
        secret_hash: row.try_get("secret_hash")?,
        created_by: row.try_get("created_by")?,
        created_at: decode_time(&created_at)?,
        expires_at: decode_optional_time(row.try_get("expires_at")?)?,
        revoked_at: decode_optional_time(row.try_get("revoked_at")?)?,
    })
}

#[async_trait]
impl TokenStore for SqliteJobStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "insert into api_token ({TOKEN_COLUMNS}) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, null) \
             on conflict (name) where revoked_at is null do nothing returning {TOKEN_COLUMNS}"
        ))
        .bind(encode_id(token.id))
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.created_by)
        .bind(encode_time(token.created_at))
        .bind(token.expires_at.map(encode_time))
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn find_token(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!("select {TOKEN_COLUMNS} from api_token where id = ?1"))
            .bind(encode_id(id))
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!("select {TOKEN_COLUMNS} from api_token order by created_at desc, id desc"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let row =
            sqlx::query(&format!("update api_token set revoked_at = ?1 where name = ?2 and revoked_at is null returning {TOKEN_COLUMNS}"))
                .bind(encode_time(chrono::Utc::now()))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn token_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("insert into token_key (id, key) values (1, ?1) on conflict (id) do nothing")
            .bind(candidate)
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("select key from token_key where id = 1").fetch_one(&self.writer).await?)
    }

    fn listen_for_tokens(&self, _tracker: &TaskTracker, _stop: CancellationToken) -> Option<mpsc::Receiver<TokenSignal>> {
        None
    }
}
