//! The edge's live audio: the `media` frames of the live socket (one
//! `media::signal` message inside a frame of the live protocol), the edge's
//! one SFU, and how a class's audio rights and breakout rooms reach the
//! peers the SFU holds for it.
//!
//! *Who decides, who enforces.* Who may speak and who is muted are class
//! state: instructors' `allow_to_speak`, `mute` and `open_mic` commands are
//! decided by the classroom actor like any other command, and every edge
//! with sessions of the class learns the result from the class's events
//! (the hub's [`ClassAudio`] view). [`MediaGateway::apply`] turns that view
//! into the SFU's per-peer rights and rooms, so a mute lands on the edge
//! that carries the muted learner's audio, wherever the instructor is.
//!
//! *Peers.* A session's peer id is its user id, and it joins the SFU with
//! its first offer. A second session of the same user on this edge (a
//! resume that arrived before the old socket closed, or a second tab) takes
//! the peer over: the old one's link ends, and its later leave cannot touch
//! the new peer (`Sfu::leave_link` checks the joining).

use actors::live::{
    class::ClassAudio,
    protocol::{close_frame_variants, protocol_version_schema, ClassRole, REQUEST_ID_CHARS_MAX},
};
use media::{
    signal::{ClientSignal, IceServer, MediaErrorCode, MediaRole, ServerSignal},
    JoinRequest, MediaError, PeerLink, PeerRights, Sfu, SfuConfig,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The realm of the edges' TURN servers.
const TURN_REALM: &str = "lyceum";

/// The `type` of a media frame, both ways.
pub(crate) const MEDIA_TYPE: &str = "media";

/// A `media` frame from a client: `{"type":"media","signal":{..}}`, with the
/// `id` and `class_id` every client frame may carry.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = close_frame_variants)]
pub(crate) struct MediaClientFrame {
    /// A request id the client chose, echoed as `re` in a refusal.
    #[serde(default)]
    #[schemars(length(max = REQUEST_ID_CHARS_MAX))]
    pub(crate) id: Option<String>,
    /// The class this is meant for; when given it must be the joined class.
    #[serde(default)]
    pub(crate) class_id: Option<String>,
    /// The signal.
    #[serde(flatten)]
    pub(crate) body: MediaClientBody,
}

/// The one body of [`MediaClientFrame`], so that it carries a `type`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum MediaClientBody {
    /// A WebRTC signal for this session's peer connection (see
    /// `docs/live-protocol.md`, "Audio").
    Media {
        /// The signal.
        signal: ClientSignal,
    },
}

/// A `media` frame to a client: `{"v":1,"seq":..,"type":"media","signal":{..}}`.
#[derive(Serialize, JsonSchema)]
#[schemars(transform = close_frame_variants)]
struct MediaServerFrame<'a> {
    /// The protocol version.
    #[schemars(schema_with = "protocol_version_schema")]
    v: u32,
    /// The `seq` of the last event the session delivered.
    seq: u64,
    /// The request's `id`, on a refusal of a frame that had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    re: Option<&'a str>,
    #[serde(flatten)]
    body: MediaServerBody<'a>,
}

/// The one body of [`MediaServerFrame`].
#[derive(Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MediaServerBody<'a> {
    /// A WebRTC signal from the edge: the connection's setup, the room's
    /// media state, the active speaker, or a refusal.
    Media {
        /// The signal.
        signal: &'a ServerSignal,
    },
}

/// The text of a media frame to a client.
pub(crate) fn server_frame(signal: &ServerSignal, seq: u64, re: Option<&str>) -> String {
    serde_json::to_string(&MediaServerFrame {
        v: actors::live::protocol::PROTOCOL_VERSION,
        seq,
        re,
        body: MediaServerBody::Media { signal },
    })
    .unwrap_or_default()
}

/// Reads a media frame (the caller has checked its size and its `type`).
///
/// # Errors
/// serde's message, for a `bad_message` refusal.
pub(crate) fn parse_client_frame(text: &str) -> Result<MediaClientFrame, String> {
    let frame: MediaClientFrame = serde_json::from_str(text).map_err(|err| err.to_string())?;
    if frame
        .id
        .as_ref()
        .is_some_and(|id| id.chars().count() > REQUEST_ID_CHARS_MAX)
    {
        return Err(format!(
            "`id` is longer than {REQUEST_ID_CHARS_MAX} characters"
        ));
    }
    Ok(frame)
}

#[cfg(test)]
/// The whole live protocol's JSON Schema, the classroom's frames and the
/// edge's `media` frames: the text of `docs/live-protocol.schema.json`.
fn schema_document() -> String {
    actors::live::protocol::schema_document_with(|generator| {
        (
            vec![MediaClientFrame::json_schema(generator)],
            vec![MediaServerFrame::json_schema(generator)],
        )
    })
}

