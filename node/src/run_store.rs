//! The edge's record of code runs, in its `sled` store: every result is
//! written (and flushed) before the learner gets an answer, together with a
//! submission event in an outbox, in one transaction, so an answered run is
//! never lost and never recorded without its event. Abuse events go to a
//! tree of their own for operators.
//!
//! Keys are UUIDv7 ids, which sort by time, so "oldest first" is key order
//! and retention drops from the front. Each tree is bounded
//! (`edge.run_results_max`); past it the oldest entries go.

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The event the control plane gets for every run (the outbox's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionEvent {
    /// Always `submission`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The run's id: the submission's stable id, so a retried report is
    /// recognised.
    pub submission_id: String,
    /// Who.
    pub user_id: String,
    /// Their tenant.
    pub tenant_id: String,
    /// Language id.
    pub language: String,
    /// Verdict.
    pub status: String,
    /// Region of the edge that ran it.
    pub region: String,
    /// When.
    pub finished_at: String,
    /// The unit it was made against: a live submission names its class's
    /// unit, so the control plane counts it for that unit's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<String>,
    /// The unit's published version it was graded against (a graded
    /// submission; a live class's unit has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_version: Option<i64>,
    /// The quiz code question a graded quiz submission answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    /// Tests passed, when the run had tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_passed: Option<u32>,
    /// Tests run, when the run had tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_total: Option<u32>,
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

/// The trees, with their bound.
#[derive(Debug)]
pub struct RunStore {
    db: sled::Db,
    runs: sled::Tree,
    outbox: sled::Tree,
    /// Reports the control plane refused for good (409, 400): kept for an
    /// operator, never retried, never silently dropped.
    dead_letters: sled::Tree,
    abuse: sled::Tree,
    entries_max: usize,
    /// Wakes the publisher when an event is added.
    added: tokio::sync::Notify,
    /// Wakes everyone waiting in [`RunStore::published`] when an event
    /// leaves the outbox.
    removed: tokio::sync::Notify,
    /// Entries in `runs` (sled's `len` walks the tree, so it is counted).
    runs_len: AtomicUsize,
    outbox_len: AtomicUsize,
    abuse_len: AtomicUsize,
}

impl RunStore {
    /// Opens the trees in `db`, keeping at most `entries_max` runs (and as
    /// many outbox and abuse entries).
    ///
    /// # Errors
    /// [`StoreError::Sled`] when a tree cannot be opened.
    pub fn open(db: &sled::Db, entries_max: usize) -> Result<Self, StoreError> {
        assert!(entries_max > 0, "validated: edge.run_results_max >= 1");
        let runs = db.open_tree("runs")?;
        let outbox = db.open_tree("outbox")?;
        let abuse = db.open_tree("abuse")?;
        let dead_letters = db.open_tree("outbox_dead_letters")?;
        Ok(Self {
            runs_len: AtomicUsize::new(runs.len()),
            outbox_len: AtomicUsize::new(outbox.len()),
            abuse_len: AtomicUsize::new(abuse.len()),
            db: db.clone(),
            runs,
            outbox,
            dead_letters,
            abuse,
            entries_max,
            added: tokio::sync::Notify::new(),
            removed: tokio::sync::Notify::new(),
        })
    }

    /// Records a run and its submission event atomically, and flushes them
    /// to disk before returning.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails; the caller must not answer success.
    pub async fn record(
        &self,
        record: &RunRecord,
        event: &SubmissionEvent,
    ) -> Result<(), StoreError> {
        let key = record.id.as_bytes();
        let value = serde_json::to_vec(record).map_err(|e| corrupt("runs", &e))?;
        let payload = serde_json::to_vec(event).map_err(|e| corrupt("outbox", &e))?;
        let existed = (&self.runs, &self.outbox)
            .transaction(|(runs, outbox)| {
                let existed = runs.insert(key, value.as_slice())?.is_some();
                outbox.insert(key, payload.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(existed)
            })
            .map_err(|err| match err {
                TransactionError::Storage(err) => StoreError::Sled(err),
                TransactionError::Abort(()) => StoreError::Corrupt {
                    key: "runs",
                    reason: "transaction aborted".into(),
                },
            })?;
        if !existed {
            self.runs_len.fetch_add(1, Ordering::Relaxed);
            self.outbox_len.fetch_add(1, Ordering::Relaxed);
        }
        self.db.flush_async().await?;
        self.trim(&self.runs, &self.runs_len)?;
        // Bounded like the runs, should the control plane stay away.
        self.trim(&self.outbox, &self.outbox_len)?;
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

    /// Submission events waiting for the control plane.
    pub fn outbox_len(&self) -> usize {
        self.outbox_len.load(Ordering::Relaxed)
    }

    /// The oldest event waiting, with its key.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or the value is corrupt.
    pub fn oldest_event(&self) -> Result<Option<(sled::IVec, SubmissionEvent)>, StoreError> {
        self.outbox
            .first()?
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes)
                    .map(|event| (key, event))
                    .map_err(|e| corrupt("outbox", &e))
            })
            .transpose()
    }

    /// Removes a published event.
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

    /// Waits up to `wait` for the event of run `id` to leave the outbox
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

    /// Moves an event the control plane refused for good to the dead
    /// letters, with the reason.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn dead_letter(&self, key: &[u8], reason: &str) -> Result<(), StoreError> {
        if let Some(bytes) = self.outbox.get(key)? {
            let entry = serde_json::json!({
                "event": serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
                "reason": reason,
            });
            let value = serde_json::to_vec(&entry).map_err(|e| corrupt("outbox", &e))?;
            self.dead_letters.insert(key, value)?;
            self.remove_event(key)?;
        }
        Ok(())
    }

    /// Events refused for good.
    pub fn dead_letters_len(&self) -> usize {
        self.dead_letters.len()
    }

    /// Waits until an event is added (or returns at once if one was added
    /// since the last wait).
    pub async fn event_added(&self) {
        self.added.notified().await;
    }

    fn trim(&self, tree: &sled::Tree, len: &AtomicUsize) -> Result<(), StoreError> {
        while len.load(Ordering::Relaxed) > self.entries_max {
            if tree.pop_min()?.is_none() {
                len.store(0, Ordering::Relaxed);
                break;
            }
            len.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
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

    fn record(id: &str) -> (RunRecord, SubmissionEvent) {
        let record = RunRecord {
            id: id.to_owned(),
            user_id: "u".into(),
            tenant_id: "t".into(),
            language: "python".into(),
            finished_at: "2026-11-23T00:00:00Z".into(),
            result: serde_json::json!({"status": "accepted"}),
        };
        let event = SubmissionEvent {
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
        (record, event)
    }

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

    #[tokio::test]
    async fn records_survive_reopen_and_the_oldest_go_past_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path()).expect("open");
            let store = RunStore::open(&db, 3).expect("store");
            for i in 0..5 {
                let (r, e) = record(&format!("run-{i}"));
                store.record(&r, &e).await.expect("record");
            }
            assert!(store.get("run-0").expect("get").is_none(), "trimmed");
            assert!(store.get("run-1").expect("get").is_none(), "trimmed");
            assert_eq!(store.outbox_len(), 3);
        }
        let db = reopen(dir.path());
        let store = RunStore::open(&db, 3).expect("store");
        let got = store.get("run-4").expect("get").expect("kept");
        assert_eq!(got, record("run-4").0);
        assert_eq!(store.runs.len(), 3);
    }
}
