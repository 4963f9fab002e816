//! Operator routes: the outboxes and their dead letters
//! (`/api/v1/operator/outbox...`), abuse events (`/api/v1/sandbox/abuse`),
//! gossip fault rules (`/api/v1/operator/faults`) and the sandbox's warm
//! pools (`/api/v1/sandbox/pools`). Every one but the pool sizes takes an
//! [`Operator`]; anyone else is refused before the handler runs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_plane::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use crate::edge::extract::{Caller, Operator};
use crate::edge::faults::FaultRules;
use crate::edge::http::{sandbox_starting, store_failure};
use crate::edge::pools::PoolError;
use crate::edge::state::EdgeState;
use crate::server::error_response;
use crate::store::StoreError;

/// `GET /api/v1/sandbox/pools`: per language, the warm containers and the
/// target the pool warms to now (`{"pools": [{"language", "warm",
/// "target", ...}]}`), with who set it, the plan's and the observed
/// demand, and the pool's counts since start; the node's policy, budget
/// and plan beside. Any signed-in caller.
pub(crate) async fn pool_sizes(State(state): State<EdgeState>, _: Caller) -> Response {
    let Some(sandbox) = state.sandbox.get() else {
        return sandbox_starting();
    };
    let statuses = match state.pools.statuses().await {
        Ok(statuses) => statuses,
        Err(err) => return pool_error(&err),
    };
    let pools: Vec<_> = statuses
        .into_iter()
        .filter_map(|status| {
            let stats = sandbox.pools().stats(&status.language).ok()?;
            Some(json!({
                "language": status.language,
                "warm": stats.warm,
                "target": stats.target,
                "wanted": status.wanted,
                "source": status.source,
                "budget_capped": status.budget_capped,
                "surplus_held": status.surplus_held,
                "planned": status.planned,
                "planned_runs_per_minute": status.planned_runs_per_minute,
                "observed_runs_per_minute": status.observed_runs_per_minute,
                "operator_target": status.operator_target,
                "operator_until": status
                    .operator_until_ms
                    .map(|ms| control_plane::timetables::model::rfc3339_utc(i64::try_from(ms).unwrap_or(i64::MAX))),
                "hot": stats.hot,
                "cold": stats.cold,
                "warmed": stats.warmed,
                "wasted": stats.wasted,
                "used_warm_seconds": stats.used_warm_ms as f64 / 1000.0,
                "wasted_warm_seconds": stats.wasted_warm_ms as f64 / 1000.0,
            }))
        })
        .collect();
    Json(json!({
        "pools": pools,
        "policy": state.pools.policy(),
        "budget": state.pools.budget_view(),
        "plan": state.pools.plan_view(),
    }))
    .into_response()
}

fn pool_error(err: &PoolError) -> Response {
    match err {
        PoolError::Starting => sandbox_starting(),
        PoolError::UnknownLanguage(_) => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownLanguage,
            &err.to_string(),
        ),
        PoolError::Actor(..) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            &err.to_string(),
        ),
    }
}

/// Body of `PUT /api/v1/sandbox/pools/{language}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolTarget {
    target: u32,
    /// Keep this target only this long, then go back to the one before
    /// (unless the target was changed again meanwhile): how a chaos drill
    /// drains a pool without leaving it drained if the drill dies.
    #[serde(default)]
    for_ms: Option<u64>,
}

/// `PUT /api/v1/sandbox/pools/{language}`: an operator's target for a
/// language's pool, which wins over the plan and the observed rate until
/// cleared (`DELETE`) or, with `for_ms`, for a while; the node's budget
/// still caps it. Operators only.
pub(crate) async fn set_pool_target(
    State(state): State<EdgeState>,
    axum::extract::Path(language): axum::extract::Path<String>,
    _: Operator,
    body: Result<Json<PoolTarget>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "send {\"target\": N} or {\"target\": N, \"for_ms\": MS}",
        );
    };
    let max = state.pool_override_ms_max;
    if body.for_ms.is_some_and(|ms| ms == 0 || ms > max) {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!("for_ms must be 1 to {max} (edge.pool_override_ms_max)"),
        );
    }
    if state.sandbox.get().is_none() {
        return sandbox_starting();
    }
    match state
        .pools
        .set_override(&language, body.target, body.for_ms)
        .await
    {
        Ok((status, restores_to)) => {
            let mut answer = json!({
                "language": language,
                "target": status.target,
                "source": status.source,
                "budget_capped": status.budget_capped,
            });
            if let (Some(ms), Some(previous)) = (body.for_ms, restores_to) {
                answer["restores_to"] = json!(previous);
                answer["restores_in_ms"] = json!(ms);
            }
            Json(answer).into_response()
        }
        Err(err) => pool_error(&err),
    }
}

