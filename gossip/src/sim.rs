//! A deterministic simulation of a foca cluster without sockets: N members
//! with the production foca configuration ([`SwimSettings::to_foca`]), the
//! production identity ([`NodeIdentity`], postcard codec, metadata broadcast
//! handler), a virtual clock and a simulated network with seeded loss and
//! delay. It exists because the questions the issue asks (how fast is a dead
//! node known everywhere, how often is a live one wrongly declared down at
//! 10 % loss, what does gossip cost per node, how long does a cluster of 500
//! take to converge) cannot be answered with a handful of real QUIC nodes on
//! one machine, and must be answered the same way on every run.
//!
//! Everything foca asks of its runtime is honoured: packets (`send_to`) are
//! delivered after a random delay unless the network loses them, every timer
//! (`submit_after`) is delivered at its virtual deadline, and notifications
//! (`notify`) feed the measurements. Events live in one binary heap ordered
//! by virtual time and then by insertion order, and all randomness (foca's
//! own member choices and the network's loss and delay) comes from
//! generators seeded from [`SimSettings::seed`], so one seed always gives the
//! same report. A simulated hour of 100 LAN members is a few million events.
//!
//! It found one defect so far: foca 2.0.0 sends `TurnUndead` when a
//! suspicion timer fires even if the suspect refuted in time, and the suspect
//! then renews its identity, so every refuted suspicion ended in a new
//! generation (hundreds per 10 minutes among 100 LAN members at 10 % loss,
//! with no member ever seen down). Production drops those packets
//! ([`crate::cluster`]'s `is_refuted_turn_undead`), and so does the
//! simulation unless [`SimSettings::drop_refuted_turn_undead`] is off.
//!
//! What it leaves out: CPU starvation and pauses (a simulated member always
//! answers on time; foca has no Lifeguard anyway), correlated loss and
//! partitions, the QUIC handshake and connection cache, and the TLS binding
//! of packets to peers. Byte counts are foca payloads, without the QUIC and
//! UDP/IP overhead (about 40 to 60 bytes per datagram).

use std::{
    cmp::Ordering,
    collections::{BTreeSet, BinaryHeap, HashMap},
};

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, Timer};
use rand_0_10::{rngs::SmallRng, RngExt, SeedableRng};

use crate::{
    cluster::{is_refuted_turn_undead, sent_header, SwimFoca},
    config::{ConfigError, SwimSettings, DEFAULT_SEED_RETRY_MS},
    identity::{IdentityError, NodeIdentity},
    meta::{MetaHandler, MetaTable},
    names::{NameError, NodeId, Region},
    relay::{ChaseTimer, Relay, RelayPacket},
};

/// Most members one simulation holds.
pub const SIM_MEMBERS_MAX: usize = 4_096;
/// Most pending events (packets in flight and timers) one simulation holds;
/// beyond it the run stops with [`SimError::TooManyEvents`].
pub const SIM_EVENTS_MAX: usize = 4_000_000;
/// Loss is given in thousandths; this is all packets lost.
pub const LOSS_PERMILLE_MAX: u32 = 1_000;
/// How long the scenarios wait for a cluster to converge, in simulated ms.
pub const CONVERGE_LIMIT_MS: u64 = 300_000;
/// Probe periods the detection scenario waits after convergence before it
/// kills a member, so that the join's updates have settled.
pub const SETTLE_PROBE_PERIODS: u64 = 10;

