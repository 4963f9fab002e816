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
//!
//! *Batches.* An edge with a backlog sends up to `submissions_batch_max`
//! reports at once (`POST /api/v1/submissions/batch`). They are recorded in
//! order in one transaction, each exactly as the single route records it
//! (the same checks, events and progress, the same answer: created,
//! existing, or refused with the same code), because a refusal is decided
//! before its report writes anything, so the transaction goes on for the
//! others. A failure of the store rolls the whole batch back; the edge's
//! retry then records each report once, and answers `existing` for what an
//! earlier try committed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow as _, Row as _};

use crate::config::SUBMISSIONS_BATCH_MAX_LIMIT;
use crate::content::UnitKind;
use crate::db::{now_ms, Db};
use crate::error::{ControlPlaneError, ErrorCode};
use crate::events::{self, EventKind, NewEvent};
use crate::learning::progress;

/// Longest text field of a report (ids, language, status, region, time).
pub const FIELD_BYTES_MAX: usize = 128;

/// Most tests one report may count (far above any assignment's).
pub const TESTS_TOTAL_MAX: u32 = 10_000;

/// Longest JSON text of one valid report, in bytes, as a batch carries it:
/// every text field at [`FIELD_BYTES_MAX`] with each byte escaped
/// (`\u0001`, 6 bytes), the numbers at their longest, the keys and
/// punctuation, and room for some whitespace. It sizes the batch route's
/// body limit ([`batch_body_bytes_max`]).
pub const REPORT_JSON_BYTES_MAX: usize = 8 * 1024;

/// Text fields of a report bounded by [`FIELD_BYTES_MAX`] (the seven
/// required ones, `unit_id` and `question_id`).
const TEXT_FIELDS: usize = 9;

/// Everything of a report but its text fields' contents: 13 quoted keys
/// with colons and commas, `"submission"`, three numbers of at most 20
/// characters, the braces (about 230 bytes), rounded up.
const REPORT_FRAME_BYTES_MAX: usize = 512;

const _: () = assert!(
    TEXT_FIELDS * (FIELD_BYTES_MAX * 6 + 2) + REPORT_FRAME_BYTES_MAX <= REPORT_JSON_BYTES_MAX
);

/// The `{"submissions": [` and `]}` around a batch's reports.
const BATCH_FRAME_BYTES: usize = 64;

// The largest batch's body limit stays a size a server may buffer.
const _: () = assert!(
    SUBMISSIONS_BATCH_MAX_LIMIT as usize * (REPORT_JSON_BYTES_MAX + 1) + BATCH_FRAME_BYTES
        <= 16 * 1024 * 1024
);

