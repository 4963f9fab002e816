//! Audio between edges: each edge that has listeners in a room asks every
//! other alive edge, every `media.relay_refresh_ms`, to relay that room; an
//! edge sends each of its publishers' forwarded packets once to each edge
//! that asked for the publisher's room within `media.relay_subscription_ttl_ms`,
//! and the receiving edge's SFU fans the copy out to its own listeners. So
//! an edge with a listener for a track receives exactly one copy of it,
//! straight from the publisher's edge, never through the control plane and
//! never one per listener.
//!
//! Both travel as datagrams on the actor sessions' QUIC connections
//! (`actors::datagrams`: the cluster's mutual TLS, the sender named by its
//! certificate; the fault rules of chaos drills apply). Requests are soft
//! state, renewed while wanted, so nothing needs tearing down: an edge that
//! stops listening, or dies, stops getting copies within the TTL, and a
//! publisher's edge that dies simply stops sending (its slot frees after
//! `media.relay_idle_ms`). Rights are enforced at the publisher's edge: a
//! muted learner's packets are never relayed.
//!
//! The wire format is ours and versioned by its first byte (see [`Wire`]);
//! a datagram that does not read is counted and dropped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actors::{Datagram, DatagramSender};
use bytes::{BufMut as _, Bytes, BytesMut};
use gossip::NodeId;
use media::{
    sfu::{RelayOut, RelayedPacket},
    MediaRole, Sfu,
};
use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// First byte of a relay request.
const KIND_SUBSCRIBE: u8 = 1;
/// First byte of a relayed packet.
const KIND_RTP: u8 = 2;
/// Flag bit: the publisher is an instructor.
const FLAG_INSTRUCTOR: u8 = 1;
/// Flag bit: the packet carries an audio level.
const FLAG_LEVEL: u8 = 2;
/// Bytes of rooms one request carries at most, so it fits a datagram on
/// any path (QUIC's minimum is 1200 bytes, less its own overhead).
const SUBSCRIBE_BYTES_MAX: usize = 1000;
/// Most rooms one edge may ask another to relay at once; more are ignored
/// (and counted as bad).
pub(crate) const SUBSCRIBED_ROOMS_MAX: usize = 4096;

/// One relay datagram, as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wire<'a> {
    /// "Relay these rooms to me."
    Subscribe(Vec<&'a str>),
    /// One packet of a publisher of another edge.
    Rtp {
        room: &'a str,
        publisher: &'a str,
        role: MediaRole,
        level: Option<u8>,
        rtp: &'a [u8],
    },
}

/// Why a datagram did not read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay datagram refused: {0}")]
pub(crate) struct BadDatagram(&'static str);

fn take_str<'a>(bytes: &mut &'a [u8]) -> Result<&'a str, BadDatagram> {
    let (&len, rest) = bytes.split_first().ok_or(BadDatagram("cut short"))?;
    let len = usize::from(len);
    if len == 0 || rest.len() < len {
        return Err(BadDatagram("bad name length"));
    }
    let (name, rest) = rest.split_at(len);
    *bytes = rest;
    std::str::from_utf8(name).map_err(|_| BadDatagram("name is not utf-8"))
}

