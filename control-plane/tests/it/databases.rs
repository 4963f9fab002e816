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
            cp.db().close().await;
        }
        if let Some((admin_url, name)) = &self.postgres {
            let mut admin = sqlx::postgres::PgConnectOptions::from_str(admin_url)
                .expect("postgres url")
                .connect()
                .await
                .expect("reconnect to PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop test database");
        }
    }
}
