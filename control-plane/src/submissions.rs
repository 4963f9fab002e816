//! Submission records: one row for every run that counts, reported by the
//! edge node that ran it (from its outbox, see `node::run_store`). The id is
//! the run's own, chosen by the edge, so a report that is retried after a
//! lost answer lands on the same row: recording is idempotent, a retried
//! report is never counted twice, and one with the same id but different
//! contents is refused (`idempotency_conflict`) rather than silently merged.
//!
//! Edges authenticate with the shared service key
//! (`control_plane.edge_service_key`), not a user's token: the learner's
//! token may have expired by the time a queued report goes out.
//!
//! A report may name the unit (and its published version) the run was made
//! against, and how many of its tests passed; reports without them stay
//! valid. Its user must be a member of its tenant (400 `unknown_member`
//! otherwise): a stranger's run would show in the tenant's lists. A new
//! record writes its `submission_recorded` event and, for a unit, the
//! learner's progress ([`crate::learning::progress`]: an accepted
//! assignment is complete) in the same transaction.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::content::UnitKind;
use crate::db::{now_ms, Db};
use crate::error::ControlPlaneError;
use crate::events::{self, EventKind, NewEvent};
use crate::learning::progress;

/// Longest text field of a report (ids, language, status, region, time).
pub const FIELD_BYTES_MAX: usize = 128;

/// Most tests one report may count (far above any assignment's).
pub const TESTS_TOTAL_MAX: u32 = 10_000;

/// The verdict of a run that passed every test.
pub const ACCEPTED: &str = "accepted";

/// A report from an edge, as its outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionReport {
    /// Always `submission`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The run's id, the submission's stable id.
    pub submission_id: String,
    /// Who ran it.
    pub user_id: String,
    /// Their tenant.
    pub tenant_id: String,
    /// Language id.
    pub language: String,
    /// Verdict.
    pub status: String,
    /// Region of the edge that ran it.
    pub region: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// The unit the run was made against, if any (a unit of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<String>,
    /// The unit's published version the learner saw (1 up to the latest);
    /// only with `unit_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_version: Option<i64>,
    /// The code question of a quiz unit the run was graded against; only
    /// with `unit_id`, and that unit must be a quiz. A quiz attempt may cite
    /// the submission for this question only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    /// Tests passed, when the run had tests; with `tests_total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_passed: Option<u32>,
    /// Tests run, at most [`TESTS_TOTAL_MAX`]; with `tests_passed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_total: Option<u32>,
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submission {
    /// Stable id (the run's).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Who ran it.
    pub user_id: String,
    /// Language id.
    pub language: String,
    /// Verdict.
    pub status: String,
    /// Region that ran it.
    pub region: String,
    /// When it finished on the edge.
    pub finished_at: String,
    /// When the control plane first recorded it (unix ms).
    pub recorded_at: i64,
    /// The unit it was made against, if the edge said.
    pub unit_id: Option<String>,
    /// That unit's version, if the edge said.
    pub unit_version: Option<i64>,
    /// The quiz code question it answers, if it was graded for one.
    pub question_id: Option<String>,
    /// Tests passed, if the edge said.
    pub tests_passed: Option<i64>,
    /// Tests run, if the edge said.
    pub tests_total: Option<i64>,
}

/// What recording did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new row.
    Created(Submission),
    /// The same report was recorded before; nothing changed.
    Existing(Submission),
}

impl SubmissionReport {
    /// Checks the shape; the tenant must exist (checked on insert).
    ///
    /// # Errors
    /// [`ControlPlaneError::BadRequest`] naming the field.
    pub fn validate(&self) -> Result<(), ControlPlaneError> {
        if self.kind != "submission" {
            return Err(ControlPlaneError::BadRequest(
                "type must be \"submission\"".into(),
            ));
        }
        for (name, value) in [
            ("submission_id", &self.submission_id),
            ("user_id", &self.user_id),
            ("tenant_id", &self.tenant_id),
            ("language", &self.language),
            ("status", &self.status),
            ("region", &self.region),
            ("finished_at", &self.finished_at),
        ] {
            if value.is_empty() || value.len() > FIELD_BYTES_MAX {
                return Err(ControlPlaneError::BadRequest(format!(
                    "{name} must be 1 to {FIELD_BYTES_MAX} bytes"
                )));
            }
        }
        if let Some(unit) = &self.unit_id {
            if unit.is_empty() || unit.len() > FIELD_BYTES_MAX {
                return Err(ControlPlaneError::BadRequest(format!(
                    "unit_id must be 1 to {FIELD_BYTES_MAX} bytes"
                )));
            }
        }
        if let Some(question) = &self.question_id {
            if self.unit_id.is_none() {
                return Err(ControlPlaneError::BadRequest(
                    "question_id needs unit_id".into(),
                ));
            }
            if question.is_empty() || question.len() > FIELD_BYTES_MAX {
                return Err(ControlPlaneError::BadRequest(format!(
                    "question_id must be 1 to {FIELD_BYTES_MAX} bytes"
                )));
            }
        }
        match (&self.unit_id, self.unit_version) {
            (None, Some(_)) => {
                return Err(ControlPlaneError::BadRequest(
                    "unit_version needs unit_id".into(),
                ))
            }
            (_, Some(v)) if v < 1 => {
                return Err(ControlPlaneError::BadRequest(
                    "unit_version must be at least 1".into(),
                ))
            }
            _ => {}
        }
        match (self.tests_passed, self.tests_total) {
            (None, None) => {}
            (Some(passed), Some(total)) if passed <= total && total <= TESTS_TOTAL_MAX => {}
            _ => {
                return Err(ControlPlaneError::BadRequest(format!(
                    "tests_passed and tests_total go together, passed at most total, \
                     total at most {TESTS_TOTAL_MAX}"
                )))
            }
        }
        Ok(())
    }

