//! Idempotency keys for retried billing requests, Stripe style: the first
//! request with a key claims it (a row with status 0, "running") and stores
//! its answer when done; a retry with the same key and the same request
//! gets that stored answer, one with a different request
//! [`BillingError::IdempotencyConflict`]. A retry that arrives while the
//! first still runs waits for it, up to `billing_idempotency_wait_ms`, then
//! gets [`BillingError::InProgress`]. Keys are per tenant. A request that
//! failed with a server error releases its key, so it can be retried.

use std::time::Duration;

use sqlx::Row as _;

use super::error::BillingError;
use super::model::IDEMPOTENCY_KEY_BYTES_MAX;
use crate::service::ControlPlane;

/// Pause between looks at a key whose first request is still running.
const POLL_MS: u64 = 20;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the request, then [`finish`] or [`release`].
    Fresh,
    /// The key was used with this request before: its stored answer.
    Replay {
        /// HTTP status of the first answer.
        status: u16,
        /// JSON body of the first answer.
        body: String,
    },
}

/// The fingerprint of a request: SHA-256 of the route and canonical body.
pub fn request_hash(route: &str, canonical_body: &str) -> String {
    let mut data = route.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(canonical_body.as_bytes());
    ring::digest::digest(&ring::digest::SHA256, &data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the shape of a key: 1 to 255 visible ASCII characters.
///
/// # Errors
/// [`BillingError::Invalid`].
pub fn check_key(key: &str) -> Result<(), BillingError> {
    let ok = !key.is_empty()
        && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(BillingError::Invalid(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"
        )))
    }
}

/// Claims `key` for a request with fingerprint `hash`, or finds its answer.
///
/// # Errors
/// [`BillingError::IdempotencyConflict`], [`BillingError::InProgress`],
/// database failures. Cancel safety: a cancelled wait claims nothing.
pub async fn claim(
    cp: &ControlPlane,
    tenant_id: &str,
    key: &str,
    hash: &str,
    now_ms: i64,
) -> Result<Claim, BillingError> {
    check_key(key)?;
    let wait = Duration::from_millis(cp.config().billing_idempotency_wait_ms);
    let started = tokio::time::Instant::now();
    loop {
        let inserted = sqlx::query(
            "INSERT INTO billing_idempotency_keys (tenant_id, key, request_hash, status, response, \
             created_at) VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(key)
        .bind(hash)
        .bind(now_ms)
        .execute(cp.db().pool())
        .await?
        .rows_affected()
            == 1;
        if inserted {
            return Ok(Claim::Fresh);
        }
        let row = sqlx::query(
            "SELECT request_hash, status, response FROM billing_idempotency_keys \
             WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant_id)
        .bind(key)
        .fetch_optional(cp.db().pool())
        .await?;
        if let Some(row) = row {
            let stored_hash: String = row.try_get("request_hash")?;
            if stored_hash != hash {
                return Err(BillingError::IdempotencyConflict(key.to_owned()));
            }
            let status: i64 = row.try_get("status")?;
            if status != 0 {
                return Ok(Claim::Replay {
                    status: u16::try_from(status)
                        .map_err(|_| BillingError::Corrupt(format!("status {status}")))?,
                    body: row.try_get("response")?,
                });
            }
        }
        if started.elapsed() >= wait {
            return Err(BillingError::InProgress(key.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Stores the answer of the request that claimed `key`.
///
/// # Errors
/// Database failures.
pub async fn finish(
    cp: &ControlPlane,
    tenant_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), BillingError> {
    sqlx::query(
        "UPDATE billing_idempotency_keys SET status = $1, response = $2 \
         WHERE tenant_id = $3 AND key = $4",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(tenant_id)
    .bind(key)
    .execute(cp.db().pool())
    .await?;
    Ok(())
}

/// Gives `key` up after a server-side failure, so a retry runs again.
///
/// # Errors
/// Database failures.
pub async fn release(cp: &ControlPlane, tenant_id: &str, key: &str) -> Result<(), BillingError> {
    sqlx::query(
        "DELETE FROM billing_idempotency_keys WHERE tenant_id = $1 AND key = $2 AND status = 0",
    )
    .bind(tenant_id)
    .bind(key)
    .execute(cp.db().pool())
    .await?;
    Ok(())
}
