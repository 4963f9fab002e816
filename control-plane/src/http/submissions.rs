//! Submission reports from edges and the lists people read:
//! `POST /api/v1/submissions` (edges, with the service key),
//! `POST /api/v1/submissions/batch` (the same, many at once, with its own
//! body limit, `batch_body_bytes_max` of `submissions_batch_max`) and
//! `GET /api/v1/submissions` (learners their own; instructors and
//! operators their tenant's, optionally `?user_id=`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiError, Caller};
use crate::error::ControlPlaneError;
use crate::service::ControlPlane;
use crate::submissions::{
    BatchError, BatchOutcome, BatchResult, BatchResults, ReceivedBatch, Recorded, Submission,
    SubmissionReport,
};
use crate::tokens::Role;

fn check_key(cp: &ControlPlane, headers: &HeaderMap) -> Result<(), ControlPlaneError> {
    super::extract::check_service_key(cp, headers).map_err(|_| {
        ControlPlaneError::BadToken(
            "submissions are reported by edge nodes with the service key \
             (control_plane.edge_service_key)"
                .into(),
        )
    })
}

/// Answers 201 for a new record and 200 for a repeat, with the record.
pub(super) async fn report(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Result<Json<SubmissionReport>, JsonRejection>,
) -> Result<(StatusCode, Json<Submission>), ApiError> {
    check_key(&cp, &headers)?;
    let Json(report) = body?;
    match crate::submissions::record(cp.db(), &report).await? {
        Recorded::Created(stored) => Ok((StatusCode::CREATED, Json(stored))),
        Recorded::Existing(stored) => Ok((StatusCode::OK, Json(stored))),
    }
}

/// Answers 200 with one result per report, in order; 400
/// `batch_size` for none or more than `submissions_batch_max`.
pub(super) async fn report_batch(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Result<Json<ReceivedBatch>, JsonRejection>,
) -> Result<Json<BatchResults>, ApiError> {
    check_key(&cp, &headers)?;
    let Json(batch) = body?;
    let max = cp.config().submissions_batch_max;
    let total = batch.submissions.total;
    if total == 0 || total > u64::from(max) {
        return Err(ControlPlaneError::BatchSize(format!(
            "a batch holds 1 to {max} reports (control_plane.submissions_batch_max), \
             not {total}"
        ))
        .into());
    }
    // Items that are not reports are refused here, alone; the others
    // are recorded together, in order.
    let items = batch.submissions.kept;
    let mut ids = Vec::with_capacity(items.len());
    let mut parsed = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        ids.push(
            item.get("submission_id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
        );
        parsed.push(
            serde_json::from_value::<SubmissionReport>(item).map_err(|err| {
                ControlPlaneError::BadRequest(format!("submissions[{index}]: {err}"))
            }),
        );
    }
    let recorded = crate::submissions::record_batch(cp.db(), parsed).await?;
    let mut results = Vec::with_capacity(ids.len());
    let (mut created, mut existing, mut refused) = (0_u32, 0_u32, 0_u32);
    for (submission_id, answer) in ids.into_iter().zip(recorded) {
        let (outcome, error) = match answer {
            Ok(Recorded::Created(_)) => {
                created += 1;
                (BatchOutcome::Created, None)
            }
            Ok(Recorded::Existing(_)) => {
                existing += 1;
                (BatchOutcome::Existing, None)
            }
            Err(refusal) => {
                refused += 1;
                let api = ApiError::from(refusal);
                let error = BatchError {
                    code: api.code(),
                    message: api.message().to_owned(),
                };
                (BatchOutcome::Refused, Some(error))
            }
        };
        results.push(BatchResult {
            submission_id,
            outcome,
            error,
        });
    }
    tracing::debug!(created, existing, refused, "submissions: batch recorded");
    Ok(Json(BatchResults { results }))
}

/// `?limit=&after=&user_id=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    limit: Option<u32>,
    after: Option<String>,
    user_id: Option<String>,
}

/// One page; `next_after` is absent on the last.
#[derive(Debug, Serialize)]
pub(super) struct Page {
    items: Vec<Submission>,
    next_after: Option<String>,
}

pub(super) async fn list(
    State(cp): State<ControlPlane>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text()))
    })?;
    let max = cp.config().submissions_page_size_max;
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ControlPlaneError::BadRequest(format!(
            "limit must be 1 to {max} (control_plane.submissions_page_size_max)"
        ))
        .into());
    }
    let claims = &caller.0;
    let user = match claims.role {
        Role::Learner => {
            if query.user_id.as_ref().is_some_and(|u| *u != claims.sub) {
                return Err(ControlPlaneError::Forbidden(
                    "learners see their own submissions only".into(),
                )
                .into());
            }
            Some(claims.sub.as_str())
        }
        _ => query.user_id.as_deref(),
    };
    let items =
        crate::submissions::list(cp.db(), &claims.tid, user, query.after.as_deref(), limit).await?;
    let next_after = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|s| s.id.clone()))
        .flatten();
    Ok(Json(Page { items, next_after }))
}
