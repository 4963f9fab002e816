//! Taking the control plane's PostgreSQL database away and giving it back,
//! for the operators' chaos drills (`database-down`): the database refuses
//! new connections (`ALLOW_CONNECTIONS false`) and the ones open are ended,
//! which is what a control plane sees when its database server goes away,
//! without stopping a server other databases may share. It lives here
//! because only this crate talks SQL; the dev supervisor calls it, with the
//! deadline kept on its side, so a drill that dies leaves nothing down.
//!
//! The statements run on the server's maintenance database (`postgres`),
//! since the target itself refuses connections while it is down, as the
//! control plane's own role: PostgreSQL lets a database's owner change its
//! `ALLOW_CONNECTIONS` and end sessions of the same role.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::ConnectOptions as _;

/// Longest the connection to the maintenance database, and each statement,
/// may take: a drill's fault must not hang on a server that is itself gone.
pub const OUTAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The database every PostgreSQL server has, where the statements run.
const MAINTENANCE_DATABASE: &str = "postgres";

/// Why a database could not be taken away or given back.
#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    /// The URL is not a PostgreSQL URL naming a database.
    #[error("not a PostgreSQL URL with a database name: {0}")]
    BadUrl(String),
    /// The database's name needs quoting we do not do (only letters,
    /// digits and `_` are taken).
    #[error("database name {0:?}: only ASCII letters, digits and _ are taken")]
    BadName(String),
    /// The server could not be reached, or a statement failed.
    #[error("PostgreSQL refused the {what}: {reason}")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// The server's or the driver's words.
        reason: String,
    },
}

impl OutageError {
    /// The stable string code of the error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BadUrl(_) => "outage_bad_url",
            Self::BadName(_) => "outage_bad_name",
            Self::Sql { .. } => "outage_failed",
        }
    }
}

/// Makes the database of `database_url` refuse (`allowed = false`) or
/// accept (`true`) connections; refusing also ends every open session of
/// it but this one's. Both are idempotent.
///
/// # Errors
/// [`OutageError`] when the URL names no database, or the server refuses.
pub async fn set_postgres_connections(
    database_url: &str,
    allowed: bool,
) -> Result<(), OutageError> {
    let options = sqlx::postgres::PgConnectOptions::from_str(database_url)
        .map_err(|err| OutageError::BadUrl(err.to_string()))?;
    let name = options
        .get_database()
        .ok_or_else(|| OutageError::BadUrl("the URL names no database".to_owned()))?
        .to_owned();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(OutageError::BadName(name));
    }
    let sql = |what: &'static str| move |reason: String| OutageError::Sql { what, reason };
    let maintenance = options.database(MAINTENANCE_DATABASE);
    let mut admin = tokio::time::timeout(OUTAGE_TIMEOUT, maintenance.connect())
        .await
        .map_err(|_| sql("connection")("timed out".to_owned()))?
        .map_err(|err| sql("connection")(err.to_string()))?;
    let alter = format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allowed}");
    tokio::time::timeout(OUTAGE_TIMEOUT, sqlx::query(&alter).execute(&mut admin))
        .await
        .map_err(|_| sql("ALTER DATABASE")("timed out".to_owned()))?
        .map_err(|err| sql("ALTER DATABASE")(err.to_string()))?;
    if !allowed {
        let end = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .execute(&mut admin);
        tokio::time::timeout(OUTAGE_TIMEOUT, end)
            .await
            .map_err(|_| sql("ending of sessions")("timed out".to_owned()))?
            .map_err(|err| sql("ending of sessions")(err.to_string()))?;
    }
    Ok(())
}
