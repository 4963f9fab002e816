//! Why a drill file was refused. Every refusal names a stable code, the line
//! of the file it is about and a reason a person can act on, because an
//! operator must be able to fix a drill before anything starts, and the
//! console and the CLI must be able to tell refusals apart without parsing
//! prose. A leaf: imports nothing from the crate.

use std::fmt;

/// The closed set of reasons a drill file is refused. The strings returned
/// by [`DrillErrorCode::as_str`] are stable: the CLI prints them and the
/// console matches on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DrillErrorCode {
    /// The file could not be read from disk.
    Unreadable,
    /// The file is longer than `DRILL_FILE_BYTES_MAX`.
    TooLarge,
    /// The file is not valid TOML.
    Syntax,
    /// A key the format does not know (a typo, or a field of another kind
    /// of fault).
    UnknownKey,
    /// A key the format requires is absent.
    MissingKey,
    /// A value of the wrong type or outside its allowed range.
    BadValue,
    /// A timing that cannot happen: a zero or negative duration, a fault
    /// that ends after the drill, a recovery bound the drill cannot observe.
    BadTiming,
    /// Two faults that act on the same thing at the same time.
    Overlap,
    /// A region the cluster does not have.
    UnknownRegion,
    /// An OS-level fault on a machine where the drill does not run as root.
    NeedsRoot,
    /// More entries than a limit allows.
    TooMany,
}

impl DrillErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [DrillErrorCode; 11] = [
        Self::Unreadable,
        Self::TooLarge,
        Self::Syntax,
        Self::UnknownKey,
        Self::MissingKey,
        Self::BadValue,
        Self::BadTiming,
        Self::Overlap,
        Self::UnknownRegion,
        Self::NeedsRoot,
        Self::TooMany,
    ];

    /// The stable string form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::TooLarge => "too_large",
            Self::Syntax => "syntax",
            Self::UnknownKey => "unknown_key",
            Self::MissingKey => "missing_key",
            Self::BadValue => "bad_value",
            Self::BadTiming => "bad_timing",
            Self::Overlap => "overlap",
            Self::UnknownRegion => "unknown_region",
            Self::NeedsRoot => "needs_root",
            Self::TooMany => "too_many",
        }
    }
}

impl fmt::Display for DrillErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refusal: what is wrong, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason} [{code}]")]
pub struct DrillError {
    /// The stable code.
    pub code: DrillErrorCode,
    /// The 1-based line of the file the refusal is about; 0 when it is about
    /// the file as a whole (unreadable, too large).
    pub line: usize,
    /// What is wrong, naming the key, in lowercase without a trailing period.
    pub reason: String,
}

impl DrillError {
    /// A refusal at a line.
    pub fn new(code: DrillErrorCode, line: usize, reason: impl Into<String>) -> Self {
        Self {
            code,
            line,
            reason: reason.into(),
        }
    }
}

/// Every refusal of one drill file, in the order of the file, never empty.
/// Validation collects all of them, so that an operator fixes a file in one
/// pass instead of one error at a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct DrillErrors(pub Vec<DrillError>);

impl DrillErrors {
    /// The codes of every refusal, in order, for tests and the console.
    pub fn codes(&self) -> Vec<DrillErrorCode> {
        self.0.iter().map(|e| e.code).collect()
    }
}

impl From<DrillError> for DrillErrors {
    fn from(error: DrillError) -> Self {
        Self(vec![error])
    }
}

fn render(errors: &[DrillError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
