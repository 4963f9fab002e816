//! The content error: a leaf, so that the crate-wide `ControlPlaneError` can wrap it and
//! the HTTP layer can map it without importing the rest of `content`.

use crate::codes::ErrorCode;

/// Everything that can go wrong with content and paths. Expected refusals
/// (bad bodies, cycles, unpublished units) are apart from store failures.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The request is malformed (a bad query string, a bad limit).
    #[error("{0}")]
    BadRequest(String),
    /// A body parses as JSON but breaks a rule of its kind.
    #[error("{0}")]
    Invalid(String),
    /// A unit body is larger than `content_unit_body_bytes_max`.
    #[error(
        "unit body is {bytes} bytes, more than {max} (control_plane.content_unit_body_bytes_max)"
    )]
    BodyTooLarge {
        /// Serialised size of the body sent.
        bytes: usize,
        /// The configured maximum.
        max: u32,
    },
    /// No such course, module, unit or user in the caller's tenant.
    #[error("{what} {id} not found")]
    NotFound {
        /// `course`, `module`, `unit`, `user` or `prerequisite`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The unit exists but has no published version yet.
    #[error("unit {0} has no published version")]
    NotPublished(String),
    /// The request clashes with the current state (a duplicate edge, a
    /// limit on stored items).
    #[error("{0}")]
    Conflict(String),
    /// A prerequisite edge would close a cycle.
    #[error("{0}")]
    Cycle(String),
    /// Stored data does not parse: a bug or a hand edit.
    #[error("corrupt content data: {0}")]
    Corrupt(String),
    /// The database failed; the request may be retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ContentError {
    /// The stable code that crosses the HTTP boundary.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Invalid(_) => ErrorCode::ValidationFailed,
            Self::BodyTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::NotPublished(_) => ErrorCode::NotPublished,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Cycle(_) => ErrorCode::Cycle,
            Self::Corrupt(_) => ErrorCode::Internal,
            Self::Database(_) => ErrorCode::Unavailable,
        }
    }

    pub(crate) fn not_found(what: &'static str, id: &str) -> Self {
        Self::NotFound {
            what,
            id: id.to_owned(),
        }
    }
}
