//! A node's live store (its votes and the class copies it keeps as
//! replica), worked by one storage thread off the hub's message path: a
//! vote's decision and write, or a batch's apply, waits in a bounded queue,
//! is done in arrival order, and is answered only after the flush that
//! makes it durable; a run of queued jobs shares one flush. The durable
//! steps go through one small seam, [`Disk`], so that tests can make a write
//! or a flush fail, or hold a flush, and watch what the node does then;
//! [`Sled`] is the only implementation outside tests.

use std::sync::{mpsc, Arc, Weak};

use tokio::sync::oneshot;

use super::{
    hub::LiveNode,
    replication::{Claim, ClaimReply, Replicate},
};

/// Jobs (votes, batches) a node's storage worker holds waiting, at most.
/// Past it a vote is refused at once (`unavailable`: the claimant counts
/// it as no answer) and a batch is dropped (unacknowledged, the home sends
/// the class again after `replica_retry`). A run sharing one flush is at
/// most this long too, which bounds how long an answer waits behind others.
pub const STORAGE_QUEUE_MAX: usize = 1024;

/// How a node's live store is worked: its durable steps and its queue.
pub(crate) struct Storage {
    /// The durable steps (sled's, or a test's faults).
    pub(crate) disk: Arc<dyn Disk>,
    /// Jobs queued at most ([`STORAGE_QUEUE_MAX`] outside tests).
    pub(crate) queue_max: usize,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            disk: Arc::new(Sled),
            queue_max: STORAGE_QUEUE_MAX,
        }
    }
}

/// Where a vote's answer goes.
#[derive(Debug)]
pub(crate) enum Answer {
    /// To the claimant's hub (the claim's `home`).
    Hub,
    /// To a caller on this node.
    Local(oneshot::Sender<ClaimReply>),
}

/// Work for the storage worker.
#[derive(Debug)]
pub(crate) enum Job {
    /// Decide a claim against this node's vote and store the new vote.
    Vote {
        /// The claim.
        claim: Claim,
        /// Where the answer goes.
        answer: Answer,
    },
    /// Apply a home's batch to this node's copy and acknowledge it.
    Copy(Box<Replicate>),
}

/// Starts `node`'s storage worker on a thread of its own, taking jobs from
/// `jobs` until the node is gone: each time, every job queued (up to
/// `run_max`) as one run (see [`LiveNode::store_run`]).
///
/// # Errors
/// When the thread cannot be spawned.
pub(crate) fn spawn_worker(
    node: Weak<LiveNode>,
    jobs: mpsc::Receiver<Job>,
    run_max: usize,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("live-storage".into())
        .spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut run = vec![first];
                while run.len() < run_max.max(1) {
                    match jobs.try_recv() {
                        Ok(job) => run.push(job),
                        Err(_) => break,
                    }
                }
                let Some(node) = node.upgrade() else {
                    break;
                };
                node.store_run(run);
            }
        })?;
    Ok(())
}

/// What a job is about to write; lets a test fail one kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// A class's vote.
    Vote,
    /// A home's batch for this node's copy of a class.
    Copy,
    /// A classroom's own events, homed here.
    Events,
}

/// The fallible durable steps of the live store. Writes themselves go to
/// sled; this is where they can fail or be observed.
pub(crate) trait Disk: Send + Sync + 'static {
    /// Called before a job's writes; an error fails them as a sled write
    /// error would.
    fn write(&self, what: Write) -> sled::Result<()>;
    /// Flushes and fsyncs everything written to `db` so far.
    fn flush(&self, db: &sled::Db) -> sled::Result<()>;
}

/// The real disk: sled's own writes and flush.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sled;

impl Disk for Sled {
    fn write(&self, _what: Write) -> sled::Result<()> {
        Ok(())
    }

    fn flush(&self, db: &sled::Db) -> sled::Result<()> {
        db.flush()?;
        Ok(())
    }
}

/// A disk whose writes and flushes a test fails, holds and records.
#[cfg(test)]
pub(crate) mod faults {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Condvar, Mutex, PoisonError,
    };

    use super::{Disk, Write};

    /// One durable step, in the order the store took them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Step {
        /// A job's writes began.
        Write(Write),
        /// A flush completed.
        Flush,
    }

    /// Sled, with faults a test sets.
    #[derive(Debug)]
    pub(crate) struct Faults {
        steps: Mutex<Vec<Step>>,
        failing_writes: AtomicUsize,
        failing_flushes: AtomicUsize,
        held: Mutex<bool>,
        released: Condvar,
        entered: tokio::sync::watch::Sender<u64>,
    }

    impl Default for Faults {
        fn default() -> Self {
            Self {
                steps: Mutex::new(Vec::new()),
                failing_writes: AtomicUsize::new(0),
                failing_flushes: AtomicUsize::new(0),
                held: Mutex::new(false),
                released: Condvar::new(),
                entered: tokio::sync::watch::channel(0).0,
            }
        }
    }

    fn injected() -> sled::Error {
        sled::Error::Io(std::io::Error::other("injected fault"))
    }

    impl Faults {
        /// The steps taken so far.
        pub(crate) fn steps(&self) -> Vec<Step> {
            self.steps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        /// Fails the next `count` writes.
        pub(crate) fn fail_writes(&self, count: usize) {
            self.failing_writes.store(count, Ordering::SeqCst);
        }

        /// Fails the next `count` flushes.
        pub(crate) fn fail_flushes(&self, count: usize) {
            self.failing_flushes.store(count, Ordering::SeqCst);
        }

        /// Holds every flush until the guard is dropped.
        pub(crate) fn hold_flushes(&self) -> Hold<'_> {
            *self.held.lock().unwrap_or_else(PoisonError::into_inner) = true;
            Hold(self)
        }

        /// Waits until `count` flushes have begun (held or not).
        pub(crate) async fn flushes_begun(&self, count: u64) {
            let mut entered = self.entered.subscribe();
            let _seen = entered.wait_for(|n| *n >= count).await;
        }

        fn take(counter: &AtomicUsize) -> bool {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }
    }

    /// Flushes wait while this lives.
    #[derive(Debug)]
    pub(crate) struct Hold<'a>(&'a Faults);

    impl Drop for Hold<'_> {
        fn drop(&mut self) {
            *self.0.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
            self.0.released.notify_all();
        }
    }

    impl Disk for Faults {
        fn write(&self, what: Write) -> sled::Result<()> {
            self.steps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Step::Write(what));
            if Self::take(&self.failing_writes) {
                return Err(injected());
            }
            Ok(())
        }

        fn flush(&self, db: &sled::Db) -> sled::Result<()> {
            self.entered.send_modify(|n| *n += 1);
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            while *held {
                held = self
                    .released
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(held);
            if Self::take(&self.failing_flushes) {
                return Err(injected());
            }
            db.flush()?;
            self.steps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Step::Flush);
            Ok(())
        }
    }
}
