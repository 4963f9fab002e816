//! The fault rules an operator may set on an edge when fault injection is on
//! (`edge.fault_injection`): the JSON body of `/api/v1/operator/faults` and
//! its translation to gossip's filter and to the control-plane link's fault.
//! A leaf: the shared state holds the rules in force, the operator routes
//! edit them.

use gossip::{Degrade, FaultAction, FaultDirection, FaultError, NodeId};

use crate::control_plane_link::{LinkFault, CONTROL_PLANE_PEER};

/// Body of `PUT /api/v1/operator/faults` (and answer of `GET`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
/// the control plane, which can only be cut or degraded), which way, and
/// what to do with its traffic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRuleBody {
    /// The peer's node id.
    peer: String,
    /// What happens to its traffic.
    action: FaultActionBody,
    /// Which traffic: both ways (absent), or only what this edge sends or
    /// receives. Kept as given, so `GET` answers what was put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direction: Option<DirectionBody>,
    /// How long to hold each packet, for `delay` and `degrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    /// Uniform jitter around `delay_ms`, for `degrade` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter_ms: Option<u64>,
    /// Share of packets lost, for `degrade` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_percent: Option<f64>,
}

/// What to do with traffic to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultActionBody {
    /// Packets are lost.
    Drop,
    /// Packets wait `delay_ms`.
    Delay,
    /// Packets are lost at `loss_percent`, the others wait `delay_ms` ±
    /// `jitter_ms`.
    Degrade,
    /// The connection to the peer is cut.
    Cut,
}

/// Which traffic with a peer a rule acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DirectionBody {
    /// To and from the peer.
    #[default]
    Both,
    /// Only what this edge sends to the peer.
    Outbound,
    /// Only what this edge receives from the peer.
    Inbound,
}

impl From<DirectionBody> for FaultDirection {
    fn from(direction: DirectionBody) -> Self {
        match direction {
            DirectionBody::Both => Self::Both,
            DirectionBody::Outbound => Self::Outbound,
            DirectionBody::Inbound => Self::Inbound,
        }
    }
}

/// Why a body of fault rules was refused; each names the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum FaultBodyError {
    /// The peer is not a node id (nor `control-plane`).
    #[error("rules[{index}].peer: {reason}")]
    Peer { index: usize, reason: String },
    /// A key that the rule's action does not take.
    #[error("rules[{index}]: {key} goes only with action {with}")]
    StrayKey {
        index: usize,
        key: &'static str,
        with: &'static str,
    },
    /// A `delay` without a delay.
    #[error("rules[{index}]: delay needs delay_ms of at least 1")]
    NoDelay { index: usize },
    /// `drop` or `delay` for the control plane.
    #[error("rules[{index}]: the control plane's link can only be cut or degraded")]
    ControlPlaneAction { index: usize },
    /// Refused by gossip's checks (limits, jitter, loss, a one-way cut).
    #[error("rules[{index}]: {source}")]
    Rule { index: usize, source: FaultError },
    /// Refused as a whole (too many rules).
    #[error("{0}")]
    Filter(FaultError),
}

impl FaultRuleBody {
    /// Which traffic the rule acts on.
    fn direction(&self) -> FaultDirection {
        self.direction.unwrap_or_default().into()
    }

    /// The gossip action of this rule, checked.
    fn action(&self, index: usize) -> Result<FaultAction, FaultBodyError> {
        let stray = |key, with| Err(FaultBodyError::StrayKey { index, key, with });
        let (delay, jitter, loss) = (self.delay_ms, self.jitter_ms, self.loss_percent);
        if jitter.is_some() && self.action != FaultActionBody::Degrade {
            return stray("jitter_ms", "degrade");
        }
        if loss.is_some() && self.action != FaultActionBody::Degrade {
            return stray("loss_percent", "degrade");
        }
        let action = match self.action {
            FaultActionBody::Drop | FaultActionBody::Cut if delay.is_some() => {
                return stray("delay_ms", "delay or degrade")
            }
            FaultActionBody::Drop => FaultAction::Drop,
            FaultActionBody::Cut => FaultAction::Cut,
            FaultActionBody::Delay => match delay {
                Some(ms) if ms > 0 => FaultAction::DelayMs(ms),
                _ => return Err(FaultBodyError::NoDelay { index }),
            },
            FaultActionBody::Degrade => FaultAction::Degrade(
                Degrade::new(delay.unwrap_or(0), jitter.unwrap_or(0), loss.unwrap_or(0.0))
                    .map_err(|source| FaultBodyError::Rule { index, source })?,
            ),
        };
        // The peer plays no part in a rule's own checks.
        let rule = gossip::FaultRule {
            peer: gossip::PeerSelector::Addr(([0, 0, 0, 0], 0).into()),
            action,
            direction: self.direction(),
        };
        rule.validate()
            .map_err(|source| FaultBodyError::Rule { index, source })?;
        Ok(action)
    }
}

