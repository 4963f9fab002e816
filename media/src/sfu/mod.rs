//! The edge's audio SFU: one per edge, one peer connection per person, peers
//! grouped in rooms (a class, or one breakout room of it). A publisher's Opus
//! RTP is read from its remote track and written, undecoded, to a
//! `TrackLocalStaticRTP` per listening slot of every other peer in its room.
//!
//! **Slots, not renegotiation.** A browser offers one `sendonly` microphone
//! line and up to `publishers_per_room_max` `recvonly` listening lines. A
//! publisher takes one of its room's slots and is heard on that slot at every
//! listener; `MediaState` says which peer is on which slot. Publishers come
//! and go without any offer from the server, so the server never needs to
//! offer (it is the impolite side; see `signal`).
//!
//! **Who may publish.** An instructor always; a learner once an instructor
//! allows it, or while its room's mic is open. Forwarding is decided per
//! packet from the peer's flags (allowed, server mute, self mute) and its
//! room (open mic, members), so a server mute stops forwarding at the next
//! packet, and a peer cannot lift a server mute.
//!
//! **Rooms follow breakouts.** `move_peer` moves a peer between rooms (a
//! class and its breakout rooms); forwarding looks the room up on every
//! packet, so audio follows the move at once.
//!
//! **Bounded.** Peers per edge (a semaphore), publishers per room (slots),
//! tracks per peer and offers per window (checked on every offer), packets
//! per second per publisher (dropped and counted), server frames queued per
//! peer (a full queue removes the peer). A peer is removed when it leaves,
//! when its connection fails or closes (ICE timeouts from the config), when
//! it has not connected within `connect_timeout_ms`, or when it cannot keep
//! up with its frames. Callbacks hold only a weak reference to the SFU and
//! check the peer's generation, so a closed peer connection keeps nothing
//! alive and a late callback never touches a newer peer of the same id.
//!
//! Cancel safety: `join`, `handle` and `leave` change state only after their
//! last await that can fail, or undo what they did; dropping one of their
//! futures leaves at most a peer that the reaper removes.

mod relay;
mod rewrite;
mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::sdp::extmap::AUDIO_LEVEL_URI;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::track::track_remote::TrackRemote;
use webrtc::util::MarshalSize;

use self::relay::Relayed;
pub use self::relay::{RelayOut, RelayedPacket};
pub use self::rewrite::Rewriter;
pub use self::window::Window;
use crate::config::{ConfigError, SfuConfig};
use crate::error::MediaError;
use crate::metrics::MediaMetrics;
use crate::sdp::inspect_offer;
use crate::signal::{
    ClientSignal, IceCandidate, MediaErrorCode, MediaRole, MediaState, PeerMediaState,
    ServerSignal, CANDIDATE_BYTES_MAX, ID_BYTES_MAX,
};

/// Opus's RTP clock rate, in Hz.
const OPUS_CLOCK_RATE: u32 = 48_000;
/// The Opus payload type the SFU offers in answers (Chromium's own choice).
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// How often ICE sends keepalives on an idle pair.
const ICE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// The quietest audio level (RFC 6464, in -dBov: 0 is loudest, 127 is
/// silence) that counts as speaking for the active speaker.
pub const SPEAKING_DBOV_MAX: u8 = 50;
/// Read errors in a row after which a publisher's track counts as ended.
const READ_ERRORS_IN_A_ROW_MAX: u32 = 16;
/// Size of the buffer an RTCP read of a sender uses (one MTU).
const RTCP_READ_BYTES: usize = 1500;

/// A request to join a room.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The peer's id, unique on this edge (the gateway uses the session's
    /// user id); at most `ID_BYTES_MAX` bytes.
    pub peer: String,
    /// The room (a class id, or `class/breakout`); at most `ID_BYTES_MAX`.
    pub room: String,
    /// Instructor or learner, from the class ticket.
    pub role: MediaRole,
    /// What the class allows the peer now (instructors may always publish).
    pub rights: PeerRights,
    /// Whether the room's mic is open, should this join create the room.
    pub open_mic: bool,
}

/// What a class allows one peer, as its classroom decided: the SFU only
/// enforces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerRights {
    /// Allowed to speak (ignored for instructors, who always may).
    pub may_publish: bool,
    /// Muted by the instructor: nothing it sends is forwarded.
    pub server_muted: bool,
}

/// What `join` hands back: the queue of frames the SFU sends this peer
/// (answers are returned by `handle`; candidates, media state and removal
/// notices arrive here). The queue ends when the peer is removed.
#[derive(Debug)]
pub struct PeerLink {
    /// Server frames for this peer, in order; bounded by `outbound_frames_max`.
    pub signals: mpsc::Receiver<ServerSignal>,
    /// Which joining of this peer id the link is, for [`Sfu::leave_link`].
    pub generation: u64,
}

/// The edge's audio SFU. Cheap to clone; all clones are one SFU.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

struct Inner {
    api: API,
    config: SfuConfig,
    metrics: MediaMetrics,
    permits: Arc<Semaphore>,
    generations: AtomicU64,
    state: Mutex<State>,
    /// Where local publishers' packets go for other edges, once set.
    relay: std::sync::OnceLock<Arc<dyn RelayOut>>,
}

#[derive(Default)]
struct State {
    peers: HashMap<String, Peer>,
    rooms: HashMap<String, Room>,
}

struct Room {
    members: BTreeSet<String>,
    /// Slot `n` is published by this peer (local or relayed), if any.
    slots: Vec<Option<String>>,
    /// The active speaker last announced to the room.
    speaker: Option<String>,
    /// Every learner of the room may publish, without being allowed one by one.
    open_mic: bool,
    /// Publishers on other edges whose audio arrives relayed, by peer id.
    relayed: BTreeMap<String, Relayed>,
}

impl Room {
    fn new(slots: u8, open_mic: bool) -> Self {
        Self {
            members: BTreeSet::new(),
            slots: vec![None; usize::from(slots)],
            speaker: None,
            open_mic,
            relayed: BTreeMap::new(),
        }
    }
}

