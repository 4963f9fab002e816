//! The running actor system of one node: a ractor_cluster `NodeServer`, the
//! QUIC endpoint that carries its sessions, and a task that follows gossip.
//!
//! *Who dials.* When gossip reports a member alive, the node with the smaller
//! node id dials the other's actor address (from the member's identity), so
//! two nodes never race to open two sessions. The dialled side accepts any
//! peer whose certificate the cluster CA signed and names it by that
//! certificate; a new connection from a node replaces the one it had (the
//! peer restarted or lost it).
//!
//! *When a session ends.* ractor_cluster's ping never declares a peer dead,
//! so the session's fate follows gossip: a member declared down has its QUIC
//! connection closed, which ends the stream, the ractor session, the proxies
//! of its actors and their process-group entries. A QUIC connection lost while
//! the member stays alive is dialled again at the next reconcile round.
//!
//! *Names.* Each node's ractor name is `<node_id>@g<generation>`, so the
//! session of a restarted node never competes with its previous life's in
//! ractor_cluster's duplicate-session election.
//!
//! *The TCP listener.* ractor_cluster's `NodeServer` always opens one; it is
//! bound to loopback on a free port, requires a client certificate from the
//! cluster CA, and no node ever dials it (Isolated mode: peers are never
//! dialled transitively over plain TCP).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use bytes::Bytes;
use gossip::{GossipHandle, MemberState, MemberView, MembershipEvent, NodeId};
use ractor::{Actor, ActorRef};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinHandle,
};

use crate::{
    config::{ActorConfig, ConfigError},
    datagrams::{Datagram, DatagramError, INBOUND_DATAGRAMS_MAX},
    hold::HoldBack,
    metrics::{BadFrame, Direction, Metrics, MetricsError},
    transport::{bind_endpoint, FrameGuard, QuicBidi, TransportError},
};

/// The ractor_cluster cookie. Authentication is the mutual TLS of the QUIC
/// connection (and of the loopback listener); the cookie is only the
/// handshake ractor_cluster insists on, so it is the same everywhere.
const COOKIE: &str = "lyceum-actors";
/// How long a look-up of the ractor sessions may take.
const SESSIONS_CALL_MS: u64 = 2_000;

/// Why the actor system could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ActorsError {
    /// The configuration was refused.
    #[error("actor configuration: {0}")]
    Config(#[from] ConfigError),
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// ractor could not start an actor.
    #[error("starting an actor: {0}")]
    Spawn(String),
    /// A call to an actor failed, timed out or its session dropped.
    #[error("actor call: {0}")]
    Call(String),
    /// The actor system has stopped.
    #[error("the actor system has stopped")]
    Stopped,
}

/// One authenticated actor-cluster session, as ractor_cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The peer's node id.
    pub node_id: NodeId,
    /// The peer's generation when the session opened.
    pub generation: Option<u64>,
    /// Whether the peer dialled us.
    pub inbound: bool,
}

enum Slot {
    /// A dial is under way.
    Connecting,
    /// A connection carries the session.
    Up {
        conn: quinn::Connection,
        /// The member generation we dialled; `None` when the peer dialled.
        generation: Option<u64>,
    },
}

struct Inner {
    node_id: NodeId,
    endpoint: quinn::Endpoint,
    node_server: ActorRef<NodeServerMessage>,
    peers: Mutex<HashMap<NodeId, Slot>>,
    metrics: Metrics,
    frame_bytes_max: u64,
    connect_timeout: Duration,
    sessions_max: usize,
    /// The gossip node's fault rules, once followed: sessions' receive
    /// streams are held back as they say (`crate::hold`).
    faults: std::sync::OnceLock<gossip::SharedFaults>,
    /// Where received datagrams go (`crate::datagrams`); the receiver is
    /// handed out once.
    datagrams_in: mpsc::Sender<Datagram>,
    datagrams_out: Mutex<Option<mpsc::Receiver<Datagram>>>,
}

/// Sends datagrams to peers on the actor sessions' connections; cheap to
/// clone. See `crate::datagrams`.
#[derive(Clone)]
pub struct DatagramSender {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DatagramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramSender")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

impl DatagramSender {
    /// Sends one datagram to `to` now, without waiting.
    ///
    /// # Errors
    /// [`DatagramError`]: no session with the peer, too large for the path,
    /// dropped by a fault rule, refused by the connection. Each is counted
    /// as dropped.
    pub fn send(&self, to: &NodeId, bytes: Bytes) -> Result<(), DatagramError> {
        let sent = self.try_send(to, bytes);
        let outcome = if sent.is_ok() { "sent" } else { "dropped" };
        self.inner
            .metrics
            .datagrams
            .with_label_values(&[outcome])
            .inc();
        sent
    }

