//! CSV timetables into event drafts. The `csv` crate reads the records
//! (quoting, line numbers); this file maps the documented columns, checks
//! each value and names the line and column of every problem. A header is
//! required; column names are matched without case, in any order:
//!
//! | column | |
//! |---|---|
//! | `uid` | optional stable key; without it the key is derived from title, start, time zone, course and cohort |
//! | `title` | required |
//! | `start` | required: `2031-09-01 09:00` (or `T`, seconds optional) in `time_zone`, or RFC 3339 with an offset |
//! | `end` or `duration` | one required: a time as `start`, or ISO 8601 (`PT1H30M`) or whole minutes |
//! | `time_zone` | IANA name; may be empty only when `start` carries an offset (then `UTC`) |
//! | `region`, `languages`, `learners` | as `X-LYCEUM-REGION`, `X-LYCEUM-LANGUAGES`, `X-LYCEUM-LEARNERS` |
//! | `course`, `cohort` | a course id; a cohort id or name (of the course) |
//! | `recurrence` | an RFC 5545 `RRULE` value (`FREQ=WEEKLY;COUNT=10`) |
//! | `exceptions` | start times (as `start`) the recurrence skips, separated by `;` |
//!
//! Lists inside a cell (`languages`, `exceptions`) are separated by `;` or
//! `,` (quote the cell for commas).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime};
use rrule::Tz;

use super::expand::{self, Expander};
use super::model::{
    check_region, parse_languages, parse_learners, Audience, EventDraft, Limits, Parsed, Place,
    Problem, TITLE_CHARS_MAX, UID_BYTES_MAX,
};
use crate::codes::ErrorCode;

/// Every column this reader knows.
pub const COLUMNS: [&str; 13] = [
    "uid",
    "title",
    "start",
    "end",
    "duration",
    "time_zone",
    "region",
    "languages",
    "learners",
    "course",
    "cohort",
    "recurrence",
    "exceptions",
];

type Found<T> = Result<T, (ErrorCode, String)>;