struct Peer {
    generation: u64,
    room: String,
    role: MediaRole,
    pc: Arc<RTCPeerConnection>,
    control: Arc<Control>,
    slot: Option<u8>,
    outs: Vec<Arc<SlotOut>>,
    offers: Window,
    outbound: mpsc::Sender<ServerSignal>,
    _permit: OwnedSemaphorePermit,
}

/// Flags read by the forwarding task on every packet.
#[derive(Default)]
struct Control {
    may_publish: AtomicBool,
    server_muted: AtomicBool,
    self_muted: AtomicBool,
    connected: AtomicBool,
    /// The loudest level forwarded since the last active-speaker round,
    /// as `128 - dBov` (0: nothing heard); the round takes and resets it.
    loudness: AtomicU32,
}

impl Control {
    /// Whether this peer's packets go on, in a room whose open mic is
    /// `open_mic`.
    fn forwarding(&self, open_mic: bool) -> bool {
        (open_mic || self.may_publish.load(Ordering::Acquire))
            && !self.server_muted.load(Ordering::Acquire)
            && !self.self_muted.load(Ordering::Acquire)
    }
}

/// One listening slot of one peer.
struct SlotOut {
    track: Arc<TrackLocalStaticRTP>,
    rewriter: Mutex<Rewriter>,
}

/// Locks a mutex, going on with the data when a holder panicked: every
/// critical section here leaves the state consistent before it can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check_id(what: &str, id: &str) -> Result<(), MediaError> {
    if id.is_empty() || id.len() > ID_BYTES_MAX {
        return Err(MediaError::new(
            MediaErrorCode::BadId,
            format!(
                "{what} id must be 1 to {ID_BYTES_MAX} bytes, got {}",
                id.len()
            ),
        ));
    }
    Ok(())
}

fn unknown_peer(peer: &str) -> MediaError {
    MediaError::new(
        MediaErrorCode::UnknownPeer,
        format!("no peer {peer:?} on this edge"),
    )
}

