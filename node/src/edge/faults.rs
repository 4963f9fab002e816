//! The gossip fault rules an operator may set on an edge when fault
//! injection is on (`edge.fault_injection`): the JSON body of
//! `/api/v1/operator/faults` and its translation to gossip's filter. A leaf:
//! the shared state holds the rules in force, the operator routes edit them.

use gossip::NodeId;

use crate::control_plane_link::CONTROL_PLANE_PEER;

/// Body of `PUT /api/v1/operator/faults` (and answer of `GET`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRules {
    /// The rules, in the order given.
    pub(crate) rules: Vec<FaultRuleBody>,
    /// Keep the rules only this long, then clear them (unless they were
    /// replaced meanwhile): a chaos drill's faults heal themselves even if
    /// the drill dies. Absent: until changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) for_ms: Option<u64>,
}

/// One rule: a peer (node id, or `control-plane` for this edge's calls to
/// the control plane, which can only be cut) and what to do with its
/// traffic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRuleBody {
    /// The peer's node id.
    peer: String,
    /// What happens to its traffic.
    action: FaultActionBody,
    /// How long to hold each packet, for `delay` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
}

/// What to do with gossip traffic to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultActionBody {
    /// Packets to the peer are lost.
    Drop,
    /// Packets to the peer wait `delay_ms`.
    Delay,
    /// The connection to the peer is cut.
    Cut,
}

impl FaultRules {
    /// Whether a rule cuts this edge's calls to the control plane.
    pub(crate) fn cuts_control_plane(&self) -> bool {
        self.rules.iter().any(|r| r.peer == CONTROL_PLANE_PEER)
    }

    /// The filter gossip applies, or which rule is wrong.
    pub(crate) fn to_filter(&self) -> Result<gossip::FaultFilter, String> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.peer == CONTROL_PLANE_PEER {
                if rule.action != FaultActionBody::Cut || rule.delay_ms.is_some() {
                    return Err(format!(
                        "rules[{i}]: the control plane's link can only be cut"
                    ));
                }
                continue;
            }
            let peer = NodeId::new(&rule.peer).map_err(|err| format!("rules[{i}].peer: {err}"))?;
            let action = match (rule.action, rule.delay_ms) {
                (FaultActionBody::Drop, None) => gossip::FaultAction::Drop,
                (FaultActionBody::Cut, None) => gossip::FaultAction::Cut,
                (FaultActionBody::Delay, Some(ms)) if ms > 0 => gossip::FaultAction::DelayMs(ms),
                (FaultActionBody::Delay, _) => {
                    return Err(format!("rules[{i}]: delay needs delay_ms of at least 1"))
                }
                (_, Some(_)) => {
                    return Err(format!("rules[{i}]: delay_ms goes only with action delay"))
                }
            };
            rules.push(gossip::FaultRule {
                peer: gossip::PeerSelector::NodeId(peer),
                action,
            });
        }
        gossip::FaultFilter::new(rules).map_err(|err| err.to_string())
    }
}
