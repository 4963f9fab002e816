//! The control plane's HTTP API. The binary wraps this router with the shared
//! layers (request ids, metrics, limits); this module only knows routes.
//! Errors leave as `{"error": {"code", "message"}}` with a stable code.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::{ControlPlaneError, ErrorCode};
use crate::identity::{self, Member};
use crate::sessions::{self, TokenPair};
use crate::tokens::{self, Claims, Jwks, Role};
use crate::ControlPlane;

/// The routes of the control plane, ready to be nested under the shared layers.
pub fn router(cp: ControlPlane) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/auth/sign-up", post(sign_up))
        .route("/api/v1/auth/sign-in", post(sign_in))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/sign-out", post(sign_out))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/keys/rotate", post(rotate_key))
        .route("/api/v1/auth/keys/{kid}", delete(retire_key))
        .route("/api/v1/me", get(me))
        .route("/api/v1/tenants", get(list_tenants))
        .route(crate::openapi::OPENAPI_PATH, get(crate::openapi::serve))
        .merge(crate::ledger::routes())
        .merge(crate::content::routes())
        .merge(crate::catalogue::routes())
        .merge(crate::submissions::routes(cp.config()))
        .merge(crate::billing::routes())
        .merge(crate::learning::routes())
        .merge(crate::events::routes())
        .merge(crate::analytics::routes())
        .with_state(cp)
}

/// The verified claims of the caller's bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequestParts<ControlPlane> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, ApiError> {
        Ok(caller_from_headers(cp, &parts.headers)?)
    }
}

/// The caller named by the bearer access token in `headers`, for routes
/// that accept either a token or the service key.
///
/// # Errors
/// [`ControlPlaneError::BadToken`] (401) for a missing or bad token.
pub(crate) fn caller_from_headers(
    cp: &ControlPlane,
    headers: &HeaderMap,
) -> Result<Caller, ControlPlaneError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = tokens::bearer(header)?;
    let claims = cp.keys().snapshot().verifier().verify(token)?;
    Ok(Caller(claims))
}

/// Checks that `headers` carry the edge service key
/// (`control_plane.edge_service_key`) as a bearer token: how edges report
/// submissions and attendance, which must go through even after the
/// learner's token has expired. An empty key refuses everyone.
///
/// # Errors
/// [`ControlPlaneError::BadToken`] (401) otherwise.
pub(crate) fn check_service_key(
    cp: &ControlPlane,
    headers: &HeaderMap,
) -> Result<(), ControlPlaneError> {
    let key = &cp.config().edge_service_key;
    let presented = tokens::bearer(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )?;
    // Comparing digests, not the secrets, keeps the comparison's timing
    // from telling anything about the key.
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    if !key.is_empty() && digest(presented).as_ref() == digest(key).as_ref() {
        Ok(())
    } else {
        Err(ControlPlaneError::BadToken(
            "this is for edge nodes with the service key (control_plane.edge_service_key)".into(),
        ))
    }
}

impl Caller {
    fn require(&self, role: Role) -> Result<(), ControlPlaneError> {
        if self.0.role == role {
            Ok(())
        } else {
            Err(ControlPlaneError::Forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

impl Caller {
    /// Refuses callers whose role is none of `roles`.
    pub(crate) fn require_any(&self, roles: &[Role]) -> Result<(), ControlPlaneError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ControlPlaneError::Forbidden(format!(
                "this needs one of the roles {}",
                names.join(", ")
            )))
        }
    }
}

/// A JSON error response carrying a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message clients see.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The code clients match on and a message for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// One of a closed set; never changes meaning.
    pub code: ErrorCode,
    /// Lowercase, for people; may change between versions.
    pub message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ControlPlaneError> for ApiError {
    fn from(err: ControlPlaneError) -> Self {
        let code = err.code();
        let status = match code {
            ErrorCode::BadRequest
            | ErrorCode::BadSignature
            | ErrorCode::UnknownMember
            | ErrorCode::BatchSize => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::NotEnrolled => StatusCode::FORBIDDEN,
            ErrorCode::NotFound | ErrorCode::NotPublished => StatusCode::NOT_FOUND,
            ErrorCode::Conflict
            | ErrorCode::InsufficientFunds
            | ErrorCode::IdempotencyConflict
            | ErrorCode::IdempotencyMismatch
            | ErrorCode::PendingClosed
            | ErrorCode::PendingExpired
            | ErrorCode::Cycle => StatusCode::CONFLICT,
            ErrorCode::CurrencyMismatch | ErrorCode::ValidationFailed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::OutboxFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::InvalidConfig | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            // Answered by the shared HTTP layer or by edges, never by a
            // control-plane error; mapped all the same.
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::UnknownLanguage | ErrorCode::BadFileName | ErrorCode::NotGradable => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
        };
        if status.is_server_error() {
            tracing::error!(error = %err, code = code.as_str(), "request failed");
        }
        // Server-side details stay in the log; clients get a stable message.
        let message = if status.is_server_error() {
            "the control plane could not complete the request".to_owned()
        } else {
            err.to_string()
        };
        Self::new(status, code, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            _ => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
        };
        Self::new(status, code, rejection.body_text())
    }
}

async fn jwks(State(cp): State<ControlPlane>) -> Json<Jwks> {
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

async fn sign_up(
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

async fn sign_in(
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

async fn refresh(
    State(cp): State<ControlPlane>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let Json(request) = body?;
    check_lengths(&cp, &[&request.refresh_token])?;
    Ok(Json(sessions::refresh(&cp, &request.refresh_token).await?))
}

async fn sign_out(
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

async fn change_password(
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

async fn rotate_key(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<RotatedKey>, ApiError> {
    caller.require(Role::Operator)?;
    let kid = cp.keys().rotate(cp.db()).await?;
    tracing::info!(kid, by = caller.0.sub, "signing key rotated");
    Ok(Json(RotatedKey { kid }))
}

async fn retire_key(
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
struct TenantsQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// One page of `GET /api/v1/tenants`; `next_after` is absent on the last.
#[derive(Debug, Serialize)]
struct TenantPage {
    /// Tenants in id order.
    items: Vec<identity::TenantSummary>,
    /// The `after` of the next page.
    next_after: Option<String>,
}

async fn list_tenants(
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

async fn me(State(cp): State<ControlPlane>, caller: Caller) -> Result<Json<Member>, ApiError> {
    let member = identity::member_in_tenant(cp.db(), &caller.0.tid, &caller.0.sub)
        .await?
        .ok_or_else(|| ControlPlaneError::BadToken("the token's user no longer exists".into()))?;
    Ok(Json(member))
}
