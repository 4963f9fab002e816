//! The control plane's HTTP API. The binary wraps this router with the shared
//! layers (request ids, metrics, limits); this module only knows routes.
//! Errors leave as `{"error": {"code", "message"}}` with a stable code.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::{ControlPlaneError, ErrorCode};
use crate::identity::{self, Member};
use crate::tokens::{self, Jwks, TokenVerifier};
use crate::ControlPlane;

/// The routes of the control plane, ready to be nested under the shared layers.
pub fn router(cp: ControlPlane) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/auth/sign-in", post(sign_in))
        .route("/api/v1/me", get(me))
        .with_state(cp)
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
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
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
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InvalidConfig | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
    Json(cp.keys().jwks().clone())
}

/// Body of `POST /api/v1/auth/sign-in`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Account email.
    pub email: String,
    /// Account password.
    pub password: String,
}

/// Answer to a successful sign-in.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignInResponse {
    /// The EdDSA-signed access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

async fn sign_in(
    State(cp): State<ControlPlane>,
    body: Result<Json<SignInRequest>, JsonRejection>,
) -> Result<Json<SignInResponse>, ApiError> {
    let Json(request) = body?;
    let max = usize::try_from(cp.config().credential_bytes_max).unwrap_or(usize::MAX);
    if request.email.len() > max || request.password.len() > max {
        return Err(ControlPlaneError::BadRequest(format!(
            "email and password are limited to {max} bytes (control_plane.credential_bytes_max)"
        ))
        .into());
    }
    let member = identity::authenticate(cp.db(), &request.email, &request.password).await?;
    let ttl = cp.config().access_token_ttl_seconds;
    let access_token = tokens::issue(
        cp.keys(),
        &member.user_id,
        &member.tenant_id,
        member.role,
        &member.email,
        ttl,
    )?;
    Ok(Json(SignInResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
    }))
}

async fn me(State(cp): State<ControlPlane>, headers: HeaderMap) -> Result<Json<Member>, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = tokens::bearer(header)?;
    let verifier = TokenVerifier::new(cp.keys().jwks())?;
    let claims = verifier.verify(token)?;
    let member = identity::member_in_tenant(cp.db(), &claims.tid, &claims.sub)
        .await?
        .ok_or_else(|| ControlPlaneError::BadToken("the token's user no longer exists".into()))?;
    Ok(Json(member))
}
