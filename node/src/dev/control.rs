//! The supervisor's control API: how `lyceum chaos run` kills and pauses
//! the dev cluster's processes. Process faults go through the supervisor,
//! not through bare signals from the runner, because only the supervisor
//! can keep a killed process down for the fault's window instead of
//! restarting it after its backoff, and because every fault then carries a
//! deadline here: a runner that dies mid-drill leaves no process down or
//! stopped past it. Served on loopback only, behind a key written to
//! `cluster.json` (readable by its owner only), and only when `dev.chaos`
//! is on.
//!
//! This module is the HTTP side and the wire types, which the runner shares;
//! the supervisor (`dev`) executes the orders it receives here one at a time
//! in its own loop, so no order races a restart.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Orders waiting for the supervisor's loop; past it, 503 `busy`. A drill
/// sends one order at a time per fault, so a handful is plenty.
pub const CONTROL_QUEUE_MAX: usize = 16;

/// Largest request body, in bytes: the bodies are one small object.
pub const CONTROL_BODY_BYTES_MAX: usize = 1024;

/// Body of `POST /v1/processes/{name}/kill`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillBody {
    /// How long the process stays down before the supervisor starts it
    /// again, unless a `start` comes first.
    pub down_ms: u64,
}

/// Body of `POST /v1/database/down`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseDownBody {
    /// How long the control plane's database stays away (SQLite files
    /// unwritable, or PostgreSQL refusing connections) before the
    /// supervisor gives it back, unless an `up` comes first.
    pub for_ms: u64,
}

/// Body of `POST /v1/processes/{name}/pause`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// How long the process stays stopped (SIGSTOP) before the supervisor
    /// continues it (SIGCONT), unless a `resume` comes first.
    pub for_ms: u64,
}

/// What a process is doing, as far as the supervisor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// Started and not stopped (it may still be starting up).
    Running,
    /// Stopped with SIGSTOP by a drill.
    Paused,
    /// Dead, waiting to be started again.
    Down,
}

/// One process in the answer of every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessView {
    /// `control-plane` or `edge-<region>`.
    pub name: String,
    /// Its current (or last) OS process id.
    pub pid: u32,
    /// What it is doing.
    pub state: ProcessState,
    /// For `down` and `paused`: milliseconds until the supervisor starts or
    /// continues it on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

/// Answer of every successful call: the processes after the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    /// Every process, by name.
    pub processes: Vec<ProcessView>,
    /// While a drill holds the control plane's database away:
    /// milliseconds until the supervisor gives it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_down_ms: Option<u64>,
    /// While it is away: how, in words (SQLite's files made immutable, or
    /// PostgreSQL refusing connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_fault: Option<String>,
}

/// What the runner asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Order {
    /// Only the list.
    List,
    /// `kill -9`, then keep it down for `down_ms`.
    Kill { name: String, down_ms: u64 },
    /// SIGSTOP for `for_ms`.
    Pause { name: String, for_ms: u64 },
    /// SIGCONT now (nothing when it is not paused).
    Resume { name: String },
    /// Start it now if it is down (nothing when it runs).
    Start { name: String },
    /// Take the control plane's database away for `for_ms`.
    DatabaseDown { for_ms: u64 },
    /// Give it back (nothing when it is there).
    DatabaseUp,
}

/// Why an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlError {
    /// No such process.
    #[error("no process named {0:?}: control-plane or edge-<region>")]
    UnknownProcess(String),
    /// A kill or pause of a process that is down.
    #[error("{0} is not running")]
    NotRunning(String),
    /// A window of 0 or over the limit.
    #[error("{what} must be 1 to {max} ms (dev.chaos_fault_ms_max)")]
    BadWindow { what: &'static str, max: u64 },
    /// The signal could not be sent.
    #[error("cannot signal {name}: {reason}")]
    Signal { name: String, reason: String },
    /// The database cannot be taken down (or up) here.
    #[error("{0}")]
    Database(String),
}

impl ControlError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownProcess(_) => (StatusCode::NOT_FOUND, "unknown_process"),
            Self::NotRunning(_) => (StatusCode::CONFLICT, "not_running"),
            Self::BadWindow { .. } => (StatusCode::BAD_REQUEST, "bad_window"),
            Self::Signal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "signal_failed"),
            Self::Database(_) => (StatusCode::CONFLICT, "database_fault_failed"),
        }
    }
}

/// An order with the way back to its caller.
pub(crate) struct Envelope {
    pub(crate) order: Order,
    pub(crate) reply: oneshot::Sender<Result<Processes, ControlError>>,
}

#[derive(Clone)]
struct Api {
    key: String,
    orders: mpsc::Sender<Envelope>,
}

/// The API's routes; orders go to `orders`, and only callers with `key`
/// get in.
pub(crate) fn router(key: String, orders: mpsc::Sender<Envelope>) -> Router {
    Router::new()
        .route("/v1/processes", get(list))
        .route("/v1/processes/{name}/kill", post(kill))
        .route("/v1/processes/{name}/pause", post(pause))
        .route("/v1/processes/{name}/resume", post(resume))
        .route("/v1/processes/{name}/start", post(start))
        .route("/v1/database/down", post(database_down))
        .route("/v1/database/up", post(database_up))
        .layer(axum::extract::DefaultBodyLimit::max(CONTROL_BODY_BYTES_MAX))
        .with_state(Api { key, orders })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the supervisor key from cluster.json is needed (Authorization: Bearer)",
    )
}

impl Api {
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Same time whatever the first wrong byte; the key is long enough
        // that its length says nothing useful.
        given.len() == self.key.len()
            && given
                .bytes()
                .zip(self.key.bytes())
                .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    async fn send(&self, headers: &HeaderMap, order: Order) -> Response {
        if !self.authorised(headers) {
            return unauthorized();
        }
        let (reply, answer) = oneshot::channel();
        if self.orders.try_send(Envelope { order, reply }).is_err() {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the supervisor has orders waiting or is stopping; try again",
            );
        }
        match answer.await {
            Ok(Ok(processes)) => Json(processes).into_response(),
            Ok(Err(err)) => {
                let (status, code) = err.status_and_code();
                error(status, code, &err.to_string())
            }
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the supervisor is stopping",
            ),
        }
    }
}

fn bad_body(rejection: &JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        &rejection.body_text(),
    )
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.send(&headers, Order::List).await
}

/// An order that comes with a JSON body: the key first, then the body.
async fn with_body<B>(
    api: &Api,
    headers: &HeaderMap,
    body: Result<Json<B>, JsonRejection>,
    order: impl FnOnce(B) -> Order,
) -> Response {
    if !api.authorised(headers) {
        return unauthorized();
    }
    match body {
        Ok(Json(body)) => api.send(headers, order(body)).await,
        Err(rejection) => bad_body(&rejection),
    }
}

async fn kill(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<KillBody>, JsonRejection>,
) -> Response {
    with_body(&api, &headers, body, |b| Order::Kill {
        name,
        down_ms: b.down_ms,
    })
    .await
}

async fn pause(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<PauseBody>, JsonRejection>,
) -> Response {
    with_body(&api, &headers, body, |b| Order::Pause {
        name,
        for_ms: b.for_ms,
    })
    .await
}

async fn resume(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    api.send(&headers, Order::Resume { name }).await
}

async fn start(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    api.send(&headers, Order::Start { name }).await
}

async fn database_down(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Json<DatabaseDownBody>, JsonRejection>,
) -> Response {
    with_body(&api, &headers, body, |b| Order::DatabaseDown {
        for_ms: b.for_ms,
    })
    .await
}

async fn database_up(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.send(&headers, Order::DatabaseUp).await
}
