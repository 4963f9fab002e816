//! Test databases: a temporary SQLite file, or a fresh PostgreSQL database
//! dropped again at the end of the test.

use std::str::FromStr as _;

use control_plane::{ControlPlane, ControlPlaneConfig};
use sqlx::ConnectOptions as _;

/// Variable naming the PostgreSQL server the suite may create databases on.
pub const POSTGRES_URL_VAR: &str = "LYCEUM_TEST_DATABASE_URL";

/// Which engine a test case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Both engines, in the order tests run them.
pub const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

/// A database that lives as long as the value.
pub struct TestDb {
    pub config: ControlPlaneConfig,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(engine: Engine) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ControlPlaneConfig {
            data_dir: dir.path().join("control-plane"),
            ..ControlPlaneConfig::default()
        };
        let mut postgres = None;
        if engine == Engine::Postgres {
            let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                panic!(
                    "{POSTGRES_URL_VAR} is not set: run the suite through scripts/test, \
                     which starts PostgreSQL and sets it"
                )
            });
            let name = format!("lyceum_t_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)
                .expect("postgres url")
                .connect()
                .await
                .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at {admin_url}: {err}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(base, _)| base.to_owned())
                .expect("url with a database name");
            config.database_url = format!("{base}/{name}");
            postgres = Some((admin_url, name));
        }
        Self {
            config,
            _dir: dir,
            postgres,
        }
    }

    pub async fn open(&self) -> ControlPlane {
        ControlPlane::open(self.config.clone())
            .await
            .expect("open control plane")
    }

    /// Drops the PostgreSQL database; call at the end of each test.
    pub async fn cleanup(self, cps: Vec<ControlPlane>) {
        for cp in cps {
            // Bounded: a connection still checked out would block close().
            if tokio::time::timeout(std::time::Duration::from_secs(5), cp.db().close())
                .await
                .is_err()
            {
                eprintln!("warning: the control plane's pool did not close within 5 s");
            }
        }
        if let Some((admin_url, name)) = &self.postgres {
            let mut admin = sqlx::postgres::PgConnectOptions::from_str(admin_url)
                .expect("postgres url")
                .connect()
                .await
                .expect("reconnect to PostgreSQL");
            // Our pool is closed; a backend of PostgreSQL's own (autovacuum)
            // may still hold the database for a moment, so retry briefly.
            let mut last_error = None;
            for _ in 0..6 {
                match sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut admin)
                    .await
                {
                    Ok(_) => return,
                    Err(err) => last_error = Some(err),
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let holders: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT usename::text, backend_type, coalesce(query, '') FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(name)
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
            // PostgreSQL's autovacuum may hold a fresh database for a while
            // (each DROP waits up to 5 s for it); a leftover test database is
            // harmless, so say so instead of failing the test it served.
            eprintln!(
                "warning: test database {name} left behind: {last_error:?}; held by {holders:?}"
            );
        }
    }
}