/// The body limit of `POST /api/v1/submissions/batch` for batches of at
/// most `batch_max` reports: room for that many of the largest valid
/// reports ([`REPORT_JSON_BYTES_MAX`], and a comma each). It replaces
/// `http.request_body_bytes_max` (1 MiB by default, which 500 such reports
/// would pass) for this route only.
pub fn batch_body_bytes_max(batch_max: u32) -> usize {
    usize::try_from(batch_max)
        .unwrap_or(usize::MAX)
        .saturating_mul(REPORT_JSON_BYTES_MAX + 1)
        .saturating_add(BATCH_FRAME_BYTES)
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
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

const COLUMNS: &str = "id, tenant_id, user_id, language, status, region, finished_at, \
     recorded_at, body, unit_id, unit_version, question_id, tests_passed, tests_total";

/// A unit a report names, as recording needs it: its course, its kind and
/// its latest published version.
type UnitFacts = (String, UnitKind, i64);

/// Facts one transaction looks up once for all the reports of a batch:
/// no report writes tenants, memberships or units, and a backlog names few
/// of each (each map holds at most one entry per report of the batch).
#[derive(Debug, Default)]
struct Lookups {
    tenants: HashMap<String, bool>,
    members: HashMap<(String, String), bool>,
    units: HashMap<(String, String), Option<UnitFacts>>,
}

impl Lookups {
    async fn tenant_known(
        &mut self,
        conn: &mut AnyConnection,
        tenant: &str,
    ) -> Result<bool, ControlPlaneError> {
        if let Some(known) = self.tenants.get(tenant) {
            return Ok(*known);
        }
        let known = sqlx::query("SELECT 1 AS one FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        self.tenants.insert(tenant.to_owned(), known);
        Ok(known)
    }

    async fn is_member(
        &mut self,
        conn: &mut AnyConnection,
        tenant: &str,
        user: &str,
    ) -> Result<bool, ControlPlaneError> {
        let key = (tenant.to_owned(), user.to_owned());
        if let Some(member) = self.members.get(&key) {
            return Ok(*member);
        }
        let member = crate::learning::is_member(&mut *conn, tenant, user).await?;
        self.members.insert(key, member);
        Ok(member)
    }

    async fn unit(
        &mut self,
        conn: &mut AnyConnection,
        tenant: &str,
        unit: &str,
    ) -> Result<Option<UnitFacts>, ControlPlaneError> {
        let key = (tenant.to_owned(), unit.to_owned());
        if let Some(facts) = self.units.get(&key) {
            return Ok(facts.clone());
        }
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT course_id, kind, published_version FROM units \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(unit)
        .fetch_optional(&mut *conn)
        .await?;
        let facts = match row {
            Some((course, kind, latest)) => Some((course, UnitKind::parse(&kind)?, latest)),
            None => None,
        };
        self.units.insert(key, facts.clone());
        Ok(facts)
    }
}

/// `submission_recorded` events not yet appended: a batch appends those
/// of consecutive reports with one statement, flushed before anything else
/// appends events (a unit's progress does) and before commit, so the
/// outbox holds every event in the order the single route would write
/// them.
#[derive(Debug, Default)]
struct PendingEvents(Vec<NewEvent>);

impl PendingEvents {
    async fn flush(&mut self, conn: &mut AnyConnection, now: i64) -> Result<(), sqlx::Error> {
        if !self.0.is_empty() {
            events::append(conn, &self.0, now).await?;
            self.0.clear();
        }
        Ok(())
    }
}

/// Records one report inside the caller's write transaction; its
/// `submission_recorded` event goes to `pending` (the caller flushes it
/// before commit). The outer error is a failure of the store (the
/// transaction must roll back); the inner one a refusal of this report,
/// decided before it wrote anything, so the transaction goes on for the
/// others.
async fn record_in(
    db: &Db,
    conn: &mut AnyConnection,
    lookups: &mut Lookups,
    pending: &mut PendingEvents,
    report: &SubmissionReport,
    now: i64,
) -> Result<Result<Recorded, ControlPlaneError>, ControlPlaneError> {
    if let Err(refused) = report.validate() {
        return Ok(Err(refused));
    }
    if !lookups.tenant_known(conn, &report.tenant_id).await? {
        return Ok(Err(ControlPlaneError::BadRequest(format!(
            "unknown tenant {}",
            report.tenant_id
        ))));
    }
    let unit = match &report.unit_id {
        Some(unit_id) => {
            let Some((course, kind, latest)) =
                lookups.unit(conn, &report.tenant_id, unit_id).await?
            else {
                return Ok(Err(ControlPlaneError::BadRequest(format!(
                    "the tenant has no unit {unit_id}"
                ))));
            };
            if let Some(version) = report.unit_version.filter(|v| *v > latest) {
                return Ok(Err(ControlPlaneError::BadRequest(format!(
                    "unit {unit_id} has no published version {version}"
                ))));
            }
            if report.question_id.is_some() && kind != UnitKind::Quiz {
                return Ok(Err(ControlPlaneError::BadRequest(format!(
                    "question_id is only for quiz units; unit {unit_id} is a {}",
                    kind.as_str()
                ))));
            }
            Some((unit_id.as_str(), course, kind))
        }
        None => None,
    };
    let body = report.canonical();
    if !lookups
        .is_member(conn, &report.tenant_id, &report.user_id)
        .await?
    {
        // A report recorded before its user left the tenant is still the
        // same report: a retry of it answers what it answered then.
        return Ok(match stored(conn, report, &body).await? {
            Some(answer) => answer,
            None => Err(ControlPlaneError::UnknownMember(format!(
                "user {} is not a member of tenant {}",
                report.user_id, report.tenant_id
            ))),
        });
    }
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
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        // The id is taken: by this report (a retry) or another one.
        // The conflicting row is committed (or ours), so it is there.
        return stored(conn, report, &body)
            .await?
            .ok_or(ControlPlaneError::Database(sqlx::Error::RowNotFound));
    }
    let course = unit.as_ref().map(|(_, course, _)| course.as_str());
    pending.0.push(NewEvent {
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
    });
    if let Some((unit_id, course, kind)) = &unit {
        // Progress may append events of its own, after this one.
        pending.flush(conn, now).await?;
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
        progress::record_submission(db, conn, &facts, now).await?;
    }
    // The row as inserted, without reading it back.
    Ok(Ok(Recorded::Created(Submission {
        id: report.submission_id.clone(),
        tenant_id: report.tenant_id.clone(),
        user_id: report.user_id.clone(),
        language: report.language.clone(),
        status: report.status.clone(),
        region: report.region.clone(),
        finished_at: report.finished_at.clone(),
        recorded_at: now,
        unit_id: report.unit_id.clone(),
        unit_version: report.unit_version,
        question_id: report.question_id.clone(),
        tests_passed: report.tests_passed.map(i64::from),
        tests_total: report.tests_total.map(i64::from),
    })))
}

/// What the row stored under the report's id says about it: `None` when
/// there is none, `Existing` when it holds this report, a refusal
/// (`idempotency_conflict`) when it holds another.
async fn stored(
    conn: &mut AnyConnection,
    report: &SubmissionReport,
    body: &str,
) -> Result<Option<Result<Recorded, ControlPlaneError>>, ControlPlaneError> {
    let Some(row) = sqlx::query(&format!("SELECT {COLUMNS} FROM submissions WHERE id = $1"))
        .bind(&report.submission_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let stored_body: String = row.try_get("body")?;
    if stored_body != body {
        return Ok(Some(Err(ControlPlaneError::IdempotencyConflict(format!(
            "submission {} was recorded with other contents",
            report.submission_id
        )))));
    }
    Ok(Some(Ok(Recorded::Existing(Submission::from_row(&row)?))))
}

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
    // Refused before the transaction when the shape alone is wrong.
    report.validate()?;
    let mut tx = db.begin_write().await?;
    let (mut lookups, mut pending, now) = (Lookups::default(), PendingEvents::default(), now_ms());
    let recorded = record_in(db, &mut tx, &mut lookups, &mut pending, report, now).await??;
    pending.flush(&mut tx, now).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Records the reports of a batch in one transaction, in order, each as
/// [`record`] would: one answer per item, `Err` for a report refused
/// (with the error [`record`] gives it), which does not stop the others;
/// an item that is already a refusal (it did not parse as a report) is
/// answered with it. A report repeated within the batch is `Existing` (or
/// refused as a conflict) the second time, as if it were sent twice.
///
/// # Errors
/// A failure of the store: the transaction rolls back and nothing of the
/// batch is recorded, so a retry of it records each report once.
/// Cancel safety: one transaction; dropped before commit, nothing changes.
pub async fn record_batch(
    db: &Db,
    items: Vec<Result<SubmissionReport, ControlPlaneError>>,
) -> Result<Vec<Result<Recorded, ControlPlaneError>>, ControlPlaneError> {
    let mut tx = db.begin_write().await?;
    let (mut lookups, mut pending, now) = (Lookups::default(), PendingEvents::default(), now_ms());
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        answers.push(match item {
            Ok(report) => record_in(db, &mut tx, &mut lookups, &mut pending, &report, now).await?,
            Err(refused) => Err(refused),
        });
    }
    pending.flush(&mut tx, now).await?;
    tx.commit().await?;
    Ok(answers)
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
    Ok(rows
        .iter()
        .map(Submission::from_row)
        .collect::<Result<_, _>>()?)
}

/// Body of `POST /api/v1/submissions/batch`: 1 to
/// `control_plane.submissions_batch_max` reports, each the body the single
/// route takes. Edges build it with this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBatch {
    /// The reports, oldest first; answered in this order. 1 to
    /// `control_plane.submissions_batch_max` (500 by default).
    #[schema(min_items = 1)]
    pub submissions: Vec<SubmissionReport>,
}

