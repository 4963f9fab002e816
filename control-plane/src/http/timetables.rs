//! The timetable routes under `/api/v1/timetables`: import a
//! `text/calendar` or `text/csv` file (`?dry_run=true` to see what would
//! be imported, `?partial=true` to import the valid part of a file with
//! problems, `?name=`), list the tenant's timetables, read a timetable's
//! occurrences in a window, delete one. Instructors and operators of the
//! tenant only; learners get 403. A file with problems answers 422
//! `timetable_invalid` with every problem in `error.problems`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::extract::{page, query, ApiError, Caller, Page, PageQuery, AUTHORS};
use crate::codes::ErrorCode;
use crate::content::Limits as ContentLimits;
use crate::service::ControlPlane;
use crate::timetables::demand::{self, Scope};
use crate::timetables::forecast::{Forecast, PoolPlan};
use crate::timetables::model::{Format, ImportReport, Occurrences, Timetable};
use crate::timetables::store::{self, ImportRequest, Imported};
use crate::timetables::TimetableError;
use crate::tokens::Role;

/// Window of `GET .../occurrences` when `to` is not given: a week.
pub const OCCURRENCES_WINDOW_MS_DEFAULT: i64 = 7 * 86_400_000;

/// `?dry_run=&partial=&name=` of `POST /api/v1/timetables`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Write nothing; answer what would be imported, problems included.
    pub dry_run: Option<bool>,
    /// Import the valid events of a file with problems (listed in the
    /// answer) instead of refusing it.
    pub partial: Option<bool>,
    /// The timetable's name; else the calendar's `X-WR-CALNAME`.
    pub name: Option<String>,
}

/// Window of `GET /api/v1/forecast` when `to` is not given: six hours.
pub const FORECAST_WINDOW_MS_DEFAULT: i64 = 6 * 3_600_000;

/// `?region=&from=&to=` of `GET /api/v1/forecast`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastQuery {
    /// One region (a region id of `timetable_regions`); default all.
    pub region: Option<String>,
    /// RFC 3339; default now (rounded down to the minute).
    pub from: Option<String>,
    /// RFC 3339, after `from`; default six hours after it.
    pub to: Option<String>,
}

/// `?region=` of `GET /api/v1/sandbox/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// The edge's region (a region id of `timetable_regions`).
    pub region: String,
}

/// `?from=&to=` of `GET /api/v1/timetables/{id}/occurrences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// RFC 3339; default now.
    pub from: Option<String>,
    /// RFC 3339, after `from`; default a week after it.
    pub to: Option<String>,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "text/calendar" => Ok(Format::Icalendar),
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "a timetable is sent as text/calendar (RFC 5545) or text/csv",
        )),
    }
}

pub(super) async fn import(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ImportReport>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let format = format_of(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!(
                    "the file is larger than {} bytes (control_plane.timetable_body_bytes_max)",
                    cp.config().timetable_body_bytes_max
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                rejection.body_text(),
            )
        }
    })?;
    let request = ImportRequest {
        tenant: caller.0.tid.clone(),
        user: caller.0.sub.clone(),
        format,
        bytes: body.to_vec(),
        name: q.name,
        dry_run: q.dry_run.unwrap_or(false),
        partial: q.partial.unwrap_or(false),
        now_ms: cp.clock().now_ms(),
    };
    let limits = store::limits(cp.config());
    match store::import(cp.db(), &limits, request).await? {
        Imported::Created(report) => Ok((StatusCode::CREATED, Json(report))),
        Imported::Existing(report) => Ok((StatusCode::OK, Json(report))),
    }
}

pub(super) async fn list(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Timetable>>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let limit = ContentLimits::from_config(cp.config()).page_size(q.limit)?;
    let items = store::list(cp.db(), &caller.0.tid, q.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |t: &Timetable| &t.id)))
}

fn instant(field: &str, text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            TimetableError::BadRequest(format!(
                "{field} must be an RFC 3339 time (2031-09-01T00:00:00Z)"
            ))
            .into()
        })
}

pub(super) async fn occurrences(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Json<Occurrences>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let from = match &q.from {
        Some(text) => instant("from", text)?,
        None => cp.clock().now_ms(),
    };
    let to = match &q.to {
        Some(text) => instant("to", text)?,
        None => from.saturating_add(OCCURRENCES_WINDOW_MS_DEFAULT),
    };
    if to <= from {
        return Err(TimetableError::BadRequest("to must be after from".into()).into());
    }
    Ok(Json(
        store::occurrences(
            cp.db(),
            &caller.0.tid,
            &id,
            from,
            to,
            cp.config().timetable_occurrences_per_file_max,
        )
        .await?,
    ))
}

pub(super) async fn delete(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_any(&AUTHORS)?;
    store::delete(cp.db(), &caller.0.tid, &id, cp.clock().now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn known_region(cp: &ControlPlane, region: &str) -> Result<(), ApiError> {
    if cp.config().timetable_regions.iter().any(|r| r == region) {
        return Ok(());
    }
    Err(TimetableError::BadRequest(format!(
        "region {region:?} is not one of timetable_regions ({})",
        cp.config().timetable_regions.join(", ")
    ))
    .into())
}

/// `GET /api/v1/sandbox/plan?region=`: the region's planned warm targets
/// for the next `forecast_plan_minutes`, for its edges (service key). The
/// fleet's sessions count: an edge warms for every tenant it serves.
pub(super) async fn plan(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> Result<Json<PoolPlan>, ApiError> {
    super::extract::check_service_key(&cp, &headers).map_err(|_| {
        crate::error::ControlPlaneError::BadToken(
            "the pool plan is for edge nodes with the service key \
             (control_plane.edge_service_key)"
                .into(),
        )
    })?;
    let q = query(q)?;
    known_region(&cp, &q.region)?;
    let now = cp.clock().now_ms();
    let from = now.div_euclid(60_000) * 60_000;
    let minutes = cp.config().forecast_plan_minutes;
    let to = from.saturating_add(i64::from(minutes) * 60_000);
    let forecast = demand::forecast(
        cp.db(),
        cp.config(),
        Scope::Fleet,
        Some(&q.region),
        from,
        to,
        now,
    )
    .await?;
    Ok(Json(PoolPlan::from_forecast(
        &q.region,
        forecast,
        minutes,
        crate::timetables::model::rfc3339_utc(now),
    )))
}

/// `GET /api/v1/forecast`: expected runs and warm targets per minute, per
/// region and language. Operators see the fleet (every tenant's sessions
/// and runs); instructors their tenant's.
pub(super) async fn forecast(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<Json<Forecast>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    if let Some(region) = &q.region {
        known_region(&cp, region)?;
    }
    let now = cp.clock().now_ms();
    let from = match &q.from {
        Some(text) => instant("from", text)?,
        None => now,
    }
    .div_euclid(60_000)
        * 60_000;
    let to = match &q.to {
        Some(text) => instant("to", text)?,
        None => from.saturating_add(FORECAST_WINDOW_MS_DEFAULT),
    };
    let scope = if caller.0.role == Role::Operator {
        Scope::Fleet
    } else {
        Scope::Tenant(&caller.0.tid)
    };
    Ok(Json(
        demand::forecast(
            cp.db(),
            cp.config(),
            scope,
            q.region.as_deref(),
            from,
            to,
            now,
        )
        .await?,
    ))
}
