//! Recurrences into occurrences, with bounds. Both parsers hand over an
//! event's start (a time in its zone), its rule, its extra dates and its
//! exceptions; [`series`] builds the `rrule` set (the `rrule` crate does
//! the RFC 5545 arithmetic, `chrono-tz` the zones) and [`Expander`] walks
//! it from the start up to the horizon, with one budget of steps for the
//! whole file, so a rule without an end or a file of 100,000 occurrences
//! stops at a named limit instead of running on.
//!
//! Pure: no clock (the caller says what now is), no SQL.

use chrono::{DateTime, NaiveDateTime, TimeZone as _};
use rrule::{RRule, RRuleSet, Tz, Unvalidated};

use super::model::{Limits, Note, NoteCode, Place, DURATION_MS_MAX};
use crate::codes::ErrorCode;

/// A zone of the IANA database, by name.
///
/// # Errors
/// `unknown_time_zone` with a message for people.
pub fn zone(name: &str) -> Result<chrono_tz::Tz, (ErrorCode, String)> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        (
            ErrorCode::UnknownTimeZone,
            format!(
                "time zone {:?} is not in the IANA database (e.g. Europe/Paris)",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// A wall-clock time in `zone`: a time in a DST gap is refused, an
/// ambiguous one (the hour repeated in autumn) is its first instance.
///
/// # Errors
/// `bad_date` for a time that does not exist in the zone.
pub fn local(
    zone: chrono_tz::Tz,
    naive: NaiveDateTime,
) -> Result<DateTime<Tz>, (ErrorCode, String)> {
    Tz::Tz(zone)
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| {
            (
                ErrorCode::BadDate,
                format!(
                    "{naive} does not exist in {} (a daylight-saving gap)",
                    zone.name()
                ),
            )
        })
}

/// An instant as a time of `zone`.
pub fn utc_in(zone: chrono_tz::Tz, instant: DateTime<chrono::Utc>) -> DateTime<Tz> {
    instant.with_timezone(&Tz::Tz(zone))
}

/// A recurrence set ready to expand, and whether its rule ends.
pub struct Series {
    /// The `rrule` set.
    pub set: RRuleSet,
    /// `false` for a rule with neither `UNTIL` nor `COUNT`.
    pub ends: bool,
}

/// Builds the set of `start`, an optional `RRULE` value, extra dates and
/// exceptions. Without a rule the set is the start and the extra dates.
///
/// # Errors
/// `bad_recurrence` naming what `rrule` refused.
pub fn series(
    start: DateTime<Tz>,
    rule: Option<&str>,
    rdates: Vec<DateTime<Tz>>,
    exdates: Vec<DateTime<Tz>>,
) -> Result<Series, (ErrorCode, String)> {
    let mut set = RRuleSet::new(start);
    let mut ends = true;
    match rule.map(str::trim).filter(|r| !r.is_empty()) {
        Some(text) => {
            let text = text.strip_prefix("RRULE:").unwrap_or(text);
            let rule: RRule<Unvalidated> = text
                .parse()
                .map_err(|err| (ErrorCode::BadRecurrence, format!("{err}")))?;
            ends = rule.get_count().is_some() || rule.get_until().is_some();
            let rule = rule
                .validate(start)
                .map_err(|err| (ErrorCode::BadRecurrence, format!("{err}")))?;
            set = set.rrule(rule);
        }
        None => set = set.rdate(start),
    }
    for rdate in rdates {
        set = set.rdate(rdate);
    }
    Ok(Series {
        set: set.set_exdates(exdates),
        ends,
    })
}

/// Walks series over one window with one budget for the whole file.
pub struct Expander {
    from_ms: i64,
    to_ms: i64,
    steps_left: u32,
    limit: u32,
    /// Set once the budget ran out.
    pub capped: bool,
}

impl Expander {
    /// Occurrences that end after `now_ms` and start before the horizon.
    pub fn new(now_ms: i64, limits: &Limits) -> Self {
        Self {
            from_ms: now_ms,
            to_ms: now_ms.saturating_add(limits.horizon_ms()),
            steps_left: limits.occurrences_per_file_max,
            limit: limits.occurrences_per_file_max,
            capped: false,
        }
    }

    /// The window, unix ms.
    pub fn window(&self) -> (i64, i64) {
        (self.from_ms, self.to_ms)
    }

    /// The start times (unix ms) of `series`' occurrences in the window.
    /// Every step from the series' start costs one from the file's budget,
    /// occurrences before now too, so the walk is bounded even for a rule
    /// that began long ago; `notes` says when the budget ran out or a
    /// rule without an end stopped at the horizon.
    pub fn expand(
        &mut self,
        series: &Series,
        duration_ms: i64,
        place: &Place,
        notes: &mut Vec<Note>,
    ) -> Vec<i64> {
        let mut starts = Vec::new();
        if self.capped {
            return starts;
        }
        let mut reached_horizon = false;
        for occurrence in &series.set {
            let start = occurrence.timestamp_millis();
            if start >= self.to_ms {
                reached_horizon = true;
                break;
            }
            if self.steps_left == 0 {
                self.capped = true;
                notes.push(Note {
                    code: NoteCode::OccurrencesCapped,
                    place: place.clone(),
                    message: format!(
                        "the file expands to more than {} occurrences \
                         (control_plane.timetable_occurrences_per_file_max, counted from each \
                         event's start): this event and the ones after it were cut here",
                        self.limit
                    ),
                });
                return starts;
            }
            self.steps_left -= 1;
            if start.saturating_add(duration_ms) > self.from_ms {
                starts.push(start);
            }
        }
        if !series.ends && reached_horizon {
            notes.push(Note {
                code: NoteCode::NoEnd,
                place: place.clone(),
                message: format!(
                    "the recurrence has no UNTIL or COUNT: expanded up to {} \
                     (control_plane.timetable_horizon_days from now)",
                    super::model::rfc3339_utc(self.to_ms)
                ),
            });
        }
        starts
    }
}

/// An event's length in ms, checked: it must end after it starts and
/// within a day ([`DURATION_MS_MAX`]). One rule for iCalendar and CSV.
///
/// # Errors
/// `bad_date` otherwise.
pub fn event_length_ms(ms: i64) -> Result<i64, (ErrorCode, String)> {
    if ms > 0 && ms <= DURATION_MS_MAX {
        Ok(ms)
    } else {
        Err((
            ErrorCode::BadDate,
            format!(
                "the event lasts {} minutes: it must end after it starts, within a day",
                ms / 60_000
            ),
        ))
    }
}

/// An ISO 8601 / RFC 5545 duration (`PT1H30M`, `P1W`) in ms, via the
/// `iso8601` crate.
///
/// # Errors
/// `bad_date` when it does not parse or is not positive.
pub fn duration_ms(text: &str) -> Result<i64, (ErrorCode, String)> {
    let text = text.trim();
    let parsed = iso8601::duration(text.strip_prefix('+').unwrap_or(text)).map_err(|_| {
        (
            ErrorCode::BadDate,
            format!(
                "duration {:?} is not ISO 8601 (PT1H30M)",
                text.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let std: std::time::Duration = parsed.into();
    match i64::try_from(std.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err((
            ErrorCode::BadDate,
            format!("duration {text:?} must be positive"),
        )),
    }
}
