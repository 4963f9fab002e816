//! Plans: fleet-wide price lists, seeded by the billing migration (free,
//! per learner, per seat). Prices are integer minor units of one currency.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::error::BillingError;
use super::model::Plan;
use super::model::PlanKind;
use crate::db::Db;

const COLUMNS: &str = "id, kind, name, unit_price, currency, period_days, trial_days";

fn plan(row: &AnyRow) -> Result<Plan, BillingError> {
    let kind: String = row.try_get("kind")?;
    Ok(Plan {
        id: row.try_get("id")?,
        kind: PlanKind::parse(&kind)?,
        name: row.try_get("name")?,
        unit_price: row.try_get("unit_price")?,
        currency: row.try_get("currency")?,
        period_days: row.try_get("period_days")?,
        trial_days: row.try_get("trial_days")?,
    })
}

/// Every plan, in id order.
///
/// # Errors
/// Database failures.
pub async fn list(db: &Db) -> Result<Vec<Plan>, BillingError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM billing_plans ORDER BY id"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(plan).collect()
}

/// One plan.
///
/// # Errors
/// [`BillingError::UnknownPlan`] when there is none with this id.
pub async fn get(db: &Db, id: &str) -> Result<Plan, BillingError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM billing_plans WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| BillingError::UnknownPlan(id.chars().take(64).collect()))?;
    plan(&row)
}
