//! Progress per unit kind, and completion.
//!
//! | kind | measured | complete when | score |
//! | --- | --- | --- | --- |
//! | lesson | seconds on page (added up), deepest scroll | scroll depth ≥ [`LESSON_COMPLETE_DEPTH`] | none |
//! | quiz | attempts, best score (graded here, [`super::quiz`]) | first graded attempt | best score |
//! | assignment | submissions, accepted, best tests passed of total | an accepted submission, or every test passed | best `passed * 100 / total` (100 when accepted) |
//! | live classroom | seconds present, submissions in class (the edge's attendance report) | present ≥ [`LIVE_PRESENCE_PERCENT_MIN`] % of the class | accepted share of class submissions, if any |
//!
//! A unit is *complete* when it has a row in `unit_results`, the table the
//! learning-path frontier reads; `unit_progress.completed_at` is set in the
//! same transaction, by compare-and-set, so exactly one writer sees the
//! first completion and writes the `unit_completed` event. That writer
//! then locks the learner's enrollment row and counts the course's
//! published units still without a result: none left completes the
//! enrollment (and writes `enrollment_completed`). Because both writers
//! of a course's last two units lock the same enrollment row before
//! counting, the second to get it sees the first's result: a course is
//! never left uncompleted by two concurrent completions.
//!
//! Instructors may still record a result directly (`PUT
//! /api/v1/units/{id}/results/{user_id}`): it goes through the same path,
//! replacing the score.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::error::LearningError;
use super::quiz::{self, QuizAnswers};
use crate::content::body::UnitBody;
use crate::content::model::UnitResult;
use crate::content::UnitKind;
use crate::db::Db;
use crate::events::{self, EventKind, NewEvent};

/// Scroll depth at which a lesson counts as read.
pub const LESSON_COMPLETE_DEPTH: f64 = 0.9;

/// Scroll depth is stored in thousandths, so comparisons are exact.
const DEPTH_SCALE: f64 = 1000.0;

/// [`LESSON_COMPLETE_DEPTH`] in stored thousandths.
const LESSON_COMPLETE_PERMILLE: i64 = 900;

const _: () = assert!(LESSON_COMPLETE_PERMILLE as f64 == LESSON_COMPLETE_DEPTH * DEPTH_SCALE);

/// Most seconds one lesson progress report may add: clients report every
/// few seconds to minutes, so anything larger is a bug or a forgery.
pub const SECONDS_ON_PAGE_PER_REPORT_MAX: u32 = 3_600;

/// Share of a live class's length (in percent) a learner must be present
/// for the class to count as attended.
pub const LIVE_PRESENCE_PERCENT_MIN: i64 = 50;

/// Body of `PUT /api/v1/units/{id}/progress` (lessons).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LessonReport {
    /// Seconds on the page since the last report, 0 to
    /// [`SECONDS_ON_PAGE_PER_REPORT_MAX`]; added up.
    pub seconds_on_page: u32,
    /// How far down the learner has scrolled, 0 to 1; the deepest is kept.
    pub scroll_depth: f64,
}

/// What has been measured of one unit, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measured {
    /// Time and scroll depth.
    Lesson {
        /// Seconds on the page, added up.
        seconds_on_page: i64,
        /// The deepest scroll, 0 to 1.
        scroll_depth: f64,
    },
    /// Graded attempts.
    Quiz {
        /// Attempts made.
        attempts: i64,
        /// Best score, 0 to 100.
        best_score: Option<i64>,
    },
    /// Submissions against the assignment.
    Assignment {
        /// Submissions recorded.
        submissions: i64,
        /// Of which accepted.
        accepted: i64,
        /// Most tests passed in one submission, when the edge said.
        tests_passed: Option<i64>,
        /// Tests of that submission.
        tests_total: Option<i64>,
    },
    /// Attendance and submissions in class.
    LiveClassroom {
        /// Seconds present.
        seconds_present: i64,
        /// Submissions made in class.
        submissions: i64,
        /// Of which accepted.
        accepted: i64,
    },
}

