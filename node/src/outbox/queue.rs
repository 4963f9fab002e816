//! A durable, bounded queue in two sled trees: items waiting to be handed
//! to the control plane (key order is send order), and the dead letters,
//! items the control plane refused for good, kept with the reason for an
//! operator. Nothing leaves the queue but by being taken, or refused into
//! the dead letters; nothing leaves the dead letters but by an operator.
//! Both trees are bounded: [`Queue::full`] tells producers to stop, and a
//! refusal that finds the dead letters full leaves the item queued
//! ([`QueueError::DeadLettersFull`]).
//!
//! One type serves every outbox of the edge (submission reports,
//! attendance reports); the item type is the control plane's own wire type.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional as _};

use crate::store::StoreError;

/// How much a queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Items waiting; at it, producers are refused.
    pub items_max: usize,
    /// Dead letters kept; at it, the publisher stops at the next refusal.
    pub dead_letters_max: usize,
}

/// An item the control plane refused for good, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter<T> {
    /// The item's key in the queue (a run id, a class id).
    pub id: String,
    /// The item as it was queued; `None` when it could not be decoded.
    pub item: Option<T>,
    /// Why it was refused (the control plane's code and message).
    pub reason: String,
    /// When it became a dead letter (RFC 3339, UTC); empty for letters
    /// kept by an older version, which did not say.
    #[serde(default)]
    pub at: String,
}

/// What the publisher finds at the front of the queue.
#[derive(Debug)]
pub enum Queued<T> {
    /// An item to send.
    Item(sled::IVec, Box<T>),
    /// A value that does not decode: it can never be sent, so the
    /// publisher makes it a dead letter with this reason.
    Corrupt(sled::IVec, String),
}

