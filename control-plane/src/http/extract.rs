//! What every handler shares: the extractors ([`Caller`], the edge
//! service key, query strings and pages of lists), who authors content
//! ([`AUTHORS`], [`tenant_of`]), and [`ApiError`], the one mapping from a
//! domain error to an HTTP status and a stable code. Domain modules return
//! their own errors; only this file decides how they look on the wire.

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::billing::error::BillingError;
use crate::codes::ErrorCode;
use crate::content::courses::{self, Owned};
use crate::content::error::ContentError;
use crate::error::ControlPlaneError;
use crate::learning::error::LearningError;
use crate::ledger::error::LedgerError;
use crate::service::ControlPlane;
use crate::timetables::error::TimetableError;
use crate::timetables::model::Problem;
use crate::tokens::{self, Claims, Role};

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
    /// Refuses callers whose role is not `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), ControlPlaneError> {
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
    problems: Vec<Problem>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// The problems of a refused file (timetables), empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
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

/// The body of every error answer: `{"error": {"code", "message"}}`. Edges
/// read the control plane's answers with the same type.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The code clients match on and a message for people.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// One of a closed set; never changes meaning.
    pub code: ErrorCode,
    /// Lowercase, for people; may change between versions.
    pub message: std::borrow::Cow<'a, str>,
    /// Every problem of a refused timetable file (`timetable_invalid`),
    /// each with its own code and place; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.as_str().into(),
                problems: self.problems,
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
            ErrorCode::TimetableInvalid
            | ErrorCode::BadCalendar
            | ErrorCode::BadEncoding
            | ErrorCode::BadDelimiter
            | ErrorCode::MissingField
            | ErrorCode::BadDate
            | ErrorCode::BadRecurrence
            | ErrorCode::UnknownTimeZone
            | ErrorCode::UnknownRegion
            | ErrorCode::TooManyLearners
            | ErrorCode::TooManyEvents => StatusCode::UNPROCESSABLE_ENTITY,
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
        let problems = match &err {
            ControlPlaneError::Timetable(err) => err.problems().to_vec(),
            _ => Vec::new(),
        };
        Self {
            problems,
            ..Self::new(status, code, message)
        }
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

/// Domain errors answer as the [`ControlPlaneError`] that wraps them, so a
/// handler may use `?` on a domain call directly.
macro_rules! from_domain_error {
    ($($domain:ty),*) => {$(
        impl From<$domain> for ApiError {
            fn from(err: $domain) -> Self {
                ControlPlaneError::from(err).into()
            }
        }
    )*};
}

from_domain_error!(
    LedgerError,
    ContentError,
    BillingError,
    LearningError,
    TimetableError
);

/// The roles that author content (and see every learner's records).
pub(crate) const AUTHORS: [Role; 2] = [Role::Instructor, Role::Operator];

/// Whether the caller authors content in its tenant.
pub(crate) fn is_author(caller: &Caller) -> bool {
    AUTHORS.contains(&caller.0.role)
}

/// The tenant a request about `id` is scoped to: the caller's, or for an
/// operator the one owning `id`.
pub(crate) async fn tenant_of(
    cp: &ControlPlane,
    caller: &Caller,
    what: Owned,
    id: &str,
) -> Result<String, ApiError> {
    if caller.0.role == Role::Operator {
        Ok(courses::owner_tenant(cp.db(), what, id).await?)
    } else {
        Ok(caller.0.tid.clone())
    }
}

/// `?limit=&after=` of the content lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to `content_page_size_max`; default 100.
    pub limit: Option<u32>,
    /// Return items whose id sorts after this one (the last id seen).
    pub after: Option<String>,
}

/// One page of a list; `next_after` is the `after` of the next page,
/// absent on the last one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in id (creation) order.
    pub items: Vec<T>,
    /// Cursor for the next page.
    pub next_after: Option<String>,
}

/// A query string, or a 400 naming what is wrong with it.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text())).into()
    })
}

/// One page of a list: `next_after` is the last id when the page is full.
pub(crate) fn page<T>(items: Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> Page<T> {
    let full = items.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if full {
        items.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    Page { items, next_after }
}