/// Simulated ms the stability scenario waits after convergence before its
/// window opens, so that the join's own updates have stopped spreading and
/// the window sees a cluster at rest (a cluster that converges in a second
/// still gossips its join for several more).
pub const STABILITY_SETTLE_MS: u64 = 60_000;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The SWIM settings were refused.
    #[error("simulation swim settings: {0}")]
    Config(#[from] ConfigError),
    /// A simulation setting is out of range.
    #[error("simulation setting {field}: {reason}")]
    Settings {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A member name could not be built.
    #[error("simulated member name: {0}")]
    Name(#[from] NameError),
    /// A member identity could not be built.
    #[error("simulated member identity: {0}")]
    Identity(#[from] IdentityError),
    /// More than [`SIM_EVENTS_MAX`] events were pending.
    #[error("more than {SIM_EVENTS_MAX} pending simulation events")]
    TooManyEvents,
}

fn bad(field: &'static str, reason: impl Into<String>) -> SimError {
    SimError::Settings {
        field,
        reason: reason.into(),
    }
}

/// The simulated network: every packet is lost with probability
/// `loss_permille / 1000`, independently, and otherwise arrives after a delay
/// drawn uniformly from `delay_min_us..=delay_max_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Chance that a packet is lost, in thousandths.
    pub loss_permille: u32,
    /// Shortest one-way delay, in microseconds.
    pub delay_min_us: u64,
    /// Longest one-way delay, in microseconds.
    pub delay_max_us: u64,
}

impl NetworkSettings {
    /// A regional LAN: 0.1 to 1 ms one way, no loss.
    pub fn lan() -> Self {
        Self {
            loss_permille: 0,
            delay_min_us: 100,
            delay_max_us: 1_000,
        }
    }

    /// Between regions: 20 to 150 ms one way, no loss.
    pub fn wan() -> Self {
        Self {
            loss_permille: 0,
            delay_min_us: 20_000,
            delay_max_us: 150_000,
        }
    }

    /// The same network losing `percent` % of packets.
    pub fn with_loss_percent(mut self, percent: u32) -> Self {
        self.loss_permille = percent.saturating_mul(10);
        self
    }

    fn validate(&self) -> Result<(), SimError> {
        if self.loss_permille > LOSS_PERMILLE_MAX {
            return Err(bad(
                "loss_permille",
                format!("must be at most {LOSS_PERMILLE_MAX}"),
            ));
        }
        if self.delay_min_us > self.delay_max_us {
            return Err(bad("delay_min_us", "must not exceed delay_max_us"));
        }
        Ok(())
    }
}

/// One simulation: how many members, with which SWIM settings, over which
/// network, from which seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSettings {
    /// Members in the cluster, 2..=[`SIM_MEMBERS_MAX`].
    pub members: usize,
    /// The SWIM settings every member runs (a production preset).
    pub swim: SwimSettings,
    /// The simulated network.
    pub network: NetworkSettings,
    /// Seeds foca's generators and the network's; the same seed gives the
    /// same run.
    pub seed: u64,
    /// How often a member that knows nobody announces to the seed member
    /// again (production: `GossipConfig::seed_retry_ms`).
    pub seed_retry_ms: u64,
    /// Apply production's filter of `TurnUndead` packets sent after a refuted
    /// suspicion (`true`, as production); `false` shows foca 2.0.0 as is.
    pub drop_refuted_turn_undead: bool,
    /// Run production's relay (suspicions sent to their subject, direct
    /// answers, down verdicts relayed at once; `true`, as production);
    /// `false` shows plain foca's dissemination.
    pub relay: bool,
}

impl SimSettings {
    /// `members` members with the LAN preset on a LAN network.
    pub fn lan(members: usize, seed: u64) -> Self {
        Self {
            members,
            swim: SwimSettings::lan(),
            network: NetworkSettings::lan(),
            seed,
            seed_retry_ms: DEFAULT_SEED_RETRY_MS,
            drop_refuted_turn_undead: true,
            relay: true,
        }
    }

    /// `members` members with the WAN preset on a WAN network.
    pub fn wan(members: usize, seed: u64) -> Self {
        Self {
            members,
            swim: SwimSettings::wan(),
            network: NetworkSettings::wan(),
            seed,
            seed_retry_ms: DEFAULT_SEED_RETRY_MS,
            drop_refuted_turn_undead: true,
            relay: true,
        }
    }

    /// The same settings losing `percent` % of packets.
    pub fn with_loss_percent(mut self, percent: u32) -> Self {
        self.network = self.network.with_loss_percent(percent);
        self
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// [`SimError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(2..=SIM_MEMBERS_MAX).contains(&self.members) {
            return Err(bad(
                "members",
                format!("must be within 2..={SIM_MEMBERS_MAX}"),
            ));
        }
        if self.seed_retry_ms == 0 {
            return Err(bad("seed_retry_ms", "must be greater than zero"));
        }
        self.swim.validate()?;
        self.network.validate()
    }
}

