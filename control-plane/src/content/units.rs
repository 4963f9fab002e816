//! Units: drafts, published versions and the three views of one.
//!
//! The draft lives on the `units` row and is edited in place. [`publish`]
//! copies it into `unit_versions` as version `n + 1` and bumps the unit's
//! `published_version`, in one transaction that holds the unit's row lock
//! (SQLite: the database write lock), so two concurrent publishes get two
//! different numbers and never the same one. A version row is never updated
//! (the database refuses), so the version a submission names keeps meaning
//! what the learner saw. Publishing a draft equal to the latest version
//! makes no new version and answers the existing one.
//!
//! Views: `learner` (the latest published version without hidden tests and
//! answer keys; what every learner gets), `published` (the same, complete,
//! for authors) and `draft` (authors).

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::body::{UnitBody, UnitKind};
use super::courses::get_module;
use super::error::ContentError;
use super::model::check_title;
use super::model::new_id;
use super::model::Limits;
use crate::db::{Db, DbKind};

/// Which form of a unit to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Latest published version, hidden tests and answer keys removed.
    #[default]
    Learner,
    /// Latest published version, complete (authors only).
    Published,
    /// The current draft (authors only).
    Draft,
}

/// A unit as one of its views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unit {
    /// Server-chosen id.
    pub id: String,
    /// The course it belongs to.
    pub course_id: String,
    /// The module it belongs to.
    pub module_id: String,
    /// Its kind, fixed at creation.
    pub kind: UnitKind,
    /// Which view this is.
    pub view: View,
    /// Title of this view.
    pub title: String,
    /// The version shown: absent for a draft. A submission records it.
    pub version: Option<i64>,
    /// Latest published version; absent until the first publish.
    pub published_version: Option<i64>,
    /// The body of this view.
    pub body: serde_json::Value,
    /// When this view was last written (draft edit or publish), unix ms.
    pub updated_at: i64,
}

/// A unit in a module's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitSummary {
    /// Unit id.
    pub id: String,
    /// Its kind.
    pub kind: UnitKind,
    /// Published title for learners, draft title for authors.
    pub title: String,
    /// Latest published version; absent until the first publish.
    pub published_version: Option<i64>,
}

/// Body of `POST /api/v1/modules/{id}/units`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    /// `lesson`, `quiz`, `assignment` or `live_classroom`.
    pub kind: UnitKind,
    /// 1 to 200 characters.
    pub title: String,
    /// The kind's body; see [`super::body`].
    pub body: serde_json::Value,
}

/// Body of `PUT /api/v1/units/{id}`: replaces the draft.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftUpdate {
    /// New title; unchanged when absent.
    #[serde(default)]
    pub title: Option<String>,
    /// The whole new body, of the unit's kind.
    pub body: serde_json::Value,
}

/// What [`publish`] answers: the version and whether this call made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Published {
    /// The published unit (the `published` view).
    pub unit: Unit,
    /// `false` when the draft equalled the latest version already.
    pub created: bool,
}

fn to_text(body: &UnitBody) -> Result<String, ContentError> {
    serde_json::to_string(body).map_err(|err| ContentError::Corrupt(format!("body: {err}")))
}

fn from_text(kind: UnitKind, text: &str) -> Result<UnitBody, ContentError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| ContentError::Corrupt(format!("stored body: {err}")))?;
    UnitBody::parse(kind, value).map_err(|err| ContentError::Corrupt(format!("stored body: {err}")))
}

fn version_of(published: i64) -> Option<i64> {
    (published > 0).then_some(published)
}