    fn try_send(&self, to: &NodeId, bytes: Bytes) -> Result<(), DatagramError> {
        if self.inner.faulted(to, gossip::fault::PacketWay::Outbound) {
            return Err(DatagramError::Faulted(to.clone()));
        }
        let conn = match self.inner.peers().get(to) {
            Some(Slot::Up { conn, .. }) => conn.clone(),
            _ => return Err(DatagramError::NoSession(to.clone())),
        };
        let max = conn.max_datagram_size().unwrap_or(0);
        if bytes.len() > max {
            return Err(DatagramError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        conn.send_datagram(bytes)
            .map_err(|err| DatagramError::Refused(err.to_string()))
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node_id
    }
}

/// A node's actor system. Start it with [`ActorSystem::start`] (before
/// gossip, so gossip can advertise [`ActorSystem::local_addr`]), then hand it
/// the gossip node with [`ActorSystem::follow`]. Stop it with
/// [`ActorSystem::shutdown`]; dropping it stops it too, without waiting.
pub struct ActorSystem {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    reconcile_interval: Duration,
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ActorSystem {
    /// Validates `config`, registers the metrics, binds the QUIC endpoint,
    /// starts the ractor_cluster `NodeServer` (Isolated mode, loopback TLS
    /// listener) and starts accepting sessions. Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// [`ActorsError`] when the configuration is refused, the metrics are
    /// registered twice in one registry, the socket cannot be bound or the
    /// node server does not start.
    pub async fn start(config: ActorConfig) -> Result<Self, ActorsError> {
        config.validate()?;
        let node_id = config.tls.node_id().clone();
        let metrics = Metrics::register(&config.registry)?;
        let endpoint = bind_endpoint(config.bind_addr, &config.tls, config.idle_timeout_ms)?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.bind_addr,
                source,
            })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
            config
                .tls
                .rustls_server_config()
                .map_err(TransportError::from)?,
        ));
        let server = NodeServer::new(
            0,
            COOKIE.to_owned(),
            node_id.to_string(),
            format!("g{}", config.generation),
            Some(IncomingEncryptionMode::Tls(acceptor)),
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .with_max_inbound_frame_size(config.frame_bytes_max);
        let (node_server, _handle) = Actor::spawn(None, server, ())
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        let (datagrams_in, datagrams_out) = mpsc::channel(INBOUND_DATAGRAMS_MAX);
        let inner = Arc::new(Inner {
            node_id,
            endpoint,
            node_server,
            peers: Mutex::new(HashMap::new()),
            metrics,
            frame_bytes_max: config.frame_bytes_max,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            sessions_max: config.sessions_max,
            faults: std::sync::OnceLock::new(),
            datagrams_in,
            datagrams_out: Mutex::new(Some(datagrams_out)),
        });
        tracing::info!(node = %inner.node_id, %local_addr, "actor system started");
        let accept = tokio::spawn(inner.clone().accept_loop());
        let (stop, _) = watch::channel(false);
        Ok(Self {
            inner,
            local_addr,
            stop,
            tasks: Mutex::new(vec![accept]),
            reconcile_interval: Duration::from_millis(config.reconcile_interval_ms),
        })
    }

    /// Where the actor QUIC endpoint listens: what gossip must advertise as
    /// this node's actor address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id (the one its certificate names).
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node_id
    }

    /// Starts following `gossip`: sessions are opened to members as they come
    /// up and closed when they go down. Only a weak reference is kept, so
    /// the caller can still take the handle back to leave the cluster.
    pub fn follow(&self, gossip: &Arc<GossipHandle>) {
        // Following a second gossip node keeps the first one's rules.
        let _first = self.inner.faults.set(gossip.faults());
        let events = gossip.subscribe();
        let task = tokio::spawn(follow_loop(
            self.inner.clone(),
            Arc::downgrade(gossip),
            events,
            self.stop.subscribe(),
            self.reconcile_interval,
        ));
        self.tasks().push(task);
    }

