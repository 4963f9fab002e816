//! The public catalogue: a tenant's courses as server-rendered HTML at
//! `/catalogue/{slug}` and `/catalogue/{slug}/courses/{id}`, readable with
//! no account and no JavaScript, so that they load fast and search engines
//! index them. Only tenants whose authors made the catalogue public
//! (`PUT /api/v1/catalogue/settings`, off by default) have one, and only
//! published units show, under their published titles; drafts, answer keys
//! and tests never appear.
//!
//! Pages go through the content cache (stale-while-revalidate, per tenant),
//! which every content change and every change of the setting invalidates.
//! The pages are in English; the app behind "sign up" speaks ten languages.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiError, Caller, AUTHORS};
use crate::catalogue::{self, CatalogueSettings, CatalogueSettingsUpdate, CourseCard};
use crate::content::{courses, units, ContentError, Limits, UnitKind};
use crate::error::ControlPlaneError;
use crate::service::ControlPlane;

/// `Cache-Control` of the public pages: shared caches may keep them a minute.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=60";

/// `?after=` of the public catalogue page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueQuery {
    /// Courses whose id sorts after this one.
    pub after: Option<String>,
}

#[derive(Template)]
#[template(path = "catalogue/index.html")]
pub(super) struct IndexPage<'a> {
    slug: &'a str,
    tenant_name: &'a str,
    courses: Vec<CourseCard>,
    next_after: Option<String>,
}

#[derive(Template)]
#[template(path = "catalogue/course.html")]
pub(super) struct CoursePage<'a> {
    slug: &'a str,
    tenant_name: &'a str,
    course: courses::Course,
    modules: Vec<ModuleView>,
}

pub(super) struct ModuleView {
    title: String,
    units: Vec<UnitView>,
}

pub(super) struct UnitView {
    title: String,
    kind: &'static str,
}

#[derive(Template)]
#[template(path = "catalogue/missing.html")]
pub(super) struct MissingPage<'a> {
    slug: &'a str,
    tenant_name: &'a str,
    message: &'a str,
}

fn kind_label(kind: UnitKind) -> &'static str {
    match kind {
        UnitKind::Lesson => "Lesson",
        UnitKind::Quiz => "Quiz",
        UnitKind::Assignment => "Assignment",
        UnitKind::LiveClassroom => "Live class",
    }
}

fn html(status: StatusCode, body: Bytes, cache: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

fn missing(message: &str) -> Response {
    let page = MissingPage {
        slug: "",
        tenant_name: "Lyceum",
        message,
    };
    let body = page.render().unwrap_or_else(|_| message.to_owned());
    html(StatusCode::NOT_FOUND, Bytes::from(body), "no-cache")
}

fn failed(err: &ControlPlaneError) -> Response {
    tracing::error!(error = %err, "a public catalogue page failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        Bytes::from_static(
            b"<!doctype html><title>Error</title><p>Something went wrong; try again.",
        ),
        "no-cache",
    )
}

fn rendered(page: &impl Template) -> Result<Bytes, ControlPlaneError> {
    page.render()
        .map(Bytes::from)
        .map_err(|err| ContentError::Corrupt(format!("catalogue template: {err}")).into())
}

pub(super) async fn catalogue_page(
    State(cp): State<ControlPlane>,
    Path(slug): Path<String>,
    q: Result<Query<CatalogueQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return missing("That is not a page of this catalogue.");
    };
    let (tenant, name) = match catalogue::public_tenant(cp.db(), &slug).await {
        Ok(Some(found)) => found,
        Ok(None) => return missing("There is no public catalogue here."),
        Err(err) => return failed(&err),
    };
    let limit = Limits::from_config(cp.config())
        .page_size(None)
        .unwrap_or(1);
    let after = q.after.unwrap_or_default();
    let resource = format!("public:catalogue?after={after}");
    let db = cp.db().clone();
    let (key_tenant, slug_owned) = (tenant.clone(), slug.clone());
    let loaded = cp
        .content_cache()
        .get_or_load(&key_tenant, &resource, move || {
            let (db, tenant, name, slug, after) = (
                db.clone(),
                tenant.clone(),
                name.clone(),
                slug_owned.clone(),
                after.clone(),
            );
            async move {
                let courses = catalogue::course_cards(&db, &tenant, &after, limit).await?;
                let full = courses.len() == usize::try_from(limit).unwrap_or(usize::MAX);
                let next_after = if full {
                    courses.last().map(|c| c.id.clone())
                } else {
                    None
                };
                rendered(&IndexPage {
                    slug: &slug,
                    tenant_name: &name,
                    courses,
                    next_after,
                })
            }
        })
        .await;
    match loaded {
        Ok(body) => html(StatusCode::OK, body, PUBLIC_CACHE_CONTROL),
        Err(err) => failed(&err),
    }
}

pub(super) async fn course_page(
    State(cp): State<ControlPlane>,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let (tenant, name) = match catalogue::public_tenant(cp.db(), &slug).await {
        Ok(Some(found)) => found,
        Ok(None) => return missing("There is no public catalogue here."),
        Err(err) => return failed(&err),
    };
    let limit = Limits::from_config(cp.config()).page_size_max;
    let resource = format!("public:course/{id}");
    let db = cp.db().clone();
    let (key_tenant, slug_owned) = (tenant.clone(), slug.clone());
    let loaded = cp
        .content_cache()
        .get_or_load(&key_tenant, &resource, move || {
            let (db, tenant, name, slug, id) = (
                db.clone(),
                tenant.clone(),
                name.clone(),
                slug_owned.clone(),
                id.clone(),
            );
            async move {
                let course = courses::get_course(&db, &tenant, &id).await?;
                let mut modules = Vec::new();
                for module in courses::list_modules(&db, &tenant, &id, None, limit).await? {
                    let units = units::list_units(&db, &tenant, &module.id, true, None, limit)
                        .await?
                        .into_iter()
                        .map(|u| UnitView {
                            title: u.title,
                            kind: kind_label(u.kind),
                        })
                        .collect::<Vec<_>>();
                    if !units.is_empty() {
                        modules.push(ModuleView {
                            title: module.title,
                            units,
                        });
                    }
                }
                if modules.is_empty() {
                    return Err(ContentError::NotFound {
                        what: "course",
                        id: id.clone(),
                    }
                    .into());
                }
                rendered(&CoursePage {
                    slug: &slug,
                    tenant_name: &name,
                    course,
                    modules,
                })
            }
        })
        .await;
    match loaded {
        Ok(body) => html(StatusCode::OK, body, PUBLIC_CACHE_CONTROL),
        Err(ControlPlaneError::Content(ContentError::NotFound { .. })) => {
            missing("There is no such course in this catalogue.")
        }
        Err(err) => failed(&err),
    }
}

pub(super) async fn get_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<CatalogueSettings>, ApiError> {
    caller.require_any(&AUTHORS)?;
    Ok(Json(catalogue::settings_of(cp.db(), &caller.0.tid).await?))
}

pub(super) async fn put_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<CatalogueSettingsUpdate>, JsonRejection>,
) -> Result<Json<CatalogueSettings>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(update) = body?;
    catalogue::set_public(cp.db(), &caller.0.tid, update.public).await?;
    cp.content_cache().invalidate(&caller.0.tid);
    Ok(Json(catalogue::settings_of(cp.db(), &caller.0.tid).await?))
}
