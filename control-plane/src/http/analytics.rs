//! The course figures for instructors and operators:
//! `GET /api/v1/courses/{id}/stats` and `GET /api/v1/courses/{id}/unit-stats`.
//! The figures themselves come from the projection in [`crate::analytics`].

use axum::extract::{Path, State};
use axum::Json;

use super::extract::{ApiError, Caller};
use crate::analytics::{CourseStats, CourseUnitStats};
use crate::service::ControlPlane;
use crate::tokens::Role;

/// The tenant whose course an instructor (their own) or an operator
/// (any) may read figures of.
async fn reader_tenant(
    cp: &ControlPlane,
    caller: &Caller,
    course: &str,
) -> Result<String, ApiError> {
    caller.require_any(&[Role::Instructor, Role::Operator])?;
    if caller.0.role == Role::Operator {
        Ok(crate::content::courses::owner_tenant(
            cp.db(),
            crate::content::courses::Owned::Course,
            course,
        )
        .await?)
    } else {
        Ok(caller.0.tid.clone())
    }
}

pub(super) async fn stats(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
) -> Result<Json<CourseStats>, ApiError> {
    let tenant = reader_tenant(&cp, &caller, &course).await?;
    Ok(Json(
        crate::analytics::course_stats(cp.db(), &tenant, &course).await?,
    ))
}

pub(super) async fn unit_stats(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
) -> Result<Json<CourseUnitStats>, ApiError> {
    let tenant = reader_tenant(&cp, &caller, &course).await?;
    Ok(Json(
        crate::analytics::unit_stats(cp.db(), &tenant, &course).await?,
    ))
}
