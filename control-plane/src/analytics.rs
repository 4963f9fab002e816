//! The analytics projection: per-course counts (enrollments, drops,
//! completions, units completed, submissions) kept from the domain events
//! ([`crate::events`]) by a background task, and read by instructors at
//! `GET /api/v1/courses/{id}/stats`. Beside it, per-unit figures for the
//! class dashboard (`GET /api/v1/courses/{id}/unit-stats`) are read live
//! from the learners' progress rows, because "where do learners stop or
//! fail" is a question about the current rows, not about the event stream.
//!
//! *Exactly once.* The projection's cursor (the id of the last event it
//! applied) is a row of `event_consumers`, and each round reads the events
//! after it, adds them to `course_stats` and moves the cursor **in one
//! transaction**. A crash (or a failed commit) before the commit leaves
//! both as they were, so the events are applied again next time, once; a
//! crash after it leaves both moved, so they are not applied twice. The
//! cursor row is locked first (PostgreSQL: `FOR UPDATE`; SQLite: the write
//! lock), so two control-plane replicas running the task take turns
//! instead of counting the same events twice. Event ids never appear out
//! of order (see [`crate::events`]), so a cursor never skips one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::db::Db;
use crate::error::ControlPlaneError;
use crate::events::{self, Event, EventKind};

/// The projection's name in `event_consumers`.
pub const CONSUMER: &str = "analytics.course_stats";

/// A fault to inject into one round, so tests can crash it at the worst
/// moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Run normally.
    #[default]
    None,
    /// Apply the events and move the cursor, then fail instead of
    /// committing (as a crash would).
    FailBeforeCommit,
}

/// One course's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CourseStats {
    /// The course.
    pub course_id: String,
    /// Learners enrolled (first enrollments; a re-enrollment after a drop
    /// is not counted again).
    pub enrollments: i64,
    /// Enrollments completed.
    pub completions: i64,
    /// Enrollments dropped.
    pub drops: i64,
    /// Units completed by learners, in all.
    pub units_completed: i64,
    /// Submissions made against the course's units.
    pub submissions: i64,
    /// The id of the last event the projection had applied when read: the
    /// counts include every event up to it.
    pub as_of_event: i64,
}

/// The counts one round adds to one course.
#[derive(Debug, Default)]
struct Delta {
    enrollments: i64,
    completions: i64,
    drops: i64,
    units_completed: i64,
    submissions: i64,
}

