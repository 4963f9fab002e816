//! The edge's record of code runs, in its `sled` store: every result is
//! written (and flushed) before the learner gets an answer, together with a
//! submission report in an outbox, in one transaction, so an answered run is
//! never lost and never recorded without its report. Abuse events go to a
//! tree of their own for operators.
//!
//! Keys are UUIDv7 ids, which sort by time, so "oldest first" is key order.
//! The run results (kept for read-back) and abuse events are retention:
//! past `edge.run_results_max` the oldest go. The outbox is a promise, not
//! retention: nothing leaves it until the control plane has recorded the
//! report or refused it for good (then it becomes a dead letter). When it
//! holds `edge.outbox_events_max` reports, new runs are refused (503
//! `outbox_full`) instead of old reports being dropped; dead letters are
//! bounded by `edge.outbox_dead_letters_max`, and when that is full the
//! publisher stops at the refused report until an operator clears some
//! (`/api/v1/operator/outbox`).

use std::sync::atomic::{AtomicUsize, Ordering};

use control_plane::submissions::SubmissionReport;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional as _};

use crate::edge::StoreError;

/// A run as the edge keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (also the key).
    pub id: String,
    /// Who ran it.
    pub user_id: String,
    /// Their tenant.
    pub tenant_id: String,
    /// Language id.
    pub language: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// The result exactly as answered.
    pub result: serde_json::Value,
}

/// An abuse event, for operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbuseEvent {
    /// Event id (time-ordered).
    pub id: String,
    /// The run it ended.
    pub run_id: String,
    /// Who ran it.
    pub user_id: String,
    /// Their tenant.
    pub tenant_id: String,
    /// Language id.
    pub language: String,
    /// Which profile it matched (`cpu_saturation`, `fork_bomb`).
    pub kind: String,
    /// When.
    pub at: String,
}

/// How much each tree may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Run results (and abuse events) kept for read-back; past it the
    /// oldest go (`edge.run_results_max`).
    pub runs_max: usize,
    /// Reports waiting for the control plane; at it, new runs are refused
    /// (`edge.outbox_events_max`).
    pub outbox_max: usize,
    /// Reports the control plane refused for good, kept for an operator
    /// (`edge.outbox_dead_letters_max`).
    pub dead_letters_max: usize,
}

/// A report the control plane refused for good, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The run's id (the outbox key it had).
    pub id: String,
    /// The report as it was queued; `None` when it could not be decoded.
    pub report: Option<SubmissionReport>,
    /// Why it was refused (the control plane's code and message).
    pub reason: String,
    /// When it became a dead letter (RFC 3339, UTC).
    pub at: String,
}

/// What the publisher found at the front of the outbox.
#[derive(Debug)]
pub enum Queued {
    /// A report to send.
    Report(sled::IVec, Box<SubmissionReport>),
    /// A value that does not decode: it can never be sent, so the
    /// publisher makes it a dead letter with this reason.
    Corrupt(sled::IVec, String),
}

