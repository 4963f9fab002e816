//! A fixed-window counter: at most `max` events in each window of `len`.
//! Bounds a publisher's packet rate and a peer's offers. Pure: the caller
//! passes the time, so tests drive it without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// Counts events in the current window.
#[derive(Debug, Clone)]
pub struct Window {
    start: Instant,
    count: u32,
    max: u32,
    len: Duration,
}

impl Window {
    /// A window of `len` allowing `max` events, starting at `now`.
    pub fn new(max: u32, len: Duration, now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
            max,
            len,
        }
    }

    /// Counts one event at `now`; false when the window is full.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.start) >= self.len {
            self.start = now;
            self.count = 0;
        }
        if self.count < self.max {
            self.count += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_then_refuses_until_the_next() {
        let start = Instant::now();
        let mut window = Window::new(3, Duration::from_secs(1), start);
        assert!((0..3).all(|_| window.allow(start)));
        assert!(!window.allow(start), "the fourth in one window is refused");
        assert!(!window.allow(start + Duration::from_millis(999)));
        assert!(
            window.allow(start + Duration::from_secs(1)),
            "a new window starts"
        );
    }
}
