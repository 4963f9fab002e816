//! The process's rustls crypto provider, which webrtc's DTLS layer needs.
//! A leaf: imports nothing from the crate.

/// Makes `ring` the process's default rustls crypto provider unless one is
/// set already. The DTLS layer of `webrtc` asks rustls for the process
/// default; in a build where both of rustls's providers are compiled in (the
/// workspace's features unify so) rustls cannot pick one itself and panics
/// mid-handshake. `Sfu::new` calls this; a process that makes its own
/// peer connections first (a test client) calls it too.
pub fn ensure_crypto_provider() {
    // An error means a provider is installed already, which is all we need.
    let _installed = rustls::crypto::ring::default_provider().install_default();
}
