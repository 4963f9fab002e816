//! Keeps one listening slot's RTP stream continuous while its publisher
//! changes: sequence numbers and timestamps carry on from the last packet
//! written, so the browser's jitter buffer sees one stream with no jump.
//! Header extensions are dropped, because their ids were negotiated with
//! the publisher, not with the listener (a stray MID would misroute the
//! packet at the listener). Payloads are never touched.

use webrtc::rtp::packet::Packet;

/// RTP timestamp ticks of one 20 ms Opus frame at 48 kHz: the gap put
/// between the last packet of one publisher and the first of the next.
const FRAME_TICKS: u32 = 960;

/// The rewriting state of one listener's slot.
#[derive(Debug, Default, Clone)]
pub struct Rewriter {
    source: Option<u32>,
    seq_delta: u16,
    ts_delta: u32,
    last_seq: u16,
    last_ts: u32,
}

impl Rewriter {
    /// Rewrites `packet`'s header for this slot.
    pub fn rewrite(&mut self, packet: &mut Packet) {
        let ssrc = packet.header.ssrc;
        if self.source != Some(ssrc) {
            if self.source.is_some() {
                self.seq_delta = self
                    .last_seq
                    .wrapping_add(1)
                    .wrapping_sub(packet.header.sequence_number);
                self.ts_delta = self
                    .last_ts
                    .wrapping_add(FRAME_TICKS)
                    .wrapping_sub(packet.header.timestamp);
            }
            self.source = Some(ssrc);
        }
        packet.header.sequence_number = packet.header.sequence_number.wrapping_add(self.seq_delta);
        packet.header.timestamp = packet.header.timestamp.wrapping_add(self.ts_delta);
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        self.last_seq = packet.header.sequence_number;
        self.last_ts = packet.header.timestamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> Packet {
        let mut packet = Packet::default();
        packet.header.ssrc = ssrc;
        packet.header.sequence_number = seq;
        packet.header.timestamp = ts;
        packet
    }

    #[test]
    fn a_new_publisher_carries_on_where_the_last_stopped() {
        let mut slot = Rewriter::default();
        let mut out = Vec::new();
        for (ssrc, seq, ts) in [(1, 65_535, 100), (1, 0, 1_060), (2, 500, 7), (2, 501, 967)] {
            let mut p = packet(ssrc, seq, ts);
            slot.rewrite(&mut p);
            out.push((p.header.sequence_number, p.header.timestamp));
        }
        assert_eq!(out, [(65_535, 100), (0, 1_060), (1, 2_020), (2, 2_980)]);
    }
}
