//! Tenants, users and memberships: the minimum the foundation needs to sign
//! people in. Every lookup that returns tenant data takes the tenant id, so
//! no query can cross tenants by accident.

use serde::Serialize;
use sqlx::Row as _;

use crate::db::{now_ms, Db};
use crate::error::ControlPlaneError;
use crate::passwords;
use crate::tokens::Role;

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// User id.
    pub user_id: String,
    /// Sign-in email, unique fleet-wide.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Tenant this membership is in.
    pub tenant_id: String,
    /// Role in that tenant.
    pub role: Role,
}

/// A tenant as the fleet's operators see it in `GET /api/v1/tenants`:
/// who it is, how many memberships it has, and its live subscription.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct TenantSummary {
    /// Tenant id.
    pub id: String,
    /// Unique short name people join by.
    pub slug: String,
    /// Name shown to people.
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Memberships in the tenant, every role.
    pub members: i64,
    /// Plan of the subscription that is not canceled, if there is one.
    pub plan_id: Option<String>,
    /// Status of that subscription (`trialing`, `active`, `past_due`).
    pub subscription_status: Option<String>,
}

/// A page of every tenant, in id order after `after`. This is the one list
/// that crosses tenants on purpose: only operators, who run the whole
/// fleet, reach it (the route checks the role).
///
/// # Errors
/// Fails on database errors.
pub async fn list_tenants(
    db: &Db,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<TenantSummary>, ControlPlaneError> {
    // At most one subscription per tenant is not canceled (a partial
    // unique index), so the join adds no rows.
    Ok(sqlx::query_as::<_, TenantSummary>(
        "SELECT t.id, t.slug, t.name, t.created_at, \
         (SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.id) AS members, \
         s.plan_id, s.status AS subscription_status \
         FROM tenants t LEFT JOIN billing_subscriptions s \
         ON s.tenant_id = t.id AND s.status <> 'canceled' \
         WHERE t.id > $1 ORDER BY t.id LIMIT $2",
    )
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?)
}

/// Returns the tenant id for `slug`, creating the tenant if it is missing.
///
/// # Errors
/// Fails on database errors.
pub async fn ensure_tenant(db: &Db, slug: &str, name: &str) -> Result<String, ControlPlaneError> {
    if let Some(id) = tenant_by_slug(db, slug).await? {
        return Ok(id);
    }
    if let Some(id) = insert_tenant(db, slug, name).await? {
        return Ok(id);
    }
    // Another writer won the race; the stored row is the truth.
    tenant_by_slug(db, slug)
        .await?
        .ok_or_else(|| ControlPlaneError::Conflict(format!("tenant {slug} vanished")))
}

/// Inserts a tenant; `None` when the slug is taken.
async fn insert_tenant(
    db: &Db,
    slug: &str,
    name: &str,
) -> Result<Option<String>, ControlPlaneError> {
    let id = uuid::Uuid::new_v4().to_string();
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(&id)
    .bind(slug)
    .bind(name)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(id))
}

/// Hashes a password on the blocking pool (Argon2 is slow on purpose).
async fn hash_blocking(password: &str) -> Result<String, ControlPlaneError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|err| ControlPlaneError::Crypto(format!("hash task: {err}")))?
}

/// Creates a user with a membership, or returns the existing one unchanged.
///
/// # Errors
/// Fails on database errors.
pub async fn ensure_member(
    db: &Db,
    tenant_id: &str,
    email: &str,
    display_name: &str,
    password: &str,
    role: Role,
) -> Result<Member, ControlPlaneError> {
    if let Some(member) = find_member_by_email(db, email).await? {
        return Ok(member);
    }
    insert_member(db, tenant_id, email, display_name, password, role).await
}

/// Inserts a user and its membership in one transaction.
async fn insert_member(
    db: &Db,
    tenant_id: &str,
    email: &str,
    display_name: &str,
    password: &str,
    role: Role,
) -> Result<Member, ControlPlaneError> {
    let hash = hash_blocking(password).await?;
    let user_id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user_id)
    .bind(email)
    .bind(display_name)
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&user_id)
    .bind(tenant_id)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Member {
        user_id,
        email: email.to_owned(),
        display_name: display_name.to_owned(),
        tenant_id: tenant_id.to_owned(),
        role,
    })
}

/// Finds a user's first membership by email.
///
/// # Errors
/// Fails on database errors.
pub async fn find_member_by_email(
    db: &Db,
    email: &str,
) -> Result<Option<Member>, ControlPlaneError> {
    Ok(find_with_hash(db, email).await?.map(|(member, _)| member))
}

/// Checks an email and password and returns the member.
///
/// # Errors
/// [`ControlPlaneError::BadCredentials`] when either is wrong; the same error
/// for an unknown email, so that sign-in does not reveal who has an account.
pub async fn authenticate(
    db: &Db,
    email: &str,
    password: &str,
) -> Result<Member, ControlPlaneError> {
    let found = find_with_hash(db, email).await?;
    // Hash even for unknown emails so the timing does not reveal accounts.
    let (member, stored) = match found {
        Some(found) => (Some(found.0), found.1),
        None => (None, DUMMY_HASH.to_owned()),
    };
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || passwords::verify(&password, &stored))
        .await
        .map_err(|err| ControlPlaneError::Crypto(format!("verify task: {err}")))??;
    member.ok_or(ControlPlaneError::BadCredentials)
}

