//! Fault injection in the gossip transport: per-peer rules that drop, delay,
//! degrade or cut the traffic with one peer, switchable while the node runs.
//! It exists so that tests (and the operator chaos drills of the `chaos`
//! crate) can make the failure-detection paths run on real nodes. It is off
//! by default: an empty filter passes everything.
//!
//! A rule acts on the packets this node sends to the peer (`Outbound`), on
//! those it receives from it (`Inbound`), or on both (the default). A cut
//! always acts both ways: it closes the QUIC connection, which cannot be half
//! closed. A `Degrade` decides each packet's fate with a [`FaultRng`], which
//! tests seed, so its loss and jitter can be checked.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rand_0_10::{rngs::SmallRng, RngExt, SeedableRng};

use crate::names::NodeId;

/// Most rules one filter holds.
pub const FAULT_RULES_MAX: usize = 64;
/// Longest delay a rule may add, in milliseconds (jitter included: a
/// degrade's `delay_ms + jitter_ms` may reach twice this).
pub const FAULT_DELAY_MS_MAX: u64 = 60_000;
/// Highest loss a degrade may have, in percent.
pub const FAULT_LOSS_PERCENT_MAX: f64 = 100.0;
/// On a reliable path (a stream, a request), most times a degrade's lost
/// packet is sent again, one extra delay each, before it counts as lost for
/// good (see [`Degrade::reliable_wait`]).
pub const FAULT_RESENDS_MAX: u32 = 8;

/// Which peer a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSelector {
    /// The peer whose certificate names this node.
    NodeId(NodeId),
    /// The peer at this QUIC address.
    Addr(SocketAddr),
}

/// Which traffic with the peer a rule acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultDirection {
    /// Packets to and from the peer.
    #[default]
    Both,
    /// Only packets this node sends to the peer.
    Outbound,
    /// Only packets this node receives from the peer.
    Inbound,
}

impl FaultDirection {
    /// The word the fault API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }

    /// Whether a rule in this direction acts on a packet travelling `way`.
    pub fn covers(self, way: PacketWay) -> bool {
        matches!(
            (self, way),
            (Self::Both, _)
                | (Self::Outbound, PacketWay::Outbound)
                | (Self::Inbound, PacketWay::Inbound)
        )
    }
}

/// Which way one packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketWay {
    /// Sent by this node.
    Outbound,
    /// Received by this node.
    Inbound,
}

/// A slow, lossy link: each packet is lost with probability
/// `loss_percent / 100`, otherwise held `delay_ms` plus or minus a uniform
/// jitter of at most `jitter_ms`. Only [`Degrade::new`] makes one, so its
/// bounds always hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Degrade {
    delay_ms: u64,
    jitter_ms: u64,
    loss_percent: f64,
}

impl Degrade {
    /// A degrade, checked.
    ///
    /// # Errors
    /// [`FaultError::DelayTooLong`] above [`FAULT_DELAY_MS_MAX`],
    /// [`FaultError::JitterOverDelay`] when `jitter_ms > delay_ms`,
    /// [`FaultError::LossOutOfRange`] for a loss outside 0 to
    /// [`FAULT_LOSS_PERCENT_MAX`] or not a number.
    pub fn new(delay_ms: u64, jitter_ms: u64, loss_percent: f64) -> Result<Self, FaultError> {
        if delay_ms > FAULT_DELAY_MS_MAX {
            return Err(FaultError::DelayTooLong(delay_ms));
        }
        if jitter_ms > delay_ms {
            return Err(FaultError::JitterOverDelay {
                jitter_ms,
                delay_ms,
            });
        }
        if !(0.0..=FAULT_LOSS_PERCENT_MAX).contains(&loss_percent) {
            return Err(FaultError::LossOutOfRange(loss_percent));
        }
        Ok(Self {
            delay_ms,
            jitter_ms,
            loss_percent,
        })
    }