/// Parses `bytes` as a CSV timetable and expands its rows from `now_ms` to
/// the horizon.
pub fn parse(bytes: &[u8], limits: &Limits, now_ms: i64) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let header = match records.next() {
        Some(Ok(header)) => header,
        Some(Err(err)) => {
            parsed.problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                Place::line(1, None),
                format!("the header does not read as CSV: {err}"),
            ));
            return parsed;
        }
        None => {
            parsed.problems.push(Problem::new(
                ErrorCode::MissingField,
                Place::line(1, None),
                "the file is empty: a header line is required",
            ));
            return parsed;
        }
    };
    let names: Vec<String> = match header
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(|f| f.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        })
        .collect::<Result<_, _>>()
    {
        Ok(names) => names,
        Err(_) => {
            parsed.problems.push(Problem::new(
                ErrorCode::BadEncoding,
                Place::line(1, None),
                "the header is not UTF-8: save the file as UTF-8",
            ));
            return parsed;
        }
    };
    if names.len() == 1 {
        if let Some(found) = [';', '\t', '|'].into_iter().find(|d| names[0].contains(*d)) {
            parsed.problems.push(Problem::new(
                ErrorCode::BadDelimiter,
                Place::line(1, None),
                format!(
                    "the header is one column holding {found:?}: the file looks separated by \
                     {found:?}, and timetables are comma-separated"
                ),
            ));
            return parsed;
        }
    }
    for name in &names {
        if !COLUMNS.contains(&name.as_str()) {
            parsed.problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                Place::line(1, Some(name)),
                format!(
                    "unknown column {name:?}; the columns are {}",
                    COLUMNS.join(", ")
                ),
            ));
        }
    }
    for required in ["title", "start"] {
        if !names.iter().any(|n| n == required) {
            parsed.problems.push(Problem::new(
                ErrorCode::MissingField,
                Place::line(1, Some(required)),
                format!("the header has no {required:?} column"),
            ));
        }
    }
    if !names.iter().any(|n| n == "end" || n == "duration") {
        parsed.problems.push(Problem::new(
            ErrorCode::MissingField,
            Place::line(1, Some("end")),
            "the header needs an \"end\" or a \"duration\" column",
        ));
    }
    if !parsed.problems.is_empty() {
        return parsed;
    }
    let mut expander = Expander::new(now_ms, limits);
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = 0u32;
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                parsed.problems.push(Problem::new(
                    ErrorCode::ValidationFailed,
                    Place::line(line, None),
                    format!("the line does not read as CSV: {err}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        rows += 1;
        if rows > limits.events_per_file_max {
            parsed.problems.push(Problem::new(
                ErrorCode::TooManyEvents,
                Place::line(line, None),
                format!(
                    "more than {} rows (control_plane.timetable_events_per_file_max); this one \
                     and the rest were not read",
                    limits.events_per_file_max
                ),
            ));
            break;
        }
        let place = Place::line(line, None);
        if record.len() != names.len() {
            parsed.problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                place,
                format!(
                    "the line has {} fields, the header {} (a wrong delimiter, or an unquoted \
                     comma in a cell)",
                    record.len(),
                    names.len()
                ),
            ));
            continue;
        }
        let mut row = BTreeMap::new();
        let mut bad_encoding = None;
        for (name, field) in names.iter().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(value) => {
                    let value = value.trim();
                    if !value.is_empty() {
                        row.insert(name.as_str(), value.to_owned());
                    }
                }
                Err(_) => bad_encoding = bad_encoding.or(Some(name.clone())),
            }
        }
        if let Some(column) = bad_encoding {
            parsed.problems.push(Problem::new(
                ErrorCode::BadEncoding,
                Place::line(line, Some(&column)),
                "the cell is not UTF-8: save the file as UTF-8",
            ));
            continue;
        }
        let mut problems = Vec::new();
        let read = read_row(&row, &place, limits, &mut problems);
        let uid = row.get("uid").cloned().unwrap_or_else(|| derived_key(&row));
        if uid.len() > UID_BYTES_MAX {
            problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                place.at("uid"),
                format!("the uid is longer than {UID_BYTES_MAX} bytes"),
            ));
        } else if !seen.insert(uid.clone()) {
            problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                place.at("uid"),
                "another line of the file has this uid (or the same title, start, time zone, \
                 course and cohort)",
            ));
        }
        match read {
            Some((mut draft, series)) if problems.is_empty() => {
                draft.uid = uid;
                draft.series = series.set.to_string();
                draft.starts_ms =
                    expander.expand(&series, draft.duration_ms, &place, &mut parsed.notes);
                parsed.drafts.push(draft);
            }
            _ => {
                parsed.failed_uids.push(uid);
                parsed.problems.append(&mut problems);
            }
        }
    }
    parsed.capped = expander.capped;
    parsed
}

/// The key of a row without a `uid`: a digest of what identifies the
/// session, so the same row imported again is the same event.
fn derived_key(row: &BTreeMap<&str, String>) -> String {
    let mut text = String::new();
    for column in ["title", "start", "time_zone", "course", "cohort"] {
        text.push_str(row.get(column).map_or("", String::as_str));
        text.push('\u{1f}');
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("csv-{hex}")
}

/// A time of a cell: RFC 3339 with an offset, or a wall-clock time in
/// `zone`.
fn time(text: &str, zone: chrono_tz::Tz) -> Found<DateTime<Tz>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Tz::Tz(zone)));
    }
    for format in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return expand::local(zone, naive);
        }
    }
    Err((
        ErrorCode::BadDate,
        format!(
            "{:?} is not a time like 2031-09-01 09:00 or 2031-09-01T09:00:00+02:00",
            text.chars().take(40).collect::<String>()
        ),
    ))
}

