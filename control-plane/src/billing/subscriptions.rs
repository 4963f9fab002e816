//! Subscriptions: one live (not canceled) subscription per tenant, enforced
//! by a partial unique index so that racing subscribes cannot both win.
//! A paid plan starts trialing for its `trial_days`; the billing clock
//! ([`super::cycle`]) then bills it. A free plan is active at once and is
//! never invoiced. Cancelling is at the end of the current period (or the
//! trial): what was paid for is kept.

use serde::{Deserialize, Serialize};

use super::error::BillingError;
use super::model::PlanKind;
use super::model::Status;
use super::model::Subscription;
use super::model::DAY_MS;
use super::model::PAYMENT_TOKEN_BYTES_MAX;
use super::model::QUANTITY_MAX;
use super::plans;
use super::provider::PaymentProvider;
use crate::service::ControlPlane;

pub use super::subscription_rows::get;

/// Body of a subscribe request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// The plan's id.
    pub plan_id: String,
    /// Learners or seats billed for; 1 to [`QUANTITY_MAX`], default 1.
    #[serde(default = "one")]
    pub quantity: i64,
    /// The card token or payment method to charge.
    pub payment_token: String,
}

fn one() -> i64 {
    1
}

/// Body of a payment method change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    /// The new card token or payment method.
    pub payment_token: String,
}

fn check_token(token: &str) -> Result<(), BillingError> {
    let ok = !token.is_empty()
        && token.len() <= PAYMENT_TOKEN_BYTES_MAX
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BillingError::Invalid(format!(
            "payment_token must be 1 to {PAYMENT_TOKEN_BYTES_MAX} bytes of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

impl NewSubscription {
    /// Checks the shape (the plan is checked against the store).
    ///
    /// # Errors
    /// [`BillingError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), BillingError> {
        if !(1..=QUANTITY_MAX).contains(&self.quantity) {
            return Err(BillingError::Invalid(format!(
                "quantity must be 1 to {QUANTITY_MAX}"
            )));
        }
        if self.plan_id.is_empty() || self.plan_id.len() > 64 {
            return Err(BillingError::Invalid(
                "plan_id must be 1 to 64 bytes".into(),
            ));
        }
        check_token(&self.payment_token)
    }
}

/// Subscribes the tenant, then runs the billing clock for it once (a plan
/// without a trial is invoiced and charged at once).
///
/// # Errors
/// [`BillingError::Invalid`], [`BillingError::UnknownPlan`],
/// [`BillingError::AlreadySubscribed`]; database, ledger and provider
/// failures.
pub async fn subscribe(
    cp: &ControlPlane,
    provider: &dyn PaymentProvider,
    tenant_id: &str,
    request: &NewSubscription,
    now_ms: i64,
) -> Result<Subscription, BillingError> {
    request.validate()?;
    let plan = plans::get(cp.db(), &request.plan_id).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let (status, trial_end, period_end) = if plan.kind == PlanKind::Free {
        (
            Status::Active,
            None,
            now_ms.saturating_add(plan.period_days.saturating_mul(DAY_MS)),
        )
    } else {
        let end = now_ms.saturating_add(plan.trial_days.saturating_mul(DAY_MS));
        (Status::Trialing, Some(end), end)
    };
    let inserted = sqlx::query(
        "INSERT INTO billing_subscriptions (id, tenant_id, plan_id, quantity, status, \
         payment_token, trial_end, period_start, period_end, cancel_at_period_end, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&plan.id)
    .bind(request.quantity)
    .bind(status.as_str())
    .bind(&request.payment_token)
    .bind(trial_end)
    .bind(now_ms)
    .bind(period_end)
    .bind(now_ms)
    .execute(cp.db().pool())
    .await;
    match inserted {
        Ok(_) => {}
        Err(err)
            if err
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation()) =>
        {
            return Err(BillingError::AlreadySubscribed)
        }
        Err(err) => return Err(err.into()),
    }
    super::cycle::advance_one(cp, provider, tenant_id, &id, now_ms).await?;
    get(cp, tenant_id, &id).await
}

/// Schedules the end of the subscription at the end of its current period
/// (or trial). Cancelling twice answers the same subscription.
///
/// # Errors
/// [`BillingError::SubscriptionNotFound`]; database failures.
pub async fn cancel(
    cp: &ControlPlane,
    tenant_id: &str,
    id: &str,
) -> Result<Subscription, BillingError> {
    get(cp, tenant_id, id).await?;
    sqlx::query(
        "UPDATE billing_subscriptions SET cancel_at_period_end = 1 \
         WHERE tenant_id = $1 AND id = $2 AND status <> 'canceled'",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(cp.db().pool())
    .await?;
    get(cp, tenant_id, id).await
}

/// Replaces the payment token; a past-due subscription is charged with it
/// at the next clock step.
///
/// # Errors
/// [`BillingError::Invalid`], [`BillingError::SubscriptionNotFound`],
/// [`BillingError::Canceled`]; database failures.
pub async fn set_payment_method(
    cp: &ControlPlane,
    tenant_id: &str,
    id: &str,
    method: &PaymentMethod,
) -> Result<Subscription, BillingError> {
    check_token(&method.payment_token)?;
    let current = get(cp, tenant_id, id).await?;
    if current.status == Status::Canceled {
        return Err(BillingError::Canceled(current.id));
    }
    sqlx::query(
        "UPDATE billing_subscriptions SET payment_token = $1 WHERE tenant_id = $2 AND id = $3",
    )
    .bind(&method.payment_token)
    .bind(tenant_id)
    .bind(id)
    .execute(cp.db().pool())
    .await?;
    get(cp, tenant_id, id).await
}
