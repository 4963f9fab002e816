//! Errors of the control plane. Expected failures (bad credentials, a bad
//! token) are kept apart from fatal ones (the database is gone), and each maps
//! to a stable code that crosses the HTTP boundary unchanged.

pub use crate::codes::ErrorCode;

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
    Ledger(#[from] crate::ledger::error::LedgerError),
    /// A content or learning-path operation was refused or failed.
    #[error(transparent)]
    Content(#[from] crate::content::error::ContentError),
    /// A billing operation was refused or failed.
    #[error(transparent)]
    Billing(#[from] crate::billing::error::BillingError),
    /// An enrollment, progress or live-class operation was refused or
    /// failed.
    #[error(transparent)]
    Learning(#[from] crate::learning::error::LearningError),
    /// A timetable import or read was refused or failed.
    #[error(transparent)]
    Timetable(#[from] crate::timetables::error::TimetableError),
    /// A key or hash stored by us could not be used.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// A fault a test injected on purpose (see `analytics::Fault`).
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
            Self::Timetable(err) => err.code(),
        }
    }
}
