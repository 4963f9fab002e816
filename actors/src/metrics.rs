//! Prometheus metrics of one node's actor system, in one place so every name
//! and label set is visible together. Names follow the gossip ones
//! (`lyceum_actors_*`); label values come from closed sets.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a frame from a peer was refused; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadFrame {
    /// Its length prefix is above `frame_bytes_max`.
    Oversize,
    /// Its length prefix is zero (ractor_cluster never sends an empty frame).
    Empty,
    /// Its payload is not well-formed protobuf.
    Malformed,
}

impl BadFrame {
    /// Every reason, to pre-create the labels.
    pub const ALL: [BadFrame; 3] = [BadFrame::Oversize, BadFrame::Empty, BadFrame::Malformed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BadFrame::Oversize => "oversize",
            BadFrame::Empty => "empty",
            BadFrame::Malformed => "malformed",
        }
    }
}

/// Which side opened a session; the `direction` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    /// We dialled.
    Outbound,
    /// The peer dialled.
    Inbound,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Why the metrics could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("registering actor metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The actor-system metrics of one node.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub(crate) sessions: IntGauge,
    connects: IntCounterVec,
    pub(crate) connect_failures: IntCounter,
    pub(crate) disconnects: IntCounter,
    bad_frames: IntCounterVec,
    /// `lyceum_actors_datagrams_total{outcome}`.
    pub(crate) datagrams: IntCounterVec,
}

impl Metrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let sessions = IntGauge::new(
            "lyceum_actors_sessions",
            "Actor-cluster sessions (one QUIC connection each) open to peers",
        )?;
        let connects = IntCounterVec::new(
            Opts::new(
                "lyceum_actors_connects_total",
                "Actor-cluster sessions opened, by which side dialled",
            ),
            &["direction"],
        )?;
        let connect_failures = IntCounter::new(
            "lyceum_actors_connect_failures_total",
            "Dials to a peer's actor endpoint that failed or timed out",
        )?;
        let disconnects = IntCounter::new(
            "lyceum_actors_disconnects_total",
            "Actor-cluster sessions closed (member down, replaced, error or bad frame)",
        )?;
        let bad_frames = IntCounterVec::new(
            Opts::new(
                "lyceum_actors_bad_frames_total",
                "Frames refused at the transport boundary, by reason; each drops its session",
            ),
            &["reason"],
        )?;
        let datagrams = IntCounterVec::new(
            Opts::new(
                "lyceum_actors_datagrams_total",
                "Datagrams on the actor sessions' connections: sent, received, or dropped \
                 (no session, too large, a fault rule, a full inbound queue)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(datagrams.clone()))?;
        for outcome in ["sent", "received", "dropped"] {
            datagrams.with_label_values(&[outcome]).reset();
        }
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(connects.clone()))?;
        registry.register(Box::new(connect_failures.clone()))?;
        registry.register(Box::new(disconnects.clone()))?;
        registry.register(Box::new(bad_frames.clone()))?;
        for direction in [Direction::Outbound, Direction::Inbound] {
            connects.with_label_values(&[direction.as_str()]).reset();
        }
        for reason in BadFrame::ALL {
            bad_frames.with_label_values(&[reason.as_str()]).reset();
        }
        Ok(Self {
            sessions,
            connects,
            connect_failures,
            disconnects,
            bad_frames,
            datagrams,
        })
    }

    pub(crate) fn connected(&self, direction: Direction) {
        self.connects.with_label_values(&[direction.as_str()]).inc();
    }

    pub(crate) fn bad_frame(&self, reason: BadFrame) {
        self.bad_frames.with_label_values(&[reason.as_str()]).inc();
    }

    pub(crate) fn bad_frame_count(&self, reason: BadFrame) -> u64 {
        self.bad_frames.with_label_values(&[reason.as_str()]).get()
    }
}
