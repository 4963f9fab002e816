//! The running gossip node: one tokio task owns the foca instance and is the
//! only place it is touched, fed by received datagrams, its own timers and
//! commands from the [`GossipHandle`]. Keeping foca single-owner makes its
//! state changes sequential without locks, and every timer foca asks for is a
//! `tokio::time` deadline in one heap, so a test can pause or advance time.
//!
//! Every received packet is checked before foca sees it: the sender identity
//! in its header must be the node that the TLS certificate of the connection
//! names. Packets that fail that check, do not decode, or that foca refuses are
//! dropped and counted, never trusted; [`crate::receive`] holds that path, so
//! the fuzz targets run the same code.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BinaryHeap},
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
    time::Duration,
};

use tokio::time::Instant;

use bytes::Bytes;
use foca::{AccumulatingRuntime, Codec, Foca, Header, OwnedNotification, PostcardCodec, Timer};
use rand_0_10::{rngs::SmallRng, SeedableRng};
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    config::{ConfigError, GossipConfig},
    fault::{Fate, FaultFilter, FaultRng, PacketWay, SharedFaults},
    identity::NodeIdentity,
    meta::{MetaError, MetaHandler, MetaTable, MetaUpdate, NodeMeta},
    metrics::{DropReason, Metrics, MetricsError},
    names::{NodeId, Region},
    receive::{self, Received},
    relay::{ChaseTimer, Relay, RelayPacket},
    transport::{Inbound, Transport, TransportError, TransportSettings},
};

/// Most pending timers and delayed packets the SWIM task holds. foca keeps a
/// handful per member; delayed packets come only from fault injection.
pub const TIMERS_MAX: usize = 16_384;
/// Commands from the handle waiting for the SWIM task.
pub const COMMAND_QUEUE_MAX: usize = 64;
/// How many times a leaving node repeats its departure during the linger.
pub const LEAVE_GOSSIP_ROUNDS: u32 = 3;

/// Why the gossip node could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// The configuration was refused.
    #[error("gossip configuration: {0}")]
    Config(#[from] ConfigError),
    /// The QUIC endpoint could not be set up.
    #[error("gossip transport: {0}")]
    Transport(#[from] TransportError),
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Metadata was refused.
    #[error("node metadata: {0}")]
    Meta(#[from] MetaError),
    /// foca refused an operation.
    #[error("membership protocol: {0}")]
    Protocol(String),
    /// The gossip task has stopped.
    #[error("gossip has stopped")]
    Stopped,
}

/// How this node sees a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; it is declared down unless it refutes in time.
    Suspect,
    /// Declared down, or left.
    Down,
}

impl From<foca::State> for MemberState {
    fn from(state: foca::State) -> Self {
        match state {
            foca::State::Alive => MemberState::Alive,
            foca::State::Suspect => MemberState::Suspect,
            foca::State::Down => MemberState::Down,
        }
    }
}

impl MemberState {
    fn index(self) -> usize {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Down => 2,
        }
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The member's node id.
    pub node_id: NodeId,
    /// Its region.
    pub region: Region,
    /// How this node sees it.
    pub state: MemberState,
    /// Its gossip QUIC address.
    pub quic_addr: SocketAddr,
    /// Its public HTTP URL.
    pub http_url: String,
    /// Its actor-system address.
    pub actor_addr: SocketAddr,
    /// Which life of the member this is.
    pub generation: u64,
    /// Smoothed QUIC round-trip time, when a connection to it is open.
    pub rtt_ms: Option<f64>,
    /// Its latest metadata, when it has broadcast any.
    pub meta: Option<NodeMeta>,
}

/// A change in membership as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member was seen for the first time (`previous` is `None`), changed
    /// state, or came back as a new generation.
    Member {
        /// Which member.
        node_id: NodeId,
        /// Its state before, if it was known.
        previous: Option<MemberState>,
        /// Its state now.
        current: MemberState,
        /// Its generation now.
        generation: u64,
    },
    /// This node is known by at least one member (joined).
    Joined,
    /// This node knows no live member any more.
    Isolated,
    /// This node was declared down and rejoined as a new generation.
    Rejoined {
        /// The new generation.
        generation: u64,
    },
}

enum Command {
    SetMeta(NodeMeta, oneshot::Sender<Result<(), GossipError>>),
    Leave(oneshot::Sender<()>),
}

