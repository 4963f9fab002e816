//! Prometheus metrics of one gossip node. They live in one place so that every
//! name and label set is visible together: label values come from closed sets
//! (member states, drop reasons) or are bounded by the cluster size (peer node
//! ids, removed when a member goes down).

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::names::NodeId;

/// Why a packet or connection was refused or lost; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The packet does not decode as a foca packet or foca refused it as
    /// malformed (including oversize packets).
    Malformed,
    /// The sender identity in the packet is not the node the TLS peer's
    /// certificate names.
    IdentityMismatch,
    /// A well-formed packet that breaks the protocol (e.g. it claims to come
    /// from us).
    ProtocolViolation,
    /// A metadata broadcast that does not decode or does not fit.
    BadBroadcast,
    /// An incoming QUIC handshake failed (e.g. no certificate from our CA).
    HandshakeFailed,
    /// An outgoing connection could not be made.
    ConnectFailed,
    /// QUIC refused to send the datagram.
    SendFailed,
    /// A fault rule dropped it.
    FaultInjected,
    /// The queue toward the SWIM task, the pending queue of a connecting
    /// peer, the connection table or the timer heap was full.
    QueueFull,
}

impl DropReason {
    /// Every reason, to pre-create the labels.
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::IdentityMismatch,
        DropReason::ProtocolViolation,
        DropReason::BadBroadcast,
        DropReason::HandshakeFailed,
        DropReason::ConnectFailed,
        DropReason::SendFailed,
        DropReason::FaultInjected,
        DropReason::QueueFull,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::IdentityMismatch => "identity_mismatch",
            DropReason::ProtocolViolation => "protocol_violation",
            DropReason::BadBroadcast => "bad_broadcast",
            DropReason::HandshakeFailed => "handshake_failed",
            DropReason::ConnectFailed => "connect_failed",
            DropReason::SendFailed => "send_failed",
            DropReason::FaultInjected => "fault_injected",
            DropReason::QueueFull => "queue_full",
        }
    }
}

/// Why the metrics could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("registering gossip metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The gossip metrics of one node.
#[derive(Clone)]
pub(crate) struct Metrics {
    members: IntGaugeVec,
    peer_rtt: GaugeVec,
    pub(crate) datagrams_received: IntCounter,
    pub(crate) datagrams_sent: IntCounter,
    dropped: IntCounterVec,
    pub(crate) membership_changes: IntCounter,
}

/// Member states, the `state` label values.
pub(crate) const STATES: [&str; 3] = ["alive", "suspect", "down"];

impl Metrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let members = IntGaugeVec::new(
            Opts::new("lyceum_gossip_members", "Members this node knows, by state"),
            &["state"],
        )?;
        let peer_rtt = GaugeVec::new(
            Opts::new(
                "lyceum_gossip_peer_rtt_seconds",
                "Smoothed QUIC round-trip time to each live peer",
            ),
            &["peer"],
        )?;
        let datagrams_received = IntCounter::new(
            "lyceum_gossip_datagrams_received_total",
            "Gossip datagrams received from authenticated peers",
        )?;
        let datagrams_sent = IntCounter::new(
            "lyceum_gossip_datagrams_sent_total",
            "Gossip datagrams handed to QUIC",
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "lyceum_gossip_dropped_total",
                "Packets and connections refused or lost, by reason",
            ),
            &["reason"],
        )?;
        let membership_changes = IntCounter::new(
            "lyceum_gossip_membership_changes_total",
            "Changes of a member's state seen by this node",
        )?;
        registry.register(Box::new(members.clone()))?;
        registry.register(Box::new(peer_rtt.clone()))?;
        registry.register(Box::new(datagrams_received.clone()))?;
        registry.register(Box::new(datagrams_sent.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(membership_changes.clone()))?;
        for state in STATES {
            members.with_label_values(&[state]).set(0);
        }
        for reason in DropReason::ALL {
            dropped.with_label_values(&[reason.as_str()]).reset();
        }
        Ok(Self {
            members,
            peer_rtt,
            datagrams_received,
            datagrams_sent,
            dropped,
            membership_changes,
        })
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped.with_label_values(&[reason.as_str()]).inc();
    }

    pub(crate) fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped.with_label_values(&[reason.as_str()]).get()
    }

    pub(crate) fn set_members(&self, counts: [i64; 3]) {
        for (state, count) in STATES.iter().zip(counts) {
            self.members.with_label_values(&[state]).set(count);
        }
    }

    pub(crate) fn set_rtt(&self, peer: &NodeId, rtt_seconds: f64) {
        self.peer_rtt
            .with_label_values(&[peer.as_str()])
            .set(rtt_seconds);
    }

    pub(crate) fn forget_peer(&self, peer: &NodeId) {
        // An absent label is fine: the peer may never have had a sample.
        let _absent = self.peer_rtt.remove_label_values(&[peer.as_str()]);
    }
}