impl Sfu {
    /// Builds the SFU: an Opus-only media engine with RTCP reports, host
    /// candidates over UDP on IPv4, no mDNS, and the ICE timeouts of `config`.
    ///
    /// # Errors
    /// A setting out of range, or the WebRTC stack refusing its setup.
    pub fn new(config: SfuConfig) -> Result<Self, SfuStartError> {
        config.validate()?;
        crate::crypto::ensure_crypto_provider();
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    capability: opus_capability(),
                    payload_type: OPUS_PAYLOAD_TYPE,
                    ..Default::default()
                },
                RTPCodecType::Audio,
            )
            .map_err(SfuStartError::Webrtc)?;
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RTPCodecType::Audio,
                None,
            )
            .map_err(SfuStartError::Webrtc)?;
        let registry = configure_rtcp_reports(Registry::new());
        let mut settings = SettingEngine::default();
        settings.set_ice_timeouts(
            Some(Duration::from_millis(config.ice_disconnected_timeout_ms)),
            Some(Duration::from_millis(config.ice_failed_timeout_ms)),
            Some(ICE_KEEPALIVE_INTERVAL),
        );
        settings.set_include_loopback_candidate(config.loopback_candidates);
        settings.set_network_types(vec![NetworkType::Udp4]);
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| SfuStartError::NoRuntime)?;
        let permits = Arc::new(Semaphore::new(config.peers_per_edge_max as usize));
        let sfu = Self {
            inner: Arc::new(Inner {
                api,
                config,
                metrics: MediaMetrics::new(),
                permits,
                generations: AtomicU64::new(0),
                state: Mutex::new(State::default()),
                relay: std::sync::OnceLock::new(),
            }),
        };
        runtime.spawn(active_speaker_rounds(Arc::downgrade(&sfu.inner)));
        Ok(sfu)
    }

    /// The SFU's metrics (register them with `MediaMetrics::register`).
    pub fn metrics(&self) -> &MediaMetrics {
        &self.inner.metrics
    }

    /// The limits the SFU runs with.
    pub fn config(&self) -> &SfuConfig {
        &self.inner.config
    }

    /// Peers on this edge now.
    pub fn peer_count(&self) -> usize {
        lock(&self.inner.state).peers.len()
    }

    /// Rooms with at least one peer now.
    pub fn room_count(&self) -> usize {
        lock(&self.inner.state).rooms.len()
    }

    /// The media state of `room`, for the class snapshot; `None` when empty.
    pub fn media_state(&self, room: &str) -> Option<MediaState> {
        media_state(&lock(&self.inner.state), room)
    }

    /// Adds a peer to a room and creates its peer connection; the browser
    /// then sends its offer through `handle`.
    ///
    /// # Errors
    /// `bad_id`, `too_many_peers`, `peer_exists`, `internal`.
    pub async fn join(&self, request: JoinRequest) -> Result<PeerLink, MediaError> {
        check_id("peer", &request.peer)?;
        check_id("room", &request.room)?;
        let permit = Arc::clone(&self.inner.permits)
            .try_acquire_owned()
            .map_err(|_| {
                MediaError::new(
                    MediaErrorCode::TooManyPeers,
                    format!(
                        "this edge has its {} peers",
                        self.inner.config.peers_per_edge_max
                    ),
                )
            })?;
        if lock(&self.inner.state).peers.contains_key(&request.peer) {
            return Err(peer_exists(&request.peer));
        }
        let pc = Arc::new(
            self.inner
                .api
                .new_peer_connection(RTCConfiguration::default())
                .await
                .map_err(|err| MediaError::internal("creating a peer connection", err))?,
        );
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed);
        let control = Arc::new(Control::default());
        control.may_publish.store(
            request.role == MediaRole::Instructor || request.rights.may_publish,
            Ordering::Release,
        );
        control
            .server_muted
            .store(request.rights.server_muted, Ordering::Release);
        let (outbound, signals) = mpsc::channel(self.inner.config.outbound_frames_max);
        self.install_handlers(
            &pc,
            &request.peer,
            generation,
            &control,
            &outbound,
            Instant::now(),
        );

        let inserted = {
            let mut state = lock(&self.inner.state);
            if state.peers.contains_key(&request.peer) {
                false
            } else {
                let slots = self.inner.config.publishers_per_room_max;
                let room = state
                    .rooms
                    .entry(request.room.clone())
                    .or_insert_with(|| Room::new(slots, request.open_mic));
                room.members.insert(request.peer.clone());
                state.peers.insert(
                    request.peer.clone(),
                    Peer {
                        generation,
                        room: request.room.clone(),
                        role: request.role,
                        pc: Arc::clone(&pc),
                        control,
                        slot: None,
                        outs: Vec::new(),
                        offers: Window::new(
                            self.inner.config.offers_per_window_max,
                            self.inner.config.offer_window(),
                            Instant::now(),
                        ),
                        outbound,
                        _permit: permit,
                    },
                );
                self.inner.metrics.peers.inc();
                broadcast_state(&self.inner, &mut state, &request.room);
                true
            }
        };
        if !inserted {
            close(pc).await;
            return Err(peer_exists(&request.peer));
        }
        self.spawn_connect_deadline(request.peer.clone(), generation);
        tracing::debug!(peer = %request.peer, room = %request.room, "media peer joined");
        Ok(PeerLink {
            signals,
            generation,
        })
    }

    /// Removes a peer and closes its connection. Unknown peers are ignored
    /// (leaving is idempotent).
    pub async fn leave(&self, peer: &str) {
        let pc = {
            let mut state = lock(&self.inner.state);
            remove_locked(&self.inner, &mut state, peer, None)
        };
        if let Some(pc) = pc {
            close(pc).await;
        }
    }

    /// Joins like [`Sfu::join`], taking the id over from a peer that holds
    /// it: that one is told (`peer_exists`, "taken over") as its last frame
    /// and removed. For a person's newer connection (a resume that came
    /// before the old socket closed, or a second tab).
    ///
    /// # Errors
    /// As [`Sfu::join`].
    pub async fn join_taking_over(&self, request: JoinRequest) -> Result<PeerLink, MediaError> {
        let old = {
            let state = lock(&self.inner.state);
            state.peers.get(&request.peer).map(|old| {
                let _full = old.outbound.try_send(ServerSignal::Error {
                    code: MediaErrorCode::PeerExists,
                    message: "a newer connection of yours took the audio over".into(),
                });
                old.generation
            })
        };
        if let Some(generation) = old {
            let pc = {
                let mut state = lock(&self.inner.state);
                remove_locked(&self.inner, &mut state, &request.peer, Some(generation))
            };
            if let Some(pc) = pc {
                close(pc).await;
            }
        }
        self.join(request).await
    }

    /// Removes the peer `link` was handed for, if it is still that joining
    /// of the id: a session that was replaced by a newer one of the same
    /// user (a resume that arrived before the old socket closed) leaves
    /// nothing of the newer one.
    pub async fn leave_link(&self, peer: &str, link: &PeerLink) {
        let pc = {
            let mut state = lock(&self.inner.state);
            remove_locked(&self.inner, &mut state, peer, Some(link.generation))
        };
        if let Some(pc) = pc {
            close(pc).await;
        }
    }

    /// Moves a peer to another room, as breakout rooms open and close: from
    /// then on it hears only that room and is heard only there. A publisher
    /// takes a free slot of the new room; when there is none it arrives as
    /// a listener and may take one with its next offer. Both rooms get their
    /// new media state. Moving to the room it is in does nothing.
    ///
    /// # Errors
    /// `bad_id`, `unknown_peer`.
    pub fn move_peer(&self, peer: &str, room: &str) -> Result<(), MediaError> {
        check_id("room", room)?;
        let mut state = lock(&self.inner.state);
        let state = &mut *state;
        let old = state
            .peers
            .get(peer)
            .ok_or_else(|| unknown_peer(peer))?
            .room
            .clone();
        if old == room {
            return Ok(());
        }
        let was_publishing = release_slot(state, peer);
        let open_mic = state.rooms.get(&old).is_some_and(|r| r.open_mic);
        let old_now_empty = state.rooms.get_mut(&old).is_some_and(|r| {
            r.members.remove(peer);
            r.members.is_empty()
        });
        if old_now_empty {
            state.rooms.remove(&old);
        }
        let slots = self.inner.config.publishers_per_room_max;
        // A breakout room of an open-mic class is open too.
        let target = state
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| Room::new(slots, open_mic));
        target.members.insert(peer.to_owned());
        let mut slot = None;
        if was_publishing {
            if let Some(free) = target.slots.iter().position(Option::is_none) {
                target.slots[free] = Some(peer.to_owned());
                // Slots are indexed by u8: publishers_per_room_max is a u8.
                slot = Some(free as u8);
            }
        }
        if let Some(entry) = state.peers.get_mut(peer) {
            entry.room = room.to_owned();
            entry.slot = slot;
        }
        if !old_now_empty {
            broadcast_state(&self.inner, state, &old);
        }
        broadcast_state(&self.inner, state, room);
        Ok(())
    }

    /// Handles one media frame from `peer`. Returns the frame to answer with
    /// (an `answer` to an `offer`), if any.
    ///
    /// # Errors
    /// A refusal with its code; the peer, its connection and its room are
    /// as they were before the frame.
    pub async fn handle(
        &self,
        peer: &str,
        signal: ClientSignal,
    ) -> Result<Option<ServerSignal>, MediaError> {
        match signal {
            ClientSignal::Offer { sdp } => self.offer(peer, sdp).await.map(Some),
            ClientSignal::Answer { sdp } => self.answer(peer, sdp).await.map(|()| None),
            ClientSignal::Candidate { candidate } => {
                self.candidate(peer, candidate).await.map(|()| None)
            }
            ClientSignal::SetMuted { muted } => self.set_self_muted(peer, muted).map(|()| None),
            ClientSignal::Leave {} => {
                self.leave(peer).await;
                Ok(None)
            }
        }
    }

    async fn offer(&self, peer: &str, sdp: String) -> Result<ServerSignal, MediaError> {
        let config = &self.inner.config;
        // Every offer counts against the flood limit, refused ones too.
        {
            let mut state = lock(&self.inner.state);
            let entry = state
                .peers
                .get_mut(peer)
                .ok_or_else(|| unknown_peer(peer))?;
            if !entry.offers.allow(Instant::now()) {
                return Err(MediaError::new(
                    MediaErrorCode::RenegotiationFlood,
                    format!(
                        "more than {} offers in {} ms",
                        config.offers_per_window_max, config.offer_window_ms
                    ),
                ));
            }
        }
        let shape = inspect_offer(&sdp, config)?;
        // Check and reserve under the lock; the WebRTC calls come after.
        let (pc, slot_taken, new_slots) = {
            let mut state = lock(&self.inner.state);
            let state = &mut *state;
            let entry = state
                .peers
                .get_mut(peer)
                .ok_or_else(|| unknown_peer(peer))?;
            if entry.pc.signaling_state() == RTCSignalingState::HaveLocalOffer {
                return Err(MediaError::new(
                    MediaErrorCode::NegotiationCollision,
                    "the server has an offer out; roll back and answer it",
                ));
            }
            let open_mic = state
                .rooms
                .get(&entry.room)
                .is_some_and(|room| room.open_mic);
            if shape.sending > 0 && !open_mic && !entry.control.may_publish.load(Ordering::Acquire)
            {
                return Err(MediaError::new(
                    MediaErrorCode::PublishNotAllowed,
                    "a learner publishes only when the instructor allows it",
                ));
            }
            let mut slot_taken = None;
            if shape.sending > 0 && entry.slot.is_none() {
                let publishers = class_publishers(&state.rooms, &entry.room);
                if publishers >= config.publishers_per_class_max as usize {
                    return Err(MediaError::new(
                        MediaErrorCode::TooManyPublishers,
                        format!(
                            "the class has its {} publishers",
                            config.publishers_per_class_max
                        ),
                    ));
                }
                let room = state
                    .rooms
                    .get_mut(&entry.room)
                    .ok_or_else(|| unknown_peer(peer))?;
                let free = room.slots.iter().position(Option::is_none).ok_or_else(|| {
                    MediaError::new(
                        MediaErrorCode::TooManyPublishers,
                        format!(
                            "the room has its {} publishers",
                            config.publishers_per_room_max
                        ),
                    )
                })?;
                room.slots[free] = Some(peer.to_owned());
                // Slots are indexed by u8: publishers_per_room_max is a u8.
                let slot = free as u8;
                entry.slot = Some(slot);
                slot_taken = Some(slot);
            }
            let new_slots = usize::from(shape.listening).saturating_sub(entry.outs.len());
            (Arc::clone(&entry.pc), slot_taken, new_slots)
        };
        match self.apply_offer(peer, &pc, sdp, new_slots).await {
            Ok(answer) => {
                let mut state = lock(&self.inner.state);
                let mut released = false;
                if shape.sending == 0 {
                    released = release_slot(&mut state, peer);
                }
                if slot_taken.is_some() || released {
                    if let Some(room) = state.peers.get(peer).map(|p| p.room.clone()) {
                        broadcast_state(&self.inner, &mut state, &room);
                    }
                }
                Ok(answer)
            }
            Err(err) => {
                if slot_taken.is_some() {
                    release_slot(&mut lock(&self.inner.state), peer);
                }
                Err(err)
            }
        }
    }

    async fn apply_offer(
        &self,
        peer: &str,
        pc: &Arc<RTCPeerConnection>,
        sdp: String,
        new_slots: usize,
    ) -> Result<ServerSignal, MediaError> {
        // Listening slots: a send-only transceiver per new recvonly line,
        // added before the offer is set so each matches the next such line.
        let mut outs = Vec::with_capacity(new_slots);
        for _ in 0..new_slots {
            let track = Arc::new(TrackLocalStaticRTP::new(
                opus_capability(),
                format!("slot-{}", self.peek_slot_count(peer) + outs.len()),
                "lyceum".to_owned(),
            ));
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                send_encodings: vec![],
            };
            let transceiver = pc
                .add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>,
                    Some(init),
                )
                .await
                .map_err(|err| MediaError::internal("adding a listening slot", err))?;
            let sender = transceiver.sender().await;
            let metrics = self.inner.metrics.clone();
            tokio::spawn(async move {
                // Read RTCP (the interceptors see it too) for the listener's
                // receiver reports; ends when the connection closes.
                let mut buf = vec![0u8; RTCP_READ_BYTES];
                while let Ok((packets, _)) = sender.read(&mut buf).await {
                    observe_receiver_reports(&metrics, &packets);
                }
            });
            outs.push(Arc::new(SlotOut {
                track,
                rewriter: Mutex::new(Rewriter::default()),
            }));
        }
        if !outs.is_empty() {
            if let Some(entry) = lock(&self.inner.state).peers.get_mut(peer) {
                entry.outs.extend(outs);
            }
        }
        let offer = RTCSessionDescription::offer(sdp).map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedSdp,
                format!("offer refused: {err}"),
            )
        })?;
        pc.set_remote_description(offer).await.map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedSdp,
                format!("offer refused: {err}"),
            )
        })?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|err| MediaError::internal("creating an answer", err))?;
        pc.set_local_description(answer)
            .await
            .map_err(|err| MediaError::internal("setting the answer", err))?;
        let local = pc.local_description().await.ok_or_else(|| {
            MediaError::new(
                MediaErrorCode::Internal,
                "no local description after answering",
            )
        })?;
        Ok(ServerSignal::Answer { sdp: local.sdp })
    }

    fn peek_slot_count(&self, peer: &str) -> usize {
        lock(&self.inner.state)
            .peers
            .get(peer)
            .map_or(0, |p| p.outs.len())
    }

    async fn answer(&self, peer: &str, sdp: String) -> Result<(), MediaError> {
        let pc = self.pc_of(peer)?;
        if pc.signaling_state() != RTCSignalingState::HaveLocalOffer {
            return Err(MediaError::new(
                MediaErrorCode::UnexpectedAnswer,
                "the server has no offer out",
            ));
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedSdp,
                format!("answer refused: {err}"),
            )
        })?;
        pc.set_remote_description(answer).await.map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedSdp,
                format!("answer refused: {err}"),
            )
        })
    }

    async fn candidate(&self, peer: &str, candidate: IceCandidate) -> Result<(), MediaError> {
        let pc = self.pc_of(peer)?;
        if candidate.candidate.len() > CANDIDATE_BYTES_MAX {
            return Err(MediaError::new(
                MediaErrorCode::MalformedCandidate,
                format!("candidate over the {CANDIDATE_BYTES_MAX} byte limit"),
            ));
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
        };
        pc.add_ice_candidate(init).await.map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedCandidate,
                format!("candidate refused: {err}"),
            )
        })
    }

    fn set_self_muted(&self, peer: &str, muted: bool) -> Result<(), MediaError> {
        let mut state = lock(&self.inner.state);
        let entry = state.peers.get(peer).ok_or_else(|| unknown_peer(peer))?;
        if !muted && entry.control.server_muted.load(Ordering::Acquire) {
            return Err(MediaError::new(
                MediaErrorCode::ServerMuted,
                "the instructor muted you",
            ));
        }
        entry.control.self_muted.store(muted, Ordering::Release);
        let room = entry.room.clone();
        broadcast_state(&self.inner, &mut state, &room);
        Ok(())
    }

    /// Sets what the class allows `peer`: whether it may publish and
    /// whether the instructor muted it. The classroom decided it (and who
    /// may decide it); this only applies it, at the next packet. The room
    /// gets its new media state when anything changed.
    ///
    /// # Errors
    /// `unknown_peer`.
    pub fn set_rights(&self, peer: &str, rights: PeerRights) -> Result<(), MediaError> {
        let mut state = lock(&self.inner.state);
        let entry = state.peers.get(peer).ok_or_else(|| unknown_peer(peer))?;
        let may_publish = rights.may_publish || entry.role == MediaRole::Instructor;
        let control = &entry.control;
        let before = (
            control.may_publish.swap(may_publish, Ordering::AcqRel),
            control
                .server_muted
                .swap(rights.server_muted, Ordering::AcqRel),
        );
        if before != (may_publish, rights.server_muted) {
            let room = entry.room.clone();
            broadcast_state(&self.inner, &mut state, &room);
        }
        Ok(())
    }

    /// Opens or closes the mic of `room` (every learner there may publish).
    /// A room nobody is in yet is created open or closed on its first join
    /// (see [`JoinRequest::open_mic`]), so this does nothing for it.
    pub fn set_open_mic(&self, room: &str, open: bool) {
        let mut state = lock(&self.inner.state);
        let changed = state.rooms.get_mut(room).is_some_and(|entry| {
            let changed = entry.open_mic != open;
            entry.open_mic = open;
            changed
        });
        if changed {
            broadcast_state(&self.inner, &mut state, room);
        }
    }

    /// Sets where local publishers' packets go for other edges (once; a
    /// second call is ignored). See [`RelayOut`].
    pub fn set_relay(&self, relay: Arc<dyn RelayOut>) {
        let _set = self.inner.relay.set(relay);
    }

    /// The rooms where a peer of this edge listens (has listening slots):
    /// what the edge asks other edges to relay.
    pub fn listening_rooms(&self) -> Vec<String> {
        let state = lock(&self.inner.state);
        state
            .rooms
            .iter()
            .filter(|(_, room)| {
                room.members
                    .iter()
                    .any(|m| state.peers.get(m).is_some_and(|p| !p.outs.is_empty()))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Forwards a packet that another edge relayed: `publisher` of `room`
    /// there, heard here by the room's listeners on the slot the publisher
    /// takes (a free one, on its first packet; none free drops it). A room
    /// nobody here is in drops it. Malformed packets are dropped and
    /// counted.
    pub async fn relayed(
        &self,
        room: &str,
        publisher: &str,
        role: MediaRole,
        level: Option<u8>,
        rtp: &[u8],
    ) {
        let metrics = &self.inner.metrics;
        let Ok(packet) =
            <webrtc::rtp::packet::Packet as webrtc::util::Unmarshal>::unmarshal(&mut &rtp[..])
        else {
            metrics.dropped_packets.with_label_values(&["relay"]).inc();
            return;
        };
        let mut targets = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            let state = &mut *state;
            let Some(entry) = state.rooms.get_mut(room) else {
                metrics.dropped_packets.with_label_values(&["relay"]).inc();
                return;
            };
            let now = Instant::now();
            let slot = match entry.relayed.get_mut(publisher) {
                Some(relayed) => {
                    relayed.heard(now, level);
                    relayed.slot
                }
                None => {
                    let full = class_publishers(&state.rooms, room)
                        >= self.inner.config.publishers_per_class_max as usize;
                    let Some(entry) = state.rooms.get_mut(room) else {
                        return;
                    };
                    let free = entry.slots.iter().position(Option::is_none);
                    let Some(free) = free.filter(|_| !full) else {
                        metrics.dropped_packets.with_label_values(&["relay"]).inc();
                        return;
                    };
                    entry.slots[free] = Some(publisher.to_owned());
                    // Slots are indexed by u8: publishers_per_room_max is a u8.
                    let slot = free as u8;
                    let mut relayed = Relayed::new(slot, role, now);
                    relayed.heard(now, level);
                    entry.relayed.insert(publisher.to_owned(), relayed);
                    metrics.relayed_publishers.inc();
                    broadcast_state(&self.inner, state, room);
                    slot
                }
            };
            if let Some(entry) = state.rooms.get(room) {
                for member in entry.members.iter().filter(|m| m.as_str() != publisher) {
                    if let Some(out) = state
                        .peers
                        .get(member)
                        .and_then(|m| m.outs.get(usize::from(slot)))
                    {
                        targets.push(Arc::clone(out));
                    }
                }
            }
        }
        metrics.relayed_in_packets.inc();
        write_to_slots(&targets, &packet, metrics).await;
    }

    /// The peers on this edge whose room is `room` or one of its breakout
    /// rooms (`room/...`), with their role: the gateway applies a class's
    /// rights and rooms to them.
    pub fn peers_of(&self, room: &str) -> Vec<(String, MediaRole)> {
        let state = lock(&self.inner.state);
        let prefix = format!("{room}/");
        state
            .peers
            .iter()
            .filter(|(_, p)| p.room == room || p.room.starts_with(&prefix))
            .map(|(id, p)| (id.clone(), p.role))
            .collect()
    }

    /// Whether `peer` holds a publishing slot, and whether it muted itself.
    pub fn publishing(&self, peer: &str) -> Option<(bool, bool)> {
        let state = lock(&self.inner.state);
        state.peers.get(peer).map(|p| {
            (
                p.slot.is_some(),
                p.control.self_muted.load(Ordering::Acquire),
            )
        })
    }

    fn pc_of(&self, peer: &str) -> Result<Arc<RTCPeerConnection>, MediaError> {
        lock(&self.inner.state)
            .peers
            .get(peer)
            .map(|entry| Arc::clone(&entry.pc))
            .ok_or_else(|| unknown_peer(peer))
    }

    fn install_handlers(
        &self,
        pc: &RTCPeerConnection,
        peer: &str,
        generation: u64,
        control: &Arc<Control>,
        outbound: &mpsc::Sender<ServerSignal>,
        joined_at: Instant,
    ) {
        let weak = Arc::downgrade(&self.inner);
        {
            let (weak, peer, outbound) = (weak.clone(), peer.to_owned(), outbound.downgrade());
            pc.on_ice_candidate(Box::new(move |candidate: Option<RTCIceCandidate>| {
                let (weak, peer, outbound) = (weak.clone(), peer.clone(), outbound.clone());
                Box::pin(async move {
                    let Some(candidate) = candidate else { return };
                    let Ok(init) = candidate.to_json() else {
                        return;
                    };
                    let frame = ServerSignal::Candidate {
                        candidate: IceCandidate {
                            candidate: init.candidate,
                            sdp_mid: init.sdp_mid,
                            sdp_mline_index: init.sdp_mline_index,
                            username_fragment: init.username_fragment,
                        },
                    };
                    if let Some(outbound) = outbound.upgrade() {
                        if outbound.try_send(frame).is_err() {
                            reap(&weak, &peer, generation, "outbound queue full").await;
                        }
                    }
                })
            }));
        }
        {
            let (weak, peer, control) = (weak.clone(), peer.to_owned(), Arc::downgrade(control));
            pc.on_peer_connection_state_change(Box::new(
                move |pc_state: RTCPeerConnectionState| {
                    let (weak, peer, control) = (weak.clone(), peer.clone(), control.clone());
                    Box::pin(async move {
                        match pc_state {
                            RTCPeerConnectionState::Connected => {
                                if let Some(control) = control.upgrade() {
                                    // The first connect only (not an ICE restart's).
                                    if !control.connected.swap(true, Ordering::AcqRel) {
                                        if let Some(inner) = weak.upgrade() {
                                            inner
                                                .metrics
                                                .join_seconds
                                                .observe(joined_at.elapsed().as_secs_f64());
                                        }
                                    }
                                }
                            }
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                                reap(&weak, &peer, generation, "connection failed or closed").await;
                            }
                            _ => {}
                        }
                    })
                },
            ));
        }
        {
            let (weak, peer, control) = (weak, peer.to_owned(), Arc::downgrade(control));
            pc.on_track(Box::new(
                move |track: Arc<TrackRemote>, _receiver, _transceiver| {
                    let (weak, peer, control) = (weak.clone(), peer.clone(), control.clone());
                    Box::pin(async move {
                        if track.kind() != RTPCodecType::Audio {
                            return;
                        }
                        tokio::spawn(forward(weak, peer, generation, control, track));
                    })
                },
            ));
        }
    }

    fn spawn_connect_deadline(&self, peer: String, generation: u64) {
        let weak = Arc::downgrade(&self.inner);
        let timeout = self.inner.config.connect_timeout();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let connected = {
                let Some(inner) = weak.upgrade() else { return };
                let state = lock(&inner.state);
                match state.peers.get(&peer) {
                    Some(entry) if entry.generation == generation => {
                        entry.control.connected.load(Ordering::Acquire)
                    }
                    _ => return,
                }
            };
            if !connected {
                reap(&weak, &peer, generation, "not connected in time").await;
            }
        });
    }
}

