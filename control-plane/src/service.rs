//! [`ControlPlane`], the one handle every domain function and HTTP
//! handler takes: configuration, database, keys, clock, the ledger's group
//! commit and the content cache. It lives apart from `lib.rs`, which
//! starts the background loops, so domain modules can take the handle
//! without importing the code that drives them.

use std::sync::{Arc, Weak};

use crate::config::ControlPlaneConfig;
use crate::db::Db;
use crate::http::cache::SwrCache;
use crate::{clock, keys, ledger};

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
    content_cache: SwrCache,
}

/// What [`ControlPlane::assemble`] puts together.
pub(crate) struct Parts {
    pub(crate) config: ControlPlaneConfig,
    pub(crate) db: Db,
    pub(crate) keys: keys::KeyRing,
    pub(crate) ledger_writer: ledger::group::GroupCommit,
    pub(crate) content_cache: SwrCache,
}

/// A handle that does not keep the control plane alive, held by background
/// loops so that they end when the last [`ControlPlane`] is dropped.
pub(crate) struct WeakControlPlane(Weak<Inner>);

impl WeakControlPlane {
    /// The control plane, while anyone still holds it.
    pub(crate) fn upgrade(&self) -> Option<ControlPlane> {
        self.0.upgrade().map(|inner| ControlPlane { inner })
    }
}

impl ControlPlane {
    /// Puts the opened parts together with a fresh clock.
    pub(crate) fn assemble(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: parts.config,
                db: parts.db,
                keys: parts.keys,
                clock: clock::Clock::default(),
                ledger_writer: parts.ledger_writer,
                content_cache: parts.content_cache,
            }),
        }
    }

    /// A handle for a background loop (see [`WeakControlPlane`]).
    pub(crate) fn downgrade(&self) -> WeakControlPlane {
        WeakControlPlane(Arc::downgrade(&self.inner))
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

    /// The catalogue and course-page cache (see [`crate::http::cache`]).
    pub fn content_cache(&self) -> &SwrCache {
        &self.inner.content_cache
    }

    /// The signing keys, for issuing tokens and publishing the key set.
    pub fn keys(&self) -> &keys::KeyRing {
        &self.inner.keys
    }
}