    /// The authenticated sessions, as ractor_cluster reports them.
    ///
    /// # Errors
    /// [`ActorsError::Stopped`] when the node server is gone or does not
    /// answer in time.
    pub async fn sessions(&self) -> Result<Vec<SessionView>, ActorsError> {
        let outcome = self
            .inner
            .node_server
            .call(
                NodeServerMessage::GetSessions,
                Some(Duration::from_millis(SESSIONS_CALL_MS)),
            )
            .await
            .map_err(|_| ActorsError::Stopped)?;
        let ractor::rpc::CallResult::Success(sessions) = outcome else {
            return Err(ActorsError::Stopped);
        };
        let mut views: Vec<SessionView> = sessions
            .into_values()
            .filter_map(|session| {
                let name = session.peer_name?.name;
                let (id, host) = name.split_once('@')?;
                let node_id = NodeId::new(id).ok()?;
                let generation = host.strip_prefix('g').and_then(|g| g.parse().ok());
                Some(SessionView {
                    node_id,
                    generation,
                    inbound: session.is_server,
                })
            })
            .collect();
        views.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(views)
    }

    /// Closes the session with `node_id` now, as a lost connection would
    /// (for chaos drills and tests). It says nothing about the member's
    /// health: while gossip holds it alive, the side that dials opens a new
    /// session at its next reconcile round. Returns whether one was open.
    pub fn drop_session(&self, node_id: &NodeId) -> bool {
        let mut peers = self.inner.peers();
        let dropped = match peers.remove(node_id) {
            Some(Slot::Up { conn, .. }) => {
                conn.close(0u8.into(), b"dropped by operator");
                true
            }
            Some(Slot::Connecting) => {
                peers.insert(node_id.clone(), Slot::Connecting);
                false
            }
            None => false,
        };
        self.inner.count_sessions(&peers);
        dropped
    }