/// Creates a unit (a draft, unpublished) at the end of a module.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown module, [`ContentError::Invalid`]
/// or [`ContentError::BodyTooLarge`] for a bad body.
pub async fn create_unit(
    db: &Db,
    tenant: &str,
    module_id: &str,
    request: NewUnit,
    limits: &Limits,
    now_ms: i64,
) -> Result<Unit, ContentError> {
    let title = check_title("title", &request.title)?;
    let body = UnitBody::from_request(request.kind, request.body, limits)?;
    let module = get_module(db, tenant, module_id).await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO units (id, tenant_id, course_id, module_id, kind, draft_title, draft_body, \
         draft_updated_at, published_version, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(&module.course_id)
    .bind(&module.id)
    .bind(request.kind.as_str())
    .bind(&title)
    .bind(to_text(&body)?)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(Unit {
        id,
        course_id: module.course_id,
        module_id: module.id,
        kind: request.kind,
        view: View::Draft,
        title,
        version: None,
        published_version: None,
        body: body.to_json()?,
        updated_at: now_ms,
    })
}

/// The unit row: ids, kind, draft and latest version number.
struct Row {
    course_id: String,
    module_id: String,
    kind: UnitKind,
    draft_title: String,
    draft_body: String,
    draft_updated_at: i64,
    published_version: i64,
}

type RawRow = (String, String, String, String, String, i64, i64);

async fn fetch_row<'e, E>(
    executor: E,
    tenant: &str,
    id: &str,
    lock: &str,
) -> Result<Row, ContentError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let raw = sqlx::query_as::<_, RawRow>(&format!(
        "SELECT course_id, module_id, kind, draft_title, draft_body, draft_updated_at, \
         published_version FROM units WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| ContentError::not_found("unit", id))?;
    let (course_id, module_id, kind, draft_title, draft_body, draft_updated_at, published) = raw;
    Ok(Row {
        course_id,
        module_id,
        kind: UnitKind::parse(&kind)?,
        draft_title,
        draft_body,
        draft_updated_at,
        published_version: published,
    })
}

/// Replaces a unit's draft (body, and title when given).
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown unit; a bad title or body.
pub async fn update_draft(
    db: &Db,
    tenant: &str,
    id: &str,
    request: DraftUpdate,
    limits: &Limits,
    now_ms: i64,
) -> Result<Unit, ContentError> {
    let title = request
        .title
        .as_deref()
        .map(|t| check_title("title", t))
        .transpose()?;
    let row = fetch_row(db.pool(), tenant, id, "").await?;
    let body = UnitBody::from_request(row.kind, request.body, limits)?;
    let title = title.unwrap_or(row.draft_title);
    let updated = sqlx::query(
        "UPDATE units SET draft_title = $1, draft_body = $2, draft_updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5",
    )
    .bind(&title)
    .bind(to_text(&body)?)
    .bind(now_ms)
    .bind(tenant)
    .bind(id)
    .execute(db.pool())
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ContentError::not_found("unit", id));
    }
    Ok(Unit {
        id: id.to_owned(),
        course_id: row.course_id,
        module_id: row.module_id,
        kind: row.kind,
        view: View::Draft,
        title,
        version: None,
        published_version: version_of(row.published_version),
        body: body.to_json()?,
        updated_at: now_ms,
    })
}

async fn begin(db: &Db) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match db.kind() {
        DbKind::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await,
        DbKind::Postgres => db.pool().begin().await,
    }
}

fn lock_clause(db: &Db) -> &'static str {
    match db.kind() {
        DbKind::Sqlite => "",
        DbKind::Postgres => " FOR NO KEY UPDATE",
    }
}

