//! The ledger error: a leaf, so that the crate-wide `ControlPlaneError` can wrap it and
//! the HTTP layer can map it without importing the rest of `ledger`.

use crate::codes::ErrorCode;

/// Everything that can go wrong in the ledger. Expected refusals (no
/// funds, a reused id) are apart from failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A field of the request is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// No such account in the caller's tenant.
    #[error("account {0} not found")]
    AccountNotFound(String),
    /// No such transfer in the caller's tenant.
    #[error("transfer {0} not found")]
    TransferNotFound(String),
    /// An account code is taken in this tenant.
    #[error("an account with code {0} exists")]
    AccountCodeTaken(String),
    /// The transfer's currency differs from an account's.
    #[error("transfer in {transfer} but account {account} holds {account_currency}")]
    CurrencyMismatch {
        /// Currency of the transfer.
        transfer: String,
        /// Account at fault.
        account: String,
        /// What that account holds.
        account_currency: String,
    },
    /// The transfer would break an account's balance limit.
    #[error("account {account} has insufficient funds: {limit} (needs {needed}, has {available})")]
    InsufficientFunds {
        /// Account at fault.
        account: String,
        /// Its limit, as stored.
        limit: &'static str,
        /// Amount the transfer needs.
        needed: i64,
        /// Amount available under the limit.
        available: i64,
    },
    /// A balance would leave the signed 64-bit range.
    #[error("account {0}'s balance would overflow")]
    Overflow(String),
    /// The id was used before with a different body; the first stands.
    #[error("transfer {0} exists with a different body")]
    IdempotencyConflict(String),
    /// Post or void of a transfer that is not a pending one.
    #[error("transfer {0} is not a pending transfer")]
    NotPending(String),
    /// Post or void of a pending transfer that is closed already.
    #[error("pending transfer {id} is closed: {how}")]
    PendingClosed {
        /// The pending transfer.
        id: String,
        /// `posted`, `voided` or `expired`.
        how: &'static str,
    },
    /// Post or void after the timeout: the hold was released instead.
    #[error("pending transfer {0} has expired")]
    PendingExpired(String),
    /// One transfer of a batch failed, so the whole batch did.
    #[error("transfer {index} of the batch ({id}): {source}")]
    InBatch {
        /// Zero-based position in the batch.
        index: usize,
        /// Its id.
        id: String,
        /// Why it failed.
        source: Box<LedgerError>,
    },
    /// The group-commit queue holds its limit of waiting transfers
    /// (`ledger_group_commit_queue_max`); retry later.
    #[error("the ledger is busy: {0} transfers are queued (control_plane.ledger_group_commit_queue_max)")]
    Busy(usize),
    /// The group a transfer was written in failed as a whole (the database
    /// failed); nothing of it was written, a retry with the same id is safe.
    #[error("the ledger could not write: {0}")]
    GroupFailed(String),
    /// Stored data does not parse: a bug or a hand edit.
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    /// The database failed; the request may be retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl LedgerError {
    /// The stable code that crosses the HTTP boundary.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::AccountNotFound(_) | Self::TransferNotFound(_) => ErrorCode::NotFound,
            Self::AccountCodeTaken(_) | Self::Overflow(_) | Self::NotPending(_) => {
                ErrorCode::Conflict
            }
            Self::CurrencyMismatch { .. } => ErrorCode::CurrencyMismatch,
            Self::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            Self::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            Self::PendingClosed { .. } => ErrorCode::PendingClosed,
            Self::PendingExpired(_) => ErrorCode::PendingExpired,
            Self::InBatch { source, .. } => source.code(),
            Self::Corrupt(_) => ErrorCode::Internal,
            Self::Database(_) | Self::Busy(_) | Self::GroupFailed(_) => ErrorCode::Unavailable,
        }
    }
}
