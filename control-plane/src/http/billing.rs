//! Billing's HTTP routes under `/api/v1/billing`. Everything but the
//! webhook is a tenant's business: instructors (tenant admins) and
//! operators, scoped to the tenant of the caller's token, so one tenant's
//! ids are simply unknown (404) to another. The Stripe webhook carries no
//! token: its signature is its authentication.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiError, Caller};
use crate::billing::error::BillingError;
use crate::billing::idempotency::{self, Claim};
use crate::billing::invoices;
use crate::billing::model::Invoice;
use crate::billing::model::Plan;
use crate::billing::model::Subscription;
use crate::billing::plans;
use crate::billing::provider::DevProvider;
use crate::billing::stripe;
use crate::billing::subscriptions::{self, NewSubscription, PaymentMethod};
use crate::billing::webhooks;
use crate::error::ControlPlaneError;
use crate::service::ControlPlane;
use crate::tokens::Role;

/// Route of subscribe, part of every idempotency fingerprint.
const SUBSCRIBE_ROUTE: &str = "POST /api/v1/billing/subscriptions";

fn tenant(caller: &Caller) -> Result<&str, ApiError> {
    caller.require_any(&[Role::Operator, Role::Instructor])?;
    Ok(&caller.0.tid)
}

fn billing(err: BillingError) -> ApiError {
    ControlPlaneError::from(err).into()
}

/// The provider the HTTP API charges with: the built-in one. (The Stripe
/// adapter only builds requests; nothing here sends them.)
fn provider(cp: &ControlPlane) -> DevProvider {
    DevProvider::new(cp.config().billing_dev_decline_token.clone())
}

/// One page of a list; `next_after` is absent on the last.
#[derive(Debug, Serialize)]
pub(super) struct Page<T> {
    items: Vec<T>,
    next_after: Option<String>,
}

pub(super) async fn list_plans(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Result<Json<Page<Plan>>, ApiError> {
    tenant(&caller)?;
    let items = plans::list(cp.db()).await.map_err(billing)?;
    Ok(Json(Page {
        items,
        next_after: None,
    }))
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

pub(super) async fn subscribe(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<NewSubscription>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&caller)?.to_owned();
    let Json(request) = body?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            billing(BillingError::Invalid(
                "an Idempotency-Key header is required".into(),
            ))
        })?
        .to_owned();
    let canonical = serde_json::to_string(&request)
        .map_err(|err| billing(BillingError::Invalid(format!("body: {err}"))))?;
    let hash = idempotency::request_hash(SUBSCRIBE_ROUTE, &canonical);
    let now = cp.clock().now_ms();
    match idempotency::claim(&cp, &tenant, &key, &hash, now)
        .await
        .map_err(billing)?
    {
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return Ok(json_response(status, body, true));
        }
        Claim::Fresh => {}
    }
    let outcome = subscriptions::subscribe(&cp, &provider(&cp), &tenant, &request, now).await;
    let (status, body) = match outcome {
        Ok(subscription) => (
            StatusCode::CREATED,
            serde_json::to_string(&subscription)
                .map_err(|err| billing(BillingError::Corrupt(err.to_string())))?,
        ),
        Err(err) => {
            let error = billing(err);
            if error.status().is_server_error() {
                if let Err(err) = idempotency::release(&cp, &tenant, &key).await {
                    tracing::warn!(error = %err, "billing: could not release an idempotency key");
                }
                return Err(error);
            }
            let body = serde_json::json!({"error": {"code": error.code().as_str(), "message": error.message()}});
            (error.status(), body.to_string())
        }
    };
    idempotency::finish(&cp, &tenant, &key, status.as_u16(), &body)
        .await
        .map_err(billing)?;
    Ok(json_response(status, body, false))
}

pub(super) async fn get_subscription(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(
        subscriptions::get(&cp, tenant, &id)
            .await
            .map_err(billing)?,
    ))
}

pub(super) async fn cancel(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(
        subscriptions::cancel(&cp, tenant, &id)
            .await
            .map_err(billing)?,
    ))
}

pub(super) async fn set_payment_method(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<PaymentMethod>, JsonRejection>,
) -> Result<Json<Subscription>, ApiError> {
    let tenant = tenant(&caller)?;
    let Json(method) = body?;
    Ok(Json(
        subscriptions::set_payment_method(&cp, tenant, &id, &method)
            .await
            .map_err(billing)?,
    ))
}

/// `?limit=&after=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    limit: Option<u32>,
    after: Option<String>,
}

pub(super) async fn list_invoices(
    State(cp): State<ControlPlane>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Invoice>>, ApiError> {
    let tenant = tenant(&caller)?;
    let Query(query) = query.map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text()))
    })?;
    let max = cp.config().billing_page_size_max;
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(billing(BillingError::Invalid(format!(
            "limit must be 1 to {max} (control_plane.billing_page_size_max)"
        ))));
    }
    let items = invoices::list(&cp, tenant, query.after.as_deref(), limit)
        .await
        .map_err(billing)?;
    let full = items.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if full {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Json(Page { items, next_after }))
}

pub(super) async fn get_invoice(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Invoice>, ApiError> {
    let tenant = tenant(&caller)?;
    Ok(Json(
        invoices::get(&cp, tenant, &id).await.map_err(billing)?,
    ))
}

/// What the webhook did with an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAnswer {
    /// Always `true`: the event was verified and handled.
    received: bool,
    /// `settled`, `past_due`, `ignored`.
    action: &'static str,
}

pub(super) async fn stripe_webhook(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let config = cp.config();
    let now = cp.clock().now_ms();
    let event = stripe::verify_webhook(
        &body,
        headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok()),
        &config.billing_stripe_webhook_secret,
        now.div_euclid(1000),
        i64::try_from(config.billing_webhook_tolerance_seconds).unwrap_or(i64::MAX),
    )
    .map_err(billing)?;
    let action = webhooks::handle(&cp, &event, now).await.map_err(billing)?;
    tracing::info!(
        event = event.id,
        kind = event.kind,
        action,
        "billing: stripe webhook"
    );
    Ok(Json(WebhookAnswer {
        received: true,
        action,
    }))
}
