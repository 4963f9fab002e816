//! The public catalogue's data: which tenants show their courses to
//! everyone (`catalogue_public`, off by default), the course cards of a
//! tenant's public page, and the catalogue setting authors read and
//! change. The pages themselves (HTML, caching headers) are rendered in
//! the HTTP layer; only published units ever count here.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::db::Db;
use crate::error::ControlPlaneError;

/// Answer of `GET|PUT /api/v1/catalogue/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogueSettings {
    /// Whether the tenant's catalogue is served publicly.
    pub public: bool,
    /// Where it is (or would be) served, relative to the control plane.
    pub url: String,
}

/// Body of `PUT /api/v1/catalogue/settings`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSettingsUpdate {
    /// Serve the catalogue publicly, or stop.
    pub public: bool,
}

/// One course on a tenant's public catalogue page: only courses with at
/// least one published unit are listed, and `units` counts those.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CourseCard {
    /// The course id; cards come in id order.
    pub id: String,
    /// The course title.
    pub title: String,
    /// The course summary.
    pub summary: String,
    /// How many of its units are published.
    pub units: i64,
}

/// The id and name of the tenant `slug` names, if its catalogue is public.
///
/// # Errors
/// Database errors.
pub async fn public_tenant(
    db: &Db,
    slug: &str,
) -> Result<Option<(String, String)>, ControlPlaneError> {
    Ok(sqlx::query_as::<_, (String, String)>(
        "SELECT id, name FROM tenants WHERE slug = $1 AND catalogue_public = 1",
    )
    .bind(slug)
    .fetch_optional(db.pool())
    .await?)
}

/// Up to `limit` cards of `tenant`'s courses whose id sorts after `after`.
///
/// # Errors
/// Database errors.
pub async fn course_cards(
    db: &Db,
    tenant: &str,
    after: &str,
    limit: u32,
) -> Result<Vec<CourseCard>, ControlPlaneError> {
    Ok(sqlx::query_as::<_, CourseCard>(
        "SELECT c.id, c.title, c.summary, COUNT(u.id) AS units FROM courses c \
         JOIN units u ON u.tenant_id = c.tenant_id AND u.course_id = c.id \
          AND u.published_version > 0 \
         WHERE c.tenant_id = $1 AND c.id > $2 \
         GROUP BY c.id, c.title, c.summary ORDER BY c.id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?)
}

/// `tenant`'s catalogue setting and where its catalogue is served.
///
/// # Errors
/// Database errors (a tenant that is gone is one).
pub async fn settings_of(db: &Db, tenant: &str) -> Result<CatalogueSettings, ControlPlaneError> {
    let row = sqlx::query("SELECT slug, catalogue_public FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(db.pool())
        .await?;
    let slug: String = row.try_get("slug")?;
    let public: i64 = row.try_get("catalogue_public")?;
    Ok(CatalogueSettings {
        public: public != 0,
        url: format!("/catalogue/{slug}"),
    })
}

/// Makes `tenant`'s catalogue public or not. Callers drop the tenant's
/// cached pages afterwards ([`crate::service::ControlPlane::content_cache`]).
///
/// # Errors
/// Database errors.
pub async fn set_public(db: &Db, tenant: &str, public: bool) -> Result<(), ControlPlaneError> {
    sqlx::query("UPDATE tenants SET catalogue_public = $2 WHERE id = $1")
        .bind(tenant)
        .bind(i64::from(public))
        .execute(db.pool())
        .await?;
    Ok(())
}