/// One unit's progress for one learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitProgress {
    /// The unit.
    pub unit_id: String,
    /// Its course.
    pub course_id: String,
    /// Its module.
    pub module_id: String,
    /// Its published title.
    pub title: String,
    /// Its latest published version.
    pub version: i64,
    /// Whether it is complete (it has a result: the frontier agrees).
    pub completed: bool,
    /// When it was completed, unix ms.
    pub completed_at: Option<i64>,
    /// The result's score, 0 to 100, if the unit is scored.
    pub score: Option<i64>,
    /// What has been measured, with the unit's kind.
    pub progress: Measured,
}

/// Answer of `GET /api/v1/me/progress?course_id=`: the course's totals and
/// one page of its published units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CourseProgress {
    /// The course.
    pub course_id: String,
    /// The caller's enrollment status, if enrolled.
    pub enrollment_status: Option<super::enrollments::EnrollmentStatus>,
    /// Published units in the course.
    pub total_units: i64,
    /// Of which complete.
    pub completed_units: i64,
    /// `completed_units * 100 / total_units`, rounded down; 0 for a course
    /// with nothing published.
    pub completion_percent: i64,
    /// A page of units in id order.
    pub items: Vec<UnitProgress>,
    /// The `after` of the next page; absent on the last.
    pub next_after: Option<String>,
}

/// Answer of a graded quiz attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptResult {
    /// The quiz.
    pub unit_id: String,
    /// The version graded against (the latest published).
    pub version: i64,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// Questions right.
    pub correct: u32,
    /// Questions in the quiz.
    pub total: u32,
    /// This attempt's score.
    pub score: i64,
    /// Best score so far (the result's score).
    pub best_score: i64,
    /// Attempts left, when the quiz limits them.
    pub attempts_left: Option<i64>,
}

/// A published unit of the tenant, as progress needs it.
pub(crate) struct UnitInfo {
    pub(crate) course_id: String,
    pub(crate) kind: UnitKind,
    pub(crate) version: i64,
    pub(crate) body: String,
}

/// Looks up a unit of `tenant` and its latest published body.
///
/// # Errors
/// [`LearningError::NotFound`] for a unit not in the tenant,
/// [`LearningError::NotPublished`] for one never published.
pub(crate) async fn published_unit(
    conn: &mut AnyConnection,
    tenant: &str,
    unit: &str,
) -> Result<UnitInfo, LearningError> {
    let row = sqlx::query(
        "SELECT u.course_id, u.kind, u.published_version, v.body FROM units u \
         LEFT JOIN unit_versions v ON v.unit_id = u.id AND v.version = u.published_version \
         WHERE u.tenant_id = $1 AND u.id = $2",
    )
    .bind(tenant)
    .bind(unit)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| LearningError::not_found("unit", unit))?;
    let version: i64 = row.try_get("published_version")?;
    let body: Option<String> = row.try_get("body")?;
    let kind: String = row.try_get("kind")?;
    match body {
        Some(body) if version > 0 => Ok(UnitInfo {
            course_id: row.try_get("course_id")?,
            kind: UnitKind::parse(&kind)?,
            version,
            body,
        }),
        _ => Err(LearningError::NotPublished(format!(
            "unit {unit} has no published version"
        ))),
    }
}

/// Refuses callers without an active or completed enrollment in `course`.
async fn require_enrolled(
    conn: &mut AnyConnection,
    tenant: &str,
    course: &str,
    user: &str,
) -> Result<(), LearningError> {
    match super::enrollments::get(&mut *conn, tenant, course, user).await? {
        Some(e) if e.status != super::enrollments::EnrollmentStatus::Dropped => Ok(()),
        _ => Err(LearningError::NotEnrolled(format!(
            "enroll in course {course} to record progress in it"
        ))),
    }
}

