//! Errors of the control plane. Expected failures (bad credentials, a bad
//! token) are kept apart from fatal ones (the database is gone), and each maps
//! to a stable code that crosses the HTTP boundary unchanged.

use serde::{Deserialize, Serialize};

/// Stable, closed set of error codes that clients may match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a field in it is malformed.
    BadRequest,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The request body is not JSON (wrong or missing content type).
    UnsupportedMediaType,
    /// No credentials, or credentials that do not check out.
    Unauthenticated,
    /// Signed in, but the role does not allow this.
    Forbidden,
    /// No such thing, or not in the caller's tenant.
    NotFound,
    /// Clashes with the current state.
    Conflict,
    /// A ledger transfer would take an account past its balance limit.
    InsufficientFunds,
    /// A ledger transfer names a currency its accounts do not hold.
    CurrencyMismatch,
    /// An id was reused with a different request body; the first one stands.
    IdempotencyConflict,
    /// The pending transfer was already posted, voided or expired.
    PendingClosed,
    /// The pending transfer's timeout has passed; it is expired now.
    PendingExpired,
    /// A body parses but breaks a rule of its kind (a quiz answer out of
    /// range, a bad date).
    ValidationFailed,
    /// A prerequisite edge would close a cycle in a learning path.
    Cycle,
    /// The unit has no published version for learners to see yet.
    NotPublished,
    /// A webhook's signature is missing, wrong or outside its time window.
    BadSignature,
    /// The caller is neither enrolled in the course nor an instructor of
    /// its tenant (a live-class ticket, progress of a course).
    NotEnrolled,
    /// A report was sent again under the same id with another body; the
    /// first one stands (live attendance).
    IdempotencyMismatch,
    /// A submission report names a user who is not a member of its
    /// tenant (another tenant's, or no such user): recording it would show
    /// a stranger's run in the tenant's lists.
    UnknownMember,
    /// A batch holds no items or more than its limit (the message names
    /// the limit and its setting); nothing of it was recorded.
    BatchSize,
    /// The configuration is invalid.
    InvalidConfig,
    /// The database failed; the request may be retried.
    Unavailable,
    /// A bug or an unexpected state; logged with details.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::InsufficientFunds => "insufficient_funds",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::PendingClosed => "pending_closed",
            Self::PendingExpired => "pending_expired",
            Self::ValidationFailed => "validation_failed",
            Self::Cycle => "cycle",
            Self::NotPublished => "not_published",
            Self::BadSignature => "bad_signature",
            Self::NotEnrolled => "not_enrolled",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::UnknownMember => "unknown_member",
            Self::BatchSize => "batch_size",
            Self::InvalidConfig => "invalid_config",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// Everything that can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// A setting is out of range.
    #[error("invalid setting {key}: {reason}")]
    Config {
        /// Dotted path of the setting, e.g. `control_plane.db_connections_max`.
        key: String,
        /// Why the value was refused.
        reason: String,
    },
    /// The database could not be reached or a query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Email and password do not match a user.
    #[error("wrong email or password")]
    BadCredentials,
    /// A token is missing, expired or has a bad signature.
    #[error("invalid token: {0}")]
    BadToken(String),
    /// A token names a key this verifier does not know (yet): the key set
    /// may have rotated since it was fetched.
    #[error("invalid token: unknown signing key {0}")]
    UnknownKey(String),
    /// A request field is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The caller is signed in but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing named does not exist (or is not visible to the caller).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request clashes with the current state (a taken email, say).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An id was used before with a different request body.
    #[error("idempotency conflict: {0}")]
    IdempotencyConflict(String),
    /// A report names a user who is not a member of its tenant.
    #[error("unknown member: {0}")]
    UnknownMember(String),
    /// A batch is empty or larger than its limit.
    #[error("batch size: {0}")]
    BatchSize(String),
    /// A ledger operation was refused or failed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A content or learning-path operation was refused or failed.
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    /// A billing operation was refused or failed.
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingError),
    /// An enrollment, progress or live-class operation was refused or
    /// failed.
    #[error(transparent)]
    Learning(#[from] crate::learning::LearningError),
    /// A key or hash stored by us could not be used.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// A fault a test injected on purpose (see [`crate::analytics::Fault`]).
    #[error("injected fault: {0}")]
    InjectedFault(&'static str),
}

impl ControlPlaneError {
    /// The stable code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config { .. } => ErrorCode::InvalidConfig,
            Self::Database(_) | Self::Migrate(_) => ErrorCode::Unavailable,
            Self::BadCredentials | Self::BadToken(_) | Self::UnknownKey(_) => {
                ErrorCode::Unauthenticated
            }
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            Self::UnknownMember(_) => ErrorCode::UnknownMember,
            Self::BatchSize(_) => ErrorCode::BatchSize,
            Self::Crypto(_) | Self::InjectedFault(_) => ErrorCode::Internal,
            Self::Ledger(err) => err.code(),
            Self::Content(err) => err.code(),
            Self::Billing(err) => err.code(),
            Self::Learning(err) => err.code(),
        }
    }
}
