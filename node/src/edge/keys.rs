//! The control plane's public keys as this edge knows them, and the
//! verification of access tokens and live-class tickets against them.
//! Tokens are verified locally; the key set is fetched at start, refreshed
//! periodically by the wiring, and refetched when a token names a key we
//! have not seen.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use control_plane::tokens::{self, Jwks, TokenVerifier};

use crate::config::EdgeConfig;

/// The control plane's public keys as this edge knows them. Tokens are
/// verified locally; only a token signed by a key we have not seen (the set
/// rotated since the last fetch) makes us refetch, at most once per
/// `edge.key_refetch_min_interval_ms`.
pub(crate) struct KeyCache {
    verifier: RwLock<Option<Arc<TokenVerifier>>>,
    client: reqwest::Client,
    url: String,
    /// The link as fault injection sees it.
    link: crate::control_plane_link::ControlPlaneLink,
    refetch_min_interval: Duration,
    /// When the last refetch triggered by an unknown key ran.
    last_refetch: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    /// No key set loaded yet: the node is not ready, the token may be fine.
    #[error("this node has not loaded the control plane's token keys yet")]
    NoKeys,
    /// The token is bad.
    #[error(transparent)]
    Rejected(control_plane::ControlPlaneError),
}

impl KeyCache {
    /// An empty cache for the control plane `edge` names; nothing is
    /// fetched until [`KeyCache::fetch`].
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub(crate) fn new(
        edge: &EdgeConfig,
        link: crate::control_plane_link::ControlPlaneLink,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(edge.control_plane_timeout_ms))
            .build()
            .context("http client")?;
        Ok(Self {
            verifier: RwLock::new(None),
            client,
            link,
            url: format!(
                "{}/.well-known/jwks.json",
                edge.control_plane_url.trim_end_matches('/')
            ),
            refetch_min_interval: Duration::from_millis(edge.key_refetch_min_interval_ms),
            last_refetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The key set in use; an `Arc`, so a request does not copy it.
    pub(crate) fn current(&self) -> Option<Arc<TokenVerifier>> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn install(&self, fresh: TokenVerifier) {
        *self
            .verifier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(fresh));
    }

    /// Fetches the key set now and installs it.
    pub(crate) async fn fetch(&self) -> Result<(), String> {
        self.link.check().await?;
        self.install(fetch_keys(&self.client, &self.url).await?);
        Ok(())
    }

    /// Refetches unless another refetch happened within the minimum interval.
    /// Holding the lock across the fetch makes concurrent callers share one.
    async fn refetch_if_due(&self) {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_min_interval) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
        let fetched = match self.link.check().await {
            Ok(()) => fetch_keys(&self.client, &self.url).await,
            Err(cut) => Err(cut),
        };
        match fetched {
            Ok(fresh) => self.install(fresh),
            Err(err) => tracing::warn!(error = %err, "key set refetch failed"),
        }
    }

    /// Verifies a live-class ticket the same way, refetching the key set
    /// once when it names an unknown key; the error is for the client.
    pub(crate) async fn verify_ticket(
        &self,
        ticket: &str,
    ) -> Result<tokens::LiveTicketClaims, String> {
        let verifier = self
            .current()
            .ok_or("this node has not loaded the control plane's token keys yet")?;
        match verifier.verify_live_ticket(ticket) {
            Err(control_plane::ControlPlaneError::UnknownKey(_)) => {
                self.refetch_if_due().await;
                let verifier = self
                    .current()
                    .ok_or("this node has not loaded the control plane's token keys yet")?;
                verifier
                    .verify_live_ticket(ticket)
                    .map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// Verifies an access token, refetching the key set once when it
    /// names an unknown key.
    pub(crate) async fn verify(&self, token: &str) -> Result<tokens::Claims, VerifyError> {
        let verifier = self.current().ok_or(VerifyError::NoKeys)?;
        match verifier.verify(token) {
            Err(control_plane::ControlPlaneError::UnknownKey(kid)) => {
                tracing::info!(
                    kid,
                    "token signed by an unknown key; refetching the key set"
                );
                self.refetch_if_due().await;
                let verifier = self.current().ok_or(VerifyError::NoKeys)?;
                verifier.verify(token).map_err(VerifyError::Rejected)
            }
            other => other.map_err(VerifyError::Rejected),
        }
    }
}

async fn fetch_keys(client: &reqwest::Client, url: &str) -> Result<TokenVerifier, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| format!("cannot reach {url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let jwks: Jwks = response
        .json()
        .await
        .map_err(|err| format!("bad key set from {url}: {err}"))?;
    let verifier = TokenVerifier::new(&jwks).map_err(|err| err.to_string())?;
    if verifier.key_count() == 0 {
        return Err(format!("{url} published no Ed25519 keys"));
    }
    Ok(verifier)
}
