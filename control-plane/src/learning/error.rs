//! The learning error: a leaf, so that the crate-wide `ControlPlaneError` can wrap it and
//! the HTTP layer can map it without importing the rest of `learning`.

use crate::codes::ErrorCode;

/// Longest id accepted in a request or report (user, class, cohort,
/// submission ids are UUIDs; this leaves room and bounds what is stored).
pub const ID_BYTES_MAX: usize = 128;

/// Everything that can go wrong with enrollments, progress and live
/// classes. Expected refusals are apart from store failures.
#[derive(Debug, thiserror::Error)]
pub enum LearningError {
    /// The request is malformed (a bad query string or field shape).
    #[error("{0}")]
    BadRequest(String),
    /// The request parses but breaks a rule (a depth above 1, a class that
    /// ends before it starts).
    #[error("{0}")]
    Invalid(String),
    /// No such course, unit, cohort, class, user or enrollment in the
    /// caller's tenant.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The course or unit has nothing published for learners yet.
    #[error("{0}")]
    NotPublished(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not enrolled in the course (nor an instructor).
    #[error("{0}")]
    NotEnrolled(String),
    /// The request clashes with the current state (attempts used up, a
    /// taken cohort name).
    #[error("{0}")]
    Conflict(String),
    /// A report was sent again under the same id with another body.
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// Stored data does not parse: a bug or a hand edit.
    #[error("corrupt learning data: {0}")]
    Corrupt(String),
    /// A content lookup failed.
    #[error(transparent)]
    Content(#[from] crate::content::error::ContentError),
    /// Signing a ticket failed.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// The database failed; the request may be retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl LearningError {
    /// The stable code that crosses the HTTP boundary.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Invalid(_) => ErrorCode::ValidationFailed,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::NotPublished(_) => ErrorCode::NotPublished,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotEnrolled(_) => ErrorCode::NotEnrolled,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::IdempotencyMismatch(_) => ErrorCode::IdempotencyMismatch,
            Self::Corrupt(_) | Self::Crypto(_) => ErrorCode::Internal,
            Self::Content(err) => err.code(),
            Self::Database(_) => ErrorCode::Unavailable,
        }
    }

    pub(crate) fn not_found(what: &'static str, id: &str) -> Self {
        Self::NotFound {
            what,
            id: id.chars().take(ID_BYTES_MAX).collect(),
        }
    }
}
