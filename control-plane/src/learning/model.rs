//! Learning's shared checks: id fields and tenant membership. Of its
//! siblings it imports only `error`, so every learning file can use it
//! without an import circle through `learning/mod.rs`.

use super::error::{LearningError, ID_BYTES_MAX};

/// Longest cohort name, in characters.
pub const COHORT_NAME_CHARS_MAX: usize = 100;

/// Checks an id field: 1 to [`ID_BYTES_MAX`] bytes of visible ASCII.
///
/// # Errors
/// [`LearningError::Invalid`] naming the field.
pub fn check_id(field: &str, id: &str) -> Result<(), LearningError> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LearningError::Invalid(format!(
            "{field} must be 1 to {ID_BYTES_MAX} bytes of visible ASCII"
        )));
    }
    Ok(())
}

/// Whether `user` is a member of `tenant`.
///
/// # Errors
/// Database failures.
pub(crate) async fn is_member<'e, E>(
    executor: E,
    tenant: &str,
    user: &str,
) -> Result<bool, LearningError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let found: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_optional(executor)
            .await?;
    Ok(found.is_some())
}
