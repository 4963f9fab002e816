//! Datagrams between nodes on the actor sessions' QUIC connections: the
//! cluster's authenticated fabric (mutual TLS, one connection per peer) for
//! traffic that must never wait behind a retransmission, such as relayed
//! audio. Unreliable by design, as UDP: a datagram is sent only while a
//! session with the peer is up, is dropped when the peer's queue is full,
//! and is never retransmitted. The sender is named by its connection's
//! certificate, never by anything in the datagram.
//!
//! Fault rules apply as to gossip's packets: a `drop` or a `cut` for the
//! peer drops its datagrams both ways (a `delay` or `degrade` does not hold
//! them back: a late audio packet is useless).

use bytes::Bytes;
use gossip::NodeId;

/// Bytes of datagrams QUIC buffers per connection, each way, before it
/// drops (receive) or discards the oldest (send): about a second of a
/// dozen relayed audio tracks.
pub const DATAGRAM_BUFFER_BYTES: usize = 1024 * 1024;
/// Received datagrams queued for the node's one consumer; more are
/// dropped and counted.
pub const INBOUND_DATAGRAMS_MAX: usize = 4096;

/// One datagram from a peer.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// The peer, as its certificate names it.
    pub from: NodeId,
    /// What it sent.
    pub bytes: Bytes,
}

/// Why a datagram was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// No session with the peer is up now.
    #[error("no actor session with {0}")]
    NoSession(NodeId),
    /// Larger than the path allows (`max_datagram_size`).
    #[error("datagram of {len} bytes over the path's {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// What the connection takes.
        max: usize,
    },
    /// A fault rule drops traffic with the peer.
    #[error("a fault rule drops traffic with {0}")]
    Faulted(NodeId),
    /// The connection refused it (closed meanwhile, or datagrams off).
    #[error("datagram refused: {0}")]
    Refused(String),
}
