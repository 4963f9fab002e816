//! Stripe webhook events, once their signature has been checked
//! ([`super::stripe::verify_webhook`]): a payment that succeeded settles
//! its invoice, one that failed puts the current period past due. Every
//! action is idempotent and every event id is recorded, so a redelivered
//! event changes nothing.

use sqlx::Row as _;

use super::error::BillingError;
use super::invoices;
use super::model::{InvoiceStatus, Status};
use super::stripe;
use crate::service::ControlPlane;

/// Applies a verified event and records its id; answers what was done:
/// `settled`, `past_due` or `ignored`.
///
/// # Errors
/// Database, ledger and invoice failures; the event may be delivered again.
pub async fn handle(
    cp: &ControlPlane,
    event: &stripe::WebhookEvent,
    now: i64,
) -> Result<&'static str, BillingError> {
    let action = apply_event(cp, event, now).await?;
    sqlx::query(
        "INSERT INTO billing_webhook_events (id, kind, received_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id.chars().take(255).collect::<String>())
    .bind(event.kind.chars().take(255).collect::<String>())
    .bind(now)
    .execute(cp.db().pool())
    .await?;
    Ok(action)
}

/// Applies a verified event; every action is idempotent, so a redelivery
/// changes nothing.
async fn apply_event(
    cp: &ControlPlane,
    event: &stripe::WebhookEvent,
    now: i64,
) -> Result<&'static str, BillingError> {
    let Some(invoice_id) = &event.invoice_id else {
        return Ok("ignored");
    };
    let row = sqlx::query(
        "SELECT i.tenant_id, i.subscription_id, i.period_start, s.period_start AS current_start \
         FROM billing_invoices i JOIN billing_subscriptions s ON s.id = i.subscription_id \
         WHERE i.id = $1",
    )
    .bind(invoice_id)
    .fetch_optional(cp.db().pool())
    .await?;
    let Some(row) = row else { return Ok("ignored") };
    let tenant: String = row.try_get("tenant_id")?;
    let subscription: String = row.try_get("subscription_id")?;
    let current =
        row.try_get::<i64, _>("period_start")? == row.try_get::<i64, _>("current_start")?;
    let (to, from) = match event.kind.as_str() {
        "payment_intent.succeeded" => {
            invoices::settle(cp, &tenant, invoice_id, &event.object_id, now).await?;
            (Status::Active, Status::PastDue)
        }
        "payment_intent.payment_failed" => {
            let invoice = invoices::get(cp, &tenant, invoice_id).await?;
            if invoice.status != InvoiceStatus::Open {
                return Ok("ignored");
            }
            (Status::PastDue, Status::Active)
        }
        _ => return Ok("ignored"),
    };
    if current {
        sqlx::query("UPDATE billing_subscriptions SET status = $1 WHERE id = $2 AND status = $3")
            .bind(to.as_str())
            .bind(&subscription)
            .bind(from.as_str())
            .execute(cp.db().pool())
            .await?;
    }
    Ok(match to {
        Status::PastDue => "past_due",
        _ => "settled",
    })
}