enum Due {
    Foca(Timer<NodeIdentity>),
    Chase(ChaseTimer),
    Send {
        addr: SocketAddr,
        node_id: NodeId,
        bytes: Bytes,
    },
    Deliver {
        from_addr: SocketAddr,
        from_node: NodeId,
        bytes: Bytes,
    },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    due: Due,
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
    // Reversed, so the max-heap pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Snapshot {
    local: NodeIdentity,
    members: Vec<(NodeIdentity, MemberState)>,
}

struct Shared {
    snapshot: Mutex<Snapshot>,
    meta: MetaTable,
    transport: Arc<Transport>,
    faults: Arc<RwLock<FaultFilter>>,
    metrics: Metrics,
    events: broadcast::Sender<MembershipEvent>,
}

impl Shared {
    fn snapshot(&self) -> MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The foca instance every node runs (and the simulation, `crate::sim`).
pub(crate) type SwimFoca = Foca<NodeIdentity, PostcardCodec, SmallRng, MetaHandler>;

/// Whether an outgoing packet is a `TurnUndead` to a member we still hold
/// alive or suspect, which is to be dropped.
///
/// foca 2.0.0 sends `TurnUndead` ("the cluster thinks you are down") when a
/// suspicion timer fires even if the suspect refuted in time
/// (`Timer::ChangeSuspectToDown` sends it whenever the member is still
/// known), and the suspect then renews its identity as if it had been
/// declared down: every refuted suspicion would end in a new generation, a
/// `Rejoined` event and reconnected actor sessions. The simulation found it
/// (hundreds of renewals per 10 minutes among 100 members at 10 % loss with
/// no member ever seen down). A legitimate `TurnUndead` goes to a member we
/// hold down (we just declared it, or it talked to us while down), so
/// dropping the others loses nothing.
pub(crate) fn is_refuted_turn_undead(
    foca: &SwimFoca,
    to: &NodeIdentity,
    header: &Header<NodeIdentity>,
) -> bool {
    if header.message != foca::Message::TurnUndead {
        return false;
    }
    foca.iter_membership_state()
        .any(|member| member.id() == to && member.state() != foca::State::Down)
}

/// The header of a packet foca is sending (`None` if it does not decode,
/// which foca's own packets always do).
pub(crate) fn sent_header(bytes: &[u8]) -> Option<Header<NodeIdentity>> {
    PostcardCodec.decode_header(bytes).ok()
}

/// Entry point: starts gossip nodes.
#[derive(Debug)]
pub struct Gossip;

impl Gossip {
    /// Validates `config`, binds the QUIC endpoint, registers the metrics and
    /// starts the SWIM task, which announces to the seeds until it knows a
    /// member. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`GossipError`] when the configuration is refused, the socket cannot be
    /// bound or the metrics cannot be registered (e.g. twice in one registry).
    pub async fn start(config: GossipConfig) -> Result<GossipHandle, GossipError> {
        config.validate()?;
        let foca_config = config.swim.to_foca()?;
        let metrics = Metrics::register(&config.registry)?;
        let faults = Arc::new(RwLock::new(FaultFilter::none()));
        let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue_packets_max);
        let transport = Transport::start(
            &TransportSettings {
                bind_addr: config.bind_addr,
                connect_timeout_ms: config.connect_timeout_ms,
                idle_timeout_ms: config.idle_timeout_ms,
                pending_packets_max: config.pending_packets_max,
            },
            &config.tls,
            inbound_tx,
            faults.clone(),
            metrics.clone(),
        )?;
        let local_addr = transport.local_addr().map_err(|source| {
            GossipError::Transport(TransportError::Bind {
                addr: config.bind_addr,
                source,
            })
        })?;
        let identity = if config.identity.quic_addr().port() == 0 {
            config.identity.clone().with_quic_addr(local_addr)
        } else {
            config.identity.clone()
        };
        if identity.quic_addr().ip().is_unspecified() {
            transport.close();
            return Err(GossipError::Config(ConfigError::Invalid {
                field: "identity",
                reason: format!(
                    "advertised QUIC address {} is not routable; give the identity the address peers should dial",
                    identity.quic_addr()
                ),
            }));
        }
        let seed = config.rng_seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        tracing::info!(node = %identity, seed, "gossip starting");

