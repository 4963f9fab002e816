//! The learning routes under `/api/v1`: enrollments and cohorts, progress,
//! quiz attempts, live-class tickets and attendance. Managing enrollments
//! of others and cohorts needs the instructor role in the tenant (or an
//! operator, scoped to the tenant owning the id, as in content); learners
//! enroll, drop and record progress for themselves only. Edges report
//! attendance with the service key. Another tenant's ids are unknown (404).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::extract::{
    is_author, page, query, tenant_of, ApiError, Caller, Page, PageQuery, AUTHORS,
};
use crate::content::courses::Owned;
use crate::content::Limits;
use crate::error::ControlPlaneError;
use crate::learning::enrollments::{self, Cohort, Enrolled, Enrollment, NewCohort, NewEnrollment};
use crate::learning::error::LearningError;
use crate::learning::live::{self, AttendanceRecorded, AttendanceReport, ClassAttendance, Ticket};
use crate::learning::progress::{self, AttemptResult, CourseProgress, LessonReport, UnitProgress};
use crate::learning::quiz::QuizAnswers;
use crate::service::ControlPlane;

fn limit(cp: &ControlPlane, requested: Option<u32>) -> Result<u32, ApiError> {
    Ok(Limits::from_config(cp.config()).page_size(requested)?)
}

pub(super) async fn enroll(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
    body: Result<Json<NewEnrollment>, JsonRejection>,
) -> Result<(StatusCode, Json<Enrollment>), ApiError> {
    let Json(request) = body?;
    let for_other = request
        .user_id
        .as_ref()
        .is_some_and(|user| *user != caller.0.sub)
        || request.cohort_id.is_some();
    if for_other && !is_author(&caller) {
        return Err(LearningError::Forbidden(
            "learners enroll themselves, without a user_id or cohort_id".into(),
        )
        .into());
    }
    let tenant = tenant_of(&cp, &caller, Owned::Course, &course).await?;
    let user = request.user_id.as_deref().unwrap_or(&caller.0.sub);
    if !is_author(&caller) && !enrollments::is_published(cp.db(), &tenant, &course).await? {
        // Unknown courses are 404 not_found, unpublished ones not_published.
        let mut conn = cp
            .db()
            .pool()
            .acquire()
            .await
            .map_err(LearningError::from)?;
        enrollments::check_course(&mut conn, &tenant, &course).await?;
        return Err(LearningError::NotPublished(format!(
            "course {course} has nothing published yet"
        ))
        .into());
    }
    let now = cp.clock().now_ms();
    match enrollments::enroll(
        cp.db(),
        &tenant,
        &course,
        user,
        request.cohort_id.as_deref(),
        now,
    )
    .await?
    {
        Enrolled::Created(e) => Ok((StatusCode::CREATED, Json(e))),
        Enrolled::Existing(e) => Ok((StatusCode::OK, Json(e))),
    }
}

/// `?limit=&after=&cohort_id=` of a course's enrollments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentQuery {
    /// Items per page, 1 to `content_page_size_max`; default 100.
    pub limit: Option<u32>,
    /// The last user id seen.
    pub after: Option<String>,
    /// Only this cohort's.
    pub cohort_id: Option<String>,
}

pub(super) async fn list_enrollments(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
    q: Result<Query<EnrollmentQuery>, QueryRejection>,
) -> Result<Json<Page<Enrollment>>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let limit = limit(&cp, q.limit)?;
    let tenant = tenant_of(&cp, &caller, Owned::Course, &course).await?;
    let items = enrollments::list_for_course(
        cp.db(),
        &tenant,
        &course,
        q.cohort_id.as_deref(),
        q.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page(items, limit, |e: &Enrollment| &e.user_id)))
}