/// Why the SFU could not start.
#[derive(Debug, thiserror::Error)]
pub enum SfuStartError {
    /// A setting out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The WebRTC stack refused its setup.
    #[error("webrtc setup failed: {0}")]
    Webrtc(webrtc::Error),
    /// `Sfu::new` was called outside a tokio runtime.
    #[error("the sfu needs a tokio runtime")]
    NoRuntime,
}

fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK_RATE,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn peer_exists(peer: &str) -> MediaError {
    MediaError::new(
        MediaErrorCode::PeerExists,
        format!("peer {peer:?} is already on this edge"),
    )
}

async fn close(pc: Arc<RTCPeerConnection>) {
    if let Err(err) = pc.close().await {
        tracing::debug!(error = %err, "closing a peer connection failed");
    }
}

/// Removes `peer` (only its `generation`, when given) and returns its
/// connection for the caller to close outside the lock.
fn remove_locked(
    inner: &Inner,
    state: &mut State,
    peer: &str,
    generation: Option<u64>,
) -> Option<Arc<RTCPeerConnection>> {
    match state.peers.get(peer) {
        Some(entry) if generation.is_none_or(|g| g == entry.generation) => {}
        _ => return None,
    }
    release_slot(state, peer);
    let entry = state.peers.remove(peer)?;
    inner.metrics.peers.dec();
    let room_now_empty = match state.rooms.get_mut(&entry.room) {
        Some(room) => {
            room.members.remove(peer);
            room.members.is_empty()
        }
        None => false,
    };
    if room_now_empty {
        state.rooms.remove(&entry.room);
    } else {
        broadcast_state(inner, state, &entry.room);
    }
    Some(entry.pc)
}