fn course_of(event: &Event) -> Option<String> {
    event
        .payload
        .get("course_id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

fn fold(events: &[Event]) -> BTreeMap<(String, String), Delta> {
    let mut deltas: BTreeMap<(String, String), Delta> = BTreeMap::new();
    for event in events {
        let Some(kind) = EventKind::parse(&event.kind) else {
            continue;
        };
        let Some(course) = course_of(event) else {
            continue;
        };
        let delta = deltas.entry((course, event.tenant_id.clone())).or_default();
        match kind {
            EventKind::Enrolled => {
                let again =
                    event.payload.get("reactivated") == Some(&serde_json::Value::Bool(true));
                delta.enrollments += i64::from(!again);
            }
            EventKind::EnrollmentDropped => delta.drops += 1,
            EventKind::EnrollmentCompleted => delta.completions += 1,
            EventKind::UnitCompleted => delta.units_completed += 1,
            EventKind::SubmissionRecorded => delta.submissions += 1,
            EventKind::AttendanceRecorded
            | EventKind::InvoicePaid
            | EventKind::TransferPosted
            | EventKind::TimetableImported
            | EventKind::TimetableDeleted => {}
        }
    }
    deltas
}

/// Applies the next events (at most `batch_max`) to the projection in one
/// transaction, after publishing what writers committed; answers how many
/// events it read (0: caught up).
///
/// # Errors
/// Database failures, or the injected fault; nothing is applied then.
/// Cancel safety: one transaction.
pub async fn catch_up_once(
    db: &Db,
    batch_max: u32,
    publish_max: u32,
    fault: Fault,
) -> Result<u64, ControlPlaneError> {
    events::publish(db, publish_max).await?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO event_consumers (name, position, updated_at) VALUES ($1, 0, 0) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(CONSUMER)
    .execute(&mut *tx)
    .await?;
    let position: i64 = sqlx::query_scalar(&format!(
        "SELECT position FROM event_consumers WHERE name = $1{}",
        db.lock_clause()
    ))
    .bind(CONSUMER)
    .fetch_one(&mut *tx)
    .await?;
    let batch = events::read(&mut *tx, position, batch_max).await?;
    let Some(last) = batch.last().map(|e| e.id) else {
        tx.rollback().await?;
        return Ok(0);
    };
    let now = crate::db::now_ms();
    for ((course, tenant), d) in fold(&batch) {
        sqlx::query(
            "INSERT INTO course_stats (course_id, tenant_id, enrollments, completions, drops, \
             units_completed, submissions, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (course_id) DO UPDATE SET \
             enrollments = course_stats.enrollments + excluded.enrollments, \
             completions = course_stats.completions + excluded.completions, \
             drops = course_stats.drops + excluded.drops, \
             units_completed = course_stats.units_completed + excluded.units_completed, \
             submissions = course_stats.submissions + excluded.submissions, \
             updated_at = excluded.updated_at",
        )
        .bind(&course)
        .bind(&tenant)
        .bind(d.enrollments)
        .bind(d.completions)
        .bind(d.drops)
        .bind(d.units_completed)
        .bind(d.submissions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let moved = sqlx::query(
        "UPDATE event_consumers SET position = $2, updated_at = $3 WHERE name = $1 AND position = $4",
    )
    .bind(CONSUMER)
    .bind(last)
    .bind(now)
    .bind(position)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The row is locked: nobody else can have moved it.
    assert_eq!(moved, 1, "analytics cursor moved under its lock");
    if fault == Fault::FailBeforeCommit {
        tx.rollback().await?;
        return Err(ControlPlaneError::InjectedFault(
            "the projection round failed before its commit",
        ));
    }
    tx.commit().await?;
    Ok(u64::try_from(batch.len()).unwrap_or(u64::MAX))
}

/// Runs rounds until the projection has caught up; answers how many events
/// it applied.
///
/// # Errors
/// As [`catch_up_once`]; rounds before the failure stay applied.
pub async fn catch_up(db: &Db, batch_max: u32, publish_max: u32) -> Result<u64, ControlPlaneError> {
    let mut applied = 0;
    loop {
        let n = catch_up_once(db, batch_max, publish_max, Fault::None).await?;
        applied += n;
        if n < u64::from(batch_max) {
            return Ok(applied);
        }
    }
}

/// `NotFound` unless `course` is a course of `tenant`.
async fn require_course(db: &Db, tenant: &str, course: &str) -> Result<(), ControlPlaneError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(course)
            .fetch_optional(db.pool())
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ControlPlaneError::NotFound(format!("course {course}"))),
    }
}

/// The counts of a course of `tenant` (zeros before its first event).
///
/// # Errors
/// [`ControlPlaneError::NotFound`] for a course not in the tenant.
pub async fn course_stats(
    db: &Db,
    tenant: &str,
    course: &str,
) -> Result<CourseStats, ControlPlaneError> {
    require_course(db, tenant, course).await?;
    let as_of_event: i64 =
        sqlx::query_scalar("SELECT position FROM event_consumers WHERE name = $1")
            .bind(CONSUMER)
            .fetch_optional(db.pool())
            .await?
            .unwrap_or(0);
    let row = sqlx::query(
        "SELECT enrollments, completions, drops, units_completed, submissions FROM course_stats \
         WHERE tenant_id = $1 AND course_id = $2",
    )
    .bind(tenant)
    .bind(course)
    .fetch_optional(db.pool())
    .await?;
    let mut stats = CourseStats {
        course_id: course.to_owned(),
        as_of_event,
        ..CourseStats::default()
    };
    if let Some(row) = row {
        stats.enrollments = row.try_get("enrollments")?;
        stats.completions = row.try_get("completions")?;
        stats.drops = row.try_get("drops")?;
        stats.units_completed = row.try_get("units_completed")?;
        stats.submissions = row.try_get("submissions")?;
    }
    Ok(stats)
}

/// One unit's figures over the course's learners: how many reached it, how
/// many finished it, and how hard it was (attempts, scores, accepted runs),
/// so that instructors see where learners stop and where they fail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitStats {
    /// The unit.
    pub unit_id: String,
    /// `lesson`, `quiz`, `assignment` or `live_classroom`.
    pub kind: String,
    /// Its current title (the draft's, as authors see it).
    pub title: String,
    /// Learners with any progress on it.
    pub learners_started: i64,
    /// Learners who completed it.
    pub learners_completed: i64,
    /// Quiz attempts, in all.
    pub attempts: i64,
    /// Mean of the learners' best quiz scores, 0 to 100; null when nobody
    /// has a score.
    pub average_best_score: Option<f64>,
    /// Submissions reported against it, in all.
    pub submissions: i64,
    /// Of those, the accepted ones.
    pub accepted: i64,
}