    /// A handle that sends datagrams to peers (see `crate::datagrams`).
    pub fn datagram_sender(&self) -> DatagramSender {
        DatagramSender {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The datagrams peers send this node, in arrival order; handed out
    /// once (`None` after). While nobody takes them they are dropped and
    /// counted as the queue fills.
    pub fn take_datagrams(&self) -> Option<mpsc::Receiver<Datagram>> {
        self.inner
            .datagrams_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// How many frames were refused for `reason` (the number the
    /// `lyceum_actors_bad_frames_total` metric shows).
    pub fn bad_frames(&self, reason: BadFrame) -> u64 {
        self.inner.metrics.bad_frame_count(reason)
    }

    /// Stops following gossip, closes every session and the endpoint, and
    /// stops the node server.
    ///
    /// Cancel safety: if cancelled, the system is stopping but may not have
    /// finished.
    pub async fn shutdown(self) {
        self.stop_now();
        // Give the node server its supervision tree's shutdown; a failure
        // only means it was already gone.
        let _gone = self
            .inner
            .node_server
            .stop_and_wait(Some("shutdown".to_owned()), Some(Duration::from_secs(5)))
            .await;
        self.inner.endpoint.wait_idle().await;
    }

    fn stop_now(&self) {
        self.stop.send_replace(true);
        for task in self.tasks().drain(..) {
            task.abort();
        }
        for (_, slot) in self.inner.peers().drain() {
            if let Slot::Up { conn, .. } = slot {
                conn.close(0u8.into(), b"shutdown");
            }
        }
        self.inner.metrics.sessions.set(0);
        self.inner.endpoint.close(0u8.into(), b"shutdown");
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        if !*self.stop.borrow() {
            self.stop_now();
            self.inner.node_server.stop(Some("dropped".to_owned()));
        }
    }
}

async fn follow_loop(
    inner: Arc<Inner>,
    gossip: Weak<GossipHandle>,
    mut events: broadcast::Receiver<MembershipEvent>,
    mut stop: watch::Receiver<bool>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            event = events.recv() => match event {
                Ok(MembershipEvent::Member { node_id, current: MemberState::Down, generation, .. }) => {
                    inner.close_down(&node_id, generation);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => reconcile(&inner, &gossip),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => reconcile(&inner, &gossip),
        }
    }
}

/// A session's own draws for degraded streams, from an entropy seed.
fn session_rng() -> gossip::FaultRng {
    use std::hash::{BuildHasher, Hasher};
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    gossip::FaultRng::seeded(seed)
}

fn reconcile(inner: &Arc<Inner>, gossip: &Weak<GossipHandle>) {
    let Some(handle) = gossip.upgrade() else {
        return;
    };
    let members = handle.members();
    drop(handle);
    inner.reconcile(&members);
}

impl Inner {
    fn peers(&self) -> MutexGuard<'_, HashMap<NodeId, Slot>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_sessions(&self, peers: &HashMap<NodeId, Slot>) {
        let up = peers
            .values()
            .filter(|slot| matches!(slot, Slot::Up { .. }))
            .count();
        self.metrics
            .sessions
            .set(i64::try_from(up).unwrap_or(i64::MAX));
    }

    /// Dials alive members we should dial and have no session with (or an
    /// older generation's), closes sessions of members gossip holds down.
    fn reconcile(self: &Arc<Self>, members: &[MemberView]) {
        let mut peers = self.peers();
        for member in members {
            let existing = peers.get(&member.node_id);
            match member.state {
                MemberState::Down => {
                    // Only sessions we dialled to this generation or an older
                    // one. A session the peer dialled may be its next life,
                    // which dials as soon as it sees us and can be ahead of
                    // our gossip; those close on the down event, or when QUIC
                    // finds the path dead.
                    if let Some(Slot::Up {
                        conn,
                        generation: Some(generation),
                    }) = existing
                    {
                        if *generation <= member.generation {
                            conn.close(0u8.into(), b"member down");
                            peers.remove(&member.node_id);
                        }
                    }
                }
                MemberState::Suspect => {}
                MemberState::Alive => {
                    if self.node_id >= member.node_id {
                        continue;
                    }
                    match existing {
                        Some(Slot::Connecting) => continue,
                        Some(Slot::Up {
                            conn,
                            generation: Some(generation),
                        }) if *generation < member.generation => {
                            conn.close(0u8.into(), b"member restarted");
                        }
                        Some(Slot::Up { .. }) => continue,
                        None => {}
                    }
                    peers.insert(member.node_id.clone(), Slot::Connecting);
                    tokio::spawn(self.clone().dial(
                        member.node_id.clone(),
                        member.actor_addr,
                        member.generation,
                    ));
                }
            }
        }
        self.count_sessions(&peers);
    }

    /// A member was declared down in `generation`: close its session unless
    /// it was opened to a later generation.
    fn close_down(&self, node_id: &NodeId, generation: u64) {
        let mut peers = self.peers();
        let newer = matches!(
            peers.get(node_id),
            Some(Slot::Up { generation: Some(g), .. }) if *g > generation
        );
        if !newer {
            if let Some(Slot::Up { conn, .. }) = peers.remove(node_id) {
                tracing::info!(peer = %node_id, generation, "member down; closing its actor session");
                conn.close(0u8.into(), b"member down");
            }
        }
        self.count_sessions(&peers);
    }

    async fn dial(self: Arc<Self>, node_id: NodeId, addr: SocketAddr, generation: u64) {
        let attempt = async {
            let server_name = gossip::tls::node_dns_name(&node_id);
            let conn = self
                .endpoint
                .connect(addr, &server_name)
                .map_err(|err| err.to_string())?
                .await
                .map_err(|err| err.to_string())?;
            let (send, recv) = conn.open_bi().await.map_err(|err| err.to_string())?;
            Ok::<_, String>((conn, send, recv))
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok((conn, send, recv))) => {
                self.attach(
                    conn,
                    send,
                    recv,
                    node_id,
                    Some(generation),
                    Direction::Outbound,
                )
                .await;
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(err)) => err,
                    _ => "timed out".to_owned(),
                };
                tracing::debug!(peer = %node_id, %addr, %error, "actor session dial failed");
                self.metrics.connect_failures.inc();
                let mut peers = self.peers();
                if matches!(peers.get(&node_id), Some(Slot::Connecting)) {
                    peers.remove(&node_id);
                }
            }
        }
    }

    /// Records the connection as `node_id`'s session (replacing any other)
    /// and hands its stream to ractor_cluster.
    async fn attach(
        self: &Arc<Self>,
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        node_id: NodeId,
        generation: Option<u64>,
        direction: Direction,
    ) {
        {
            let mut peers = self.peers();
            let up = peers
                .values()
                .filter(|slot| matches!(slot, Slot::Up { .. }))
                .count();
            if !peers.contains_key(&node_id) && up >= self.sessions_max {
                tracing::warn!(peer = %node_id, "too many actor sessions; refusing");
                conn.close(2u8.into(), b"too many sessions");
                return;
            }
            let previous = peers.insert(
                node_id.clone(),
                Slot::Up {
                    conn: conn.clone(),
                    generation,
                },
            );
            if let Some(Slot::Up { conn: old, .. }) = previous {
                old.close(0u8.into(), b"replaced");
            }
            self.count_sessions(&peers);
        }
        tokio::spawn(Arc::clone(self).read_datagrams(conn.clone(), node_id.clone()));
        let label = format!("{node_id}@{}", conn.remote_address());
        let stream = QuicBidi {
            send,
            recv: FrameGuard::new(
                HoldBack::new(
                    recv,
                    self.faults.get().cloned(),
                    node_id.clone(),
                    session_rng(),
                ),
                self.frame_bytes_max,
                self.metrics.clone(),
                Some(conn.clone()),
                node_id.clone(),
            ),
            label,
        };
        let handed = match direction {
            Direction::Outbound => {
                ractor_cluster::client_connect_external(&self.node_server, Box::new(stream))
                    .await
                    .map_err(|err| err.to_string())
            }
            Direction::Inbound => self
                .node_server
                .cast(NodeServerMessage::ConnectionOpenedExternal {
                    stream: Box::new(stream),
                    is_server: true,
                })
                .map_err(|err| err.to_string()),
        };
        if let Err(err) = handed {
            tracing::warn!(peer = %node_id, error = %err, "node server refused the session");
            conn.close(3u8.into(), b"node server gone");
        } else {
            tracing::info!(peer = %node_id, direction = direction.as_str(), "actor session opened");
            self.metrics.connected(direction);
        }
        tokio::spawn(self.clone().watch(conn, node_id));
    }

    /// Forgets the session when its connection ends, however it ends.
    async fn watch(self: Arc<Self>, conn: quinn::Connection, node_id: NodeId) {
        let reason = conn.closed().await;
        tracing::info!(peer = %node_id, %reason, "actor session closed");
        self.metrics.disconnects.inc();
        let mut peers = self.peers();
        if let Some(Slot::Up { conn: current, .. }) = peers.get(&node_id) {
            if current.stable_id() == conn.stable_id() {
                peers.remove(&node_id);
            }
        }
        self.count_sessions(&peers);
    }

    /// Whether a fault rule drops traffic with `node_id` going `way`.
    fn faulted(&self, node_id: &NodeId, way: gossip::fault::PacketWay) -> bool {
        self.faults
            .get()
            .is_some_and(|faults| faults.drops(node_id, way))
    }

    /// Reads one connection's datagrams into the node's queue until the
    /// connection closes.
    async fn read_datagrams(self: Arc<Self>, conn: quinn::Connection, node_id: NodeId) {
        while let Ok(bytes) = conn.read_datagram().await {
            let outcome = if self.faulted(&node_id, gossip::fault::PacketWay::Inbound) {
                "dropped"
            } else {
                match self.datagrams_in.try_send(Datagram {
                    from: node_id.clone(),
                    bytes,
                }) {
                    Ok(()) => "received",
                    Err(_) => "dropped",
                }
            };
            self.metrics.datagrams.with_label_values(&[outcome]).inc();
        }
    }

    async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            tokio::spawn(self.clone().accept_one(incoming));
        }
    }

    async fn accept_one(self: Arc<Self>, incoming: quinn::Incoming) {
        let addr = incoming.remote_address();
        let attempt = async {
            let conn = incoming.await.map_err(|err| err.to_string())?;
            let node_id = gossip::tls::peer_node_id(&conn).map_err(|err| err.to_string())?;
            if node_id == self.node_id {
                conn.close(4u8.into(), b"that is me");
                return Err("a peer with our own node id".to_owned());
            }
            let (send, recv) = conn.accept_bi().await.map_err(|err| err.to_string())?;
            Ok::<_, String>((conn, node_id, send, recv))
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok((conn, node_id, send, recv))) => {
                self.attach(conn, send, recv, node_id, None, Direction::Inbound)
                    .await;
            }
            Ok(Err(error)) => {
                tracing::info!(peer = %addr, %error, "actor session refused");
            }
            Err(_elapsed) => {
                tracing::info!(peer = %addr, "actor session handshake timed out");
            }
        }
    }
}
