//! Invoices with line items, payment attempts, and settling a paid invoice
//! into the ledger. An invoice's total is the sum of its lines by
//! construction (both are written together, from the same numbers). A paid
//! invoice is one posted ledger transfer whose id is the invoice's id, from
//! the tenant's `billing:customer:<CUR>` account to its
//! `billing:revenue:<CUR>` account; the transfer is made *before* the
//! invoice is marked paid, and is idempotent by id, so a crash in between
//! or a second settle (a redelivered webhook) never moves money twice.
//! Marking it paid writes its `invoice_paid` event in the same transaction.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::error::BillingError;
use super::model::Invoice;
use super::model::InvoiceLine;
use super::model::InvoiceStatus;
use super::model::Plan;
use super::model::Subscription;
use super::provider::{Charge, ChargeOutcome, PaymentProvider};
use crate::events::{self, EventKind, NewEvent};
use crate::ledger::{self, BalanceLimit, LedgerError, Limits, NewAccount, NewTransfer};
use crate::service::ControlPlane;

const COLUMNS: &str = "id, tenant_id, subscription_id, status, currency, total, period_start, \
     period_end, attempts, provider_ref, created_at, paid_at";

fn invoice(row: &AnyRow, lines: Vec<InvoiceLine>) -> Result<Invoice, BillingError> {
    let status: String = row.try_get("status")?;
    Ok(Invoice {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        subscription_id: row.try_get("subscription_id")?,
        status: InvoiceStatus::parse(&status)?,
        currency: row.try_get("currency")?,
        total: row.try_get("total")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        attempts: row.try_get("attempts")?,
        provider_ref: row.try_get("provider_ref")?,
        created_at: row.try_get("created_at")?,
        paid_at: row.try_get("paid_at")?,
        lines,
    })
}

async fn lines(cp: &ControlPlane, invoice_id: &str) -> Result<Vec<InvoiceLine>, BillingError> {
    Ok(sqlx::query_as::<_, InvoiceLine>(
        "SELECT description, quantity, unit_amount, amount FROM billing_invoice_lines \
         WHERE invoice_id = $1 ORDER BY position",
    )
    .bind(invoice_id)
    .fetch_all(cp.db().pool())
    .await?)
}

/// One invoice of the tenant, with its lines.
///
/// # Errors
/// [`BillingError::InvoiceNotFound`] when the tenant has no such invoice.
pub async fn get(cp: &ControlPlane, tenant_id: &str, id: &str) -> Result<Invoice, BillingError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM billing_invoices WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(cp.db().pool())
    .await?
    .ok_or_else(|| BillingError::InvoiceNotFound(id.chars().take(64).collect()))?;
    invoice(&row, lines(cp, id).await?)
}

/// A page of the tenant's invoices in id order after `after`, with lines.
///
/// # Errors
/// Database failures.
pub async fn list(
    cp: &ControlPlane,
    tenant_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Invoice>, BillingError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM billing_invoices WHERE tenant_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(cp.db().pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        out.push(invoice(row, lines(cp, &id).await?)?);
    }
    Ok(out)
}

/// The lines a plan bills for one period.
///
/// # Errors
/// [`BillingError::Invalid`] when the amount would overflow.
pub fn lines_for(plan: &Plan, quantity: i64) -> Result<Vec<InvoiceLine>, BillingError> {
    let amount = plan
        .unit_price
        .checked_mul(quantity)
        .ok_or_else(|| BillingError::Invalid("quantity times price overflows".into()))?;
    let unit = match plan.kind {
        super::model::PlanKind::PerSeat => "seat",
        super::model::PlanKind::PerLearner => "learner",
        super::model::PlanKind::Free => "member",
    };
    Ok(vec![InvoiceLine {
        description: format!(
            "{} plan, {quantity} {unit}(s), {} days",
            plan.name, plan.period_days
        ),
        quantity,
        unit_amount: plan.unit_price,
        amount,
    }])
}

