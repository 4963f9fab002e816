//! Who is calling an edge route, as axum extractors: [`Caller`] verifies
//! the bearer token against the control plane's keys, [`Operator`] also
//! requires the operator role. A handler that takes one runs only for a
//! caller that passed; everyone else gets the refusal (401, 403, or 503
//! while the keys are not loaded) before the handler runs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use control_plane::tokens::{self, Claims, Role};
use control_plane::ErrorCode;

use crate::edge::http::needs_operator;
use crate::edge::keys::VerifyError;
use crate::edge::state::EdgeState;
use crate::server::error_response;

/// A caller whose bearer token checked out, with its claims.
pub(crate) struct Caller(pub(crate) Claims);

impl FromRequestParts<EdgeState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &EdgeState) -> Result<Self, Response> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = tokens::bearer(header).map_err(|err| {
            error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                &err.to_string(),
            )
        })?;
        state
            .keys
            .verify(token)
            .await
            .map(Caller)
            .map_err(|err| match err {
                VerifyError::NoKeys => error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    &err.to_string(),
                ),
                VerifyError::Rejected(err) => error_response(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    &err.to_string(),
                ),
            })
    }
}

/// An operator's request: anyone else is refused (401 or 403) before the
/// handler runs.
pub(crate) struct Operator;

impl FromRequestParts<EdgeState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &EdgeState) -> Result<Self, Response> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if claims.role != Role::Operator {
            return Err(needs_operator());
        }
        Ok(Operator)
    }
}