/// `DELETE /api/v1/sandbox/pools/{language}`: clears an operator's target,
/// so the pool follows its policy again. Operators only.
pub(crate) async fn clear_pool_target(
    State(state): State<EdgeState>,
    axum::extract::Path(language): axum::extract::Path<String>,
    _: Operator,
) -> Response {
    if state.sandbox.get().is_none() {
        return sandbox_starting();
    }
    match state.pools.clear_override(&language).await {
        Ok(status) => Json(json!({
            "language": language,
            "target": status.target,
            "source": status.source,
            "budget_capped": status.budget_capped,
        }))
        .into_response(),
        Err(err) => pool_error(&err),
    }
}

/// `?limit=` of list requests.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
}

/// The outbox a dead-letter route names (`?queue=`), or the refusal.
pub(crate) struct DeadLetterQueue(QueueName);

impl axum::extract::FromRequestParts<EdgeState> for DeadLetterQueue {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &EdgeState,
    ) -> Result<Self, Response> {
        axum::extract::Query::<QueueQuery>::try_from_uri(&parts.uri)
            .map(|query| DeadLetterQueue(query.0.queue))
            .map_err(|_| bad_queue())
    }
}

/// One outbox as operators see it.
fn queue_view<T: serde::Serialize + serde::de::DeserializeOwned>(
    queue: &crate::outbox::Queue<T>,
) -> serde_json::Value {
    let limits = queue.limits();
    json!({
        "pending": queue.len(),
        "pending_max": limits.items_max,
        "full": queue.full(),
        "dead_letters": queue.dead_letters_len(),
        "dead_letters_max": limits.dead_letters_max,
    })
}

/// `GET /api/v1/operator/outbox`: how many submission reports wait for
/// the control plane, since when, and the dead letters; the same for
/// attendance reports under `attendance`; operators only.
pub(crate) async fn outbox_status(State(state): State<EdgeState>, _: Operator) -> Response {
    match state.run_store.oldest_finished_at() {
        Ok(oldest) => {
            let mut view = queue_view(state.run_store.outbox());
            view["oldest_finished_at"] = json!(oldest);
            view["attendance"] = queue_view(&state.attendance);
            Json(view).into_response()
        }
        Err(err) => store_failure(&err),
    }
}

/// Which outbox a dead-letter route is about.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum QueueName {
    /// Submission reports (the default).
    #[default]
    Submissions,
    /// Attendance reports.
    Attendance,
}

/// `?limit=&after=&queue=` of the dead-letter list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetterQuery {
    limit: Option<u32>,
    after: Option<String>,
    #[serde(default)]
    queue: QueueName,
}

/// `?queue=` of a dead letter's routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueQuery {
    #[serde(default)]
    queue: QueueName,
}

/// The list, discard and requeue of one queue's dead letters, as JSON.
trait DeadLetters {
    fn list(&self, after: Option<&str>, limit: usize)
        -> Result<Vec<serde_json::Value>, StoreError>;
    fn discard(&self, id: &str) -> Result<bool, StoreError>;
    fn requeue(&self, id: &str) -> Result<bool, StoreError>;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> DeadLetters for crate::outbox::Queue<T> {
    fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .dead_letters(after, limit)?
            .into_iter()
            .map(|letter| json!(letter))
            .collect())
    }

    fn discard(&self, id: &str) -> Result<bool, StoreError> {
        self.discard_dead_letter(id)
    }

    fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        self.requeue_dead_letter(id)
    }
}

fn dead_letters_of(state: &EdgeState, queue: QueueName) -> &dyn DeadLetters {
    match queue {
        QueueName::Submissions => state.run_store.outbox().as_ref(),
        QueueName::Attendance => state.attendance.as_ref(),
    }
}

/// `GET /api/v1/operator/outbox/dead-letters?limit=N&after=ID&queue=Q`:
/// reports the control plane refused for good, in key order, with the
/// reason (`queue`: `submissions`, the default, or `attendance`);
/// operators only. `next_after` pages on.
pub(crate) async fn outbox_dead_letters(
    State(state): State<EdgeState>,
    _: Operator,
    query: Result<axum::extract::Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the parameters are limit (a whole number), after (a dead letter id) and \
             queue (submissions or attendance)",
        );
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > state.list_page_max {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!(
                "limit must be 1 to {} (edge.list_page_max)",
                state.list_page_max
            ),
        );
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match dead_letters_of(&state, query.queue).list(query.after.as_deref(), limit) {
        Ok(items) => {
            let next_after = (items.len() == limit)
                .then(|| {
                    items
                        .last()
                        .and_then(|letter| letter["id"].as_str().map(str::to_owned))
                })
                .flatten();
            Json(json!({"items": items, "next_after": next_after})).into_response()
        }
        Err(err) => store_failure(&err),
    }
}

/// `DELETE /api/v1/operator/outbox/dead-letters/{id}?queue=Q`: an
/// operator has dealt with a refused report; 204, or 404 when there is
/// none.
pub(crate) async fn discard_dead_letter(
    State(state): State<EdgeState>,
    _: Operator,
    DeadLetterQueue(queue): DeadLetterQueue,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match dead_letters_of(&state, queue).discard(&id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_such_dead_letter(),
        Err(err) => store_failure(&err),
    }
}

