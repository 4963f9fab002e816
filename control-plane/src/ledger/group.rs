//! Group commit: transfers and batches submitted concurrently (the HTTP
//! routes `POST /api/v1/ledger/transfers` and `.../transfers/batch`) are
//! collected into one database transaction instead of one each.
//!
//! Why: on a few hot accounts every transfer waits for the row locks of
//! the one before it, so one transaction per transfer runs at one commit
//! (one WAL flush, several round trips) per transfer, whatever the number
//! of clients; and concurrent batches over many accounts overlap on some
//! account almost always, so they queue on row locks and on each other's
//! commit flush. A writer that takes everything queued meanwhile pays the
//! locks, the statements and the flush once per group.
//!
//! How: requests (a transfer or a batch) go into a bounded queue
//! (`ledger_group_commit_queue_max` requests; a full queue answers
//! [`LedgerError::Busy`] at once instead of letting waits grow without
//! bound). `ledger_group_commit_writers` writer tasks take turns at the
//! queue: a writer waits for the first request, takes whatever else is
//! queued until the group holds `ledger_group_commit_transfers_max`
//! transfers (a request is never split, so a group may pass that by one
//! batch), and writes it with [`store::create_group`] while the next writer
//! gathers the next group. Within a group each request stands alone: it is
//! checked in memory against the locked totals, a single transfer on its
//! own and a batch all or nothing, and a refused one (no funds, a
//! conflicting id) changes nothing and fails only itself. Requests are
//! split per tenant, and a request that repeats an id of an earlier one
//! goes to a later round of the same writer, so that it sees its first
//! occurrence committed and answers it idempotently. Every other rule (lock
//! order, idempotency by body, limits, events in the same transaction) is
//! the store's, unchanged.
//!
//! Cancel safety: a caller that goes away still has its transfers written
//! if the writer took them; their ids make a retry safe.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::error::LedgerError;
use super::model::Limits;
use super::model::NewTransfer;
use super::model::Recorded;
use super::store;
use crate::db::Db;

/// One queued request and where its answer goes.
struct Request {
    tenant_id: String,
    unit: store::Unit,
    reply: oneshot::Sender<Result<Vec<Recorded>, LedgerError>>,
}

/// The handle callers submit through; writers stop when it is dropped.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    sender: mpsc::Sender<Request>,
    queue_max: usize,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("tenant_id", &self.tenant_id)
            .field("transfers", &self.unit.transfers.len())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts `writers` writer tasks over one queue of `queue_max` requests,
    /// each writing groups of at most `group_max` transfers. Needs a Tokio
    /// runtime. All three are at least 1 (the configuration checks it).
    pub fn start(
        db: Db,
        limits: Limits,
        queue_max: usize,
        group_max: usize,
        writers: usize,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(queue_max.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_groups(
                db.clone(),
                limits,
                receiver.clone(),
                group_max.max(1),
            ));
        }
        Self { sender, queue_max }
    }

    /// Requests waiting in the queue now (not yet taken by a writer).
    pub fn queued(&self) -> usize {
        self.queue_max.saturating_sub(self.sender.capacity())
    }

    /// Creates one transfer as [`store::create_transfer`] would, in a group
    /// with whatever else is queued.
    ///
    /// # Errors
    /// As [`store::create_transfer`]; [`LedgerError::Busy`] when the queue
    /// is full; [`LedgerError::GroupFailed`] when the group's transaction
    /// failed (nothing of it was written; retry with the same id).
    pub async fn create_transfer(
        &self,
        tenant_id: &str,
        transfer: NewTransfer,
        now_ms: i64,
    ) -> Result<Recorded, LedgerError> {
        let unit = store::Unit {
            transfers: vec![transfer],
            batch: false,
            now_ms,
        };
        self.submit(tenant_id, unit)
            .await?
            .pop()
            .ok_or_else(|| LedgerError::Corrupt("a one-transfer request recorded nothing".into()))
    }

    /// Creates a batch as [`store::create_transfers`] would (all or
    /// nothing, applied in order), in a group with whatever else is queued.
    ///
    /// # Errors
    /// As [`store::create_transfers`]; [`LedgerError::Busy`] when the queue
    /// is full; [`LedgerError::GroupFailed`] when the group's transaction
    /// failed (nothing of it was written; retry with the same ids).
    pub async fn create_transfers(
        &self,
        tenant_id: &str,
        transfers: Vec<NewTransfer>,
        now_ms: i64,
    ) -> Result<Vec<Recorded>, LedgerError> {
        let unit = store::Unit {
            transfers,
            batch: true,
            now_ms,
        };
        self.submit(tenant_id, unit).await
    }

    async fn submit(
        &self,
        tenant_id: &str,
        unit: store::Unit,
    ) -> Result<Vec<Recorded>, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            tenant_id: tenant_id.to_owned(),
            unit,
            reply,
        };
        self.sender.try_send(request).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => LedgerError::Busy(self.queue_max),
            mpsc::error::TrySendError::Closed(_) => {
                LedgerError::GroupFailed("the ledger writer has stopped".into())
            }
        })?;
        answer
            .await
            .map_err(|_| LedgerError::GroupFailed("the ledger writer has stopped".into()))?
    }
}