        let meta = MetaTable::default();
        let foca = Foca::with_custom_broadcast(
            identity.clone(),
            foca_config,
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            MetaHandler::new(meta.clone()),
        );
        let (events, _) = broadcast::channel(config.events_capacity_max);
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(Snapshot {
                local: identity,
                members: Vec::new(),
            }),
            meta,
            transport,
            faults,
            metrics,
            events,
        });
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_MAX);
        let seeds = config
            .seeds
            .iter()
            .copied()
            .filter(|seed| *seed != local_addr)
            .collect();
        let driver = Driver {
            relay: Relay::new(&config.swim, seed.rotate_left(29) ^ 0x7e1a),
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            shared: shared.clone(),
            seeds,
            meta_seq: 0,
            known: BTreeMap::new(),
            leaving: false,
            fault_rng: FaultRng::seeded(seed.rotate_left(13) ^ 0xfa17),
        };
        let task = tokio::spawn(driver.run(
            commands_rx,
            inbound_rx,
            Duration::from_millis(config.seed_retry_ms),
            Duration::from_millis(config.metrics_refresh_ms),
            Duration::from_millis(config.leave_linger_ms),
        ));
        Ok(GossipHandle {
            shared,
            commands: commands_tx,
            task,
            local_addr,
        })
    }
}

/// The handle to a running gossip node. Dropping it stops the node without
/// announcing a departure (others will detect it as failed); call
/// [`GossipHandle::leave`] to leave gracefully.
#[derive(Debug)]
pub struct GossipHandle {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl GossipHandle {
    /// This node's current identity (its generation grows when it rejoins).
    pub fn identity(&self) -> NodeIdentity {
        self.shared.snapshot().local.clone()
    }

    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every other member this node knows, including suspect and down ones,
    /// sorted by node id.
    pub fn members(&self) -> Vec<MemberView> {
        let members = self.shared.snapshot().members.clone();
        let meta = self
            .shared
            .meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        members
            .into_iter()
            .map(|(identity, state)| {
                let rtt_ms = match state {
                    MemberState::Down => None,
                    _ => self
                        .shared
                        .transport
                        .rtt(identity.quic_addr())
                        .map(|rtt| rtt.as_secs_f64() * 1_000.0),
                };
                MemberView {
                    node_id: identity.node_id().clone(),
                    region: identity.region().clone(),
                    state,
                    quic_addr: identity.quic_addr(),
                    http_url: identity.http_url().to_owned(),
                    actor_addr: identity.actor_addr(),
                    generation: identity.generation(),
                    rtt_ms,
                    meta: meta.get(identity.node_id()).map(|(_, meta)| meta.clone()),
                }
            })
            .collect()
    }

    /// Membership changes from now on. A subscriber that falls more than
    /// `events_capacity_max` events behind gets `Lagged` and skips ahead.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.shared.events.subscribe()
    }

    /// The latest metadata of a node (this one included).
    pub fn meta(&self, node_id: &NodeId) -> Option<NodeMeta> {
        self.shared
            .meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node_id)
            .map(|(_, meta)| meta.clone())
    }

    /// Publishes this node's metadata to the cluster (newer replaces older).
    ///
    /// # Errors
    /// [`GossipError::Meta`] for metadata out of bounds,
    /// [`GossipError::Stopped`] when the node has stopped.
    ///
    /// Cancel safety: if cancelled, the update may or may not be published.
    pub async fn set_meta(&self, meta: NodeMeta) -> Result<(), GossipError> {
        meta.validate()?;
        let (done_tx, done_rx) = oneshot::channel();
        self.commands
            .send(Command::SetMeta(meta, done_tx))
            .await
            .map_err(|_| GossipError::Stopped)?;
        done_rx.await.map_err(|_| GossipError::Stopped)?
    }

    /// Replaces the fault-injection rules (an empty filter turns it off).
    /// Connections covered by a new `Cut` rule are closed at once.
    pub fn set_fault_filter(&self, filter: FaultFilter) {
        *self
            .shared
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = filter;
        self.shared.transport.apply_cuts();
    }

    /// The rules in force, shared, for the node's other transports to follow.
    pub fn faults(&self) -> SharedFaults {
        SharedFaults::new(self.shared.faults.clone())
    }

    /// Turns fault injection off.
    pub fn clear_fault_filter(&self) {
        self.set_fault_filter(FaultFilter::none());
    }

    /// How many packets or connections were dropped for `reason` (the same
    /// number the `lyceum_gossip_dropped_total` metric shows).
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.shared.metrics.dropped_count(reason)
    }

    /// Leaves the cluster gracefully: tells members this node is going (so
    /// they mark it down without suspecting it first), repeats that for
    /// `leave_linger_ms`, then closes the endpoint.
    ///
    /// # Errors
    /// [`GossipError::Stopped`] when the node had already stopped.
    pub async fn leave(self) -> Result<(), GossipError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.commands
            .send(Command::Leave(done_tx))
            .await
            .map_err(|_| GossipError::Stopped)?;
        done_rx.await.map_err(|_| GossipError::Stopped)?;
        // The task ends right after answering; its result carries nothing.
        let _ended = self.task.await;
        Ok(())
    }

    /// Stops the node at once, as a crash would: no departure is announced.
    pub fn abort(self) {
        self.task.abort();
        self.shared.transport.close();
    }
}

