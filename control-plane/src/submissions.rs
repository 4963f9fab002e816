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

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::db::{now_ms, Db};
use crate::error::ControlPlaneError;

/// Longest text field of a report (ids, language, status, region, time).
pub const FIELD_BYTES_MAX: usize = 128;

/// A report from an edge, as its outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        Ok(())
    }

    fn canonical(&self) -> String {
        // Field order is the struct's, so equal reports give equal text.
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
    })
}

const COLUMNS: &str =
    "id, tenant_id, user_id, language, status, region, finished_at, recorded_at, body";

/// Records a report once. Concurrent retries of the same report race on
/// the primary key: exactly one inserts, the others read its row back.
///
/// # Errors
/// `BadRequest` for a malformed report or an unknown tenant,
/// `IdempotencyConflict` when the id was recorded with other contents.
pub async fn record(db: &Db, report: &SubmissionReport) -> Result<Recorded, ControlPlaneError> {
    report.validate()?;
    let body = report.canonical();
    let tenant_known = sqlx::query("SELECT 1 AS one FROM tenants WHERE id = $1")
        .bind(&report.tenant_id)
        .fetch_optional(db.pool())
        .await?
        .is_some();
    if !tenant_known {
        return Err(ControlPlaneError::BadRequest(format!(
            "unknown tenant {}",
            report.tenant_id
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO submissions (id, tenant_id, user_id, language, status, region, \
         finished_at, recorded_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&report.submission_id)
    .bind(&report.tenant_id)
    .bind(&report.user_id)
    .bind(&report.language)
    .bind(&report.status)
    .bind(&report.region)
    .bind(&report.finished_at)
    .bind(now_ms())
    .bind(&body)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM submissions WHERE id = $1"))
        .bind(&report.submission_id)
        .fetch_one(db.pool())
        .await?;
    let stored_body: String = row.try_get("body")?;
    if stored_body != body {
        return Err(ControlPlaneError::IdempotencyConflict(format!(
            "submission {} was recorded with other contents",
            report.submission_id
        )));
    }
    let stored = submission(&row)?;
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
    use crate::tokens::{self, Role};
    use crate::ControlPlane;

    /// Answers 201 for a new record and 200 for a repeat, with the record.
    pub(super) async fn report(
        State(cp): State<ControlPlane>,
        headers: HeaderMap,
        body: Result<Json<SubmissionReport>, JsonRejection>,
    ) -> Result<(StatusCode, Json<Submission>), ApiError> {
        let key = &cp.config().edge_service_key;
        let presented = tokens::bearer(
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )?;
        // Comparing digests, not the secrets, keeps the comparison's
        // timing from telling anything about the key.
        let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let matches = !key.is_empty() && digest(presented).as_ref() == digest(key).as_ref();
        if !matches {
            return Err(ControlPlaneError::BadToken(
                "submissions are reported by edge nodes with the service key \
                 (control_plane.edge_service_key)"
                    .into(),
            )
            .into());
        }
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