/// One writer: take a group, write it, answer everyone, repeat until the
/// queue closes.
async fn write_groups(
    db: Db,
    limits: Limits,
    receiver: Arc<Mutex<mpsc::Receiver<Request>>>,
    group_max: usize,
) {
    // Whether the last group met ids already in the journal: then the next
    // one looks its ids up first instead of trying without (see
    // [`store::create_group`]).
    let mut repeats = false;
    loop {
        let mut group = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let mut transfers = 0;
            match receiver.recv().await {
                Some(request) => {
                    transfers += request.unit.transfers.len();
                    group.push(request);
                }
                None => return,
            }
            while transfers < group_max {
                match receiver.try_recv() {
                    Ok(request) => {
                        transfers += request.unit.transfers.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
        }
        let mut met = false;
        for round in rounds(group) {
            met |= write_round(&db, &limits, round, repeats).await;
        }
        repeats = met;
    }
}

/// Splits a group per tenant, and each tenant's part into rounds with
/// distinct ids (a request that repeats an id of an earlier one waits for
/// the round after the last one it collides with, so arrival order holds
/// between them).
fn rounds(group: Vec<Request>) -> Vec<Vec<Request>> {
    let mut by_tenant: HashMap<String, Vec<Vec<Request>>> = HashMap::new();
    let mut order = Vec::new();
    let mut seen: HashMap<String, Vec<HashSet<String>>> = HashMap::new();
    for request in group {
        let ids = seen.entry(request.tenant_id.clone()).or_default();
        let round = ids
            .iter()
            .rposition(|ids| request.unit.transfers.iter().any(|t| ids.contains(&t.id)))
            .map_or(0, |last| last + 1);
        if round == ids.len() {
            ids.push(HashSet::new());
        }
        ids[round].extend(request.unit.transfers.iter().map(|t| t.id.clone()));
        let tenant = by_tenant
            .entry(request.tenant_id.clone())
            .or_insert_with(|| {
                order.push(request.tenant_id.clone());
                Vec::new()
            });
        if round == tenant.len() {
            tenant.push(Vec::new());
        }
        tenant[round].push(request);
    }
    order
        .into_iter()
        .flat_map(|tenant| by_tenant.remove(&tenant).unwrap_or_default())
        .collect()
}

/// Writes one round (one tenant, distinct ids) and answers each request.
/// Answers whether the round met ids already in the journal.
async fn write_round(db: &Db, limits: &Limits, round: Vec<Request>, look_up_first: bool) -> bool {
    let Some(tenant_id) = round.first().map(|r| r.tenant_id.clone()) else {
        return false;
    };
    let (units, replies): (Vec<_>, Vec<_>) = round.into_iter().map(|r| (r.unit, r.reply)).unzip();
    match store::create_group(db, &tenant_id, &units, limits, look_up_first).await {
        Ok(group) => {
            for (reply, result) in replies.into_iter().zip(group.results) {
                // A caller that went away does not hear back; its id makes
                // a retry safe.
                let _ = reply.send(result);
            }
            group.repeats
        }
        Err(err) => {
            tracing::warn!(error = %err, requests = units.len(), "ledger: group commit failed");
            let text = err.to_string();
            for reply in replies {
                let _ = reply.send(Err(LedgerError::GroupFailed(text.clone())));
            }
            look_up_first
        }
    }
}