/// What became of one report of a batch: what the single route's status
/// says for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchOutcome {
    /// Recorded now (the single route's 201).
    Created,
    /// Recorded before, by an earlier report with this id and these
    /// contents (the single route's 200).
    Existing,
    /// Refused for good, as the single route refuses it (its 400 or 409),
    /// with the same code in `error`.
    Refused,
}

/// Why a report of a batch was refused: the `error` of the single route's
/// answer for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchError {
    /// The stable code (`bad_request`, `unknown_member`,
    /// `idempotency_conflict`, ...).
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
}

/// One report's result in a batch answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// The report's `submission_id`; empty when the item was not an
    /// object with a text `submission_id`.
    pub submission_id: String,
    /// What became of it.
    pub outcome: BatchOutcome,
    /// Why it was refused; only with `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchError>,
}

/// Answer of `POST /api/v1/submissions/batch` (200): one result per
/// report, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResults {
    /// The results, in request order.
    pub results: Vec<BatchResult>,
}

/// The reports of a batch as received: each item kept as JSON, so one that
/// does not parse as a report is refused alone; at most
/// [`SUBMISSIONS_BATCH_MAX_LIMIT`] are kept, and the rest only counted
/// (skipped without being built), so an oversized batch costs no memory
/// before it is refused whole.
#[derive(Debug, Default)]
pub(crate) struct ReceivedItems {
    /// The first `submissions_batch_max` items, as JSON.
    pub(crate) kept: Vec<serde_json::Value>,
    /// How many items the batch held in all.
    pub(crate) total: u64,
}

impl<'de> Deserialize<'de> for ReceivedItems {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = ReceivedItems;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of submission reports")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ReceivedItems, A::Error> {
                let keep = usize::try_from(SUBMISSIONS_BATCH_MAX_LIMIT).unwrap_or(usize::MAX);
                let mut items = ReceivedItems::default();
                loop {
                    if items.kept.len() < keep {
                        match seq.next_element::<serde_json::Value>()? {
                            Some(item) => items.kept.push(item),
                            None => break,
                        }
                    } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                        break;
                    }
                    items.total = items.total.saturating_add(1);
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(Items)
    }
}

/// [`SubmissionBatch`] as the route reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceivedBatch {
    /// The reports, kept as JSON values so that each is refused alone.
    pub(crate) submissions: ReceivedItems,
}
