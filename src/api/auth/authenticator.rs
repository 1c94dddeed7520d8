//! Deciding who a presented token is: the bootstrap token (`ASYNCLAB_TOKEN`, an admin), or a
//! stored token checked against its HMAC, its expiry and its revocation.
//!
//! Stored tokens are held in memory once read, so a request costs no database round trip. A
//! revocation forgets the token at once on the replica that revoked it; the others forget it
//! when the store's revocation signal arrives (PostgreSQL `NOTIFY`, well under a second), and
//! forget every token when that signal's connection had to be re-established.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::secret::{self, TokenKey};
use crate::store::JobStore;
use crate::store::token::{Role, TokenRecord, TokenSignal};

/// The name jobs launched with the bootstrap token record as `launched_by`.
pub const BOOTSTRAP_NAME: &str = "bootstrap";
/// The name jobs launched without any token (loopback, no token configured) record.
pub const ANONYMOUS_NAME: &str = "anonymous";
/// Tokens held in memory at most; past it the memory is cleared (they are read again).
const MAX_CACHED_TOKENS: usize = 10_000;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`bootstrap`, `anonymous`, or a stored token's).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token this server issued, or a wrong secret.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl Refusal {
    /// The label used in logs and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::Expired => "expired",
            Refusal::Revoked => "revoked",
        }
    }
}

/// Checks presented tokens.
pub struct Authenticator {
    /// `ASYNCLAB_TOKEN`, when configured: an admin, and what makes tokens required.
    bootstrap: Option<SecretString>,
    /// The key stored secrets are hashed with.
    key: TokenKey,
    /// Where tokens are stored.
    store: Arc<dyn JobStore>,
    /// Tokens read from the store, by id. A std mutex: held for a map lookup or insert, never
    /// across an await.
    cache: Mutex<HashMap<Uuid, TokenRecord>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Authenticator").field("bootstrap", &self.bootstrap.is_some()).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator with the bootstrap token (if any), hashing with `key`.
    pub fn new(bootstrap: Option<SecretString>, key: TokenKey, store: Arc<dyn JobStore>) -> Self {
        Authenticator { bootstrap, key, store, cache: Mutex::new(HashMap::new()) }
    }

    /// The key secrets are hashed with.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Whether requests need a token: only when `ASYNCLAB_TOKEN` is configured (a server bound
    /// off loopback always has one). Without it, a request with no token acts as an anonymous
    /// admin, as before tokens had roles.
    pub fn tokens_required(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// Who a request without a token acts as, when that is allowed.
    pub fn anonymous(&self) -> Option<Principal> {
        (!self.tokens_required()).then(|| Principal { name: ANONYMOUS_NAME.into(), role: Role::Admin })
    }

    /// Who `presented` is, or why it is refused. Store failures are errors, not refusals.
    pub async fn authenticate(&self, presented: &str) -> anyhow::Result<Result<Principal, Refusal>> {
        if let Some(bootstrap) = &self.bootstrap
            && constant_time_eq(presented.as_bytes(), bootstrap.expose_secret().as_bytes())
        {
            return Ok(Ok(Principal { name: BOOTSTRAP_NAME.into(), role: Role::Admin }));
        }
        let Some((id, secret)) = secret::parse(presented) else {
            return Ok(Err(Refusal::Invalid));
        };
        let Some(token) = self.token(id).await? else {
            return Ok(Err(Refusal::Invalid));
        };
        if !self.key.verify(id, secret, &token.secret_hash) {
            return Ok(Err(Refusal::Invalid));
        }
        if token.revoked_at.is_some() {
            return Ok(Err(Refusal::Revoked));
        }
        if token.expires_at.is_some_and(|expires_at| expires_at <= Utc::now()) {
            return Ok(Err(Refusal::Expired));
        }
        Ok(Ok(Principal { name: token.name, role: token.role }))
    }

    async fn token(&self, id: Uuid) -> anyhow::Result<Option<TokenRecord>> {
        if let Some(token) = self.cache.lock().expect("token cache poisoned").get(&id) {
            return Ok(Some(token.clone()));
        }
        let Some(token) = self.store.find_token(id).await? else {
            return Ok(None);
        };
        let mut cache = self.cache.lock().expect("token cache poisoned");
        if cache.len() >= MAX_CACHED_TOKENS {
            cache.clear();
        }
        cache.insert(id, token.clone());
        Ok(Some(token))
    }

    /// Forgets the token `id`, so its next use reads the store (after a revocation).
    pub fn forget(&self, id: Uuid) {
        self.cache.lock().expect("token cache poisoned").remove(&id);
    }

    /// Forgets every token held in memory.
    fn forget_all(&self) {
        self.cache.lock().expect("token cache poisoned").clear();
    }

    /// Follows other replicas' revocations on `tracker` until `stop`.
    pub fn follow_revocations(self: &Arc<Self>, tracker: &TaskTracker, stop: CancellationToken) {
        let Some(mut signals) = self.store.listen_for_tokens(tracker, stop.clone()) else {
            return;
        };
        let authenticator = self.clone();
        tracker.spawn(async move {
            loop {
                let signal = tokio::select! {
                    () = stop.cancelled() => return,
                    signal = signals.recv() => signal,
                };
                match signal {
                    Some(TokenSignal::Revoked(id)) => authenticator.forget(id),
                    Some(TokenSignal::Resync) => authenticator.forget_all(),
                    None => return,
                }
            }
        });
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
pub fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = presented.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(presented.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison_needs_an_exact_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secretx", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