/// A valid Argon2id hash of a random string, verified against for unknown
/// emails.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vmgy0jO1Qb2x2nXgkT8C2mF0cJ7bWq0GdQ2fT1rI3vA";

/// Looks a member up by user id within one tenant.
///
/// # Errors
/// Fails on database errors.
pub async fn member_in_tenant(
    db: &Db,
    tenant_id: &str,
    user_id: &str,
) -> Result<Option<Member>, ControlPlaneError> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.display_name, m.tenant_id, m.role \
         FROM users u JOIN memberships m ON m.user_id = u.id \
         WHERE m.tenant_id = $1 AND u.id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| member_from_row(&row)).transpose()
}

async fn find_with_hash(
    db: &Db,
    email: &str,
) -> Result<Option<(Member, String)>, ControlPlaneError> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.display_name, m.tenant_id, m.role, u.password_hash \
         FROM users u JOIN memberships m ON m.user_id = u.id \
         WHERE u.email = $1 ORDER BY m.created_at, m.tenant_id LIMIT 1",
    )
    .bind(email)
    .fetch_optional(db.pool())
    .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let hash: String = row.try_get(5)?;
            Ok(Some((member_from_row(&row)?, hash)))
        }
    }
}

fn member_from_row(row: &sqlx::any::AnyRow) -> Result<Member, ControlPlaneError> {
    let role: String = row.try_get(4)?;
    Ok(Member {
        user_id: row.try_get(0)?,
        email: row.try_get(1)?,
        display_name: row.try_get(2)?,
        tenant_id: row.try_get(3)?,
        role: Role::parse(&role)?,
    })
}

/// Normalises and checks an email: trimmed, lowercased, one `@` with text on
/// both sides, no spaces.
///
/// # Errors
/// [`ControlPlaneError::BadRequest`] saying what is wrong.
pub fn normalise_email(email: &str) -> Result<String, ControlPlaneError> {
    let email = email.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(ControlPlaneError::BadRequest(format!(
            "{email:?} is not an email address"
        )));
    }
    Ok(email)
}

/// Checks a new password against `password_bytes_min` and
/// `credential_bytes_max`.
///
/// # Errors
/// [`ControlPlaneError::BadRequest`] naming the limit.
pub fn check_new_password(
    password: &str,
    config: &crate::ControlPlaneConfig,
) -> Result<(), ControlPlaneError> {
    let (min, max) = (config.password_bytes_min, config.credential_bytes_max);
    let len = password.len();
    let min_len = usize::try_from(min).unwrap_or(usize::MAX);
    let max_len = usize::try_from(max).unwrap_or(usize::MAX);
    if len < min_len || len > max_len {
        return Err(ControlPlaneError::BadRequest(format!(
            "passwords must be {min} to {max} bytes long (control_plane.password_bytes_min, control_plane.credential_bytes_max)"
        )));
    }
    Ok(())
}

/// Checks a tenant slug: 2 to 64 bytes of a-z, 0-9 and `-`.
///
/// # Errors
/// [`ControlPlaneError::BadRequest`] saying what is wrong.
pub fn check_slug(slug: &str) -> Result<(), ControlPlaneError> {
    let ok = (2..=64).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ControlPlaneError::BadRequest(format!(
            "tenant slug {slug:?} must be 2 to 64 characters of a-z, 0-9 and '-'"
        )))
    }
}

/// Creates a new user with a membership; refuses a taken email.
///
/// # Errors
/// [`ControlPlaneError::Conflict`] when the email is taken.
pub async fn create_member(
    db: &Db,
    tenant_id: &str,
    email: &str,
    display_name: &str,
    password: &str,
    role: Role,
) -> Result<Member, ControlPlaneError> {
    if find_member_by_email(db, email).await?.is_some() {
        return Err(ControlPlaneError::Conflict(format!(
            "an account with email {email} exists"
        )));
    }
    insert_member(db, tenant_id, email, display_name, password, role)
        .await
        .map_err(|err| match err {
            // Lost a race with another sign-up for the same email.
            ControlPlaneError::Database(ref db_err)
                if db_err
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                ControlPlaneError::Conflict(format!("an account with email {email} exists"))
            }
            other => other,
        })
}

/// Looks up a tenant id by slug.
///
/// # Errors
/// Fails on database errors.
pub async fn tenant_by_slug(db: &Db, slug: &str) -> Result<Option<String>, ControlPlaneError> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Creates a tenant; refuses a taken slug.
///
/// # Errors
/// [`ControlPlaneError::Conflict`] when the slug is taken.
pub async fn create_tenant(db: &Db, slug: &str, name: &str) -> Result<String, ControlPlaneError> {
    check_slug(slug)?;
    insert_tenant(db, slug, name)
        .await?
        .ok_or_else(|| ControlPlaneError::Conflict(format!("tenant {slug} exists")))
}

/// Replaces a user's password after checking the current one.
///
/// # Errors
/// [`ControlPlaneError::BadCredentials`] when `current` is wrong.
pub async fn change_password(
    db: &Db,
    email: &str,
    current: &str,
    new: &str,
) -> Result<(), ControlPlaneError> {
    let member = authenticate(db, email, current).await?;
    let hash = hash_blocking(new).await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(&member.user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
