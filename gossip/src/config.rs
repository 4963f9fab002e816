//! Settings for a gossip node: the SWIM timings (with a LAN and a WAN preset
//! whose failure-detection times are written down next to them) and every
//! limit of the transport. They are plain data with unit-suffixed names so
//! that `node` can fill them from its configuration, and `validate` refuses
//! inconsistent values before anything binds a socket.

use std::{
    net::SocketAddr,
    num::{NonZeroU8, NonZeroUsize},
    time::Duration,
};

use crate::{identity::NodeIdentity, identity::IDENTITY_ENCODED_BYTES_MAX, tls::TlsMaterial};

/// Largest gossip packet, in bytes. A QUIC datagram on the smallest path MTU
/// QUIC allows (1,200 bytes) carries about 1,160 bytes of payload, so every
/// packet fits whatever the path.
pub const PACKET_BYTES_MAX: usize = 1100;
/// Smallest packet size setting we accept, in bytes: a header with three
/// identities (a `PingReq`) plus room for one update.
pub const PACKET_BYTES_MIN: usize = 4 * IDENTITY_ENCODED_BYTES_MAX + 16;
const _: () = assert!(PACKET_BYTES_MIN < PACKET_BYTES_MAX);

/// Most seed addresses a node may be given.
pub const SEEDS_MAX: usize = 64;
/// Default for [`GossipConfig::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default for [`GossipConfig::idle_timeout_ms`].
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 15_000;
/// Default for [`GossipConfig::inbound_queue_packets_max`].
pub const DEFAULT_INBOUND_QUEUE_PACKETS_MAX: usize = 1_024;
/// Default for [`GossipConfig::pending_packets_max`].
pub const DEFAULT_PENDING_PACKETS_MAX: usize = 16;
/// Default for [`GossipConfig::events_capacity_max`].
pub const DEFAULT_EVENTS_CAPACITY_MAX: usize = 256;
/// Default for [`GossipConfig::seed_retry_ms`].
pub const DEFAULT_SEED_RETRY_MS: u64 = 1_000;
/// Default for [`GossipConfig::metrics_refresh_ms`].
pub const DEFAULT_METRICS_REFRESH_MS: u64 = 1_000;
/// Default for [`GossipConfig::leave_linger_ms`].
pub const DEFAULT_LEAVE_LINGER_MS: u64 = 300;

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

fn positive(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(())
}

/// SWIM timings and fan-outs, mapped onto [`foca::Config`].
///
/// foca has no Lifeguard (no local-health multiplier that stretches timeouts
/// on a struggling node), so the suspicion window is what absorbs a CPU-starved
/// or paused node: it must hear that it is suspected and refute within
/// `suspect_to_down_ms`. The presets keep that window at four probe periods or
/// more. Two things from Lifeguard are in the gossip task instead: the
/// suspicion goes straight to its subject and the refutation straight back
/// (the relay), and received packets are handled before due timers, so a
/// node that was starved for a moment reads the acks and refutations that
/// queued up before its probe cycle or a suspicion timer judges the silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimSettings {
    /// How often each node probes one member.
    pub probe_period_ms: u64,
    /// How long to wait for a direct ack before asking others to probe.
    pub probe_rtt_ms: u64,
    /// How many members are asked to probe indirectly.
    pub indirect_probes_max: usize,
    /// How many times each update is piggybacked before it is dropped.
    pub transmissions_max: u8,
    /// How long a suspect has to refute before it is declared down.
    pub suspect_to_down_ms: u64,
    /// How long a down member is remembered (its node id cannot rejoin with
    /// the same generation meanwhile; a higher generation always can).
    pub remove_down_after_ms: u64,
    /// Largest packet foca produces and accepts.
    pub packet_bytes_max: usize,
    /// How often pending updates are gossiped outside the probe cycle.
    pub gossip_period_ms: u64,
    /// How many members each periodic gossip goes to.
    pub gossip_fanout_max: usize,
    /// How often a node asks a random member for more members.
    pub announce_period_ms: u64,
    /// How many members each periodic announce goes to.
    pub announce_fanout_max: usize,
    /// How often a node announces itself to members it believes down, which
    /// is how a healed partition finds its way back.
    pub announce_down_period_ms: u64,
    /// How many down members each such announce goes to.
    pub announce_down_fanout_max: usize,
    /// How many random members a node relays a down verdict to, at once and
    /// once per verdict, when it learns it (the gossip task's relay, see
    /// docs/design/gossip-relay.md).
    pub relay_fanout_max: usize,
    /// How often the member that raised a suspicion sends it straight to
    /// its subject again while it still holds it (the gossip task's relay).
    pub suspicion_resend_ms: u64,
}

