//! Billing's shared vocabulary: plans, subscriptions, invoices and their
//! statuses, and the limits every billing file checks against. Of its
//! siblings it imports only `error`, so every billing file can use it
//! without an import circle through `billing/mod.rs`.

use serde::{Deserialize, Serialize};

use super::error::BillingError;

/// One day in milliseconds: plan periods and trials are whole days.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Most seats or learners one subscription may be billed for; keeps
/// `quantity * unit_price` far from overflow.
pub const QUANTITY_MAX: i64 = 1_000_000;

/// Longest payment token accepted (a card token, a payment method id).
pub const PAYMENT_TOKEN_BYTES_MAX: usize = 128;

/// Longest `Idempotency-Key` header accepted.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// Most billing steps (trial end, renewal, cancellation) one subscription
/// takes in one `advance`: a clock moved years ahead catches up over
/// several calls instead of looping without bound.
pub const STEPS_PER_ADVANCE_MAX: u32 = 36;

/// How a plan prices a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Nothing to pay; never invoiced.
    Free,
    /// Unit price times the learners billed for.
    PerLearner,
    /// Unit price times the seats an organisation buys.
    PerSeat,
}

impl PlanKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::PerLearner => "per_learner",
            Self::PerSeat => "per_seat",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, BillingError> {
        [Self::Free, Self::PerLearner, Self::PerSeat]
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| BillingError::Corrupt(format!("plan kind {text:?}")))
    }
}

/// A plan anyone may subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// Stable id (`free`, `per_learner`, `per_seat`).
    pub id: String,
    /// How it is priced.
    pub kind: PlanKind,
    /// Display name.
    pub name: String,
    /// Price of one learner or seat per period, in minor units.
    pub unit_price: i64,
    /// ISO 4217 currency of the price.
    pub currency: String,
    /// Length of one billing period in days.
    pub period_days: i64,
    /// Days of free trial before the first invoice.
    pub trial_days: i64,
}

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SubscriptionStatus)]
pub enum Status {
    /// In its free trial; the first invoice comes at `trial_end`.
    Trialing,
    /// Paid up (or its current invoice is on its way through the provider).
    Active,
    /// The last invoice's payment failed; retried on each clock step until
    /// the period ends, then canceled.
    PastDue,
    /// Over; never billed again.
    Canceled,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, BillingError> {
        [Self::Trialing, Self::Active, Self::PastDue, Self::Canceled]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| BillingError::Corrupt(format!("subscription status {text:?}")))
    }
}

/// A tenant's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Server-chosen id.
    pub id: String,
    /// The tenant billed.
    pub tenant_id: String,
    /// Its plan.
    pub plan_id: String,
    /// Learners or seats billed for.
    pub quantity: i64,
    /// Where it is in its life.
    pub status: Status,
    /// End of the free trial, if it had one.
    pub trial_end: Option<i64>,
    /// Start of the current period (or of the trial).
    pub current_period_start: i64,
    /// End of the current period (or of the trial).
    pub current_period_end: i64,
    /// True when it ends at `current_period_end` instead of renewing.
    pub cancel_at_period_end: bool,
    /// When it was canceled.
    pub canceled_at: Option<i64>,
    /// When it was created.
    pub created_at: i64,
}

/// Where an invoice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Issued, not paid yet.
    Open,
    /// Paid; its ledger transfer (same id) exists.
    Paid,
    /// Given up on when its subscription was canceled for non-payment.
    Uncollectible,
}

impl InvoiceStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Uncollectible => "uncollectible",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self, BillingError> {
        [Self::Open, Self::Paid, Self::Uncollectible]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| BillingError::Corrupt(format!("invoice status {text:?}")))
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct InvoiceLine {
    /// What is billed.
    pub description: String,
    /// How many.
    pub quantity: i64,
    /// Price of one, in minor units.
    pub unit_amount: i64,
    /// `quantity * unit_amount`.
    pub amount: i64,
}

/// An invoice for one period of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    /// Server-chosen id; also the id of its ledger transfer once paid.
    pub id: String,
    /// The tenant billed.
    pub tenant_id: String,
    /// The subscription billed.
    pub subscription_id: String,
    /// Where it is.
    pub status: InvoiceStatus,
    /// Currency of every amount.
    pub currency: String,
    /// Sum of the lines' amounts.
    pub total: i64,
    /// Start of the period billed.
    pub period_start: i64,
    /// End of the period billed.
    pub period_end: i64,
    /// Payment attempts so far.
    pub attempts: i64,
    /// The provider's reference for the last attempt.
    pub provider_ref: Option<String>,
    /// When it was issued.
    pub created_at: i64,
    /// When it was paid.
    pub paid_at: Option<i64>,
    /// Its lines, in order.
    pub lines: Vec<InvoiceLine>,
}
