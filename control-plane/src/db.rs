//! The database handle. One code path serves SQLite (the embedded default)
//! and PostgreSQL through sqlx's `Any` driver; only the migrations differ per
//! dialect, and queries stick to the portable subset (text ids, BIGINT unix
//! milliseconds, `$n` placeholders).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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
    health: Arc<WriteHealth>,
}

/// What the readiness writes ([`Db::ping_write`]) last saw, shared with
/// the pool's acquire hook. A connection that lived through a time when
/// the database refused writes may carry state from it (SQLite's pager
/// left read-only, sqlx's transaction depth left at 1 by a failed COMMIT
/// whose ROLLBACK failed too), and would fail every later write it is
/// given. So while writes fail, and afterwards for every connection older
/// than the recovery, the pool closes a connection instead of handing it
/// out, and opens a fresh one.
#[derive(Debug, Default)]
struct WriteHealth {
    /// The last readiness write failed.
    failing: AtomicBool,
    /// When a readiness write first succeeded after failing.
    recovered_at: Mutex<Option<Instant>>,
}

impl WriteHealth {
    /// Whether a connection of this age should be closed, not used.
    fn retire(&self, age: Duration) -> bool {
        self.failing.load(Ordering::Relaxed)
            || self
                .recovered_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some_and(|at| age > at.elapsed())
    }

    fn record(&self, ok: bool) {
        if !ok {
            self.failing.store(true, Ordering::Relaxed);
        } else if self.failing.swap(false, Ordering::Relaxed) {
            *self
                .recovered_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
    }
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
        let health = Arc::new(WriteHealth::default());
        let hook = health.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(config.db_connections_max)
            .acquire_timeout(Duration::from_millis(config.db_acquire_timeout_ms))
            .before_acquire(move |_conn, meta| {
                let keep = !hook.retire(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, kind, health })
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

    /// Rewrites the readiness row in a write transaction, for readiness
    /// probes: a database that answers reads but refuses writes (a full
    /// disk, a read-only file system, a drill's `database-down`) cannot
    /// record what edges report, so it is not ready. While it fails, and
    /// for the connections older than its recovery, the pool opens fresh
    /// connections rather than hand out ones that lived through it.
    ///
    /// # Errors
    /// Fails when no connection can be had or the write is refused.
    pub async fn ping_write(&self, now_ms: i64) -> Result<(), ControlPlaneError> {
        let outcome = self.write_probe(now_ms).await;
        self.health.record(outcome.is_ok());
        outcome
    }

    async fn write_probe(&self, now_ms: i64) -> Result<(), ControlPlaneError> {
        let mut tx = self.begin_write().await?;
        let written = sqlx::query("UPDATE readiness_probe SET written_at = $1 WHERE id = 1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        assert_eq!(written, 1, "the readiness row is made by migration 0014");
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
