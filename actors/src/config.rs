//! Settings of a node's actor system: where its QUIC endpoint binds, the
//! mutual-TLS material (the gossip cluster's, so one CA admits a node to both)
//! and every limit of the transport, with unit-suffixed names and defaults so
//! that `node` can fill them from its configuration. `validate` refuses
//! inconsistent values before anything binds a socket.

use std::net::SocketAddr;

use gossip::TlsMaterial;

/// Largest actor-cluster frame we accept or would send, in bytes:
/// ractor_cluster's own default cap (16 MiB) is far more than actor messages
/// need, and every byte of it is memory a peer can make us allocate.
pub const FRAME_BYTES_MAX_LIMIT: u64 = ractor_cluster::DEFAULT_MAX_INBOUND_FRAME_SIZE;
/// Default for [`ActorConfig::frame_bytes_max`].
pub const DEFAULT_FRAME_BYTES_MAX: u64 = 1024 * 1024;
/// Default for [`ActorConfig::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default for [`ActorConfig::idle_timeout_ms`].
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 15_000;
/// Default for [`ActorConfig::reconcile_interval_ms`].
pub const DEFAULT_RECONCILE_INTERVAL_MS: u64 = 1_000;
/// Default for [`ActorConfig::sessions_max`].
pub const DEFAULT_SESSIONS_MAX: usize = 256;
/// Smallest frame cap we accept: a session's handshake and group sync
/// messages must fit.
pub const FRAME_BYTES_MIN: u64 = 4 * 1024;
const _: () = assert!(FRAME_BYTES_MIN <= DEFAULT_FRAME_BYTES_MAX);
const _: () = assert!(DEFAULT_FRAME_BYTES_MAX <= FRAME_BYTES_MAX_LIMIT);

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A setting is zero or out of its range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Everything [`crate::ActorSystem::start`] needs.
#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// Where the actor QUIC endpoint binds (UDP); port 0 picks a free one,
    /// which [`crate::ActorSystem::local_addr`] then reports so that gossip
    /// can advertise it.
    pub bind_addr: SocketAddr,
    /// Mutual-TLS material; its certificate names this node.
    pub tls: TlsMaterial,
    /// This node's generation (gossip's), so a restarted node's sessions
    /// carry a new name and never compete with its previous life's.
    pub generation: u64,
    /// Where the actor metrics are registered.
    pub registry: prometheus::Registry,
    /// Largest frame accepted from a peer; a larger one drops the session.
    pub frame_bytes_max: u64,
    /// How long dialling a peer (QUIC handshake) may take.
    pub connect_timeout_ms: u64,
    /// A connection silent for this long is closed; keep-alives are sent at
    /// a third of it, so only a dead path reaches it.
    pub idle_timeout_ms: u64,
    /// How often the system compares its sessions with gossip's view and
    /// dials or closes what differs (events are acted on at once; this
    /// catches failed dials and missed events).
    pub reconcile_interval_ms: u64,
    /// Most sessions (peers) at once; more are refused.
    pub sessions_max: usize,
}

impl ActorConfig {
    /// A configuration with default limits.
    pub fn new(bind_addr: SocketAddr, tls: TlsMaterial, generation: u64) -> Self {
        Self {
            bind_addr,
            tls,
            generation,
            registry: prometheus::Registry::new(),
            frame_bytes_max: DEFAULT_FRAME_BYTES_MAX,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            reconcile_interval_ms: DEFAULT_RECONCILE_INTERVAL_MS,
            sessions_max: DEFAULT_SESSIONS_MAX,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX_LIMIT).contains(&self.frame_bytes_max) {
            return Err(invalid(
                "frame_bytes_max",
                format!("must be within {FRAME_BYTES_MIN}..={FRAME_BYTES_MAX_LIMIT}"),
            ));
        }
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("reconcile_interval_ms", self.reconcile_interval_ms),
            ("sessions_max", self.sessions_max as u64),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be greater than zero"));
            }
        }
        if self.idle_timeout_ms < 3 {
            return Err(invalid("idle_timeout_ms", "must be at least 3"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use gossip::{ClusterCa, NodeId};

    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_named() {
        let ca = ClusterCa::generate_ephemeral().expect("ca");
        let tls = ca
            .material_for(&NodeId::new("n1").expect("id"))
            .expect("material");
        let mut config = ActorConfig::new("127.0.0.1:0".parse().expect("addr"), tls, 1);
        config.validate().expect("defaults are valid");
        config.frame_bytes_max = FRAME_BYTES_MAX_LIMIT + 1;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                field: "frame_bytes_max",
                ..
            })
        ));
        config.frame_bytes_max = DEFAULT_FRAME_BYTES_MAX;
        config.sessions_max = 0;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                field: "sessions_max",
                ..
            })
        ));
    }
}