/// Issues the invoice of the period starting at `period_start`, once: a
/// second call for the same period returns the first invoice.
///
/// # Errors
/// Database failures; [`BillingError::Invalid`] on overflow.
pub async fn issue(
    cp: &ControlPlane,
    subscription: &Subscription,
    plan: &Plan,
    period_start: i64,
    period_end: i64,
    now_ms: i64,
) -> Result<Invoice, BillingError> {
    let lines = lines_for(plan, subscription.quantity)?;
    let total = lines
        .iter()
        .try_fold(0_i64, |sum, line| sum.checked_add(line.amount))
        .ok_or_else(|| BillingError::Invalid("invoice total overflows".into()))?;
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = cp.db().pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO billing_invoices (id, tenant_id, subscription_id, status, currency, total, \
         period_start, period_end, attempts, created_at) \
         VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, 0, $8) \
         ON CONFLICT (subscription_id, period_start) DO NOTHING",
    )
    .bind(&id)
    .bind(&subscription.tenant_id)
    .bind(&subscription.id)
    .bind(&plan.currency)
    .bind(total)
    .bind(period_start)
    .bind(period_end)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        for (position, line) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO billing_invoice_lines (invoice_id, position, description, quantity, \
                 unit_amount, amount) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&line.description)
            .bind(line.quantity)
            .bind(line.unit_amount)
            .bind(line.amount)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    let id: String = sqlx::query(
        "SELECT id FROM billing_invoices WHERE subscription_id = $1 AND period_start = $2",
    )
    .bind(&subscription.id)
    .bind(period_start)
    .fetch_one(cp.db().pool())
    .await?
    .try_get("id")?;
    get(cp, &subscription.tenant_id, &id).await
}

/// How an attempt to collect an invoice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// Paid (now or before); its ledger transfer exists.
    Paid,
    /// Declined.
    Failed,
    /// Waiting for the provider's webhook.
    Pending,
}

/// Makes one payment attempt for an open invoice and settles it if paid.
/// A zero invoice is settled without asking the provider.
///
/// # Errors
/// Database, ledger and provider failures.
pub async fn collect(
    cp: &ControlPlane,
    provider: &dyn PaymentProvider,
    invoice: &Invoice,
    payment_token: &str,
    now_ms: i64,
) -> Result<Collected, BillingError> {
    if invoice.status == InvoiceStatus::Paid {
        return Ok(Collected::Paid);
    }
    if invoice.total == 0 {
        settle(cp, &invoice.tenant_id, &invoice.id, "zero_total", now_ms).await?;
        return Ok(Collected::Paid);
    }
    let attempt = invoice.attempts.saturating_add(1);
    sqlx::query("UPDATE billing_invoices SET attempts = $1 WHERE id = $2 AND attempts < $1")
        .bind(attempt)
        .bind(&invoice.id)
        .execute(cp.db().pool())
        .await?;
    let charge = Charge {
        invoice_id: invoice.id.clone(),
        tenant_id: invoice.tenant_id.clone(),
        amount: invoice.total,
        currency: invoice.currency.clone(),
        payment_token: payment_token.to_owned(),
        idempotency_key: format!("{}:{attempt}", invoice.id),
    };
    match provider.charge(&charge)? {
        ChargeOutcome::Succeeded { reference } => {
            settle(cp, &invoice.tenant_id, &invoice.id, &reference, now_ms).await?;
            Ok(Collected::Paid)
        }
        ChargeOutcome::Failed { reason } => {
            tracing::info!(
                invoice = invoice.id,
                provider = provider.name(),
                reason,
                "billing: payment declined"
            );
            Ok(Collected::Failed)
        }
        ChargeOutcome::Pending { reference } => {
            sqlx::query("UPDATE billing_invoices SET provider_ref = $1 WHERE id = $2")
                .bind(&reference)
                .bind(&invoice.id)
                .execute(cp.db().pool())
                .await?;
            Ok(Collected::Pending)
        }
    }
}

