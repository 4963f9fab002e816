//! Timetables' shared types and rules: the limits of the configuration in
//! one value, where a problem is in a file ([`Problem`]), the notes of a
//! capped expansion ([`Note`]), an event as parsed ([`EventDraft`]) and as
//! stored, and the answers of the routes. A leaf: of the crate it imports
//! only `codes`, so every timetable file (and the error) can
//! use it without an import circle.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;

/// Longest event title kept, in characters (longer ones are cut).
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest UID or CSV key accepted, in bytes.
pub const UID_BYTES_MAX: usize = 255;
/// Longest language id (`python`, `c++`, `typescript`), as in content.
pub const LANGUAGE_BYTES_MAX: usize = 32;
/// Most languages one event may name.
pub const LANGUAGES_PER_EVENT_MAX: usize = 16;
/// Most problems and notes one answer lists; the count says how many more.
pub const PROBLEMS_LISTED_MAX: usize = 200;

/// The timetable limits of the configuration, in one value so that the
/// parsers take them explicitly (and tests can set them); built by
/// [`super::store::limits`], since this leaf may not import `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one file.
    pub events_per_file_max: u32,
    /// Most occurrences one file expands to.
    pub occurrences_per_file_max: u32,
    /// Most expected learners of one event.
    pub learners_per_event_max: u32,
    /// How far ahead of now recurrences are expanded, in days.
    pub horizon_days: u32,
    /// The regions an event may name.
    pub regions: Vec<String>,
}

impl Limits {
    /// The horizon in milliseconds.
    pub fn horizon_ms(&self) -> i64 {
        i64::from(self.horizon_days) * 86_400_000
    }
}

/// The two formats a timetable comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// RFC 5545, `text/calendar`.
    Icalendar,
    /// `text/csv` with the documented columns.
    Csv,
}

impl Format {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Icalendar => "icalendar",
            Self::Csv => "csv",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Icalendar, Self::Csv]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// Where in a file something is: a CSV line, or an iCalendar component
/// (and property).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Place {
    /// CSV: the 1-based line of the file (the header is line 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// iCalendar: the component, `VEVENT #3` (1-based, in file order),
    /// with its UID when it has one: `VEVENT #3 (UID maths-7a)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// iCalendar: the property (`DTSTART`, `RRULE`, `X-LYCEUM-REGION`);
    /// CSV: the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

impl Place {
    /// A CSV line, and a column if given.
    pub fn line(line: u64, column: Option<&str>) -> Self {
        Self {
            line: Some(line),
            component: None,
            property: column.map(str::to_owned),
        }
    }

    /// The same place, naming `property` (or column).
    #[must_use]
    pub fn at(&self, property: &str) -> Self {
        Self {
            property: Some(property.to_owned()),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(component) = &self.component {
            parts.push(component.clone());
        }
        if let Some(property) = &self.property {
            parts.push(property.clone());
        }
        if parts.is_empty() {
            f.write_str("file")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One problem in a file: a stable code, where, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// One of the timetable codes of `ErrorCode` (`unknown_time_zone`,
    /// `bad_recurrence`, ...).
    pub code: ErrorCode,
    /// Where it is.
    #[serde(flatten)]
    pub place: Place,
    /// Lowercase, for people.
    pub message: String,
}

impl Problem {
    /// A problem at `place`.
    pub fn new(code: ErrorCode, place: Place, message: impl Into<String>) -> Self {
        Self {
            code,
            place,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.place,
            self.message,
            self.code.as_str()
        )
    }
}

/// Why an import did less than the file says, without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoteCode {
    /// The file expands to more than `timetable_occurrences_per_file_max`
    /// occurrences: the expansion stopped there.
    OccurrencesCapped,
    /// A recurrence without `UNTIL` or `COUNT`: expanded up to
    /// `timetable_horizon_days` from now.
    NoEnd,
    /// An all-day event (a `DATE` start): not a session, skipped.
    AllDaySkipped,
    /// A cancelled event (`STATUS:CANCELLED`): skipped.
    CancelledSkipped,
    /// A changed single instance (`RECURRENCE-ID`): not supported yet,
    /// skipped; the series keeps that instance as its rule says.
    OverrideSkipped,
}

/// A note about one event or the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    /// What happened.
    pub code: NoteCode,
    /// Where.
    #[serde(flatten)]
    pub place: Place,
    /// For people.
    pub message: String,
}

/// What an event is explicitly given (or not) about where and who: the
/// `X-LYCEUM-*` properties or the CSV columns. What is absent is filled in
/// from the course, cohort or live class when the import resolves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audience {
    /// A region id.
    pub region: Option<String>,
    /// Language ids.
    pub languages: Option<Vec<String>>,
    /// Expected learners.
    pub learners: Option<u32>,
    /// A course id of the tenant.
    pub course: Option<String>,
    /// A cohort of the course: its id or its name.
    pub cohort: Option<String>,
}

