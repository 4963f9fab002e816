//! The media frames of the live WebSocket: what a browser and the edge's SFU
//! say to each other to set up, renegotiate and steer one audio peer
//! connection, plus the closed set of error codes the SFU answers with.
//!
//! These are wire types (one copy, here), so they derive `schemars::JsonSchema`
//! next to serde, like `actors::live::protocol`; the live socket carries each
//! inside a `media` frame, and `docs/live-protocol.schema.json` includes them.
//! Every string has a documented bound, checked by the SFU before use.
//!
//! Who may speak and who is muted are not media frames: they are the class's
//! own state (the live commands `allow_to_speak`, `mute` and `open_mic`,
//! decided by the classroom actor), which the gateway applies to the SFU.
//!
//! **Negotiation roles (perfect negotiation).** The browser is the *polite*
//! side and the SFU the *impolite* one. The browser makes every offer it
//! needs (its microphone, its listening slots, an ICE restart) and the SFU
//! answers. When the SFU must offer (not needed by this increment: publishers
//! come and go on fixed listening slots without renegotiation) and the two
//! offers collide, the SFU keeps its own and refuses the browser's with
//! `negotiation_collision`; the browser rolls back, answers, and offers again.
//! The server is impolite because it serves many peers and must never hold
//! state half-way for one of them; rollback is a browser feature that every
//! current browser has.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest SDP body accepted, in bytes. An audio offer with a dozen
/// m-lines is about 6 KiB; anything past 64 KiB is refused as malformed
/// before it reaches the SDP parser.
pub const SDP_BYTES_MAX: usize = 64 * 1024;
/// The longest ICE candidate line accepted, in bytes (RFC 8839 lines are
/// well under 256 bytes; 1 KiB leaves room for extensions).
pub const CANDIDATE_BYTES_MAX: usize = 1024;
/// The longest peer or room id, in bytes.
pub const ID_BYTES_MAX: usize = 64;

/// Who a peer is in its class: decides who may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaRole {
    /// Always allowed to publish; may mute others and allow them to speak.
    Instructor,
    /// Publishes only when the instructor allows it.
    Learner,
}

/// An ICE candidate as the browser's `RTCIceCandidateInit` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    /// The `candidate:` attribute line (empty marks the end of a generation).
    #[schemars(length(max = CANDIDATE_BYTES_MAX))]
    pub candidate: String,
    /// The media section this candidate belongs to, by mid.
    #[serde(default, rename = "sdpMid")]
    #[schemars(length(max = ID_BYTES_MAX))]
    pub sdp_mid: Option<String>,
    /// The media section this candidate belongs to, by index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    /// The ICE ufrag of the generation this candidate belongs to.
    #[serde(default, rename = "usernameFragment")]
    #[schemars(length(max = ID_BYTES_MAX))]
    pub username_fragment: Option<String>,
}

/// A media frame from a browser to the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientSignal {
    /// An SDP offer: the first one, a renegotiation (a microphone added or
    /// removed), or an ICE restart (new ICE credentials in the offer, from
    /// `pc.restartIce()` after a network change). Answered with `answer`.
    Offer {
        /// The SDP text.
        #[schemars(length(max = SDP_BYTES_MAX))]
        sdp: String,
    },
    /// The answer to an offer the server made.
    Answer {
        /// The SDP text.
        #[schemars(length(max = SDP_BYTES_MAX))]
        sdp: String,
    },
    /// A trickled ICE candidate of the browser.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// The peer mutes or unmutes its own microphone. Unmuting past a
    /// server mute is refused with `server_muted`.
    SetMuted {
        /// True to mute.
        muted: bool,
    },
    /// The person left the audio (the live connection stays): the edge
    /// closes the peer connection at once, and the next `offer` starts a
    /// new one.
    Leave {},
}

/// A media frame from the edge to a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerSignal {
    /// How to build the peer connection: sent right after every welcome
    /// (a first join, a resume, a failover), so a client always has the
    /// ICE servers and slot count of the edge it is on now.
    MediaConfig {
        /// How many receive-only audio lines to offer: slot `k` is the
        /// `k`-th one ([`PeerMediaState::slot`]).
        listening_slots: u8,
        /// STUN and TURN servers, with time-limited TURN credentials.
        ice_servers: Vec<IceServer>,
        /// `all`, or `relay` to force TURN (set by the edge's config).
        ice_transport_policy: IceTransportPolicy,
    },
    /// The answer to the browser's offer.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// An offer from the server (reserved: see the module doc on roles).
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate of the server.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Who publishes and who is muted in the peer's room; sent on every
    /// change, and part of the class snapshot for a resumed client.
    MediaState(MediaState),
    /// The room's loudest publisher changed (from the RFC 6464 audio level
    /// its packets carry); at most one per room per
    /// `active_speaker_interval_ms`.
    ActiveSpeaker {
        /// The room.
        room: String,
        /// The speaker, or `None` when nobody speaks.
        peer: Option<String>,
    },
    /// A refused frame; the connection and the class are unaffected.
    Error {
        /// The stable code.
        code: MediaErrorCode,
        /// Lowercase detail for people; not for matching.
        message: String,
    },
}

