//! Enrollments and cohorts. One row per (tenant, course, learner), keyed
//! so that enrolling twice finds the first row (idempotent, and safe under
//! concurrent retries: the insert is `ON CONFLICT DO NOTHING`, and the
//! loser reads the winner's row). Dropping keeps the row with status
//! `dropped`; enrolling again makes it active again. Each change writes its
//! event ([`crate::events`]) in the same transaction.
//!
//! A course is *published* for enrollment when at least one of its units
//! has a published version: learners may only enroll themselves in such a
//! course, while instructors may enroll people in a course they are still
//! writing.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::error::LearningError;
use super::model::check_id;
use super::model::COHORT_NAME_CHARS_MAX;
use crate::db::Db;
use crate::events::{self, EventKind, NewEvent};

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Taking the course.
    Active,
    /// Every published unit of the course is complete.
    Completed,
    /// Left the course (by themself or an instructor).
    Dropped,
}

impl EnrollmentStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Dropped => "dropped",
        }
    }

    fn parse(text: &str) -> Result<Self, LearningError> {
        match text {
            "active" => Ok(Self::Active),
            "completed" => Ok(Self::Completed),
            "dropped" => Ok(Self::Dropped),
            other => Err(LearningError::Corrupt(format!(
                "enrollment status {other:?}"
            ))),
        }
    }
}

/// A learner's enrollment in a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// The course.
    pub course_id: String,
    /// The learner.
    pub user_id: String,
    /// Their cohort in the course, if any.
    pub cohort_id: Option<String>,
    /// Where it stands.
    pub status: EnrollmentStatus,
    /// When they first enrolled, unix ms.
    pub enrolled_at: i64,
    /// When the course was completed, unix ms.
    pub completed_at: Option<i64>,
    /// When it was dropped, unix ms (cleared by enrolling again).
    pub dropped_at: Option<i64>,
}

/// A named group of learners of one course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cohort {
    /// Server-chosen id (UUIDv7, so id order is creation order).
    pub id: String,
    /// The course.
    pub course_id: String,
    /// Name, unique within the course.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Body of `POST /api/v1/courses/{id}/enrollments`: empty for a learner
/// enrolling themself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollment {
    /// Whom to enroll (instructors only); the caller when absent.
    #[serde(default)]
    pub user_id: Option<String>,
    /// A cohort of the course to place them in (instructors only).
    #[serde(default)]
    pub cohort_id: Option<String>,
}

/// Body of `POST /api/v1/courses/{id}/cohorts`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCohort {
    /// 1 to [`COHORT_NAME_CHARS_MAX`] characters, unique in the course.
    pub name: String,
}

/// What [`enroll`] did.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub enum Enrolled {
    /// A new enrollment (201).
    Created(Enrollment),
    /// The learner was enrolled already, or is again after a drop (200).
    Existing(Enrollment),
}

const COLUMNS: &str =
    "course_id, user_id, cohort_id, status, enrolled_at, completed_at, dropped_at";

fn enrollment(row: &AnyRow) -> Result<Enrollment, LearningError> {
    let status: String = row.try_get("status")?;
    Ok(Enrollment {
        course_id: row.try_get("course_id")?,
        user_id: row.try_get("user_id")?,
        cohort_id: row.try_get("cohort_id")?,
        status: EnrollmentStatus::parse(&status)?,
        enrolled_at: row.try_get("enrolled_at")?,
        completed_at: row.try_get("completed_at")?,
        dropped_at: row.try_get("dropped_at")?,
    })
}

/// Checks that `course` is one of `tenant`'s.
///
/// # Errors
/// [`LearningError::NotFound`] otherwise.
pub(crate) async fn check_course(
    conn: &mut AnyConnection,
    tenant: &str,
    course: &str,
) -> Result<(), LearningError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(course)
            .fetch_optional(&mut *conn)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| LearningError::not_found("course", course))
}

/// Whether `course` has at least one published unit.
///
/// # Errors
/// Database failures.
pub async fn is_published(db: &Db, tenant: &str, course: &str) -> Result<bool, LearningError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM units WHERE tenant_id = $1 AND course_id = $2 AND published_version > 0 \
         LIMIT 1",
    )
    .bind(tenant)
    .bind(course)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.is_some())
}

