//! The control plane is Lyceum's system of record: who people are, which
//! tenant they belong to, and (in later issues) courses, progress, billing and
//! the ledger. It is the only crate that talks to a SQL database, so every
//! other crate stays storage-agnostic. Edge nodes never call it on a learner's
//! hot path: they verify the Ed25519 access tokens it signs with the public
//! key set it publishes.

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod identity;
pub mod keys;
pub mod passwords;
pub mod seed;
pub mod sessions;
pub mod tokens;

use std::sync::Arc;

pub use config::ControlPlaneConfig;
pub use db::{Db, DbKind};
pub use error::{ControlPlaneError, ErrorCode};

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
}

impl ControlPlane {
    /// Connects to the database, applies migrations and loads (or creates) the
    /// token signing key.
    ///
    /// # Errors
    /// Fails when the database cannot be reached or migrated, or when the
    /// signing key in the database cannot be parsed.
    pub async fn open(config: ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        config.validate()?;
        let db = Db::connect(&config).await?;
        db.migrate().await?;
        let keys = keys::KeyRing::load_or_create(&db).await?;
        Ok(Self {
            inner: Arc::new(Inner { config, db, keys }),
        })
    }

    /// The validated configuration this control plane runs with.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.inner.config
    }

    /// The database handle, for readiness probes and tests.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The signing keys, for issuing tokens and publishing the key set.
    pub fn keys(&self) -> &keys::KeyRing {
        &self.inner.keys
    }
}
