//! Learning paths: prerequisite edges between units of one tenant (across
//! its courses), the learner's unit results, and the frontier.
//!
//! An edge says "`unit_id` requires `prerequisite_id`", optionally "with a
//! score of at least `min_score`". Edges are written one transaction at a
//! time per tenant (PostgreSQL: the tenant row is locked; SQLite: the
//! database write lock), and each new edge is checked against the edges
//! already there with one recursive query over the prerequisite's
//! ancestors: if the unit is among them, the edge would close a cycle and is
//! refused, naming the cycle. So the graph is always a DAG, even under
//! concurrent writers.
//!
//! The frontier of a learner is every published unit they have not done
//! whose prerequisites are all satisfied, transitively: a unit is *locked*
//! when one of its prerequisites is not done, is done below the edge's
//! `min_score`, or is itself locked. Locked units are found by one `WITH
//! RECURSIVE` query (seeded by the unsatisfied edges, then following edges
//! forward), and the frontier is what is neither locked nor done, in the
//! same statement. Results are written by progress tracking
//! ([`crate::learning::progress`]) when a unit's completion rule is met,
//! and by instructors through the API.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::body::UnitKind;
use super::error::ContentError;
use super::model::Limits;
pub use super::model::UnitResult;
use crate::db::{Db, DbKind};

/// A performance condition on a prerequisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The prerequisite's score must be at least this, 0 to 100.
    pub min_score: Option<i64>,
}

/// Body of `POST /api/v1/units/{id}/prerequisites`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrerequisite {
    /// The unit that must be done first (same tenant, any course).
    pub prerequisite_id: String,
    /// Optional condition; completion alone when absent.
    #[serde(default)]
    pub condition: Option<Condition>,
}

/// One prerequisite edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Prerequisite {
    /// The unit that requires.
    pub unit_id: String,
    /// The unit required.
    pub prerequisite_id: String,
    /// Score needed on the prerequisite, if any.
    pub min_score: Option<i64>,
}

/// Body of `PUT /api/v1/units/{id}/results/{user_id}`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResult {
    /// 0 to 100; absent for a unit that is not scored.
    #[serde(default)]
    pub score: Option<i64>,
}

/// A unit on a learner's frontier: unlocked, published, not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrontierUnit {
    /// Unit id.
    pub unit_id: String,
    /// Its course.
    pub course_id: String,
    /// Its module.
    pub module_id: String,
    /// Its kind.
    pub kind: UnitKind,
    /// Its published title.
    pub title: String,
    /// Its latest published version.
    pub version: i64,
}

fn check_score(field: &str, score: Option<i64>) -> Result<(), ContentError> {
    match score {
        Some(s) if !(0..=100).contains(&s) => Err(ContentError::Invalid(format!(
            "{field} must be 0 to 100, not {s}"
        ))),
        _ => Ok(()),
    }
}

async fn begin(db: &Db) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match db.kind() {
        DbKind::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await,
        DbKind::Postgres => db.pool().begin().await,
    }
}

async fn unit_exists(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
    what: &'static str,
) -> Result<(), ContentError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM units WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ContentError::not_found(what, id))
}

/// Adds the edge "`unit_id` requires `request.prerequisite_id`".
///
/// # Errors
/// [`ContentError::NotFound`] when either unit is not the tenant's,
/// [`ContentError::Cycle`] when the edge would close a cycle (its message
/// names it), [`ContentError::Conflict`] for an existing edge or a unit at
/// `path_edges_per_unit_max`, [`ContentError::Invalid`] for a bad score.
/// Cancel safety: one transaction.
pub async fn add_prerequisite(
    db: &Db,
    tenant: &str,
    unit_id: &str,
    request: &NewPrerequisite,
    limits: &Limits,
    now_ms: i64,
) -> Result<Prerequisite, ContentError> {
    let min_score = request.condition.and_then(|c| c.min_score);
    check_score("condition.min_score", min_score)?;
    let prerequisite_id = request.prerequisite_id.as_str();
    let mut tx = begin(db).await?;
    if db.kind() == DbKind::Postgres {
        // One path writer per tenant at a time: two edges that close a cycle
        // together cannot both pass the check.
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
    }
    unit_exists(&mut tx, tenant, unit_id, "unit").await?;
    unit_exists(&mut tx, tenant, prerequisite_id, "prerequisite").await?;
    if unit_id == prerequisite_id {
        return Err(ContentError::Cycle(format!(
            "a unit cannot require itself: cycle {unit_id} -> {unit_id}"
        )));
    }
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT unit_id FROM unit_prerequisites \
         WHERE tenant_id = $1 AND unit_id = $2 AND prerequisite_id = $3",
    )
    .bind(tenant)
    .bind(unit_id)
    .bind(prerequisite_id)
    .fetch_optional(&mut *tx)
    .await?;
    if existing.is_some() {
        return Err(ContentError::Conflict(format!(
            "unit {unit_id} already requires {prerequisite_id}"
        )));
    }
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM unit_prerequisites WHERE tenant_id = $1 AND unit_id = $2",
    )
    .bind(tenant)
    .bind(unit_id)
    .fetch_one(&mut *tx)
    .await?;
    if count >= i64::from(limits.path_edges_per_unit_max) {
        return Err(ContentError::Conflict(format!(
            "unit {unit_id} has {count} prerequisites, the most allowed (control_plane.path_edges_per_unit_max)"
        )));
    }
    if let Some(cycle) = find_cycle(&mut tx, tenant, unit_id, prerequisite_id).await? {
        return Err(ContentError::Cycle(format!(
            "adding {prerequisite_id} as a prerequisite of {unit_id} would close the cycle {} \
             (each unit requires the next)",
            cycle.join(" -> ")
        )));
    }
    sqlx::query(
        "INSERT INTO unit_prerequisites (tenant_id, unit_id, prerequisite_id, min_score, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(unit_id)
    .bind(prerequisite_id)
    .bind(min_score)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Prerequisite {
        unit_id: unit_id.to_owned(),
        prerequisite_id: prerequisite_id.to_owned(),
        min_score,
    })
}