/// Makes sure the progress row exists (all zero).
async fn ensure_row(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    unit: &str,
    course: &str,
    kind: UnitKind,
    now_ms: i64,
) -> Result<(), LearningError> {
    sqlx::query(
        "INSERT INTO unit_progress (tenant_id, user_id, unit_id, course_id, kind, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, user_id, unit_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .bind(course)
    .bind(kind.as_str())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The facts of a completion.
pub(crate) struct Completion<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) user: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) course: &'a str,
    pub(crate) kind: UnitKind,
    /// The score to store in the result (replacing the one there).
    pub(crate) score: Option<i64>,
}

/// Writes the unit's result (what the frontier reads) and, the first time,
/// its `unit_completed` event and the course check; see the module docs.
/// The progress row must exist. Answers whether this was the first
/// completion.
pub(crate) async fn complete(
    db: &Db,
    conn: &mut AnyConnection,
    done: &Completion<'_>,
    now_ms: i64,
) -> Result<bool, LearningError> {
    let first = sqlx::query(
        "UPDATE unit_progress SET completed_at = $4, updated_at = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3 AND completed_at IS NULL",
    )
    .bind(done.tenant)
    .bind(done.user)
    .bind(done.unit)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "INSERT INTO unit_results (tenant_id, user_id, unit_id, score, completed_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, user_id, unit_id) DO UPDATE SET score = excluded.score",
    )
    .bind(done.tenant)
    .bind(done.user)
    .bind(done.unit)
    .bind(done.score)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if first {
        events::append(
            conn,
            &[NewEvent {
                kind: EventKind::UnitCompleted,
                tenant_id: done.tenant.to_owned(),
                aggregate_id: done.unit.to_owned(),
                payload: serde_json::json!({
                    "unit_id": done.unit,
                    "course_id": done.course,
                    "user_id": done.user,
                    "kind": done.kind,
                    "score": done.score,
                }),
            }],
            now_ms,
        )
        .await?;
        super::enrollments::complete_course_if_done(
            db,
            conn,
            done.tenant,
            done.course,
            done.user,
            now_ms,
        )
        .await?;
    }
    Ok(first)
}