    /// The delay, in milliseconds.
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }

    /// The jitter around the delay, in milliseconds.
    pub fn jitter_ms(&self) -> u64 {
        self.jitter_ms
    }

    /// The share of packets lost, in percent.
    pub fn loss_percent(&self) -> f64 {
        self.loss_percent
    }

    /// The fate of one packet.
    pub fn roll(&self, rng: &mut FaultRng) -> Fate {
        if self.loss_percent > 0.0
            && rng.0.random_range(0.0..FAULT_LOSS_PERCENT_MAX) < self.loss_percent
        {
            return Fate::Drop;
        }
        let ms = if self.jitter_ms == 0 {
            self.delay_ms
        } else {
            rng.0
                .random_range(self.delay_ms - self.jitter_ms..=self.delay_ms + self.jitter_ms)
        };
        Fate::hold_ms(ms)
    }

    /// How long one packet takes on a reliable path, where a lost packet is
    /// sent again after one extra `delay_ms` and drawn again; `None` when it
    /// is lost more than [`FAULT_RESENDS_MAX`] times.
    pub fn reliable_wait(&self, rng: &mut FaultRng) -> Option<Duration> {
        let extra = Duration::from_millis(self.delay_ms);
        let mut total = Duration::ZERO;
        for _ in 0..=FAULT_RESENDS_MAX {
            match self.roll(rng) {
                Fate::Pass => return Some(total),
                Fate::Hold(held) => return Some(total + held),
                Fate::Drop => total += extra,
            }
        }
        None
    }
}

/// What happens to traffic with the selected peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultAction {
    /// Gossip packets are dropped; connections stay up.
    Drop,
    /// Gossip packets are held back this long.
    DelayMs(u64),
    /// Gossip packets are lost or held back at random (see [`Degrade`]).
    Degrade(Degrade),
    /// Connections to the peer are closed and no new ones are made or
    /// accepted, as in a network partition. Always both ways.
    Cut,
}

/// One rule: a peer, which of its traffic, and what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Which peer.
    pub peer: PeerSelector,
    /// What to do.
    pub action: FaultAction,
    /// Which way the packets it acts on travel.
    pub direction: FaultDirection,
}

impl FaultRule {
    /// A rule on traffic both ways.
    pub fn both_ways(peer: PeerSelector, action: FaultAction) -> Self {
        Self {
            peer,
            action,
            direction: FaultDirection::Both,
        }
    }

    /// Checks the rule on its own.
    ///
    /// # Errors
    /// [`FaultError::DelayTooLong`] for a delay above
    /// [`FAULT_DELAY_MS_MAX`], [`FaultError::CutOneWay`] for a cut that is
    /// not both ways, and a degrade's own errors (a [`Degrade`] made outside
    /// [`Degrade::new`] cannot exist, but its bounds are checked again).
    pub fn validate(&self) -> Result<(), FaultError> {
        match self.action {
            FaultAction::DelayMs(ms) if ms > FAULT_DELAY_MS_MAX => {
                Err(FaultError::DelayTooLong(ms))
            }
            FaultAction::Cut if self.direction != FaultDirection::Both => {
                Err(FaultError::CutOneWay(self.direction))
            }
            FaultAction::Degrade(d) => {
                Degrade::new(d.delay_ms, d.jitter_ms, d.loss_percent).map(drop)
            }
            _ => Ok(()),
        }
    }
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// More than [`FAULT_RULES_MAX`] rules.
    #[error("at most {FAULT_RULES_MAX} fault rules, got {0}")]
    TooManyRules(usize),
    /// A delay longer than [`FAULT_DELAY_MS_MAX`].
    #[error("fault delays are at most {FAULT_DELAY_MS_MAX} ms, got {0}")]
    DelayTooLong(u64),
    /// A degrade's jitter larger than its delay.
    #[error("jitter_ms ({jitter_ms}) may not exceed delay_ms ({delay_ms})")]
    JitterOverDelay {
        /// The jitter asked for.
        jitter_ms: u64,
        /// The delay it goes around.
        delay_ms: u64,
    },
    /// A degrade's loss outside 0 to 100 %, or not a number.
    #[error("loss_percent must be a number from 0 to {FAULT_LOSS_PERCENT_MAX}, got {0}")]
    LossOutOfRange(f64),
    /// A cut in one direction only.
    #[error("a cut acts both ways (a QUIC connection cannot be half cut), not {}", .0.as_str())]
    CutOneWay(FaultDirection),
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It goes on now.
    Pass,
    /// It is lost.
    Drop,
    /// It goes on after this long (never zero).
    Hold(Duration),
}