/// Why an item could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The dead letters are full: the refused item stays queued until an
    /// operator clears some.
    #[error(
        "{kept} dead letters are kept in {queue}, the most allowed; an operator must \
         clear some (/api/v1/operator/outbox/dead-letters)"
    )]
    DeadLettersFull {
        /// The queue.
        queue: &'static str,
        /// Dead letters kept.
        kept: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for QueueError {
    fn from(err: sled::Error) -> Self {
        Self::Store(StoreError::Sled(err))
    }
}

/// One durable queue of `T`.
#[derive(Debug)]
pub struct Queue<T> {
    name: &'static str,
    db: sled::Db,
    items: sled::Tree,
    dead: sled::Tree,
    limits: QueueLimits,
    len: AtomicUsize,
    dead_len: AtomicUsize,
    /// Wakes the publisher when an item is added.
    added: tokio::sync::Notify,
    /// Wakes those waiting in [`Queue::taken`] when an item leaves.
    removed: tokio::sync::Notify,
    item: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Opens the queue `name` in the trees `items` and `dead` of `db`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when a tree cannot be opened.
    pub fn open(
        db: &sled::Db,
        name: &'static str,
        trees: (&str, &str),
        limits: QueueLimits,
    ) -> Result<Self, StoreError> {
        assert!(limits.items_max > 0, "validated: a queue holds at least 1");
        assert!(
            limits.dead_letters_max > 0,
            "validated: at least 1 dead letter"
        );
        let items = db.open_tree(trees.0)?;
        let dead = db.open_tree(trees.1)?;
        Ok(Self {
            name,
            len: AtomicUsize::new(items.len()),
            dead_len: AtomicUsize::new(dead.len()),
            db: db.clone(),
            items,
            dead,
            limits,
            added: tokio::sync::Notify::new(),
            removed: tokio::sync::Notify::new(),
            item: PhantomData,
        })
    }

    /// The queue's name, for logs, metrics and the operator view.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bounds in force.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue holds its most: producers must not add (checked
    /// before the work whose item it would be, never after).
    pub fn full(&self) -> bool {
        self.len() >= self.limits.items_max
    }

    /// Dead letters kept.
    pub fn dead_letters_len(&self) -> usize {
        self.dead_len.load(Ordering::Relaxed)
    }

    /// The items tree, for a producer that writes an item in one
    /// transaction with its own trees; it calls [`Queue::pushed`] after.
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.items
    }

    /// Counts an item a producer wrote into [`Queue::tree`] itself
    /// (`new`: it was not there before) and wakes the publisher.
    pub(crate) fn pushed(&self, new: bool) {
        if new {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        self.added.notify_one();
    }

    /// Adds an item under `key` and flushes it to disk before returning.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or the item does not encode.
    pub async fn push(&self, key: &[u8], item: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(item).map_err(|e| corrupt(self.name, &e))?;
        let new = self.items.insert(key, bytes)?.is_none();
        self.db.flush_async().await?;
        self.pushed(new);
        Ok(())
    }

    /// The oldest items waiting, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Queued<T>>, StoreError> {
        self.items
            .iter()
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry?;
                Ok(match serde_json::from_slice(&bytes) {
                    Ok(item) => Queued::Item(key, Box::new(item)),
                    Err(err) => {
                        Queued::Corrupt(key, format!("undecodable {} entry: {err}", self.name))
                    }
                })
            })
            .collect()
    }

    /// Removes an item the control plane took.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        if self.items.remove(key)?.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        self.removed.notify_waiters();
        Ok(())
    }

    /// Waits up to `wait` for the item `key` to leave the queue (taken, or
    /// refused into the dead letters); whether it left.
    pub async fn taken(&self, key: &[u8], wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let removed = self.removed.notified();
            tokio::pin!(removed);
            // Registered before the check, so a removal in between wakes it.
            removed.as_mut().enable();
            match self.items.contains_key(key) {
                Ok(false) => return true,
                Ok(true) => {}
                Err(err) => {
                    tracing::error!(queue = self.name, error = %err, "cannot read an outbox");
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, removed).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until an item is added (at once if one was added since the
    /// last wait).
    pub async fn added(&self) {
        self.added.notified().await;
    }

    /// Moves an item the control plane refused for good to the dead
    /// letters, with the reason, in one transaction.
    ///
    /// # Errors
    /// [`QueueError::DeadLettersFull`] when the dead letters are full (the
    /// item stays queued), or a store failure.
    pub fn dead_letter(&self, key: &[u8], reason: &str, at: &str) -> Result<(), QueueError> {
        let Some(bytes) = self.items.get(key)? else {
            return Ok(());
        };
        let kept = self.dead_letters_len();
        if kept >= self.limits.dead_letters_max {
            return Err(QueueError::DeadLettersFull {
                queue: self.name,
                kept,
            });
        }
        let letter = DeadLetter {
            id: String::from_utf8_lossy(key).into_owned(),
            item: serde_json::from_slice::<T>(&bytes).ok(),
            reason: reason.to_owned(),
            at: at.to_owned(),
        };
        let value = serde_json::to_vec(&letter).map_err(|e| corrupt(self.name, &e))?;
        let (was_queued, was_dead) = (&self.items, &self.dead)
            .transaction(|(items, dead)| {
                let was_queued = items.remove(key)?.is_some();
                let was_dead = dead.insert(key, value.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((was_queued, was_dead))
            })
            .map_err(|err| transaction_error(self.name, err))?;
        if was_queued {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        if !was_dead {
            self.dead_len.fetch_add(1, Ordering::Relaxed);
        }
        self.removed.notify_waiters();
        Ok(())
    }

    /// Dead letters in key order after `after`, at most `limit`. A letter
    /// kept by an older version (the bare item, or another shape) is shown
    /// with what can be read of it, never skipped.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn dead_letters(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter<T>>, StoreError> {
        let range = match after {
            Some(after) => self.dead.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.dead.iter(),
        };
        range
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry?;
                Ok(self.letter(&key, &bytes))
            })
            .collect()
    }

    fn letter(&self, key: &[u8], bytes: &[u8]) -> DeadLetter<T> {
        if let Ok(letter) = serde_json::from_slice::<DeadLetter<T>>(bytes) {
            return letter;
        }
        let id = String::from_utf8_lossy(key).into_owned();
        match serde_json::from_slice::<T>(bytes) {
            Ok(item) => DeadLetter {
                id,
                item: Some(item),
                reason: "refused (kept before reasons were recorded)".into(),
                at: String::new(),
            },
            Err(_) => DeadLetter {
                id,
                item: None,
                reason: format!("kept as {}", String::from_utf8_lossy(bytes)),
                at: String::new(),
            },
        }
    }

    /// Forgets a dead letter an operator has dealt with; whether it was
    /// there.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails.
    pub fn discard_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let gone = self.dead.remove(id.as_bytes())?.is_some();
        if gone {
            self.dead_len.fetch_sub(1, Ordering::Relaxed);
            self.db.flush()?;
        }
        Ok(gone)
    }

    /// Puts a dead letter back in the queue (after an operator fixed what
    /// the control plane refused); whether it was there.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the letter holds no item that can be
    /// sent again; [`StoreError::Sled`] when sled fails.
    pub fn requeue_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let key = id.as_bytes();
        let Some(bytes) = self.dead.get(key)? else {
            return Ok(false);
        };
        let Some(item) = self.letter(key, &bytes).item else {
            return Err(StoreError::Corrupt {
                key: self.name,
                reason: format!("dead letter {id} holds nothing that can be sent again"),
            });
        };
        let payload = serde_json::to_vec(&item).map_err(|e| corrupt(self.name, &e))?;
        let (was_dead, was_queued) = (&self.dead, &self.items)
            .transaction(|(dead, items)| {
                let was_dead = dead.remove(key)?.is_some();
                let was_queued = items.insert(key, payload.as_slice())?.is_some();
                Ok::<_, ConflictableTransactionError<()>>((was_dead, was_queued))
            })
            .map_err(|err| transaction_error(self.name, err))?;
        if was_dead {
            self.dead_len.fetch_sub(1, Ordering::Relaxed);
        }
        self.db.flush()?;
        self.pushed(!was_queued);
        Ok(was_dead)
    }
}

