//! The content and path routes under `/api/v1`. Authoring (creating,
//! editing, publishing, prerequisites, recording results, reading drafts)
//! needs the instructor role in the tenant, or an operator, who acts
//! fleet-wide: an operator's request about an id is scoped to the tenant
//! that owns it. Learners read published content of their own tenant. Every
//! other tenant's ids are unknown (404), never data.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{
    is_author, page, query, tenant_of, ApiError, Caller, Page, PageQuery, AUTHORS,
};
use crate::content::courses::{self, Course, Module, NewCourse, NewModule, Owned};
use crate::content::model::Limits;
use crate::content::paths::{
    self, FrontierUnit, NewPrerequisite, NewResult, Prerequisite, UnitResult,
};
use crate::content::units::{self, DraftUpdate, NewUnit, Published, Unit, UnitSummary, View};
use crate::error::ControlPlaneError;
use crate::service::ControlPlane;

fn limits(cp: &ControlPlane) -> Limits {
    Limits::from_config(cp.config())
}

pub(super) async fn create_course(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<NewCourse>, JsonRejection>,
) -> Result<(StatusCode, Json<Course>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let course = courses::create_course(
        cp.db(),
        &caller.0.tid,
        &caller.0.sub,
        &request,
        cp.clock().now_ms(),
    )
    .await?;
    cp.content_cache().invalidate(&caller.0.tid);
    Ok((StatusCode::CREATED, Json(course)))
}

/// A JSON body as the cache holds it.
type CachedJson = ([(header::HeaderName, &'static str); 1], Bytes);

fn cached_json(body: Bytes) -> CachedJson {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

fn to_json_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        ControlPlaneError::BadRequest(format!("unserialisable answer: {err}")).into()
    })
}

/// The catalogue, through the stale-while-revalidate cache (keyed by the
/// tenant and the page asked for).
pub(super) async fn list_courses(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<CachedJson, ApiError> {
    let q = query(q)?;
    let limit = limits(&cp).page_size(q.limit)?;
    let tenant = caller.0.tid.clone();
    let after = q.after.unwrap_or_default();
    let resource = format!("courses?limit={limit}&after={after}");
    let db = cp.db().clone();
    let key_tenant = tenant.clone();
    let body = cp
        .content_cache()
        .get_or_load(&key_tenant, &resource, move || {
            let (db, tenant, after) = (db.clone(), tenant.clone(), after.clone());
            async move {
                let after = (!after.is_empty()).then_some(after.as_str());
                let items = courses::list_courses(&db, &tenant, after, limit).await?;
                to_json_bytes(&page(items, limit, |c: &Course| &c.id))
            }
        })
        .await?;
    Ok(cached_json(body))
}

/// A course page, through the same cache.
pub(super) async fn get_course(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<CachedJson, ApiError> {
    let tenant = tenant_of(&cp, &caller, Owned::Course, &id).await?;
    let resource = format!("course/{id}");
    let db = cp.db().clone();
    let key_tenant = tenant.clone();
    let body = cp
        .content_cache()
        .get_or_load(&key_tenant, &resource, move || {
            let (db, tenant, id) = (db.clone(), tenant.clone(), id.clone());
            async move { to_json_bytes(&courses::get_course(&db, &tenant, &id).await?) }
        })
        .await?;
    Ok(cached_json(body))
}

pub(super) async fn create_module(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<NewModule>, JsonRejection>,
) -> Result<(StatusCode, Json<Module>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Course, &id).await?;
    let module =
        courses::create_module(cp.db(), &tenant, &id, &request, cp.clock().now_ms()).await?;
    cp.content_cache().invalidate(&tenant);
    Ok((StatusCode::CREATED, Json(module)))
}

pub(super) async fn list_modules(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Module>>, ApiError> {
    let q = query(q)?;
    let limit = limits(&cp).page_size(q.limit)?;
    let tenant = tenant_of(&cp, &caller, Owned::Course, &id).await?;
    let items = courses::list_modules(cp.db(), &tenant, &id, q.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |m: &Module| &m.id)))
}

pub(super) async fn create_unit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<NewUnit>, JsonRejection>,
) -> Result<(StatusCode, Json<Unit>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Module, &id).await?;
    let unit = units::create_unit(
        cp.db(),
        &tenant,
        &id,
        request,
        &limits(&cp),
        cp.clock().now_ms(),
    )
    .await?;
    cp.content_cache().invalidate(&tenant);
    Ok((StatusCode::CREATED, Json(unit)))
}

pub(super) async fn list_units(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<UnitSummary>>, ApiError> {
    let q = query(q)?;
    let limit = limits(&cp).page_size(q.limit)?;
    let tenant = tenant_of(&cp, &caller, Owned::Module, &id).await?;
    let items = units::list_units(
        cp.db(),
        &tenant,
        &id,
        !is_author(&caller),
        q.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page(items, limit, |u: &UnitSummary| &u.id)))
}