pub(super) async fn drop_enrollment(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((course, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if user != caller.0.sub && !is_author(&caller) {
        return Err(
            LearningError::Forbidden("learners may drop only their own enrollment".into()).into(),
        );
    }
    let tenant = tenant_of(&cp, &caller, Owned::Course, &course).await?;
    enrollments::drop_enrollment(cp.db(), &tenant, &course, &user, cp.clock().now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn my_enrollments(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Enrollment>>, ApiError> {
    let q = query(q)?;
    let limit = limit(&cp, q.limit)?;
    let items = enrollments::list_for_user(
        cp.db(),
        &caller.0.tid,
        &caller.0.sub,
        q.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page(items, limit, |e: &Enrollment| &e.course_id)))
}

pub(super) async fn create_cohort(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
    body: Result<Json<NewCohort>, JsonRejection>,
) -> Result<(StatusCode, Json<Cohort>), ApiError> {
    caller.require_any(&AUTHORS)?;
    let Json(request) = body?;
    let tenant = tenant_of(&cp, &caller, Owned::Course, &course).await?;
    let cohort =
        enrollments::create_cohort(cp.db(), &tenant, &course, &request, cp.clock().now_ms())
            .await?;
    Ok((StatusCode::CREATED, Json(cohort)))
}

pub(super) async fn list_cohorts(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(course): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Cohort>>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let limit = limit(&cp, q.limit)?;
    let tenant = tenant_of(&cp, &caller, Owned::Course, &course).await?;
    let items =
        enrollments::list_cohorts(cp.db(), &tenant, &course, q.after.as_deref(), limit).await?;
    Ok(Json(page(items, limit, |c: &Cohort| &c.id)))
}

pub(super) async fn lesson_progress(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(unit): Path<String>,
    body: Result<Json<LessonReport>, JsonRejection>,
) -> Result<Json<UnitProgress>, ApiError> {
    let Json(report) = body?;
    let progress = progress::record_lesson(
        cp.db(),
        &caller.0.tid,
        &caller.0.sub,
        &unit,
        &report,
        cp.clock().now_ms(),
    )
    .await?;
    Ok(Json(progress))
}

pub(super) async fn quiz_attempt(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(unit): Path<String>,
    body: Result<Json<QuizAnswers>, JsonRejection>,
) -> Result<(StatusCode, Json<AttemptResult>), ApiError> {
    let Json(answers) = body?;
    let result = progress::record_quiz_attempt(
        cp.db(),
        &caller.0.tid,
        &caller.0.sub,
        &unit,
        &answers,
        cp.clock().now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(result)))
}

/// `?course_id=&limit=&after=` of `GET /api/v1/me/progress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressQuery {
    /// The course (required).
    pub course_id: Option<String>,
    /// Units per page, 1 to `content_page_size_max`; default 100.
    pub limit: Option<u32>,
    /// The last unit id seen.
    pub after: Option<String>,
}

pub(super) async fn my_progress(
    State(cp): State<ControlPlane>,
    caller: Caller,
    q: Result<Query<ProgressQuery>, QueryRejection>,
) -> Result<Json<CourseProgress>, ApiError> {
    let q = query(q)?;
    let limit = limit(&cp, q.limit)?;
    let course = q
        .course_id
        .ok_or_else(|| LearningError::BadRequest("course_id is required".into()))?;
    let progress = progress::course_progress(
        cp.db(),
        &caller.0.tid,
        &caller.0.sub,
        &course,
        q.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(progress))
}

pub(super) async fn ticket(
    State(cp): State<ControlPlane>,
    caller: Caller,
    body: Result<Json<live::TicketRequest>, JsonRejection>,
) -> Result<Json<Ticket>, ApiError> {
    let Json(request) = body?;
    Ok(Json(
        live::issue_ticket(&cp, &caller.0, &request.class_id).await?,
    ))
}

pub(super) async fn report_attendance(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Result<Json<AttendanceReport>, JsonRejection>,
) -> Result<(StatusCode, Json<AttendanceRecorded>), ApiError> {
    super::extract::check_service_key(&cp, &headers).map_err(|_| {
        ControlPlaneError::BadToken(
            "attendance is reported by edge nodes with the service key \
             (control_plane.edge_service_key)"
                .into(),
        )
    })?;
    let Json(report) = body?;
    match live::record_attendance(cp.db(), &report, cp.clock().now_ms()).await? {
        live::Recorded::Created(answer) => Ok((StatusCode::CREATED, Json(answer))),
        live::Recorded::Existing(answer) => Ok((StatusCode::OK, Json(answer))),
    }
}

pub(super) async fn class_attendance(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(class): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ClassAttendance>, ApiError> {
    caller.require_any(&AUTHORS)?;
    let q = query(q)?;
    let limit = limit(&cp, q.limit)?;
    let tenant = tenant_of(&cp, &caller, Owned::Unit, &class).await?;
    Ok(Json(
        live::attendance(cp.db(), &tenant, &class, q.after.as_deref(), limit).await?,
    ))
}
