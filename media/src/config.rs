//! `SfuConfig`: every limit of the audio SFU, as named settings with their
//! unit last and one set of defaults, checked once by `validate` so the SFU
//! never runs with a limit of zero or a timeout it cannot keep.
//!
//! This is the `[media]` section of the edge's configuration; the names
//! here are the keys (`LYCEUM_MEDIA__<KEY>` in the environment).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default for [`SfuConfig::peers_per_edge_max`].
pub const PEERS_PER_EDGE_MAX: u32 = 2_000;
/// Default for [`SfuConfig::publishers_per_room_max`]: also the number of
/// listening slots a browser should offer.
pub const PUBLISHERS_PER_ROOM_MAX: u8 = 4;
/// Default for [`SfuConfig::publishers_per_class_max`]: a class and all its
/// breakout rooms together.
pub const PUBLISHERS_PER_CLASS_MAX: u32 = 16;
/// Default for [`SfuConfig::tracks_per_peer_max`]: one microphone plus one
/// listening slot per possible publisher.
pub const TRACKS_PER_PEER_MAX: u8 = 1 + PUBLISHERS_PER_ROOM_MAX;
/// Default for [`SfuConfig::publisher_packets_per_second_max`]: Opus at its
/// shortest usual frame (10 ms) is 100 packets a second; 20 ms is 50.
pub const PUBLISHER_PACKETS_PER_SECOND_MAX: u32 = 120;
/// Default for [`SfuConfig::offers_per_window_max`].
pub const OFFERS_PER_WINDOW_MAX: u32 = 10;
/// Default for [`SfuConfig::offer_window_ms`].
pub const OFFER_WINDOW_MS: u64 = 10_000;
/// Default for [`SfuConfig::connect_timeout_ms`].
pub const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Default for [`SfuConfig::ice_disconnected_timeout_ms`].
pub const ICE_DISCONNECTED_TIMEOUT_MS: u64 = 5_000;
/// Default for [`SfuConfig::ice_failed_timeout_ms`].
pub const ICE_FAILED_TIMEOUT_MS: u64 = 10_000;
/// Default for [`SfuConfig::active_speaker_interval_ms`].
pub const ACTIVE_SPEAKER_INTERVAL_MS: u64 = 300;
/// Default for [`SfuConfig::relay_packets_per_second_max`]: 400 audio
/// tracks' copies at 50 packets a second, about 16 Mbit/s of Opus.
pub const RELAY_PACKETS_PER_SECOND_MAX: u32 = 20_000;
/// Default for [`SfuConfig::relay_idle_ms`].
pub const RELAY_IDLE_MS: u64 = 1_500;
/// Default for [`SfuConfig::relay_refresh_ms`].
pub const RELAY_REFRESH_MS: u64 = 500;
/// Default for [`SfuConfig::relay_subscription_ttl_ms`].
pub const RELAY_SUBSCRIPTION_TTL_MS: u64 = 2_000;
/// Default for [`SfuConfig::turn_listen`]: loopback, any free port (a
/// one-machine cluster); production sets a public interface and 3478.
pub const TURN_LISTEN: &str = "127.0.0.1:0";
/// Default for [`SfuConfig::turn_credential_ttl_ms`]: an hour, longer than
/// any join; a live connection keeps its allocation past it.
pub const TURN_CREDENTIAL_TTL_MS: u64 = 3_600_000;
/// Default for [`SfuConfig::outbound_frames_max`].
pub const OUTBOUND_FRAMES_MAX: usize = 256;

const _: () = assert!(TRACKS_PER_PEER_MAX as u16 == 1 + PUBLISHERS_PER_ROOM_MAX as u16);

