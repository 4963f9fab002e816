//! The outbox of domain events: what happened (a learner enrolled, a unit
//! was completed, an invoice was paid, money moved), written in the *same*
//! transaction as the change itself, so there is never a change without
//! its event nor an event without its change. Consumers read them in order
//! with a cursor (`GET /api/v1/events?after=`), and the in-process
//! analytics projection (the `analytics` module) is one of them.
//!
//! *Why ids are safe to page by.* A writer does not pick the id readers
//! page by: it appends its event with `seq` (a sequence, or SQLite's
//! rowid) and `id` NULL, one insert and no shared row, so writers never
//! wait on each other here (the ledger's hot path pays one insert). Ids
//! are given later by [`publish`], which holds the single row of
//! `domain_event_sequencer` (PostgreSQL: `FOR UPDATE`; SQLite: the write
//! lock) and numbers the committed, unpublished events it can see from
//! `last_id + 1` up, in `seq` order, in one transaction. Publishes run one
//! at a time, each commits its ids all at once, and each starts above the
//! last, so a reader that sees id n has already been able to see every id
//! below n: no id is ever committed after a larger one, and a cursor
//! never skips one. A `seq` drawn early whose writer commits late (the
//! gap a plain sequence would leave on PostgreSQL) is simply published in
//! a later round, with a larger id. Rolled-back writers leave no row, and
//! ids have no holes.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row as _};

use crate::db::Db;

/// Events per multi-row insert: 4 parameters each (and one shared), below
/// SQLite's 32,766, so even the largest ledger batch
/// (`LEDGER_BATCH_TRANSFERS_MAX_LIMIT`) appends with one statement.
const EVENTS_PER_STATEMENT: usize = 8_000;

const _: () = assert!(EVENTS_PER_STATEMENT * 4 + 1 < 32_766);
const _: () =
    assert!(EVENTS_PER_STATEMENT >= crate::config::LEDGER_BATCH_TRANSFERS_MAX_LIMIT as usize);

/// What happened; the stored and wire form is [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A learner was enrolled in a course for the first time.
    Enrolled,
    /// An enrollment was dropped.
    EnrollmentDropped,
    /// Every published unit of a course was completed: the enrollment is
    /// completed.
    EnrollmentCompleted,
    /// An edge reported a new submission.
    SubmissionRecorded,
    /// A learner completed a unit for the first time.
    UnitCompleted,
    /// An edge reported a live class's attendance.
    AttendanceRecorded,
    /// An invoice was paid (its ledger transfer exists).
    InvoicePaid,
    /// A ledger transfer was posted (directly, or a pending one posted).
    TransferPosted,
    /// A timetable was imported (created or re-imported).
    TimetableImported,
    /// A timetable was deleted with its events and occurrences.
    TimetableDeleted,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 10] = [
        Self::Enrolled,
        Self::EnrollmentDropped,
        Self::EnrollmentCompleted,
        Self::SubmissionRecorded,
        Self::UnitCompleted,
        Self::AttendanceRecorded,
        Self::InvoicePaid,
        Self::TransferPosted,
        Self::TimetableImported,
        Self::TimetableDeleted,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrolled => "enrolled",
            Self::EnrollmentDropped => "enrollment_dropped",
            Self::EnrollmentCompleted => "enrollment_completed",
            Self::SubmissionRecorded => "submission_recorded",
            Self::UnitCompleted => "unit_completed",
            Self::AttendanceRecorded => "attendance_recorded",
            Self::InvoicePaid => "invoice_paid",
            Self::TransferPosted => "transfer_posted",
            Self::TimetableImported => "timetable_imported",
            Self::TimetableDeleted => "timetable_deleted",
        }
    }

    /// Parses the stored form; `None` for a kind this build does not know
    /// (written by a newer one), which consumers skip.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// An event to append, in the transaction of its change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The tenant it happened in.
    pub tenant_id: String,
    /// The id of the thing it happened to (course, unit, invoice,
    /// transfer, class, submission).
    pub aggregate_id: String,
    /// The facts consumers need, so they do not read the tables back.
    pub payload: serde_json::Value,
}

/// A published event as consumers read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the stream: dense, increasing, never reused.
    pub id: i64,
    /// What happened (`enrolled`, `unit_completed`, ...).
    pub kind: String,
    /// The tenant it happened in.
    pub tenant_id: String,
    /// The id of the thing it happened to.
    pub aggregate_id: String,
    /// Kind-specific facts.
    pub payload: serde_json::Value,
    /// When the change was made, unix ms.
    pub created_at: i64,
}

/// Appends `events` inside the caller's transaction (`conn` is the
/// transaction's connection): one multi-row insert per
/// [`EVENTS_PER_STATEMENT`] events, nothing to lock. If the transaction
/// rolls back, so do they.
///
/// # Errors
/// Database failures; the caller's transaction must then roll back.
pub async fn append(
    conn: &mut AnyConnection,
    events: &[NewEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        // `id` stays NULL (unpublished); `$1`, the time, is shared.
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 2 + i * 4;
                format!("(${n}, ${}, ${}, ${}, $1)", n + 1, n + 2, n + 3)
            })
            .collect();
        let sql = format!(
            "INSERT INTO domain_events (kind, tenant_id, aggregate_id, payload, created_at) \
             VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        for event in chunk {
            query = query
                .bind(event.kind.as_str())
                .bind(event.tenant_id.as_str())
                .bind(event.aggregate_id.as_str())
                .bind(event.payload.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Gives ids to at most `max` committed, unpublished events, oldest `seq`
/// first, and answers how many; see the module docs for why readers can
/// never skip one. Run by readers before they read, so there is no
/// separate relay to keep alive.
///
/// # Errors
/// Database failures (nothing is published then).
/// Cancel safety: one transaction; dropped before commit, nothing changes.
pub async fn publish(db: &Db, max: u32) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let last: i64 = sqlx::query_scalar(&format!(
        "SELECT last_id FROM domain_event_sequencer WHERE singleton = 1{}",
        db.lock_clause()
    ))
    .fetch_one(&mut *tx)
    .await?;
    // A new statement, so (at READ COMMITTED) a new snapshot taken after
    // the lock: it sees every publish before ours and every event
    // committed by now.
    let published = sqlx::query(
        "UPDATE domain_events SET id = $1 + s.n \
         FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM domain_events \
               WHERE id IS NULL ORDER BY seq LIMIT $2) AS s \
         WHERE domain_events.seq = s.seq",
    )
    .bind(last)
    .bind(i64::from(max))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if published == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    let count = i64::try_from(published).unwrap_or(i64::MAX);
    sqlx::query("UPDATE domain_event_sequencer SET last_id = $1 WHERE singleton = 1")
        .bind(last.saturating_add(count))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(published)
}

fn event(row: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        tenant_id: row.try_get("tenant_id")?,
        aggregate_id: row.try_get("aggregate_id")?,
        // Written by `append` from a `serde_json::Value`, so it parses.
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        created_at: row.try_get("created_at")?,
    })
}

/// Published events with ids above `after`, at most `limit`, in id order.
///
/// # Errors
/// Database failures.
pub async fn read<'e, E>(executor: E, after: i64, limit: u32) -> Result<Vec<Event>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT id, kind, tenant_id, aggregate_id, payload, created_at FROM domain_events \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(executor)
    .await?;
    rows.iter().map(event).collect()
}