impl SwimSettings {
    /// For nodes in one region's LAN.
    ///
    /// Expected detection: a crashed node is known down by every node in
    /// about 2 s ([`SwimSettings::expected_detection_ms`] = 2.1 s: a probe
    /// reaches it within one 300 ms period, the probe cycle closes one period
    /// later, then 1.4 s of suspicion; the relay spreads the verdict within
    /// milliseconds, one 100 ms gossip round is counted for it). A paused node
    /// has about 1.6 s to refute (the 200 ms left of the probe cycle after
    /// the 100 ms direct round trip, then the suspicion window), and the
    /// suspicion comes straight to it every 250 ms meanwhile.
    ///
    /// Why these values: detection is the wait for someone to probe the dead
    /// node (probes arrive at about one per period, so the wait has a tail of
    /// several periods), one more period, and the suspicion window. The
    /// 300 ms period (500 ms before) shortens the first two; the relay (see
    /// docs/design/gossip-relay.md) makes a refutation come back within
    /// a round trip instead of a gossip epidemic, which is what lets the
    /// window shrink from 2 s to 1.4 s with no false positive at 20 % loss.
    /// A 100 ms direct round trip is far above a LAN's, and leaves 200 ms for
    /// the five indirect probes.
    ///
    /// Five indirect probes (not three) make a lossy link rarely look like a
    /// dead member: at 10 % loss a probe fails only if the direct round trip
    /// and all five relayed ones fail (about 0.1 % of probes, against 0.8 %
    /// with three). Twelve transmissions per update (not eight) and a 100 ms
    /// gossip round keep updates spreading long enough to reach everyone.
    ///
    /// Simulated with 100 members ([`crate::sim`], README "Gossip
    /// simulation"): p50 2.0 s, p99 2.9 s (5 kills; 1.9 s / 2.8 s over 20);
    /// no false positive in 15 simulated minutes at 0, 5, 10 or 20 % loss.
    pub fn lan() -> Self {
        Self {
            probe_period_ms: 300,
            probe_rtt_ms: 100,
            indirect_probes_max: 5,
            transmissions_max: 12,
            suspect_to_down_ms: 1_400,
            remove_down_after_ms: 24 * 60 * 60 * 1_000,
            packet_bytes_max: PACKET_BYTES_MAX,
            gossip_period_ms: 100,
            gossip_fanout_max: 3,
            announce_period_ms: 10_000,
            announce_fanout_max: 1,
            announce_down_period_ms: 5_000,
            announce_down_fanout_max: 2,
            relay_fanout_max: 6,
            suspicion_resend_ms: 250,
        }
    }

    /// For members spread across regions, where round trips of a few hundred
    /// milliseconds and loss bursts are normal.
    ///
    /// Expected detection: about 14.5 s ([`SwimSettings::expected_detection_ms`]:
    /// 2 s probe period twice, 10 s of suspicion, a 500 ms gossip round).
    /// A paused node has 10 s (five probe periods) to refute a suspicion,
    /// which comes straight to it every second meanwhile.
    ///
    /// Five indirect probes and fourteen transmissions per update, for the
    /// same reasons as [`SwimSettings::lan`]; the same relay.
    ///
    /// Simulated with 100 members over 20 to 150 ms links ([`crate::sim`]):
    /// p50 12.5 s, p99 15.2 s; no false positive in 15 simulated minutes at
    /// 0, 5, 10 or 20 % loss.
    pub fn wan() -> Self {
        Self {
            probe_period_ms: 2_000,
            probe_rtt_ms: 800,
            indirect_probes_max: 5,
            transmissions_max: 14,
            suspect_to_down_ms: 10_000,
            remove_down_after_ms: 24 * 60 * 60 * 1_000,
            packet_bytes_max: PACKET_BYTES_MAX,
            gossip_period_ms: 500,
            gossip_fanout_max: 4,
            announce_period_ms: 30_000,
            announce_fanout_max: 2,
            announce_down_period_ms: 15_000,
            announce_down_fanout_max: 3,
            relay_fanout_max: 6,
            suspicion_resend_ms: 1_000,
        }
    }