/// The SFU's limits. Every field is bounded by `validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SfuConfig {
    /// Whether this edge carries live audio at all. Off, every `media`
    /// frame is refused with `media_unavailable` and no SFU runs.
    pub enabled: bool,
    /// Which ICE candidates clients are told to use: `all`, or `relay` to
    /// force TURN (a network that allows nothing else).
    pub ice_transport_policy: crate::signal::IceTransportPolicy,
    /// Peers (peer connections) on this edge; one more is `too_many_peers`.
    pub peers_per_edge_max: u32,
    /// Publishers at once in one room; one more is `too_many_publishers`.
    pub publishers_per_room_max: u8,
    /// Publishers at once in a class and its breakout rooms together (the
    /// class's audio tracks: one per publisher), as this edge sees them,
    /// its own and those relayed to it; one more is `too_many_publishers`.
    pub publishers_per_class_max: u32,
    /// Audio m-lines in one peer's offer (sending plus listening); more is
    /// `too_many_tracks`.
    pub tracks_per_peer_max: u8,
    /// RTP packets a publisher may send in one second; the rest are dropped
    /// and counted (`media_dropped_packets_total{reason="rate"}`).
    pub publisher_packets_per_second_max: u32,
    /// Offers a peer may make in one `offer_window_ms`; more is
    /// `renegotiation_flood`.
    pub offers_per_window_max: u32,
    /// The window of `offers_per_window_max`, in milliseconds.
    pub offer_window_ms: u64,
    /// A peer not connected this long after joining is removed.
    pub connect_timeout_ms: u64,
    /// ICE silence before a peer counts as disconnected, in milliseconds.
    pub ice_disconnected_timeout_ms: u64,
    /// ICE silence after disconnected before it fails and the peer is
    /// removed, in milliseconds. A peer that vanishes is gone within
    /// `ice_disconnected_timeout_ms + ice_failed_timeout_ms`.
    pub ice_failed_timeout_ms: u64,
    /// Server frames queued for one peer's socket; a peer whose queue is
    /// full is too slow to follow and is removed.
    pub outbound_frames_max: usize,
    /// How often each room's active speaker is chosen, in milliseconds; a
    /// room gets at most one `active_speaker` frame per interval.
    pub active_speaker_interval_ms: u64,
    /// Offer host candidates on loopback too (tests and one-machine dev
    /// clusters; off in production).
    pub loopback_candidates: bool,
    /// A publisher of another edge whose packets stop this long leaves its
    /// slot here, in milliseconds.
    pub relay_idle_ms: u64,
    /// Packet copies this edge may relay to other edges in one second (its
    /// relay bandwidth); the rest are dropped and counted
    /// (`media_relay_dropped_packets_total`).
    pub relay_packets_per_second_max: u32,
    /// How often an edge asks the other edges for the rooms it listens
    /// in, in milliseconds.
    pub relay_refresh_ms: u64,
    /// How long such a request holds without being renewed, in
    /// milliseconds; at least `relay_refresh_ms`. An edge that goes away
    /// stops getting copies within it.
    pub relay_subscription_ttl_ms: u64,
    /// Run the edge's own TURN server (see `turn`).
    pub turn_enabled: bool,
    /// Where the TURN server listens (UDP), `ip:port`.
    pub turn_listen: String,
    /// The address clients reach the TURN server at, and its relayed
    /// addresses are on; empty means `turn_listen`'s (which must then not
    /// be `0.0.0.0`).
    pub turn_public_ip: String,
    /// The TURN REST shared secret; empty makes a random one at start
    /// (enough for the embedded server; set it to share it with coturn).
    pub turn_secret: String,
    /// How long the TURN credentials handed to a session are valid, in
    /// milliseconds.
    pub turn_credential_ttl_ms: u64,
    /// Further `turn:`/`turns:`/`stun:` URLs (coturn beside the edge) that
    /// take the same credentials.
    pub turn_urls: Vec<String>,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ice_transport_policy: crate::signal::IceTransportPolicy::All,
            peers_per_edge_max: PEERS_PER_EDGE_MAX,
            publishers_per_room_max: PUBLISHERS_PER_ROOM_MAX,
            publishers_per_class_max: PUBLISHERS_PER_CLASS_MAX,
            tracks_per_peer_max: TRACKS_PER_PEER_MAX,
            publisher_packets_per_second_max: PUBLISHER_PACKETS_PER_SECOND_MAX,
            offers_per_window_max: OFFERS_PER_WINDOW_MAX,
            offer_window_ms: OFFER_WINDOW_MS,
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            ice_disconnected_timeout_ms: ICE_DISCONNECTED_TIMEOUT_MS,
            ice_failed_timeout_ms: ICE_FAILED_TIMEOUT_MS,
            outbound_frames_max: OUTBOUND_FRAMES_MAX,
            active_speaker_interval_ms: ACTIVE_SPEAKER_INTERVAL_MS,
            loopback_candidates: false,
            relay_idle_ms: RELAY_IDLE_MS,
            relay_packets_per_second_max: RELAY_PACKETS_PER_SECOND_MAX,
            relay_refresh_ms: RELAY_REFRESH_MS,
            relay_subscription_ttl_ms: RELAY_SUBSCRIPTION_TTL_MS,
            turn_enabled: true,
            turn_listen: TURN_LISTEN.to_owned(),
            turn_public_ip: String::new(),
            turn_secret: String::new(),
            turn_credential_ttl_ms: TURN_CREDENTIAL_TTL_MS,
            turn_urls: Vec::new(),
        }
    }
}

