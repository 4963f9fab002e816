//! The control plane's clock: wall-clock milliseconds plus an offset that
//! tests move forward, so time-dependent rules (pending ledger transfers
//! expiring) can be tested without sleeping. Production never advances it.

use std::sync::atomic::{AtomicI64, Ordering};

/// Unix milliseconds, shifted by an offset that only grows.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The current time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        unix_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `ms` (negative values are ignored: time
    /// does not run backwards for the ledger).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed);
    }

    /// Moves the clock forward to `at_ms` (unix ms), for tests that read
    /// dated files (timetables); a time already passed leaves it as it is.
    pub fn advance_to(&self, at_ms: i64) {
        self.advance(at_ms.saturating_sub(self.now_ms()));
    }
}

/// Milliseconds since the unix epoch by the machine's clock: the control
/// plane's one wall-clock read (durations use tokio's clock, which tests
/// pause; rules that tests move forward use [`Clock`]).
#[expect(clippy::disallowed_methods, reason = "the crate's one wall-clock read")]
pub fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
