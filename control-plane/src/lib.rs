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
pub mod passwords;
pub mod seed;
pub mod sessions;
pub mod submissions;
pub mod tokens;

use std::sync::{Arc, Weak};
use std::time::Duration;

pub use codes::ErrorCode;
pub use config::ControlPlaneConfig;
pub use db::{Db, DbKind};
pub use error::ControlPlaneError;

/// Everything a control-plane request handler needs, shared behind an `Arc`
/// so that handlers stay cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

struct Inner {
    config: ControlPlaneConfig,
    db: Db,
    keys: keys::KeyRing,
    clock: clock::Clock,
    ledger_writer: ledger::group::GroupCommit,
    content_cache: http::cache::SwrCache,
}

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
        let cp = Self {
            inner: Arc::new(Inner {
                config,
                db,
                keys,
                clock: clock::Clock::default(),
                ledger_writer,
                content_cache,
            }),
        };
        let interval = cp.config().ledger_expiry_sweep_interval_ms;
        if interval > 0 {
            tokio::spawn(sweep_expired_holds(
                Arc::downgrade(&cp.inner),
                Duration::from_millis(interval),
            ));
        }
        let billing_interval = cp.config().billing_clock_interval_ms;
        if billing_interval > 0 {
            tokio::spawn(run_billing_clock(
                Arc::downgrade(&cp.inner),
                Duration::from_millis(billing_interval),
            ));
        }
        let analytics_interval = cp.config().analytics_interval_ms;
        if analytics_interval > 0 {
            tokio::spawn(run_analytics(
                Arc::downgrade(&cp.inner),
                Duration::from_millis(analytics_interval),
            ));
        }
        Ok(cp)
    }

    /// The clock every time-dependent rule reads; tests advance it.
    pub fn clock(&self) -> &clock::Clock {
        &self.inner.clock
    }

    /// The validated configuration this control plane runs with.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.inner.config
    }

    /// The database handle, for readiness probes and tests.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The ledger's group commit, which single transfers over HTTP go
    /// through (see [`ledger::group`]).
    pub fn ledger_writer(&self) -> &ledger::group::GroupCommit {
        &self.inner.ledger_writer
    }

    /// The catalogue and course-page cache (see [`http::cache`]).
    pub fn content_cache(&self) -> &http::cache::SwrCache {
        &self.inner.content_cache
    }

    /// The signing keys, for issuing tokens and publishing the key set.
    pub fn keys(&self) -> &keys::KeyRing {
        &self.inner.keys
    }
}

/// Runs the billing clock every `interval` with the built-in payment
/// provider, so trials end and periods renew without anyone asking. Holds
/// only a weak reference, so it ends with the control plane.
async fn run_billing_clock(inner: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let cp = ControlPlane { inner };
        let provider = billing::DevProvider::new(cp.config().billing_dev_decline_token.clone());
        match billing::advance(&cp, &provider, cp.clock().now_ms()).await {
            Ok(done) if done == billing::Advanced::default() => {}
            Ok(done) => tracing::info!(?done, "billing: clock advanced"),
            Err(err) => tracing::warn!(error = %err, "billing: clock step failed"),
        }
    }
}

/// Brings the analytics projection up to date every `interval`; each round
/// is one transaction with its cursor, so a crash in between loses and
/// repeats nothing. Holds only a weak reference, so it ends with the
/// control plane.
async fn run_analytics(inner: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let config = &inner.config;
        match analytics::catch_up(
            &inner.db,
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
}

/// Expires timed-out pending ledger transfers every `interval`, so that
/// abandoned holds give their reservation back without anyone asking. Holds
/// only a weak reference, so it ends with the control plane.
async fn sweep_expired_holds(inner: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = inner.clock.now_ms();
        let max = inner.config.ledger_expiry_sweep_batch_max;
        match ledger::expire_due(&inner.db, now, max).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "ledger: expired pending transfers"),
            Err(err) => tracing::warn!(error = %err, "ledger: expiry sweep failed"),
        }
    }
}
