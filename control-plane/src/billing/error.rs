//! The billing error: a leaf, so that the crate-wide `ControlPlaneError` can wrap it and
//! the HTTP layer can map it without importing the rest of `billing`.

use crate::codes::ErrorCode;
use crate::ledger::error::LedgerError;

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
    /// `ChargeOutcome::Failed`).
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
