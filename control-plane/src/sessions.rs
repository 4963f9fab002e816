//! Sign-in sessions: a short-lived access token (verified offline by edges)
//! plus an opaque, single-use refresh token (checked here). Refresh tokens
//! are stored only as SHA-256 hashes. Each sign-in starts a family (the
//! session; its id is the `sid` claim of the access tokens issued in it); a
//! refresh rotates within it; presenting an already-used token revokes the
//! family, because only a thief or a replay can do that.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::db::now_ms;
use crate::error::ControlPlaneError;
use crate::identity::{self, Member};
use crate::service::ControlPlane;
use crate::tokens;

/// What sign-in and refresh answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// The EdDSA-signed access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /api/v1/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

fn hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn new_secret() -> Result<String, ControlPlaneError> {
    let mut bytes = [0_u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ControlPlaneError::Crypto("no randomness for a refresh token".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

async fn store_refresh(
    cp: &ControlPlane,
    member: &Member,
    family_id: &str,
) -> Result<String, ControlPlaneError> {
    let secret = new_secret()?;
    let now = now_ms();
    let ttl_ms = i64::try_from(cp.config().refresh_token_ttl_seconds.saturating_mul(1000))
        .unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, tenant_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(family_id)
    .bind(&member.user_id)
    .bind(&member.tenant_id)
    .bind(hash(&secret))
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(cp.db().pool())
    .await?;
    Ok(secret)
}

/// A token pair for the session `family_id`; the access token names it.
fn pair(
    cp: &ControlPlane,
    member: &Member,
    family_id: &str,
    refresh_token: String,
) -> Result<TokenPair, ControlPlaneError> {
    let ttl = cp.config().access_token_ttl_seconds;
    Ok(TokenPair {
        access_token: tokens::issue_for_session(
            cp.keys(),
            &member.user_id,
            &member.tenant_id,
            member.role,
            &member.email,
            Some(family_id),
            ttl,
        )?,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
        refresh_token,
        refresh_expires_in: cp.config().refresh_token_ttl_seconds,
    })
}

/// Starts a session for an authenticated member.
///
/// # Errors
/// Fails on database or signing errors.
pub async fn start(cp: &ControlPlane, member: &Member) -> Result<TokenPair, ControlPlaneError> {
    let family = uuid::Uuid::new_v4().to_string();
    let refresh = store_refresh(cp, member, &family).await?;
    pair(cp, member, &family, refresh)
}

/// Trades a refresh token for a new pair; the old token is spent.
///
/// # Errors
/// [`ControlPlaneError::BadToken`] for an unknown, expired, revoked or
/// already-used token (the last also revokes its family).
pub async fn refresh(
    cp: &ControlPlane,
    refresh_token: &str,
) -> Result<TokenPair, ControlPlaneError> {
    let row = sqlx::query(
        "SELECT id, family_id, user_id, tenant_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(hash(refresh_token))
    .fetch_optional(cp.db().pool())
    .await?
    .ok_or_else(|| ControlPlaneError::BadToken("unknown refresh token".into()))?;
    let id: String = row.try_get(0)?;
    let family: String = row.try_get(1)?;
    let user_id: String = row.try_get(2)?;
    let tenant_id: String = row.try_get(3)?;
    let expires_at: i64 = row.try_get(4)?;
    let used_at: Option<i64> = row.try_get(5)?;
    let revoked_at: Option<i64> = row.try_get(6)?;
    if revoked_at.is_some() {
        return Err(ControlPlaneError::BadToken(
            "refresh token was revoked".into(),
        ));
    }
    let now = now_ms();
    if expires_at <= now {
        return Err(ControlPlaneError::BadToken("refresh token expired".into()));
    }
    // Spend it; the guard on used_at makes two concurrent refreshes race
    // for one row, and only one can win.
    let spent =
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(cp.db().pool())
            .await?;
    if used_at.is_some() || spent.rows_affected() == 0 {
        revoke_family(cp, &family).await?;
        tracing::warn!(
            user_id,
            family,
            "refresh token reuse; the session family is revoked"
        );
        return Err(ControlPlaneError::BadToken(
            "refresh token was already used; this session has been ended".into(),
        ));
    }
    let member = identity::member_in_tenant(cp.db(), &tenant_id, &user_id)
        .await?
        .ok_or_else(|| ControlPlaneError::BadToken("the token's user no longer exists".into()))?;
    let next = store_refresh(cp, &member, &family).await?;
    pair(cp, &member, &family, next)
}

/// Ends the session a refresh token belongs to. Unknown tokens are ignored,
/// so signing out twice is harmless.
///
/// # Errors
/// Fails on database errors.
pub async fn sign_out(cp: &ControlPlane, refresh_token: &str) -> Result<(), ControlPlaneError> {
    let family: Option<String> =
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash(refresh_token))
            .fetch_optional(cp.db().pool())
            .await?;
    if let Some(family) = family {
        revoke_family(cp, &family).await?;
    }
    Ok(())
}

async fn revoke_family(cp: &ControlPlane, family: &str) -> Result<(), ControlPlaneError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(family)
    .execute(cp.db().pool())
    .await?;
    Ok(())
}

/// Ends every session of a user but `keep` (after a password change: the
/// caller's own session, named by its access token, goes on). With no
/// session to keep, every one ends. Access tokens already issued run out
/// on their own (edges verify them offline).
///
/// # Errors
/// Fails on database errors.
pub async fn end_other_sessions(
    cp: &ControlPlane,
    user_id: &str,
    keep: Option<&str>,
) -> Result<(), ControlPlaneError> {
    // No family id is empty (they are UUIDs), so "" keeps none.
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND family_id <> $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .execute(cp.db().pool())
    .await?;
    Ok(())
}
