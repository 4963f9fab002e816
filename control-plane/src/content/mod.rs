//! Course content and learning paths: course → modules → units, where a unit
//! is a lesson, a quiz, an assignment or a live classroom with a typed JSON
//! body that is validated on every write ([`body`]).
//!
//! Instructors edit a *draft*; publishing freezes it as an immutable,
//! numbered *version* ([`units`]). Learners only ever read the latest
//! published version, stripped of what must not reach a browser (hidden
//! tests, answer keys), and every learner read names the version, so that a
//! later submission can record the version it was made against.
//!
//! Learning paths ([`paths`]) are prerequisite edges between units of one
//! tenant (across its courses), optionally with a score condition. Edges
//! that would close a cycle are refused, and a learner's frontier (what is
//! unlocked and not done yet) is one recursive SQL query.
//!
//! Everything is tenant-scoped: every store function takes the tenant id
//! and every query filters on it, so another tenant's ids are simply unknown.

pub(crate) mod api;
pub mod body;
pub mod cache;
pub mod courses;
pub mod paths;
pub mod units;

use crate::config::ControlPlaneConfig;
use crate::error::ErrorCode;

pub(crate) use api::routes;
pub use body::{UnitBody, UnitKind};

/// Page size of a list that names no `limit`, clamped to the configured max.
pub const PAGE_SIZE_DEFAULT: u32 = 100;

/// Longest course, module or unit title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;

/// Longest course summary, in bytes.
pub const SUMMARY_BYTES_MAX: usize = 4_096;

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

/// The content limits of the configuration, in one value so that store
/// functions take them explicitly (and tests can set them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `limit` of a content list.
    pub page_size_max: u32,
    /// Largest serialised unit body.
    pub unit_body_bytes_max: u32,
    /// Most questions in one quiz.
    pub quiz_questions_max: u32,
    /// Most tests in one assignment (visible and hidden together) or one
    /// code question.
    pub assignment_tests_max: u32,
    /// Most prerequisites of one unit.
    pub path_edges_per_unit_max: u32,
}

impl Limits {
    /// The limits of `config`.
    pub fn from_config(config: &ControlPlaneConfig) -> Self {
        Self {
            page_size_max: config.content_page_size_max,
            unit_body_bytes_max: config.content_unit_body_bytes_max,
            quiz_questions_max: config.content_quiz_questions_max,
            assignment_tests_max: config.content_assignment_tests_max,
            path_edges_per_unit_max: config.path_edges_per_unit_max,
        }
    }

    /// The page size to use for a list asking for `requested` items.
    ///
    /// # Errors
    /// [`ContentError::BadRequest`] for 0 or more than the max.
    pub fn page_size(&self, requested: Option<u32>) -> Result<u32, ContentError> {
        match requested {
            None => Ok(PAGE_SIZE_DEFAULT.min(self.page_size_max)),
            Some(n) if n >= 1 && n <= self.page_size_max => Ok(n),
            Some(n) => Err(ContentError::BadRequest(format!(
                "limit {n} must be 1 to {} (control_plane.content_page_size_max)",
                self.page_size_max
            ))),
        }
    }
}

/// Checks a title: 1 to [`TITLE_CHARS_MAX`] characters, not blank; returns
/// it trimmed.
///
/// # Errors
/// [`ContentError::Invalid`] naming the field.
pub fn check_title(field: &str, title: &str) -> Result<String, ContentError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > TITLE_CHARS_MAX {
        return Err(ContentError::Invalid(format!(
            "{field} must be 1 to {TITLE_CHARS_MAX} characters"
        )));
    }
    Ok(title.to_owned())
}

/// A new UUIDv7: ids sort by creation time, so id order is list order.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
