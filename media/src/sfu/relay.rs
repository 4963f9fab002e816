//! Audio between edges. A class's publishers and listeners may sit on
//! different edges; each edge that has listeners in a room takes exactly one
//! copy of every publisher of that room from the publisher's edge, and fans
//! it out to its own listeners itself.
//!
//! The SFU knows nothing of the network: a local publisher's forwarded
//! packets go to the node's [`RelayOut`] (which knows which edges want the
//! room, and sends one copy to each), and the node hands packets that
//! arrived from other edges to [`crate::Sfu::relayed`]. A relayed publisher
//! takes a slot in its room here as a local one does, appears in the room's
//! media state (`relayed: true`), counts for the active speaker by the
//! audio level its edge sent along, and leaves its slot when its packets
//! stop for `relay_idle_ms` (it stopped, was muted at its edge, or that
//! edge went away). Rights are enforced where the publisher is: a muted
//! learner's packets never leave her edge.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::time::Instant;
use webrtc::rtp::packet::Packet;
use webrtc::util::Marshal;

use crate::signal::MediaRole;

/// One local publisher's packet, on its way to the edges that listen.
#[derive(Debug, Clone, Copy)]
pub struct RelayedPacket<'a> {
    /// The publisher's room.
    pub room: &'a str,
    /// The publisher (its peer id).
    pub publisher: &'a str,
    /// Its role, so other edges show it.
    pub role: MediaRole,
    /// The packet's RFC 6464 level in -dBov (0 loudest, 127 silence), for
    /// the other edges' active speaker; the header extension itself is
    /// stripped, since its id was negotiated with the publisher only.
    pub level: Option<u8>,
    /// The RTP packet, marshalled, without header extensions.
    pub rtp: &'a [u8],
}

/// Where the SFU hands each forwarded local packet for other edges. Called
/// on the publisher's forwarding task for every packet it forwards: it must
/// not block (send a datagram, or drop).
pub trait RelayOut: Send + Sync {
    /// One packet of a local publisher that is being heard.
    fn publish(&self, packet: RelayedPacket<'_>);
}

/// A publisher of another edge, as a room here holds it.
#[derive(Debug)]
pub(super) struct Relayed {
    pub(super) slot: u8,
    pub(super) role: MediaRole,
    pub(super) last: Instant,
    /// As a local peer's `Control::loudness`: `128 - dBov`, 0 for nothing.
    loudness: AtomicU32,
}

impl Relayed {
    pub(super) fn new(slot: u8, role: MediaRole, now: Instant) -> Self {
        Self {
            slot,
            role,
            last: now,
            loudness: AtomicU32::new(0),
        }
    }

    /// The loudness since the last call (`128 - dBov`, 0 for nothing),
    /// reset for the next active-speaker round.
    pub(super) fn take_loudness(&self) -> u32 {
        self.loudness.swap(0, Ordering::AcqRel)
    }

    pub(super) fn heard(&mut self, now: Instant, level: Option<u8>) {
        self.last = now;
        if let Some(level) = level {
            self.loudness
                .fetch_max(128 - u32::from(level & 0x7f), Ordering::AcqRel);
        }
    }
}

/// Hands one forwarded local packet to `relay`, without its header
/// extensions.
pub(super) fn send(
    relay: &dyn RelayOut,
    room: &str,
    publisher: &str,
    role: MediaRole,
    level: Option<u8>,
    packet: &Packet,
) {
    let mut copy = packet.clone();
    copy.header.extension = false;
    copy.header.extension_profile = 0;
    copy.header.extensions.clear();
    let Ok(rtp) = copy.marshal() else { return };
    relay.publish(RelayedPacket {
        room,
        publisher,
        role,
        level,
        rtp: &rtp,
    });
}
