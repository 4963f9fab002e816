//! How the edge's routes answer with errors: the run service's
//! [`RunError`] as a status, a stable `control_plane::ErrorCode` and a
//! message (with `Retry-After` where it helps), axum's JSON rejections in
//! our codes, and the common refusals. Shared by the route files, which
//! never import each other.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use control_plane::ErrorCode;

use crate::edge::runs::RunError;
use crate::server::error_response;

/// The stable code of a sandbox refusal (the sandbox knows nothing of
/// HTTP or of the control plane's codes).
pub(crate) fn refusal_code(refusal: sandbox::Refusal) -> ErrorCode {
    match refusal {
        sandbox::Refusal::UnknownLanguage => ErrorCode::UnknownLanguage,
        sandbox::Refusal::BadFileName => ErrorCode::BadFileName,
        sandbox::Refusal::BadRequest => ErrorCode::BadRequest,
    }
}

/// The status, code and message a [`RunError`] is answered with; a
/// failure (not a refusal) is logged here, once.
pub(crate) fn run_error_parts(err: &RunError) -> (StatusCode, ErrorCode, String) {
    let status = match err {
        RunError::OutboxFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::OutboxFull),
        RunError::RateLimited { .. } | RunError::TooManyTracked { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
        }
        RunError::SandboxStarting => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        RunError::Refused { refusal, .. } => (StatusCode::BAD_REQUEST, refusal_code(*refusal)),
        RunError::SandboxFailed(failure) => {
            tracing::error!(error = %failure, "code run failed");
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
        }
        RunError::NotRecorded(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
    };
    (status.0, status.1, err.to_string())
}

/// The answer to a [`RunError`], with `Retry-After` when the client
/// should wait.
pub(crate) fn run_error(err: &RunError) -> Response {
    let (status, code, message) = run_error_parts(err);
    let mut response = error_response(status, code, &message);
    let retry_after = match err {
        RunError::OutboxFull { .. } => Some(HeaderValue::from_static("5")),
        RunError::RateLimited { retry_after_s, .. } => {
            HeaderValue::from_str(&retry_after_s.to_string()).ok()
        }
        _ => None,
    };
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// The answer while the sandbox is still starting.
pub(crate) fn sandbox_starting() -> Response {
    run_error(&RunError::SandboxStarting)
}

/// The answer to a JSON body axum could not take, with our error codes.
pub(crate) fn json_rejection(rejection: &axum::extract::rejection::JsonRejection) -> Response {
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
    error_response(status, code, &rejection.body_text())
}

/// The answer when the run store cannot be read or written; the error is
/// logged, not shown.
pub(crate) fn store_failure(err: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %err, "cannot read or write the run store");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "cannot read or write the run store",
    )
}

/// The refusal of a caller who is not an operator.
pub(crate) fn needs_operator() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "this needs the operator role",
    )
}

#[cfg(test)]
mod tests {
    use crate::edge::http::*;
    use expect_test::{expect, Expect};

    /// Status, code, `Retry-After` and message of the answer to `err`.
    fn check(err: RunError, expected: Expect) {
        let response = run_error(&err);
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let (_, code, message) = run_error_parts(&err);
        let actual = format!(
            "{} {} retry_after={retry_after:?} {message}",
            response.status().as_u16(),
            code.as_str()
        );
        expected.assert_eq(&actual);
    }

    #[test]
    fn run_errors_keep_their_status_code_and_retry_after() {
        check(
            RunError::OutboxFull { pending: 7 },
            expect![[
                r#"503 outbox_full retry_after=Some("5") this edge holds 7 submission reports the control plane has not taken yet (edge.outbox_events_max); run again shortly or on another region"#
            ]],
        );
        check(
            RunError::RateLimited {
                what: "too many runs",
                setting: "edge.runs_per_user_per_minute_max",
                retry_after_s: 3,
            },
            expect![[
                r#"429 rate_limited retry_after=Some("3") too many runs; retry in 3 s (edge.runs_per_user_per_minute_max)"#
            ]],
        );
        check(
            RunError::TooManyTracked {
                tracked: "users (edge.rate_limited_users_max)",
            },
            expect![[
                r#"429 rate_limited retry_after=None this edge is tracking too many users (edge.rate_limited_users_max); retry shortly"#
            ]],
        );
        check(
            RunError::SandboxStarting,
            expect![[
                r#"503 unavailable retry_after=None the sandbox is still starting; see /readyz"#
            ]],
        );
        check(
            sandbox::SandboxError::rejected(sandbox::Refusal::BadFileName, "bad name").into(),
            expect![[r#"400 bad_file_name retry_after=None bad name"#]],
        );
        check(
            sandbox::SandboxError::HostTimeout(9).into(),
            expect![[r#"500 internal retry_after=None the sandbox could not run this; try again"#]],
        );
        check(
            RunError::NotRecorded(crate::store::StoreError::Corrupt {
                key: "runs",
                reason: "x".into(),
            }),
            expect![[
                r#"500 internal retry_after=None the run finished but could not be recorded; run it again"#
            ]],
        );
    }
}
