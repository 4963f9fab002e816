//! The receive path of one gossip datagram once the transport has
//! authenticated its connection: decode foca's header, check that the sender
//! it claims is the node the TLS certificate names, then let foca take it.
//! It is its own module, apart from sockets and tasks, so that the gossip
//! task, the fuzz targets (`gossip/fuzz`) and the property tests run the very
//! same code: whatever bytes arrive, the outcome is a handled packet or a drop
//! with a reason, never a panic.

use std::net::SocketAddr;

use foca::{AccumulatingRuntime, Codec, Header, PostcardCodec};

use crate::{cluster::SwimFoca, identity::NodeIdentity, metrics::DropReason, names::NodeId};

/// What became of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// foca took it (it may still ignore stale content, as SWIM does).
    Handled,
    /// Dropped, and counted under this reason.
    Dropped(DropReason),
    /// foca failed on its own side after taking the packet (an encode error
    /// or a state it did not expect): logged, not counted as a drop, since
    /// nothing says the packet was at fault.
    Failed,
}

/// Why a datagram was refused before foca saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes do not start with a foca header.
    #[error("malformed gossip packet: {0}")]
    Malformed(String),
    /// The header names another sender than the TLS certificate does.
    #[error("gossip packet claims to come from {claimed}, its certificate names {certificate}")]
    IdentityMismatch {
        /// The node the packet says it comes from.
        claimed: NodeId,
        /// The node the connection's certificate names.
        certificate: NodeId,
    },
}

impl Refusal {
    /// The drop reason this refusal is counted under.
    pub fn reason(&self) -> DropReason {
        match self {
            Refusal::Malformed(_) => DropReason::Malformed,
            Refusal::IdentityMismatch { .. } => DropReason::IdentityMismatch,
        }
    }
}

/// The checks a datagram passes before foca sees it: it must start with a
/// foca header (postcard), and the sender that header names must be
/// `from_node`, the node the TLS certificate of its connection names. foca
/// authenticates nothing, so this is what binds a packet to its sender.
///
/// # Errors
/// [`Refusal`] when the header does not decode or names another sender.
pub fn admit(bytes: &[u8], from_node: &NodeId) -> Result<Header<NodeIdentity>, Refusal> {
    let header: Header<NodeIdentity> = PostcardCodec
        .decode_header(bytes)
        .map_err(|err| Refusal::Malformed(err.to_string()))?;
    if header.src.node_id() != from_node {
        return Err(Refusal::IdentityMismatch {
            claimed: header.src.node_id().clone(),
            certificate: from_node.clone(),
        });
    }
    Ok(header)
}

/// How foca's refusal of an admitted packet is counted: the packet's fault
/// (it does not decode past the header, is too big, breaks the protocol or
/// carries a bad metadata broadcast) has a reason; foca's own failures
/// (`None`) are logged only.
pub fn refusal_reason(err: &foca::Error) -> Option<DropReason> {
    match err {
        foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::DataTooBig => {
            Some(DropReason::Malformed)
        }
        foca::Error::DataFromOurselves | foca::Error::IndirectForOurselves => {
            Some(DropReason::ProtocolViolation)
        }
        foca::Error::CustomBroadcast(_) => Some(DropReason::BadBroadcast),
        _ => None,
    }
}

/// Runs one datagram from `from_node` (as its certificate names it) through
/// [`admit`] and into `foca`, logging what was refused. The caller counts
/// [`Received::Dropped`] and acts on what foca put in `runtime`.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn receive(
    foca: &mut SwimFoca,
    runtime: &mut AccumulatingRuntime<NodeIdentity>,
    from_addr: SocketAddr,
    from_node: &NodeId,
    bytes: &[u8],
) -> Received {
    receive_from(foca, runtime, from_addr, from_node, bytes).0
}

/// [`receive`], also giving the sender's identity from the admitted header
/// (`None` when the packet was refused before foca saw it), which the relay
/// answers when the packet told us we are suspected.
pub(crate) fn receive_from(
    foca: &mut SwimFoca,
    runtime: &mut AccumulatingRuntime<NodeIdentity>,
    from_addr: SocketAddr,
    from_node: &NodeId,
    bytes: &[u8],
) -> (Received, Option<NodeIdentity>) {
    let sender = match admit(bytes, from_node) {
        Ok(header) => header.src,
        Err(Refusal::Malformed(err)) => {
            tracing::debug!(peer = %from_addr, node = %from_node, error = %err, "malformed gossip packet");
            return (Received::Dropped(DropReason::Malformed), None);
        }
        Err(Refusal::IdentityMismatch { claimed, .. }) => {
            tracing::warn!(
                peer = %from_addr,
                certificate = %from_node,
                claimed = %claimed,
                "gossip packet sender does not match its certificate"
            );
            return (Received::Dropped(DropReason::IdentityMismatch), None);
        }
    };
    let received = match foca.handle_data(bytes, runtime) {
        Ok(()) => Received::Handled,
        Err(err) => {
            tracing::debug!(peer = %from_addr, node = %from_node, error = %err, "gossip packet refused");
            refusal_reason(&err).map_or(Received::Failed, Received::Dropped)
        }
    };
    (received, Some(sender))
}
