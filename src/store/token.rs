//! Persistence of API tokens: who may call the API with which role. The store keeps each
//! token's name, role, expiry and revocation, and only an HMAC of its secret — never the secret.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;

/// What a token may do; each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: the catalogue, jobs, events, reports, metrics.
    Viewer,
    /// A viewer that also launches jobs and cancels the jobs it launched.
    Launcher,
    /// Everything: cancels any job, manages tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Launcher, Role::Admin];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Launcher => "launcher",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id, part of the token a client presents.
    pub id: Uuid,
    /// Its name, unique among the tokens not revoked; recorded as `launched_by` on jobs.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// HMAC-SHA256 of the secret under the server's token key.
    pub secret_hash: Vec<u8>,
    /// The name of the token that created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A wake-up about tokens from another replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSignal {
    /// The token with this id was revoked.
    Revoked(Uuid),
    /// Signals may have been missed (the listening connection was re-established): forget
    /// every token held in memory.
    Resync,
}

/// Where tokens live: the job store's database.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token; `None` when a token that is not revoked already has its name.
    async fn insert_token(&self, token: &TokenRecord) -> Result<Option<TokenRecord>, StoreError>;

    /// The token with this id, revoked or not.
    async fn find_token(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes the token named `name` that is not yet revoked, telling the other replicas;
    /// `None` when there is none.
    async fn revoke_token(&self, name: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// The key token secrets are hashed with: the stored one, or `candidate` stored now when
    /// there is none yet (every replica sharing the store then uses the same key).
    async fn token_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Starts listening for other replicas' revocations on `tracker` until `stop`; `None` for
    /// a store only one process uses.
    fn listen_for_tokens(&self, tracker: &TaskTracker, stop: CancellationToken) -> Option<mpsc::Receiver<TokenSignal>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Launcher && Role::Launcher < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
