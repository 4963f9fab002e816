//! Billing: plans, subscriptions per tenant moved through their periods by
//! a billing clock, invoices with line items, and payments through a
//! [`PaymentProvider`]. Billing owns *what* was billed and why; every unit
//! of money it collects moves through the [`crate::ledger`]: a paid invoice
//! is one ledger transfer from the tenant's `billing:customer:<CUR>` account
//! to its `billing:revenue:<CUR>` account, whose id is the invoice's id, so
//! settling an invoice twice (a retry, a redelivered webhook) never moves
//! money twice.
//!
//! Time is passed in: [`advance`] takes `now_ms` (the control plane's
//! [`crate::clock::Clock`], which tests move forward), so a whole year of
//! renewals runs in a test without sleeping.
//!
//! Retried requests are safe through idempotency keys that also compare the
//! request body ([`idempotency`]); webhooks from Stripe are accepted only
//! with a valid signature ([`stripe`]). Nothing here calls out to the
//! network: the Stripe adapter builds requests and verifies signatures.

pub(crate) mod api;
pub mod cycle;
pub mod idempotency;
pub mod invoices;
pub mod plans;
pub mod provider;
pub mod stripe;
pub mod subscriptions;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ledger::LedgerError;

pub(crate) use api::routes;
pub use cycle::{advance, Advanced};
pub use provider::{Charge, ChargeOutcome, DevProvider, PaymentProvider};
pub use stripe::StripeProvider;

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
/// takes in one [`advance`]: a clock moved years ahead catches up over
/// several calls instead of looping without bound.
pub const STEPS_PER_ADVANCE_MAX: u32 = 36;

/// Everything that can go wrong in billing. Expected refusals (bad input,
/// a reused key, a bad signature) are apart from failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// A field of the request is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// The request names a plan that does not exist.
    #[error("unknown plan {0}")]
    UnknownPlan(String),
    /// No such subscription in the caller's tenant.
    #[error("subscription {0} not found")]
    SubscriptionNotFound(String),
    /// No such invoice in the caller's tenant.
    #[error("invoice {0} not found")]
    InvoiceNotFound(String),
    /// The tenant has a subscription that is not canceled.
    #[error("the tenant already has a live subscription")]
    AlreadySubscribed,
    /// The subscription is canceled (or its cancellation is scheduled).
    #[error("subscription {0} is canceled")]
    Canceled(String),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {0} was used with a different request")]
    IdempotencyConflict(String),
    /// The first request with this idempotency key is still running.
    #[error("a request with idempotency key {0} is still in progress")]
    InProgress(String),
    /// A webhook's signature is missing, malformed, wrong or too old.
    #[error("webhook signature refused: {0}")]
    BadSignature(String),
    /// The payment provider refused to work (not a declined card: that is
    /// [`ChargeOutcome::Failed`]).
    #[error("payment provider error: {0}")]
    Provider(String),
    /// The ledger refused or failed a money movement.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Stored data does not parse: a bug or a hand edit.
    #[error("corrupt billing data: {0}")]
    Corrupt(String),
    /// The database failed; the request may be retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl BillingError {
    /// The stable code that crosses the HTTP boundary.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::UnknownPlan(_) => ErrorCode::ValidationFailed,
            Self::SubscriptionNotFound(_) | Self::InvoiceNotFound(_) => ErrorCode::NotFound,
            Self::AlreadySubscribed | Self::Canceled(_) | Self::InProgress(_) => {
                ErrorCode::Conflict
            }
            Self::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            Self::BadSignature(_) => ErrorCode::BadSignature,
            Self::Provider(_) | Self::Database(_) => ErrorCode::Unavailable,
            Self::Ledger(err) => err.code(),
            Self::Corrupt(_) => ErrorCode::Internal,
        }
    }
}

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

    fn parse(text: &str) -> Result<Self, BillingError> {
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

    fn parse(text: &str) -> Result<Self, BillingError> {
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

    fn parse(text: &str) -> Result<Self, BillingError> {
        [Self::Open, Self::Paid, Self::Uncollectible]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| BillingError::Corrupt(format!("invoice status {text:?}")))
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
