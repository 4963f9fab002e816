//! The closed set of stable error codes that cross the HTTP boundary
//! unchanged. A leaf module: it imports nothing from the crate, so every
//! domain error can say its code without knowing the HTTP layer or
//! the crate-wide error type.

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
    /// The database failed, or a process a route needs (the sandbox, the
    /// control plane as an edge sees it) is not there yet; the request may
    /// be retried.
    Unavailable,
    /// A bug or an unexpected state; logged with details.
    Internal,
    /// The route exists but not with this method (every process).
    MethodNotAllowed,
    /// The request took longer than `http.request_timeout_ms` (every
    /// process).
    RequestTimeout,
    /// The request target is longer than the server takes (every process).
    UriTooLong,
    /// The request's headers are larger than the server takes (every
    /// process).
    HeadersTooLarge,
    /// More requests are in flight than `http.requests_in_flight_max`;
    /// retry shortly (every process).
    Overloaded,
    /// A run budget (per user or per tenant) is spent; `retry-after` says
    /// when (edges).
    RateLimited,
    /// The edge holds as many submission reports as it may until the
    /// control plane takes its backlog; it refuses new runs rather than
    /// drop one (edges).
    OutboxFull,
    /// A run names a language the sandbox does not have (edges).
    UnknownLanguage,
    /// A run's file name is not a plain file name, or is used twice
    /// (edges).
    BadFileName,
    /// The unit cannot be graded on an edge (not an assignment or a quiz
    /// code question) (edges).
    NotGradable,
    /// The control plane answered an edge with something it could not use
    /// (edges).
    BadGateway,
    /// A timetable file has problems (each named in `problems` with its line,
    /// or component and property); nothing of it was imported.
    TimetableInvalid,
    /// An iCalendar file that does not parse as RFC 5545 at all (timetables).
    BadCalendar,
    /// A timetable file or line that is not UTF-8 (timetables).
    BadEncoding,
    /// A CSV timetable whose header is not comma-separated (timetables).
    BadDelimiter,
    /// A timetable event lacks a value it needs (a start, an end, a region)
    /// (timetables).
    MissingField,
    /// A timetable date, time or duration that does not parse or does not
    /// exist (an end before the start, a time in a DST gap) (timetables).
    BadDate,
    /// A timetable `RRULE`, `EXDATE` or `RDATE` (CSV: `recurrence`,
    /// `exceptions`) that does not parse (timetables).
    BadRecurrence,
    /// A time zone that is not in the IANA database (timetables).
    UnknownTimeZone,
    /// A region the platform does not have (`control_plane.timetable_regions`)
    /// (timetables).
    UnknownRegion,
    /// An event's learners above `control_plane.timetable_learners_per_event_max`
    /// (timetables).
    TooManyLearners,
    /// A timetable file with more events than
    /// `control_plane.timetable_events_per_file_max` (timetables).
    TooManyEvents,
}

impl ErrorCode {
    /// Every code, in declaration order: what the OpenAPI document lists
    /// and what any process may answer.
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadRequest,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::InsufficientFunds,
        Self::CurrencyMismatch,
        Self::IdempotencyConflict,
        Self::PendingClosed,
        Self::PendingExpired,
        Self::ValidationFailed,
        Self::Cycle,
        Self::NotPublished,
        Self::BadSignature,
        Self::NotEnrolled,
        Self::IdempotencyMismatch,
        Self::UnknownMember,
        Self::BatchSize,
        Self::InvalidConfig,
        Self::Unavailable,
        Self::Internal,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::Overloaded,
        Self::RateLimited,
        Self::OutboxFull,
        Self::UnknownLanguage,
        Self::BadFileName,
        Self::NotGradable,
        Self::BadGateway,
        Self::TimetableInvalid,
        Self::BadCalendar,
        Self::BadEncoding,
        Self::BadDelimiter,
        Self::MissingField,
        Self::BadDate,
        Self::BadRecurrence,
        Self::UnknownTimeZone,
        Self::UnknownRegion,
        Self::TooManyLearners,
        Self::TooManyEvents,
    ];
}

impl ErrorCode {
    /// The code a wire string names, if any (an edge relaying the control
    /// plane's answer).
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.as_str() == text)
    }

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
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Overloaded => "overloaded",
            Self::RateLimited => "rate_limited",
            Self::OutboxFull => "outbox_full",
            Self::UnknownLanguage => "unknown_language",
            Self::BadFileName => "bad_file_name",
            Self::NotGradable => "not_gradable",
            Self::BadGateway => "bad_gateway",
            Self::TimetableInvalid => "timetable_invalid",
            Self::BadCalendar => "bad_calendar",
            Self::BadEncoding => "bad_encoding",
            Self::BadDelimiter => "bad_delimiter",
            Self::MissingField => "missing_field",
            Self::BadDate => "bad_date",
            Self::BadRecurrence => "bad_recurrence",
            Self::UnknownTimeZone => "unknown_time_zone",
            Self::UnknownRegion => "unknown_region",
            Self::TooManyLearners => "too_many_learners",
            Self::TooManyEvents => "too_many_events",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codes::ErrorCode;

    /// Where a code sits in [`ErrorCode::ALL`]; a new variant does not
    /// compile here until it is placed, so `ALL` cannot miss one.
    fn position(code: ErrorCode) -> usize {
        use ErrorCode as C;
        match code {
            C::BadRequest => 0,
            C::PayloadTooLarge => 1,
            C::UnsupportedMediaType => 2,
            C::Unauthenticated => 3,
            C::Forbidden => 4,
            C::NotFound => 5,
            C::Conflict => 6,
            C::InsufficientFunds => 7,
            C::CurrencyMismatch => 8,
            C::IdempotencyConflict => 9,
            C::PendingClosed => 10,
            C::PendingExpired => 11,
            C::ValidationFailed => 12,
            C::Cycle => 13,
            C::NotPublished => 14,
            C::BadSignature => 15,
            C::NotEnrolled => 16,
            C::IdempotencyMismatch => 17,
            C::UnknownMember => 18,
            C::BatchSize => 19,
            C::InvalidConfig => 20,
            C::Unavailable => 21,
            C::Internal => 22,
            C::MethodNotAllowed => 23,
            C::RequestTimeout => 24,
            C::UriTooLong => 25,
            C::HeadersTooLarge => 26,
            C::Overloaded => 27,
            C::RateLimited => 28,
            C::OutboxFull => 29,
            C::UnknownLanguage => 30,
            C::BadFileName => 31,
            C::NotGradable => 32,
            C::BadGateway => 33,
            C::TimetableInvalid => 34,
            C::BadCalendar => 35,
            C::BadEncoding => 36,
            C::BadDelimiter => 37,
            C::MissingField => 38,
            C::BadDate => 39,
            C::BadRecurrence => 40,
            C::UnknownTimeZone => 41,
            C::UnknownRegion => 42,
            C::TooManyLearners => 43,
            C::TooManyEvents => 44,
        }
    }

    #[test]
    fn every_code_is_listed_once_and_reads_the_same_on_the_wire() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), i, "{code:?}");
            assert_eq!(
                serde_json::to_value(code).expect("json"),
                serde_json::json!(code.as_str())
            );
        }
        assert_eq!(ErrorCode::ALL.len(), 45);
        assert_eq!(
            ErrorCode::from_wire("outbox_full"),
            Some(ErrorCode::OutboxFull)
        );
        assert_eq!(ErrorCode::from_wire("internal_error"), None);
    }
}