    /// A rough expectation of how long the cluster takes to declare a crashed
    /// node down: one probe period until someone probes it, one more until
    /// that probe cycle closes, the suspicion window, and one gossip round
    /// (the relay usually spreads the verdict faster).
    pub fn expected_detection_ms(&self) -> u64 {
        2 * self.probe_period_ms + self.suspect_to_down_ms + self.gossip_period_ms
    }

    /// Checks ranges and relations between the settings.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("probe_period_ms", self.probe_period_ms)?;
        positive("probe_rtt_ms", self.probe_rtt_ms)?;
        positive("suspect_to_down_ms", self.suspect_to_down_ms)?;
        positive("remove_down_after_ms", self.remove_down_after_ms)?;
        positive("gossip_period_ms", self.gossip_period_ms)?;
        positive("announce_period_ms", self.announce_period_ms)?;
        positive("announce_down_period_ms", self.announce_down_period_ms)?;
        positive("suspicion_resend_ms", self.suspicion_resend_ms)?;
        if self.probe_rtt_ms >= self.probe_period_ms {
            return Err(invalid(
                "probe_rtt_ms",
                "must be smaller than probe_period_ms",
            ));
        }
        for (field, value) in [
            ("indirect_probes_max", self.indirect_probes_max),
            ("gossip_fanout_max", self.gossip_fanout_max),
            ("announce_fanout_max", self.announce_fanout_max),
            ("announce_down_fanout_max", self.announce_down_fanout_max),
            ("relay_fanout_max", self.relay_fanout_max),
            ("transmissions_max", usize::from(self.transmissions_max)),
        ] {
            positive(field, value as u64)?;
        }
        if !(PACKET_BYTES_MIN..=PACKET_BYTES_MAX).contains(&self.packet_bytes_max) {
            return Err(invalid(
                "packet_bytes_max",
                format!("must be within {PACKET_BYTES_MIN}..={PACKET_BYTES_MAX}"),
            ));
        }
        Ok(())
    }

    /// The foca configuration these settings stand for.
    ///
    /// # Errors
    /// [`ConfigError`] as [`SwimSettings::validate`].
    pub fn to_foca(&self) -> Result<foca::Config, ConfigError> {
        self.validate()?;
        let count = |field: &'static str, value: usize| {
            NonZeroUsize::new(value).ok_or_else(|| invalid(field, "must be greater than zero"))
        };
        let ms = Duration::from_millis;
        Ok(foca::Config {
            probe_period: ms(self.probe_period_ms),
            probe_rtt: ms(self.probe_rtt_ms),
            num_indirect_probes: count("indirect_probes_max", self.indirect_probes_max)?,
            max_transmissions: NonZeroU8::new(self.transmissions_max)
                .ok_or_else(|| invalid("transmissions_max", "must be greater than zero"))?,
            suspect_to_down_after: ms(self.suspect_to_down_ms),
            remove_down_after: Some(ms(self.remove_down_after_ms)),
            max_packet_size: count("packet_bytes_max", self.packet_bytes_max)?,
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: ms(self.announce_period_ms),
                num_members: count("announce_fanout_max", self.announce_fanout_max)?,
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: ms(self.announce_down_period_ms),
                num_members: count("announce_down_fanout_max", self.announce_down_fanout_max)?,
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: ms(self.gossip_period_ms),
                num_members: count("gossip_fanout_max", self.gossip_fanout_max)?,
            }),
        })
    }
}

/// Everything [`crate::Gossip::start`] needs.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// This node's identity. A QUIC address with port 0 means "the address
    /// the endpoint actually bound", which is what tests with ephemeral ports
    /// use; otherwise the given address is advertised as is.
    pub identity: NodeIdentity,
    /// Where the QUIC endpoint binds (server and client share it).
    pub bind_addr: SocketAddr,
    /// Mutual-TLS material; its certificate must name `identity`'s node id.
    pub tls: TlsMaterial,
    /// Addresses to announce to until this node knows at least one member.
    pub seeds: Vec<SocketAddr>,
    /// SWIM timings: [`SwimSettings::lan`] or [`SwimSettings::wan`].
    pub swim: SwimSettings,
    /// Where the gossip metrics are registered.
    pub registry: prometheus::Registry,
    /// How long a QUIC handshake may take.
    pub connect_timeout_ms: u64,
    /// A QUIC connection with no traffic for this long is closed (and opened
    /// again on the next packet; a closed connection says nothing about the
    /// member's health).
    pub idle_timeout_ms: u64,
    /// Received packets waiting for the SWIM task; beyond it they are dropped.
    pub inbound_queue_packets_max: usize,
    /// Packets kept per peer while its connection is being opened.
    pub pending_packets_max: usize,
    /// Membership events kept for slow subscribers before they lag.
    pub events_capacity_max: usize,
    /// How often a node with no known members announces to its seeds again.
    pub seed_retry_ms: u64,
    /// How often per-peer round-trip gauges are refreshed.
    pub metrics_refresh_ms: u64,
    /// How long a leaving node keeps its endpoint open so that its departure
    /// reaches the others.
    pub leave_linger_ms: u64,
    /// Seed for foca's random choices; `None` draws one (and logs it), a fixed
    /// one makes member selection reproducible.
    pub rng_seed: Option<u64>,
}

