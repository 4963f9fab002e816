//! The database handle. One code path serves SQLite (the embedded default)
//! and PostgreSQL through sqlx's `Any` driver; only the migrations differ per
//! dialect, and queries stick to the portable subset (text ids, BIGINT unix
//! milliseconds, `$n` placeholders).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::config::ControlPlaneConfig;
use crate::error::ControlPlaneError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// Embedded SQLite file in the data dir.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A pooled connection to the control-plane database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    kind: DbKind,
}

impl Db {
    /// Opens the pool described by `config`; an empty `database_url` means
    /// `lyceum.db` under the control plane's data dir, created if missing.
    ///
    /// # Errors
    /// Fails when the data dir cannot be created or the database refuses.
    pub async fn connect(config: &ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        sqlx::any::install_default_drivers();
        let url = if config.database_url.is_empty() {
            std::fs::create_dir_all(&config.data_dir).map_err(|err| ControlPlaneError::Config {
                key: "data_dir".to_owned(),
                reason: format!("cannot create {}: {err}", config.data_dir.display()),
            })?;
            format!(
                "sqlite://{}?mode=rwc",
                config.data_dir.join("lyceum.db").display()
            )
        } else {
            config.database_url.clone()
        };
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(config.db_connections_max)
            .acquire_timeout(Duration::from_millis(config.db_acquire_timeout_ms))
            .connect_with(options)
            .await?;
        Ok(Self { pool, kind })
    }

    /// Applies pending migrations for this dialect; running it twice is a no-op.
    ///
    /// # Errors
    /// Fails when a migration fails or an applied one was edited.
    pub async fn migrate(&self) -> Result<(), ControlPlaneError> {
        let migrator = match self.kind {
            DbKind::Sqlite => &SQLITE_MIGRATIONS,
            DbKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Round-trips a trivial query, for readiness probes.
    ///
    /// # Errors
    /// Fails when no connection can be had or the query fails.
    pub async fn ping(&self) -> Result<(), ControlPlaneError> {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&self.pool).await?;
        assert_eq!(one, 1, "database answered SELECT 1 with {one}");
        Ok(())
    }

    /// The pool, for queries in this crate.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Starts a transaction that writes: on SQLite with `BEGIN IMMEDIATE`,
    /// which takes the single write lock up front, so a read-then-write
    /// inside it can never be overtaken (and never fails half way with
    /// `SQLITE_BUSY` on the upgrade); on PostgreSQL a plain `BEGIN` (READ
    /// COMMITTED), callers lock the rows they read with `FOR UPDATE`
    /// ([`Db::lock_clause`]).
    ///
    /// # Errors
    /// Fails when no connection can be had or the database refuses.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.pool.begin().await,
        }
    }

    /// ` FOR UPDATE` on PostgreSQL, nothing on SQLite (whose write lock,
    /// taken by [`Db::begin_write`], already covers every row).
    pub fn lock_clause(&self) -> &'static str {
        match self.kind {
            DbKind::Sqlite => "",
            DbKind::Postgres => " FOR UPDATE",
        }
    }

    /// Closes every pooled connection; later queries fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the unix epoch, the timestamp unit of every table.
pub fn now_ms() -> i64 {
    crate::clock::unix_ms()
}
