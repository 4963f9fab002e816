//! Fault injection in the gossip transport: per-peer rules that drop, delay or
//! cut the traffic with one peer, switchable while the node runs. It exists so
//! that tests (and the operator chaos drills of the `chaos` crate) can make the
//! failure-detection paths run on real nodes. It is off by default: an empty
//! filter passes everything.

use std::net::SocketAddr;

use crate::names::NodeId;

/// Most rules one filter holds.
pub const FAULT_RULES_MAX: usize = 64;
/// Longest delay a rule may add, in milliseconds.
pub const FAULT_DELAY_MS_MAX: u64 = 60_000;

/// Which peer a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSelector {
    /// The peer whose certificate names this node.
    NodeId(NodeId),
    /// The peer at this QUIC address.
    Addr(SocketAddr),
}

/// What happens to traffic with the selected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Gossip packets to and from the peer are dropped; connections stay up.
    Drop,
    /// Gossip packets to and from the peer are held back this long.
    DelayMs(u64),
    /// Connections to the peer are closed and no new ones are made or
    /// accepted, as in a network partition.
    Cut,
}

/// One rule: a peer and what to do with its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Which peer.
    pub peer: PeerSelector,
    /// What to do.
    pub action: FaultAction,
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// More than [`FAULT_RULES_MAX`] rules.
    #[error("at most {FAULT_RULES_MAX} fault rules, got {0}")]
    TooManyRules(usize),
    /// A delay longer than [`FAULT_DELAY_MS_MAX`].
    #[error("fault delays are at most {FAULT_DELAY_MS_MAX} ms, got {0}")]
    DelayTooLong(u64),
}

/// A set of fault rules; the first rule matching a peer decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultFilter {
    rules: Vec<FaultRule>,
}

impl FaultFilter {
    /// A filter that passes everything.
    pub fn none() -> Self {
        Self::default()
    }

    /// A filter from rules.
    ///
    /// # Errors
    /// [`FaultError`] when there are too many rules or a delay is too long.
    pub fn new(rules: Vec<FaultRule>) -> Result<Self, FaultError> {
        if rules.len() > FAULT_RULES_MAX {
            return Err(FaultError::TooManyRules(rules.len()));
        }
        if let Some(delay_ms) = rules.iter().find_map(|rule| match rule.action {
            FaultAction::DelayMs(ms) if ms > FAULT_DELAY_MS_MAX => Some(ms),
            _ => None,
        }) {
            return Err(FaultError::DelayTooLong(delay_ms));
        }
        Ok(Self { rules })
    }

    /// A filter with one rule.
    ///
    /// # Errors
    /// As [`FaultFilter::new`].
    pub fn single(peer: PeerSelector, action: FaultAction) -> Result<Self, FaultError> {
        Self::new(vec![FaultRule { peer, action }])
    }

    /// Whether the filter has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The action for a peer known by its address and, when known, its node id.
    pub fn action_for(&self, addr: SocketAddr, node_id: Option<&NodeId>) -> Option<FaultAction> {
        self.rules
            .iter()
            .find(|rule| match &rule.peer {
                PeerSelector::Addr(rule_addr) => *rule_addr == addr,
                PeerSelector::NodeId(rule_id) => node_id == Some(rule_id),
            })
            .map(|rule| rule.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_decides() {
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2000".parse().expect("addr");
        let id = NodeId::new("eu-west-1").expect("id");
        let filter = FaultFilter::new(vec![
            FaultRule {
                peer: PeerSelector::NodeId(id.clone()),
                action: FaultAction::Cut,
            },
            FaultRule {
                peer: PeerSelector::Addr(a),
                action: FaultAction::DelayMs(10),
            },
        ])
        .expect("valid");
        assert_eq!(filter.action_for(a, Some(&id)), Some(FaultAction::Cut));
        assert_eq!(filter.action_for(a, None), Some(FaultAction::DelayMs(10)));
        assert_eq!(filter.action_for(b, None), None);
        assert_eq!(FaultFilter::none().action_for(a, Some(&id)), None);
        assert_eq!(
            FaultFilter::single(
                PeerSelector::Addr(a),
                FaultAction::DelayMs(FAULT_DELAY_MS_MAX + 1)
            ),
            Err(FaultError::DelayTooLong(FAULT_DELAY_MS_MAX + 1))
        );
    }
}
