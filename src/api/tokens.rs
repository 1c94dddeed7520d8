//! API tokens (admins only): create one (its secret is shown once), list them, revoke one; and
//! `GET /whoami`, which tells any caller the name and role it acts as (the dashboard shows it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::auth::authenticator::{ANONYMOUS_NAME, BOOTSTRAP_NAME};
use crate::api::auth::{Principal, secret};
use crate::api::state::AppState;
use crate::error::{ApiError, AppPath, JsonBody, Problem};
use crate::store::token::{Role, TokenRecord};

/// The longest expiry a token may be given.
const MAX_EXPIRY_DAYS: i64 = 3650;

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Its name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`; unique among the tokens not revoked;
    /// jobs it launches record it as `launched_by`.
    #[schema(example = "ci")]
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How long it works: a number with `s`, `m`, `h` or `d` (`90d`); unset, until revoked.
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

/// A token as listed: everything but its secret, which the server does not have.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Its id (the part after `alab_` of the token).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// The token that created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(token: TokenRecord) -> Self {
        let state = if token.revoked_at.is_some() {
            "revoked"
        } else if token.expires_at.is_some_and(|at| at <= Utc::now()) {
            "expired"
        } else {
            "active"
        };
        TokenInfo {
            id: token.id,
            name: token.name,
            role: token.role,
            state: state.into(),
            created_by: token.created_by,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
        }
    }
}

/// A created token, with its secret: shown this once, never again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// Send it as `Authorization: Bearer <token>`. The server keeps only a hash of it.
    pub token: String,
}

/// Who the caller acts as.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    /// The token's name (`bootstrap` for ASYNCLAB_TOKEN, `anonymous` without a token).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Whether this server requires a token.
    pub tokens_required: bool,
}

/// Creates a token with a role and an optional expiry; answers with its secret, once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A token not revoked has that name"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(raw): JsonBody,
) -> Result<Response, ApiError> {
    let request: CreateToken = serde_json::from_value(raw).map_err(|error| ApiError::bad_request("body", error.to_string()))?;
    check_name(&request.name)?;
    let now = Utc::now();
    let expires_at = request.expires_in.as_deref().map(parse_expiry).transpose()?.map(|lifetime| now + lifetime);
    let new = secret::generate();
    let record = TokenRecord {
        id: new.id,
        name: request.name.clone(),
        role: request.role,
        secret_hash: state.auth.key().hash(new.id, &new.secret),
        created_by: caller.name,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let Some(stored) = state.store.insert_token(&record).await? else {
        return Err(ApiError::conflict("name", format!("a token named {:?} exists; revoke it first", request.name)));
    };
    tracing::info!(token.name = %stored.name, token.role = stored.role.as_str(), "token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { info: stored.into(), token: new.token })).into_response())
}

/// Every token, newest first, without secrets.
#[utoipa::path(get, path = "/tokens", tag = "tokens", responses((status = 200, body = Vec<TokenInfo>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(state.store.list_tokens().await?.into_iter().map(TokenInfo::from).collect()))
}

/// Revokes the token with this name: it stops working at once here and within a second on
/// every replica sharing the store.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, body = TokenInfo, description = "The revoked token"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No token of that name that is not revoked")))]
pub async fn revoke(State(state): State<AppState>, AppPath(name): AppPath<String>) -> Result<Json<TokenInfo>, ApiError> {
    let revoked =
        state.store.revoke_token(&name).await?.ok_or_else(|| ApiError::not_found("name", format!("no active token named {name:?}")))?;
    state.auth.forget(revoked.id);
    tracing::info!(token.name = %revoked.name, "token revoked");
    Ok(Json(revoked.into()))
}

/// The name and role the caller acts as.
#[utoipa::path(get, path = "/whoami", tag = "tokens", responses((status = 200, body = Identity)))]
pub async fn whoami(State(state): State<AppState>, Extension(caller): Extension<Principal>) -> Json<Identity> {
    Json(Identity { name: caller.name, role: caller.role, tokens_required: state.auth.tokens_required() })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'_' | b'-'));
    if !valid {
        return Err(ApiError::invalid("name", "1 to 64 of a-z, 0-9, '.', '_', '-'"));
    }
    if name == BOOTSTRAP_NAME || name == ANONYMOUS_NAME {
        return Err(ApiError::invalid("name", format!("{name:?} is reserved")));
    }
    Ok(())
}

/// `90d`, `12h`, `30m`, `45s` as a duration, at most ten years.
pub fn parse_expiry(text: &str) -> Result<chrono::TimeDelta, ApiError> {
    let invalid = || ApiError::invalid("expires_in", format!("a number with s, m, h or d, up to {MAX_EXPIRY_DAYS}d; got {text:?}"));
    let unit = text.chars().last().ok_or_else(invalid)?;
    let count: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| invalid())?;
    let seconds = match unit {
        's' => Some(count),
        'm' => count.checked_mul(60),
        'h' => count.checked_mul(3600),
        'd' => count.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(invalid)?;
    if !(1..=MAX_EXPIRY_DAYS * 86_400).contains(&seconds) {
        return Err(invalid());
    }
    Ok(chrono::TimeDelta::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_take_a_unit_and_a_bound() {
        assert_eq!(parse_expiry("90d").unwrap(), chrono::TimeDelta::days(90));
        assert_eq!(parse_expiry("2h").unwrap(), chrono::TimeDelta::hours(2));
        assert_eq!(parse_expiry("1s").unwrap(), chrono::TimeDelta::seconds(1));
        for bad in ["", "d", "90", "0d", "-1d", "3651d", "1w", "1.5d"] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_short_plain_and_not_reserved() {
        assert!(check_name("ci-nightly.v2").is_ok());
        for bad in ["", "CI", "a b", "bootstrap", "anonymous", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
