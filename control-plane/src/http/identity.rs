//! Sign-up, sign-in, sessions, passwords, signing keys and tenants: the
//! handlers of `/api/v1/auth/*`, `/api/v1/me`, `/api/v1/tenants` and the
//! public key set at `/.well-known/jwks.json`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiError, Caller};
use crate::error::ControlPlaneError;
use crate::identity::{self, Member};
use crate::service::ControlPlane;
use crate::sessions::{self, TokenPair};
use crate::tokens::{self, Jwks, Role};

pub(super) async fn jwks(State(cp): State<ControlPlane>) -> Json<Jwks> {
    Json(cp.keys().snapshot().jwks().clone())
}

fn check_lengths(cp: &ControlPlane, fields: &[&str]) -> Result<(), ControlPlaneError> {
    let max = usize::try_from(cp.config().credential_bytes_max).unwrap_or(usize::MAX);
    if fields.iter().any(|f| f.len() > max) {
        return Err(ControlPlaneError::BadRequest(format!(
            "fields are limited to {max} bytes (control_plane.credential_bytes_max)"
        )));
    }
    Ok(())
}

/// Body of `POST /api/v1/auth/sign-up`: join `tenant` (by slug) as a
/// learner, or create `organisation` and become its instructor.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// Account email, unique fleet-wide.
    pub email: String,
    /// At least `control_plane.password_bytes_min` bytes.
    pub password: String,
    /// Name shown to others, 1 to 100 characters.
    pub display_name: String,
    /// Slug of an existing tenant to join as a learner.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A new organisation to create, with the caller as its instructor.
    #[serde(default)]
    pub organisation: Option<NewOrganisation>,
}

/// A tenant created at sign-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    /// URL-friendly id: 2 to 64 characters of a-z, 0-9 and `-`.
    pub slug: String,
    /// Display name.
    pub name: String,
}

pub(super) async fn sign_up(
    State(cp): State<ControlPlane>,
    body: Result<Json<SignUpRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenPair>), ApiError> {
    let Json(request) = body?;
    check_lengths(
        &cp,
        &[&request.email, &request.password, &request.display_name],
    )?;
    let email = identity::normalise_email(&request.email)?;
    identity::check_new_password(&request.password, cp.config())?;
    let name = request.display_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ControlPlaneError::BadRequest(
            "display_name must be 1 to 100 characters".into(),
        )
        .into());
    }
    let (tenant_id, role) = match (&request.tenant, &request.organisation) {
        (Some(slug), None) => {
            let tenant = identity::tenant_by_slug(cp.db(), slug)
                .await?
                .ok_or_else(|| ControlPlaneError::NotFound(format!("tenant {slug}")))?;
            (tenant, Role::Learner)
        }
        (None, Some(org)) => {
            check_lengths(&cp, &[&org.slug, &org.name])?;
            if org.name.trim().is_empty() {
                return Err(ControlPlaneError::BadRequest(
                    "organisation.name must not be empty".into(),
                )
                .into());
            }
            let tenant = identity::create_tenant(cp.db(), &org.slug, org.name.trim()).await?;
            (tenant, Role::Instructor)
        }
        _ => {
            return Err(ControlPlaneError::BadRequest(
                "give exactly one of tenant (to join) or organisation (to create)".into(),
            )
            .into())
        }
    };
    let member =
        identity::create_member(cp.db(), &tenant_id, &email, name, &request.password, role).await?;
    let pair = sessions::start(&cp, &member).await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

/// Body of `POST /api/v1/auth/sign-in`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Account email.
    pub email: String,
    /// Account password.
    pub password: String,
}

pub(super) async fn sign_in(
    State(cp): State<ControlPlane>,
    body: Result<Json<SignInRequest>, JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let Json(request) = body?;
    check_lengths(&cp, &[&request.email, &request.password])?;
    let email = request.email.trim().to_lowercase();
    let member = identity::authenticate(cp.db(), &email, &request.password).await?;
    Ok(Json(sessions::start(&cp, &member).await?))
}

/// Body of `POST /api/v1/auth/refresh` and `POST /api/v1/auth/sign-out`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from sign-in or the last refresh.
    pub refresh_token: String,
}

pub(super) async fn refresh(
    State(cp): State<ControlPlane>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let Json(request) = body?;
    check_lengths(&cp, &[&request.refresh_token])?;
    Ok(Json(sessions::refresh(&cp, &request.refresh_token).await?))
}

pub(super) async fn sign_out(
    State(cp): State<ControlPlane>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(request) = body?;
    check_lengths(&cp, &[&request.refresh_token])?;
    sessions::sign_out(&cp, &request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/auth/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

pub(super) async fn change_password(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    // The caller, and the session their token was issued in: it goes on.
    let token = tokens::bearer(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )?;
    let (claims, session) = cp.keys().snapshot().verifier().verify_with_session(token)?;
    let caller = Caller(claims);
    let Json(request) = body?;
    check_lengths(&cp, &[&request.current_password, &request.new_password])?;
    identity::check_new_password(&request.new_password, cp.config())?;
    identity::change_password(
        cp.db(),
        &caller.0.email,
        &request.current_password,
        &request.new_password,
    )
    .await?;
    // Every other session of this user ends; access tokens run out on
    // their own. A token that names no session keeps none.
    sessions::end_other_sessions(&cp, &caller.0.sub, session.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of `POST /api/v1/auth/keys/rotate`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotatedKey {
    /// Id of the key that signs from now on.
    pub kid: String,
}

pub(super) async fn rotate_key(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<RotatedKey>, ApiError> {
    caller.require(Role::Operator)?;
    let kid = cp.keys().rotate(cp.db()).await?;
    tracing::info!(kid, by = caller.0.sub, "signing key rotated");
    Ok(Json(RotatedKey { kid }))
}

pub(super) async fn retire_key(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(kid): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    cp.keys().retire(cp.db(), &kid).await?;
    tracing::info!(kid, by = caller.0.sub, "signing key retired");
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit=&after=` of `GET /api/v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantsQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// One page of `GET /api/v1/tenants`; `next_after` is absent on the last.
#[derive(Debug, Serialize)]
pub(super) struct TenantPage {
    /// Tenants in id order.
    items: Vec<identity::TenantSummary>,
    /// The `after` of the next page.
    next_after: Option<String>,
}

pub(super) async fn list_tenants(
    State(cp): State<ControlPlane>,
    caller: Caller,
    query: Result<axum::extract::Query<TenantsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TenantPage>, ApiError> {
    caller.require(Role::Operator)?;
    let axum::extract::Query(query) = query.map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text()))
    })?;
    let max = cp.config().tenants_page_size_max;
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ControlPlaneError::BadRequest(format!(
            "limit must be 1 to {max} (control_plane.tenants_page_size_max)"
        ))
        .into());
    }
    let items = identity::list_tenants(cp.db(), query.after.as_deref(), limit).await?;
    let next_after = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|t| t.id.clone()))
        .flatten();
    Ok(Json(TenantPage { items, next_after }))
}

pub(super) async fn me(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<Member>, ApiError> {
    let member = identity::member_in_tenant(cp.db(), &caller.0.tid, &caller.0.sub)
        .await?
        .ok_or_else(|| ControlPlaneError::BadToken("the token's user no longer exists".into()))?;
    Ok(Json(member))
}
