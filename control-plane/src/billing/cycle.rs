//! The billing clock. [`advance`] moves every live subscription up to
//! `now_ms`: a trial that has ended starts the first paid period (its
//! invoice is issued and charged: paid or pending → `active`, declined →
//! `past_due`); a period that has ended is renewed with a new invoice the
//! same way, or ends the subscription when its cancellation was scheduled;
//! a past-due subscription is charged again (once per call) with its
//! current payment token, and canceled, its invoice `uncollectible`, when
//! its period runs out unpaid. Free plans roll their period and are never
//! invoiced.
//!
//! Safe to run twice or concurrently: an invoice is unique per
//! (subscription, period start), settling is idempotent by the invoice id
//! in the ledger, and each subscription row moves by compare-and-set on its
//! status and period end, so a step taken by someone else is not taken
//! again. Each call takes at most [`STEPS_PER_ADVANCE_MAX`] steps per
//! subscription.

use serde::Serialize;
use sqlx::Row as _;

use super::error::BillingError;
use super::invoices::{self, Collected};
use super::model::InvoiceStatus;
use super::model::PlanKind;
use super::model::Status;
use super::model::Subscription;
use super::model::DAY_MS;
use super::model::STEPS_PER_ADVANCE_MAX;
use super::plans;
use super::provider::PaymentProvider;
use super::subscription_rows;
use crate::service::ControlPlane;

/// Subscriptions read per page while advancing.
const PAGE: i64 = 200;

/// What one [`advance`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Advanced {
    /// Invoices issued (or found issued).
    pub invoices: u32,
    /// Payment attempts that collected the money.
    pub paid: u32,
    /// Payment attempts declined.
    pub failed: u32,
    /// Payment attempts waiting for the provider's webhook.
    pub pending: u32,
    /// Subscriptions that ended.
    pub canceled: u32,
}

impl Advanced {
    fn add(&mut self, other: Self) {
        self.invoices += other.invoices;
        self.paid += other.paid;
        self.failed += other.failed;
        self.pending += other.pending;
        self.canceled += other.canceled;
    }

    fn count(&mut self, collected: Collected) {
        match collected {
            Collected::Paid => self.paid += 1,
            Collected::Failed => self.failed += 1,
            Collected::Pending => self.pending += 1,
        }
    }
}

/// Moves every live subscription of every tenant up to `now_ms`.
///
/// # Errors
/// Database, ledger and provider failures; steps already taken stay taken
/// and the next call carries on from there.
pub async fn advance(
    cp: &ControlPlane,
    provider: &dyn PaymentProvider,
    now_ms: i64,
) -> Result<Advanced, BillingError> {
    let mut total = Advanced::default();
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, tenant_id FROM billing_subscriptions \
             WHERE status <> 'canceled' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(cp.db().pool())
        .await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let tenant: String = row.try_get("tenant_id")?;
            total.add(advance_one(cp, provider, &tenant, &id, now_ms).await?);
            after = id;
        }
        if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

