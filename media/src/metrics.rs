//! The SFU's Prometheus metrics, registered on the process's registry by the
//! node (which adds the `lyceum_` prefix). Names end in `_total` or a unit;
//! the only label, `reason`, takes values from a closed set.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a packet was not forwarded: the closed set of `reason` labels.
/// `relay`: a relayed packet that did not parse, for a room nobody here is
/// in, or with no free slot.
pub const DROP_REASONS: [&str; 3] = ["muted", "rate", "relay"];

/// The SFU's counters and gauges.
#[derive(Clone)]
pub struct MediaMetrics {
    /// Peer connections on this edge.
    pub peers: IntGauge,
    /// Audio tracks being published into rooms.
    pub published_tracks: IntGauge,
    /// RTP packets written to listeners.
    pub forwarded_packets: IntCounter,
    /// RTP payload and header bytes written to listeners.
    pub forwarded_bytes: IntCounter,
    /// Packets received from publishers and not forwarded, by reason.
    pub dropped_packets: IntCounterVec,
    /// Peers removed because they never connected, failed or fell behind.
    pub peers_reaped: IntCounter,
    /// Packets that arrived relayed from other edges.
    pub relayed_in_packets: IntCounter,
    /// Publishers of other edges heard in a room here now.
    pub relayed_publishers: IntGauge,
    /// From a peer's join to its connection being up (offer, answer, ICE,
    /// DTLS), in seconds.
    pub join_seconds: Histogram,
    /// Interarrival jitter listeners report in RTCP receiver reports about
    /// what the SFU sends them, in seconds.
    pub rtcp_jitter_seconds: Histogram,
    /// Fraction of packets lost that listeners report in RTCP receiver
    /// reports, 0 to 1.
    pub rtcp_loss_ratio: Histogram,
}

impl MediaMetrics {
    /// Builds the metrics; they count from the start even when not registered.
    ///
    /// # Panics
    /// Never: the names and labels are constants known to be valid.
    #[expect(
        clippy::expect_used,
        reason = "constant metric definitions cannot fail"
    )]
    pub fn new() -> Self {
        let dropped_packets = IntCounterVec::new(
            Opts::new(
                "media_dropped_packets_total",
                "publisher packets not forwarded, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in DROP_REASONS {
            dropped_packets.with_label_values(&[reason]);
        }
        Self {
            peers: IntGauge::new("media_peers", "peer connections on this edge")
                .expect("valid metric"),
            published_tracks: IntGauge::new(
                "media_published_tracks",
                "audio tracks being published",
            )
            .expect("valid metric"),
            forwarded_packets: IntCounter::new(
                "media_forwarded_packets_total",
                "rtp packets written to listeners",
            )
            .expect("valid metric"),
            forwarded_bytes: IntCounter::new(
                "media_forwarded_bytes_total",
                "rtp bytes written to listeners",
            )
            .expect("valid metric"),
            dropped_packets,
            peers_reaped: IntCounter::new(
                "media_reaped_peers_total",
                "peers removed without leaving: never connected, ice failed, or too slow",
            )
            .expect("valid metric"),
            relayed_in_packets: IntCounter::new(
                "media_relayed_in_packets_total",
                "rtp packets relayed here from other edges",
            )
            .expect("valid metric"),
            relayed_publishers: IntGauge::new(
                "media_relayed_publishers",
                "publishers of other edges heard in a room here",
            )
            .expect("valid metric"),
            join_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "media_join_seconds",
                    "from a peer's join to its connection being up",
                )
                .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )
            .expect("valid metric"),
            rtcp_jitter_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "media_rtcp_jitter_seconds",
                    "interarrival jitter listeners report in rtcp receiver reports",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32,
                ]),
            )
            .expect("valid metric"),
            rtcp_loss_ratio: Histogram::with_opts(
                HistogramOpts::new(
                    "media_rtcp_loss_ratio",
                    "fraction of packets lost that listeners report in rtcp receiver reports",
                )
                .buckets(vec![0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
            )
            .expect("valid metric"),
        }
    }

    /// Registers every metric on `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.peers.clone()))?;
        registry.register(Box::new(self.published_tracks.clone()))?;
        registry.register(Box::new(self.forwarded_packets.clone()))?;
        registry.register(Box::new(self.forwarded_bytes.clone()))?;
        registry.register(Box::new(self.dropped_packets.clone()))?;
        registry.register(Box::new(self.peers_reaped.clone()))?;
        registry.register(Box::new(self.relayed_in_packets.clone()))?;
        registry.register(Box::new(self.relayed_publishers.clone()))?;
        registry.register(Box::new(self.join_seconds.clone()))?;
        registry.register(Box::new(self.rtcp_jitter_seconds.clone()))?;
        registry.register(Box::new(self.rtcp_loss_ratio.clone()))?;
        Ok(())
    }
}

impl Default for MediaMetrics {
    fn default() -> Self {
        Self::new()
    }
}