fn put_str(out: &mut BytesMut, text: &str) {
    // Room and peer ids are at most media::signal::ID_BYTES_MAX (64) bytes.
    debug_assert!(!text.is_empty() && text.len() <= usize::from(u8::MAX));
    out.put_u8(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.put_slice(&text.as_bytes()[..text.len().min(usize::from(u8::MAX))]);
}

impl<'a> Wire<'a> {
    /// Reads one datagram.
    pub(crate) fn read(bytes: &'a [u8]) -> Result<Self, BadDatagram> {
        let (&kind, mut rest) = bytes.split_first().ok_or(BadDatagram("empty"))?;
        match kind {
            KIND_SUBSCRIBE => {
                let (&count, tail) = rest.split_first().ok_or(BadDatagram("cut short"))?;
                rest = tail;
                let rooms = (0..count)
                    .map(|_| take_str(&mut rest))
                    .collect::<Result<Vec<_>, _>>()?;
                if !rest.is_empty() {
                    return Err(BadDatagram("trailing bytes"));
                }
                Ok(Self::Subscribe(rooms))
            }
            KIND_RTP => {
                let [flags, level, tail @ ..] = rest else {
                    return Err(BadDatagram("cut short"));
                };
                rest = tail;
                let room = take_str(&mut rest)?;
                let publisher = take_str(&mut rest)?;
                if rest.is_empty() {
                    return Err(BadDatagram("no rtp"));
                }
                Ok(Self::Rtp {
                    room,
                    publisher,
                    role: if flags & FLAG_INSTRUCTOR != 0 {
                        MediaRole::Instructor
                    } else {
                        MediaRole::Learner
                    },
                    level: (flags & FLAG_LEVEL != 0).then_some(*level & 0x7f),
                    rtp: rest,
                })
            }
            _ => Err(BadDatagram("unknown kind")),
        }
    }

    /// Writes one datagram.
    pub(crate) fn write(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Self::Subscribe(rooms) => {
                out.put_u8(KIND_SUBSCRIBE);
                out.put_u8(u8::try_from(rooms.len()).unwrap_or(u8::MAX));
                for room in rooms.iter().take(usize::from(u8::MAX)) {
                    put_str(&mut out, room);
                }
            }
            Self::Rtp {
                room,
                publisher,
                role,
                level,
                rtp,
            } => {
                let mut flags = 0;
                if *role == MediaRole::Instructor {
                    flags |= FLAG_INSTRUCTOR;
                }
                if level.is_some() {
                    flags |= FLAG_LEVEL;
                }
                out.put_u8(KIND_RTP);
                out.put_u8(flags);
                out.put_u8(level.unwrap_or(0));
                put_str(&mut out, room);
                put_str(&mut out, publisher);
                out.put_slice(rtp);
            }
        }
        out.freeze()
    }
}

/// The rooms of `rooms` in requests of at most [`SUBSCRIBE_BYTES_MAX`].
fn requests(rooms: &[String]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    let mut size = 2;
    for room in rooms {
        if !batch.is_empty() && (size + 1 + room.len() > SUBSCRIBE_BYTES_MAX || batch.len() == 255)
        {
            out.push(Wire::Subscribe(std::mem::take(&mut batch)).write());
            size = 2;
        }
        size += 1 + room.len();
        batch.push(room);
    }
    if !batch.is_empty() {
        out.push(Wire::Subscribe(batch).write());
    }
    out
}

/// The edge's relay bandwidth: at most `media.relay_packets_per_second_max`
/// copies in each second, the rest dropped (a late audio packet is no
/// better than a lost one, so nothing queues).
struct RelayBudget {
    window: Mutex<media::sfu::Window>,
}

impl RelayBudget {
    fn new(per_second: u32, now: Instant) -> Self {
        Self {
            window: Mutex::new(media::sfu::Window::new(
                per_second,
                Duration::from_secs(1),
                now,
            )),
        }
    }

    /// Takes one copy's room at `now`; false when the second's budget is
    /// spent.
    fn admit(&self, now: Instant) -> bool {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(now)
    }
}

/// Prometheus series of the relay.
#[derive(Clone)]
struct RelayMetrics {
    /// `media_relay_sent_packets_total`: copies sent to other edges.
    sent: prometheus::IntCounter,
    /// `media_relay_dropped_packets_total`: copies over the relay budget.
    over_budget: prometheus::IntCounter,
    /// `media_relay_subscriptions`: (room, edge) pairs this edge relays to.
    subscriptions: prometheus::IntGauge,
    /// `media_relay_bad_datagrams_total`: datagrams that did not read.
    bad: prometheus::IntCounter,
}

impl RelayMetrics {
    fn new(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let sent = prometheus::IntCounter::new(
            "media_relay_sent_packets_total",
            "Audio packet copies relayed to other edges (one per listening edge)",
        )?;
        let subscriptions = prometheus::IntGauge::new(
            "media_relay_subscriptions",
            "Rooms other edges asked this edge to relay, counted per edge",
        )?;
        let bad = prometheus::IntCounter::new(
            "media_relay_bad_datagrams_total",
            "Relay datagrams from other edges that did not read",
        )?;
        let over_budget = prometheus::IntCounter::new(
            "media_relay_dropped_packets_total",
            "Audio packet copies not relayed: over media.relay_packets_per_second_max",
        )?;
        registry.register(Box::new(over_budget.clone()))?;
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(subscriptions.clone()))?;
        registry.register(Box::new(bad.clone()))?;
        Ok(Self {
            sent,
            over_budget,
            subscriptions,
            bad,
        })
    }
}