/// Moves one row from the state `from` read to a new status and period;
/// false when someone else moved it first.
async fn move_to(
    cp: &ControlPlane,
    from: &Subscription,
    status: Status,
    period: (i64, i64),
    canceled_at: Option<i64>,
) -> Result<bool, BillingError> {
    let moved = sqlx::query(
        "UPDATE billing_subscriptions SET status = $1, period_start = $2, period_end = $3, \
         canceled_at = $4 WHERE id = $5 AND status = $6 AND period_end = $7",
    )
    .bind(status.as_str())
    .bind(period.0)
    .bind(period.1)
    .bind(canceled_at)
    .bind(&from.id)
    .bind(from.status.as_str())
    .bind(from.current_period_end)
    .execute(cp.db().pool())
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Moves one subscription up to `now_ms`; see the module docs.
///
/// # Errors
/// As [`advance`].
pub async fn advance_one(
    cp: &ControlPlane,
    provider: &dyn PaymentProvider,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<Advanced, BillingError> {
    let mut done = Advanced::default();
    let mut retried = false;
    for _ in 0..STEPS_PER_ADVANCE_MAX {
        let sub = subscription_rows::get(cp, tenant_id, id).await?;
        let plan = plans::get(cp.db(), &sub.plan_id).await?;
        let period_ms = plan.period_days.saturating_mul(DAY_MS);
        let ended = sub.current_period_end <= now_ms;
        match sub.status {
            Status::Canceled => break,
            Status::Trialing | Status::Active if !ended => break,
            Status::Trialing | Status::Active if sub.cancel_at_period_end => {
                let period = (sub.current_period_start, sub.current_period_end);
                if move_to(
                    cp,
                    &sub,
                    Status::Canceled,
                    period,
                    Some(sub.current_period_end),
                )
                .await?
                {
                    done.canceled += 1;
                }
            }
            Status::Trialing | Status::Active if plan.kind == PlanKind::Free => {
                let start = sub.current_period_end;
                move_to(
                    cp,
                    &sub,
                    Status::Active,
                    (start, start.saturating_add(period_ms)),
                    None,
                )
                .await?;
            }
            Status::Trialing | Status::Active => {
                let start = sub.current_period_end;
                let end = start.saturating_add(period_ms);
                let invoice = invoices::issue(cp, &sub, &plan, start, end, now_ms).await?;
                done.invoices += 1;
                let token = subscription_rows::payment_token(cp, &sub.id).await?;
                let collected = invoices::collect(cp, provider, &invoice, &token, now_ms).await?;
                done.count(collected);
                // This step's attempt counts as its retry: one charge per call.
                retried = true;
                let status = match collected {
                    Collected::Paid | Collected::Pending => Status::Active,
                    Collected::Failed => Status::PastDue,
                };
                move_to(cp, &sub, status, (start, end), None).await?;
            }
            Status::PastDue if ended => {
                let period = (sub.current_period_start, sub.current_period_end);
                if move_to(
                    cp,
                    &sub,
                    Status::Canceled,
                    period,
                    Some(sub.current_period_end),
                )
                .await?
                {
                    done.canceled += 1;
                    sqlx::query(
                        "UPDATE billing_invoices SET status = 'uncollectible' \
                         WHERE subscription_id = $1 AND status = 'open'",
                    )
                    .bind(&sub.id)
                    .execute(cp.db().pool())
                    .await?;
                }
            }
            Status::PastDue => {
                if retried {
                    break;
                }
                retried = true;
                let Some(invoice) = current_invoice(cp, &sub).await? else {
                    // Paid meanwhile (a webhook): nothing is owed.
                    move_to(
                        cp,
                        &sub,
                        Status::Active,
                        (sub.current_period_start, sub.current_period_end),
                        None,
                    )
                    .await?;
                    continue;
                };
                let token = subscription_rows::payment_token(cp, &sub.id).await?;
                let collected = invoices::collect(cp, provider, &invoice, &token, now_ms).await?;
                done.count(collected);
                if collected == Collected::Failed {
                    break;
                }
                let period = (sub.current_period_start, sub.current_period_end);
                move_to(cp, &sub, Status::Active, period, None).await?;
            }
        }
    }
    Ok(done)
}

/// The invoice of the subscription's current period, if still open.
async fn current_invoice(
    cp: &ControlPlane,
    sub: &Subscription,
) -> Result<Option<super::model::Invoice>, BillingError> {
    let row = sqlx::query(
        "SELECT id FROM billing_invoices WHERE subscription_id = $1 AND period_start = $2",
    )
    .bind(&sub.id)
    .bind(sub.current_period_start)
    .fetch_optional(cp.db().pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    let invoice = invoices::get(cp, &sub.tenant_id, &id).await?;
    Ok((invoice.status == InvoiceStatus::Open).then_some(invoice))
}