/// Records a lesson progress report of `user` (enrolled in its course).
///
/// # Errors
/// [`LearningError::Invalid`] for a depth outside 0 to 1, too many seconds
/// or a unit that is not a lesson; [`LearningError::NotEnrolled`];
/// not-found and not-published units. Cancel safety: one transaction.
pub async fn record_lesson(
    db: &Db,
    tenant: &str,
    user: &str,
    unit: &str,
    report: &LessonReport,
    now_ms: i64,
) -> Result<UnitProgress, LearningError> {
    if !report.scroll_depth.is_finite() || !(0.0..=1.0).contains(&report.scroll_depth) {
        return Err(LearningError::Invalid(format!(
            "scroll_depth must be 0 to 1, not {}",
            report.scroll_depth
        )));
    }
    if report.seconds_on_page > SECONDS_ON_PAGE_PER_REPORT_MAX {
        return Err(LearningError::Invalid(format!(
            "seconds_on_page must be at most {SECONDS_ON_PAGE_PER_REPORT_MAX} per report"
        )));
    }
    // In [0, 1000] by the check above.
    let permille = (report.scroll_depth * DEPTH_SCALE).round() as i64;
    let mut tx = db.begin_write().await?;
    let info = published_unit(&mut tx, tenant, unit).await?;
    if info.kind != UnitKind::Lesson {
        return Err(LearningError::Invalid(format!(
            "time on page and scroll depth are recorded for lessons; unit {unit} is a {}",
            info.kind.as_str()
        )));
    }
    require_enrolled(&mut tx, tenant, &info.course_id, user).await?;
    sqlx::query(
        "INSERT INTO unit_progress (tenant_id, user_id, unit_id, course_id, kind, \
         seconds_on_page, scroll_depth_permille, updated_at) \
         VALUES ($1, $2, $3, $4, 'lesson', $5, $6, $7) \
         ON CONFLICT (tenant_id, user_id, unit_id) DO UPDATE SET \
         seconds_on_page = unit_progress.seconds_on_page + excluded.seconds_on_page, \
         scroll_depth_permille = CASE WHEN excluded.scroll_depth_permille > \
             unit_progress.scroll_depth_permille THEN excluded.scroll_depth_permille \
             ELSE unit_progress.scroll_depth_permille END, \
         updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .bind(&info.course_id)
    .bind(i64::from(report.seconds_on_page))
    .bind(permille)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let (deepest, completed_at): (i64, Option<i64>) = sqlx::query_as(
        "SELECT scroll_depth_permille, completed_at FROM unit_progress \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3",
    )
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .fetch_one(&mut *tx)
    .await?;
    if deepest >= LESSON_COMPLETE_PERMILLE && completed_at.is_none() {
        let done = Completion {
            tenant,
            user,
            unit,
            course: &info.course_id,
            kind: UnitKind::Lesson,
            score: None,
        };
        complete(db, &mut tx, &done, now_ms).await?;
    }
    let view = one(&mut tx, tenant, user, unit).await?;
    tx.commit().await?;
    Ok(view)
}

/// Grades and records a quiz attempt of `user` (enrolled in its course),
/// against the latest published version.
///
/// # Errors
/// [`LearningError::Conflict`] when the quiz's `attempts_max` is used up,
/// [`LearningError::Invalid`] for malformed answers or a unit that is not
/// a quiz, [`LearningError::NotEnrolled`], not-found and not-published
/// units. Cancel safety: one transaction.
pub async fn record_quiz_attempt(
    db: &Db,
    tenant: &str,
    user: &str,
    unit: &str,
    answers: &QuizAnswers,
    now_ms: i64,
) -> Result<AttemptResult, LearningError> {
    let mut tx = db.begin_write().await?;
    let info = published_unit(&mut tx, tenant, unit).await?;
    let body: serde_json::Value = serde_json::from_str(&info.body)
        .map_err(|err| LearningError::Corrupt(format!("unit {unit} body: {err}")))?;
    let quiz = match UnitBody::parse(info.kind, body) {
        Ok(UnitBody::Quiz(quiz)) => quiz,
        Ok(_) => {
            return Err(LearningError::Invalid(format!(
                "attempts are graded for quizzes; unit {unit} is a {}",
                info.kind.as_str()
            )))
        }
        Err(err) => return Err(LearningError::Corrupt(format!("unit {unit} body: {err}"))),
    };
    require_enrolled(&mut tx, tenant, &info.course_id, user).await?;
    let code_answers = quiz::check(&quiz, answers)?;
    ensure_row(
        &mut tx,
        tenant,
        user,
        unit,
        &info.course_id,
        UnitKind::Quiz,
        now_ms,
    )
    .await?;
    // Locks the row: attempts are counted one at a time.
    let (attempts, best): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT attempts, best_score FROM unit_progress \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3{}",
        db.lock_clause()
    ))
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .fetch_one(&mut *tx)
    .await?;
    let max = quiz.settings.attempts_max.map(i64::from);
    if max.is_some_and(|max| attempts >= max) {
        return Err(LearningError::Conflict(format!(
            "all {attempts} attempts of quiz {unit} are used"
        )));
    }
    let mut accepted = std::collections::HashSet::new();
    for cited in code_answers {
        // Bound to the question: the edge graded the submission against
        // that question's tests, and no other.
        let ok: Option<String> = sqlx::query_scalar(
            "SELECT id FROM submissions WHERE tenant_id = $1 AND user_id = $2 AND id = $3 \
             AND unit_id = $4 AND question_id = $5 AND status = 'accepted'",
        )
        .bind(tenant)
        .bind(user)
        .bind(&cited.submission_id)
        .bind(unit)
        .bind(&cited.question_id)
        .fetch_optional(&mut *tx)
        .await?;
        if ok.is_some() {
            accepted.insert(cited);
        }
    }
    let graded = quiz::grade(&quiz, answers, &accepted);
    let attempt = attempts + 1;
    let best_score = best.map_or(graded.score, |b| b.max(graded.score));
    sqlx::query(
        "UPDATE unit_progress SET attempts = $4, best_score = $5, updated_at = $6 \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3",
    )
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .bind(attempt)
    .bind(best_score)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let done = Completion {
        tenant,
        user,
        unit,
        course: &info.course_id,
        kind: UnitKind::Quiz,
        score: Some(best_score),
    };
    complete(db, &mut tx, &done, now_ms).await?;
    tx.commit().await?;
    Ok(AttemptResult {
        unit_id: unit.to_owned(),
        version: info.version,
        attempt,
        correct: graded.correct,
        total: graded.total,
        score: graded.score,
        best_score,
        attempts_left: max.map(|max| (max - attempt).max(0)),
    })
}