/// One ICE server, as `RTCIceServer` in the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// The TURN user name (`<expiry unix seconds>:<user id>`), if TURN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub username: Option<String>,
    /// The TURN password (HMAC of the user name), if TURN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub credential: Option<String>,
}

/// Which ICE candidates a client may use, as `RTCIceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Every candidate.
    #[default]
    All,
    /// Relayed (TURN) candidates only.
    Relay,
}

/// The media state of one room (a class, or one of its breakout rooms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaState {
    /// The room.
    pub room: String,
    /// Every learner of the room may publish (an open-mic class or room).
    pub open_mic: bool,
    /// Every peer in the room, sorted by id.
    pub peers: Vec<PeerMediaState>,
}

/// One peer's part of [`MediaState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerMediaState {
    /// The peer.
    pub peer: String,
    /// Instructor or learner.
    pub role: MediaRole,
    /// May it publish now (instructors always; learners when allowed or
    /// when the room's mic is open).
    pub may_publish: bool,
    /// The listening slot its audio arrives on at every other peer: the
    /// n-th receive-only audio m-line of their offer. `None` when not
    /// publishing.
    pub slot: Option<u8>,
    /// Muted by the instructor: nothing it sends is forwarded, and it
    /// cannot unmute itself.
    pub server_muted: bool,
    /// Muted by itself.
    pub self_muted: bool,
    /// Its audio comes from another edge (it is connected there).
    #[serde(default)]
    pub relayed: bool,
}

/// Why a media frame was refused: a closed set of stable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaErrorCode {
    /// The SDP did not parse, was too long, or had no usable audio.
    MalformedSdp,
    /// The ICE candidate did not parse or was too long.
    MalformedCandidate,
    /// The frame names a peer the SFU does not know (never joined, or gone).
    UnknownPeer,
    /// The peer tried to publish audio without being allowed to.
    PublishNotAllowed,
    /// Unmuting past a mute the instructor set.
    ServerMuted,
    /// More media sections than a peer may have.
    TooManyTracks,
    /// The room has as many publishers as it may.
    TooManyPublishers,
    /// The edge has as many peers as it may.
    TooManyPeers,
    /// Offers faster than a peer may renegotiate.
    RenegotiationFlood,
    /// An answer when the server had made no offer.
    UnexpectedAnswer,
    /// The browser's offer collided with one of the server's (the server is
    /// impolite); roll back and offer again.
    NegotiationCollision,
    /// A media kind other than audio.
    UnsupportedMedia,
    /// The peer id is already in use on this edge.
    PeerExists,
    /// A peer or room id that is empty or too long.
    BadId,
    /// The WebRTC stack failed; details are in the edge's log.
    Internal,
    /// This edge carries no audio now (media is off in its configuration,
    /// or the class has ended).
    MediaUnavailable,
}

impl MediaErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [MediaErrorCode; 16] = [
        Self::MalformedSdp,
        Self::MalformedCandidate,
        Self::UnknownPeer,
        Self::PublishNotAllowed,
        Self::ServerMuted,
        Self::TooManyTracks,
        Self::TooManyPublishers,
        Self::TooManyPeers,
        Self::RenegotiationFlood,
        Self::UnexpectedAnswer,
        Self::NegotiationCollision,
        Self::UnsupportedMedia,
        Self::PeerExists,
        Self::BadId,
        Self::Internal,
        Self::MediaUnavailable,
    ];

    /// The stable wire string (the same as its serde form).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedSdp => "malformed_sdp",
            Self::MalformedCandidate => "malformed_candidate",
            Self::UnknownPeer => "unknown_peer",
            Self::PublishNotAllowed => "publish_not_allowed",
            Self::ServerMuted => "server_muted",
            Self::TooManyTracks => "too_many_tracks",
            Self::TooManyPublishers => "too_many_publishers",
            Self::TooManyPeers => "too_many_peers",
            Self::RenegotiationFlood => "renegotiation_flood",
            Self::UnexpectedAnswer => "unexpected_answer",
            Self::NegotiationCollision => "negotiation_collision",
            Self::UnsupportedMedia => "unsupported_media",
            Self::PeerExists => "peer_exists",
            Self::BadId => "bad_id",
            Self::Internal => "internal",
            Self::MediaUnavailable => "media_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_stable_string() {
        for code in MediaErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("a code serialises");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn frames_read_as_the_browser_writes_them() {
        let frame: ClientSignal = serde_json::from_str(
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#,
        )
        .expect("a candidate frame reads");
        let ClientSignal::Candidate { candidate } = frame else {
            panic!("not a candidate: {frame:?}");
        };
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        let schema = serde_json::to_value(schemars::schema_for!(ClientSignal)).expect("a schema");
        assert!(
            schema.to_string().contains("set_muted"),
            "the schema names every frame"
        );
        let unknown = serde_json::from_str::<ClientSignal>(r#"{"type":"offer","sdp":"v=0","x":1}"#);
        assert!(unknown.is_err(), "unknown fields are refused");
    }
}
