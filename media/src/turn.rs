//! TURN for people whose network lets no direct path through (symmetric
//! NAT, UDP blocked to anything but a relay): each edge runs a TURN server
//! next to its SFU, on one UDP port, and hands each live session
//! time-limited credentials in the usual TURN REST scheme (the user name is
//! `<expiry unix seconds>:<user id>`, the password the base64 HMAC-SHA1 of
//! the user name under a shared secret), so nothing is stored per user and
//! a leaked credential stops working at its expiry.
//!
//! *Why embedded.* The `webrtc` stack already carries a TURN server (the
//! `turn` crate of the same project, pinned with it); running it inside the
//! edge means one process, one port and one secret per edge, and the secret
//! never leaves the process (it is made at start unless configured). A
//! deployment that wants a dedicated TURN fleet runs coturn beside each
//! edge with `use-auth-secret` and the same `media.turn_secret`, and lists
//! it in `media.turn_urls`: the credentials are the same scheme.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use webrtc::turn::auth::{generate_auth_key, AuthHandler};
use webrtc::turn::relay::relay_static::RelayAddressGeneratorStatic;
use webrtc::turn::server::config::{ConnConfig, ServerConfig};
use webrtc::turn::server::Server;

use crate::signal::IceServer;

/// How long a TURN channel binding lasts without traffic.
const CHANNEL_BIND_TIMEOUT: Duration = Duration::from_secs(600);

/// The one read of the wall clock in this crate: TURN credentials carry
/// their expiry as unix seconds, which the server checks on every request.
#[expect(
    clippy::disallowed_methods,
    reason = "TURN REST credentials are wall-clock times"
)]
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The password of a TURN REST user name: base64 of HMAC-SHA1 under the
/// shared secret.
fn password(secret: &str, username: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, username.as_bytes()))
}

/// Time-limited credentials for `user_id`, valid until `expires_unix`.
pub fn credentials(secret: &str, user_id: &str, expires_unix: u64) -> (String, String) {
    let username = format!("{expires_unix}:{user_id}");
    let password = password(secret, &username);
    (username, password)
}

/// Checks a TURN REST user name against the secret and the clock.
struct RestAuth {
    secret: String,
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, webrtc::turn::Error> {
        let expires: u64 = username
            .split(':')
            .next()
            .and_then(|expiry| expiry.parse().ok())
            .ok_or_else(|| webrtc::turn::Error::Other("not a TURN REST user name".into()))?;
        if expires < unix_seconds() {
            return Err(webrtc::turn::Error::Other("expired credentials".into()));
        }
        Ok(generate_auth_key(
            username,
            realm,
            &password(&self.secret, username),
        ))
    }
}

/// Why the TURN server did not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The UDP port could not be bound.
    #[error("media.turn_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TURN server refused its setup.
    #[error("turn server: {0}")]
    Server(String),
}

/// A running TURN server and how clients reach it.
pub struct Turn {
    server: Server,
    local_addr: SocketAddr,
    url: String,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("local_addr", &self.local_addr)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Turn {
    /// Starts a TURN server on `listen` (UDP) whose relayed addresses are
    /// on `public_ip` (what clients and the SFU reach it at), checking
    /// credentials against `secret`.
    ///
    /// # Errors
    /// [`TurnError`] when the port cannot be bound or the server refuses.
    pub async fn start(
        listen: SocketAddr,
        public_ip: IpAddr,
        realm: &str,
        secret: &str,
    ) -> Result<Self, TurnError> {
        let conn = tokio::net::UdpSocket::bind(listen)
            .await
            .map_err(|source| TurnError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = conn.local_addr().map_err(|source| TurnError::Bind {
            addr: listen,
            source,
        })?;
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(conn),
                relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                    relay_address: public_ip,
                    address: listen.ip().to_string(),
                    net: Arc::new(webrtc::util::vnet::net::Net::new(None)),
                }),
            }],
            realm: realm.to_owned(),
            auth_handler: Arc::new(RestAuth {
                secret: secret.to_owned(),
            }),
            channel_bind_timeout: CHANNEL_BIND_TIMEOUT,
            alloc_close_notify: None,
        })
        .await
        .map_err(|err| TurnError::Server(err.to_string()))?;
        let url = format!(
            "turn:{}?transport=udp",
            SocketAddr::new(public_ip, local_addr.port())
        );
        Ok(Self {
            server,
            local_addr,
            url,
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `turn:` URL clients use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server.
    pub async fn close(&self) {
        let _closed = self.server.close().await;
    }
}

/// The ICE server entry for `user_id`: `urls` with credentials valid for
/// `ttl` from now.
pub fn ice_server(urls: Vec<String>, secret: &str, user_id: &str, ttl: Duration) -> IceServer {
    let (username, credential) = credentials(secret, user_id, unix_seconds() + ttl.as_secs());
    IceServer {
        urls,
        username: Some(username),
        credential: Some(credential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        // The scheme's known answer: HMAC-SHA1("secret", "1700000000:ada").
        let (username, password) = credentials("secret", "ada", 1_700_000_000);
        assert_eq!(username, "1700000000:ada");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"secret");
        let expected = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&key, b"1700000000:ada"));
        assert_eq!(password, expected);
        assert_eq!(password.len(), 28, "20 bytes in base64");

        let auth = RestAuth {
            secret: "secret".into(),
        };
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let valid = format!("{}:ada", unix_seconds() + 60);
        assert_eq!(
            auth.auth_handle(&valid, "lyceum", addr).expect("valid"),
            generate_auth_key(&valid, "lyceum", &password_of(&valid))
        );
        assert!(
            auth.auth_handle("1:ada", "lyceum", addr).is_err(),
            "expired"
        );
        assert!(
            auth.auth_handle("ada", "lyceum", addr).is_err(),
            "no expiry"
        );
    }

    fn password_of(username: &str) -> String {
        password("secret", username)
    }
}
