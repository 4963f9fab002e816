//! Turning what the workload observes into probe samples: the p99 of run
//! latency over an interval, the share of class messages every recipient got
//! in time, the share of processes ready. Pure and bounded, so the runner
//! only feeds observations in and takes one sample per `probes.interval_ms`,
//! and tests need no cluster. A run that fails or times out must be
//! recorded with the time it took to fail, or a hung platform would look
//! fast.

use std::collections::BTreeMap;

use crate::drill::{PROBE_INTERVAL_MS_MAX, RATE_PER_SECOND_MAX};

/// Most run latencies kept for one interval: runs and submissions at their
/// highest rates over the longest interval fit.
pub const LATENCIES_PER_INTERVAL_MAX: usize = 150_000;

// Runs and submissions, each at the highest rate, for the longest interval.
const _: () = assert!(
    LATENCIES_PER_INTERVAL_MAX as f64
        >= 2.0 * RATE_PER_SECOND_MAX * PROBE_INTERVAL_MS_MAX as f64 / 1000.0
);

/// Most class messages awaiting their deadline at once.
pub const MESSAGES_TRACKED_MAX: usize = 10_000;

/// Run latencies of the current interval.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    latencies_ms: Vec<u64>,
    overflowed: u64,
}

impl LatencyWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one run's latency. Returns false, and counts it in
    /// [`LatencyWindow::overflowed`], when the interval already holds
    /// [`LATENCIES_PER_INTERVAL_MAX`].
    pub fn record(&mut self, latency_ms: u64) -> bool {
        if self.latencies_ms.len() >= LATENCIES_PER_INTERVAL_MAX {
            self.overflowed += 1;
            return false;
        }
        self.latencies_ms.push(latency_ms);
        true
    }

    /// The p99 (nearest rank) of the interval's latencies, and a fresh
    /// interval; `None` when no run finished in it.
    pub fn take_p99(&mut self) -> Option<f64> {
        let mut latencies = std::mem::take(&mut self.latencies_ms);
        if latencies.is_empty() {
            return None;
        }
        // Nearest rank: the smallest value with at least 99 % at or below.
        let rank = (latencies.len() * 99).div_ceil(100).max(1);
        let (_, p99, _) = latencies.select_nth_unstable(rank - 1);
        Some(*p99 as f64)
    }

    /// Latencies refused because the interval was full, since the start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[derive(Debug)]
struct Pending {
    sent_at_ms: u64,
    /// Recipients that have not received it in time yet.
    awaiting: u32,
}

/// Class messages the workload sent, until each one's deadline decides
/// whether every recipient got it within `class_delivery_within_ms`.
#[derive(Debug)]
pub struct DeliveryTracker {
    within_ms: u64,
    pending: BTreeMap<u64, Pending>,
    untracked: u64,
}

impl DeliveryTracker {
    /// A tracker for the drill's `probes.class_delivery_within_ms`.
    pub fn new(within_ms: u64) -> Self {
        Self {
            within_ms,
            pending: BTreeMap::new(),
            untracked: 0,
        }
    }

    /// A message (the workload's own id for it) sent at `at_ms` to
    /// `recipients` clients. Returns false, and counts it in
    /// [`DeliveryTracker::untracked`], when [`MESSAGES_TRACKED_MAX`] are
    /// pending or the id is already pending.
    pub fn sent(&mut self, id: u64, at_ms: u64, recipients: u32) -> bool {
        if self.pending.len() >= MESSAGES_TRACKED_MAX || self.pending.contains_key(&id) {
            self.untracked += 1;
            return false;
        }
        self.pending.insert(
            id,
            Pending {
                sent_at_ms: at_ms,
                awaiting: recipients,
            },
        );
        true
    }

    /// One recipient received the message at `at_ms`. Late receipts, and
    /// receipts of messages already decided or never tracked, change
    /// nothing.
    pub fn received(&mut self, id: u64, at_ms: u64) {
        if let Some(pending) = self.pending.get_mut(&id) {
            if at_ms.saturating_sub(pending.sent_at_ms) <= self.within_ms {
                pending.awaiting = pending.awaiting.saturating_sub(1);
            }
        }
    }

    /// The share of messages whose deadline passed before `now_ms` that
    /// every recipient received in time; those messages are forgotten.
    /// `None` when no deadline passed since the last sample.
    pub fn take_ratio(&mut self, now_ms: u64) -> Option<f64> {
        let within = self.within_ms;
        let mut decided = 0u32;
        let mut delivered = 0u32;
        self.pending.retain(|_, p| {
            if p.sent_at_ms.saturating_add(within) >= now_ms {
                return true;
            }
            decided += 1;
            if p.awaiting == 0 {
                delivered += 1;
            }
            false
        });
        (decided > 0).then(|| f64::from(delivered) / f64::from(decided))
    }

    /// Messages refused because too many were pending, since the start.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}

/// The share of processes ready; `None` for an empty cluster.
pub fn readiness_ratio(ready: u32, total: u32) -> Option<f64> {
    (total > 0).then(|| f64::from(ready.min(total)) / f64::from(total))
}
