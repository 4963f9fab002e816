//! Reading stored subscriptions back: the row shape and the lookups that
//! both `subscriptions` (which writes them) and the billing clock
//! (`cycle`) need. Kept apart so that the clock reads
//! subscriptions without importing the file that runs the clock after a
//! subscribe.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::error::BillingError;
use super::model::Status;
use super::model::Subscription;
use crate::service::ControlPlane;

/// The columns [`subscription`] reads, in `SELECT` order.
pub(super) const COLUMNS: &str =
    "id, tenant_id, plan_id, quantity, status, trial_end, period_start, \
     period_end, cancel_at_period_end, canceled_at, created_at";

/// A subscription from one row of `billing_subscriptions` (all of [`COLUMNS`]).
///
/// # Errors
/// A missing column or an unknown status.
pub(super) fn subscription(row: &AnyRow) -> Result<Subscription, BillingError> {
    let status: String = row.try_get("status")?;
    let cancel: i64 = row.try_get("cancel_at_period_end")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        plan_id: row.try_get("plan_id")?,
        quantity: row.try_get("quantity")?,
        status: Status::parse(&status)?,
        trial_end: row.try_get("trial_end")?,
        current_period_start: row.try_get("period_start")?,
        current_period_end: row.try_get("period_end")?,
        cancel_at_period_end: cancel != 0,
        canceled_at: row.try_get("canceled_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// One subscription of the tenant.
///
/// # Errors
/// [`BillingError::SubscriptionNotFound`] when the tenant has none with this id.
pub async fn get(
    cp: &ControlPlane,
    tenant_id: &str,
    id: &str,
) -> Result<Subscription, BillingError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM billing_subscriptions WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(cp.db().pool())
    .await?
    .ok_or_else(|| BillingError::SubscriptionNotFound(id.chars().take(64).collect()))?;
    subscription(&row)
}

/// The payment token a subscription charges.
pub(super) async fn payment_token(cp: &ControlPlane, id: &str) -> Result<String, BillingError> {
    Ok(
        sqlx::query("SELECT payment_token FROM billing_subscriptions WHERE id = $1")
            .bind(id)
            .fetch_one(cp.db().pool())
            .await?
            .try_get("payment_token")?,
    )
}