/// A submission against a unit, as [`record_submission`] needs it.
pub(crate) struct SubmissionFacts<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) user: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) course: &'a str,
    pub(crate) kind: UnitKind,
    pub(crate) accepted: bool,
    pub(crate) tests: Option<(i64, i64)>,
}

/// Counts a newly recorded submission in its unit's progress, inside the
/// submission's transaction; completes an assignment that was accepted
/// or passed every test. The user is a member of the tenant: recording
/// refuses reports of anyone else (`unknown_member`) before it gets here.
pub(crate) async fn record_submission(
    db: &Db,
    conn: &mut AnyConnection,
    s: &SubmissionFacts<'_>,
    now_ms: i64,
) -> Result<(), LearningError> {
    ensure_row(conn, s.tenant, s.user, s.unit, s.course, s.kind, now_ms).await?;
    let row = sqlx::query(&format!(
        "SELECT submissions, accepted, tests_passed, tests_total, best_score FROM unit_progress \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3{}",
        db.lock_clause()
    ))
    .bind(s.tenant)
    .bind(s.user)
    .bind(s.unit)
    .fetch_one(&mut *conn)
    .await?;
    let submissions: i64 = row.try_get("submissions")?;
    let accepted: i64 = row.try_get("accepted")?;
    let mut passed: Option<i64> = row.try_get("tests_passed")?;
    let mut total: Option<i64> = row.try_get("tests_total")?;
    let mut best: Option<i64> = row.try_get("best_score")?;
    let mut complete_now = false;
    if s.kind == UnitKind::Assignment {
        let this_score = match s.tests {
            Some((p, t)) if t > 0 => Some(p * 100 / t),
            _ if s.accepted => Some(100),
            _ => None,
        };
        if let Some((p, t)) = s.tests {
            if passed.is_none_or(|old| p > old) {
                (passed, total) = (Some(p), Some(t));
            }
        }
        if let Some(score) = this_score {
            best = Some(best.map_or(score, |b| b.max(score)));
        }
        complete_now = s.accepted || s.tests.is_some_and(|(p, t)| t > 0 && p == t);
    }
    sqlx::query(
        "UPDATE unit_progress SET submissions = $4, accepted = $5, tests_passed = $6, \
         tests_total = $7, best_score = $8, updated_at = $9 \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3",
    )
    .bind(s.tenant)
    .bind(s.user)
    .bind(s.unit)
    .bind(submissions + 1)
    .bind(accepted + i64::from(s.accepted))
    .bind(passed)
    .bind(total)
    .bind(best)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if complete_now {
        let done = Completion {
            tenant: s.tenant,
            user: s.user,
            unit: s.unit,
            course: s.course,
            kind: s.kind,
            score: best,
        };
        complete(db, conn, &done, now_ms).await?;
    }
    Ok(())
}

