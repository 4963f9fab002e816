//! The QUIC side of gossip: one quinn endpoint per node that both accepts and
//! dials, with one cached connection per peer address, opened lazily on the
//! first packet (or when foca reports a member up).
//!
//! Gossip packets travel as QUIC *datagrams*, not streams: SWIM is built for
//! an unreliable transport and measures liveness by whether a probe is
//! answered in time, so retransmitting a lost ping (as a stream would) only
//! delays the answer and hides the loss that failure detection is about, and
//! head-of-line blocking would let one lost packet hold back the next probe.
//! Datagrams keep UDP's semantics while QUIC adds what UDP lacks here: mutual
//! TLS, so every packet comes from an authenticated cluster member, and path
//! MTU handling.
//!
//! A connection that closes (idle timeout, peer restart) is simply dropped
//! from the cache and opened again on the next packet; it says nothing about
//! the member's health, which is foca's call alone.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{
    fault::FaultFilter,
    metrics::{DropReason, Metrics},
    names::NodeId,
    tls::{self, TlsError, TlsMaterial},
};

/// Datagram bytes QUIC buffers per connection on receipt before dropping.
pub const DATAGRAM_RECEIVE_BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Datagram bytes QUIC buffers per connection for sending before dropping the
/// oldest.
pub const DATAGRAM_SEND_BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Most peers a node keeps a connection (or a connection attempt) for.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Most incoming handshakes in progress at once.
pub const INCOMING_HANDSHAKES_MAX: usize = 1_024;

/// What the transport hands to the SWIM task.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A datagram from an authenticated peer.
    Datagram {
        from_addr: SocketAddr,
        from_node: NodeId,
        bytes: Bytes,
    },
    /// An outgoing connection was established (used to announce to seeds,
    /// whose node id is learnt from their certificate).
    Connected { addr: SocketAddr, node_id: NodeId },
}

enum Slot {
    Connecting {
        pending: VecDeque<Bytes>,
    },
    Connected {
        conn: quinn::Connection,
        node_id: NodeId,
    },
}

/// Settings the transport needs from the gossip configuration.
pub(crate) struct TransportSettings {
    pub(crate) bind_addr: SocketAddr,
    pub(crate) connect_timeout_ms: u64,
    pub(crate) idle_timeout_ms: u64,
    pub(crate) pending_packets_max: usize,
}

pub(crate) struct Transport {
    endpoint: quinn::Endpoint,
    peers: Mutex<HashMap<SocketAddr, Slot>>,
    inbound: mpsc::Sender<Inbound>,
    faults: Arc<RwLock<FaultFilter>>,
    metrics: Metrics,
    connect_timeout: Duration,
    pending_packets_max: usize,
}

/// Why the endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The idle timeout does not fit QUIC's encoding.
    #[error("idle timeout: {0}")]
    IdleTimeout(String),
    /// The UDP socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
}

fn transport_config(
    settings: &TransportSettings,
) -> Result<quinn::TransportConfig, TransportError> {
    let mut config = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(settings.idle_timeout_ms))
        .map_err(|err| TransportError::IdleTimeout(err.to_string()))?;
    config
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(0u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER_BYTES_MAX))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER_BYTES_MAX);
    Ok(config)
}