/// The class a room belongs to: the room itself, or the part before the
/// `/` of a breakout room (`class/2`, as the gateway names them).
fn class_of(room: &str) -> &str {
    room.split('/').next().unwrap_or(room)
}

/// Publishers (local and relayed) holding a slot in `room`'s class, over
/// the class room and its breakout rooms.
fn class_publishers(rooms: &HashMap<String, Room>, room: &str) -> usize {
    let class = class_of(room);
    rooms
        .iter()
        .filter(|(name, _)| class_of(name) == class)
        .map(|(_, room)| room.slots.iter().filter(|slot| slot.is_some()).count())
        .sum()
}

/// Frees `peer`'s publishing slot; true when it had one.
fn release_slot(state: &mut State, peer: &str) -> bool {
    let Some(entry) = state.peers.get_mut(peer) else {
        return false;
    };
    let Some(slot) = entry.slot.take() else {
        return false;
    };
    if let Some(room) = state.rooms.get_mut(&entry.room) {
        if let Some(holder) = room.slots.get_mut(usize::from(slot)) {
            *holder = None;
        }
    }
    true
}

/// Removes a peer that did not leave by itself, and counts it.
async fn reap(weak: &Weak<Inner>, peer: &str, generation: u64, why: &'static str) {
    let Some(inner) = weak.upgrade() else { return };
    let pc = remove_locked(&inner, &mut lock(&inner.state), peer, Some(generation));
    if let Some(pc) = pc {
        inner.metrics.peers_reaped.inc();
        tracing::info!(peer, why, "media peer removed");
        drop(inner);
        // Closing from inside one of the connection's own callbacks would
        // wait on itself: close on a task of its own.
        tokio::spawn(close(pc));
    }
}