/// Enrolls `user` in `course` (in `cohort`, if given), or finds the
/// enrollment; a dropped one becomes active again. The first enrollment
/// writes an `enrolled` event, a re-activation one with `"reactivated":
/// true`.
///
/// # Errors
/// [`LearningError::NotFound`] for a course, user or cohort not in the
/// tenant; database failures. Cancel safety: one transaction.
pub async fn enroll(
    db: &Db,
    tenant: &str,
    course: &str,
    user: &str,
    cohort: Option<&str>,
    now_ms: i64,
) -> Result<Enrolled, LearningError> {
    check_id("user_id", user)?;
    let mut tx = db.begin_write().await?;
    check_course(&mut tx, tenant, course).await?;
    if !super::model::is_member(&mut *tx, tenant, user).await? {
        return Err(LearningError::not_found("user", user));
    }
    if let Some(cohort) = cohort {
        check_id("cohort_id", cohort)?;
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM cohorts WHERE tenant_id = $1 AND course_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(course)
        .bind(cohort)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Err(LearningError::not_found("cohort", cohort));
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO enrollments (tenant_id, course_id, user_id, cohort_id, status, enrolled_at) \
         VALUES ($1, $2, $3, $4, 'active', $5) \
         ON CONFLICT (tenant_id, course_id, user_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(course)
    .bind(user)
    .bind(cohort)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let reactivated = !inserted
        && sqlx::query(
            "UPDATE enrollments SET status = 'active', dropped_at = NULL, \
             cohort_id = COALESCE($4, cohort_id) \
             WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3 AND status = 'dropped'",
        )
        .bind(tenant)
        .bind(course)
        .bind(user)
        .bind(cohort)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
    if inserted || reactivated {
        let payload = serde_json::json!({
            "course_id": course,
            "user_id": user,
            "cohort_id": cohort,
            "reactivated": reactivated,
        });
        events::append(
            &mut tx,
            &[NewEvent {
                kind: EventKind::Enrolled,
                tenant_id: tenant.to_owned(),
                aggregate_id: course.to_owned(),
                payload,
            }],
            now_ms,
        )
        .await?;
        // Units may have been completed before enrolling (a submission, an
        // instructor's result): the course may be complete already.
        complete_course_if_done(db, &mut tx, tenant, course, user, now_ms).await?;
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3"
    ))
    .bind(tenant)
    .bind(course)
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    let stored = enrollment(&row)?;
    tx.commit().await?;
    Ok(if inserted {
        Enrolled::Created(stored)
    } else {
        Enrolled::Existing(stored)
    })
}

/// Drops `user` from `course`; dropping a dropped enrollment changes
/// nothing. Writes an `enrollment_dropped` event when it changes.
///
/// # Errors
/// [`LearningError::NotFound`] when there is no such enrollment.
pub async fn drop_enrollment(
    db: &Db,
    tenant: &str,
    course: &str,
    user: &str,
    now_ms: i64,
) -> Result<Enrollment, LearningError> {
    let mut tx = db.begin_write().await?;
    let dropped = sqlx::query(
        "UPDATE enrollments SET status = 'dropped', dropped_at = $4 \
         WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3 AND status <> 'dropped'",
    )
    .bind(tenant)
    .bind(course)
    .bind(user)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if dropped {
        events::append(
            &mut tx,
            &[NewEvent {
                kind: EventKind::EnrollmentDropped,
                tenant_id: tenant.to_owned(),
                aggregate_id: course.to_owned(),
                payload: serde_json::json!({"course_id": course, "user_id": user}),
            }],
            now_ms,
        )
        .await?;
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3"
    ))
    .bind(tenant)
    .bind(course)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| LearningError::not_found("enrollment", user))?;
    let stored = enrollment(&row)?;
    tx.commit().await?;
    Ok(stored)
}

/// `user`'s enrollment in `course`, if any.
///
/// # Errors
/// Database failures.
pub async fn get<'e, E>(
    executor: E,
    tenant: &str,
    course: &str,
    user: &str,
) -> Result<Option<Enrollment>, LearningError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3"
    ))
    .bind(tenant)
    .bind(course)
    .bind(user)
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(enrollment)
    .transpose()
}

/// A page of a course's enrollments in user id order, after the user id
/// `after`, optionally one cohort's.
///
/// # Errors
/// [`LearningError::NotFound`] for a course not in the tenant.
pub async fn list_for_course(
    db: &Db,
    tenant: &str,
    course: &str,
    cohort: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Enrollment>, LearningError> {
    let mut conn = db.pool().acquire().await?;
    check_course(&mut conn, tenant, course).await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE tenant_id = $1 AND course_id = $2 \
         AND ($3 = '' OR cohort_id = $3) AND user_id > $4 ORDER BY user_id LIMIT $5"
    ))
    .bind(tenant)
    .bind(course)
    .bind(cohort.unwrap_or(""))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(enrollment).collect()
}

