//! Access tokens: EdDSA-signed JWTs that name the user, the tenant and the
//! role (and, when issued at sign-in or refresh, the session: `sid`). The
//! control plane issues them; edge nodes verify them locally with the
//! published key set, so a learner's run never waits on the control plane.
//!
//! Live-class tickets are JWTs signed with the same keys but for another
//! audience ([`LIVE_AUDIENCE`]): one class, one person, one class role, for
//! a few hours. The edge that hosts the class verifies them offline with
//! [`TokenVerifier::verify_live_ticket`]. The two never stand in for each
//! other: an access token has no `aud` and a ticket must have this one,
//! and a ticket's `aud` makes [`TokenVerifier::verify`] refuse it.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ControlPlaneError;

/// What holds the key that signs new tokens (the control plane's key ring,
/// `keys::KeyRing`). A trait, so that this file, which edges use to verify
/// tokens, does not depend on how keys are stored and rotated.
pub trait SigningKey {
    /// Calls `sign` with the id and the key that sign now, both from one
    /// consistent snapshot.
    fn with_signing_key<R>(&self, sign: impl FnOnce(&str, &EncodingKey) -> R) -> R;
}

/// `claims` as a JWT signed with the current key, naming its `kid`.
fn sign<T: Serialize>(
    keys: &impl SigningKey,
    claims: &T,
) -> Result<String, jsonwebtoken::errors::Error> {
    keys.with_signing_key(|kid, key| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key)
    })
}

/// The `iss` claim of every token we sign.
pub const ISSUER: &str = "lyceum-control-plane";

/// The `aud` claim of every live-class ticket.
pub const LIVE_AUDIENCE: &str = "lyceum-live";

/// What a person may do within a tenant (operator is fleet-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// [`Claims`] plus the session an access token was issued for: sign-in
/// and refresh put the session's id (its refresh-token family) in `sid`,
/// so that `POST /api/v1/auth/password` can end every session of the user
/// but the caller's. It is a claim beside the others rather than a field
/// of [`Claims`], which edges build and read and have no use for it;
/// tokens without it (the dev tokens `lyceum dev` hands out, tests') name
/// no session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SessionClaims {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// Someone's part in one live class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassRole {
    /// Runs the class: an instructor of the class's tenant.
    Instructor,
    /// Takes part: enrolled (active) in the class's course.
    Learner,
}

impl ClassRole {
    /// The role as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instructor => "instructor",
            Self::Learner => "learner",
        }
    }
}

/// The claims inside a live-class ticket (`POST /api/v1/live/tickets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTicketClaims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// Audience, always [`LIVE_AUDIENCE`].
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Tenant id of the class.
    pub tid: String,
    /// Class id: the id of the published `live_classroom` unit.
    pub cls: String,
    /// The holder's part in the class.
    pub crole: ClassRole,
    /// The holder's name as the rest of the class sees it: their display
    /// name, never their email address (classmates see it in the roster,
    /// presence and chat).
    pub name: String,
    /// The region whose edge should host the class (the unit's), if any.
    pub reg: Option<String>,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds.
    pub exp: u64,
}

/// One public key in the published key set (RFC 8037 OKP form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// Every key a verifier should accept.
    pub keys: Vec<Jwk>,
}

fn unix_now() -> u64 {
    u64::try_from(crate::clock::unix_ms() / 1000).unwrap_or_default()
}

/// Signs an access token for a member that lives for `ttl_seconds` and
/// names no session (see [`issue_for_session`]).
///
/// # Errors
/// [`ControlPlaneError::Crypto`] if signing fails.
pub fn issue(
    keys: &impl SigningKey,
    user_id: &str,
    tenant_id: &str,
    role: Role,
    email: &str,
    ttl_seconds: u64,
) -> Result<String, ControlPlaneError> {
    issue_for_session(keys, user_id, tenant_id, role, email, None, ttl_seconds)
}