/// Body of `GET /api/v1/courses/{id}/unit-stats`: every unit of the course,
/// oldest first. Not paged: a course holds at most `content` limits' units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CourseUnitStats {
    /// The course.
    pub course_id: String,
    /// One entry per unit, units with no progress included (all zeros).
    pub items: Vec<UnitStats>,
}

/// The per-unit figures of a course of `tenant`, read from the progress rows.
///
/// # Errors
/// [`ControlPlaneError::NotFound`] for a course not in the tenant.
pub async fn unit_stats(
    db: &Db,
    tenant: &str,
    course: &str,
) -> Result<CourseUnitStats, ControlPlaneError> {
    require_course(db, tenant, course).await?;
    // Sums are cast so both engines answer BIGINT (PostgreSQL's SUM of a
    // BIGINT is NUMERIC, which the Any driver does not decode).
    let rows = sqlx::query(
        "SELECT u.id, u.kind, u.draft_title, \
         CAST(COUNT(p.user_id) AS BIGINT) AS started, \
         CAST(COUNT(p.completed_at) AS BIGINT) AS completed, \
         CAST(COALESCE(SUM(p.attempts), 0) AS BIGINT) AS attempts, \
         CAST(COALESCE(SUM(p.best_score), 0) AS BIGINT) AS score_sum, \
         CAST(COUNT(p.best_score) AS BIGINT) AS scored, \
         CAST(COALESCE(SUM(p.submissions), 0) AS BIGINT) AS submissions, \
         CAST(COALESCE(SUM(p.accepted), 0) AS BIGINT) AS accepted \
         FROM units u LEFT JOIN unit_progress p \
         ON p.tenant_id = u.tenant_id AND p.unit_id = u.id \
         WHERE u.tenant_id = $1 AND u.course_id = $2 \
         GROUP BY u.id, u.kind, u.draft_title, u.created_at \
         ORDER BY u.created_at, u.id",
    )
    .bind(tenant)
    .bind(course)
    .fetch_all(db.pool())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let scored: i64 = row.try_get("scored")?;
        let score_sum: i64 = row.try_get("score_sum")?;
        #[allow(clippy::cast_precision_loss)] // scores are 0..=100 per learner
        let average_best_score = (scored > 0).then(|| score_sum as f64 / scored as f64);
        items.push(UnitStats {
            unit_id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            title: row.try_get("draft_title")?,
            learners_started: row.try_get("started")?,
            learners_completed: row.try_get("completed")?,
            attempts: row.try_get("attempts")?,
            average_best_score,
            submissions: row.try_get("submissions")?,
            accepted: row.try_get("accepted")?,
        });
    }
    Ok(CourseUnitStats {
        course_id: course.to_owned(),
        items,
    })
}
