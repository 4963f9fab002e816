//! Access tokens: EdDSA-signed JWTs that name the user, the tenant and the
//! role. The control plane issues them; edge nodes verify them locally with
//! the published key set, so a learner's run never waits on the control
//! plane.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ControlPlaneError;
use crate::keys::KeyRing;

/// The `iss` claim of every token we sign.
pub const ISSUER: &str = "lyceum-control-plane";

/// What a person may do within a tenant (operator is fleet-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes courses and runs code.
    Learner,
    /// Authors courses and runs live classes.
    Instructor,
    /// Runs the fleet: control plane, chaos drills, dashboards.
    Operator,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 3] = [Role::Learner, Role::Instructor, Role::Operator];

    /// The role as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learner => "learner",
            Self::Instructor => "instructor",
            Self::Operator => "operator",
        }
    }

    /// Parses the stored form.
    ///
    /// # Errors
    /// [`ControlPlaneError::BadRequest`] for an unknown role.
    pub fn parse(text: &str) -> Result<Self, ControlPlaneError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| ControlPlaneError::BadRequest(format!("unknown role {text:?}")))
    }
}

/// The claims inside an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Tenant id the token acts within.
    pub tid: String,
    /// Role within that tenant.
    pub role: Role,
    /// Email, for display and logs.
    pub email: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds.
    pub exp: u64,
}

/// One public key in the published key set (RFC 8037 OKP form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type, `OKP`.
    pub kty: String,
    /// Curve, `Ed25519`.
    pub crv: String,
    /// Key id, matched against the token header.
    pub kid: String,
    /// Base64url public key.
    pub x: String,
    /// Algorithm, `EdDSA`.
    pub alg: String,
    /// Use, `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// An Ed25519 signature key.
    pub fn ed25519(kid: &str, x: &str) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.into(),
            x: x.into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }
}

/// The key set published at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Every key a verifier should accept.
    pub keys: Vec<Jwk>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Signs an access token for a member that lives for `ttl_seconds`.
///
/// # Errors
/// [`ControlPlaneError::Crypto`] if signing fails.
pub fn issue(
    keys: &KeyRing,
    user_id: &str,
    tenant_id: &str,
    role: Role,
    email: &str,
    ttl_seconds: u64,
) -> Result<String, ControlPlaneError> {
    let iat = unix_now();
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: user_id.to_owned(),
        tid: tenant_id.to_owned(),
        role,
        email: email.to_owned(),
        iat,
        exp: iat.saturating_add(ttl_seconds),
    };
    let set = keys.snapshot();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(set.signing_kid().to_owned());
    jsonwebtoken::encode(&header, &claims, set.signing_key())
        .map_err(|err| ControlPlaneError::Crypto(format!("sign token: {err}")))
}

/// Verifies tokens against a published key set, without any I/O.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    /// Builds a verifier from a key set; keys that are not Ed25519 are skipped.
    ///
    /// # Errors
    /// [`ControlPlaneError::BadToken`] when a key's `x` is not valid base64url.
    pub fn new(jwks: &Jwks) -> Result<Self, ControlPlaneError> {
        let mut keys = HashMap::new();
        for jwk in jwks
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
        {
            let key = DecodingKey::from_ed_components(&jwk.x)
                .map_err(|err| ControlPlaneError::BadToken(format!("key {}: {err}", jwk.kid)))?;
            keys.insert(jwk.kid.clone(), key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Ok(Self { keys, validation })
    }

    /// How many keys this verifier accepts.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks signature, issuer and expiry and returns the claims.
    ///
    /// # Errors
    /// [`ControlPlaneError::BadToken`] saying what is wrong.
    pub fn verify(&self, token: &str) -> Result<Claims, ControlPlaneError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| ControlPlaneError::BadToken(format!("header: {err}")))?;
        let kid = header
            .kid
            .ok_or_else(|| ControlPlaneError::BadToken("no kid in header".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| ControlPlaneError::UnknownKey(kid.clone()))?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| ControlPlaneError::BadToken(err.to_string()))
    }
}

/// Pulls the token out of an `Authorization: Bearer ...` header value.
///
/// # Errors
/// [`ControlPlaneError::BadToken`] when the scheme is not Bearer.
pub fn bearer(header_value: Option<&str>) -> Result<&str, ControlPlaneError> {
    let value = header_value
        .ok_or_else(|| ControlPlaneError::BadToken("no authorization header".into()))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ControlPlaneError::BadToken("authorization is not a bearer token".into()))
}
