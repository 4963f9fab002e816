//! Learning: who takes which course ([`enrollments`], with cohorts), how
//! far each learner got in each unit ([`progress`]: time and scroll depth
//! on lessons, quiz attempts graded here ([`quiz`]), tests passed on
//! assignments, attendance and submissions in live classes), and the live
//! classroom's two contracts with edge nodes ([`live`]): the ticket a
//! member presents to join a class, and the attendance report an edge
//! sends when the class ends.
//!
//! Completion is one thing everywhere: a unit is complete for a learner
//! when it has a row in `unit_results`, which is what the learning-path
//! frontier already reads ([`crate::content::paths`]). Progress writes that
//! row the first time a unit's rule is met, in the same transaction as the
//! progress itself and its `unit_completed` event ([`crate::events`]), and
//! an enrollment is completed when every published unit of its course is.
//!
//! Tenant-scoped like content: every store function takes the tenant id
//! and every query filters on it, so another tenant's ids are unknown.

mod api;
pub mod enrollments;
pub mod live;
pub mod progress;
pub mod quiz;

use crate::error::ErrorCode;

pub(crate) use api::routes;

/// Longest id accepted in a request or report (user, class, cohort,
/// submission ids are UUIDs; this leaves room and bounds what is stored).
pub const ID_BYTES_MAX: usize = 128;

/// Longest cohort name, in characters.
pub const COHORT_NAME_CHARS_MAX: usize = 100;

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
    Content(#[from] crate::content::ContentError),
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

/// Checks an id field: 1 to [`ID_BYTES_MAX`] bytes of visible ASCII.
///
/// # Errors
/// [`LearningError::Invalid`] naming the field.
pub fn check_id(field: &str, id: &str) -> Result<(), LearningError> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LearningError::Invalid(format!(
            "{field} must be 1 to {ID_BYTES_MAX} bytes of visible ASCII"
        )));
    }
    Ok(())
}

/// Whether `user` is a member of `tenant`.
///
/// # Errors
/// Database failures.
pub(crate) async fn is_member<'e, E>(
    executor: E,
    tenant: &str,
    user: &str,
) -> Result<bool, LearningError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let found: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_optional(executor)
            .await?;
    Ok(found.is_some())
}