impl GossipConfig {
    /// A configuration with the LAN preset and default limits.
    pub fn new(identity: NodeIdentity, bind_addr: SocketAddr, tls: TlsMaterial) -> Self {
        Self {
            identity,
            bind_addr,
            tls,
            seeds: Vec::new(),
            swim: SwimSettings::lan(),
            registry: prometheus::Registry::new(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            inbound_queue_packets_max: DEFAULT_INBOUND_QUEUE_PACKETS_MAX,
            pending_packets_max: DEFAULT_PENDING_PACKETS_MAX,
            events_capacity_max: DEFAULT_EVENTS_CAPACITY_MAX,
            seed_retry_ms: DEFAULT_SEED_RETRY_MS,
            metrics_refresh_ms: DEFAULT_METRICS_REFRESH_MS,
            leave_linger_ms: DEFAULT_LEAVE_LINGER_MS,
            rng_seed: None,
        }
    }

    /// Checks every setting and that the certificate names this node.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.swim.validate()?;
        if self.tls.node_id() != self.identity.node_id() {
            return Err(invalid(
                "tls",
                format!(
                    "certificate names node {} but the identity is {}",
                    self.tls.node_id(),
                    self.identity.node_id()
                ),
            ));
        }
        if self.seeds.len() > SEEDS_MAX {
            return Err(invalid("seeds", format!("at most {SEEDS_MAX} seeds")));
        }
        positive("connect_timeout_ms", self.connect_timeout_ms)?;
        positive("idle_timeout_ms", self.idle_timeout_ms)?;
        positive("seed_retry_ms", self.seed_retry_ms)?;
        positive("metrics_refresh_ms", self.metrics_refresh_ms)?;
        positive(
            "inbound_queue_packets_max",
            self.inbound_queue_packets_max as u64,
        )?;
        positive("pending_packets_max", self.pending_packets_max as u64)?;
        positive("events_capacity_max", self.events_capacity_max as u64)?;
        if self.idle_timeout_ms <= self.swim.probe_period_ms {
            return Err(invalid(
                "idle_timeout_ms",
                "must be longer than swim.probe_period_ms",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_ordered() {
        let lan = SwimSettings::lan();
        let wan = SwimSettings::wan();
        lan.to_foca().expect("lan");
        wan.to_foca().expect("wan");
        assert_eq!(lan.expected_detection_ms(), 2_100);
        assert_eq!(wan.expected_detection_ms(), 14_500);
        assert!(lan.suspect_to_down_ms >= 4 * lan.probe_period_ms);
        assert!(wan.suspect_to_down_ms >= 4 * wan.probe_period_ms);
        assert!(wan.suspect_to_down_ms > lan.suspect_to_down_ms);
    }

    #[test]
    fn bad_settings_are_named() {
        let check = |change: fn(&mut SwimSettings), field: &str| {
            let mut settings = SwimSettings::lan();
            change(&mut settings);
            match settings.validate() {
                Err(ConfigError::Invalid { field: got, .. }) => assert_eq!(got, field),
                Ok(()) => panic!("{field} accepted"),
            }
        };
        check(|s| s.probe_rtt_ms = s.probe_period_ms, "probe_rtt_ms");
        check(|s| s.probe_period_ms = 0, "probe_period_ms");
        check(
            |s| s.packet_bytes_max = PACKET_BYTES_MAX + 1,
            "packet_bytes_max",
        );
        check(
            |s| s.packet_bytes_max = PACKET_BYTES_MIN - 1,
            "packet_bytes_max",
        );
        check(|s| s.gossip_fanout_max = 0, "gossip_fanout_max");
        check(|s| s.transmissions_max = 0, "transmissions_max");
        check(|s| s.relay_fanout_max = 0, "relay_fanout_max");
        check(|s| s.suspicion_resend_ms = 0, "suspicion_resend_ms");
    }
}