/// Which edges want which rooms, until when.
type Subscriptions = HashMap<String, HashMap<NodeId, Instant>>;

/// The publishing side: the SFU's [`RelayOut`].
struct Outgoing {
    sender: DatagramSender,
    subscriptions: Mutex<Subscriptions>,
    budget: RelayBudget,
    metrics: RelayMetrics,
}

impl RelayOut for Outgoing {
    fn publish(&self, packet: RelayedPacket<'_>) {
        let now = Instant::now();
        let targets: Vec<NodeId> = {
            let subscriptions = self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(edges) = subscriptions.get(packet.room) else {
                return;
            };
            edges
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(node, _)| node.clone())
                .collect()
        };
        if targets.is_empty() {
            return;
        }
        let datagram = Wire::Rtp {
            room: packet.room,
            publisher: packet.publisher,
            role: packet.role,
            level: packet.level,
            rtp: packet.rtp,
        }
        .write();
        for node in targets {
            if !self.budget.admit(now) {
                self.metrics.over_budget.inc();
                continue;
            }
            // Unreliable by design: a copy that cannot go now is lost.
            if self.sender.send(&node, datagram.clone()).is_ok() {
                self.metrics.sent.inc();
            }
        }
    }
}

impl Outgoing {
    fn subscribe(&self, from: &NodeId, rooms: &[&str], until: Instant) {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for room in rooms {
            if !subscriptions.contains_key(*room) && subscriptions.len() >= SUBSCRIBED_ROOMS_MAX {
                self.metrics.bad.inc();
                continue;
            }
            subscriptions
                .entry((*room).to_owned())
                .or_default()
                .insert(from.clone(), until);
        }
    }

    /// Forgets expired requests; sets the gauge.
    fn sweep(&self, now: Instant) {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscriptions.retain(|_, edges| {
            edges.retain(|_, until| *until > now);
            !edges.is_empty()
        });
        let live: usize = subscriptions.values().map(HashMap::len).sum();
        self.metrics
            .subscriptions
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }
}

/// What the relay's loops need.
pub(crate) struct RelayStart {
    /// The edge's SFU.
    pub(crate) sfu: Sfu,
    /// Sends on the actor sessions.
    pub(crate) sender: DatagramSender,
    /// What other edges send (taken from the actor system once).
    pub(crate) datagrams: tokio::sync::mpsc::Receiver<Datagram>,
    /// The membership: the alive edges are asked for rooms.
    pub(crate) peers: actors::live::Peers,
    /// `media.relay_refresh_ms`.
    pub(crate) refresh: Duration,
    /// `media.relay_subscription_ttl_ms`.
    pub(crate) ttl: Duration,
    /// `media.relay_packets_per_second_max`.
    pub(crate) packets_per_second_max: u32,
}

/// Starts the relay: sets the SFU's [`RelayOut`], and spawns the loop that
/// asks the other edges for rooms and the one that takes their datagrams.
///
/// # Errors
/// When the metrics cannot register.
pub(crate) fn start(
    relay: RelayStart,
    registry: &prometheus::Registry,
    tasks: &crate::tasks::Tasks,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let outgoing = Arc::new(Outgoing {
        sender: relay.sender.clone(),
        subscriptions: Mutex::new(HashMap::new()),
        budget: RelayBudget::new(relay.packets_per_second_max, Instant::now()),
        metrics: RelayMetrics::new(registry)?,
    });
    relay
        .sfu
        .set_relay(Arc::clone(&outgoing) as Arc<dyn RelayOut>);
    tasks.spawn(
        "media_relay_requests",
        ask_for_rooms(
            relay.sfu.clone(),
            relay.sender,
            relay.peers,
            Arc::clone(&outgoing),
            relay.refresh,
            shutdown.clone(),
        ),
    );
    tasks.spawn(
        "media_relay_receive",
        receive(
            relay.sfu,
            relay.datagrams,
            outgoing,
            relay.ttl,
            shutdown.clone(),
        ),
    );
    Ok(())
}

