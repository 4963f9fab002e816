//! iCalendar (RFC 5545) files into event drafts. The `icalendar` crate
//! parses the file and its dates; this file picks each `VEVENT`'s
//! properties, checks them, and names the component and property of
//! every problem (`VEVENT #3 (UID maths-7a)`, `DTSTART`). Recurrences are
//! built and expanded by [`super::expand`].
//!
//! Read: `UID`, `SUMMARY`, `DTSTART` and `DTEND` (a `TZID` of the IANA
//! database, or UTC; a floating time takes the calendar's
//! `X-WR-TIMEZONE`), `DURATION`, `RRULE`, `RDATE`, `EXDATE`, `STATUS`,
//! `RECURRENCE-ID`, and the extensions `X-LYCEUM-REGION`,
//! `X-LYCEUM-LANGUAGES`, `X-LYCEUM-LEARNERS`, `X-LYCEUM-COURSE` and
//! `X-LYCEUM-COHORT`.

use chrono::{DateTime, NaiveTime};
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime};
use rrule::Tz;

use super::expand::{self, Expander};
use super::model::{
    check_region, parse_languages, parse_learners, Audience, EventDraft, Limits, Note, NoteCode,
    Parsed, Place, Problem, TITLE_CHARS_MAX, UID_BYTES_MAX,
};
use crate::codes::ErrorCode;

type Found<T> = Result<T, (ErrorCode, String)>;

/// Parses `bytes` as an iCalendar file and expands its events from
/// `now_ms` to the horizon.
pub fn parse(bytes: &[u8], limits: &Limits, now_ms: i64) -> Parsed {
    let mut parsed = Parsed::default();
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let line = bytes[..err.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64
                + 1;
            parsed.problems.push(Problem::new(
                ErrorCode::BadEncoding,
                Place::line(line, None),
                "the file is not UTF-8 (iCalendar is UTF-8 by RFC 5545)",
            ));
            return parsed;
        }
    };
    let calendar: icalendar::Calendar = match text.parse() {
        Ok(calendar) => calendar,
        Err(err) => {
            parsed.problems.push(Problem::new(
                ErrorCode::BadCalendar,
                Place::default(),
                format!(
                    "not an iCalendar file: {}",
                    err.lines().take(3).collect::<Vec<_>>().join(" ")
                ),
            ));
            return parsed;
        }
    };
    parsed.name = calendar.get_name().map(|n| n.trim().to_owned());
    let default_zone = calendar.get_timezone().map(str::to_owned);
    let mut expander = Expander::new(now_ms, limits);
    let mut seen = std::collections::BTreeSet::new();
    let mut index = 0u32;
    for component in calendar.iter() {
        let CalendarComponent::Event(event) = component else {
            continue;
        };
        index += 1;
        let uid = event.get_uid().map(str::trim).filter(|u| !u.is_empty());
        let place = Place {
            line: None,
            component: Some(match uid {
                Some(uid) => format!(
                    "VEVENT #{index} (UID {})",
                    uid.chars().take(80).collect::<String>()
                ),
                None => format!("VEVENT #{index}"),
            }),
            property: None,
        };
        if index > limits.events_per_file_max {
            parsed.problems.push(Problem::new(
                ErrorCode::TooManyEvents,
                place,
                format!(
                    "more than {} events (control_plane.timetable_events_per_file_max); \
                     this one and the rest were not read",
                    limits.events_per_file_max
                ),
            ));
            break;
        }
        let mut problems = Vec::new();
        let result = read_event(
            event,
            &place,
            default_zone.as_deref(),
            limits,
            &mut problems,
            &mut parsed.notes,
        );
        let uid = match uid {
            Some(uid) if uid.len() <= UID_BYTES_MAX => uid.to_owned(),
            Some(_) => {
                problems.push(Problem::new(
                    ErrorCode::ValidationFailed,
                    place.at("UID"),
                    format!("the UID is longer than {UID_BYTES_MAX} bytes"),
                ));
                String::new()
            }
            None => {
                problems.push(Problem::new(
                    ErrorCode::MissingField,
                    place.at("UID"),
                    "an event needs a UID: re-imports match events by it",
                ));
                String::new()
            }
        };
        if !uid.is_empty()
            && event.property_value("RECURRENCE-ID").is_none()
            && !seen.insert(uid.clone())
        {
            problems.push(Problem::new(
                ErrorCode::ValidationFailed,
                place.at("UID"),
                "another VEVENT of the file has this UID",
            ));
        }
        match result {
            _ if !problems.is_empty() => {
                if !uid.is_empty() {
                    parsed.failed_uids.push(uid);
                }
                parsed.problems.append(&mut problems);
            }
            Some((mut draft, (start, rule, rdates, exdates))) => {
                draft.uid = uid;
                match expand::series(start, rule.as_deref(), rdates, exdates) {
                    Ok(series) => {
                        draft.series = series.set.to_string();
                        draft.starts_ms =
                            expander.expand(&series, draft.duration_ms, &place, &mut parsed.notes);
                        draft.place = place;
                        parsed.drafts.push(draft);
                    }
                    Err((code, message)) => {
                        parsed.failed_uids.push(draft.uid);
                        parsed
                            .problems
                            .push(Problem::new(code, place.at("RRULE"), message));
                    }
                }
            }
            None => {}
        }
    }
    parsed.capped = expander.capped;
    parsed
}