fn corrupt(key: &'static str, err: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key,
        reason: err.to_string(),
    }
}

/// A transaction's failure as a store error.
pub(crate) fn transaction_error(key: &'static str, err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(err) => StoreError::Sled(err),
        TransactionError::Abort(()) => StoreError::Corrupt {
            key,
            reason: "transaction aborted".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::outbox::queue::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        n: u32,
    }

    const LIMITS: QueueLimits = QueueLimits {
        items_max: 2,
        dead_letters_max: 1,
    };

    fn queue(db: &sled::Db) -> Queue<Item> {
        Queue::open(db, "test", ("q", "q_dead"), LIMITS).expect("queue")
    }

    fn ids(queue: &Queue<Item>) -> Vec<u32> {
        queue
            .oldest(100)
            .expect("oldest")
            .into_iter()
            .map(|queued| match queued {
                Queued::Item(_, item) => item.n,
                Queued::Corrupt(_, why) => panic!("corrupt: {why}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn dead_letters_are_bounded_without_dropping_and_can_be_cleared_or_sent_again() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let queue = queue(&db);
        for n in [1, 2] {
            queue
                .push(format!("k{n}").as_bytes(), &Item { n })
                .await
                .expect("push");
        }
        assert!(queue.full());
        queue
            .dead_letter(b"k1", "HTTP 400: unknown unit", "2026-12-07T00:00:00Z")
            .expect("first dead letter");
        assert!(!queue.full());
        let full = queue.dead_letter(b"k2", "HTTP 409", "2026-12-07T00:00:01Z");
        assert!(
            matches!(full, Err(QueueError::DeadLettersFull { kept: 1, .. })),
            "{full:?}"
        );
        assert_eq!(ids(&queue), [2], "k2 stays queued, not dropped");
        let letters = queue.dead_letters(None, 10).expect("list");
        assert_eq!(
            letters,
            [DeadLetter {
                id: "k1".into(),
                item: Some(Item { n: 1 }),
                reason: "HTTP 400: unknown unit".into(),
                at: "2026-12-07T00:00:00Z".into(),
            }]
        );
        assert!(queue.dead_letters(Some("k1"), 10).expect("page").is_empty());

        assert!(queue.requeue_dead_letter("k1").expect("requeue"));
        assert_eq!(ids(&queue), [1, 2]);
        assert_eq!(queue.dead_letters_len(), 0);
        queue
            .dead_letter(b"k2", "HTTP 409", "2026-12-07T00:00:02Z")
            .expect("room again");
        assert!(queue.discard_dead_letter("k2").expect("discard"));
        assert!(!queue.discard_dead_letter("k2").expect("gone already"));
        assert_eq!(queue.dead_letters_len(), 0);
        assert!(!queue.requeue_dead_letter("nope").expect("unknown id"));
    }

    #[tokio::test]
    async fn undecodable_and_older_entries_are_shown_never_skipped() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let queue = queue(&db);
        queue
            .items
            .insert(b"x", b"not json".as_slice())
            .expect("insert");
        let front = queue.oldest(1).expect("oldest");
        assert!(matches!(&front[..], [Queued::Corrupt(key, _)] if key.as_ref() == b"x"));
        // An older version kept the bare item, or another shape.
        queue
            .dead
            .insert(b"a", br#"{"n": 7}"#.as_slice())
            .expect("insert");
        queue.dead.insert(b"b", b"junk".as_slice()).expect("insert");
        let letters = queue.dead_letters(None, 10).expect("list");
        assert_eq!(letters[0].item, Some(Item { n: 7 }));
        assert_eq!(
            (letters[1].item.clone(), letters[1].reason.as_str()),
            (None, "kept as junk")
        );
        assert!(queue
            .requeue_dead_letter("a")
            .expect("the bare item requeues"));
        assert!(
            queue.requeue_dead_letter("b").is_err(),
            "nothing to send again"
        );
    }

    #[tokio::test]
    async fn an_item_taken_wakes_whoever_waits_for_it() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let queue = std::sync::Arc::new(queue(&db));
        queue.push(b"k", &Item { n: 1 }).await.expect("push");
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.taken(b"k", std::time::Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        queue.remove(b"k").expect("remove");
        assert!(waiting.await.expect("join"));
        assert!(
            queue.taken(b"k", std::time::Duration::ZERO).await,
            "gone already"
        );
        assert!(queue.is_empty());
    }
}
