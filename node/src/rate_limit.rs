//! Per-key token buckets, used to cap how fast one user may start code runs
//! on an edge. The map of buckets is bounded: when it is full, buckets that
//! have refilled completely (idle users) are dropped first, and if none has,
//! the request is refused rather than the map grown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A set of token buckets keyed by user.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    keys_max: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// The key used its budget; retry after this long.
    RetryAfter(Duration),
    /// Too many distinct keys are being tracked.
    TooManyKeys,
}

impl RateLimiter {
    /// Allows `per_minute` requests per key (bursts up to that many), for at
    /// most `keys_max` keys at once.
    pub fn new(per_minute: u32, keys_max: usize) -> Self {
        assert!(per_minute > 0, "a rate of zero would refuse everything");
        assert!(keys_max > 0, "at least one key must fit");
        Self {
            per_minute,
            keys_max,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at time `now`.
    ///
    /// # Errors
    /// [`Refusal`] when the key is out of tokens or the map is full.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Refusal> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let refill = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            (bucket.tokens + elapsed * per_second).min(capacity)
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= self.keys_max {
            buckets.retain(|_, bucket| refill(bucket) < capacity);
            if buckets.len() >= self.keys_max {
                return Err(Refusal::TooManyKeys);
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            let wait = (1.0 - tokens) / per_second;
            return Err(Refusal::RetryAfter(Duration::from_secs_f64(wait)));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            updated: now,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_budget_then_waits() {
        let limiter = RateLimiter::new(3, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("ada", start), Ok(()));
        }
        match limiter.check("ada", start) {
            Err(Refusal::RetryAfter(wait)) => assert!((19.9..=20.1).contains(&wait.as_secs_f64())),
            other => panic!("expected a wait, got {other:?}"),
        }
        // Another key has its own budget.
        assert_eq!(limiter.check("bob", start), Ok(()));
        // One token comes back every 20 s.
        assert!(limiter
            .check("ada", start + Duration::from_secs(19))
            .is_err());
        assert_eq!(
            limiter.check("ada", start + Duration::from_secs(20)),
            Ok(())
        );
    }

    #[test]
    fn the_key_map_is_bounded_and_idle_keys_make_room() {
        let limiter = RateLimiter::new(60, 2);
        let start = Instant::now();
        assert_eq!(limiter.check("a", start), Ok(()));
        assert_eq!(limiter.check("b", start), Ok(()));
        assert_eq!(limiter.check("c", start), Err(Refusal::TooManyKeys));
        // After a second, a and b have refilled completely and are dropped.
        let later = start + Duration::from_secs(1);
        assert_eq!(limiter.check("c", later), Ok(()));
    }
}