/// Every `refresh`, asks each other alive edge to relay the rooms this
/// edge listens in, and forgets expired requests of others.
async fn ask_for_rooms(
    sfu: Sfu,
    sender: DatagramSender,
    peers: actors::live::Peers,
    outgoing: Arc<Outgoing>,
    refresh: Duration,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.clone().wait() => return,
        }
        outgoing.sweep(Instant::now());
        let rooms = sfu.listening_rooms();
        if rooms.is_empty() {
            continue;
        }
        let Some(members) = peers() else { return };
        let own = sender.node_id().as_str().to_owned();
        let batches = requests(&rooms);
        for member in members.iter().filter(|m| m.alive && m.node_id != own) {
            let Ok(node) = NodeId::new(&member.node_id) else {
                continue;
            };
            for batch in &batches {
                // Lost requests are renewed at the next tick.
                let _lost = sender.send(&node, batch.clone());
            }
        }
    }
}

/// Takes other edges' datagrams: requests renew subscriptions, packets go
/// to the SFU.
async fn receive(
    sfu: Sfu,
    mut datagrams: tokio::sync::mpsc::Receiver<Datagram>,
    outgoing: Arc<Outgoing>,
    ttl: Duration,
    shutdown: Shutdown,
) {
    loop {
        let datagram = tokio::select! {
            datagram = datagrams.recv() => match datagram {
                Some(datagram) => datagram,
                None => return,
            },
            () = shutdown.clone().wait() => return,
        };
        match Wire::read(&datagram.bytes) {
            Ok(Wire::Subscribe(rooms)) => {
                outgoing.subscribe(&datagram.from, &rooms, Instant::now() + ttl);
            }
            Ok(Wire::Rtp {
                room,
                publisher,
                role,
                level,
                rtp,
            }) => sfu.relayed(room, publisher, role, level, rtp).await,
            Err(err) => {
                tracing::debug!(from = %datagram.from, error = %err, "relay datagram dropped");
                outgoing.metrics.bad.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_read_back_as_written_and_bad_ones_say_why() {
        let rtp = Wire::Rtp {
            room: "class/1",
            publisher: "ada",
            role: MediaRole::Instructor,
            level: Some(33),
            rtp: &[0x80, 111, 0, 1],
        };
        let bytes = rtp.write();
        assert_eq!(Wire::read(&bytes), Ok(rtp));
        let quiet = Wire::Rtp {
            room: "c",
            publisher: "b",
            role: MediaRole::Learner,
            level: None,
            rtp: &[1],
        };
        assert_eq!(Wire::read(&quiet.write()), Ok(quiet));
        let subscribe = Wire::Subscribe(vec!["c", "c/0"]);
        assert_eq!(Wire::read(&subscribe.write()), Ok(subscribe));
        for (bad, why) in [
            (&b""[..], "empty"),
            (&[9u8][..], "unknown kind"),
            (&[KIND_SUBSCRIBE, 1, 5, b'a'][..], "bad name length"),
            (&[KIND_SUBSCRIBE, 1, 1, b'a', 0][..], "trailing bytes"),
            (&[KIND_RTP, 0][..], "cut short"),
            (&[KIND_RTP, 0, 0, 1, b'c', 1, b'p'][..], "no rtp"),
            (
                &[KIND_RTP, 0, 0, 1, 0xff, 1, b'p', 1][..],
                "name is not utf-8",
            ),
        ] {
            assert_eq!(Wire::read(bad), Err(BadDatagram(why)), "{bad:?}");
        }
    }

    #[test]
    fn the_relay_budget_holds_at_its_edge_each_second() {
        // The budget is given the time, so no clock runs here.
        let start = Instant::now();
        let budget = RelayBudget::new(3, start);
        let admitted = (0..4).filter(|_| budget.admit(start)).count();
        assert_eq!(admitted, 3, "three pass, the fourth is over budget");
        assert!(
            !budget.admit(start + Duration::from_millis(999)),
            "still the same second"
        );
        assert!(
            budget.admit(start + Duration::from_millis(1000)),
            "a new second"
        );
    }

    #[test]
    fn many_rooms_are_asked_for_in_requests_that_fit_a_datagram() {
        let rooms: Vec<String> = (0..100).map(|i| format!("{:0>60}", i)).collect();
        let batches = requests(&rooms);
        assert!(batches.len() > 1);
        let mut seen = Vec::new();
        for batch in &batches {
            assert!(batch.len() <= SUBSCRIBE_BYTES_MAX, "{}", batch.len());
            let Ok(Wire::Subscribe(rooms)) = Wire::read(batch) else {
                panic!("a request");
            };
            seen.extend(rooms.into_iter().map(str::to_owned));
        }
        assert_eq!(seen, rooms);
    }
}
