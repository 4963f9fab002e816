//! The timetable error: a leaf, so that the crate-wide `ControlPlaneError`
//! can wrap it and the HTTP layer can map it without importing the rest of
//! `timetables`. A file with problems is one error carrying every problem
//! found, each with its own stable code and where it is.

use crate::codes::ErrorCode;

use super::model::Problem;

/// Everything that can go wrong with timetables. Problems in a file are
/// apart from refusals of the request and from store failures.
#[derive(Debug, thiserror::Error)]
pub enum TimetableError {
    /// The request is malformed (a bad query string, an unknown format).
    #[error("{0}")]
    BadRequest(String),
    /// The file has problems and the caller did not ask for the valid
    /// part (`?partial=true`): nothing was imported.
    #[error("the timetable has {} problem(s); nothing was imported (first: {})", .0.len(), first(.0))]
    Invalid(Vec<Problem>),
    /// No such timetable in the caller's tenant.
    #[error("timetable {0} not found")]
    NotFound(String),
    /// The file's events already belong to more than one timetable.
    #[error("{0}")]
    Conflict(String),
    /// Stored data does not parse: a bug or a hand edit.
    #[error("corrupt timetable data: {0}")]
    Corrupt(String),
    /// The database failed; the request may be retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn first(problems: &[Problem]) -> String {
    problems.first().map(Problem::to_string).unwrap_or_default()
}

impl TimetableError {
    /// The stable code that crosses the HTTP boundary.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Invalid(_) => ErrorCode::TimetableInvalid,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Corrupt(_) => ErrorCode::Internal,
            Self::Database(_) => ErrorCode::Unavailable,
        }
    }

    /// The problems of a refused file, empty for every other error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}