impl Transport {
    /// Binds the endpoint and starts accepting connections.
    pub(crate) fn start(
        settings: &TransportSettings,
        tls: &TlsMaterial,
        inbound: mpsc::Sender<Inbound>,
        faults: Arc<RwLock<FaultFilter>>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, TransportError> {
        let transport = Arc::new(transport_config(settings)?);
        let mut server = tls.server_config(transport.clone())?;
        server.max_incoming(INCOMING_HANDSHAKES_MAX);
        let client = tls.client_config(transport)?;
        let mut endpoint =
            quinn::Endpoint::server(server, settings.bind_addr).map_err(|source| {
                TransportError::Bind {
                    addr: settings.bind_addr,
                    source,
                }
            })?;
        endpoint.set_default_client_config(client);
        let this = Arc::new(Self {
            endpoint,
            peers: Mutex::new(HashMap::new()),
            inbound,
            faults,
            metrics,
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
            pending_packets_max: settings.pending_packets_max,
        });
        tokio::spawn(this.clone().accept_loop());
        Ok(this)
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_cut(&self, addr: SocketAddr, node_id: Option<&NodeId>) -> bool {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_cut(addr, node_id)
    }

    /// Closes the endpoint: every connection and task of this transport ends.
    pub(crate) fn close(&self) {
        self.endpoint.close(0u8.into(), b"stopping");
        self.peers().clear();
    }

    /// Closes and forgets connections that a `Cut` rule now covers.
    pub(crate) fn apply_cuts(&self) {
        let mut peers = self.peers();
        let cut: Vec<SocketAddr> = peers
            .iter()
            .filter_map(|(addr, slot)| match slot {
                Slot::Connected { node_id, .. } if self.is_cut(*addr, Some(node_id)) => Some(*addr),
                Slot::Connecting { .. } if self.is_cut(*addr, None) => Some(*addr),
                _ => None,
            })
            .collect();
        for addr in cut {
            if let Some(Slot::Connected { conn, .. }) = peers.remove(&addr) {
                conn.close(0u8.into(), b"cut by fault injection");
            }
        }
    }

    /// The smoothed round-trip time of the live connection to `addr`.
    pub(crate) fn rtt(&self, addr: SocketAddr) -> Option<Duration> {
        match self.peers().get(&addr) {
            Some(Slot::Connected { conn, .. }) if conn.close_reason().is_none() => Some(conn.rtt()),
            _ => None,
        }
    }

    /// The node id of the live connection to `addr`, if any.
    pub(crate) fn connected_node(&self, addr: SocketAddr) -> Option<NodeId> {
        match self.peers().get(&addr) {
            Some(Slot::Connected { conn, node_id }) if conn.close_reason().is_none() => {
                Some(node_id.clone())
            }
            _ => None,
        }
    }

    /// Sends one gossip packet to `addr`, whose certificate must name
    /// `expected` (or any cluster node when `None`, for seeds), opening a
    /// connection first when there is none.
    pub(crate) fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        expected: Option<&NodeId>,
        bytes: Bytes,
    ) {
        if self.is_cut(addr, expected) {
            self.metrics.dropped(DropReason::FaultInjected);
            return;
        }
        let mut peers = self.peers();
        match peers.get_mut(&addr) {
            Some(Slot::Connected { conn, node_id })
                if conn.close_reason().is_none() && expected.is_none_or(|id| id == node_id) =>
            {
                match conn.send_datagram(bytes) {
                    Ok(()) => self.metrics.datagrams_sent.inc(),
                    Err(err) => {
                        tracing::debug!(peer = %addr, error = %err, "gossip datagram not sent");
                        self.metrics.dropped(DropReason::SendFailed);
                    }
                }
                return;
            }
            Some(Slot::Connecting { pending }) => {
                if pending.len() < self.pending_packets_max {
                    pending.push_back(bytes);
                } else {
                    self.metrics.dropped(DropReason::QueueFull);
                }
                return;
            }
            Some(Slot::Connected { conn, .. }) => {
                // Closed, or another node answers at this address now.
                conn.close(0u8.into(), b"replaced");
            }
            None => {
                if peers.len() >= CONNECTIONS_MAX {
                    self.metrics.dropped(DropReason::QueueFull);
                    return;
                }
            }
        }
        let mut pending = VecDeque::new();
        pending.push_back(bytes);
        peers.insert(addr, Slot::Connecting { pending });
        drop(peers);
        tokio::spawn(self.clone().connect(addr, expected.cloned()));
    }

    /// Opens a connection to `addr` unless one exists or is being opened.
    pub(crate) fn ensure_connection(self: &Arc<Self>, addr: SocketAddr, expected: Option<&NodeId>) {
        if self.is_cut(addr, expected) {
            return;
        }
        let mut peers = self.peers();
        if let Some(Slot::Connected { conn, .. }) = peers.get(&addr) {
            if conn.close_reason().is_none() {
                return;
            }
        }
        if let Some(Slot::Connecting { .. }) = peers.get(&addr) {
            return;
        }
        if !peers.contains_key(&addr) && peers.len() >= CONNECTIONS_MAX {
            self.metrics.dropped(DropReason::QueueFull);
            return;
        }
        peers.insert(
            addr,
            Slot::Connecting {
                pending: VecDeque::new(),
            },
        );
        drop(peers);
        tokio::spawn(self.clone().connect(addr, expected.cloned()));
    }

    async fn connect(self: Arc<Self>, addr: SocketAddr, expected: Option<NodeId>) {
        let server_name = expected
            .as_ref()
            .map_or_else(|| tls::CLUSTER_SERVER_NAME.to_owned(), tls::node_dns_name);
        let attempt = async {
            let connecting = self
                .endpoint
                .connect(addr, &server_name)
                .map_err(|err| err.to_string())?;
            let conn = connecting.await.map_err(|err| err.to_string())?;
            let node_id = tls::peer_node_id(&conn).map_err(|err| err.to_string())?;
            Ok::<_, String>((conn, node_id))
        };
        let result = tokio::time::timeout(self.connect_timeout, attempt).await;
        match result {
            Ok(Ok((conn, node_id))) => {
                if self.is_cut(addr, Some(&node_id)) {
                    conn.close(0u8.into(), b"cut by fault injection");
                    self.forget_connecting(addr);
                    return;
                }
                self.register(conn, node_id.clone());
                // A full queue only delays a seed announce to the next retry.
                let _full = self.inbound.try_send(Inbound::Connected { addr, node_id });
            }
            Ok(Err(err)) => {
                tracing::debug!(peer = %addr, error = %err, "gossip connection failed");
                self.metrics.dropped(DropReason::ConnectFailed);
                self.forget_connecting(addr);
            }
            Err(_elapsed) => {
                tracing::debug!(peer = %addr, "gossip connection timed out");
                self.metrics.dropped(DropReason::ConnectFailed);
                self.forget_connecting(addr);
            }
        }
    }

    fn forget_connecting(&self, addr: SocketAddr) {
        let mut peers = self.peers();
        if let Some(Slot::Connecting { .. }) = peers.get(&addr) {
            peers.remove(&addr);
        }
    }

    /// Caches an authenticated connection (unless a live one exists), sends
    /// what was waiting for it and starts reading its datagrams.
    fn register(self: &Arc<Self>, conn: quinn::Connection, node_id: NodeId) {
        let addr = conn.remote_address();
        {
            let mut peers = self.peers();
            let live = matches!(
                peers.get(&addr),
                Some(Slot::Connected { conn: existing, .. }) if existing.close_reason().is_none()
            );
            if !live && !peers.contains_key(&addr) && peers.len() >= CONNECTIONS_MAX {
                self.metrics.dropped(DropReason::QueueFull);
                conn.close(0u8.into(), b"too many peers");
                return;
            }
            if !live {
                let previous = peers.insert(
                    addr,
                    Slot::Connected {
                        conn: conn.clone(),
                        node_id: node_id.clone(),
                    },
                );
                if let Some(Slot::Connecting { pending }) = previous {
                    for bytes in pending {
                        match conn.send_datagram(bytes) {
                            Ok(()) => self.metrics.datagrams_sent.inc(),
                            Err(_) => self.metrics.dropped(DropReason::SendFailed),
                        }
                    }
                }
            }
        }
        tokio::spawn(self.clone().read_loop(conn, node_id));
    }

    async fn read_loop(self: Arc<Self>, conn: quinn::Connection, node_id: NodeId) {
        let addr = conn.remote_address();
        loop {
            match conn.read_datagram().await {
                Ok(bytes) => {
                    let inbound = Inbound::Datagram {
                        from_addr: addr,
                        from_node: node_id.clone(),
                        bytes,
                    };
                    if self.inbound.try_send(inbound).is_err() {
                        self.metrics.dropped(DropReason::QueueFull);
                    }
                }
                Err(err) => {
                    tracing::debug!(peer = %addr, node = %node_id, error = %err, "gossip connection closed");
                    break;
                }
            }
        }
        let mut peers = self.peers();
        if let Some(Slot::Connected { conn: cached, .. }) = peers.get(&addr) {
            if cached.stable_id() == conn.stable_id() {
                peers.remove(&addr);
            }
        }
    }

    async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            if self.is_cut(incoming.remote_address(), None) {
                incoming.refuse();
                continue;
            }
            tokio::spawn(self.clone().accept_one(incoming));
        }
    }

    async fn accept_one(self: Arc<Self>, incoming: quinn::Incoming) {
        let addr = incoming.remote_address();
        let conn = match tokio::time::timeout(self.connect_timeout, incoming).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => {
                tracing::info!(peer = %addr, error = %err, "gossip handshake refused");
                self.metrics.dropped(DropReason::HandshakeFailed);
                return;
            }
            Err(_elapsed) => {
                tracing::info!(peer = %addr, "gossip handshake timed out");
                self.metrics.dropped(DropReason::HandshakeFailed);
                return;
            }
        };
        let node_id = match tls::peer_node_id(&conn) {
            Ok(node_id) => node_id,
            Err(err) => {
                tracing::info!(peer = %addr, error = %err, "gossip peer certificate names no node");
                self.metrics.dropped(DropReason::HandshakeFailed);
                conn.close(0u8.into(), b"certificate names no node");
                return;
            }
        };
        if self.is_cut(addr, Some(&node_id)) {
            conn.close(0u8.into(), b"cut by fault injection");
            return;
        }
        self.register(conn, node_id);
    }
}