/// Freezes a unit's draft as its next version.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown unit; database errors.
/// Cancel safety: one transaction; dropped before commit, nothing changes.
pub async fn publish(
    db: &Db,
    tenant: &str,
    id: &str,
    publisher: &str,
    now_ms: i64,
) -> Result<Published, ContentError> {
    let mut tx = begin(db).await?;
    let row = fetch_row(&mut *tx, tenant, id, lock_clause(db)).await?;
    let draft = from_text(row.kind, &row.draft_body)?;
    if row.published_version > 0 {
        let (title, body, at) = latest(&mut tx, tenant, id, row.published_version).await?;
        if title == row.draft_title && from_text(row.kind, &body)? == draft {
            tx.rollback().await?;
            return Ok(Published {
                unit: Unit {
                    id: id.to_owned(),
                    course_id: row.course_id,
                    module_id: row.module_id,
                    kind: row.kind,
                    view: View::Published,
                    title,
                    version: Some(row.published_version),
                    published_version: Some(row.published_version),
                    body: draft.to_json()?,
                    updated_at: at,
                },
                created: false,
            });
        }
    }
    let version = row.published_version + 1;
    sqlx::query(
        "INSERT INTO unit_versions (tenant_id, unit_id, version, title, body, published_by, \
         published_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .bind(&row.draft_title)
    .bind(&row.draft_body)
    .bind(publisher)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let bumped = sqlx::query(
        "UPDATE units SET published_version = $1 \
         WHERE tenant_id = $2 AND id = $3 AND published_version = $4",
    )
    .bind(version)
    .bind(tenant)
    .bind(id)
    .bind(row.published_version)
    .execute(&mut *tx)
    .await?;
    if bumped.rows_affected() != 1 {
        // Cannot happen under the row lock; refuse rather than skip a number.
        return Err(ContentError::Conflict(format!(
            "unit {id} was published concurrently; try again"
        )));
    }
    if let UnitBody::LiveClassroom(class) = &draft {
        keep_schedule(&mut tx, tenant, id, &row.course_id, class).await?;
    }
    tx.commit().await?;
    Ok(Published {
        unit: Unit {
            id: id.to_owned(),
            course_id: row.course_id,
            module_id: row.module_id,
            kind: row.kind,
            view: View::Published,
            title: row.draft_title,
            version: Some(version),
            published_version: Some(version),
            body: draft.to_json()?,
            updated_at: now_ms,
        },
        created: true,
    })
}

/// Keeps a published live class's schedule in `live_class_schedules`, the
/// index the forecast reads a window of timetable sessions from (a live
/// class counts as one without an import).
async fn keep_schedule(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
    course_id: &str,
    class: &super::body::LiveClassroom,
) -> Result<(), ContentError> {
    // The body was checked when the draft was saved: an unreadable start
    // here is a bug, and the unit is refused rather than half-published.
    let starts_at = super::body::rfc3339_unix_ms(&class.schedule.starts_at).ok_or_else(|| {
        ContentError::Invalid(format!(
            "schedule.starts_at {:?} is not an RFC 3339 date-time",
            class.schedule.starts_at
        ))
    })?;
    let ends_at = starts_at + i64::from(class.schedule.duration_minutes) * 60_000;
    sqlx::query(
        "INSERT INTO live_class_schedules (tenant_id, unit_id, course_id, cohort, region, \
         starts_at, ends_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, unit_id) DO UPDATE SET course_id = excluded.course_id, \
         cohort = excluded.cohort, region = excluded.region, starts_at = excluded.starts_at, \
         ends_at = excluded.ends_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(course_id)
    .bind(&class.cohort)
    .bind(&class.region)
    .bind(starts_at)
    .bind(ends_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn latest(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
    version: i64,
) -> Result<(String, String, i64), ContentError> {
    sqlx::query_as::<_, (String, String, i64)>(
        "SELECT title, body, published_at FROM unit_versions \
         WHERE tenant_id = $1 AND unit_id = $2 AND version = $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ContentError::Corrupt(format!("unit {id} has no version {version}")))
}

/// Reads one view of a unit. Whether the caller may ask for `view` is the
/// HTTP layer's business.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown unit,
/// [`ContentError::NotPublished`] for a published or learner view of a unit
/// never published.
pub async fn get_unit(db: &Db, tenant: &str, id: &str, view: View) -> Result<Unit, ContentError> {
    let row = fetch_row(db.pool(), tenant, id, "").await?;
    let published_version = version_of(row.published_version);
    if view == View::Draft {
        let body = from_text(row.kind, &row.draft_body)?;
        return Ok(Unit {
            id: id.to_owned(),
            course_id: row.course_id,
            module_id: row.module_id,
            kind: row.kind,
            view,
            title: row.draft_title,
            version: None,
            published_version,
            body: body.to_json()?,
            updated_at: row.draft_updated_at,
        });
    }
    let version = published_version.ok_or_else(|| ContentError::NotPublished(id.to_owned()))?;
    let (title, text, at) = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT title, body, published_at FROM unit_versions \
         WHERE tenant_id = $1 AND unit_id = $2 AND version = $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| ContentError::Corrupt(format!("unit {id} has no version {version}")))?;
    let body = from_text(row.kind, &text)?;
    let body = match view {
        View::Learner => body.learner_view(),
        View::Published | View::Draft => body,
    };
    Ok(Unit {
        id: id.to_owned(),
        course_id: row.course_id,
        module_id: row.module_id,
        kind: row.kind,
        view,
        title,
        version: Some(version),
        published_version,
        body: body.to_json()?,
        updated_at: at,
    })
}

/// A page of a module's units in creation order. Learners (`published_only`)
/// see published units only, under their published titles; authors see
/// every unit under its draft title.
///
/// # Errors
/// [`ContentError::NotFound`] for an unknown module; database errors.
pub async fn list_units(
    db: &Db,
    tenant: &str,
    module_id: &str,
    published_only: bool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<UnitSummary>, ContentError> {
    get_module(db, tenant, module_id).await?;
    let sql = if published_only {
        "SELECT u.id, u.kind, v.title, u.published_version FROM units u \
         JOIN unit_versions v ON v.unit_id = u.id AND v.version = u.published_version \
         WHERE u.tenant_id = $1 AND u.module_id = $2 AND u.id > $3 \
         ORDER BY u.id LIMIT $4"
    } else {
        "SELECT u.id, u.kind, u.draft_title, u.published_version FROM units u \
         WHERE u.tenant_id = $1 AND u.module_id = $2 AND u.id > $3 \
         ORDER BY u.id LIMIT $4"
    };
    let rows = sqlx::query_as::<_, (String, String, String, i64)>(sql)
        .bind(tenant)
        .bind(module_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|(id, kind, title, published)| {
            Ok(UnitSummary {
                id,
                kind: UnitKind::parse(&kind)?,
                title,
                published_version: version_of(published),
            })
        })
        .collect()
}
