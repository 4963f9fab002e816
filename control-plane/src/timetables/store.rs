//! Timetables in the database: the import (defaults resolved from the
//! course, cohort and live class; one transaction; its domain event),
//! the reads and the delete. Every query takes the tenant id.
//!
//! *Idempotence.* Events are keyed by (tenant, UID), so the timetable a
//! file updates is the one that holds its UIDs; a file whose UIDs are in
//! none is a new timetable, one whose UIDs are in two is refused. The file
//! is the whole timetable: a UID it no longer has is removed. Each event
//! carries a fingerprint of what it resolved to; the same fingerprint is
//! `unchanged`, another `updated`. The occurrences of every event in the
//! file are expanded again from the import's now, and replace its old ones.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row as _};

use super::calendar;
use super::csv_rows;
use super::error::TimetableError;
use super::model::{
    check_region, rfc3339_utc, Change, EventDraft, Format, ImportReport, Limits, Occurrence,
    Occurrences, Parsed, Place, Problem, Timetable, TimetableEvent, PROBLEMS_LISTED_MAX,
};
use crate::codes::ErrorCode;
use crate::config::ControlPlaneConfig;
use crate::content::body::{Question, UnitBody, UnitKind};
use crate::db::Db;
use crate::events::{self, EventKind, NewEvent};

/// UIDs per `IN (...)` list: far below SQLite's 32,766 parameters.
const UIDS_PER_STATEMENT: usize = 500;
/// Occurrences per multi-row insert: 5 parameters each.
const OCCURRENCES_PER_STATEMENT: usize = 1_000;
const _: () = assert!(OCCURRENCES_PER_STATEMENT * 5 < 32_766);

/// The timetable limits of `config`.
pub fn limits(config: &ControlPlaneConfig) -> Limits {
    Limits {
        events_per_file_max: config.timetable_events_per_file_max,
        occurrences_per_file_max: config.timetable_occurrences_per_file_max,
        learners_per_event_max: config.timetable_learners_per_event_max,
        horizon_days: config.timetable_horizon_days,
        regions: config.timetable_regions.clone(),
    }
}

/// One import, as the route hands it over.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The caller's tenant.
    pub tenant: String,
    /// The caller.
    pub user: String,
    /// The body's format (from its media type).
    pub format: Format,
    /// The body.
    pub bytes: Vec<u8>,
    /// `?name=`.
    pub name: Option<String>,
    /// `?dry_run=true`: write nothing.
    pub dry_run: bool,
    /// `?partial=true`: import the valid events of a file with problems.
    pub partial: bool,
    /// The control plane's clock.
    pub now_ms: i64,
}

/// What [`import`] did.
#[derive(Debug, Clone)]
pub enum Imported {
    /// A new timetable (201).
    Created(ImportReport),
    /// An existing one re-imported, or a dry run (200).
    Existing(ImportReport),
}

/// An event with its defaults resolved.
struct Resolved {
    draft: EventDraft,
    region: String,
    languages: Vec<String>,
    learners: u32,
    course_id: Option<String>,
    cohort_id: Option<String>,
    fingerprint: String,
}

