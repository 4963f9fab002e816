//! The control plane is Lyceum's system of record: who people are, which
//! tenant they belong to, every unit of money (the ledger), courses,
//! enrollments and progress, billing, and the outbox of domain events. It
//! is the only crate that talks to a SQL database, so every other crate
//! stays storage-agnostic. Edge nodes never call it on a learner's hot
//! path: they verify the Ed25519 access tokens (and live-class tickets) it
//! signs with the public key set it publishes.

pub mod analytics;
pub mod billing;
pub mod catalogue;
pub mod clock;
pub mod codes;
pub mod config;
pub mod content;
pub mod db;
pub mod demo;
pub mod error;
pub mod events;
pub mod http;
pub mod identity;
pub mod keys;
pub mod learning;
pub mod ledger;
pub mod outage;
pub mod passwords;
pub mod seed;
pub mod service;
pub mod sessions;
pub mod submissions;
pub mod timetables;
pub mod tokens;

use std::time::Duration;

pub use codes::ErrorCode;
pub use config::ControlPlaneConfig;
pub use db::{Db, DbKind};
pub use error::ControlPlaneError;
pub use service::ControlPlane;

impl ControlPlane {
    /// Connects to the database, applies migrations, loads (or creates) the
    /// token signing key and starts the ledger's expiry sweep (unless
    /// `ledger_expiry_sweep_interval_ms` is 0), the billing clock (unless
    /// `billing_clock_interval_ms` is 0) and the analytics projection
    /// (unless `analytics_interval_ms` is 0); they stop when the last clone
    /// of the returned value is dropped.
    ///
    /// # Errors
    /// Fails when the database cannot be reached or migrated, or when the
    /// signing key in the database cannot be parsed.
    pub async fn open(config: ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        config.validate()?;
        let db = Db::connect(&config).await?;
        db.migrate().await?;
        let keys = keys::KeyRing::load_or_create(&db).await?;
        let ledger_writer = ledger::group::GroupCommit::start(
            db.clone(),
            ledger::Limits::from_config(&config),
            usize::try_from(config.ledger_group_commit_queue_max).unwrap_or(usize::MAX),
            usize::try_from(config.ledger_group_commit_transfers_max).unwrap_or(usize::MAX),
            usize::try_from(config.ledger_group_commit_writers).unwrap_or(1),
        );
        let content_cache = http::cache::SwrCache::new(
            usize::try_from(config.content_cache_entries_max).unwrap_or(usize::MAX),
            config.content_cache_fresh_ms,
            config.content_cache_stale_ms,
        );
        let cp = Self::assemble(service::Parts {
            config,
            db,
            keys,
            ledger_writer,
            content_cache,
        });
        let config = cp.config();
        spawn_rounds(
            "ledger_expiry_sweep",
            cp.downgrade(),
            Duration::from_millis(config.ledger_expiry_sweep_interval_ms),
            sweep_expired_holds,
        );
        spawn_rounds(
            "billing_clock",
            cp.downgrade(),
            Duration::from_millis(config.billing_clock_interval_ms),
            advance_billing,
        );
        spawn_rounds(
            "analytics",
            cp.downgrade(),
            Duration::from_millis(config.analytics_interval_ms),
            catch_up_analytics,
        );
        Ok(cp)
    }
}

/// Runs `round` every `interval` (never, when it is zero) for as long as
/// the control plane lives. Each round is its own task, so a round that
/// panics is logged at error level and counted, and the next round runs as
/// usual: one bad row never stops trials ending or holds expiring.
fn spawn_rounds<T, F, Fut>(name: &'static str, weak: T, interval: Duration, round: F)
where
    T: Upgrade + Send + 'static,
    F: Fn(T::Strong) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(strong) = weak.upgrade() else { return };
            if let Err(err) = tokio::spawn(round(strong)).await {
                if err.is_panic() {
                    ROUND_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        task = name,
                        "control plane: a background round panicked; the next runs as usual"
                    );
                }
            }
        }
    });
}

