//! The run routes: `POST /api/v1/runs` (a plain JSON answer, or
//! server-sent events with `Accept: text/event-stream`) and
//! `GET /api/v1/runs/{id}`. The budget and the record are the run
//! service's (`edge::runs`); this file only speaks HTTP.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_plane::tokens::{Claims, Role};
use control_plane::ErrorCode;
use serde_json::json;

use crate::edge::extract::Caller;
use crate::edge::http::{json_rejection, run_error, run_error_parts};
use crate::edge::runs::{RunError, RunService, Runner};
use crate::edge::state::EdgeState;
use crate::server::error_response;

/// Who runs, as the run service needs it, from a verified token.
fn runner(claims: &Claims) -> Runner<'_> {
    Runner {
        user_id: &claims.sub,
        tenant_id: &claims.tid,
    }
}

/// Whether the client asked for server-sent events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// `POST /api/v1/runs`: runs code once, against its tests if any, and
/// records the run.
pub(crate) async fn run_code(
    State(state): State<EdgeState>,
    Caller(claims): Caller,
    headers: HeaderMap,
    body: Result<Json<sandbox::RunRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(err) = state.runs.take_budget(runner(&claims)) {
        return run_error(&err);
    }
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(&rejection),
    };
    let sandbox = match state.runs.sandbox() {
        Ok(sandbox) => sandbox,
        Err(err) => return run_error(&err),
    };
    if wants_stream(&headers) {
        // Bad requests get a plain JSON error before any event is sent.
        if let Err(err) = sandbox.validate(&request) {
            return run_error(&err.into());
        }
        return stream_run(state.runs.clone(), claims, sandbox, request);
    }
    let finished = match sandbox.run(&request).await {
        Ok(result) => {
            state
                .runs
                .finish(runner(&claims), &request.language, &result, None)
                .await
        }
        Err(err) => Err(err.into()),
    };
    match finished {
        Ok(body) => Json(body).into_response(),
        Err(err) => run_error(&err),
    }
}

/// Answers a run as server-sent events: `output` events while it runs
/// (`{"step","case","stream","data"}`), a `lagged` event if the client fell
/// behind and pieces were dropped (`{"dropped": n}`), then one `result`
/// event with the same JSON as the plain answer, or one `error` event with
/// the usual error body. The run goes on and is recorded even if the
/// client goes away.
fn stream_run(
    runs: RunService,
    claims: Claims,
    sandbox: sandbox::Sandbox,
    request: sandbox::RunRequest,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (sink, mut chunks) = sandbox.output_sink();
    // As many events as the sink holds pieces, plus the last two.
    let capacity = sandbox.stream_chunks_max().saturating_add(2);
    let (events, receiver) =
        tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(capacity);
    tokio::spawn(async move {
        let mut dropped = 0_u64;
        let run = sandbox.run_streaming(&request, Some(&sink));
        tokio::pin!(run);
        let forward = |chunk: sandbox::job::OutputChunk, dropped: &mut u64| {
            let event = Event::default().event("output").json_data(&chunk);
            // Never wait on a slow client: the run must not slow down.
            if event
                .map(|e| events.try_send(Ok(e)))
                .map_or(true, |sent| sent.is_err())
            {
                *dropped += 1;
            }
        };
        let outcome = loop {
            tokio::select! {
                biased;
                Some(chunk) = chunks.recv() => forward(chunk, &mut dropped),
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(chunk) = chunks.try_recv() {
            forward(chunk, &mut dropped);
        }
        dropped += sink.dropped();
        if dropped > 0 {
            if let Ok(event) = Event::default()
                .event("lagged")
                .json_data(json!({"dropped": dropped}))
            {
                let _ = events.send(Ok(event)).await;
            }
        }
        let last = match outcome {
            Ok(result) => {
                runs.finish(runner(&claims), &request.language, &result, None)
                    .await
            }
            Err(err) => Err(RunError::from(err)),
        };
        let last = match last {
            Ok(body) => Event::default().event("result").json_data(body),
            Err(err) => {
                let (_, code, message) = run_error_parts(&err);
                Event::default()
                    .event("error")
                    .json_data(json!({"error": {"code": code.as_str(), "message": message}}))
            }
        };
        if let Ok(event) = last {
            let _ = events.send(Ok(event)).await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /api/v1/runs/{id}`: a recorded run, for the user who ran it or an
/// operator; anyone else gets 404, so ids do not leak.
pub(crate) async fn get_run(
    State(state): State<EdgeState>,
    Path(id): Path<String>,
    Caller(claims): Caller,
) -> Response {
    let not_found = || error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such run");
    if uuid::Uuid::parse_str(&id).is_err() {
        return not_found();
    }
    match state.run_store.get(&id) {
        Ok(Some(record)) if record.user_id == claims.sub || claims.role == Role::Operator => {
            Json(record.result).into_response()
        }
        Ok(_) => not_found(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read a run");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "cannot read the run store",
            )
        }
    }
}