/// The id of the tenant's ledger account `code`, created on first use.
async fn ensure_account(
    cp: &ControlPlane,
    tenant_id: &str,
    code: &str,
    currency: &str,
    now_ms: i64,
) -> Result<String, BillingError> {
    let find = || async {
        sqlx::query("SELECT id FROM ledger_accounts WHERE tenant_id = $1 AND code = $2")
            .bind(tenant_id)
            .bind(code)
            .fetch_optional(cp.db().pool())
            .await
    };
    if let Some(row) = find().await? {
        return Ok(row.try_get("id")?);
    }
    let account = NewAccount {
        code: code.to_owned(),
        currency: currency.to_owned(),
        balance_limit: BalanceLimit::None,
        metadata: Some(serde_json::json!({"owner": "billing"})),
    };
    let limits = Limits::from_config(cp.config());
    match ledger::create_account(cp.db(), tenant_id, &account, &limits, now_ms).await {
        Ok(account) => Ok(account.id),
        // Lost a race with another settle: the winner's account is there.
        Err(LedgerError::AccountCodeTaken(_)) => match find().await? {
            Some(row) => Ok(row.try_get("id")?),
            None => Err(BillingError::Corrupt(format!("account {code} vanished"))),
        },
        Err(err) => Err(err.into()),
    }
}

/// The tenant's billing accounts in `currency`: (customer, revenue).
///
/// # Errors
/// Database and ledger failures.
pub async fn accounts(
    cp: &ControlPlane,
    tenant_id: &str,
    currency: &str,
    now_ms: i64,
) -> Result<(String, String), BillingError> {
    let customer = ensure_account(
        cp,
        tenant_id,
        &format!("billing:customer:{currency}"),
        currency,
        now_ms,
    )
    .await?;
    let revenue = ensure_account(
        cp,
        tenant_id,
        &format!("billing:revenue:{currency}"),
        currency,
        now_ms,
    )
    .await?;
    Ok((customer, revenue))
}

/// Records a payment: the ledger transfer (id = invoice id), then the
/// invoice marked paid. Idempotent: settling a paid invoice changes nothing.
///
/// # Errors
/// [`BillingError::InvoiceNotFound`], ledger and database failures.
pub async fn settle(
    cp: &ControlPlane,
    tenant_id: &str,
    invoice_id: &str,
    reference: &str,
    now_ms: i64,
) -> Result<Invoice, BillingError> {
    let invoice = get(cp, tenant_id, invoice_id).await?;
    if invoice.status == InvoiceStatus::Paid {
        return Ok(invoice);
    }
    if invoice.total > 0 {
        let (customer, revenue) = accounts(cp, tenant_id, &invoice.currency, now_ms).await?;
        let transfer = NewTransfer {
            id: invoice.id.clone(),
            debit_account_id: customer,
            credit_account_id: revenue,
            amount: invoice.total,
            currency: invoice.currency.clone(),
            pending: false,
            timeout_ms: None,
            metadata: Some(serde_json::json!({
                "invoice_id": invoice.id,
                "subscription_id": invoice.subscription_id,
            })),
        };
        let limits = Limits::from_config(cp.config());
        ledger::create_transfer(cp.db(), tenant_id, &transfer, &limits, now_ms).await?;
    }
    // Marked paid and its `invoice_paid` event in one transaction; only
    // the settle that flips the status writes the event.
    let mut tx = cp.db().begin_write().await?;
    let paid = sqlx::query(
        "UPDATE billing_invoices SET status = 'paid', paid_at = $1, provider_ref = $2 \
         WHERE id = $3 AND status <> 'paid'",
    )
    .bind(now_ms)
    .bind(reference)
    .bind(&invoice.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if paid {
        events::append(
            &mut tx,
            &[NewEvent {
                kind: EventKind::InvoicePaid,
                tenant_id: tenant_id.to_owned(),
                aggregate_id: invoice.id.clone(),
                payload: serde_json::json!({
                    "invoice_id": invoice.id,
                    "subscription_id": invoice.subscription_id,
                    "total": invoice.total,
                    "currency": invoice.currency,
                    "period_start": invoice.period_start,
                }),
            }],
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    get(cp, tenant_id, invoice_id).await
}
