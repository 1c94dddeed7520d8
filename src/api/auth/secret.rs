//! API token secrets: how they are made, how a presented one is read, and how they are hashed
//! for the store.
//!
//! A token reads `alab_<id>_<secret>`: the id (a UUID in 32 hex digits) finds the stored
//! record, the secret (32 random bytes in 64 hex digits) proves possession. The store keeps
//! HMAC-SHA256(key, id ‖ secret) only. An HMAC rather than a slow password hash: the secrets are
//! 256 random bits, so there is no dictionary to slow down, and a fast keyed hash lets every
//! request be checked in microseconds; the server key means a copy of the table alone cannot
//! even test a guess. The check compares the HMACs in constant time (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

/// What every token starts with, so a leaked one is recognisable (and secret scanners can find it).
pub const PREFIX: &str = "alab_";

/// The key secrets are hashed with.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    /// A key of these bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        TokenKey(bytes)
    }

    /// 32 fresh random bytes, for a store that has no key yet.
    pub fn random_bytes() -> Vec<u8> {
        let mut bytes = vec![0_u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }

    fn mac(&self, id: Uuid, secret: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(secret.as_bytes());
        mac
    }

    /// What the store keeps for the token `id` with `secret`.
    pub fn hash(&self, id: Uuid, secret: &str) -> Vec<u8> {
        self.mac(id, secret).finalize().into_bytes().to_vec()
    }

    /// Whether `secret` is the one whose hash is `stored`, compared in constant time.
    pub fn verify(&self, id: Uuid, secret: &str, stored: &[u8]) -> bool {
        self.mac(id, secret).verify_slice(stored).is_ok()
    }
}

/// A new token: its id and the text the client is shown once.
#[derive(Debug)]
pub struct NewSecret {
    /// The token's id.
    pub id: Uuid,
    /// The secret part.
    pub secret: String,
    /// `alab_<id>_<secret>`, what the client sends as `Authorization: Bearer …`.
    pub token: String,
}

/// A fresh token with a UUIDv7 id and 256 random bits.
pub fn generate() -> NewSecret {
    let id = Uuid::now_v7();
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let token = format!("{PREFIX}{}_{secret}", id.simple());
    NewSecret { id, secret, token }
}

/// The id and secret of a presented token, or `None` when it does not have a token's shape.
pub fn parse(presented: &str) -> Option<(Uuid, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() != 64 || !secret.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_and_verifies_only_with_its_secret_and_key() {
        let key = TokenKey::new(b"server key".to_vec());
        let new = generate();
        let (id, secret) = parse(&new.token).unwrap();
        assert_eq!((id, secret), (new.id, new.secret.as_str()));
        let stored = key.hash(id, secret);
        assert_eq!(stored.len(), 32);
        assert!(!stored.windows(8).any(|window| new.token.as_bytes().windows(8).any(|part| part == window)));
        assert!(key.verify(id, secret, &stored));
        let mut other = secret.to_string();
        other.replace_range(0..1, if secret.starts_with('0') { "1" } else { "0" });
        assert!(!key.verify(id, &other, &stored));
        assert!(!TokenKey::new(b"another key".to_vec()).verify(id, secret, &stored));
        assert!(!key.verify(Uuid::now_v7(), secret, &stored), "the hash is bound to the id");
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let good = generate().token;
        assert!(parse(&good).is_some());
        for bad in ["", "alab_", "bearer", &good[1..], &format!("{good}0"), &good.replace("alab_", "xlab_"), &good.to_uppercase()] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
