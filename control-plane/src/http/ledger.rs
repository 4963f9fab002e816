//! The ledger's HTTP routes under `/api/v1/ledger`. Money is an operator's
//! or a tenant instructor's business: learners get 403. Everything is scoped
//! to the tenant of the caller's token, so one tenant's ids are simply
//! unknown (404) to another. Bodies are checked here only for shape; the
//! rules live in [`crate::ledger::store`].

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiError, Caller};
use crate::error::ControlPlaneError;
use crate::ledger::model::Account;
use crate::ledger::model::Audit;
use crate::ledger::model::Limits;
use crate::ledger::model::NewAccount;
use crate::ledger::model::NewTransfer;
use crate::ledger::model::Recorded;
use crate::ledger::model::Resolve;
use crate::ledger::model::Transfer;
use crate::ledger::store;
use crate::service::ControlPlane;
use crate::tokens::Role;

/// The caller's tenant, once the role allows ledger access.
fn tenant(caller: &Caller) -> Result<&str, ApiError> {
    caller.require_any(&[Role::Operator, Role::Instructor])?;
    Ok(&caller.0.tid)
}

fn limits(cp: &ControlPlane) -> Limits {
    Limits::from_config(cp.config())
}

/// `?limit=&after=` of every ledger list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to `ledger_page_size_max`; default 100.
    pub limit: Option<u32>,
    /// Return items whose id sorts after this one (the last id seen).
    pub after: Option<String>,
}

/// One page of a list; `next_after` is the `after` of the next page, absent
/// on the last one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in id order.
    pub items: Vec<T>,
    /// Cursor for the next page.
    pub next_after: Option<String>,
}

fn page_query(query: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text())).into()
    })
}

fn page<T>(items: Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> Page<T> {
    let full = items.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if full {
        items.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    Page { items, next_after }
}

pub(super) async fn create_account(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<NewAccount>, JsonRejection>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let tenant = tenant(&caller)?;
    let Json(request) = body?;
    let account =
        store::create_account(cp.db(), tenant, &request, &limits(&cp), cp.clock().now_ms()).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

pub(super) async fn get_account(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(store::get_account(cp.db(), tenant, &id).await?))
}

pub(super) async fn list_accounts(
    State(cp): State<ControlPlane>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Account>>, ApiError> {
    let tenant = tenant(&caller)?;
    let query = page_query(query)?;
    let limit = limits(&cp).page_size(query.limit)?;
    let items = store::list_accounts(cp.db(), tenant, query.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |a: &Account| &a.id)))
}

fn recorded_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

pub(super) async fn create_transfer(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<NewTransfer>, JsonRejection>,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    let tenant = tenant(&caller)?;
    let Json(request) = body?;
    // Through the group commit: concurrent requests share a transaction.
    let recorded = cp
        .ledger_writer()
        .create_transfer(tenant, request, cp.clock().now_ms())
        .await?;
    Ok((recorded_status(recorded.created), Json(recorded.transfer)))
}

/// Body of `POST /api/v1/ledger/transfers/batch`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to `ledger_batch_transfers_max` transfers, applied in order, all or
    /// nothing.
    pub transfers: Vec<NewTransfer>,
}

/// Answer of a batch: one result per transfer, in request order.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    /// Each stored transfer and whether this call created it.
    pub results: Vec<Recorded>,
}

pub(super) async fn create_batch(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<BatchAnswer>), ApiError> {
    let tenant = tenant(&caller)?;
    let Json(request) = body?;
    // Through the group commit too: concurrent batches share a transaction,
    // each still all or nothing.
    let results = cp
        .ledger_writer()
        .create_transfers(tenant, request.transfers, cp.clock().now_ms())
        .await?;
    let status = recorded_status(results.iter().any(|r| r.created));
    Ok((status, Json(BatchAnswer { results })))
}

pub(super) async fn get_transfer(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(store::get_transfer(cp.db(), tenant, &id).await?))
}

pub(super) async fn list_transfers(
    State(cp): State<ControlPlane>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Transfer>>, ApiError> {
    let tenant = tenant(&caller)?;
    let query = page_query(query)?;
    let limit = limits(&cp).page_size(query.limit)?;
    let items = store::list_transfers(cp.db(), tenant, query.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |t: &Transfer| &t.id)))
}

/// The optional body of a post or void: empty means all defaults.
fn resolve_body(body: &Bytes) -> Result<Resolve, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Resolve::default());
    }
    serde_json::from_slice(body).map_err(|err| {
        ControlPlaneError::BadRequest(format!("failed to parse the request body: {err}")).into()
    })
}

pub(super) async fn post_pending(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    let tenant = tenant(&caller)?;
    let resolve = resolve_body(&body)?;
    let recorded = store::post_pending(
        cp.db(),
        tenant,
        &id,
        &resolve,
        &limits(&cp),
        cp.clock().now_ms(),
    )
    .await?;
    Ok((recorded_status(recorded.created), Json(recorded.transfer)))
}

pub(super) async fn void_pending(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    let tenant = tenant(&caller)?;
    let resolve = resolve_body(&body)?;
    let recorded = store::void_pending(
        cp.db(),
        tenant,
        &id,
        &resolve,
        &limits(&cp),
        cp.clock().now_ms(),
    )
    .await?;
    Ok((recorded_status(recorded.created), Json(recorded.transfer)))
}

pub(super) async fn audit(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<Audit>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(store::audit(cp.db(), tenant).await?))
}