enum Event {
    Timer {
        member: usize,
        timer: Timer<NodeIdentity>,
    },
    Deliver {
        from: usize,
        to: usize,
        bytes: Bytes,
    },
    SeedRetry {
        member: usize,
    },
    Chase {
        member: usize,
        timer: ChaseTimer,
    },
}

struct Scheduled {
    at_us: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    // Reversed, so the max-heap pops the earliest event first; ties go in
    // insertion order, which keeps runs deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

struct Member {
    foca: SwimFoca,
    relay: Relay,
    running: bool,
    /// Members this one currently sees alive (from its notifications).
    alive_seen: usize,
}

/// Counters over a measurement window; [`Simulation::reset_counters`] starts
/// a new window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Packets foca asked to send (lost ones included).
    pub packets_sent: u64,
    /// Bytes of those packets (foca payload only).
    pub bytes_sent: u64,
    /// Packets the network lost.
    pub packets_lost: u64,
    /// Packets a member's foca refused (stale probes and the like).
    pub packets_refused: u64,
    /// `MemberDown` notifications about a member that was running.
    pub false_down_notifications: u64,
    /// Distinct (member, generation) pairs that at least one member declared
    /// down while they were running: wrongly declared members.
    pub wrongly_declared: u64,
    /// Times a running member learnt it had been declared down and rejoined
    /// as its next generation. Without the `TurnUndead` filter (see
    /// [`SimSettings::drop_refuted_turn_undead`]) most are refuted
    /// suspicions, not down declarations.
    pub rejoins: u64,
    /// `TurnUndead` packets to members still alive or suspect that the
    /// production filter dropped.
    pub turn_undead_dropped: u64,
}

/// A running simulation. The scenario functions ([`convergence`],
/// [`detection`], [`stability`]) drive it; it is public so that other
/// scenarios can be written against it.
pub struct Simulation {
    settings: SimSettings,
    now_us: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    members: Vec<Member>,
    index: HashMap<NodeId, usize>,
    network_rng: SmallRng,
    runtime: AccumulatingRuntime<NodeIdentity>,
    counters: SimCounters,
    wrongly_declared: BTreeSet<(usize, u64)>,
    full_views: usize,
    converged_at_us: Option<u64>,
    full_view_at_us: Vec<Option<u64>>,
    victim: Option<(usize, u64)>,
    detected_at_us: Vec<Option<u64>>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("settings", &self.settings)
            .field("now_us", &self.now_us)
            .field("pending_events", &self.queue.len())
            .finish_non_exhaustive()
    }
}

fn member_identity(index: usize) -> Result<NodeIdentity, SimError> {
    let name = format!("sim-{index:04}");
    let [_, _, high, low] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    let quic = std::net::SocketAddr::from(([10, 0, high, low], 7946));
    let actor = std::net::SocketAddr::from(([10, 0, high, low], 7947));
    Ok(NodeIdentity::new(
        NodeId::new(&name)?,
        Region::new("sim")?,
        quic,
        &format!("http://{name}.sim"),
        actor,
        1,
    )?)
}

impl Simulation {
    /// Builds the members; none has joined yet.
    ///
    /// # Errors
    /// [`SimError`] when the settings are refused.
    pub fn new(settings: SimSettings) -> Result<Self, SimError> {
        settings.validate()?;
        let config = settings.swim.to_foca()?;
        let mut members = Vec::with_capacity(settings.members);
        let mut index = HashMap::with_capacity(settings.members);
        for i in 0..settings.members {
            let identity = member_identity(i)?;
            index.insert(identity.node_id().clone(), i);
            let member_seed = settings.seed ^ (i as u64).wrapping_mul(0x9e37_79b9);
            let rng = SmallRng::seed_from_u64(member_seed);
            members.push(Member {
                relay: Relay::new(&settings.swim, member_seed.rotate_left(29) ^ 0x7e1a),
                foca: Foca::with_custom_broadcast(
                    identity,
                    config.clone(),
                    rng,
                    PostcardCodec,
                    MetaHandler::new(MetaTable::default()),
                ),
                running: true,
                alive_seen: 0,
            });
        }
        let count = members.len();
        Ok(Self {
            network_rng: SmallRng::seed_from_u64(settings.seed.rotate_left(17) ^ 0x5eed),
            settings,
            now_us: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            members,
            index,
            runtime: AccumulatingRuntime::new(),
            counters: SimCounters::default(),
            wrongly_declared: BTreeSet::new(),
            full_views: 0,
            converged_at_us: None,
            full_view_at_us: vec![None; count],
            victim: None,
            detected_at_us: vec![None; count],
        })
    }