    fn canonical(&self) -> String {
        // Field order is the struct's, so equal reports give equal text;
        // absent optional fields are left out, so a report from before
        // they existed keeps the canonical form it was stored with.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn submission(row: &sqlx::any::AnyRow) -> Result<Submission, ControlPlaneError> {
    Ok(Submission {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        language: row.try_get("language")?,
        status: row.try_get("status")?,
        region: row.try_get("region")?,
        finished_at: row.try_get("finished_at")?,
        recorded_at: row.try_get("recorded_at")?,
        unit_id: row.try_get("unit_id")?,
        unit_version: row.try_get("unit_version")?,
        question_id: row.try_get("question_id")?,
        tests_passed: row.try_get("tests_passed")?,
        tests_total: row.try_get("tests_total")?,
    })
}

const COLUMNS: &str = "id, tenant_id, user_id, language, status, region, finished_at, \
     recorded_at, body, unit_id, unit_version, question_id, tests_passed, tests_total";

/// Records a report once. Concurrent retries of the same report race on
/// the primary key: exactly one inserts (and writes the event and the
/// progress), the others read its row back.
///
/// # Errors
/// `BadRequest` for a malformed report, an unknown tenant or a unit (or
/// version) the tenant does not have, `UnknownMember` for a user who is
/// not a member of the tenant (or does not exist), `IdempotencyConflict`
/// when the id was recorded with other contents. Cancel safety: one
/// transaction.
pub async fn record(db: &Db, report: &SubmissionReport) -> Result<Recorded, ControlPlaneError> {
    report.validate()?;
    let body = report.canonical();
    let mut tx = db.begin_write().await?;
    let tenant_known = sqlx::query("SELECT 1 AS one FROM tenants WHERE id = $1")
        .bind(&report.tenant_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !tenant_known {
        return Err(ControlPlaneError::BadRequest(format!(
            "unknown tenant {}",
            report.tenant_id
        )));
    }
    let unit = match &report.unit_id {
        Some(unit_id) => {
            let row: Option<(String, String, i64)> = sqlx::query_as(
                "SELECT course_id, kind, published_version FROM units \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(&report.tenant_id)
            .bind(unit_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (course, kind, latest) = row.ok_or_else(|| {
                ControlPlaneError::BadRequest(format!("the tenant has no unit {unit_id}"))
            })?;
            if report.unit_version.is_some_and(|v| v > latest) {
                return Err(ControlPlaneError::BadRequest(format!(
                    "unit {unit_id} has no published version {}",
                    report.unit_version.unwrap_or_default()
                )));
            }
            let kind = UnitKind::parse(&kind)?;
            if report.question_id.is_some() && kind != UnitKind::Quiz {
                return Err(ControlPlaneError::BadRequest(format!(
                    "question_id is only for quiz units; unit {unit_id} is a {}",
                    kind.as_str()
                )));
            }
            Some((unit_id.as_str(), course, kind))
        }
        None => None,
    };
    if !crate::learning::is_member(&mut *tx, &report.tenant_id, &report.user_id).await? {
        // A report recorded before its user left the tenant is still the
        // same report: a retry of it answers what it answered then.
        let stored: Option<String> =
            sqlx::query_scalar("SELECT body FROM submissions WHERE id = $1")
                .bind(&report.submission_id)
                .fetch_optional(&mut *tx)
                .await?;
        if stored.is_none() {
            return Err(ControlPlaneError::UnknownMember(format!(
                "user {} is not a member of tenant {}",
                report.user_id, report.tenant_id
            )));
        }
    }
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO submissions (id, tenant_id, user_id, language, status, region, \
         finished_at, recorded_at, body, unit_id, unit_version, question_id, tests_passed, \
         tests_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&report.submission_id)
    .bind(&report.tenant_id)
    .bind(&report.user_id)
    .bind(&report.language)
    .bind(&report.status)
    .bind(&report.region)
    .bind(&report.finished_at)
    .bind(now)
    .bind(&body)
    .bind(report.unit_id.as_deref())
    .bind(report.unit_version)
    .bind(report.question_id.as_deref())
    .bind(report.tests_passed.map(i64::from))
    .bind(report.tests_total.map(i64::from))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let course = unit.as_ref().map(|(_, course, _)| course.as_str());
        events::append(
            &mut tx,
            &[NewEvent {
                kind: EventKind::SubmissionRecorded,
                tenant_id: report.tenant_id.clone(),
                aggregate_id: report.submission_id.clone(),
                payload: serde_json::json!({
                    "submission_id": report.submission_id,
                    "user_id": report.user_id,
                    "status": report.status,
                    "language": report.language,
                    "unit_id": report.unit_id,
                    "unit_version": report.unit_version,
                    "question_id": report.question_id,
                    "course_id": course,
                }),
            }],
            now,
        )
        .await?;
        if let Some((unit_id, course, kind)) = &unit {
            let facts = progress::SubmissionFacts {
                tenant: &report.tenant_id,
                user: &report.user_id,
                unit: unit_id,
                course,
                kind: *kind,
                accepted: report.status == ACCEPTED,
                tests: report
                    .tests_passed
                    .zip(report.tests_total)
                    .map(|(p, t)| (i64::from(p), i64::from(t))),
            };
            progress::record_submission(db, &mut tx, &facts, now).await?;
        }
    }
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM submissions WHERE id = $1"))
        .bind(&report.submission_id)
        .fetch_one(&mut *tx)
        .await?;
    let stored_body: String = row.try_get("body")?;
    if stored_body != body {
        return Err(ControlPlaneError::IdempotencyConflict(format!(
            "submission {} was recorded with other contents",
            report.submission_id
        )));
    }
    let stored = submission(&row)?;
    tx.commit().await?;
    Ok(if inserted {
        Recorded::Created(stored)
    } else {
        Recorded::Existing(stored)
    })
}

/// A tenant's submissions in id order (ids are time-ordered UUIDv7s),
/// optionally one user's, at most `limit` after `after`.
///
/// # Errors
/// Database failures.
pub async fn list(
    db: &Db,
    tenant_id: &str,
    user_id: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Submission>, ControlPlaneError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM submissions WHERE tenant_id = $1 \
         AND ($2 = '' OR user_id = $2) AND id > $3 ORDER BY id LIMIT $4"
    ))
    .bind(tenant_id)
    .bind(user_id.unwrap_or(""))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(submission).collect()
}

/// The routes, merged into [`crate::http::router`]:
/// `POST /api/v1/submissions` (edges, with the service key) and
/// `GET /api/v1/submissions` (learners their own; instructors and
/// operators their tenant's, optionally `?user_id=`).
pub(crate) fn routes() -> axum::Router<crate::ControlPlane> {
    axum::Router::new().route(
        "/api/v1/submissions",
        axum::routing::post(http::report).get(http::list),
    )
}

mod http {
    use axum::extract::rejection::{JsonRejection, QueryRejection};
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::Json;
    use serde::{Deserialize, Serialize};