/// A page of `user`'s enrollments in course id order, after `after`.
///
/// # Errors
/// Database failures.
pub async fn list_for_user(
    db: &Db,
    tenant: &str,
    user: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Enrollment>, LearningError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE tenant_id = $1 AND user_id = $2 \
         AND course_id > $3 ORDER BY course_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(user)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(enrollment).collect()
}

/// Creates a cohort in a course.
///
/// # Errors
/// [`LearningError::Invalid`] for a bad name, [`LearningError::Conflict`]
/// for a name the course has already, [`LearningError::NotFound`] for an
/// unknown course.
pub async fn create_cohort(
    db: &Db,
    tenant: &str,
    course: &str,
    request: &NewCohort,
    now_ms: i64,
) -> Result<Cohort, LearningError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > COHORT_NAME_CHARS_MAX {
        return Err(LearningError::Invalid(format!(
            "name must be 1 to {COHORT_NAME_CHARS_MAX} characters"
        )));
    }
    let mut tx = db.begin_write().await?;
    check_course(&mut tx, tenant, course).await?;
    let cohort = Cohort {
        id: uuid::Uuid::now_v7().to_string(),
        course_id: course.to_owned(),
        name: name.to_owned(),
        created_at: now_ms,
    };
    let inserted = sqlx::query(
        "INSERT INTO cohorts (id, tenant_id, course_id, name, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, course_id, name) DO NOTHING",
    )
    .bind(&cohort.id)
    .bind(tenant)
    .bind(course)
    .bind(&cohort.name)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Err(LearningError::Conflict(format!(
            "the course has a cohort named {name:?} already"
        )));
    }
    tx.commit().await?;
    Ok(cohort)
}

/// A page of a course's cohorts in creation order.
///
/// # Errors
/// [`LearningError::NotFound`] for an unknown course.
pub async fn list_cohorts(
    db: &Db,
    tenant: &str,
    course: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Cohort>, LearningError> {
    let mut conn = db.pool().acquire().await?;
    check_course(&mut conn, tenant, course).await?;
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT id, course_id, name, created_at FROM cohorts \
         WHERE tenant_id = $1 AND course_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(course)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, course_id, name, created_at)| Cohort {
            id,
            course_id,
            name,
            created_at,
        })
        .collect())
}

/// How many units of `course` are published, and how many of those
/// `user` has completed: the one count behind course completion and the
/// progress page.
pub(crate) async fn published_and_completed(
    conn: &mut AnyConnection,
    tenant: &str,
    course: &str,
    user: &str,
) -> Result<(i64, i64), LearningError> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), COUNT(r.unit_id) FROM units u \
         LEFT JOIN unit_results r \
           ON r.tenant_id = u.tenant_id AND r.user_id = $3 AND r.unit_id = u.id \
         WHERE u.tenant_id = $1 AND u.course_id = $2 AND u.published_version > 0",
    )
    .bind(tenant)
    .bind(course)
    .bind(user)
    .fetch_one(conn)
    .await?)
}

/// Completes `user`'s active enrollment in `course` when every published
/// unit of it has a result; answers whether it did. Locks the enrollment
/// row before counting (see the module docs).
pub(crate) async fn complete_course_if_done(
    db: &Db,
    conn: &mut AnyConnection,
    tenant: &str,
    course: &str,
    user: &str,
    now_ms: i64,
) -> Result<bool, LearningError> {
    let status: Option<String> = sqlx::query_scalar(&format!(
        "SELECT status FROM enrollments WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3{}",
        db.lock_clause()
    ))
    .bind(tenant)
    .bind(course)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    if status.as_deref() != Some("active") {
        return Ok(false);
    }
    let (total, completed) = published_and_completed(conn, tenant, course, user).await?;
    if total == 0 || completed < total {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE enrollments SET status = 'completed', completed_at = $4 \
         WHERE tenant_id = $1 AND course_id = $2 AND user_id = $3 AND status = 'active'",
    )
    .bind(tenant)
    .bind(course)
    .bind(user)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    events::append(
        conn,
        &[NewEvent {
            kind: EventKind::EnrollmentCompleted,
            tenant_id: tenant.to_owned(),
            aggregate_id: course.to_owned(),
            payload: serde_json::json!({"course_id": course, "user_id": user, "units": total}),
        }],
        now_ms,
    )
    .await?;
    Ok(true)
}