fn media_state(state: &State, room: &str) -> Option<MediaState> {
    let open_mic = state.rooms.get(room)?.open_mic;
    let members = &state.rooms.get(room)?.members;
    let peers = members
        .iter()
        .filter_map(|id| state.peers.get(id).map(|peer| (id, peer)))
        .map(|(id, peer)| PeerMediaState {
            peer: id.clone(),
            role: peer.role,
            may_publish: open_mic || peer.control.may_publish.load(Ordering::Acquire),
            slot: peer.slot,
            server_muted: peer.control.server_muted.load(Ordering::Acquire),
            self_muted: peer.control.self_muted.load(Ordering::Acquire),
            relayed: false,
        })
        .chain(
            state
                .rooms
                .get(room)?
                .relayed
                .iter()
                .map(|(id, relayed)| PeerMediaState {
                    peer: id.clone(),
                    role: relayed.role,
                    may_publish: true,
                    slot: Some(relayed.slot),
                    server_muted: false,
                    self_muted: false,
                    relayed: true,
                }),
        )
        .collect();
    Some(MediaState {
        room: room.to_owned(),
        open_mic,
        peers,
    })
}

/// Sends the room's media state to each member.
fn broadcast_state(inner: &Inner, state: &mut State, room: &str) {
    let Some(snapshot) = media_state(state, room) else {
        return;
    };
    send_to_room(inner, state, room, &ServerSignal::MediaState(snapshot));
}