/// One attendee of a live class, as [`record_attendance`] needs it.
pub(crate) struct AttendanceFacts<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) user: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) course: &'a str,
    pub(crate) seconds_present: i64,
    pub(crate) class_seconds: i64,
    pub(crate) submissions: i64,
    pub(crate) accepted: i64,
}

/// Records a learner's attendance of a live class as the unit's progress,
/// inside the report's transaction, and completes the unit when they were
/// there long enough. Users that are not members have no progress.
pub(crate) async fn record_attendance(
    db: &Db,
    conn: &mut AnyConnection,
    a: &AttendanceFacts<'_>,
    now_ms: i64,
) -> Result<(), LearningError> {
    if !super::model::is_member(&mut *conn, a.tenant, a.user).await? {
        return Ok(());
    }
    ensure_row(
        conn,
        a.tenant,
        a.user,
        a.unit,
        a.course,
        UnitKind::LiveClassroom,
        now_ms,
    )
    .await?;
    sqlx::query(
        "UPDATE unit_progress SET seconds_present = seconds_present + $4, \
         submissions = submissions + $5, accepted = accepted + $6, updated_at = $7 \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3",
    )
    .bind(a.tenant)
    .bind(a.user)
    .bind(a.unit)
    .bind(a.seconds_present)
    .bind(a.submissions)
    .bind(a.accepted)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let attended = a.seconds_present > 0
        && a.seconds_present.saturating_mul(100)
            >= a.class_seconds.saturating_mul(LIVE_PRESENCE_PERCENT_MIN);
    if attended {
        let score = (a.submissions > 0).then(|| a.accepted * 100 / a.submissions);
        let done = Completion {
            tenant: a.tenant,
            user: a.user,
            unit: a.unit,
            course: a.course,
            kind: UnitKind::LiveClassroom,
            score,
        };
        complete(db, conn, &done, now_ms).await?;
    }
    Ok(())
}

/// Records (or replaces) a learner's result on a unit, as an instructor:
/// the unit is complete with this score, through the same path as every
/// other completion (its event the first time, the course check).
///
/// # Errors
/// [`LearningError::NotFound`] for a unit or user not in the tenant,
/// [`LearningError::Invalid`] for a score outside 0 to 100.
pub async fn record_result(
    db: &Db,
    tenant: &str,
    unit: &str,
    user: &str,
    score: Option<i64>,
    now_ms: i64,
) -> Result<UnitResult, LearningError> {
    if let Some(s) = score.filter(|s| !(0..=100).contains(s)) {
        return Err(LearningError::Invalid(format!(
            "score must be 0 to 100, not {s}"
        )));
    }
    let mut tx = db.begin_write().await?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT course_id, kind FROM units WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(unit)
            .fetch_optional(&mut *tx)
            .await?;
    let (course, kind) = row.ok_or_else(|| LearningError::not_found("unit", unit))?;
    let kind = UnitKind::parse(&kind)?;
    if !super::model::is_member(&mut *tx, tenant, user).await? {
        return Err(LearningError::not_found("user", user));
    }
    ensure_row(&mut tx, tenant, user, unit, &course, kind, now_ms).await?;
    let done = Completion {
        tenant,
        user,
        unit,
        course: &course,
        kind,
        score,
    };
    complete(db, &mut tx, &done, now_ms).await?;
    let (score, completed_at): (Option<i64>, i64) = sqlx::query_as(
        "SELECT score, completed_at FROM unit_results \
         WHERE tenant_id = $1 AND user_id = $2 AND unit_id = $3",
    )
    .bind(tenant)
    .bind(user)
    .bind(unit)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UnitResult {
        user_id: user.to_owned(),
        unit_id: unit.to_owned(),
        score,
        completed_at,
    })
}

