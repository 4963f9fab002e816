//! Courses and their modules: the containers units live in. Neither is
//! versioned (titles are not graded against); only unit bodies are. Lists
//! are in id order, which is creation order (UUIDv7), paged by `after`.

use serde::{Deserialize, Serialize};

use super::error::ContentError;
use super::model::check_title;
use super::model::new_id;
use super::model::SUMMARY_BYTES_MAX;
use crate::db::Db;

/// A course as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Course {
    /// Server-chosen id.
    pub id: String,
    /// Title shown in the catalogue.
    pub title: String,
    /// Short description (Markdown).
    pub summary: String,
    /// Who created it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A module (a chapter of a course).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Module {
    /// Server-chosen id.
    pub id: String,
    /// The course it belongs to.
    pub course_id: String,
    /// Title.
    pub title: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Body of `POST /api/v1/courses`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCourse {
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 4096 bytes; empty when absent.
    #[serde(default)]
    pub summary: String,
}

/// Body of `POST /api/v1/courses/{id}/modules`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModule {
    /// 1 to 200 characters.
    pub title: String,
}

type CourseRow = (String, String, String, String, i64);

fn course_from_row((id, title, summary, created_by, created_at): CourseRow) -> Course {
    Course {
        id,
        title,
        summary,
        created_by,
        created_at,
    }
}

/// Creates a course in `tenant`.
///
/// # Errors
/// [`ContentError::Invalid`] for a bad title or summary; database errors.
pub async fn create_course(
    db: &Db,
    tenant: &str,
    author: &str,
    request: &NewCourse,
    now_ms: i64,
) -> Result<Course, ContentError> {
    let title = check_title("title", &request.title)?;
    if request.summary.len() > SUMMARY_BYTES_MAX {
        return Err(ContentError::Invalid(format!(
            "summary must be at most {SUMMARY_BYTES_MAX} bytes"
        )));
    }
    let course = Course {
        id: new_id(),
        title,
        summary: request.summary.clone(),
        created_by: author.to_owned(),
        created_at: now_ms,
    };
    sqlx::query(
        "INSERT INTO courses (id, tenant_id, title, summary, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&course.id)
    .bind(tenant)
    .bind(&course.title)
    .bind(&course.summary)
    .bind(&course.created_by)
    .bind(course.created_at)
    .execute(db.pool())
    .await?;
    Ok(course)
}

/// One course of `tenant`.
///
/// # Errors
/// [`ContentError::NotFound`] when it is not there (or not this tenant's).
pub async fn get_course(db: &Db, tenant: &str, id: &str) -> Result<Course, ContentError> {
    sqlx::query_as::<_, CourseRow>(
        "SELECT id, title, summary, created_by, created_at FROM courses \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .map(course_from_row)
    .ok_or_else(|| ContentError::not_found("course", id))
}

/// A page of `tenant`'s courses, after the id `after`.
///
/// # Errors
/// Database errors.
pub async fn list_courses(
    db: &Db,
    tenant: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Course>, ContentError> {
    let rows = sqlx::query_as::<_, CourseRow>(
        "SELECT id, title, summary, created_by, created_at FROM courses \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(course_from_row).collect())
}

/// Adds a module at the end of a course of `tenant`.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown course; a bad title.
pub async fn create_module(
    db: &Db,
    tenant: &str,
    course_id: &str,
    request: &NewModule,
    now_ms: i64,
) -> Result<Module, ContentError> {
    let title = check_title("title", &request.title)?;
    get_course(db, tenant, course_id).await?;
    let module = Module {
        id: new_id(),
        course_id: course_id.to_owned(),
        title,
        created_at: now_ms,
    };
    sqlx::query(
        "INSERT INTO course_modules (id, tenant_id, course_id, title, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&module.id)
    .bind(tenant)
    .bind(&module.course_id)
    .bind(&module.title)
    .bind(module.created_at)
    .execute(db.pool())
    .await?;
    Ok(module)
}

/// One module of `tenant`.
///
/// # Errors
/// [`ContentError::NotFound`] when it is not there (or not this tenant's).
pub async fn get_module(db: &Db, tenant: &str, id: &str) -> Result<Module, ContentError> {
    sqlx::query_as::<_, (String, String, String, i64)>(
        "SELECT id, course_id, title, created_at FROM course_modules \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .map(|(id, course_id, title, created_at)| Module {
        id,
        course_id,
        title,
        created_at,
    })
    .ok_or_else(|| ContentError::not_found("module", id))
}

/// A page of a course's modules, in creation order.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown course; database errors.
pub async fn list_modules(
    db: &Db,
    tenant: &str,
    course_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Module>, ContentError> {
    get_course(db, tenant, course_id).await?;
    let rows = sqlx::query_as::<_, (String, String, String, i64)>(
        "SELECT id, course_id, title, created_at FROM course_modules \
         WHERE tenant_id = $1 AND course_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(course_id)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, course_id, title, created_at)| Module {
            id,
            course_id,
            title,
            created_at,
        })
        .collect())
}

/// The tenant that owns a course, module or unit, for operators, who act
/// fleet-wide: their requests are then scoped to that tenant like anyone's.
///
/// # Errors
/// [`ContentError::NotFound`] when no such thing exists anywhere.
pub async fn owner_tenant(db: &Db, what: Owned, id: &str) -> Result<String, ContentError> {
    let table = match what {
        Owned::Course => "courses",
        Owned::Module => "course_modules",
        Owned::Unit => "units",
    };
    sqlx::query_scalar::<_, String>(&format!("SELECT tenant_id FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| ContentError::not_found(what.as_str(), id))
}

/// What [`owner_tenant`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// A course id.
    Course,
    /// A module id.
    Module,
    /// A unit id.
    Unit,
}

impl Owned {
    fn as_str(self) -> &'static str {
        match self {
            Self::Course => "course",
            Self::Module => "module",
            Self::Unit => "unit",
        }
    }
}
