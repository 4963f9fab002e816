//! Ed25519 signing keys for access tokens. Keys live in the database so that
//! every control-plane replica signs with the same key set; the newest live
//! key signs, and every unretired key stays in the published set so tokens
//! signed just before a rotation still verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::EncodingKey;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sqlx::Row as _;

use crate::db::{now_ms, Db};
use crate::error::ControlPlaneError;
use crate::tokens::{Jwk, Jwks};

/// The signing key in use plus every key a verifier should accept.
pub struct KeyRing {
    signing_kid: String,
    signing: EncodingKey,
    published: Jwks,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads the unretired keys, creating the first one on a new database.
    ///
    /// # Errors
    /// Fails on database errors or a stored key that does not parse.
    pub async fn load_or_create(db: &Db) -> Result<Self, ControlPlaneError> {
        let mut rows = Self::live_rows(db).await?;
        if rows.is_empty() {
            Self::create(db).await?;
            rows = Self::live_rows(db).await?;
        }
        let (signing_kid, pkcs8, _) = rows
            .first()
            .cloned()
            .ok_or_else(|| ControlPlaneError::Crypto("no signing key after create".into()))?;
        // Parse once with ring to fail early on a corrupt row.
        Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|err| {
            ControlPlaneError::Crypto(format!("signing key {signing_kid}: {err}"))
        })?;
        let keys = rows
            .iter()
            .map(|(kid, _, public)| Jwk::ed25519(kid, &URL_SAFE_NO_PAD.encode(public)))
            .collect();
        Ok(Self {
            signing_kid,
            signing: EncodingKey::from_ed_der(&pkcs8),
            published: Jwks { keys },
        })
    }

    /// Generates and stores a new key; it signs from the next load on.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn create(db: &Db) -> Result<String, ControlPlaneError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|err| ControlPlaneError::Crypto(format!("generate key: {err}")))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|err| ControlPlaneError::Crypto(format!("parse new key: {err}")))?;
        let public = pair.public_key().as_ref().to_vec();
        assert_eq!(public.len(), 32, "ed25519 public keys are 32 bytes");
        let kid = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_pkcs8, public_key, created_at) \
             VALUES ($1, 'EdDSA', $2, $3, $4)",
        )
        .bind(&kid)
        .bind(pkcs8.as_ref().to_vec())
        .bind(public)
        .bind(now_ms())
        .execute(db.pool())
        .await?;
        Ok(kid)
    }

    async fn live_rows(db: &Db) -> Result<Vec<(String, Vec<u8>, Vec<u8>)>, ControlPlaneError> {
        let rows = sqlx::query(
            "SELECT kid, private_pkcs8, public_key FROM signing_keys \
             WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
        )
        .fetch_all(db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>(0)?,
                    row.try_get::<Vec<u8>, _>(1)?,
                    row.try_get::<Vec<u8>, _>(2)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(ControlPlaneError::from)
    }

    /// Id of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &EncodingKey {
        &self.signing
    }

    /// The public key set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Jwks {
        &self.published
    }
}