/// Background rounds that panicked since the process started (see
/// [`round_panics`]).
static ROUND_PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many background rounds (billing clock, expiry sweep, analytics)
/// have panicked in this process, for the process's metrics.
pub fn round_panics() -> u64 {
    ROUND_PANICS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A handle a background loop holds without keeping its owner alive.
trait Upgrade {
    /// The handle a round works with.
    type Strong: Send + 'static;
    /// The owner, while anyone still holds it.
    fn upgrade(&self) -> Option<Self::Strong>;
}

impl Upgrade for service::WeakControlPlane {
    type Strong = ControlPlane;
    fn upgrade(&self) -> Option<ControlPlane> {
        service::WeakControlPlane::upgrade(self)
    }
}

/// Advances the billing clock with the built-in payment provider, so
/// trials end and periods renew without anyone asking.
async fn advance_billing(cp: ControlPlane) {
    let provider = billing::DevProvider::new(cp.config().billing_dev_decline_token.clone());
    match billing::advance(&cp, &provider, cp.clock().now_ms()).await {
        Ok(done) if done == billing::Advanced::default() => {}
        Ok(done) => tracing::info!(?done, "billing: clock advanced"),
        Err(err) => tracing::warn!(error = %err, "billing: clock step failed"),
    }
}

/// Brings the analytics projection up to date; each round is one
/// transaction with its cursor, so a crash in between loses and repeats
/// nothing.
async fn catch_up_analytics(cp: ControlPlane) {
    let config = cp.config();
    match analytics::catch_up(
        cp.db(),
        config.analytics_batch_max,
        config.events_publish_batch_max,
    )
    .await
    {
        Ok(0) => {}
        Ok(applied) => tracing::debug!(applied, "analytics: projection caught up"),
        Err(err) => tracing::warn!(error = %err, "analytics: projection round failed"),
    }
}

/// Expires timed-out pending ledger transfers, so that abandoned holds give
/// their reservation back without anyone asking.
async fn sweep_expired_holds(cp: ControlPlane) {
    let now = cp.clock().now_ms();
    let max = cp.config().ledger_expiry_sweep_batch_max;
    match ledger::expire_due(cp.db(), now, max).await {
        Ok(0) => {}
        Ok(expired) => tracing::info!(expired, "ledger: expired pending transfers"),
        Err(err) => tracing::warn!(error = %err, "ledger: expiry sweep failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use super::{round_panics, spawn_rounds, Upgrade};

    impl Upgrade for Weak<AtomicU32> {
        type Strong = Arc<AtomicU32>;
        fn upgrade(&self) -> Option<Arc<AtomicU32>> {
            Weak::upgrade(self)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_that_panics_is_counted_and_the_next_one_runs() {
        let rounds = Arc::new(AtomicU32::new(0));
        let before = round_panics();
        spawn_rounds(
            "test",
            Arc::downgrade(&rounds),
            Duration::from_secs(1),
            |n: Arc<AtomicU32>| async move {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first round fails");
                }
            },
        );
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3, "rounds at 1, 2 and 3 s");
        assert!(round_panics() > before, "the panic was counted");
        drop(rounds);
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_stop_with_their_owner_and_zero_means_never() {
        let never = Arc::new(AtomicU32::new(0));
        spawn_rounds(
            "off",
            Arc::downgrade(&never),
            Duration::ZERO,
            |n: Arc<AtomicU32>| async move {
                n.fetch_add(1, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(never.load(Ordering::SeqCst), 0);
        let owner = Arc::new(AtomicU32::new(0));
        let weak = Arc::downgrade(&owner);
        spawn_rounds(
            "gone",
            weak.clone(),
            Duration::from_secs(1),
            |n: Arc<AtomicU32>| async move {
                n.fetch_add(1, Ordering::SeqCst);
            },
        );
        drop(owner);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(weak.upgrade().is_none(), "no round keeps its owner alive");
    }
}