/// The cycle the edge `unit -> prerequisite` would close, as the list of
/// units from `unit` back to `unit`, or `None`. One recursive query finds
/// whether `unit` is among the prerequisite's ancestors; only then are the
/// ancestors' edges read to name the shortest such cycle.
async fn find_cycle(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    unit: &str,
    prerequisite: &str,
) -> Result<Option<Vec<String>>, ContentError> {
    const ANCESTORS: &str = "WITH RECURSIVE ancestors(id) AS ( \
             SELECT CAST($2 AS TEXT) \
             UNION \
             SELECT e.prerequisite_id FROM unit_prerequisites e \
             JOIN ancestors a ON e.unit_id = a.id WHERE e.tenant_id = $1 \
         ) ";
    let hit: Option<String> = sqlx::query_scalar(&format!(
        "{ANCESTORS} SELECT id FROM ancestors WHERE id = $3"
    ))
    .bind(tenant)
    .bind(prerequisite)
    .bind(unit)
    .fetch_optional(&mut **tx)
    .await?;
    if hit.is_none() {
        return Ok(None);
    }
    let edges: Vec<(String, String)> = sqlx::query_as(&format!(
        "{ANCESTORS} SELECT e.unit_id, e.prerequisite_id FROM unit_prerequisites e \
         WHERE e.tenant_id = $1 AND e.unit_id IN (SELECT id FROM ancestors) \
         ORDER BY e.unit_id, e.prerequisite_id"
    ))
    .bind(tenant)
    .bind(prerequisite)
    .fetch_all(&mut **tx)
    .await?;
    // Breadth-first from the prerequisite along "requires" to the unit.
    let mut requires: HashMap<&str, Vec<&str>> = HashMap::new();
    for (from, to) in &edges {
        requires.entry(from.as_str()).or_default().push(to.as_str());
    }
    let mut came_from: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([prerequisite]);
    while let Some(at) = queue.pop_front() {
        if at == unit {
            let mut back = vec![unit.to_owned()];
            let mut step = unit;
            while step != prerequisite {
                step = came_from.get(step).copied().ok_or_else(|| {
                    ContentError::Corrupt("broken path while naming a cycle".into())
                })?;
                back.push(step.to_owned());
            }
            back.reverse();
            // unit -> prerequisite -> ... -> unit
            let mut cycle = vec![unit.to_owned()];
            cycle.extend(back);
            return Ok(Some(cycle));
        }
        for &next in requires.get(at).map(Vec::as_slice).unwrap_or_default() {
            if next != prerequisite && !came_from.contains_key(next) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    Err(ContentError::Corrupt(format!(
        "{unit} is an ancestor of {prerequisite} but no path was found"
    )))
}

/// Removes the edge "`unit_id` requires `prerequisite_id`".
///
/// # Errors
/// [`ContentError::NotFound`] when there is no such edge in the tenant.
pub async fn remove_prerequisite(
    db: &Db,
    tenant: &str,
    unit_id: &str,
    prerequisite_id: &str,
) -> Result<(), ContentError> {
    let deleted = sqlx::query(
        "DELETE FROM unit_prerequisites \
         WHERE tenant_id = $1 AND unit_id = $2 AND prerequisite_id = $3",
    )
    .bind(tenant)
    .bind(unit_id)
    .bind(prerequisite_id)
    .execute(db.pool())
    .await?;
    if deleted.rows_affected() == 0 {
        return Err(ContentError::not_found("prerequisite", prerequisite_id));
    }
    Ok(())
}

/// The prerequisites of a unit (at most `path_edges_per_unit_max`, so not
/// paged).
///
/// # Errors
/// [`ContentError::NotFound`] for a unit not in the tenant.
pub async fn list_prerequisites(
    db: &Db,
    tenant: &str,
    unit_id: &str,
) -> Result<Vec<Prerequisite>, ContentError> {
    let unit: Option<String> =
        sqlx::query_scalar("SELECT id FROM units WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(unit_id)
            .fetch_optional(db.pool())
            .await?;
    if unit.is_none() {
        return Err(ContentError::not_found("unit", unit_id));
    }
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT unit_id, prerequisite_id, min_score FROM unit_prerequisites \
         WHERE tenant_id = $1 AND unit_id = $2 ORDER BY prerequisite_id",
    )
    .bind(tenant)
    .bind(unit_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(unit_id, prerequisite_id, min_score)| Prerequisite {
            unit_id,
            prerequisite_id,
            min_score,
        })
        .collect())
}

/// Records (or replaces) a learner's result on a unit, as an instructor
/// does: the unit is complete with this score. It goes through
/// [`crate::learning::progress::record_result`], like every completion, so
/// the result, the progress row, the `unit_completed` event and the
/// course's completion stay in step.
///
/// # Errors
/// [`ContentError::NotFound`] for a unit or user not in the tenant,
/// [`ContentError::Invalid`] for a score outside 0 to 100.
pub async fn record_result(
    db: &Db,
    tenant: &str,
    unit_id: &str,
    user_id: &str,
    request: &NewResult,
    now_ms: i64,
) -> Result<UnitResult, ContentError> {
    check_score("score", request.score)?;
    use crate::learning::LearningError as L;
    crate::learning::progress::record_result(db, tenant, unit_id, user_id, request.score, now_ms)
        .await
        .map_err(|err| match err {
            L::NotFound { what, id } => ContentError::NotFound { what, id },
            L::Invalid(message) => ContentError::Invalid(message),
            L::Content(err) => err,
            L::Database(err) => ContentError::Database(err),
            other => ContentError::Corrupt(other.to_string()),
        })
}

/// The frontier query; see the module docs. `$1` tenant, `$2` user, `$3`
/// the id to page after, `$4` the page size.
const FRONTIER: &str = "\
WITH RECURSIVE locked(id) AS ( \
    SELECT e.unit_id FROM unit_prerequisites e \
    LEFT JOIN unit_results r \
        ON r.tenant_id = e.tenant_id AND r.user_id = $2 AND r.unit_id = e.prerequisite_id \
    WHERE e.tenant_id = $1 \
      AND (r.unit_id IS NULL \
           OR (e.min_score IS NOT NULL AND (r.score IS NULL OR r.score < e.min_score))) \
    UNION \
    SELECT e.unit_id FROM unit_prerequisites e \
    JOIN locked l ON e.prerequisite_id = l.id \
    WHERE e.tenant_id = $1 \
) \
SELECT u.id, u.course_id, u.module_id, u.kind, v.title, u.published_version \
FROM units u \
JOIN unit_versions v ON v.unit_id = u.id AND v.version = u.published_version \
WHERE u.tenant_id = $1 AND u.published_version > 0 AND u.id > $3 \
  AND u.id NOT IN (SELECT id FROM locked) \
  AND NOT EXISTS (SELECT 1 FROM unit_results d \
                  WHERE d.tenant_id = $1 AND d.user_id = $2 AND d.unit_id = u.id) \
ORDER BY u.id LIMIT $4";

/// A page of `user`'s frontier in `tenant`, in unit id order.
///
/// # Errors
/// Database errors.
pub async fn frontier(
    db: &Db,
    tenant: &str,
    user: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<FrontierUnit>, ContentError> {
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(FRONTIER)
        .bind(tenant)
        .bind(user)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|(unit_id, course_id, module_id, kind, title, version)| {
            Ok(FrontierUnit {
                unit_id,
                course_id,
                module_id,
                kind: UnitKind::parse(&kind)?,
                title,
                version,
            })
        })
        .collect()
}

/// Checks that `user` is a member of `tenant` (for an instructor asking
/// about a learner).
///
/// # Errors
/// [`ContentError::NotFound`] otherwise.
pub async fn check_member(db: &Db, tenant: &str, user: &str) -> Result<(), ContentError> {
    let member: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_optional(db.pool())
            .await?;
    member
        .map(|_| ())
        .ok_or_else(|| ContentError::not_found("user", user))
}