    /// Virtual time since the start, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_us / 1_000
    }

    /// When every member first saw every other member alive, in ms.
    pub fn converged_ms(&self) -> Option<u64> {
        self.converged_at_us.map(|us| us / 1_000)
    }

    /// The counters of the current window.
    pub fn counters(&self) -> &SimCounters {
        &self.counters
    }

    /// Starts a new measurement window.
    pub fn reset_counters(&mut self) {
        self.counters = SimCounters::default();
        self.wrongly_declared.clear();
    }

    /// Every member but the first announces itself to the first (the seed)
    /// now, and again every `seed_retry_ms` while it knows nobody, as
    /// production nodes do with their seeds.
    ///
    /// # Errors
    /// [`SimError::TooManyEvents`].
    pub fn join_all(&mut self) -> Result<(), SimError> {
        for member in 1..self.members.len() {
            self.announce_to_seed(member)?;
        }
        Ok(())
    }

    fn announce_to_seed(&mut self, member: usize) -> Result<(), SimError> {
        let seed = self.members[0].foca.identity().clone();
        let _refused = self.members[member].foca.announce(seed, &mut self.runtime);
        self.drain(member)?;
        let retry_us = self.settings.seed_retry_ms * 1_000;
        self.push(retry_us, Event::SeedRetry { member })
    }

    /// Stops a member as `kill -9` would: it processes nothing more and
    /// packets to it are lost. Detection times of it are measured from now.
    pub fn kill(&mut self, member: usize) {
        if let Some(m) = self.members.get_mut(member) {
            m.running = false;
            self.victim = Some((member, self.now_us));
            self.detected_at_us = vec![None; self.members.len()];
        }
    }

    /// For each member, how many ms after the kill it saw the victim down
    /// (`None` for the victim itself and members that have not yet).
    pub fn detection_ms(&self) -> Vec<Option<u64>> {
        let killed = self.victim.map_or(0, |(_, at)| at);
        self.detected_at_us
            .iter()
            .map(|at| at.map(|at| (at - killed) / 1_000))
            .collect()
    }

    fn all_detected(&self) -> bool {
        match self.victim {
            Some((victim, _)) => self
                .members
                .iter()
                .zip(&self.detected_at_us)
                .enumerate()
                .all(|(i, (m, at))| i == victim || !m.running || at.is_some()),
            None => false,
        }
    }

    /// Runs until the virtual clock reaches `deadline_ms` or `stop` is true.
    ///
    /// # Errors
    /// [`SimError::TooManyEvents`].
    pub fn run_until(
        &mut self,
        deadline_ms: u64,
        stop: impl Fn(&Self) -> bool,
    ) -> Result<(), SimError> {
        let deadline_us = deadline_ms.saturating_mul(1_000);
        while !stop(self) {
            match self.queue.peek() {
                Some(next) if next.at_us <= deadline_us => {}
                _ => {
                    self.now_us = self.now_us.max(deadline_us);
                    return Ok(());
                }
            }
            let Some(next) = self.queue.pop() else {
                return Ok(());
            };
            self.now_us = next.at_us;
            self.handle(next.event)?;
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Timer { member, timer } => {
                if self.members[member].running {
                    let probe_tick = matches!(timer, Timer::ProbeRandomMember(_));
                    let probed = if probe_tick {
                        self.members[member].relay.before_probe_tick()
                    } else {
                        None
                    };
                    // A stale timer is refused by foca; that is normal.
                    let _refused = self.members[member]
                        .foca
                        .handle_timer(timer, &mut self.runtime);
                    self.drain(member)?;
                    if probe_tick && self.settings.relay {
                        let (mut out, mut timers) = (Vec::new(), Vec::new());
                        let m = &mut self.members[member];
                        m.relay
                            .after_probe_tick(&m.foca, probed, &mut out, &mut timers);
                        self.send_relayed(member, out, timers)?;
                    }
                }
            }
            Event::Deliver { from, to, bytes } => {
                if self.members[to].running {
                    self.members[to].relay.begin_packet();
                    if self.members[to]
                        .foca
                        .handle_data(&bytes, &mut self.runtime)
                        .is_err()
                    {
                        self.counters.packets_refused += 1;
                    }
                    self.drain(to)?;
                    if self.members[to].relay.end_packet() && self.settings.relay {
                        let sender = self.members[from].foca.identity().clone();
                        let m = &self.members[to];
                        let out: Vec<RelayPacket> =
                            m.relay.answer(&m.foca, &sender).into_iter().collect();
                        self.send_relayed(to, out, Vec::new())?;
                    }
                }
            }
            Event::Chase { member, timer } => {
                if self.members[member].running {
                    let (mut out, mut timers) = (Vec::new(), Vec::new());
                    let m = &mut self.members[member];
                    m.relay.on_chase(&m.foca, timer, &mut out, &mut timers);
                    self.send_relayed(member, out, timers)?;
                }
            }
            Event::SeedRetry { member } => {
                if self.members[member].running && self.members[member].foca.num_members() == 0 {
                    self.announce_to_seed(member)?;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, after_us: u64, event: Event) -> Result<(), SimError> {
        if self.queue.len() >= SIM_EVENTS_MAX {
            return Err(SimError::TooManyEvents);
        }
        self.seq += 1;
        self.queue.push(Scheduled {
            at_us: self.now_us.saturating_add(after_us),
            seq: self.seq,
            event,
        });
        Ok(())
    }

    /// Acts on what `member`'s foca asked for, in the order it asked.
    fn drain(&mut self, member: usize) -> Result<(), SimError> {
        while let Some((to, bytes)) = self.runtime.to_send() {
            if let Some(header) = sent_header(&bytes) {
                if self.settings.drop_refuted_turn_undead
                    && is_refuted_turn_undead(&self.members[member].foca, &to, &header)
                {
                    self.counters.turn_undead_dropped += 1;
                    continue;
                }
                self.members[member].relay.observe_sent(&header);
            }
            self.send(member, &to, bytes)?;
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let after_us = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
            self.push(after_us, Event::Timer { member, timer })?;
        }
        let mut relayed = Vec::new();
        while let Some(notification) = self.runtime.to_notify() {
            if self.settings.relay {
                let m = &mut self.members[member];
                match &notification {
                    OwnedNotification::MemberDown(down) => {
                        m.relay.on_member_down(&m.foca, down, &mut relayed);
                    }
                    OwnedNotification::MemberUp(up) => {
                        relayed.extend(m.relay.on_member_up(&m.foca, up));
                    }
                    _ => {}
                }
            }
            self.on_notification(member, notification);
        }
        self.send_relayed(member, relayed, Vec::new())
    }

    /// Sends what the relay of `member` asked for and schedules its timers.
    fn send_relayed(
        &mut self,
        member: usize,
        packets: Vec<RelayPacket>,
        timers: Vec<(std::time::Duration, ChaseTimer)>,
    ) -> Result<(), SimError> {
        for (to, bytes) in packets {
            self.send(member, &to, bytes)?;
        }
        for (after, timer) in timers {
            let after_us = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
            self.push(after_us, Event::Chase { member, timer })?;
        }
        Ok(())
    }

    /// One packet from `member` onto the simulated network.
    fn send(&mut self, member: usize, to: &NodeIdentity, bytes: Bytes) -> Result<(), SimError> {
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += bytes.len() as u64;
        let Some(&dst) = self.index.get(to.node_id()) else {
            return Ok(());
        };
        let network = &self.settings.network;
        if network.loss_permille > 0
            && self.network_rng.random_range(0..LOSS_PERMILLE_MAX) < network.loss_permille
        {
            self.counters.packets_lost += 1;
            return Ok(());
        }
        let delay_us = self
            .network_rng
            .random_range(network.delay_min_us..=network.delay_max_us);
        self.push(
            delay_us,
            Event::Deliver {
                from: member,
                to: dst,
                bytes,
            },
        )
    }

    fn on_notification(&mut self, observer: usize, notification: OwnedNotification<NodeIdentity>) {
        let everyone_else = self.members.len() - 1;
        match notification {
            OwnedNotification::MemberUp(_) => {
                let m = &mut self.members[observer];
                m.alive_seen += 1;
                if m.alive_seen == everyone_else {
                    self.full_views += 1;
                    self.full_view_at_us[observer].get_or_insert(self.now_us);
                    if self.full_views == self.members.len() && self.converged_at_us.is_none() {
                        self.converged_at_us = Some(self.now_us);
                    }
                }
            }
            OwnedNotification::MemberDown(subject) => {
                let m = &mut self.members[observer];
                if m.alive_seen == everyone_else {
                    self.full_views -= 1;
                }
                m.alive_seen = m.alive_seen.saturating_sub(1);
                let Some(&who) = self.index.get(subject.node_id()) else {
                    return;
                };
                if let Some((victim, _)) = self.victim {
                    if who == victim {
                        self.detected_at_us[observer].get_or_insert(self.now_us);
                        return;
                    }
                }
                if self.members[who].running {
                    self.counters.false_down_notifications += 1;
                    if self.wrongly_declared.insert((who, subject.generation())) {
                        self.counters.wrongly_declared += 1;
                    }
                }
            }
            OwnedNotification::Rejoin(_) => self.counters.rejoins += 1,
            _ => {}
        }
    }
}

/// How long a cluster took to converge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvergenceReport {
    /// Members in the cluster.
    pub members: usize,
    /// Virtual ms from everyone's first announce until every member saw every
    /// other alive; `None` when that did not happen within the limit.
    pub converged_ms: Option<u64>,
    /// Median of the time each member first saw every other alive, in ms.
    pub member_p50_ms: Option<u64>,
    /// 99th percentile of the same, in ms.
    pub member_p99_ms: Option<u64>,
    /// Counters over the join.
    pub counters: SimCounters,
}

/// Scenario (a): every member announces to one seed at time 0; how long until
/// every member sees every other alive. Runs at most `limit_ms` virtual ms.
///
/// # Errors
/// [`SimError`] when the settings are refused or the event limit is hit.
pub fn convergence(settings: &SimSettings, limit_ms: u64) -> Result<ConvergenceReport, SimError> {
    let mut sim = Simulation::new(settings.clone())?;
    sim.join_all()?;
    sim.run_until(limit_ms, |sim| sim.converged_at_us.is_some())?;
    let mut times: Vec<u64> = sim
        .full_view_at_us
        .iter()
        .flatten()
        .map(|us| us / 1_000)
        .collect();
    times.sort_unstable();
    Ok(ConvergenceReport {
        members: settings.members,
        converged_ms: sim.converged_ms(),
        member_p50_ms: quantile(&times, 0.50),
        member_p99_ms: quantile(&times, 0.99),
        counters: sim.counters.clone(),
    })
}

/// How long the cluster took to see a killed member down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionReport {
    /// Members in the cluster, the victim included.
    pub members: usize,
    /// When the cluster had converged, in virtual ms (`None`: never).
    pub converged_ms: Option<u64>,
    /// When the victim was killed, in virtual ms.
    pub killed_at_ms: u64,
    /// Members that saw the victim down within the limit.
    pub detected: usize,
    /// Members that should have (all running members but the victim).
    pub observers: usize,
    /// Median time from the kill until a member saw the victim down, in ms.
    pub p50_ms: Option<u64>,
    /// 99th percentile of the same, in ms.
    pub p99_ms: Option<u64>,
    /// The last member to see it, in ms.
    pub max_ms: Option<u64>,
    /// Every member's time from the kill until it saw the victim down, in
    /// ms, sorted (for pooling several runs).
    pub times_ms: Vec<u64>,
    /// Counters from the kill on (false positives about other members).
    pub counters: SimCounters,
}