/// A start, a rule, extra dates and exceptions, for [`expand::series`].
type Recurrence = (
    DateTime<Tz>,
    Option<String>,
    Vec<DateTime<Tz>>,
    Vec<DateTime<Tz>>,
);

/// Reads one `VEVENT`; `None` when it has problems (pushed to `problems`)
/// or is skipped (a note says why).
fn read_event(
    event: &icalendar::Event,
    place: &Place,
    default_zone: Option<&str>,
    limits: &Limits,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<Note>,
) -> Option<(EventDraft, Recurrence)> {
    let mut fail = |property: &str, (code, message): (ErrorCode, String)| {
        problems.push(Problem::new(code, place.at(property), message));
    };
    if event
        .property_value("STATUS")
        .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"))
    {
        notes.push(Note {
            code: NoteCode::CancelledSkipped,
            place: place.at("STATUS"),
            message: "a cancelled event: skipped".into(),
        });
        return None;
    }
    if event.property_value("RECURRENCE-ID").is_some() {
        notes.push(Note {
            code: NoteCode::OverrideSkipped,
            place: place.at("RECURRENCE-ID"),
            message: "a changed single instance of a series is not supported yet: skipped, \
                      the series keeps that instance as its rule says"
                .into(),
        });
        return None;
    }
    let Some(start_property) = event.properties().get("DTSTART") else {
        fail(
            "DTSTART",
            (ErrorCode::MissingField, "an event needs a DTSTART".into()),
        );
        return None;
    };
    let start = match DatePerhapsTime::from_property(start_property) {
        Some(DatePerhapsTime::Date(_)) => {
            notes.push(Note {
                code: NoteCode::AllDaySkipped,
                place: place.at("DTSTART"),
                message: "an all-day event (a DATE start) is not a session: skipped".into(),
            });
            return None;
        }
        Some(DatePerhapsTime::DateTime(at)) => match instant(at, default_zone) {
            Ok(start) => start,
            Err(err) => {
                fail("DTSTART", err);
                return None;
            }
        },
        None => {
            fail(
                "DTSTART",
                (
                    ErrorCode::BadDate,
                    format!("{:?} is not an RFC 5545 date-time", start_property.value()),
                ),
            );
            return None;
        }
    };
    let zone = match start.timezone() {
        Tz::Tz(zone) => zone,
        Tz::Local(_) => chrono_tz::UTC,
    };
    let duration_ms = match (
        event.properties().get("DTEND"),
        event.property_value("DURATION"),
    ) {
        (Some(end), _) => match DatePerhapsTime::from_property(end) {
            Some(DatePerhapsTime::DateTime(at)) => match instant(at, default_zone) {
                Ok(end) => Some((end.timestamp_millis() - start.timestamp_millis(), "DTEND")),
                Err(err) => {
                    fail("DTEND", err);
                    None
                }
            },
            _ => {
                fail(
                    "DTEND",
                    (
                        ErrorCode::BadDate,
                        format!("{:?} is not an RFC 5545 date-time", end.value()),
                    ),
                );
                None
            }
        },
        (None, Some(duration)) => match expand::duration_ms(duration) {
            Ok(ms) => Some((ms, "DURATION")),
            Err(err) => {
                fail("DURATION", err);
                None
            }
        },
        (None, None) => {
            fail(
                "DTEND",
                (
                    ErrorCode::MissingField,
                    "an event needs a DTEND or a DURATION".into(),
                ),
            );
            None
        }
    };
    let duration_ms = duration_ms.and_then(|(ms, property)| {
        expand::event_length_ms(ms)
            .map_err(|err| fail(property, err))
            .ok()
    });
    let mut dates = |key: &str| -> Vec<DateTime<Tz>> {
        let mut out = Vec::new();
        for property in event.multi_properties().get(key).into_iter().flatten() {
            for value in property.value().split(',') {
                let mut single = icalendar::Property::new(key, value.trim());
                for (name, parameter) in property.params() {
                    single.add_parameter(name, parameter.value());
                }
                let at = match DatePerhapsTime::from_property(&single) {
                    Some(DatePerhapsTime::DateTime(at)) => instant(at, default_zone),
                    Some(DatePerhapsTime::Date(day)) => {
                        let time: NaiveTime = start.with_timezone(&Tz::Tz(zone)).time();
                        expand::local(zone, day.and_time(time))
                    }
                    None => Err((
                        ErrorCode::BadRecurrence,
                        format!(
                            "{value:?} is not an RFC 5545 date-time (periods are not supported)"
                        ),
                    )),
                };
                match at {
                    Ok(at) => out.push(at),
                    Err(err) => problems.push(Problem::new(err.0, place.at(key), err.1)),
                }
            }
        }
        out
    };
    let rdates = dates("RDATE");
    let exdates = dates("EXDATE");
    let mut fail = |property: &str, (code, message): (ErrorCode, String)| {
        problems.push(Problem::new(code, place.at(property), message));
    };
    let mut audience = Audience::default();
    if let Some(region) = event.property_value("X-LYCEUM-REGION").map(str::trim) {
        match check_region(region, limits) {
            Ok(()) => audience.region = Some(region.to_owned()),
            Err(err) => fail("X-LYCEUM-REGION", err),
        }
    }
    if let Some(languages) = event.property_value("X-LYCEUM-LANGUAGES") {
        match parse_languages(languages) {
            Ok(languages) => audience.languages = Some(languages),
            Err(err) => fail("X-LYCEUM-LANGUAGES", err),
        }
    }
    if let Some(learners) = event.property_value("X-LYCEUM-LEARNERS") {
        match parse_learners(learners, limits) {
            Ok(learners) => audience.learners = Some(learners),
            Err(err) => fail("X-LYCEUM-LEARNERS", err),
        }
    }
    audience.course = event
        .property_value("X-LYCEUM-COURSE")
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    audience.cohort = event
        .property_value("X-LYCEUM-COHORT")
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let duration_ms = duration_ms?;
    if !problems.is_empty() {
        return None;
    }
    let title: String = event
        .get_summary()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("(untitled)")
        .chars()
        .take(TITLE_CHARS_MAX)
        .collect();
    let draft = EventDraft {
        uid: String::new(),
        place: place.clone(),
        title,
        time_zone: zone.name().to_owned(),
        series: String::new(),
        duration_ms,
        audience,
        starts_ms: Vec::new(),
    };
    let rule = event.property_value("RRULE").map(str::to_owned);
    Some((draft, (start, rule, rdates, exdates)))
}

/// A parsed date-time as an instant in its zone: UTC, a `TZID` of the
/// IANA database, or a floating time in the calendar's `X-WR-TIMEZONE`.
fn instant(at: CalendarDateTime, default_zone: Option<&str>) -> Found<DateTime<Tz>> {
    match at {
        CalendarDateTime::Utc(at) => Ok(expand::utc_in(chrono_tz::UTC, at)),
        CalendarDateTime::WithTimezone { date_time, tzid } => {
            expand::local(expand::zone(&tzid)?, date_time)
        }
        CalendarDateTime::Floating(date_time) => match default_zone {
            Some(name) => expand::local(expand::zone(name)?, date_time),
            None => Err((
                ErrorCode::MissingField,
                "a floating time needs a TZID (or the calendar's X-WR-TIMEZONE)".into(),
            )),
        },
    }
}