/// One event as parsed and expanded, before its defaults are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The UID, or the CSV row's key: what re-imports match on.
    pub uid: String,
    /// Where it is in the file.
    pub place: Place,
    /// The title (`SUMMARY`, CSV `title`).
    pub title: String,
    /// The IANA time zone its times are in (`UTC` for UTC times).
    pub time_zone: String,
    /// The recurrence in RFC 5545 text (`DTSTART`, `RRULE`, `RDATE`,
    /// `EXDATE` lines), canonical: what tells a changed event apart.
    pub series: String,
    /// Length of each occurrence, ms.
    pub duration_ms: i64,
    /// The explicit values.
    pub audience: Audience,
    /// Start times (unix ms) of the occurrences from now to the horizon.
    pub starts_ms: Vec<i64>,
}

/// One stored event of a timetable, with its resolved values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimetableEvent {
    /// The UID or CSV key.
    pub uid: String,
    /// Title.
    pub title: String,
    /// IANA time zone of the event's times.
    pub time_zone: String,
    /// Region id whose edges host it.
    pub region: String,
    /// Language ids its learners are expected to run.
    pub languages: Vec<String>,
    /// Expected learners.
    pub learners: u32,
    /// The course, if the event names one.
    #[serde(default)]
    pub course_id: Option<String>,
    /// The cohort, if the event names one.
    #[serde(default)]
    pub cohort_id: Option<String>,
    /// Length of each occurrence, minutes (rounded up).
    pub duration_minutes: u32,
    /// Occurrences stored, from the import's now to its horizon.
    pub occurrences: u32,
    /// How this import changed it: `created`, `updated` or `unchanged`.
    pub change: Change,
    /// Where it was in the file: line, or component.
    #[serde(flatten)]
    pub place: Place,
}

/// What an import did to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A UID the timetable did not have.
    Created,
    /// A UID it had, with something changed: its occurrences are replaced.
    Updated,
    /// The same as before (its occurrences are expanded again from now).
    Unchanged,
}

/// The answer of `POST /api/v1/timetables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The timetable written (or, on a dry run, that would be; absent for
    /// a new one on a dry run).
    pub timetable_id: Option<String>,
    /// Its name.
    pub name: String,
    /// `icalendar` or `csv`.
    pub format: Format,
    /// Nothing was written (`?dry_run=true`).
    pub dry_run: bool,
    /// The events imported, in file order.
    pub events: Vec<TimetableEvent>,
    /// UIDs the timetable had that the file no longer has: removed with
    /// their occurrences.
    pub removed: Vec<String>,
    /// Occurrences stored in all.
    pub occurrences: u32,
    /// The expansion stopped at `timetable_occurrences_per_file_max`.
    pub capped: bool,
    /// The file's problems: the events they name were left out (only with
    /// `?partial=true` or on a dry run; otherwise they refuse the file).
    pub problems: Vec<Problem>,
    /// Problems past [`PROBLEMS_LISTED_MAX`], counted only.
    pub problems_unlisted: u32,
    /// Why less was imported than the file says, without an error.
    pub notes: Vec<Note>,
    /// The window occurrences were expanded over, RFC 3339 UTC.
    pub expanded_from: String,
    /// End of that window.
    pub expanded_to: String,
}

/// A timetable in `GET /api/v1/timetables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timetable {
    /// Server-chosen id (UUIDv7).
    pub id: String,
    /// Name: `?name=`, else the calendar's `X-WR-CALNAME`, else `timetable`.
    pub name: String,
    /// The format of its last import.
    pub format: Format,
    /// Events it holds.
    pub events: u32,
    /// Occurrences stored.
    pub occurrences: u32,
    /// Who imported it last.
    pub imported_by: String,
    /// Unix ms of the first import.
    pub created_at: i64,
    /// Unix ms of the last import.
    pub updated_at: i64,
}