    use super::{Recorded, Submission, SubmissionReport};
    use crate::error::ControlPlaneError;
    use crate::http::{ApiError, Caller};
    use crate::tokens::Role;
    use crate::ControlPlane;

    /// Answers 201 for a new record and 200 for a repeat, with the record.
    pub(super) async fn report(
        State(cp): State<ControlPlane>,
        headers: HeaderMap,
        body: Result<Json<SubmissionReport>, JsonRejection>,
    ) -> Result<(StatusCode, Json<Submission>), ApiError> {
        crate::http::check_service_key(&cp, &headers).map_err(|_| {
            ControlPlaneError::BadToken(
                "submissions are reported by edge nodes with the service key \
                 (control_plane.edge_service_key)"
                    .into(),
            )
        })?;
        let Json(report) = body?;
        match super::record(cp.db(), &report).await? {
            Recorded::Created(stored) => Ok((StatusCode::CREATED, Json(stored))),
            Recorded::Existing(stored) => Ok((StatusCode::OK, Json(stored))),
        }
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
        let items = super::list(cp.db(), &claims.tid, user, query.after.as_deref(), limit).await?;
        let next_after = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
            .then(|| items.last().map(|s| s.id.clone()))
            .flatten();
        Ok(Json(Page { items, next_after }))
    }
}
