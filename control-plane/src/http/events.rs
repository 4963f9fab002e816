//! The outbox as a feed: `GET /api/v1/events?after=&limit=` for operators
//! and edges (service key). Publishing and reading are
//! [`crate::events`]' business; this file only checks who asks and pages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{self as api, ApiError};
use crate::error::ControlPlaneError;
use crate::events::Event;
use crate::service::ControlPlane;
use crate::tokens::Role;

/// `?after=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// The last id the consumer has handled; 0 (the default) reads from
    /// the start.
    after: Option<i64>,
    /// 1 to `events_page_size_max`; default 100 (or the max if
    /// smaller).
    limit: Option<u32>,
}

/// One page. Unlike the other lists, `next_after` is always there: it
/// is the id of the last event returned, or `after` when none were,
/// so a consumer simply asks again with it (a stream has no last page).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// Events in id order.
    items: Vec<Event>,
    /// Where to read on from.
    next_after: i64,
}

pub(super) async fn list(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    // The edge service key, or an operator's token.
    if api::check_service_key(&cp, &headers).is_err() {
        let caller = api::caller_from_headers(&cp, &headers)?;
        caller.require_any(&[Role::Operator])?;
    }
    let Query(query) = query.map_err(|rejection| {
        ControlPlaneError::BadRequest(format!("query string: {}", rejection.body_text()))
    })?;
    let max = cp.config().events_page_size_max;
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ControlPlaneError::BadRequest(format!(
            "limit must be 1 to {max} (control_plane.events_page_size_max)"
        ))
        .into());
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ControlPlaneError::BadRequest("after must be at least 0".into()).into());
    }
    crate::events::publish(cp.db(), cp.config().events_publish_batch_max)
        .await
        .map_err(ControlPlaneError::from)?;
    let items = crate::events::read(cp.db().pool(), after, limit)
        .await
        .map_err(ControlPlaneError::from)?;
    let next_after = items.last().map_or(after, |e| e.id);
    Ok(Json(EventPage { items, next_after }))
}
