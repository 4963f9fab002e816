//! Content's shared rules: page and title limits ([`Limits`],
//! [`check_title`]), new ids, and [`UnitResult`], which learning reads
//! too. Of its siblings it imports only `error`, so every content file
//! (and `learning`) can use it without an import circle.

use serde::{Deserialize, Serialize};

use super::error::ContentError;
use crate::config::ControlPlaneConfig;

/// Page size of a list that names no `limit`, clamped to the configured max.
pub const PAGE_SIZE_DEFAULT: u32 = 100;

/// Longest course, module or unit title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;

/// Longest course summary, in bytes.
pub const SUMMARY_BYTES_MAX: usize = 4_096;

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

/// A learner's result on one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitResult {
    /// The learner.
    pub user_id: String,
    /// The unit.
    pub unit_id: String,
    /// 0 to 100, or absent.
    pub score: Option<i64>,
    /// Unix milliseconds.
    pub completed_at: i64,
}
