//! The HTTP scaffolding every Lyceum process shares: `/healthz`, `/readyz`,
//! `/metrics`, request ids in logs and responses, per-route metrics, and the
//! request limits of `[http]`, each of which answers with a JSON error that
//! carries a stable code. Role-specific routes are merged in by the caller.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use control_plane::ErrorCode;

use crate::config::HttpConfig;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::shutdown::Shutdown;

/// Header that carries the request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the shared routes need to know about the process.
#[derive(Clone, Debug)]
pub struct Basics {
    /// Metrics of this process.
    pub metrics: Metrics,
    /// Readiness checks of this process.
    pub readiness: Readiness,
    /// Who this process is, shown by `/healthz` (role, region, node id...).
    pub identity: Value,
}

#[derive(Clone)]
struct Limits {
    metrics: Metrics,
    in_flight: Arc<Semaphore>,
    in_flight_max: u32,
}

/// Wraps `routes` with the shared routes and layers.
pub fn app(routes: Router, basics: &Basics, http: &HttpConfig) -> Router {
    let shared = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(basics.clone());
    let limits = Limits {
        metrics: basics.metrics.clone(),
        in_flight: Arc::new(Semaphore::new(
            usize::try_from(http.requests_in_flight_max).unwrap_or(usize::MAX),
        )),
        in_flight_max: http.requests_in_flight_max,
    };
    let body_max = usize::try_from(http.request_body_bytes_max).unwrap_or(usize::MAX);
    let timeout = Duration::from_millis(http.request_timeout_ms);
    // Probes (`/healthz`, `/readyz`, `/metrics`) are polled every few
    // hundred milliseconds and a 503 from `/readyz` while a process warms
    // up is expected: they are not traced, so they never log an error per
    // poll. Readiness logs each change of a check once instead.
    let traced = routes
        .merge(web::router())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        );
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn_with_state(limits, measure_and_limit))
        .layer(middleware::map_response(json_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(body_max));
    let cors = web::Cors::new(http.cors_allowed_origins.clone());
    traced.merge(shared).layer(layers).layer(cors.layer())
}

/// Serves `app` until `shutdown` fires, then gives open requests `grace` to
/// finish before dropping them.
///
/// # Errors
/// Fails when accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    grace: Duration,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let listener = crate::parse_errors::JsonParseErrorsListener(listener);
    let graceful = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().wait());
    tokio::select! {
        result = graceful => result,
        () = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_ms = grace.as_millis(), "requests still open after the shutdown grace; dropping them");
            Ok(())
        }
    }
}

async fn healthz(State(basics): State<Basics>) -> Json<Value> {
    let mut body = json!({"status": "alive", "pid": std::process::id()});
    if let (Value::Object(out), Value::Object(identity)) = (&mut body, &basics.identity) {
        out.extend(identity.clone());
    }
    Json(body)
}

async fn readyz(State(basics): State<Basics>) -> Response {
    let report = basics.readiness.report();
    basics.metrics.ready.set(i64::from(report.ready));
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn metrics(State(basics): State<Basics>) -> Response {
    basics
        .metrics
        .ready
        .set(i64::from(basics.readiness.report().ready));
    match basics.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot render metrics");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "cannot render metrics",
            )
        }
    }
}

/// Counts and times every request and refuses new ones past the in-flight cap.
async fn measure_and_limit(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let Ok(permit) = limits.in_flight.clone().try_acquire_owned() else {
        limits
            .metrics
            .http_requests_shed
            .with_label_values(&[&route])
            .inc();
        let response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            &format!(
                "more than {} requests in flight (http.requests_in_flight_max); retry shortly",
                limits.in_flight_max
            ),
        );
        record(&limits.metrics, &route, &method, response.status(), None);
        return response;
    };
    limits.metrics.http_requests_in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    drop(permit);
    limits.metrics.http_requests_in_flight.dec();
    record(
        &limits.metrics,
        &route,
        &method,
        response.status(),
        Some(started),
    );
    response
}

fn record(
    metrics: &Metrics,
    route: &str,
    method: &str,
    status: StatusCode,
    started: Option<Instant>,
) {
    metrics
        .http_requests
        .with_label_values(&[route, method, status.as_str()])
        .inc();
    if let Some(started) = started {
        metrics
            .http_request_duration
            .with_label_values(&[route, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Gives framework-made error responses (no route, body too large, timeout)
/// the same JSON shape and stable codes as our own errors.
async fn json_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = match response.status() {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::RequestTimeout,
            "the request took longer than http.request_timeout_ms",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is larger than http.request_body_bytes_max",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            ErrorCode::BadRequest,
            "the request body does not match the expected shape",
        ),
        _ => return response,
    };
    error_response(response.status(), code, message)
}

/// A JSON error body `{"error": {"code", "message"}}`, the code one of the
/// closed set every process answers with (listed in the control plane's
/// OpenAPI document).
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code.as_str(), "message": message}})),
    )
        .into_response()
}
