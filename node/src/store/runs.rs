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
use std::sync::Arc;

use control_plane::submissions::SubmissionReport;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional as _};

use crate::outbox::queue::{transaction_error, Queue, QueueLimits, Queued};
use crate::store::StoreError;

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
    /// The submission outbox's bounds (`edge.outbox_events_max`,
    /// `edge.outbox_dead_letters_max`).
    pub outbox: QueueLimits,
}

/// The trees, with their bounds.
#[derive(Debug)]
pub struct RunStore {
    db: sled::Db,
    runs: sled::Tree,
    /// Submission reports waiting for the control plane, and those it
    /// refused for good.
    outbox: Arc<Queue<SubmissionReport>>,
    abuse: sled::Tree,
    runs_max: usize,
    /// Entries in `runs` and `abuse` (sled's `len` walks the tree, so they
    /// are counted).
    runs_len: AtomicUsize,
    abuse_len: AtomicUsize,
}

impl RunStore {
    /// Opens the trees in `db` with their bounds.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when a tree cannot be opened.
    pub fn open(db: &sled::Db, limits: StoreLimits) -> Result<Self, StoreError> {
        assert!(limits.runs_max > 0, "validated: edge.run_results_max >= 1");
        let runs = db.open_tree("runs")?;
        let abuse = db.open_tree("abuse")?;
        let outbox = Arc::new(Queue::open(
            db,
            "submissions",
            ("outbox", "outbox_dead_letters"),
            limits.outbox,
        )?);
        Ok(Self {
            runs_len: AtomicUsize::new(runs.len()),
            abuse_len: AtomicUsize::new(abuse.len()),
            db: db.clone(),
            runs,
            outbox,
            abuse,
            runs_max: limits.runs_max,
        })
    }

    /// The submission outbox.
    pub fn outbox(&self) -> &Arc<Queue<SubmissionReport>> {
        &self.outbox
    }

    /// Whether no new run may start: the outbox is full, so its report
    /// could not be queued. Checked before a run (never after, so a
    /// finished run is always recorded); runs already under way may take
    /// the outbox past its bound by as many as `http.requests_in_flight_max`
    /// allows.
    pub fn outbox_full(&self) -> bool {
        self.outbox.full()
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
        let (run_existed, queued_existed) = (&self.runs, self.outbox.tree())
            .transaction(|(runs, outbox)| {
                let run_existed = runs.insert(key, value.as_slice())?.is_some();
                let queued_existed = outbox.insert(key, payload.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((run_existed, queued_existed))
            })
            .map_err(|err| transaction_error("runs", err))?;
        if !run_existed {
            self.runs_len.fetch_add(1, Ordering::Relaxed);
        }
        self.db.flush_async().await?;
        self.outbox.pushed(!queued_existed);
        self.trim(&self.runs, &self.runs_len)?;
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

    /// When the oldest waiting report's run finished, if any waits.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn oldest_finished_at(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .outbox
            .oldest(1)?
            .into_iter()
            .find_map(|queued| match queued {
                Queued::Item(_, report) => Some(report.finished_at),
                Queued::Corrupt(..) => None,
            }))
    }

    fn trim(&self, tree: &sled::Tree, len: &AtomicUsize) -> Result<(), StoreError> {
        while len.load(Ordering::Relaxed) > self.runs_max {
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
        outbox: QueueLimits {
            items_max: 4,
            dead_letters_max: 1,
        },
    };

    /// sled releases its file lock from a background thread after the last
    /// handle drops; a reopen right away may have to wait a moment.
    fn reopen(path: &std::path::Path) -> sled::Db {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match sled::open(path) {
                Ok(db) => return db,
                Err(err) if tokio::time::Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => panic!("reopen {}: {err}", path.display()),
            }
        }
    }

    fn queued_ids(store: &RunStore) -> Vec<String> {
        store
            .outbox()
            .oldest(100)
            .expect("oldest")
            .into_iter()
            .map(|queued| match queued {
                Queued::Item(_, report) => report.submission_id,
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
            assert_eq!(store.outbox().len(), 5, "every report is still queued");
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
            store.outbox().remove(key.as_bytes()).expect("remove");
        }
        assert!(!store.outbox_full(), "room again once reports leave");
    }
}