/// Sends `frame` to each member of `room`; a member whose queue is full is
/// removed (it cannot follow the room).
fn send_to_room(inner: &Inner, state: &mut State, room: &str, frame: &ServerSignal) {
    let mut too_slow = Vec::new();
    if let Some(members) = state.rooms.get(room).map(|r| r.members.clone()) {
        for id in members {
            if let Some(peer) = state.peers.get(&id) {
                if peer.outbound.try_send(frame.clone()).is_err() {
                    too_slow.push(id);
                }
            }
        }
    }
    for id in too_slow {
        if let Some(pc) = remove_locked(inner, state, &id, None) {
            inner.metrics.peers_reaped.inc();
            tracing::info!(peer = %id, why = "outbound queue full", "media peer removed");
            tokio::spawn(close(pc));
        }
    }
}

/// Forwards one publisher's packets until its track ends.
async fn forward(
    weak: Weak<Inner>,
    peer: String,
    generation: u64,
    control: Weak<Control>,
    track: Arc<TrackRemote>,
) {
    let (Some(inner), Some(control)) = (weak.upgrade(), control.upgrade()) else {
        return;
    };
    let rate_max = inner.config.publisher_packets_per_second_max;
    inner.metrics.published_tracks.inc();
    let metrics = inner.metrics.clone();
    drop(inner);
    let mut rate = Window::new(rate_max, Duration::from_secs(1), Instant::now());
    let level_id = track
        .params()
        .header_extensions
        .iter()
        .find(|ext| ext.uri == AUDIO_LEVEL_URI)
        .and_then(|ext| u8::try_from(ext.id).ok());
    let mut targets: Vec<Arc<SlotOut>> = Vec::new();
    let mut errors_in_a_row: u32 = 0;
    loop {
        // A bad packet (one that does not parse, an unknown payload type)
        // is an error for that packet only; a closed track errors at once
        // and for ever, so a run of errors ends the task.
        let packet = match track.read_rtp().await {
            Ok((packet, _)) => {
                errors_in_a_row = 0;
                packet
            }
            Err(err) => {
                errors_in_a_row += 1;
                if errors_in_a_row >= READ_ERRORS_IN_A_ROW_MAX {
                    tracing::debug!(peer = %peer, error = %err, "publisher track ended");
                    break;
                }
                continue;
            }
        };
        // Who hears this packet, decided under the lock: the room is read
        // on every packet, so mutes and room moves apply at once.
        let mut relay_to = None;
        let forwarding = {
            let Some(inner) = weak.upgrade() else { break };
            let state = lock(&inner.state);
            targets.clear();
            let Some(entry) = state
                .peers
                .get(&peer)
                .filter(|entry| entry.generation == generation)
            else {
                break;
            };
            let room = state.rooms.get(&entry.room);
            let forwarding = control.forwarding(room.is_some_and(|room| room.open_mic));
            if let (true, Some(_), Some(relay)) = (forwarding, entry.slot, inner.relay.get()) {
                relay_to = Some((Arc::clone(relay), entry.room.clone(), entry.role));
            }
            if let (true, Some(slot), Some(room)) = (forwarding, entry.slot, room) {
                for member in room.members.iter().filter(|m| **m != peer) {
                    if let Some(out) = state
                        .peers
                        .get(member)
                        .and_then(|m| m.outs.get(usize::from(slot)))
                    {
                        targets.push(Arc::clone(out));
                    }
                }
            }
            forwarding
        };
        if !forwarding {
            metrics.dropped_packets.with_label_values(&["muted"]).inc();
            continue;
        }
        if !rate.allow(Instant::now()) {
            metrics.dropped_packets.with_label_values(&["rate"]).inc();
            continue;
        }
        let level = level_id
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|b| b.first().copied())
            // RFC 6464: the low seven bits are the level in -dBov.
            .map(|level| level & 0x7f);
        if let Some(level) = level {
            control
                .loudness
                .fetch_max(128 - u32::from(level), Ordering::AcqRel);
        }
        if let Some((relay, room, role)) = relay_to {
            relay::send(relay.as_ref(), &room, &peer, role, level, &packet);
        }
        write_to_slots(&targets, &packet, &metrics).await;
    }
    targets.clear();
    metrics.published_tracks.dec();
}