/// One occurrence in `GET /api/v1/timetables/{id}/occurrences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Occurrence {
    /// The event's UID or CSV key.
    pub uid: String,
    /// The event's title.
    pub title: String,
    /// Start, RFC 3339 in UTC.
    pub starts_at: String,
    /// End, RFC 3339 in UTC.
    pub ends_at: String,
    /// The event's own time zone (IANA).
    pub time_zone: String,
    /// Start in that time zone, RFC 3339 with its offset.
    pub local_starts_at: String,
    /// Region id.
    pub region: String,
    /// Language ids.
    pub languages: Vec<String>,
    /// Expected learners.
    pub learners: u32,
}

/// The answer of `GET /api/v1/timetables/{id}/occurrences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Occurrences {
    /// The timetable.
    pub timetable_id: String,
    /// Window start asked for (RFC 3339 UTC).
    pub from: String,
    /// Window end asked for (RFC 3339 UTC).
    pub to: String,
    /// The occurrences starting in the window, by start time.
    pub occurrences: Vec<Occurrence>,
}

/// Checks a region id against the configured regions.
pub fn check_region(region: &str, limits: &Limits) -> Result<(), (ErrorCode, String)> {
    if limits.regions.iter().any(|r| r == region) {
        Ok(())
    } else {
        Err((
            ErrorCode::UnknownRegion,
            format!(
                "region {:?} is not one of {} (control_plane.timetable_regions)",
                region.chars().take(64).collect::<String>(),
                limits.regions.join(", ")
            ),
        ))
    }
}

/// Splits and checks a list of language ids (comma- or
/// semicolon-separated), sorted and without duplicates.
pub fn parse_languages(text: &str) -> Result<Vec<String>, (ErrorCode, String)> {
    let mut languages: Vec<String> = text
        .split([',', ';'])
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    languages.sort();
    languages.dedup();
    if languages.len() > LANGUAGES_PER_EVENT_MAX {
        return Err((
            ErrorCode::ValidationFailed,
            format!("more than {LANGUAGES_PER_EVENT_MAX} languages"),
        ));
    }
    for language in &languages {
        let ok = language.len() <= LANGUAGE_BYTES_MAX
            && language
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+#-_.".contains(c));
        if !ok {
            return Err((
                ErrorCode::ValidationFailed,
                format!(
                    "language {:?} must be 1 to {LANGUAGE_BYTES_MAX} bytes of a-z, 0-9 and +#-_.",
                    language.chars().take(40).collect::<String>()
                ),
            ));
        }
    }
    Ok(languages)
}

/// Parses an expected learner count: a whole number from 0 to the limit.
pub fn parse_learners(text: &str, limits: &Limits) -> Result<u32, (ErrorCode, String)> {
    let text = text.trim();
    let n: u64 = text.parse().map_err(|_| {
        (
            ErrorCode::ValidationFailed,
            format!(
                "learners {:?} is not a whole number",
                text.chars().take(40).collect::<String>()
            ),
        )
    })?;
    match u32::try_from(n) {
        Ok(n) if n <= limits.learners_per_event_max => Ok(n),
        _ => Err((
            ErrorCode::TooManyLearners,
            format!(
                "{n} learners is more than {} (control_plane.timetable_learners_per_event_max)",
                limits.learners_per_event_max
            ),
        )),
    }
}

/// Unix ms as RFC 3339 in UTC, to the second.
pub fn rfc3339_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Longest event, ms: a day, as a live class (`content::body`).
pub const DURATION_MS_MAX: i64 = 24 * 3_600_000;

/// What a parser hands to the import: the events it understood, the
/// problems it found, its notes, and whether the expansion was capped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The calendar's name (`X-WR-CALNAME`), if it has one.
    pub name: Option<String>,
    /// The events understood, in file order.
    pub drafts: Vec<EventDraft>,
    /// Problems; the events they name are not in `drafts`.
    pub problems: Vec<Problem>,
    /// UIDs of events with problems: a partial import keeps their stored
    /// versions instead of removing them.
    pub failed_uids: Vec<String>,
    /// Notes.
    pub notes: Vec<Note>,
    /// The occurrence budget ran out.
    pub capped: bool,
}