/// The `q` quantile (0..=1) of sorted values by nearest rank; `None` when
/// there are none.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Scenario (b): the cluster joins and converges, settles for
/// [`SETTLE_PROBE_PERIODS`] probe periods, then its last member is killed;
/// how long until every other member sees it down. Runs at most `limit_ms`
/// virtual ms after the kill.
///
/// # Errors
/// [`SimError`] when the settings are refused or the event limit is hit.
pub fn detection(settings: &SimSettings, limit_ms: u64) -> Result<DetectionReport, SimError> {
    let mut sim = Simulation::new(settings.clone())?;
    sim.join_all()?;
    sim.run_until(CONVERGE_LIMIT_MS, |sim| sim.converged_at_us.is_some())?;
    let settle_ms = SETTLE_PROBE_PERIODS * settings.swim.probe_period_ms;
    let now = sim.now_ms();
    sim.run_until(now + settle_ms, |_| false)?;
    sim.reset_counters();
    let victim = settings.members - 1;
    let killed_at_ms = sim.now_ms();
    sim.kill(victim);
    sim.run_until(killed_at_ms + limit_ms, Simulation::all_detected)?;
    let mut times: Vec<u64> = sim.detection_ms().into_iter().flatten().collect();
    times.sort_unstable();
    let observers = sim
        .members
        .iter()
        .enumerate()
        .filter(|(i, m)| *i != victim && m.running)
        .count();
    Ok(DetectionReport {
        members: settings.members,
        converged_ms: sim.converged_ms(),
        killed_at_ms,
        detected: times.len(),
        observers,
        p50_ms: quantile(&times, 0.50),
        p99_ms: quantile(&times, 0.99),
        max_ms: times.last().copied(),
        times_ms: times,
        counters: sim.counters.clone(),
    })
}

