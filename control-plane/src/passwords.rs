//! Password storage with Argon2id (the `argon2` crate's defaults, which follow
//! the OWASP recommendation). Hashing is deliberately slow, so callers on an
//! async runtime run it on the blocking pool.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::ControlPlaneError;

/// Hashes `password` into a self-describing PHC string.
///
/// # Errors
/// Fails only if Argon2 rejects its own parameters, which is a bug.
pub fn hash(password: &str) -> Result<String, ControlPlaneError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| ControlPlaneError::Crypto(format!("argon2 hash: {err}")))
}

/// Checks `password` against a stored PHC string.
///
/// # Errors
/// [`ControlPlaneError::BadCredentials`] on mismatch, and
/// [`ControlPlaneError::Crypto`] when the stored hash is unreadable.
pub fn verify(password: &str, stored: &str) -> Result<(), ControlPlaneError> {
    let parsed = PasswordHash::new(stored)
        .map_err(|err| ControlPlaneError::Crypto(format!("stored hash: {err}")))?;
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .map_err(|_| ControlPlaneError::BadCredentials)
}