/// Reads one row; `None` (with `problems`) when something is wrong.
fn read_row(
    row: &BTreeMap<&str, String>,
    place: &Place,
    limits: &Limits,
    problems: &mut Vec<Problem>,
) -> Option<(EventDraft, expand::Series)> {
    let mut fail = |column: &str, (code, message): (ErrorCode, String)| {
        problems.push(Problem::new(code, place.at(column), message));
    };
    let get = |column: &str| row.get(column).map(String::as_str);
    let Some(title) = get("title") else {
        fail(
            "title",
            (ErrorCode::MissingField, "the title is empty".into()),
        );
        return None;
    };
    let Some(start_text) = get("start") else {
        fail(
            "start",
            (ErrorCode::MissingField, "the start is empty".into()),
        );
        return None;
    };
    let zone = match get("time_zone") {
        Some(name) => match expand::zone(name) {
            Ok(zone) => zone,
            Err(err) => {
                fail("time_zone", err);
                return None;
            }
        },
        None if DateTime::parse_from_rfc3339(start_text).is_ok() => chrono_tz::UTC,
        None => {
            fail(
                "time_zone",
                (
                    ErrorCode::MissingField,
                    "the time zone is empty and the start has no offset".into(),
                ),
            );
            return None;
        }
    };
    let start = match time(start_text, zone) {
        Ok(start) => start,
        Err(err) => {
            fail("start", err);
            return None;
        }
    };
    let duration_ms = match (get("end"), get("duration")) {
        (Some(end), _) => time(end, zone)
            .map(|end| (end.timestamp_millis() - start.timestamp_millis(), "end"))
            .map_err(|err| fail("end", err))
            .ok(),
        (None, Some(duration)) => match duration.parse::<u32>() {
            Ok(minutes) => Some((i64::from(minutes) * 60_000, "duration")),
            Err(_) => expand::duration_ms(duration)
                .map(|ms| (ms, "duration"))
                .map_err(|err| fail("duration", err))
                .ok(),
        },
        (None, None) => {
            fail(
                "end",
                (
                    ErrorCode::MissingField,
                    "an end or a duration is needed".into(),
                ),
            );
            None
        }
    };
    let duration_ms = duration_ms.and_then(|(ms, column)| {
        expand::event_length_ms(ms)
            .map_err(|err| fail(column, err))
            .ok()
    });
    let mut exdates = Vec::new();
    for text in get("exceptions")
        .unwrap_or("")
        .split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match time(text, zone) {
            Ok(at) => exdates.push(at),
            Err((_, message)) => fail("exceptions", (ErrorCode::BadRecurrence, message)),
        }
    }
    let series = match expand::series(start, get("recurrence"), Vec::new(), exdates) {
        Ok(series) => Some(series),
        Err(err) => {
            fail("recurrence", err);
            None
        }
    };
    let mut audience = Audience::default();
    if let Some(region) = get("region") {
        match check_region(region, limits) {
            Ok(()) => audience.region = Some(region.to_owned()),
            Err(err) => fail("region", err),
        }
    }
    if let Some(languages) = get("languages") {
        match parse_languages(languages) {
            Ok(languages) => audience.languages = Some(languages),
            Err(err) => fail("languages", err),
        }
    }
    if let Some(learners) = get("learners") {
        match parse_learners(learners, limits) {
            Ok(learners) => audience.learners = Some(learners),
            Err(err) => fail("learners", err),
        }
    }
    audience.course = get("course").map(str::to_owned);
    audience.cohort = get("cohort").map(str::to_owned);
    let (duration_ms, series) = (duration_ms?, series?);
    if !problems.is_empty() {
        return None;
    }
    let draft = EventDraft {
        uid: String::new(),
        place: place.clone(),
        title: title.chars().take(TITLE_CHARS_MAX).collect(),
        time_zone: zone.name().to_owned(),
        series: String::new(),
        duration_ms,
        audience,
        starts_ms: Vec::new(),
    };
    Some((draft, series))
}