const VIEW: &str = "SELECT u.id, u.course_id, u.module_id, u.kind, v.title, u.published_version, \
     r.completed_at AS result_at, r.score AS result_score, \
     p.seconds_on_page, p.scroll_depth_permille, p.attempts, p.best_score, p.tests_passed, \
     p.tests_total, p.submissions, p.accepted, p.seconds_present \
     FROM units u \
     JOIN unit_versions v ON v.unit_id = u.id AND v.version = u.published_version \
     LEFT JOIN unit_results r ON r.tenant_id = u.tenant_id AND r.user_id = $2 AND r.unit_id = u.id \
     LEFT JOIN unit_progress p ON p.tenant_id = u.tenant_id AND p.user_id = $2 AND p.unit_id = u.id \
     WHERE u.tenant_id = $1 AND u.published_version > 0";

fn view(row: &AnyRow) -> Result<UnitProgress, LearningError> {
    let kind: String = row.try_get("kind")?;
    let kind = UnitKind::parse(&kind)?;
    let n = |name: &str| -> Result<i64, LearningError> {
        Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
    };
    let progress = match kind {
        UnitKind::Lesson => Measured::Lesson {
            seconds_on_page: n("seconds_on_page")?,
            // Thousandths (0 to 1000), so exact in an f64.
            scroll_depth: n("scroll_depth_permille")? as f64 / DEPTH_SCALE,
        },
        UnitKind::Quiz => Measured::Quiz {
            attempts: n("attempts")?,
            best_score: row.try_get("best_score")?,
        },
        UnitKind::Assignment => Measured::Assignment {
            submissions: n("submissions")?,
            accepted: n("accepted")?,
            tests_passed: row.try_get("tests_passed")?,
            tests_total: row.try_get("tests_total")?,
        },
        UnitKind::LiveClassroom => Measured::LiveClassroom {
            seconds_present: n("seconds_present")?,
            submissions: n("submissions")?,
            accepted: n("accepted")?,
        },
    };
    let completed_at: Option<i64> = row.try_get("result_at")?;
    Ok(UnitProgress {
        unit_id: row.try_get("id")?,
        course_id: row.try_get("course_id")?,
        module_id: row.try_get("module_id")?,
        title: row.try_get("title")?,
        version: row.try_get("published_version")?,
        completed: completed_at.is_some(),
        completed_at,
        score: row.try_get("result_score")?,
        progress,
    })
}

async fn one(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    unit: &str,
) -> Result<UnitProgress, LearningError> {
    let row = sqlx::query(&format!("{VIEW} AND u.id = $3"))
        .bind(tenant)
        .bind(user)
        .bind(unit)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| LearningError::not_found("unit", unit))?;
    view(&row)
}

/// `user`'s progress in `course`: the totals, and a page of its published
/// units after the unit id `after`.
///
/// # Errors
/// [`LearningError::NotFound`] for a course not in the tenant.
pub async fn course_progress(
    db: &Db,
    tenant: &str,
    user: &str,
    course: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<CourseProgress, LearningError> {
    let mut conn = db.pool().acquire().await?;
    super::enrollments::check_course(&mut conn, tenant, course).await?;
    let enrollment = super::enrollments::get(&mut *conn, tenant, course, user).await?;
    let (total, completed) =
        super::enrollments::published_and_completed(&mut conn, tenant, course, user).await?;
    let rows = sqlx::query(&format!(
        "{VIEW} AND u.course_id = $3 AND u.id > $4 ORDER BY u.id LIMIT $5"
    ))
    .bind(tenant)
    .bind(user)
    .bind(course)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    let items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let full = items.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if full {
        items.last().map(|u| u.unit_id.clone())
    } else {
        None
    };
    Ok(CourseProgress {
        course_id: course.to_owned(),
        enrollment_status: enrollment.map(|e| e.status),
        total_units: total,
        completed_units: completed,
        completion_percent: if total == 0 {
            0
        } else {
            completed * 100 / total
        },
        items,
        next_after,
    })
}