impl Fate {
    fn hold_ms(ms: u64) -> Self {
        if ms == 0 {
            Self::Pass
        } else {
            Self::Hold(Duration::from_millis(ms))
        }
    }
}

/// The randomness a degrade draws on: seeded, so a run can be replayed.
#[derive(Debug, Clone)]
pub struct FaultRng(SmallRng);

impl FaultRng {
    /// A generator from a seed.
    pub fn seeded(seed: u64) -> Self {
        Self(SmallRng::seed_from_u64(seed))
    }
}

/// A set of fault rules; the first rule matching a peer and a packet's way
/// decides.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// [`FaultError::TooManyRules`], or the first rule's error from
    /// [`FaultRule::validate`].
    pub fn new(rules: Vec<FaultRule>) -> Result<Self, FaultError> {
        if rules.len() > FAULT_RULES_MAX {
            return Err(FaultError::TooManyRules(rules.len()));
        }
        for rule in &rules {
            rule.validate()?;
        }
        Ok(Self { rules })
    }

    /// A filter with one rule, both ways.
    ///
    /// # Errors
    /// As [`FaultFilter::new`].
    pub fn single(peer: PeerSelector, action: FaultAction) -> Result<Self, FaultError> {
        Self::new(vec![FaultRule::both_ways(peer, action)])
    }

    /// Whether the filter has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The action for a packet travelling `way`, with a peer known by its
    /// address and, when known, its node id.
    pub fn action_for(
        &self,
        addr: SocketAddr,
        node_id: Option<&NodeId>,
        way: PacketWay,
    ) -> Option<FaultAction> {
        self.rules
            .iter()
            .find(|rule| {
                rule.direction.covers(way)
                    && match &rule.peer {
                        PeerSelector::Addr(rule_addr) => *rule_addr == addr,
                        PeerSelector::NodeId(rule_id) => node_id == Some(rule_id),
                    }
            })
            .map(|rule| rule.action)
    }

    /// Whether connections with the peer are cut.
    pub fn is_cut(&self, addr: SocketAddr, node_id: Option<&NodeId>) -> bool {
        // A cut is always both ways, so either way finds it.
        self.action_for(addr, node_id, PacketWay::Outbound) == Some(FaultAction::Cut)
    }

    /// The fate of one packet travelling `way`.
    pub fn fate(
        &self,
        addr: SocketAddr,
        node_id: Option<&NodeId>,
        way: PacketWay,
        rng: &mut FaultRng,
    ) -> Fate {
        match self.action_for(addr, node_id, way) {
            None => Fate::Pass,
            Some(FaultAction::Drop | FaultAction::Cut) => Fate::Drop,
            Some(FaultAction::DelayMs(ms)) => Fate::hold_ms(ms),
            Some(FaultAction::Degrade(degrade)) => degrade.roll(rng),
        }
    }
}

/// The filter a gossip node applies, shared with the other transports of
/// the same node (the actors' streams), which follow the same rules:
/// cheap to clone, always the rules in force now.
#[derive(Debug, Clone, Default)]
pub struct SharedFaults(Arc<RwLock<FaultFilter>>);

impl SharedFaults {
    pub(crate) fn new(filter: Arc<RwLock<FaultFilter>>) -> Self {
        Self(filter)
    }

