//! What the workload was told, shared by its parts (`workload`, `ledger`,
//! `classes`, `platform`, `run`): the learners it signed up, its counters
//! and acknowledgements, its bounds, and the open-loop pacing every
//! generator uses. A leaf: imports nothing of the
//! runner, so the parts that fill it and the parts that read it never
//! import each other.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::checker::{AckedRun, Transfer};
use chaos::probe::LatencyWindow;

/// Requests of the workload in flight at once; past it a tick is skipped
/// and counted, so a hung platform cannot grow the runner without bound.
pub(super) const IN_FLIGHT_MAX: usize = 512;

/// How long one run or submission may take before it counts as failed.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A learner the workload signed up.
#[derive(Debug, Clone)]
pub(super) struct Learner {
    /// Their user id (the access token's subject).
    pub(super) user_id: String,
    /// Access and refresh token; the workload renews them before the
    /// access token expires, so a drill may outlast it.
    tokens: Arc<Mutex<(String, String)>>,
}

impl Learner {
    pub(super) fn new(user_id: String, access: String, refresh: String) -> Self {
        Self {
            user_id,
            tokens: Arc::new(Mutex::new((access, refresh))),
        }
    }

    /// The current access token.
    pub(super) fn token(&self) -> String {
        self.tokens.lock().map(|t| t.0.clone()).unwrap_or_default()
    }

    /// The current refresh token (single use).
    pub(super) fn refresh_token(&self) -> String {
        self.tokens.lock().map(|t| t.1.clone()).unwrap_or_default()
    }

    /// Keeps a renewed pair.
    pub(super) fn renewed(&self, access: String, refresh: String) {
        if let Ok(mut tokens) = self.tokens.lock() {
            *tokens = (access, refresh);
        }
    }
}

/// What the workload saw, shared by its request tasks.
#[derive(Default)]
pub(super) struct Observed {
    /// Latencies of the current probe interval.
    pub(super) latency: Mutex<LatencyWindow>,
    /// Runs and submissions the platform acknowledged.
    pub(super) acked: Mutex<Vec<AckedRun>>,
    /// Answered with success.
    pub(super) ok: AtomicU64,
    /// Refused, failed or unanswered.
    pub(super) failed: AtomicU64,
    /// Ticks skipped because [`IN_FLIGHT_MAX`] requests were in flight.
    pub(super) skipped: AtomicU64,
    /// The last failure, in words, for the live timeline.
    pub(super) last_failure: Mutex<Option<String>>,
    /// Ledger transfers sent, by what came of them.
    pub(super) transfers: Sent,
    /// Requests in flight, at most [`IN_FLIGHT_MAX`].
    pub(super) in_flight: AtomicUsize,
}

/// What the ledger workload was told.
#[derive(Default)]
pub(super) struct Sent {
    /// Accepted (201 or 200).
    pub(super) accepted: Mutex<Vec<Transfer>>,
    /// Sent without an answer that says either way.
    pub(super) unanswered: Mutex<Vec<Transfer>>,
}

/// Calls `one(n)` for n = 0, 1, ... at `rate` a second, each as its own
/// task, until `stopped` turns true: open loop, so a slow platform gets
/// more requests in flight, not fewer. At most [`IN_FLIGHT_MAX`] are in
/// flight over the whole workload; past it a tick is skipped and counted.
pub(super) async fn open_loop<F, Fut>(
    rate: f64,
    observed: Arc<Observed>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    mut one: F,
) where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use std::sync::atomic::Ordering;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut n: usize = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        if observed.in_flight.load(Ordering::Relaxed) >= IN_FLIGHT_MAX {
            observed.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        observed.in_flight.fetch_add(1, Ordering::Relaxed);
        let request = one(n);
        let observed = observed.clone();
        tokio::spawn(async move {
            request.await;
            observed.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        n = n.wrapping_add(1);
    }
}