/// Imports a timetable file (see the module doc).
///
/// # Errors
/// [`TimetableError::Invalid`] with every problem when the file has some
/// and neither `partial` nor `dry_run` is set; `Conflict` when its UIDs
/// are in two timetables; database failures. Cancel safety: one
/// transaction, committed last.
pub async fn import(
    db: &Db,
    limits: &Limits,
    request: ImportRequest,
) -> Result<Imported, TimetableError> {
    let (format, now_ms) = (request.format, request.now_ms);
    let parse_limits = limits.clone();
    let bytes = request.bytes;
    // Parsing and expansion are CPU work bounded by the limits, but can
    // take milliseconds: off the async workers.
    let mut parsed: Parsed = tokio::task::spawn_blocking(move || match format {
        Format::Icalendar => calendar::parse(&bytes, &parse_limits, now_ms),
        Format::Csv => csv_rows::parse(&bytes, &parse_limits, now_ms),
    })
    .await
    .map_err(|err| TimetableError::Corrupt(format!("the parser failed: {err}")))?;
    let (from_ms, to_ms) = (now_ms, now_ms.saturating_add(limits.horizon_ms()));

    let mut tx = db.begin_write().await?;
    let mut resolved = Vec::new();
    for draft in std::mem::take(&mut parsed.drafts) {
        match resolve(&mut tx, &request.tenant, format, limits, draft).await? {
            Ok(event) => resolved.push(event),
            Err((uid, problem)) => {
                parsed.failed_uids.push(uid);
                parsed.problems.push(problem);
            }
        }
    }
    if resolved.is_empty() && parsed.problems.is_empty() {
        parsed.problems.push(Problem::new(
            ErrorCode::MissingField,
            Place::default(),
            "the file has no events to import",
        ));
    }
    if !parsed.problems.is_empty() && !request.partial && !request.dry_run {
        return Err(TimetableError::Invalid(parsed.problems));
    }

    // Which timetable the file updates.
    let uids: Vec<&str> = resolved
        .iter()
        .map(|e| e.draft.uid.as_str())
        .chain(parsed.failed_uids.iter().map(String::as_str))
        .collect();
    let mut owners = BTreeSet::new();
    for chunk in uids.chunks(UIDS_PER_STATEMENT) {
        let list = placeholders(2, chunk.len());
        let sql = format!(
            "SELECT DISTINCT timetable_id FROM timetable_events WHERE tenant_id = $1 AND uid IN ({list})"
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(&request.tenant);
        for uid in chunk {
            query = query.bind(*uid);
        }
        owners.extend(query.fetch_all(&mut *tx).await?);
    }
    if owners.len() > 1 {
        return Err(TimetableError::Conflict(format!(
            "the file's events belong to {} timetables ({}): delete all but one first",
            owners.len(),
            owners.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let existing_id = owners.into_iter().next();
    let mut before = BTreeMap::new();
    if let Some(id) = &existing_id {
        let rows = sqlx::query(
            "SELECT uid, fingerprint FROM timetable_events WHERE tenant_id = $1 AND timetable_id = $2",
        )
        .bind(&request.tenant)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            before.insert(
                row.try_get::<String, _>("uid")?,
                row.try_get::<String, _>("fingerprint")?,
            );
        }
    }
    let kept: BTreeSet<&str> = uids.iter().copied().collect();
    let removed: Vec<String> = before
        .keys()
        .filter(|uid| !kept.contains(uid.as_str()))
        .cloned()
        .collect();
    let name = request
        .name
        .clone()
        .or(parsed.name.clone())
        .map(|n| {
            n.chars()
                .take(super::model::TITLE_CHARS_MAX)
                .collect::<String>()
        })
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "timetable".to_owned());

    let events: Vec<TimetableEvent> = resolved
        .iter()
        .map(|e| TimetableEvent {
            uid: e.draft.uid.clone(),
            title: e.draft.title.clone(),
            time_zone: e.draft.time_zone.clone(),
            region: e.region.clone(),
            languages: e.languages.clone(),
            learners: e.learners,
            course_id: e.course_id.clone(),
            cohort_id: e.cohort_id.clone(),
            duration_minutes: u32::try_from((e.draft.duration_ms + 59_999) / 60_000)
                .unwrap_or(u32::MAX),
            occurrences: u32::try_from(e.draft.starts_ms.len()).unwrap_or(u32::MAX),
            change: match before.get(&e.draft.uid) {
                None => Change::Created,
                Some(f) if *f == e.fingerprint => Change::Unchanged,
                Some(_) => Change::Updated,
            },
            place: e.draft.place.clone(),
        })
        .collect();
    let occurrences: u32 = events.iter().map(|e| e.occurrences).sum();
    let problems_unlisted =
        u32::try_from(parsed.problems.len().saturating_sub(PROBLEMS_LISTED_MAX))
            .unwrap_or(u32::MAX);
    parsed.problems.truncate(PROBLEMS_LISTED_MAX);
    parsed.notes.truncate(PROBLEMS_LISTED_MAX);
    let mut report = ImportReport {
        timetable_id: existing_id.clone(),
        name,
        format,
        dry_run: request.dry_run,
        events,
        removed,
        occurrences,
        capped: parsed.capped,
        problems: parsed.problems,
        problems_unlisted,
        notes: parsed.notes,
        expanded_from: rfc3339_utc(from_ms),
        expanded_to: rfc3339_utc(to_ms),
    };
    if request.dry_run {
        tx.rollback().await?;
        return Ok(Imported::Existing(report));
    }

    let id = existing_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if existing_id.is_none() {
        sqlx::query(
            "INSERT INTO timetables (id, tenant_id, name, format, imported_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(&request.tenant)
        .bind(&report.name)
        .bind(format.as_str())
        .bind(&request.user)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    for uid in resolved
        .iter()
        .map(|e| &e.draft.uid)
        .chain(report.removed.iter())
    {
        for table in ["timetable_occurrences", "timetable_events"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND uid = $2"
            ))
            .bind(&request.tenant)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        }
    }
    for event in &resolved {
        insert_event(&mut tx, &request.tenant, &id, event).await?;
    }
    let (events_total, occurrences_total) = counts(&mut tx, &request.tenant, &id).await?;
    sqlx::query(
        "UPDATE timetables SET name = $1, format = $2, imported_by = $3, updated_at = $4, \
         events = $5, occurrences = $6 WHERE tenant_id = $7 AND id = $8",
    )
    .bind(&report.name)
    .bind(format.as_str())
    .bind(&request.user)
    .bind(now_ms)
    .bind(events_total)
    .bind(occurrences_total)
    .bind(&request.tenant)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    let change_count = |change: Change| report.events.iter().filter(|e| e.change == change).count();
    events::append(
        &mut tx,
        &[NewEvent {
            kind: EventKind::TimetableImported,
            tenant_id: request.tenant.clone(),
            aggregate_id: id.clone(),
            payload: serde_json::json!({
                "timetable_id": id,
                "events": events_total,
                "occurrences": occurrences_total,
                "created": change_count(Change::Created),
                "updated": change_count(Change::Updated),
                "removed": report.removed.len(),
                "from": report.expanded_from,
                "to": report.expanded_to,
            }),
        }],
        now_ms,
    )
    .await?;
    tx.commit().await?;
    report.timetable_id = Some(id);
    Ok(if existing_id.is_some() {
        Imported::Existing(report)
    } else {
        Imported::Created(report)
    })
}

/// `$first, $first+1, ...` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn counts(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<(i64, i64), TimetableError> {
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timetable_events WHERE tenant_id = $1 AND timetable_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let occurrences: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timetable_occurrences WHERE tenant_id = $1 AND timetable_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((events, occurrences))
}

async fn insert_event(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    event: &Resolved,
) -> Result<(), TimetableError> {
    let draft = &event.draft;
    sqlx::query(
        "INSERT INTO timetable_events (tenant_id, uid, timetable_id, title, time_zone, region, \
         languages, learners, course_id, cohort_id, duration_ms, series, fingerprint, place) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(tenant)
    .bind(&draft.uid)
    .bind(id)
    .bind(&draft.title)
    .bind(&draft.time_zone)
    .bind(&event.region)
    .bind(event.languages.join(","))
    .bind(i64::from(event.learners))
    .bind(event.course_id.as_deref())
    .bind(event.cohort_id.as_deref())
    .bind(draft.duration_ms)
    .bind(&draft.series)
    .bind(&event.fingerprint)
    .bind(draft.place.to_string())
    .execute(&mut *conn)
    .await
    .map_err(|err| match err {
        // PostgreSQL: a concurrent import of the same new UIDs committed
        // first (SQLite's write lock serialises imports).
        sqlx::Error::Database(db) if db.is_unique_violation() => TimetableError::Conflict(format!(
            "another import of event {} committed first: import again to update it",
            draft.uid
        )),
        other => other.into(),
    })?;
    let mut starts = draft.starts_ms.clone();
    starts.sort_unstable();
    starts.dedup();
    for chunk in starts.chunks(OCCURRENCES_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let at = 4 + i * 2;
                format!("($1, $2, $3, ${at}, ${})", at + 1)
            })
            .collect();
        let sql = format!(
            "INSERT INTO timetable_occurrences (tenant_id, timetable_id, uid, starts_at, ends_at) \
             VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(tenant).bind(id).bind(&draft.uid);
        for start in chunk {
            query = query
                .bind(*start)
                .bind(start.saturating_add(draft.duration_ms));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The name of an explicit value's property or column in `format`.
fn field(format: Format, name: &str) -> String {
    match format {
        Format::Icalendar => format!("X-LYCEUM-{}", name.to_ascii_uppercase()),
        Format::Csv => name.to_owned(),
    }
}

type Refusal = (String, Problem);

/// Fills in what the draft does not say: the cohort's (or course's) live
/// class gives the region, the course's units the languages, the cohort's
/// (or course's) active enrollments the learners.
async fn resolve(
    conn: &mut AnyConnection,
    tenant: &str,
    format: Format,
    limits: &Limits,
    draft: EventDraft,
) -> Result<Result<Resolved, Refusal>, TimetableError> {
    let refuse = |draft: &EventDraft, name: &str, code: ErrorCode, message: String| {
        Ok(Err((
            draft.uid.clone(),
            Problem::new(code, draft.place.at(&field(format, name)), message),
        )))
    };
    let audience = draft.audience.clone();
    let mut course_id = None;
    if let Some(course) = &audience.course {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM courses WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(course)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_none() {
            return refuse(
                &draft,
                "course",
                ErrorCode::NotFound,
                format!("course {course:?} is not one of the tenant's"),
            );
        }
        course_id = found;
    }
    let mut cohort = None;
    if let Some(wanted) = &audience.cohort {
        let row = match &course_id {
            Some(course) => sqlx::query(
                "SELECT id, course_id, name FROM cohorts WHERE tenant_id = $1 AND course_id = $2 \
                 AND (id = $3 OR name = $3)",
            )
            .bind(tenant)
            .bind(course)
            .bind(wanted)
            .fetch_optional(&mut *conn)
            .await?,
            None => {
                sqlx::query(
                    "SELECT id, course_id, name FROM cohorts WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(wanted)
                .fetch_optional(&mut *conn)
                .await?
            }
        };
        let Some(row) = row else {
            return refuse(
                &draft,
                "cohort",
                ErrorCode::NotFound,
                format!(
                    "cohort {wanted:?} is not one of the tenant's (a name needs the course too)"
                ),
            );
        };
        course_id = Some(row.try_get("course_id")?);
        cohort = Some((
            row.try_get::<String, _>("id")?,
            row.try_get::<String, _>("name")?,
        ));
    }
    let bodies: Vec<(String, String)> = match &course_id {
        Some(course) => sqlx::query("SELECT kind, draft_body FROM units WHERE tenant_id = $1 AND course_id = $2 ORDER BY id")
            .bind(tenant)
            .bind(course)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("kind")?, row.try_get("draft_body")?)))
            .collect::<Result<_, sqlx::Error>>()?,
        None => Vec::new(),
    };
    let units: Vec<UnitBody> = bodies
        .iter()
        .filter_map(|(kind, body)| {
            let kind = UnitKind::parse(kind).ok()?;
            UnitBody::parse(kind, serde_json::from_str(body).ok()?).ok()
        })
        .collect();
    let region = match audience.region {
        Some(region) => region,
        None => {
            // The live classes of the cohort, or of the course when the
            // event names no cohort, if they agree on one region.
            let regions: BTreeSet<&str> = units
                .iter()
                .filter_map(|unit| match unit {
                    UnitBody::LiveClassroom(class) => Some(class),
                    _ => None,
                })
                .filter(|class| {
                    cohort
                        .as_ref()
                        .is_none_or(|(id, name)| class.cohort == *id || class.cohort == *name)
                })
                .map(|class| class.region.as_str())
                .collect();
            match regions.len() {
                1 => {
                    let region = regions.into_iter().next().unwrap_or_default().to_owned();
                    if let Err((code, message)) = check_region(&region, limits) {
                        return refuse(
                            &draft,
                            "region",
                            code,
                            format!("the live class's {message}"),
                        );
                    }
                    region
                }
                0 => {
                    return refuse(
                        &draft,
                        "region",
                        ErrorCode::MissingField,
                        "no region: give one, or a cohort (or course) with a live class".into(),
                    )
                }
                _ => {
                    return refuse(
                        &draft,
                        "region",
                        ErrorCode::MissingField,
                        format!(
                            "no region: the course's live classes are in {}; give one",
                            regions.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    )
                }
            }
        }
    };
    let languages = match audience.languages {
        Some(languages) => languages,
        None => {
            let found = languages_of(&units);
            if found.is_empty() {
                return refuse(
                    &draft,
                    "languages",
                    ErrorCode::MissingField,
                    "no languages: give them, or a course whose units use some".into(),
                );
            }
            found.into_iter().collect()
        }
    };
    let learners = match audience.learners {
        Some(learners) => learners,
        None => {
            let count: i64 =
                match (&cohort, &course_id) {
                    (Some((cohort, _)), _) => sqlx::query_scalar(
                        "SELECT COUNT(*) FROM enrollments WHERE tenant_id = $1 AND cohort_id = $2 \
                     AND status = 'active'",
                    )
                    .bind(tenant)
                    .bind(cohort)
                    .fetch_one(&mut *conn)
                    .await?,
                    (None, Some(course)) => sqlx::query_scalar(
                        "SELECT COUNT(*) FROM enrollments WHERE tenant_id = $1 AND course_id = $2 \
                     AND status = 'active'",
                    )
                    .bind(tenant)
                    .bind(course)
                    .fetch_one(&mut *conn)
                    .await?,
                    (None, None) => {
                        return refuse(
                            &draft,
                            "learners",
                            ErrorCode::MissingField,
                            "no learners: give a number, or a cohort or course to count".into(),
                        )
                    }
                };
            match u32::try_from(count) {
                Ok(n) if n <= limits.learners_per_event_max => n,
                _ => limits.learners_per_event_max,
            }
        }
    };
    let fingerprint = {
        let canonical = serde_json::json!([
            draft.title,
            draft.time_zone,
            draft.series,
            draft.duration_ms,
            region,
            languages,
            learners,
            course_id,
            cohort.as_ref().map(|(id, _)| id),
        ])
        .to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    Ok(Ok(Resolved {
        region,
        languages,
        learners,
        course_id,
        cohort_id: cohort.map(|(id, _)| id),
        fingerprint,
        draft,
    }))
}

/// Every language a course's units use: assignments, lesson snippets and
/// code questions of quizzes.
pub(super) fn languages_of(units: &[UnitBody]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for unit in units {
        match unit {
            UnitBody::Lesson(lesson) => {
                found.extend(lesson.snippets.iter().map(|s| s.language.clone()));
            }
            UnitBody::Assignment(assignment) => {
                found.insert(assignment.language.clone());
            }
            UnitBody::Quiz(quiz) => {
                for question in &quiz.questions {
                    if let Question::Code { language, .. } = question {
                        found.insert(language.clone());
                    }
                }
            }
            UnitBody::LiveClassroom(_) => {}
        }
    }
    found
}

fn timetable(row: &sqlx::any::AnyRow) -> Result<Timetable, TimetableError> {
    let format: String = row.try_get("format")?;
    Ok(Timetable {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        format: Format::parse(&format)
            .ok_or_else(|| TimetableError::Corrupt(format!("format {format:?}")))?,
        events: u32::try_from(row.try_get::<i64, _>("events")?).unwrap_or(u32::MAX),
        occurrences: u32::try_from(row.try_get::<i64, _>("occurrences")?).unwrap_or(u32::MAX),
        imported_by: row.try_get("imported_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const TIMETABLE_COLUMNS: &str =
    "id, name, format, events, occurrences, imported_by, created_at, updated_at";

/// One page of the tenant's timetables, in id (creation) order.
///
/// # Errors
/// Database failures.
pub async fn list(
    db: &Db,
    tenant: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Timetable>, TimetableError> {
    let rows = sqlx::query(&format!(
        "SELECT {TIMETABLE_COLUMNS} FROM timetables WHERE tenant_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(timetable).collect()
}

async fn check_exists(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<(), TimetableError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM timetables WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| TimetableError::NotFound(id.chars().take(128).collect()))
}

/// The occurrences of timetable `id` starting in `[from_ms, to_ms)`, by
/// start time; at most `max` (a timetable holds at most
/// `timetable_occurrences_per_file_max`).
///
/// # Errors
/// [`TimetableError::NotFound`]; database failures.
pub async fn occurrences(
    db: &Db,
    tenant: &str,
    id: &str,
    from_ms: i64,
    to_ms: i64,
    max: u32,
) -> Result<Occurrences, TimetableError> {
    let mut conn = db.pool().acquire().await?;
    check_exists(&mut conn, tenant, id).await?;
    let rows = sqlx::query(
        "SELECT o.uid, o.starts_at, o.ends_at, e.title, e.time_zone, e.region, e.languages, \
         e.learners FROM timetable_occurrences o JOIN timetable_events e \
         ON e.tenant_id = o.tenant_id AND e.uid = o.uid \
         WHERE o.tenant_id = $1 AND o.timetable_id = $2 AND o.starts_at >= $3 AND o.starts_at < $4 \
         ORDER BY o.starts_at, o.uid LIMIT $5",
    )
    .bind(tenant)
    .bind(id)
    .bind(from_ms)
    .bind(to_ms)
    .bind(i64::from(max))
    .fetch_all(&mut *conn)
    .await?;
    let mut occurrences = Vec::with_capacity(rows.len());
    for row in rows {
        let starts_at: i64 = row.try_get("starts_at")?;
        let time_zone: String = row.try_get("time_zone")?;
        let zone: chrono_tz::Tz = time_zone
            .parse()
            .map_err(|_| TimetableError::Corrupt(format!("time zone {time_zone:?}")))?;
        let local = chrono::DateTime::from_timestamp_millis(starts_at)
            .ok_or_else(|| TimetableError::Corrupt(format!("start {starts_at}")))?
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let languages: String = row.try_get("languages")?;
        occurrences.push(Occurrence {
            uid: row.try_get("uid")?,
            title: row.try_get("title")?,
            starts_at: rfc3339_utc(starts_at),
            ends_at: rfc3339_utc(row.try_get("ends_at")?),
            time_zone,
            local_starts_at: local,
            region: row.try_get("region")?,
            languages: languages
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            learners: u32::try_from(row.try_get::<i64, _>("learners")?).unwrap_or(u32::MAX),
        });
    }
    Ok(Occurrences {
        timetable_id: id.to_owned(),
        from: rfc3339_utc(from_ms),
        to: rfc3339_utc(to_ms),
        occurrences,
    })
}

/// Deletes timetable `id` with its events and occurrences, and writes
/// its `timetable_deleted` event.
///
/// # Errors
/// [`TimetableError::NotFound`]; database failures.
pub async fn delete(db: &Db, tenant: &str, id: &str, now_ms: i64) -> Result<(), TimetableError> {
    let mut tx = db.begin_write().await?;
    check_exists(&mut tx, tenant, id).await?;
    for table in ["timetable_occurrences", "timetable_events"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND timetable_id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM timetables WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    events::append(
        &mut tx,
        &[NewEvent {
            kind: EventKind::TimetableDeleted,
            tenant_id: tenant.to_owned(),
            aggregate_id: id.to_owned(),
            payload: serde_json::json!({"timetable_id": id}),
        }],
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
