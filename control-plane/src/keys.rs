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
use std::sync::{Arc, RwLock};

use crate::tokens::{Jwk, Jwks, SigningKey, TokenVerifier};

/// The signing key in use plus every key a verifier should accept. Shared
/// by every request; rotation swaps the whole set at once.
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
}

/// One consistent snapshot of the keys.
pub struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    published: Jwks,
    verifier: TokenVerifier,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.snapshot().signing_kid)
            .finish_non_exhaustive()
    }
}

impl KeySet {
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

    /// A verifier for every published key.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl SigningKey for KeyRing {
    fn with_signing_key<R>(&self, sign: impl FnOnce(&str, &EncodingKey) -> R) -> R {
        let set = self.snapshot();
        sign(set.signing_kid(), set.signing_key())
    }
}

impl KeyRing {
    /// Loads the unretired keys, creating the first one on a new database.
    ///
    /// # Errors
    /// Fails on database errors or a stored key that does not parse.
    pub async fn load_or_create(db: &Db) -> Result<Self, ControlPlaneError> {
        let set = Self::load_set(db, true).await?;
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Rereads the keys from the database (after a rotation by any replica).
    ///
    /// # Errors
    /// Fails on database errors or a stored key that does not parse.
    pub async fn reload(&self, db: &Db) -> Result<(), ControlPlaneError> {
        let set = Self::load_set(db, true).await?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(())
    }

    /// The current keys. Cheap: one `Arc` clone.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Creates a new signing key; the previous ones stay published so tokens
    /// they signed keep verifying until they are retired.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn rotate(&self, db: &Db) -> Result<String, ControlPlaneError> {
        let kid = Self::create(db).await?;
        self.reload(db).await?;
        Ok(kid)
    }

    /// Stops publishing `kid`; tokens it signed stop verifying. The key that
    /// signs new tokens cannot be retired (rotate first).
    ///
    /// # Errors
    /// [`ControlPlaneError::NotFound`] for an unknown or already retired key,
    /// [`ControlPlaneError::Conflict`] for the current signing key.
    pub async fn retire(&self, db: &Db, kid: &str) -> Result<(), ControlPlaneError> {
        if self.snapshot().signing_kid == kid {
            return Err(ControlPlaneError::Conflict(
                "the current signing key cannot be retired; rotate first".into(),
            ));
        }
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL",
        )
        .bind(now_ms())
        .bind(kid)
        .execute(db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(ControlPlaneError::NotFound(format!("signing key {kid}")));
        }
        self.reload(db).await
    }

    async fn load_set(db: &Db, create_if_empty: bool) -> Result<KeySet, ControlPlaneError> {
        let mut rows = Self::live_rows(db).await?;
        if rows.is_empty() && create_if_empty {
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
        let published = Jwks { keys };
        let verifier = TokenVerifier::new(&published)?;
        Ok(KeySet {
            signing_kid,
            signing: EncodingKey::from_ed_der(&pkcs8),
            published,
            verifier,
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
        // Newest key signs; keep creation times strictly increasing so two
        // keys made in the same millisecond still have an order.
        let newest: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(created_at), 0) FROM signing_keys")
                .fetch_one(db.pool())
                .await?;
        let created_at = now_ms().max(newest + 1);
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_pkcs8, public_key, created_at) \
             VALUES ($1, 'EdDSA', $2, $3, $4)",
        )
        .bind(&kid)
        .bind(pkcs8.as_ref().to_vec())
        .bind(public)
        .bind(created_at)
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
}