/// Signs an access token as [`issue`] does, naming the session (the
/// refresh-token family) it was issued for, when there is one.
///
/// # Errors
/// [`ControlPlaneError::Crypto`] if signing fails.
pub fn issue_for_session(
    keys: &impl SigningKey,
    user_id: &str,
    tenant_id: &str,
    role: Role,
    email: &str,
    session_id: Option<&str>,
    ttl_seconds: u64,
) -> Result<String, ControlPlaneError> {
    let iat = unix_now();
    let claims = SessionClaims {
        claims: Claims {
            iss: ISSUER.to_owned(),
            sub: user_id.to_owned(),
            tid: tenant_id.to_owned(),
            role,
            email: email.to_owned(),
            iat,
            exp: iat.saturating_add(ttl_seconds),
        },
        sid: session_id.map(str::to_owned),
    };
    sign(keys, &claims).map_err(|err| ControlPlaneError::Crypto(format!("sign token: {err}")))
}

/// What a live-class ticket is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFor<'a> {
    /// User id.
    pub user_id: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Class id.
    pub class_id: &'a str,
    /// Part in the class.
    pub class_role: ClassRole,
    /// Name shown to the class: the display name, never an email.
    pub name: &'a str,
    /// Region of the class, if any.
    pub region: Option<&'a str>,
}

/// Signs a live-class ticket that lives for `ttl_seconds`, with the key
/// that signs access tokens.
///
/// # Errors
/// [`ControlPlaneError::Crypto`] if signing fails.
pub fn issue_live_ticket(
    keys: &impl SigningKey,
    ticket: &TicketFor<'_>,
    ttl_seconds: u64,
) -> Result<(String, LiveTicketClaims), ControlPlaneError> {
    let iat = unix_now();
    let claims = LiveTicketClaims {
        iss: ISSUER.to_owned(),
        aud: LIVE_AUDIENCE.to_owned(),
        sub: ticket.user_id.to_owned(),
        tid: ticket.tenant_id.to_owned(),
        cls: ticket.class_id.to_owned(),
        crole: ticket.class_role,
        name: ticket.name.to_owned(),
        reg: ticket.region.map(str::to_owned),
        iat,
        exp: iat.saturating_add(ttl_seconds),
    };
    let token = sign(keys, &claims)
        .map_err(|err| ControlPlaneError::Crypto(format!("sign ticket: {err}")))?;
    Ok((token, claims))
}

/// Verifies tokens against a published key set, without any I/O.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    live_validation: Validation,
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
        // Access tokens carry no `aud`; jsonwebtoken refuses a token that
        // has one when no audience is expected, so a ticket is not one.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let mut live_validation = validation.clone();
        live_validation.set_audience(&[LIVE_AUDIENCE]);
        live_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            keys,
            validation,
            live_validation,
        })
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
        self.decode(token, &self.validation)
    }

    /// Checks a token as [`TokenVerifier::verify`] does and also answers
    /// the session it was issued for, if it names one.
    ///
    /// # Errors
    /// [`ControlPlaneError::BadToken`] saying what is wrong.
    pub fn verify_with_session(
        &self,
        token: &str,
    ) -> Result<(Claims, Option<String>), ControlPlaneError> {
        let SessionClaims { claims, sid } = self.decode(token, &self.validation)?;
        Ok((claims, sid))
    }

    /// Checks a live-class ticket: signature, issuer, audience
    /// ([`LIVE_AUDIENCE`]) and expiry, and returns its claims. An access
    /// token is refused (it has no audience).
    ///
    /// # Errors
    /// [`ControlPlaneError::UnknownKey`] when the ticket names a key this
    /// verifier does not have (refetch the key set and retry),
    /// [`ControlPlaneError::BadToken`] saying what is wrong otherwise.
    pub fn verify_live_ticket(&self, token: &str) -> Result<LiveTicketClaims, ControlPlaneError> {
        let claims: LiveTicketClaims = self.decode(token, &self.live_validation)?;
        // The library checked `aud` against the set; say it plainly too.
        if claims.aud != LIVE_AUDIENCE {
            return Err(ControlPlaneError::BadToken(
                "not a live-class ticket".into(),
            ));
        }
        Ok(claims)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, ControlPlaneError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| ControlPlaneError::BadToken(format!("header: {err}")))?;
        let kid = header
            .kid
            .ok_or_else(|| ControlPlaneError::BadToken("no kid in header".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| ControlPlaneError::UnknownKey(kid.clone()))?;
        jsonwebtoken::decode::<T>(token, key, validation)
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