struct Driver {
    foca: SwimFoca,
    relay: Relay,
    runtime: AccumulatingRuntime<NodeIdentity>,
    timers: BinaryHeap<Scheduled>,
    timer_seq: u64,
    shared: Arc<Shared>,
    seeds: Vec<SocketAddr>,
    meta_seq: u64,
    known: BTreeMap<NodeId, (MemberState, u64)>,
    leaving: bool,
    /// Decides degraded packets' fates; seeded from the node's seed.
    fault_rng: FaultRng,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        seed_retry: Duration,
        metrics_refresh: Duration,
        leave_linger: Duration,
    ) {
        let mut seed_tick = tokio::time::interval(seed_retry);
        seed_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metrics_tick = tokio::time::interval(metrics_refresh);
        metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.peek().map(|scheduled| scheduled.at);
            tokio::select! {
                // In this order: what peers sent before the timers that judge
                // their silence (see `SwimSettings`).
                biased;
                command = commands.recv() => match command {
                    Some(Command::SetMeta(meta, done)) => {
                        let result = self.set_meta(meta);
                        // The caller may have given up waiting; nothing to do then.
                        let _gone = done.send(result);
                    }
                    Some(Command::Leave(done)) => {
                        self.leave(leave_linger).await;
                        let _gone = done.send(());
                        return;
                    }
                    None => break,
                },
                Some(message) = inbound.recv() => self.on_inbound(message),
                () = sleep_until(next), if next.is_some() => self.fire_due(),
                _ = seed_tick.tick() => self.retry_seeds(),
                _ = metrics_tick.tick() => self.refresh_rtt(),
            }
        }
        // The handle was dropped without leaving.
        self.shared.transport.close();
    }

    fn schedule(&mut self, after: Duration, due: Due) {
        if self.timers.len() >= TIMERS_MAX {
            tracing::error!(timers = self.timers.len(), "gossip timer heap is full");
            self.shared.metrics.dropped(DropReason::QueueFull);
            return;
        }
        self.timer_seq += 1;
        self.timers.push(Scheduled {
            at: Instant::now() + after,
            seq: self.timer_seq,
            due,
        });
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|next| next.at <= now) {
            let Some(scheduled) = self.timers.pop() else {
                break;
            };
            match scheduled.due {
                Due::Foca(timer) => {
                    if self.leaving {
                        continue;
                    }
                    let probe_tick = matches!(timer, Timer::ProbeRandomMember(_));
                    let probed = if probe_tick {
                        self.relay.before_probe_tick()
                    } else {
                        None
                    };
                    if let Err(err) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(error = %err, "gossip timer");
                    }
                    if probe_tick {
                        self.after_foca();
                        let (mut out, mut timers) = (Vec::new(), Vec::new());
                        self.relay
                            .after_probe_tick(&self.foca, probed, &mut out, &mut timers);
                        self.send_relayed(out, timers);
                    }
                }
                Due::Chase(timer) => {
                    if self.leaving {
                        continue;
                    }
                    let (mut out, mut timers) = (Vec::new(), Vec::new());
                    self.relay
                        .on_chase(&self.foca, timer, &mut out, &mut timers);
                    self.send_relayed(out, timers);
                }
                Due::Send {
                    addr,
                    node_id,
                    bytes,
                } => self.shared.transport.send(addr, Some(&node_id), bytes),
                Due::Deliver {
                    from_addr,
                    from_node,
                    bytes,
                } => self.handle_datagram(from_addr, &from_node, &bytes),
            }
        }
        self.after_foca();
    }

    fn on_inbound(&mut self, message: Inbound) {
        match message {
            Inbound::Datagram {
                from_addr,
                from_node,
                bytes,
            } => {
                self.shared.metrics.datagrams_received.inc();
                if self.leaving {
                    return;
                }
                match self.fate(from_addr, &from_node, PacketWay::Inbound) {
                    Fate::Drop => self.shared.metrics.dropped(DropReason::FaultInjected),
                    Fate::Hold(after) => self.schedule(
                        after,
                        Due::Deliver {
                            from_addr,
                            from_node,
                            bytes,
                        },
                    ),
                    Fate::Pass => self.handle_datagram(from_addr, &from_node, &bytes),
                }
            }
            Inbound::Connected { addr, node_id } => {
                if self.seeds.contains(&addr) && self.foca.num_members() == 0 {
                    self.announce_to(addr, node_id);
                    self.after_foca();
                }
            }
        }
    }

    /// What fault injection does with one packet to or from a peer.
    fn fate(&mut self, addr: SocketAddr, node_id: &NodeId, way: PacketWay) -> Fate {
        self.shared
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .fate(addr, Some(node_id), way, &mut self.fault_rng)
    }

    /// One admitted-or-refused datagram, and what foca and the relay send
    /// in answer.
    fn handle_datagram(&mut self, from_addr: SocketAddr, from_node: &NodeId, bytes: &[u8]) {
        self.relay.begin_packet();
        let (received, sender) = receive::receive_from(
            &mut self.foca,
            &mut self.runtime,
            from_addr,
            from_node,
            bytes,
        );
        if let Received::Dropped(reason) = received {
            self.shared.metrics.dropped(reason);
        }
        self.after_foca();
        if self.relay.end_packet() {
            if let Some(answer) = sender.and_then(|sender| self.relay.answer(&self.foca, &sender)) {
                self.send_relayed(vec![answer], Vec::new());
            }
        }
    }

    /// Sends what the relay asked for the way foca's packets go, and
    /// schedules its reminders.
    fn send_relayed(&mut self, packets: Vec<RelayPacket>, timers: Vec<(Duration, ChaseTimer)>) {
        if self.leaving {
            return;
        }
        for (to, bytes) in packets {
            self.send_packet(&to, bytes);
        }
        for (after, timer) in timers {
            self.schedule(after, Due::Chase(timer));
        }
    }

    fn send_packet(&mut self, to: &NodeIdentity, bytes: Bytes) {
        let addr = to.quic_addr();
        match self.fate(addr, to.node_id(), PacketWay::Outbound) {
            Fate::Drop => self.shared.metrics.dropped(DropReason::FaultInjected),
            Fate::Hold(after) => self.schedule(
                after,
                Due::Send {
                    addr,
                    node_id: to.node_id().clone(),
                    bytes,
                },
            ),
            Fate::Pass => self.shared.transport.send(addr, Some(to.node_id()), bytes),
        }
    }

    fn announce_to(&mut self, addr: SocketAddr, node_id: NodeId) {
        let local = self.foca.identity();
        if &node_id == local.node_id() {
            return;
        }
        let seed = NodeIdentity::placeholder(node_id, local.region().clone(), addr);
        if let Err(err) = self.foca.announce(seed, &mut self.runtime) {
            tracing::warn!(seed = %addr, error = %err, "gossip announce failed");
        }
    }

    fn retry_seeds(&mut self) {
        if self.leaving || self.foca.num_members() > 0 {
            return;
        }
        for addr in self.seeds.clone() {
            match self.shared.transport.connected_node(addr) {
                Some(node_id) => self.announce_to(addr, node_id),
                None => self.shared.transport.ensure_connection(addr, None),
            }
        }
        self.after_foca();
    }

    fn set_meta(&mut self, meta: NodeMeta) -> Result<(), GossipError> {
        self.meta_seq += 1;
        let local = self.foca.identity();
        let update = MetaUpdate {
            node_id: local.node_id().clone(),
            generation: local.generation(),
            seq: self.meta_seq,
            meta,
        };
        let bytes = update.encode()?;
        self.foca
            .add_broadcast(&bytes)
            .map_err(|err| GossipError::Protocol(err.to_string()))?;
        let result = self
            .foca
            .broadcast(&mut self.runtime)
            .map_err(|err| GossipError::Protocol(err.to_string()));
        self.after_foca();
        result
    }

    async fn leave(&mut self, linger: Duration) {
        self.leaving = true;
        if let Err(err) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::warn!(error = %err, "gossip leave");
        }
        self.after_foca();
        let pause = linger / LEAVE_GOSSIP_ROUNDS;
        for _ in 0..LEAVE_GOSSIP_ROUNDS {
            tokio::time::sleep(pause).await;
            if self.foca.updates_backlog() > 0 {
                if let Err(err) = self.foca.gossip(&mut self.runtime) {
                    tracing::debug!(error = %err, "gossip leave repeat");
                }
                self.after_foca();
            }
        }
        tracing::info!(node = %self.foca.identity(), "left the gossip cluster");
        self.shared.transport.close();
    }

    /// Acts on what foca asked for: sends packets, schedules timers, reacts
    /// to notifications, then refreshes the members view.
    fn after_foca(&mut self) {
        while let Some((to, bytes)) = self.runtime.to_send() {
            if let Some(header) = sent_header(&bytes) {
                if is_refuted_turn_undead(&self.foca, &to, &header) {
                    tracing::debug!(member = %to, "dropped turn-undead after a refuted suspicion");
                    continue;
                }
                self.relay.observe_sent(&header);
            }
            self.send_packet(&to, bytes);
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.schedule(after, Due::Foca(timer));
        }
        let mut relayed = Vec::new();
        while let Some(notification) = self.runtime.to_notify() {
            match &notification {
                OwnedNotification::MemberDown(down) => {
                    self.relay.on_member_down(&self.foca, down, &mut relayed);
                }
                OwnedNotification::MemberUp(up) => {
                    relayed.extend(self.relay.on_member_up(&self.foca, up));
                }
                _ => {}
            }
            self.on_notification(notification);
        }
        self.send_relayed(relayed, Vec::new());
        self.refresh_members();
    }

    fn on_notification(&mut self, notification: OwnedNotification<NodeIdentity>) {
        let event = match notification {
            OwnedNotification::MemberUp(member) => {
                self.shared
                    .transport
                    .ensure_connection(member.quic_addr(), Some(member.node_id()));
                None
            }
            OwnedNotification::MemberDown(member) => {
                self.shared.metrics.forget_peer(member.node_id());
                None
            }
            OwnedNotification::Active => Some(MembershipEvent::Joined),
            OwnedNotification::Idle => Some(MembershipEvent::Isolated),
            OwnedNotification::Rejoin(identity) => {
                tracing::warn!(node = %identity, "declared down by the cluster, rejoined as a new generation");
                Some(MembershipEvent::Rejoined {
                    generation: identity.generation(),
                })
            }
            OwnedNotification::Defunct => {
                if !self.leaving {
                    tracing::error!("declared down by the cluster and cannot rejoin");
                }
                None
            }
            OwnedNotification::Rename(..) => None,
        };
        if let Some(event) = event {
            // No subscriber is fine.
            let _none = self.shared.events.send(event);
        }
    }

    fn refresh_members(&mut self) {
        let mut members: Vec<(NodeIdentity, MemberState)> = self
            .foca
            .iter_membership_state()
            .map(|member| (member.id().clone(), MemberState::from(member.state())))
            .collect();
        members.sort_by(|a, b| a.0.node_id().cmp(b.0.node_id()));
        let mut counts = [0i64; 3];
        for (identity, state) in &members {
            counts[state.index()] += 1;
            let now = (*state, identity.generation());
            let previous = self.known.insert(identity.node_id().clone(), now);
            if previous != Some(now) {
                self.shared.metrics.membership_changes.inc();
                let event = MembershipEvent::Member {
                    node_id: identity.node_id().clone(),
                    previous: previous.map(|(state, _)| state),
                    current: *state,
                    generation: identity.generation(),
                };
                tracing::info!(member = %identity, state = ?state, "gossip member changed");
                let _none = self.shared.events.send(event);
            }
        }
        if self.known.len() > members.len() {
            self.known.retain(|node_id, _| {
                members
                    .iter()
                    .any(|(identity, _)| identity.node_id() == node_id)
            });
        }
        self.shared.metrics.set_members(counts);
        let mut snapshot = self.shared.snapshot();
        snapshot.local = self.foca.identity().clone();
        snapshot.members = members;
    }

    fn refresh_rtt(&self) {
        let snapshot = self.shared.snapshot();
        for (identity, state) in &snapshot.members {
            if *state == MemberState::Down {
                continue;
            }
            if let Some(rtt) = self.shared.transport.rtt(identity.quic_addr()) {
                self.shared
                    .metrics
                    .set_rtt(identity.node_id(), rtt.as_secs_f64());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    #[test]
    fn scheduled_pops_earliest_first() {
        let now = Instant::now();
        let mut heap = BinaryHeap::new();
        for (offset_ms, seq) in [(30, 1), (10, 2), (10, 3), (20, 4)] {
            heap.push(Scheduled {
                at: now + Duration::from_millis(offset_ms),
                seq,
                due: Due::Foca(Timer::ProbeRandomMember(0)),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|s| s.seq)).collect();
        assert_eq!(order, vec![2, 3, 4, 1]);
    }

    fn node(id: &str, port: u16) -> NodeIdentity {
        NodeIdentity::new(
            NodeId::new(id).expect("id"),
            Region::new("eu-west").expect("region"),
            SocketAddr::from(([127, 0, 0, 1], port)),
            "http://node.test",
            SocketAddr::from(([127, 0, 0, 1], port + 1)),
            1,
        )
        .expect("identity")
    }

    fn swim(identity: NodeIdentity, seed: u64) -> SwimFoca {
        Foca::with_custom_broadcast(
            identity,
            crate::config::SwimSettings::lan()
                .to_foca()
                .expect("config"),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            MetaHandler::new(MetaTable::default()),
        )
    }

    /// Real packets from a short exchange, then thousands of mutations of
    /// them fed to a node: foca and our codec must refuse them, never panic.
    #[test]
    fn mutated_packets_never_panic() {
        let (a_id, b_id) = (node("fuzz-a", 1000), node("fuzz-b", 2000));
        let mut a = swim(a_id.clone(), 1);
        let mut b = swim(b_id.clone(), 2);
        let mut runtime = AccumulatingRuntime::new();
        let meta = MetaUpdate {
            node_id: a_id.node_id().clone(),
            generation: 1,
            seq: 1,
            meta: NodeMeta {
                load_permille: 10,
                sessions: 2,
                free_warm: [("rust".to_owned(), 1)].into_iter().collect(),
            },
        };
        a.add_broadcast(&meta.encode().expect("meta"))
            .expect("broadcast");
        a.announce(b_id.clone(), &mut runtime).expect("announce");
        let mut packets = Vec::new();
        // Bounce packets between the two until they have a few of each kind.
        for _round in 0..6 {
            let mut outgoing = Vec::new();
            while let Some((to, bytes)) = runtime.to_send() {
                outgoing.push((to, bytes));
            }
            while runtime.to_schedule().is_some() || runtime.to_notify().is_some() {}
            for (to, bytes) in outgoing {
                packets.push(bytes.clone());
                let target = if to.node_id() == b_id.node_id() {
                    &mut b
                } else {
                    &mut a
                };
                // Some replies (e.g. to a probe) are fine to refuse.
                let _ignored = target.handle_data(&bytes, &mut runtime);
            }
            let _ignored = a.gossip(&mut runtime);
            let _ignored = b.gossip(&mut runtime);
        }
        assert!(packets.len() >= 4, "only {} packets", packets.len());

        let mut victim = swim(b_id, 3);
        let mut sink = AccumulatingRuntime::new();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5_000usize {
            let mut packet = packets[round % packets.len()].to_vec();
            match next() % 4 {
                0 => {
                    let at = next() as usize % packet.len().max(1);
                    packet.truncate(at);
                }
                1 => packet.extend((0..next() % 8).map(|_| next() as u8)),
                _ => {
                    for _ in 0..=next() % 4 {
                        if !packet.is_empty() {
                            let at = next() as usize % packet.len();
                            packet[at] ^= (next() as u8) | 1;
                        }
                    }
                }
            }
            let decoded: Result<Header<NodeIdentity>, _> = PostcardCodec.decode_header(&packet[..]);
            drop(decoded);
            let _refused = victim.handle_data(&packet, &mut sink);
            while sink.to_send().is_some()
                || sink.to_schedule().is_some()
                || sink.to_notify().is_some()
            {}
        }
    }

    #[test]
    fn foca_identity_trait_is_used_for_addr() {
        let identity = NodeIdentity::placeholder(
            NodeId::new("a").expect("id"),
            Region::new("r").expect("region"),
            "127.0.0.1:1".parse().expect("addr"),
        );
        assert_eq!(identity.addr(), NodeId::new("a").expect("id"));
    }
}