/// `?view=` of `GET /api/v1/units/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitQuery {
    /// `learner` (default), `published` or `draft`; the last two need an
    /// author.
    #[serde(default)]
    pub view: View,
}

pub(super) async fn get_unit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<UnitQuery>, QueryRejection>,
) -> Result<Json<Unit>, ApiError> {
    let q = query(q)?;
    if q.view != View::Learner {
        caller.require_any(&AUTHORS)?;
    }
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    Ok(Json(units::get_unit(cp.db(), &tenant, &id, q.view).await?))
}

/// `?tenant_id=` of `GET /api/v1/grading/units/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradingQuery {
    /// The tenant of the learner being graded (from their token).
    pub tenant_id: String,
}

/// The complete latest published version of a unit, hidden tests included,
/// for the edge that grades a learner's submission against it. Only edges
/// (the service key) may read it: the hidden tests must never reach a
/// browser, and the edge names the tenant from the learner's verified token.
pub(super) async fn grading_unit(
    State(cp): State<ControlPlane>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<GradingQuery>, QueryRejection>,
) -> Result<Json<Unit>, ApiError> {
    super::extract::check_service_key(&cp, &headers).map_err(|_| {
        ControlPlaneError::BadToken(
            "units with their hidden tests are read by edge nodes with the service key \
             (control_plane.edge_service_key)"
                .into(),
        )
    })?;
    let q = query(q)?;
    Ok(Json(
        units::get_unit(cp.db(), &q.tenant_id, &id, View::Published).await?,
    ))
}

pub(super) async fn update_draft(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<DraftUpdate>, JsonRejection>,
) -> Result<Json<Unit>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    let unit = units::update_draft(
        cp.db(),
        &tenant,
        &id,
        request,
        &limits(&cp),
        cp.clock().now_ms(),
    )
    .await?;
    cp.content_cache().invalidate(&tenant);
    Ok(Json(unit))
}

pub(super) async fn publish(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    let published =
        units::publish(cp.db(), &tenant, &id, &caller.0.sub, cp.clock().now_ms()).await?;
    cp.content_cache().invalidate(&tenant);
    let status = if published.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(published)))
}

pub(super) async fn add_prerequisite(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<NewPrerequisite>, JsonRejection>,
) -> Result<(StatusCode, Json<Prerequisite>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    let edge = paths::add_prerequisite(
        cp.db(),
        &tenant,
        &id,
        &request,
        &limits(&cp),
        cp.clock().now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(edge)))
}

/// Answer of `GET /api/v1/units/{id}/prerequisites`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Prerequisites {
    /// Every prerequisite of the unit (at most `path_edges_per_unit_max`).
    pub items: Vec<Prerequisite>,
}

pub(super) async fn list_prerequisites(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Prerequisites>, ApiError> {
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    let items = paths::list_prerequisites(cp.db(), &tenant, &id).await?;
    Ok(Json(Prerequisites { items }))
}

pub(super) async fn remove_prerequisite(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((id, prerequisite_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_any(&AUTHORS)?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    paths::remove_prerequisite(cp.db(), &tenant, &id, &prerequisite_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn record_result(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    body: Result<Json<NewResult>, JsonRejection>,
) -> Result<Json<UnitResult>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &id).await?;
    let result = paths::record_result(
        cp.db(),
        &tenant,
        &id,
        &user_id,
        &request,
        cp.clock().now_ms(),
    )
    .await?;
    Ok(Json(result))
}

/// `?user_id=&limit=&after=` of `GET /api/v1/paths/frontier`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontierQuery {
    /// Whose frontier: learners may only name themselves (or leave it out);
    /// authors must name a member of the tenant.
    pub user_id: Option<String>,
    /// Items per page, 1 to `content_page_size_max`; default 100.
    pub limit: Option<u32>,
    /// Return units whose id sorts after this one.
    pub after: Option<String>,
}

pub(super) async fn frontier(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<FrontierQuery>, QueryRejection>,
) -> Result<Json<Page<FrontierUnit>>, ApiError> {
    let q = query(q)?;
    let limit = limits(&cp).page_size(q.limit)?;
    let tenant = &caller.0.tid;
    let user = if is_author(&caller) {
        let user = q.user_id.ok_or_else(|| {
            ControlPlaneError::BadRequest("user_id is needed to read a learner's frontier".into())
        })?;
        paths::check_member(cp.db(), tenant, &user).await?;
        user
    } else {
        match q.user_id {
            Some(user) if user != caller.0.sub => {
                return Err(ControlPlaneError::Forbidden(
                    "learners may only read their own frontier".into(),
                )
                .into())
            }
            _ => caller.0.sub.clone(),
        }
    };
    let items = paths::frontier(cp.db(), tenant, &user, q.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |u: &FrontierUnit| &u.unit_id)))
}