/// Why the outbox could not take or give up a report.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The dead letters hold `edge.outbox_dead_letters_max` entries: the
    /// refused report stays in the outbox until an operator clears some.
    #[error(
        "{0} dead letters are kept, the most edge.outbox_dead_letters_max allows; \
         an operator must clear some (/api/v1/operator/outbox/dead-letters)"
    )]
    DeadLettersFull(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for OutboxError {
    fn from(err: sled::Error) -> Self {
        Self::Store(StoreError::Sled(err))
    }
}

/// The trees, with their bounds.
#[derive(Debug)]
pub struct RunStore {
    db: sled::Db,
    runs: sled::Tree,
    outbox: sled::Tree,
    /// Reports the control plane refused for good (409, 400): kept for an
    /// operator, never retried by themselves, never silently dropped.
    dead_letters: sled::Tree,
    abuse: sled::Tree,
    limits: StoreLimits,
    /// Wakes the publisher when a report is added.
    added: tokio::sync::Notify,
    /// Wakes everyone waiting in [`RunStore::published`] when a report
    /// leaves the outbox.
    removed: tokio::sync::Notify,
    /// Entries in each tree (sled's `len` walks the tree, so they are
    /// counted).
    runs_len: AtomicUsize,
    outbox_len: AtomicUsize,
    dead_letters_len: AtomicUsize,
    abuse_len: AtomicUsize,
}

impl RunStore {
    /// Opens the trees in `db` with their bounds.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when a tree cannot be opened.
    pub fn open(db: &sled::Db, limits: StoreLimits) -> Result<Self, StoreError> {
        assert!(limits.runs_max > 0, "validated: edge.run_results_max >= 1");
        assert!(
            limits.outbox_max > 0,
            "validated: edge.outbox_events_max >= 1"
        );
        assert!(
            limits.dead_letters_max > 0,
            "validated: edge.outbox_dead_letters_max >= 1"
        );
        let runs = db.open_tree("runs")?;
        let outbox = db.open_tree("outbox")?;
        let abuse = db.open_tree("abuse")?;
        let dead_letters = db.open_tree("outbox_dead_letters")?;
        Ok(Self {
            runs_len: AtomicUsize::new(runs.len()),
            outbox_len: AtomicUsize::new(outbox.len()),
            dead_letters_len: AtomicUsize::new(dead_letters.len()),
            abuse_len: AtomicUsize::new(abuse.len()),
            db: db.clone(),
            runs,
            outbox,
            dead_letters,
            abuse,
            limits,
            added: tokio::sync::Notify::new(),
            removed: tokio::sync::Notify::new(),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Whether the outbox is full, so no new run may start: checked before
    /// a run (never after, so a finished run is always recorded). Runs
    /// already under way may take it past the bound by as many as
    /// `http.requests_in_flight_max` allows.
    pub fn outbox_full(&self) -> bool {
        self.outbox_len() >= self.limits.outbox_max
    }

    /// Records a run and its submission report atomically, and flushes them
    /// to disk before returning.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails; the caller must not answer success.
    pub async fn record(
        &self,
        record: &RunRecord,
        report: &SubmissionReport,
    ) -> Result<(), StoreError> {
        let key = record.id.as_bytes();
        let value = serde_json::to_vec(record).map_err(|e| corrupt("runs", &e))?;
        let payload = serde_json::to_vec(report).map_err(|e| corrupt("outbox", &e))?;
        let (run_existed, queued_existed) = (&self.runs, &self.outbox)
            .transaction(|(runs, outbox)| {
                let run_existed = runs.insert(key, value.as_slice())?.is_some();
                let queued_existed = outbox.insert(key, payload.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((run_existed, queued_existed))
            })
            .map_err(transaction_error)?;
        if !run_existed {
            self.runs_len.fetch_add(1, Ordering::Relaxed);
        }
        if !queued_existed {
            self.outbox_len.fetch_add(1, Ordering::Relaxed);
        }
        self.db.flush_async().await?;
        self.trim(&self.runs, &self.runs_len)?;
        self.added.notify_one();
        Ok(())
    }

    /// Records an abuse event.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn record_abuse(&self, event: &AbuseEvent) -> Result<(), StoreError> {
        let value = serde_json::to_vec(event).map_err(|e| corrupt("abuse", &e))?;
        if self.abuse.insert(event.id.as_bytes(), value)?.is_none() {
            self.abuse_len.fetch_add(1, Ordering::Relaxed);
        }
        self.trim(&self.abuse, &self.abuse_len)?;
        Ok(())
    }

    /// A run by id.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or the value is corrupt.
    pub fn get(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.runs
            .get(id.as_bytes())?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| corrupt("runs", &e)))
            .transpose()
    }

    /// The newest abuse events, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or a value is corrupt.
    pub fn recent_abuse(&self, limit: usize) -> Result<Vec<AbuseEvent>, StoreError> {
        self.abuse
            .iter()
            .rev()
            .take(limit)
            .map(|entry| {
                let (_, bytes) = entry?;
                serde_json::from_slice(&bytes).map_err(|e| corrupt("abuse", &e))
            })
            .collect()
    }

    /// Reports waiting for the control plane.
    pub fn outbox_len(&self) -> usize {
        self.outbox_len.load(Ordering::Relaxed)
    }

    /// The oldest reports waiting, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        self.outbox
            .iter()
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry?;
                Ok(match serde_json::from_slice(&bytes) {
                    Ok(report) => Queued::Report(key, Box::new(report)),
                    Err(err) => Queued::Corrupt(key, format!("undecodable outbox entry: {err}")),
                })
            })
            .collect()
    }

    /// The time the oldest waiting report's run finished, if any waits.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn oldest_finished_at(&self) -> Result<Option<String>, StoreError> {
        Ok(self.oldest(1)?.into_iter().find_map(|queued| match queued {
            Queued::Report(_, report) => Some(report.finished_at),
            Queued::Corrupt(..) => None,
        }))
    }

    /// Removes a published report.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn remove_event(&self, key: &[u8]) -> Result<(), StoreError> {
        if self.outbox.remove(key)?.is_some() {
            self.outbox_len.fetch_sub(1, Ordering::Relaxed);
        }
        self.removed.notify_waiters();
        Ok(())
    }

    /// Waits up to `wait` for the report of run `id` to leave the outbox
    /// (published, or refused into the dead letters); whether it left.
    /// This lets a graded submission answer once the control plane has
    /// counted it, so the learner's next read of their progress sees it.
    pub async fn published(&self, id: &str, wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let removed = self.removed.notified();
            tokio::pin!(removed);
            // Registered before the check, so a removal in between wakes it.
            removed.as_mut().enable();
            match self.outbox.contains_key(id.as_bytes()) {
                Ok(false) => return true,
                Ok(true) => {}
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the outbox");
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, removed).await.is_err() {
                return false;
            }
        }
    }

    /// Moves a report the control plane refused for good to the dead
    /// letters, with the reason, in one transaction.
    ///
    /// # Errors
    /// [`OutboxError::DeadLettersFull`] when `edge.outbox_dead_letters_max`
    /// are kept already (the report stays queued), or a store failure.
    pub fn dead_letter(&self, key: &[u8], reason: &str, at: &str) -> Result<(), OutboxError> {
        let Some(bytes) = self.outbox.get(key)? else {
            return Ok(());
        };
        let kept = self.dead_letters_len();
        if kept >= self.limits.dead_letters_max {
            return Err(OutboxError::DeadLettersFull(kept));
        }
        let letter = DeadLetter {
            id: String::from_utf8_lossy(key).into_owned(),
            report: serde_json::from_slice(&bytes).ok(),
            reason: reason.to_owned(),
            at: at.to_owned(),
        };
        let value = serde_json::to_vec(&letter).map_err(|e| corrupt("outbox_dead_letters", &e))?;
        let (was_queued, was_dead) = (&self.outbox, &self.dead_letters)
            .transaction(|(outbox, dead)| {
                let was_queued = outbox.remove(key)?.is_some();
                let was_dead = dead.insert(key, value.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((was_queued, was_dead))
            })
            .map_err(transaction_error)?;
        if was_queued {
            self.outbox_len.fetch_sub(1, Ordering::Relaxed);
        }
        if !was_dead {
            self.dead_letters_len.fetch_add(1, Ordering::Relaxed);
        }
        self.removed.notify_waiters();
        Ok(())
    }

    /// Reports refused for good and kept.
    pub fn dead_letters_len(&self) -> usize {
        self.dead_letters_len.load(Ordering::Relaxed)
    }

    /// Dead letters in key (time) order after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or a value is corrupt.
    pub fn dead_letters(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let range = match after {
            Some(after) => self.dead_letters.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.dead_letters.iter(),
        };
        range
            .take(limit)
            .map(|entry| {
                let (_, bytes) = entry?;
                serde_json::from_slice(&bytes).map_err(|e| corrupt("outbox_dead_letters", &e))
            })
            .collect()
    }

    /// Forgets a dead letter an operator has dealt with; whether it was
    /// there.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn discard_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let gone = self.dead_letters.remove(id.as_bytes())?.is_some();
        if gone {
            self.dead_letters_len.fetch_sub(1, Ordering::Relaxed);
            self.db.flush()?;
        }
        Ok(gone)
    }

    /// Puts a dead letter back in the outbox (after an operator fixed what
    /// the control plane refused); whether it was there. One that no
    /// longer decodes cannot be sent and stays.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or the letter is corrupt.
    pub fn requeue_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let key = id.as_bytes();
        let Some(bytes) = self.dead_letters.get(key)? else {
            return Ok(false);
        };
        let letter: DeadLetter =
            serde_json::from_slice(&bytes).map_err(|e| corrupt("outbox_dead_letters", &e))?;
        let Some(report) = letter.report else {
            return Err(StoreError::Corrupt {
                key: "outbox_dead_letters",
                reason: format!("dead letter {id} holds no decodable report to send again"),
            });
        };
        let payload = serde_json::to_vec(&report).map_err(|e| corrupt("outbox", &e))?;
        let (was_dead, was_queued) = (&self.dead_letters, &self.outbox)
            .transaction(|(dead, outbox)| {
                let was_dead = dead.remove(key)?.is_some();
                let was_queued = outbox.insert(key, payload.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((was_dead, was_queued))
            })
            .map_err(transaction_error)?;
        if was_dead {
            self.dead_letters_len.fetch_sub(1, Ordering::Relaxed);
        }
        if !was_queued {
            self.outbox_len.fetch_add(1, Ordering::Relaxed);
        }
        self.db.flush()?;
        self.added.notify_one();
        Ok(was_dead)
    }

    /// Waits until a report is added (or returns at once if one was added
    /// since the last wait).
    pub async fn event_added(&self) {
        self.added.notified().await;
    }

    fn trim(&self, tree: &sled::Tree, len: &AtomicUsize) -> Result<(), StoreError> {
        while len.load(Ordering::Relaxed) > self.limits.runs_max {
            if tree.pop_min()?.is_none() {
                len.store(0, Ordering::Relaxed);
                break;
            }
            len.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn transaction_error(err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(err) => StoreError::Sled(err),
        TransactionError::Abort(()) => StoreError::Corrupt {
            key: "outbox",
            reason: "transaction aborted".into(),
        },
    }
}

fn corrupt(key: &'static str, err: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key,
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> (RunRecord, SubmissionReport) {
        let record = RunRecord {
            id: id.to_owned(),
            user_id: "u".into(),
            tenant_id: "t".into(),
            language: "python".into(),
            finished_at: "2026-11-23T00:00:00Z".into(),
            result: serde_json::json!({"status": "accepted"}),
        };
        let report = SubmissionReport {
            kind: "submission".into(),
            submission_id: id.to_owned(),
            user_id: "u".into(),
            tenant_id: "t".into(),
            language: "python".into(),
            status: "accepted".into(),
            region: "eu-west".into(),
            unit_id: None,
            unit_version: None,
            question_id: None,
            tests_passed: None,
            tests_total: None,
            finished_at: record.finished_at.clone(),
        };
        (record, report)
    }

    const LIMITS: StoreLimits = StoreLimits {
        runs_max: 3,
        outbox_max: 4,
        dead_letters_max: 1,
    };

    /// sled releases its file lock from a background thread after the last
    /// handle drops; a reopen right away may have to wait a moment.
    fn reopen(path: &std::path::Path) -> sled::Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match sled::open(path) {
                Ok(db) => return db,
                Err(err) if std::time::Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => panic!("reopen {}: {err}", path.display()),
            }
        }
    }

    fn queued_ids(store: &RunStore) -> Vec<String> {
        store
            .oldest(100)
            .expect("oldest")
            .into_iter()
            .map(|queued| match queued {
                Queued::Report(_, report) => report.submission_id,
                Queued::Corrupt(_, why) => panic!("corrupt: {why}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn old_results_go_past_the_bound_but_no_queued_report_is_ever_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path()).expect("open");
            let store = RunStore::open(&db, LIMITS).expect("store");
            for i in 0..5 {
                let (r, e) = record(&format!("run-{i}"));
                assert!(!store.outbox_full() || i >= 4, "full only at 4");
                store.record(&r, &e).await.expect("record");
            }
            assert!(store.get("run-0").expect("get").is_none(), "trimmed");
            assert!(store.get("run-1").expect("get").is_none(), "trimmed");
            assert_eq!(store.outbox_len(), 5, "every report is still queued");
            assert!(store.outbox_full());
        }
        let db = reopen(dir.path());
        let store = RunStore::open(&db, LIMITS).expect("store");
        let got = store.get("run-4").expect("get").expect("kept");
        assert_eq!(got, record("run-4").0);
        assert_eq!(store.runs.len(), 3);
        assert_eq!(
            queued_ids(&store),
            ["run-0", "run-1", "run-2", "run-3", "run-4"],
            "the queue survives a restart whole, oldest first"
        );
        assert!(store.outbox_full(), "the count is rebuilt on open");
        for key in ["run-0", "run-1"] {
            store.remove_event(key.as_bytes()).expect("remove");
        }
        assert!(!store.outbox_full(), "room again once reports leave");
    }

    #[tokio::test]
    async fn dead_letters_are_bounded_without_dropping_and_can_be_cleared_or_sent_again() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let store = RunStore::open(&db, LIMITS).expect("store");
        for id in ["a", "b"] {
            let (r, e) = record(id);
            store.record(&r, &e).await.expect("record");
        }
        store
            .dead_letter(b"a", "HTTP 400: unknown unit", "2026-12-07T00:00:00Z")
            .expect("first dead letter");
        let full = store.dead_letter(b"b", "HTTP 409", "2026-12-07T00:00:01Z");
        assert!(
            matches!(full, Err(OutboxError::DeadLettersFull(1))),
            "{full:?}"
        );
        assert_eq!(queued_ids(&store), ["b"], "b stays queued, not dropped");
        let letters = store.dead_letters(None, 10).expect("list");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].id, "a");
        assert_eq!(letters[0].reason, "HTTP 400: unknown unit");
        assert_eq!(
            letters[0].report.as_ref().map(|r| r.submission_id.as_str()),
            Some("a")
        );
        assert!(store.dead_letters(Some("a"), 10).expect("page").is_empty());

        assert!(store.requeue_dead_letter("a").expect("requeue"));
        assert_eq!(queued_ids(&store), ["a", "b"]);
        assert_eq!(store.dead_letters_len(), 0);
        store
            .dead_letter(b"b", "HTTP 409", "2026-12-07T00:00:02Z")
            .expect("room again");
        assert!(store.discard_dead_letter("b").expect("discard"));
        assert!(!store.discard_dead_letter("b").expect("gone already"));
        assert_eq!(store.dead_letters_len(), 0);
        assert!(!store.requeue_dead_letter("nope").expect("unknown id"));
    }

    #[tokio::test]
    async fn an_undecodable_queued_value_is_reported_not_skipped() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let store = RunStore::open(&db, LIMITS).expect("store");
        store
            .outbox
            .insert(b"x", b"not json".as_slice())
            .expect("insert");
        let front = store.oldest(1).expect("oldest");
        assert!(matches!(&front[..], [Queued::Corrupt(key, _)] if key.as_ref() == b"x"));
    }
}