    /// Replaces the rules (what [`crate::GossipHandle::set_fault_filter`]
    /// does; here for tests of other transports).
    pub fn set(&self, filter: FaultFilter) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = filter;
    }

    /// Whether datagrams travelling `way` with the peer `node_id` are
    /// dropped: a `drop` or `cut` rule naming the node id. Delays and
    /// degrades do not apply to them (other transports' unreliable traffic,
    /// such as relayed audio, where a late packet is no better than a lost
    /// one).
    pub fn drops(&self, node_id: &NodeId, way: PacketWay) -> bool {
        let action = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .action_for(SocketAddr::from(([0, 0, 0, 0], 0)), Some(node_id), way);
        matches!(action, Some(FaultAction::Drop | FaultAction::Cut))
    }

    /// How long a chunk of a reliable stream travelling `way` with the peer
    /// `node_id` is held back: a `delay` rule's delay, or a degrade's
    /// [`Degrade::reliable_wait`] (a chunk lost more than
    /// [`FAULT_RESENDS_MAX`] times waits that many extra delays, as a stream
    /// is never cut by a degrade). A `drop` or a `cut` holds nothing here:
    /// a stream cannot lose data, and what they do to the peer reaches the
    /// stream through gossip's verdict. Only rules naming the node id apply.
    pub fn stream_hold(&self, node_id: &NodeId, way: PacketWay, rng: &mut FaultRng) -> Duration {
        let action = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .action_for(SocketAddr::from(([0, 0, 0, 0], 0)), Some(node_id), way);
        match action {
            None | Some(FaultAction::Drop | FaultAction::Cut) => Duration::ZERO,
            Some(FaultAction::DelayMs(ms)) => Duration::from_millis(ms),
            Some(FaultAction::Degrade(degrade)) => {
                degrade.reliable_wait(rng).unwrap_or_else(|| {
                    Duration::from_millis(degrade.delay_ms) * (FAULT_RESENDS_MAX + 1)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn id(name: &str) -> NodeId {
        NodeId::new(name).expect("id")
    }

    #[test]
    fn first_matching_rule_decides() {
        let (a, b) = (addr(1000), addr(2000));
        let id = id("eu-west-1");
        let filter = FaultFilter::new(vec![
            FaultRule::both_ways(PeerSelector::NodeId(id.clone()), FaultAction::Cut),
            FaultRule::both_ways(PeerSelector::Addr(a), FaultAction::DelayMs(10)),
        ])
        .expect("valid");
        let out = PacketWay::Outbound;
        assert_eq!(filter.action_for(a, Some(&id), out), Some(FaultAction::Cut));
        assert_eq!(
            filter.action_for(a, None, out),
            Some(FaultAction::DelayMs(10))
        );
        assert_eq!(filter.action_for(b, None, out), None);
        assert_eq!(FaultFilter::none().action_for(a, Some(&id), out), None);
        assert!(filter.is_cut(a, Some(&id)));
        assert!(!filter.is_cut(a, None));
    }

    #[test]
    fn a_rule_acts_only_on_its_direction() {
        let (a, b) = (id("eu-west-1"), id("ap-south-1"));
        let rule = |peer: &NodeId, direction| FaultRule {
            peer: PeerSelector::NodeId(peer.clone()),
            action: FaultAction::Drop,
            direction,
        };
        let filter = FaultFilter::new(vec![
            rule(&a, FaultDirection::Outbound),
            rule(&b, FaultDirection::Inbound),
        ])
        .expect("valid");
        let mut rng = FaultRng::seeded(1);
        let mut fate = |peer: &NodeId, way| filter.fate(addr(1), Some(peer), way, &mut rng);
        assert_eq!(fate(&a, PacketWay::Outbound), Fate::Drop);
        assert_eq!(fate(&a, PacketWay::Inbound), Fate::Pass);
        assert_eq!(fate(&b, PacketWay::Outbound), Fate::Pass);
        assert_eq!(fate(&b, PacketWay::Inbound), Fate::Drop);
        assert!(!filter.is_cut(addr(1), Some(&a)));
        for way in [PacketWay::Outbound, PacketWay::Inbound] {
            assert!(FaultDirection::Both.covers(way));
        }
    }

    #[test]
    fn a_later_rule_decides_the_other_direction() {
        let a = id("eu-west-1");
        let filter = FaultFilter::new(vec![
            FaultRule {
                peer: PeerSelector::NodeId(a.clone()),
                action: FaultAction::Drop,
                direction: FaultDirection::Outbound,
            },
            FaultRule::both_ways(PeerSelector::NodeId(a.clone()), FaultAction::DelayMs(7)),
        ])
        .expect("valid");
        let mut rng = FaultRng::seeded(1);
        assert_eq!(
            filter.fate(addr(1), Some(&a), PacketWay::Outbound, &mut rng),
            Fate::Drop
        );
        assert_eq!(
            filter.fate(addr(1), Some(&a), PacketWay::Inbound, &mut rng),
            Fate::Hold(Duration::from_millis(7))
        );
    }

    /// One rule through [`FaultFilter::new`]: accepted, or its error.
    fn check(action: FaultAction, direction: FaultDirection, expected: Result<(), FaultError>) {
        let rule = FaultRule {
            peer: PeerSelector::Addr(addr(1)),
            action,
            direction,
        };
        assert_eq!(
            FaultFilter::new(vec![rule]).map(drop),
            expected,
            "{action:?}"
        );
    }

    #[test]
    fn limits_at_their_edges() {
        use FaultDirection::{Both, Inbound, Outbound};
        let max = FAULT_DELAY_MS_MAX;
        check(FaultAction::DelayMs(max), Both, Ok(()));
        check(
            FaultAction::DelayMs(max + 1),
            Both,
            Err(FaultError::DelayTooLong(max + 1)),
        );
        check(FaultAction::Cut, Both, Ok(()));
        check(
            FaultAction::Cut,
            Outbound,
            Err(FaultError::CutOneWay(Outbound)),
        );
        check(
            FaultAction::Cut,
            Inbound,
            Err(FaultError::CutOneWay(Inbound)),
        );
        check(FaultAction::Drop, Inbound, Ok(()));
        let many = vec![
            FaultRule::both_ways(PeerSelector::Addr(addr(1)), FaultAction::Drop);
            FAULT_RULES_MAX + 1
        ];
        assert_eq!(
            FaultFilter::new(many[..FAULT_RULES_MAX].to_vec()).map(drop),
            Ok(())
        );
        assert_eq!(
            FaultFilter::new(many).map(drop),
            Err(FaultError::TooManyRules(FAULT_RULES_MAX + 1))
        );
    }

    #[test]
    fn degrade_limits_at_their_edges() {
        let max = FAULT_DELAY_MS_MAX;
        let ok = |d: u64, j: u64, l: f64| Degrade::new(d, j, l).map(drop);
        assert_eq!(ok(0, 0, 0.0), Ok(()));
        assert_eq!(ok(max, max, FAULT_LOSS_PERCENT_MAX), Ok(()));
        assert_eq!(ok(max + 1, 0, 0.0), Err(FaultError::DelayTooLong(max + 1)));
        assert_eq!(
            ok(10, 11, 0.0),
            Err(FaultError::JitterOverDelay {
                jitter_ms: 11,
                delay_ms: 10
            })
        );
        assert_eq!(ok(10, 10, 100.5), Err(FaultError::LossOutOfRange(100.5)));
        assert_eq!(ok(10, 10, -0.1), Err(FaultError::LossOutOfRange(-0.1)));
        assert!(matches!(
            ok(10, 0, f64::NAN),
            Err(FaultError::LossOutOfRange(l)) if l.is_nan()
        ));
        assert!(ok(10, 0, f64::INFINITY).is_err());
        assert_eq!(
            FaultError::JitterOverDelay {
                jitter_ms: 11,
                delay_ms: 10
            }
            .to_string(),
            "jitter_ms (11) may not exceed delay_ms (10)"
        );
        assert_eq!(
            FaultError::CutOneWay(FaultDirection::Outbound).to_string(),
            "a cut acts both ways (a QUIC connection cannot be half cut), not outbound"
        );
    }

    #[test]
    fn degrade_loses_its_share_and_holds_within_the_jitter() {
        const PACKETS: u32 = 20_000;
        let seed = 0x5eed_fa17;
        let degrade = Degrade::new(200, 50, 5.0).expect("valid");
        let mut rng = FaultRng::seeded(seed);
        let (mut lost, mut shortest, mut longest) = (0u32, u64::MAX, 0u64);
        for _ in 0..PACKETS {
            match degrade.roll(&mut rng) {
                Fate::Drop => lost += 1,
                Fate::Hold(held) => {
                    let ms = u64::try_from(held.as_millis()).expect("small");
                    shortest = shortest.min(ms);
                    longest = longest.max(ms);
                }
                Fate::Pass => panic!("a 200 ms delay passed at once (seed {seed})"),
            }
        }
        let rate = f64::from(lost) / f64::from(PACKETS) * 100.0;
        assert!((4.0..=6.0).contains(&rate), "loss {rate} % (seed {seed})");
        assert!(
            shortest >= 150 && longest <= 250,
            "{shortest}..{longest} (seed {seed})"
        );
        // Over this many packets the whole range is reached, not just the delay.
        assert!(
            shortest <= 155 && longest >= 245,
            "{shortest}..{longest} (seed {seed})"
        );
    }

    #[test]
    fn degrade_extremes() {
        let mut rng = FaultRng::seeded(7);
        let all = Degrade::new(0, 0, FAULT_LOSS_PERCENT_MAX).expect("valid");
        let none = Degrade::new(0, 0, 0.0).expect("valid");
        let fixed = Degrade::new(30, 0, 0.0).expect("valid");
        for _ in 0..1_000 {
            assert_eq!(all.roll(&mut rng), Fate::Drop);
            assert_eq!(none.roll(&mut rng), Fate::Pass);
            assert_eq!(fixed.roll(&mut rng), Fate::Hold(Duration::from_millis(30)));
        }
    }

    #[test]
    fn a_reliable_path_turns_loss_into_delay() {
        let mut rng = FaultRng::seeded(9);
        let never = Degrade::new(40, 0, 0.0).expect("valid");
        assert_eq!(
            never.reliable_wait(&mut rng),
            Some(Duration::from_millis(40))
        );
        let always = Degrade::new(40, 0, FAULT_LOSS_PERCENT_MAX).expect("valid");
        assert_eq!(always.reliable_wait(&mut rng), None);
        let half = Degrade::new(40, 0, 50.0).expect("valid");
        for _ in 0..1_000 {
            let wait = half.reliable_wait(&mut rng).map(|w| w.as_millis());
            // One delay, plus one per loss; a wait of 9 losses or more is
            // lost for good.
            assert!(
                wait.is_none_or(|ms| ms % 40 == 0 && (40..=360).contains(&ms)),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn a_stream_is_held_only_by_delays_and_degrades() {
        let (a, b, c) = (id("eu-west-1"), id("us-east-1"), id("ap-south-1"));
        let faults = SharedFaults::default();
        faults.set(
            FaultFilter::new(vec![
                FaultRule {
                    peer: PeerSelector::NodeId(a.clone()),
                    action: FaultAction::Degrade(Degrade::new(100, 0, 100.0).expect("valid")),
                    direction: FaultDirection::Inbound,
                },
                FaultRule::both_ways(PeerSelector::NodeId(b.clone()), FaultAction::DelayMs(30)),
                FaultRule::both_ways(PeerSelector::NodeId(c.clone()), FaultAction::Cut),
            ])
            .expect("valid"),
        );
        let mut rng = FaultRng::seeded(1);
        let mut hold = |peer: &NodeId, way| faults.stream_hold(peer, way, &mut rng).as_millis();
        assert_eq!(hold(&a, PacketWay::Inbound), 900);
        assert_eq!(hold(&a, PacketWay::Outbound), 0);
        assert_eq!(hold(&b, PacketWay::Inbound), 30);
        assert_eq!(hold(&c, PacketWay::Inbound), 0);
    }

    #[test]
    fn one_seed_gives_one_sequence() {
        let degrade = Degrade::new(100, 100, 30.0).expect("valid");
        let run = |seed| {
            let mut rng = FaultRng::seeded(seed);
            (0..100).map(|_| degrade.roll(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