/// `POST /api/v1/operator/outbox/dead-letters/{id}/retry?queue=Q`: puts a
/// refused report back in its outbox (after what the control plane
/// refused was fixed); 202, or 404 when there is none.
pub(crate) async fn retry_dead_letter(
    State(state): State<EdgeState>,
    _: Operator,
    DeadLetterQueue(queue): DeadLetterQueue,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match dead_letters_of(&state, queue).requeue(&id) {
        Ok(true) => (StatusCode::ACCEPTED, Json(json!({"requeued": id}))).into_response(),
        Ok(false) => no_such_dead_letter(),
        Err(StoreError::Corrupt { reason, .. }) => {
            error_response(StatusCode::CONFLICT, ErrorCode::Conflict, &reason)
        }
        Err(err) => store_failure(&err),
    }
}

fn no_such_dead_letter() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such dead letter",
    )
}

fn bad_queue() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        "the only parameter is queue: submissions or attendance",
    )
}

/// `GET /api/v1/sandbox/abuse?limit=N`: the newest abuse events, newest
/// first; operators only.
pub(crate) async fn abuse_events(
    State(state): State<EdgeState>,
    _: Operator,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the only parameter is limit, a whole number",
        );
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > state.list_page_max {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!(
                "limit must be 1 to {} (edge.list_page_max)",
                state.list_page_max
            ),
        );
    }
    match state
        .run_store
        .recent_abuse(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read abuse events");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "cannot read the run store",
            )
        }
    }
}

/// The fault rules in force, when injection is on; else the request is
/// refused (404) before the handler runs. Taken after [`Operator`], so a
/// caller who is not one learns nothing of the setting.
pub(crate) struct FaultInjection(Arc<tokio::sync::Mutex<FaultRules>>);

impl axum::extract::FromRequestParts<EdgeState> for FaultInjection {
    type Rejection = Response;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        state: &EdgeState,
    ) -> Result<Self, Response> {
        state.faults.clone().map(FaultInjection).ok_or_else(|| {
            error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "fault injection is off on this node (edge.fault_injection)",
            )
        })
    }
}

/// `GET /api/v1/operator/faults`: the rules in force.
pub(crate) async fn get_faults(_: Operator, FaultInjection(rules): FaultInjection) -> Response {
    Json(rules.lock().await.clone()).into_response()
}

/// `PUT /api/v1/operator/faults`: replaces the rules.
pub(crate) async fn put_faults(
    State(state): State<EdgeState>,
    _: Operator,
    FaultInjection(rules): FaultInjection,
    body: Result<Json<FaultRules>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let wanted = match body {
        Ok(Json(wanted)) => wanted,
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &format!(
                    "{}; send {{\"rules\": [{{\"peer\": NODE_ID, \"action\": \"drop\"|\"cut\"|\"delay\"|\"degrade\", \"direction\": \"both\"|\"outbound\"|\"inbound\", \"delay_ms\": N, \"jitter_ms\": N, \"loss_percent\": P}}], \"for_ms\": MS}}",
                    rejection.body_text()
                ),
            )
        }
    };
    let filter = match wanted.to_filter() {
        Ok(filter) => filter,
        Err(why) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &why.to_string(),
            )
        }
    };
    let max = state.fault_window_ms_max;
    if wanted.for_ms.is_some_and(|ms| ms == 0 || ms > max) {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!("for_ms must be 1 to {max} (edge.fault_window_ms_max)"),
        );
    }
    let mut current = rules.lock().await;
    state.gossip.set_fault_filter(filter);
    state.control_plane_link.set(wanted.link_fault());
    tracing::warn!(rules = ?wanted.rules, for_ms = ?wanted.for_ms, "gossip fault rules set by an operator");
    *current = wanted.clone();
    if let Some(ms) = wanted.for_ms {
        let (gossip, rules) = (state.gossip.clone(), rules.clone());
        let link = state.control_plane_link.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let mut current = rules.lock().await;
            if *current == wanted {
                gossip.clear_fault_filter();
                link.set_cut(false);
                *current = FaultRules::default();
                tracing::warn!("gossip fault rules cleared at the end of their window");
            }
        });
    }
    Json(current.clone()).into_response()
}

/// `DELETE /api/v1/operator/faults`: clears every rule.
pub(crate) async fn delete_faults(
    State(state): State<EdgeState>,
    _: Operator,
    FaultInjection(rules): FaultInjection,
) -> Response {
    let mut current = rules.lock().await;
    state.gossip.clear_fault_filter();
    state.control_plane_link.set_cut(false);
    tracing::warn!("gossip fault rules cleared by an operator");
    *current = FaultRules::default();
    Json(current.clone()).into_response()
}