/// The edge's audio: its SFU (none when `media.enabled` is off) and what
/// the sessions need to use it.
pub(crate) struct MediaGateway {
    sfu: Option<Sfu>,
    config: SfuConfig,
    /// The edge's TURN server, when `media.turn_enabled`.
    turn: Option<media::turn::Turn>,
    /// The TURN REST secret (`media.turn_secret`, or made at start).
    turn_secret: String,
}

impl MediaGateway {
    /// Starts the SFU when `media.enabled` (and its TURN server when
    /// `media.turn_enabled` too) and registers its metrics.
    ///
    /// # Errors
    /// A bad `[media]` setting, the WebRTC stack refusing its setup, the
    /// TURN port not binding, or the metrics not registering.
    pub(crate) async fn start(
        config: SfuConfig,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let sfu = if config.enabled {
            let sfu = Sfu::new(config.clone())?;
            sfu.metrics().register(registry)?;
            Some(sfu)
        } else {
            None
        };
        let turn_secret = if config.turn_secret.is_empty() {
            // Random per process: only this process's TURN server checks it.
            let bytes: [u8; 32] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        } else {
            config.turn_secret.clone()
        };
        let turn = match (
            config.enabled && config.turn_enabled,
            config.turn_addresses(),
        ) {
            (true, Some((listen, public))) => {
                let turn =
                    media::turn::Turn::start(listen, public, TURN_REALM, &turn_secret).await?;
                tracing::info!(url = turn.url(), "turn server started");
                Some(turn)
            }
            _ => None,
        };
        Ok(Self {
            sfu,
            config,
            turn,
            turn_secret,
        })
    }

    /// The SFU, when this edge carries audio.
    pub(crate) fn sfu(&self) -> Option<&Sfu> {
        self.sfu.as_ref()
    }

    /// The `media_config` a session sends after its welcome (and again
    /// when the SFU dropped its peer): how to build the peer connection.
    /// `user_id`'s TURN credentials are in it, valid for
    /// `media.turn_credential_ttl_ms`.
    pub(crate) fn config_signal(&self, user_id: &str) -> Option<ServerSignal> {
        self.sfu.as_ref()?;
        let urls: Vec<String> = self
            .turn
            .iter()
            .map(|turn| turn.url().to_owned())
            .chain(self.config.turn_urls.iter().cloned())
            .collect();
        let ice_servers: Vec<IceServer> = if urls.is_empty() {
            Vec::new()
        } else {
            vec![media::turn::ice_server(
                urls,
                &self.turn_secret,
                user_id,
                std::time::Duration::from_millis(self.config.turn_credential_ttl_ms),
            )]
        };
        Some(ServerSignal::MediaConfig {
            listening_slots: self.config.publishers_per_room_max,
            ice_servers,
            ice_transport_policy: self.config.ice_transport_policy,
        })
    }

    /// Joins `user_id` to the SFU for `class_id`, in the room and with the
    /// rights the class's audio view gives it. A peer of the same user
    /// already on this edge is taken over.
    ///
    /// # Errors
    /// `media_unavailable` without an SFU; the SFU's refusals.
    pub(crate) async fn join(
        &self,
        class_id: &str,
        user_id: &str,
        role: ClassRole,
        view: Option<&ClassAudio>,
    ) -> Result<PeerLink, MediaError> {
        let sfu = self.sfu.as_ref().ok_or_else(unavailable)?;
        let request = JoinRequest {
            peer: user_id.to_owned(),
            room: room_of(class_id, view, user_id, role),
            role: media_role(role),
            rights: view.map_or_else(PeerRights::default, |view| rights_of(view, user_id)),
            open_mic: view.is_some_and(|view| view.rights.open_mic),
        };
        sfu.join_taking_over(request).await
    }

    /// Applies a class's audio view to the peers this edge holds for it:
    /// each one's rights, its room (the class, or its breakout room), and
    /// the rooms' open mic. Called by the hub's registry on every change.
    pub(crate) fn apply(&self, class_id: &str, view: &ClassAudio) {
        let Some(sfu) = &self.sfu else { return };
        for (peer, role) in sfu.peers_of(class_id) {
            let class_role = match role {
                MediaRole::Instructor => ClassRole::Instructor,
                MediaRole::Learner => ClassRole::Learner,
            };
            // A peer that left meanwhile is simply gone; nothing to undo.
            let _gone = sfu.set_rights(&peer, rights_of(view, &peer));
            let _gone = sfu.move_peer(&peer, &room_of(class_id, Some(view), &peer, class_role));
        }
        sfu.set_open_mic(class_id, view.rights.open_mic);
        for index in 0..view.breakout.as_ref().map_or(0, Vec::len) {
            sfu.set_open_mic(&breakout_room(class_id, index), view.rights.open_mic);
        }
    }
}

/// The refusal for a media frame on an edge without an SFU.
pub(crate) fn unavailable() -> MediaError {
    MediaError::new(
        MediaErrorCode::MediaUnavailable,
        "this edge carries no live audio (media.enabled is off)",
    )
}