/// A setting out of its range, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media.{key} {problem}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl SfuConfig {
    /// Checks every setting; the SFU refuses to start with a bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive: [(&'static str, u64); 16] = [
            (
                "relay_packets_per_second_max",
                u64::from(self.relay_packets_per_second_max),
            ),
            (
                "publishers_per_class_max",
                u64::from(self.publishers_per_class_max),
            ),
            ("turn_credential_ttl_ms", self.turn_credential_ttl_ms),
            ("relay_idle_ms", self.relay_idle_ms),
            ("relay_refresh_ms", self.relay_refresh_ms),
            ("relay_subscription_ttl_ms", self.relay_subscription_ttl_ms),
            (
                "active_speaker_interval_ms",
                self.active_speaker_interval_ms,
            ),
            ("peers_per_edge_max", u64::from(self.peers_per_edge_max)),
            (
                "publishers_per_room_max",
                u64::from(self.publishers_per_room_max),
            ),
            ("tracks_per_peer_max", u64::from(self.tracks_per_peer_max)),
            (
                "publisher_packets_per_second_max",
                u64::from(self.publisher_packets_per_second_max),
            ),
            (
                "offers_per_window_max",
                u64::from(self.offers_per_window_max),
            ),
            ("offer_window_ms", self.offer_window_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            (
                "ice_disconnected_timeout_ms",
                self.ice_disconnected_timeout_ms,
            ),
            ("ice_failed_timeout_ms", self.ice_failed_timeout_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError {
                    key,
                    problem: "must be at least 1",
                });
            }
        }
        if self.outbound_frames_max == 0 {
            return Err(ConfigError {
                key: "outbound_frames_max",
                problem: "must be at least 1",
            });
        }
        let listen: std::net::SocketAddr = self.turn_listen.parse().map_err(|_| ConfigError {
            key: "turn_listen",
            problem: "must be an ip:port",
        })?;
        if !self.turn_public_ip.is_empty()
            && self.turn_public_ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ConfigError {
                key: "turn_public_ip",
                problem: "must be an ip address",
            });
        }
        if self.turn_enabled && self.turn_public_ip.is_empty() && listen.ip().is_unspecified() {
            return Err(ConfigError {
                key: "turn_public_ip",
                problem: "must be set when turn_listen is on every interface",
            });
        }
        if self.turn_urls.iter().any(|url| {
            !["turn:", "turns:", "stun:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        }) {
            return Err(ConfigError {
                key: "turn_urls",
                problem: "each must be a turn:, turns: or stun: url",
            });
        }
        if self.relay_subscription_ttl_ms < self.relay_refresh_ms {
            return Err(ConfigError {
                key: "relay_subscription_ttl_ms",
                problem: "must be at least relay_refresh_ms",
            });
        }
        if u16::from(self.tracks_per_peer_max) > 1 + u16::from(self.publishers_per_room_max) {
            return Err(ConfigError {
                key: "tracks_per_peer_max",
                problem: "must be at most 1 + publishers_per_room_max (a microphone and one slot per publisher)",
            });
        }
        Ok(())
    }

    pub(crate) fn offer_window(&self) -> Duration {
        Duration::from_millis(self.offer_window_ms)
    }

    pub(crate) fn active_speaker_interval(&self) -> Duration {
        Duration::from_millis(self.active_speaker_interval_ms)
    }

    /// Where the TURN server listens and the address clients reach it at.
    /// Only meaningful once `validate` passed.
    pub fn turn_addresses(&self) -> Option<(std::net::SocketAddr, std::net::IpAddr)> {
        let listen: std::net::SocketAddr = self.turn_listen.parse().ok()?;
        let public = if self.turn_public_ip.is_empty() {
            listen.ip()
        } else {
            self.turn_public_ip.parse().ok()?
        };
        Some((listen, public))
    }

    pub(crate) fn relay_idle(&self) -> Duration {
        Duration::from_millis(self.relay_idle_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_refused_by_name() {
        assert_eq!(SfuConfig::default().validate(), Ok(()));
        let config = SfuConfig {
            publishers_per_room_max: 0,
            ..SfuConfig::default()
        };
        let err = config.validate().expect_err("zero publishers is refused");
        assert_eq!(
            err.to_string(),
            "media.publishers_per_room_max must be at least 1"
        );
        let config = SfuConfig {
            tracks_per_peer_max: 1 + PUBLISHERS_PER_ROOM_MAX + 1,
            ..SfuConfig::default()
        };
        assert_eq!(
            config.validate().map_err(|e| e.key),
            Err("tracks_per_peer_max")
        );
        let config = SfuConfig {
            tracks_per_peer_max: 1 + PUBLISHERS_PER_ROOM_MAX,
            ..SfuConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
}