impl FaultRules {
    /// What the rules do to this edge's link to the control plane: cut by
    /// any `cut` rule, each way degraded by the first `degrade` rule that
    /// covers it. Rules that do not check out count for nothing (the routes
    /// refuse them before this is asked).
    pub(crate) fn link_fault(&self) -> LinkFault {
        let mut fault = LinkFault::default();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.peer != CONTROL_PLANE_PEER {
                continue;
            }
            match rule.action(index) {
                Ok(FaultAction::Cut) => fault.cut = true,
                Ok(FaultAction::Degrade(degrade)) => {
                    let direction = rule.direction();
                    if direction.covers(gossip::PacketWay::Outbound) {
                        fault.outbound = fault.outbound.or(Some(degrade));
                    }
                    if direction.covers(gossip::PacketWay::Inbound) {
                        fault.inbound = fault.inbound.or(Some(degrade));
                    }
                }
                _ => {}
            }
        }
        fault
    }

    /// The filter gossip applies, or which rule is wrong.
    pub(crate) fn to_filter(&self) -> Result<gossip::FaultFilter, FaultBodyError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.iter().enumerate() {
            let action = rule.action(index)?;
            if rule.peer == CONTROL_PLANE_PEER {
                if !matches!(action, FaultAction::Cut | FaultAction::Degrade(_)) {
                    return Err(FaultBodyError::ControlPlaneAction { index });
                }
                continue;
            }
            let peer = NodeId::new(&rule.peer).map_err(|err| FaultBodyError::Peer {
                index,
                reason: err.to_string(),
            })?;
            rules.push(gossip::FaultRule {
                peer: gossip::PeerSelector::NodeId(peer),
                action,
                direction: rule.direction(),
            });
        }
        gossip::FaultFilter::new(rules).map_err(FaultBodyError::Filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body's verdict: the error's words, or `ok`.
    fn check(body: serde_json::Value, expected: &str) {
        let rules: FaultRules = match serde_json::from_value(body) {
            Ok(rules) => rules,
            Err(err) => {
                assert_eq!(err.to_string(), expected);
                return;
            }
        };
        let got = match rules.to_filter() {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.to_string(),
        };
        assert_eq!(got, expected);
    }

    fn one(rule: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "rules": [rule] })
    }

    #[test]
    fn bodies() {
        use serde_json::json;
        let max = gossip::fault::FAULT_DELAY_MS_MAX;
        check(one(json!({"peer": "eu-west-1", "action": "drop"})), "ok");
        check(
            one(json!({"peer": "eu-west-1", "action": "drop", "direction": "outbound"})),
            "ok",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "drop", "direction": "sideways"})),
            "unknown variant `sideways`, expected one of `both`, `outbound`, `inbound`",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "cut", "direction": "outbound"})),
            "rules[0]: a cut acts both ways (a QUIC connection cannot be half cut), not outbound",
        );
        check(
            one(json!({"peer": "control-plane", "action": "cut", "direction": "inbound"})),
            "rules[0]: a cut acts both ways (a QUIC connection cannot be half cut), not inbound",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "degrade", "delay_ms": 0})),
            "ok",
        );
        check(
            one(
                json!({"peer": "eu-west-1", "action": "degrade", "delay_ms": max, "jitter_ms": max, "loss_percent": 100.0}),
            ),
            "ok",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "degrade", "delay_ms": max + 1})),
            "rules[0]: fault delays are at most 60000 ms, got 60001",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "degrade", "delay_ms": 10, "jitter_ms": 11})),
            "rules[0]: jitter_ms (11) may not exceed delay_ms (10)",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "degrade", "loss_percent": 101})),
            "rules[0]: loss_percent must be a number from 0 to 100, got 101",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "degrade", "loss_percent": -1})),
            "rules[0]: loss_percent must be a number from 0 to 100, got -1",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "drop", "jitter_ms": 1})),
            "rules[0]: jitter_ms goes only with action degrade",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "delay", "loss_percent": 1})),
            "rules[0]: loss_percent goes only with action degrade",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "cut", "delay_ms": 1})),
            "rules[0]: delay_ms goes only with action delay or degrade",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "delay"})),
            "rules[0]: delay needs delay_ms of at least 1",
        );
        check(
            one(json!({"peer": "control-plane", "action": "drop"})),
            "rules[0]: the control plane's link can only be cut or degraded",
        );
        check(
            one(json!({"peer": "control-plane", "action": "delay", "delay_ms": 5})),
            "rules[0]: the control plane's link can only be cut or degraded",
        );
        check(
            one(
                json!({"peer": "control-plane", "action": "degrade", "delay_ms": 5, "direction": "inbound"}),
            ),
            "ok",
        );
        check(
            one(json!({"peer": "eu-west-1", "action": "drop", "colour": "red"})),
            "unknown field `colour`, expected one of `peer`, `action`, `direction`, `delay_ms`, `jitter_ms`, `loss_percent`",
        );
    }

    #[test]
    fn nan_loss_is_refused() {
        let body = FaultRules {
            rules: vec![FaultRuleBody {
                peer: "eu-west-1".to_owned(),
                action: FaultActionBody::Degrade,
                direction: None,
                delay_ms: Some(10),
                jitter_ms: None,
                loss_percent: Some(f64::NAN),
            }],
            for_ms: None,
        };
        assert!(matches!(
            body.to_filter(),
            Err(FaultBodyError::Rule {
                index: 0,
                source: FaultError::LossOutOfRange(l)
            }) if l.is_nan()
        ));
    }

    #[test]
    fn the_control_plane_link_takes_cuts_and_degrades() {
        use serde_json::json;
        let rules: FaultRules = serde_json::from_value(json!({"rules": [
            {"peer": "eu-west-1", "action": "cut"},
            {"peer": "control-plane", "action": "degrade", "delay_ms": 40, "direction": "outbound"},
            {"peer": "control-plane", "action": "degrade", "delay_ms": 10},
        ]}))
        .expect("body");
        let fault = rules.link_fault();
        assert!(!fault.cut);
        assert_eq!(fault.outbound.map(|d| d.delay_ms()), Some(40));
        assert_eq!(fault.inbound.map(|d| d.delay_ms()), Some(10));
        let cut: FaultRules =
            serde_json::from_value(json!({"rules": [{"peer": "control-plane", "action": "cut"}]}))
                .expect("body");
        assert!(cut.link_fault().cut);
        assert_eq!(FaultRules::default().link_fault(), LinkFault::default());
    }
}