fn media_role(role: ClassRole) -> MediaRole {
    match role {
        ClassRole::Instructor => MediaRole::Instructor,
        ClassRole::Learner => MediaRole::Learner,
    }
}

/// What the class allows `user_id` (instructors are allowed by the SFU).
fn rights_of(view: &ClassAudio, user_id: &str) -> PeerRights {
    PeerRights {
        may_publish: view.rights.may_speak(user_id),
        server_muted: view.rights.muted.contains(user_id),
    }
}

/// The SFU room of a breakout group, by its place in the split: group
/// names may be long, room ids may not.
fn breakout_room(class_id: &str, index: usize) -> String {
    format!("{class_id}/{index}")
}

/// The room a person's audio belongs to: a learner's breakout room while
/// the class is split, else the class. Instructors stay in the class room.
fn room_of(class_id: &str, view: Option<&ClassAudio>, user_id: &str, role: ClassRole) -> String {
    if role == ClassRole::Learner {
        if let Some(index) = view.and_then(|view| {
            view.breakout
                .as_ref()?
                .iter()
                .position(|group| group.members.iter().any(|member| member == user_id))
        }) {
            return breakout_room(class_id, index);
        }
    }
    class_id.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema is the one the frame types derive, the
    /// classroom's and the edge's. After changing a frame type, rewrite it
    /// with `UPDATE_EXPECT=1 cargo test -p node --lib schema` and commit it.
    #[test]
    fn the_committed_schema_is_the_one_the_types_derive() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/live-protocol.schema.json");
        let derived = schema_document();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &derived).expect("write docs/live-protocol.schema.json");
        }
        let committed = std::fs::read_to_string(&path).expect("docs/live-protocol.schema.json");
        if committed == derived {
            return;
        }
        let line = committed
            .lines()
            .zip(derived.lines())
            .position(|(was, now)| was != now)
            .unwrap_or_else(|| committed.lines().count().min(derived.lines().count()));
        panic!(
            "docs/live-protocol.schema.json differs from the derived schema at line {}; \
             rewrite it with `UPDATE_EXPECT=1 cargo test -p node --lib schema` and commit it",
            line + 1
        );
    }

    /// The "Audio" section's error table lists exactly the codes a media
    /// `error` signal can carry.
    #[test]
    fn the_protocol_doc_lists_exactly_the_media_error_codes() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/live-protocol.md");
        let doc = std::fs::read_to_string(&path).expect("docs/live-protocol.md");
        let section = doc
            .split("\n### ")
            .find(|part| part.starts_with("Media errors"))
            .expect("a Media errors section");
        let documented: std::collections::BTreeSet<&str> = section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .filter_map(|line| line.split('`').nth(1))
            .collect();
        let produced: std::collections::BTreeSet<&str> = MediaErrorCode::ALL
            .iter()
            .map(|code| code.as_str())
            .collect();
        assert_eq!(documented, produced);
    }

    #[test]
    fn frames_read_and_write_as_the_protocol_says() {
        let frame = parse_client_frame(
            r#"{"type":"media","id":"r1","signal":{"type":"set_muted","muted":true}}"#,
        )
        .expect("a media frame");
        assert_eq!(frame.id.as_deref(), Some("r1"));
        let MediaClientBody::Media { signal } = frame.body;
        assert_eq!(signal, ClientSignal::SetMuted { muted: true });
        for bad in [
            r#"{"type":"media","signal":{"type":"set_muted","muted":true},"extra":1}"#,
            r#"{"type":"media","signal":{"type":"dance"}}"#,
            r#"{"type":"media"}"#,
        ] {
            assert!(parse_client_frame(bad).is_err(), "{bad} is refused");
        }
        let text = server_frame(
            &ServerSignal::Error {
                code: MediaErrorCode::ServerMuted,
                message: "no".into(),
            },
            7,
            Some("r1"),
        );
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"v": 1, "seq": 7, "re": "r1", "type": "media",
                "signal": {"type": "error", "code": "server_muted", "message": "no"}})
        );
    }

    #[test]
    fn learners_follow_their_breakout_group_and_instructors_stay() {
        let mut view = ClassAudio::default();
        assert_eq!(room_of("c", Some(&view), "l1", ClassRole::Learner), "c");
        view.breakout = Some(vec![
            actors::live::protocol::Group {
                name: "a".into(),
                members: vec!["l0".into()],
            },
            actors::live::protocol::Group {
                name: "b".into(),
                members: vec!["l1".into()],
            },
        ]);
        assert_eq!(room_of("c", Some(&view), "l1", ClassRole::Learner), "c/1");
        assert_eq!(room_of("c", Some(&view), "l9", ClassRole::Learner), "c");
        assert_eq!(room_of("c", Some(&view), "t", ClassRole::Instructor), "c");
        view.rights.muted.insert("l1".into());
        view.rights.open_mic = true;
        assert_eq!(
            rights_of(&view, "l1"),
            PeerRights {
                may_publish: true,
                server_muted: true
            }
        );
    }
}