/// A stretch of time with nobody dying: false positives and traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StabilityReport {
    /// Members in the cluster.
    pub members: usize,
    /// Packet loss of the run, in thousandths.
    pub loss_permille: u32,
    /// When the cluster had converged, in virtual ms (`None`: never).
    pub converged_ms: Option<u64>,
    /// Length of the measured window, in virtual ms.
    pub window_ms: u64,
    /// Counters over the window.
    pub counters: SimCounters,
}

impl StabilityReport {
    /// Gossip payload bytes each member sent per second, on average.
    pub fn bytes_per_node_per_second(&self) -> f64 {
        self.counters.bytes_sent as f64 / self.members as f64 / self.seconds()
    }

    /// Packets each member sent per second, on average.
    pub fn packets_per_node_per_second(&self) -> f64 {
        self.counters.packets_sent as f64 / self.members as f64 / self.seconds()
    }

    /// Wrongly declared members per hour of the window.
    pub fn false_positives_per_hour(&self) -> f64 {
        self.counters.wrongly_declared as f64 * 3_600.0 / self.seconds()
    }

    fn seconds(&self) -> f64 {
        (self.window_ms.max(1) as f64) / 1_000.0
    }
}

/// Scenarios (c) and (d): the cluster joins over the given (lossy) network,
/// settles for [`STABILITY_SETTLE_MS`], then runs `window_ms` virtual ms with
/// nobody dying; counts members wrongly
/// declared down and the bytes sent in that window.
///
/// # Errors
/// [`SimError`] when the settings are refused or the event limit is hit.
pub fn stability(settings: &SimSettings, window_ms: u64) -> Result<StabilityReport, SimError> {
    let mut sim = Simulation::new(settings.clone())?;
    sim.join_all()?;
    sim.run_until(CONVERGE_LIMIT_MS, |sim| sim.converged_at_us.is_some())?;
    let now = sim.now_ms();
    sim.run_until(now + STABILITY_SETTLE_MS, |_| false)?;
    sim.reset_counters();
    let start = sim.now_ms();
    sim.run_until(start + window_ms, |_| false)?;
    Ok(StabilityReport {
        members: settings.members,
        loss_permille: settings.network.loss_permille,
        converged_ms: sim.converged_ms(),
        window_ms,
        counters: sim.counters.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn settings_are_checked() {
        let mut settings = SimSettings::lan(1, 1);
        assert!(matches!(
            settings.validate(),
            Err(SimError::Settings {
                field: "members",
                ..
            })
        ));
        settings.members = 3;
        settings.network.loss_permille = LOSS_PERMILLE_MAX + 1;
        assert!(matches!(
            settings.validate(),
            Err(SimError::Settings {
                field: "loss_permille",
                ..
            })
        ));
    }
}
