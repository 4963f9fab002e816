//! The token bucket that caps how many commands one class accepts per
//! second. The caller passes the time, so tests step it exactly instead of
//! sleeping.

use tokio::time::Instant;

/// Holds up to `rate` tokens and refills `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    refilled: Instant,
}

impl Bucket {
    /// A full bucket of `rate` tokens at `now`.
    pub(crate) fn full(rate: f64, now: Instant) -> Self {
        assert!(rate > 0.0, "a rate of zero would refuse every command");
        Self {
            tokens: rate,
            rate,
            refilled: now,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Bucket;
    use tokio::time::Instant;

    #[test]
    fn a_burst_takes_the_rate_then_one_token_per_period() {
        let start = Instant::now();
        let mut bucket = Bucket::full(5.0, start);
        assert!((0..5).all(|_| bucket.take(start)), "a full second's burst");
        assert!(!bucket.take(start), "the sixth command at once is refused");
        let period = Duration::from_millis(200);
        assert!(!bucket.take(start + period - Duration::from_millis(1)));
        assert!(bucket.take(start + period), "one token per 1/rate seconds");
        assert!(!bucket.take(start + period));
        // A long idle refills to the rate, never beyond it.
        let later = start + Duration::from_secs(60);
        assert!((0..5).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }

    #[test]
    fn time_running_backwards_takes_nothing_extra() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut bucket = Bucket::full(1.0, start);
        assert!(bucket.take(start));
        assert!(!bucket.take(start - Duration::from_millis(500)));
    }
}
