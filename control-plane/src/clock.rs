//! The control plane's clock: wall-clock milliseconds plus an offset that
//! tests move forward, so time-dependent rules (pending ledger transfers
//! expiring) can be tested without sleeping. Production never advances it.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::db;

/// Unix milliseconds, shifted by an offset that only grows.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The current time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        db::now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `ms` (negative values are ignored: time
    /// does not run backwards for the ledger).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed);
    }
}