/// Frees the slots of relayed publishers silent for `idle`; true when any
/// left (the room's media state changed).
fn expire_relayed(room: &mut Room, now: Instant, idle: Duration, metrics: &MediaMetrics) -> bool {
    let stale: Vec<String> = room
        .relayed
        .iter()
        .filter(|(_, relayed)| now.duration_since(relayed.last) >= idle)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &stale {
        if let Some(relayed) = room.relayed.remove(id) {
            if let Some(holder) = room.slots.get_mut(usize::from(relayed.slot)) {
                *holder = None;
            }
            metrics.relayed_publishers.dec();
        }
    }
    !stale.is_empty()
}

/// The loudest relayed publisher of the room since the last round, if it
/// speaks; resets their loudness for the next round.
fn loudest_relayed(room: &Room) -> Option<(&String, u32)> {
    let mut best: Option<(&String, u32)> = None;
    for (id, relayed) in &room.relayed {
        let loudness = relayed.take_loudness();
        if loudness >= 128 - u32::from(SPEAKING_DBOV_MAX)
            && best.is_none_or(|(_, loudest)| loudness > loudest)
        {
            best = Some((id, loudness));
        }
    }
    best
}

/// Writes `packet` to each listening slot in `targets`, each rewritten for
/// its slot, and counts what went out.
async fn write_to_slots(targets: &[Arc<SlotOut>], packet: &Packet, metrics: &MediaMetrics) {
    for out in targets {
        let mut copy = packet.clone();
        lock(&out.rewriter).rewrite(&mut copy);
        let bytes = copy.marshal_size();
        if out.track.write_rtp(&copy).await.is_ok() {
            metrics.forwarded_packets.inc();
            metrics.forwarded_bytes.inc_by(bytes as u64);
        }
    }
}

/// Records the loss and jitter a listener reports about what it receives
/// from the SFU (RTCP receiver reports, RFC 3550 section 6.4.2).
fn observe_receiver_reports(
    metrics: &MediaMetrics,
    packets: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
) {
    for packet in packets {
        let Some(report) = packet
            .as_any()
            .downcast_ref::<webrtc::rtcp::receiver_report::ReceiverReport>()
        else {
            continue;
        };
        for block in &report.reports {
            metrics
                .rtcp_loss_ratio
                .observe(f64::from(block.fraction_lost) / 256.0);
            // Jitter is in RTP timestamp units: 48 kHz for Opus.
            metrics
                .rtcp_jitter_seconds
                .observe(f64::from(block.jitter) / f64::from(OPUS_CLOCK_RATE));
        }
    }
}

/// Every `active_speaker_interval_ms`, announces each room's loudest
/// publisher (louder than `SPEAKING_DBOV_MAX`), only when it changes: at
/// most one frame per room per round. Ends with the SFU.
async fn active_speaker_rounds(weak: Weak<Inner>) {
    let Some(interval) = weak
        .upgrade()
        .map(|inner| inner.config.active_speaker_interval())
    else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let mut state = lock(&inner.state);
        let state = &mut *state;
        let mut changes = Vec::new();
        let idle = inner.config.relay_idle();
        let now = Instant::now();
        let mut gone = Vec::new();
        for (name, room) in &mut state.rooms {
            if expire_relayed(room, now, idle, &inner.metrics) {
                gone.push(name.clone());
            }
        }
        for name in gone {
            broadcast_state(&inner, state, &name);
        }
        for (name, room) in &state.rooms {
            let mut best: Option<(&String, u32)> = loudest_relayed(room);
            for member in &room.members {
                let Some(peer) = state.peers.get(member) else {
                    continue;
                };
                let loudness = peer.control.loudness.swap(0, Ordering::AcqRel);
                let speaking = peer.slot.is_some()
                    && peer.control.forwarding(room.open_mic)
                    && loudness >= 128 - u32::from(SPEAKING_DBOV_MAX);
                if speaking && best.is_none_or(|(_, loudest)| loudness > loudest) {
                    best = Some((member, loudness));
                }
            }
            let speaker = best.map(|(peer, _)| peer.clone());
            if speaker != room.speaker {
                changes.push((name.clone(), speaker));
            }
        }
        for (name, speaker) in changes {
            if let Some(room) = state.rooms.get_mut(&name) {
                room.speaker.clone_from(&speaker);
            }
            let frame = ServerSignal::ActiveSpeaker {
                room: name.clone(),
                peer: speaker,
            };
            send_to_room(&inner, state, &name, &frame);
        }
    }
}
