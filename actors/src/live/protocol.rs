//! The live protocol, version 1: the JSON frames a browser and an edge node
//! exchange over the `/api/v1/live` WebSocket. This module is the one place
//! the shapes are defined. `docs/live-protocol.md` describes them for people;
//! `docs/live-protocol.schema.json` is [`schema_document`], derived from these
//! types (`schemars::JsonSchema` next to each serde derive, limits as
//! `#[schemars(length(..))]` from the constants below), so a renamed or added
//! field reaches validators by itself. A test fails when the committed file
//! is not what the types derive now (`UPDATE_EXPECT=1` rewrites it).
//!
//! Every server frame carries `"v": 1` and a `seq`. Events (what happened in
//! the class) carry the class's own sequence number, which grows by one per
//! event of the class; a client sees gaps where an event was not meant for
//! it (another breakout group's message). Replies (welcome, error, pong)
//! carry the sequence number of the last event the session delivered, so a
//! client always knows where it stands, and resumes with the largest `seq`
//! it has seen.

use schemars::{generate::SchemaSettings, json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The protocol version every server frame states.
pub const PROTOCOL_VERSION: u32 = 1;

/// The message types a client may send, in the order the docs list them.
pub const CLIENT_TYPES: [&str; 15] = [
    "join",
    "chat",
    "hand",
    "presence",
    "broadcast",
    "drop_assignment",
    "submit",
    "breakout_start",
    "breakout_message",
    "breakout_end",
    "end_class",
    "allow_to_speak",
    "mute",
    "open_mic",
    "ping",
];

/// The frame types a server sends, in the schema's order: replies, the
/// snapshot, then events.
pub const SERVER_TYPES: [&str; 18] = [
    "welcome",
    "error",
    "pong",
    "snapshot",
    "presence",
    "chat",
    "hand",
    "broadcast",
    "assignment",
    "submission_started",
    "submission",
    "breakout_started",
    "breakout_message",
    "breakout_ended",
    "class_ended",
    "allow_to_speak",
    "mute",
    "open_mic",
];

/// Longest chat, broadcast or breakout text, in characters.
pub const TEXT_CHARS_MAX: usize = 2_000;
/// Longest code snippet, submission or starter file, in bytes.
pub const SOURCE_BYTES_MAX: usize = 64 * 1024;
/// Most test cases an assignment dropped into a class may carry.
pub const TESTS_MAX: usize = 32;
/// Most breakout groups at once.
pub const GROUPS_MAX: usize = 64;
/// Longest id a client may attach to a request (echoed in replies).
pub const REQUEST_ID_CHARS_MAX: usize = 64;
/// Longest name (group, assignment title, language id).
pub const NAME_CHARS_MAX: usize = 200;

/// Every code a live `error` frame or close reason may carry: a closed set,
/// listed in `docs/live-protocol.md` (a test holds the two in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveErrorCode {
    /// Not JSON, missing or wrong fields, unknown fields, an empty text.
    BadMessage,
    /// A `type` the protocol does not have.
    UnknownType,
    /// A frame over the frame limit, or a field over its limit.
    MessageTooLarge,
    /// A session, tenant or class over its message rate, or a run budget
    /// spent.
    RateLimited,
    /// The frame names a class this connection has not joined.
    NotEnrolled,
    /// A learner doing an instructor's thing (or an instructor submitting).
    Forbidden,
    /// The submission names no assignment of the class.
    UnknownAssignment,
    /// A language no sandbox has.
    UnknownLanguage,
    /// The learner's previous submission is still running.
    SubmissionInProgress,
    /// This node's sandbox is still starting.
    SandboxUnavailable,
    /// The node's outbox is full: no submission may run until the control
    /// plane takes its backlog.
    OutboxFull,
    /// A breakout split or message that does not fit the class.
    BadGroup,
    /// A class holds as many assignments as it may.
    TooManyAssignments,
    /// The class is over.
    ClassEnded,
    /// A second `join`.
    AlreadyJoined,
    /// A command before joining, or a first frame that is no `join`.
    JoinRequired,
    /// The ticket was missing, forged, expired or for another audience.
    Unauthenticated,
    /// No `join` arrived in time.
    JoinTimeout,
    /// The session fell too far behind.
    SlowConsumer,
    /// The class's home died or gave the class up.
    ClassMoved,
    /// The node or the tenant holds as many sessions as it may.
    TooManySessions,
    /// The class could not be reached or started here.
    ClassUnavailable,
    /// The tenant has as many classes on this node as it may.
    TooManyClasses,
    /// The class holds as many people as it may.
    ClassFull,
    /// The command names a user who is no learner of the class.
    UnknownUser,
}

impl std::fmt::Display for LiveErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LiveErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [LiveErrorCode] = &[
        Self::BadMessage,
        Self::UnknownType,
        Self::MessageTooLarge,
        Self::RateLimited,
        Self::NotEnrolled,
        Self::Forbidden,
        Self::UnknownAssignment,
        Self::UnknownLanguage,
        Self::SubmissionInProgress,
        Self::SandboxUnavailable,
        Self::OutboxFull,
        Self::BadGroup,
        Self::TooManyAssignments,
        Self::ClassEnded,
        Self::AlreadyJoined,
        Self::JoinRequired,
        Self::Unauthenticated,
        Self::JoinTimeout,
        Self::SlowConsumer,
        Self::ClassMoved,
        Self::TooManySessions,
        Self::ClassUnavailable,
        Self::TooManyClasses,
        Self::ClassFull,
        Self::UnknownUser,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad_message",
            Self::UnknownType => "unknown_type",
            Self::MessageTooLarge => "message_too_large",
            Self::RateLimited => "rate_limited",
            Self::NotEnrolled => "not_enrolled",
            Self::Forbidden => "forbidden",
            Self::UnknownAssignment => "unknown_assignment",
            Self::UnknownLanguage => "unknown_language",
            Self::SubmissionInProgress => "submission_in_progress",
            Self::SandboxUnavailable => "sandbox_unavailable",
            Self::OutboxFull => "outbox_full",
            Self::BadGroup => "bad_group",
            Self::TooManyAssignments => "too_many_assignments",
            Self::ClassEnded => "class_ended",
            Self::AlreadyJoined => "already_joined",
            Self::JoinRequired => "join_required",
            Self::Unauthenticated => "unauthenticated",
            Self::JoinTimeout => "join_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::ClassMoved => "class_moved",
            Self::TooManySessions => "too_many_sessions",
            Self::ClassUnavailable => "class_unavailable",
            Self::TooManyClasses => "too_many_classes",
            Self::ClassFull => "class_full",
            Self::UnknownUser => "unknown_user",
        }
    }
}

/// WebSocket close codes the gateway uses (4000-4999 is the application
/// range); each has a stable reason text equal to its error code.
pub mod close {
    /// The first frame was not a valid `join`.
    pub const JOIN_REQUIRED: u16 = 4000;
    /// The ticket was missing, forged, expired or for another audience.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// No `join` arrived within the join timeout.
    pub const JOIN_TIMEOUT: u16 = 4002;
    /// The session could not keep up; resume to continue.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The instructor ended the class.
    pub const CLASS_ENDED: u16 = 4010;
    /// The class moved to another home (its home died or gave it up);
    /// resume at once, from any node.
    pub const CLASS_MOVED: u16 = 4011;
    /// This node or tenant holds as many sessions as it may.
    pub const TOO_MANY_SESSIONS: u16 = 4013;
    /// The classroom could not be found or started; try again or elsewhere.
    pub const CLASS_UNAVAILABLE: u16 = 4014;
    /// The node is shutting down; resume elsewhere.
    pub const GOING_AWAY: u16 = 1001;
}

/// A class participant's role, from the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassRole {
    /// Runs the class.
    Instructor,
    /// Takes part.
    Learner,
}

/// A learner's or instructor's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Connected and just arrived (or back).
    Joined,
    /// Connected and active.
    Active,
    /// Connected but away (the tab is hidden, says the client).
    Idle,
    /// No connection left.
    Left,
}

/// A code snippet in a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeSnippet {
    /// Language id (as in `GET /api/v1/languages`).
    #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
    pub language: String,
    /// The code: at most 64 KiB of UTF-8 (a schema counts characters, so it
    /// can only bound the bytes loosely).
    #[schemars(length(max = SOURCE_BYTES_MAX))]
    pub source: String,
}

/// One test of an assignment dropped into a class. Learners never receive
/// them; they run on the learner's edge node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveTest {
    /// Name shown to the instructor.
    #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
    pub name: String,
    /// Standard input (at most 64 KiB).
    #[serde(default)]
    #[schemars(length(max = SOURCE_BYTES_MAX))]
    pub stdin: String,
    /// Expected standard output, compared with trailing space trimmed (at
    /// most 64 KiB).
    #[schemars(length(max = SOURCE_BYTES_MAX))]
    pub expected_stdout: String,
}

/// What an instructor drops into a running class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentSpec {
    /// Title.
    #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
    pub title: String,
    /// Language id (as in `GET /api/v1/languages`).
    #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
    pub language: String,
    /// What to do (Markdown).
    #[serde(default)]
    #[schemars(length(max = TEXT_CHARS_MAX))]
    pub instructions: String,
    /// The file the learner starts from (at most 64 KiB).
    #[serde(default)]
    #[schemars(length(max = SOURCE_BYTES_MAX))]
    pub starter: String,
    /// The tests a submission must pass; hidden from learners.
    #[serde(default)]
    #[schemars(length(max = TESTS_MAX))]
    pub tests: Vec<LiveTest>,
}

/// One breakout group as the instructor defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name, unique within the split.
    #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
    pub name: String,
    /// User ids of its learners.
    pub members: Vec<String>,
}

/// The body of a client frame, by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientBody {
    /// Must be first: the ticket from `POST /api/v1/live/tickets`, and the
    /// last `seq` seen when resuming.
    Join {
        /// The signed class ticket.
        ticket: String,
        /// The largest `seq` received before, when resuming.
        #[serde(default)]
        last_seq: Option<u64>,
    },
    /// A chat line to the class (or to one's breakout group while split).
    Chat {
        /// The text; not blank.
        #[schemars(length(min = 1, max = TEXT_CHARS_MAX))]
        text: String,
    },
    /// Raise or lower one's hand.
    Hand {
        /// Raised?
        raised: bool,
    },
    /// Active or idle, as the client sees its user.
    Presence {
        /// `active` or `idle` (the server sets the others).
        #[schemars(schema_with = "client_status_schema")]
        status: Presence,
    },
    /// Instructor: a message (and snippet) to everyone.
    Broadcast {
        /// The text; may be empty only when a snippet comes with it.
        #[schemars(length(max = TEXT_CHARS_MAX))]
        text: String,
        /// An optional snippet.
        #[serde(default)]
        code: Option<CodeSnippet>,
    },
    /// Instructor: drop an assignment into the class.
    DropAssignment {
        /// The assignment.
        assignment: AssignmentSpec,
    },
    /// Learner: run a solution against a dropped assignment's tests.
    Submit {
        /// Which assignment.
        assignment_id: String,
        /// The solution (at most 64 KiB).
        #[schemars(length(max = SOURCE_BYTES_MAX))]
        source: String,
    },
    /// Instructor: split the class into groups.
    BreakoutStart {
        /// The groups; nobody in two.
        #[schemars(length(min = 1, max = GROUPS_MAX))]
        groups: Vec<GroupSpec>,
    },
    /// Instructor: a message to one group.
    BreakoutMessage {
        /// Group name.
        group: String,
        /// The text; not blank.
        #[schemars(length(min = 1, max = TEXT_CHARS_MAX))]
        text: String,
    },
    /// Instructor: bring everyone back.
    BreakoutEnd {},
    /// Instructor: end the class; attendance is recorded.
    EndClass {},
    /// Instructor: let a learner speak (publish audio), or take it back.
    /// The edge carrying her audio stops forwarding it at once when taken.
    AllowToSpeak {
        /// The learner.
        #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
        user_id: String,
        /// True to allow.
        allowed: bool,
    },
    /// Instructor: mute a learner's audio (enforced by the edges: she
    /// cannot unmute herself), or lift the mute.
    Mute {
        /// The learner.
        #[schemars(length(min = 1, max = NAME_CHARS_MAX))]
        user_id: String,
        /// True to mute.
        muted: bool,
    },
    /// Instructor: open the class's microphone (every learner may speak,
    /// in the main room and in breakout rooms), or close it.
    OpenMic {
        /// True to open.
        open: bool,
    },
    /// Liveness check; answered with `pong`.
    Ping {},
}

impl ClientBody {
    /// The `type` of this body.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Chat { .. } => "chat",
            Self::Hand { .. } => "hand",
            Self::Presence { .. } => "presence",
            Self::Broadcast { .. } => "broadcast",
            Self::DropAssignment { .. } => "drop_assignment",
            Self::Submit { .. } => "submit",
            Self::BreakoutStart { .. } => "breakout_start",
            Self::BreakoutMessage { .. } => "breakout_message",
            Self::BreakoutEnd {} => "breakout_end",
            Self::EndClass {} => "end_class",
            Self::AllowToSpeak { .. } => "allow_to_speak",
            Self::Mute { .. } => "mute",
            Self::OpenMic { .. } => "open_mic",
            Self::Ping {} => "ping",
        }
    }
}

/// A client frame: the body plus the fields every frame may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = close_frame_variants)]
pub struct ClientFrame {
    /// A request id the client chose, echoed as `re` in replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = REQUEST_ID_CHARS_MAX))]
    pub id: Option<String>,
    /// The class this is meant for; when given it must be the joined class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_id: Option<String>,
    /// The message.
    #[serde(flatten)]
    pub body: ClientBody,
}

/// Why a client frame was refused; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not an object with a string `type`.
    #[error("bad_message: {0}")]
    BadMessage(String),
    /// A `type` the protocol does not have.
    #[error("unknown_type: {0:?} is not a message type of protocol version 1")]
    UnknownType(String),
    /// Longer than the configured frame limit.
    #[error("message_too_large: {len} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl FrameError {
    /// The stable code sent in the error frame.
    pub fn code(&self) -> LiveErrorCode {
        match self {
            Self::BadMessage(_) => LiveErrorCode::BadMessage,
            Self::UnknownType(_) => LiveErrorCode::UnknownType,
            Self::TooLarge { .. } => LiveErrorCode::MessageTooLarge,
        }
    }
}

/// Parses one text frame, telling an unknown type from a malformed message.
///
/// # Errors
/// [`FrameError`] with the reason; nothing is forwarded then.
pub fn parse_client_frame(text: &str, bytes_max: usize) -> Result<ClientFrame, FrameError> {
    if text.len() > bytes_max {
        return Err(FrameError::TooLarge {
            len: text.len(),
            max: bytes_max,
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| FrameError::BadMessage(err.to_string()))?;
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            FrameError::BadMessage("a frame is an object with a string `type`".into())
        })?;
    if !CLIENT_TYPES.contains(&kind) {
        return Err(FrameError::UnknownType(kind.chars().take(64).collect()));
    }
    let frame: ClientFrame =
        serde_json::from_value(value).map_err(|err| FrameError::BadMessage(err.to_string()))?;
    if frame
        .id
        .as_ref()
        .is_some_and(|id| id.chars().count() > REQUEST_ID_CHARS_MAX)
    {
        return Err(FrameError::BadMessage(format!(
            "`id` is longer than {REQUEST_ID_CHARS_MAX} characters"
        )));
    }
    Ok(frame)
}

/// A breakout group as events and snapshots show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// Closed in the schema only: the server writes no other field, and stored
// copies are read as leniently as before.
#[schemars(deny_unknown_fields)]
pub struct Group {
    /// Name.
    pub name: String,
    /// User ids.
    pub members: Vec<String>,
}

/// What happened in a class; the payload of an event frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Someone's presence changed.
    Presence {
        /// User id.
        user_id: String,
        /// Display name.
        name: String,
        /// Role in the class.
        role: ClassRole,
        /// New presence.
        status: Presence,
    },
    /// A chat line.
    Chat {
        /// Author.
        user_id: String,
        /// Author's name.
        name: String,
        /// Text.
        text: String,
        /// The breakout group it was said in, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "String")]
        group: Option<String>,
    },
    /// A hand went up or down.
    Hand {
        /// Whose.
        user_id: String,
        /// Up?
        raised: bool,
    },
    /// The instructor's broadcast.
    Broadcast {
        /// Text.
        text: String,
        /// Snippet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "CodeSnippet")]
        code: Option<CodeSnippet>,
    },
    /// An assignment was dropped in. Learners get it without `tests`.
    Assignment {
        /// Its id within the class.
        assignment_id: String,
        /// Title.
        title: String,
        /// Language id.
        language: String,
        /// Instructions.
        instructions: String,
        /// Starter file.
        starter: String,
        /// How many tests it has.
        tests_count: u32,
        /// The tests (instructors and edge nodes only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Vec<LiveTest>")]
        tests: Option<Vec<LiveTest>>,
    },
    /// A learner's submission started running (instructors see the grid fill).
    SubmissionStarted {
        /// Assignment.
        assignment_id: String,
        /// Learner.
        user_id: String,
        /// Learner's name.
        name: String,
    },
    /// A learner's submission finished.
    Submission {
        /// Assignment.
        assignment_id: String,
        /// Learner.
        user_id: String,
        /// Learner's name.
        name: String,
        /// The sandbox run id (readable at `GET /api/v1/runs/{id}` on the
        /// node that ran it).
        run_id: String,
        /// The sandbox verdict.
        verdict: String,
        /// Tests passed.
        passed: u32,
        /// Tests run.
        total: u32,
        /// The region that ran it.
        region: String,
    },
    /// The class was split.
    BreakoutStarted {
        /// The groups.
        groups: Vec<Group>,
    },
    /// The instructor's message to one group.
    BreakoutMessage {
        /// Group.
        group: String,
        /// Text.
        text: String,
    },
    /// Everyone is back in the main room.
    BreakoutEnded {},
    /// The class is over.
    ClassEnded {},
    /// A learner was allowed to speak, or that was taken back.
    AllowToSpeak {
        /// The learner.
        user_id: String,
        /// Allowed now?
        allowed: bool,
    },
    /// A learner was muted by an instructor, or the mute was lifted.
    Mute {
        /// The learner.
        user_id: String,
        /// Muted now?
        muted: bool,
    },
    /// The class's microphone was opened or closed.
    OpenMic {
        /// Open now?
        open: bool,
    },
}

impl EventKind {
    /// The frame `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Presence { .. } => "presence",
            Self::Chat { .. } => "chat",
            Self::Hand { .. } => "hand",
            Self::Broadcast { .. } => "broadcast",
            Self::Assignment { .. } => "assignment",
            Self::SubmissionStarted { .. } => "submission_started",
            Self::Submission { .. } => "submission",
            Self::BreakoutStarted { .. } => "breakout_started",
            Self::BreakoutMessage { .. } => "breakout_message",
            Self::BreakoutEnded {} => "breakout_ended",
            Self::ClassEnded {} => "class_ended",
            Self::AllowToSpeak { .. } => "allow_to_speak",
            Self::Mute { .. } => "mute",
            Self::OpenMic { .. } => "open_mic",
        }
    }
}

/// Who may see an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Audience {
    /// Everyone in the class.
    #[serde(default)]
    pub all: bool,
    /// Every instructor.
    #[serde(default)]
    pub instructors: bool,
    /// These users.
    #[serde(default)]
    pub users: Vec<String>,
}

impl Audience {
    /// Everyone.
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Instructors and the given users.
    pub fn instructors_and(users: Vec<String>) -> Self {
        Self {
            all: false,
            instructors: true,
            users,
        }
    }

    /// Whether `user_id` in `role` sees it.
    pub fn includes(&self, user_id: &str, role: ClassRole) -> bool {
        self.all
            || (self.instructors && role == ClassRole::Instructor)
            || self.users.iter().any(|user| user == user_id)
    }
}

/// One event of a class, as stored, replicated and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The class's sequence number: 1, 2, 3, ... per class.
    pub seq: u64,
    /// When it happened, unix milliseconds (by the home node's clock).
    pub at_ms: u64,
    /// Who may see it.
    pub audience: Audience,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A server frame around an event, as sent: `{"v":1,"seq":..,"type":..}`.
#[derive(Serialize, JsonSchema)]
#[schemars(transform = close_frame_variants)]
struct EventFrame<'a> {
    /// The protocol version.
    #[schemars(schema_with = "protocol_version_schema")]
    v: u32,
    /// The class's sequence number of this event.
    seq: u64,
    /// When it happened, unix milliseconds (by the home node's clock).
    at_ms: u64,
    #[serde(flatten)]
    kind: &'a EventKind,
}

impl Event {
    /// The frame instructors receive (everything).
    pub fn frame_full(&self) -> String {
        serde_json::to_string(&EventFrame {
            v: PROTOCOL_VERSION,
            seq: self.seq,
            at_ms: self.at_ms,
            kind: &self.kind,
        })
        .unwrap_or_default()
    }

    /// The frame learners receive, when it differs from the full one
    /// (an assignment without its tests); `None` when it is the same.
    pub fn frame_learner(&self) -> Option<String> {
        match &self.kind {
            EventKind::Assignment { tests: Some(_), .. } => {
                let mut kind = self.kind.clone();
                if let EventKind::Assignment { tests, .. } = &mut kind {
                    *tests = None;
                }
                Some(
                    serde_json::to_string(&EventFrame {
                        v: PROTOCOL_VERSION,
                        seq: self.seq,
                        at_ms: self.at_ms,
                        kind: &kind,
                    })
                    .unwrap_or_default(),
                )
            }
            _ => None,
        }
    }
}

/// A reply to one session (not part of the class's event stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The join was accepted.
    Welcome {
        /// The class.
        class_id: String,
        /// Who joined.
        user_id: String,
        /// As what.
        role: ClassRole,
        /// The node serving this connection.
        node_id: String,
        /// Its region.
        region: String,
        /// The node the class is homed on.
        home_node_id: String,
        /// The class's ownership epoch.
        epoch: u64,
        /// True when the missed events follow (resume); false when a
        /// snapshot follows.
        resumed: bool,
        /// How many events are replayed.
        replayed: u64,
    },
    /// A request was refused; nothing was forwarded.
    Error {
        /// Stable code.
        #[schemars(with = "LiveErrorCode")]
        code: String,
        /// For people.
        message: String,
        /// The request's `id`, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "String")]
        re: Option<String>,
    },
    /// Answer to `ping`.
    Pong {
        /// The request's `id`, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "String")]
        re: Option<String>,
    },
}

impl Reply {
    /// An error reply.
    pub fn error(code: LiveErrorCode, message: impl Into<String>, re: Option<String>) -> Self {
        Self::Error {
            code: code.as_str().to_owned(),
            message: message.into(),
            re,
        }
    }
}

/// A reply frame as sent: `{"v":1,"seq":..,"type":..}`.
#[derive(Serialize, JsonSchema)]
#[schemars(transform = close_frame_variants)]
struct ReplyFrame<'a> {
    /// The protocol version.
    #[schemars(schema_with = "protocol_version_schema")]
    v: u32,
    /// The `seq` of the last event the session delivered.
    seq: u64,
    #[serde(flatten)]
    reply: &'a Reply,
}

/// A reply frame as sent: the reply with `v` and the session's `seq`.
pub fn reply_frame(reply: &Reply, seq: u64) -> String {
    serde_json::to_string(&ReplyFrame {
        v: PROTOCOL_VERSION,
        seq,
        reply,
    })
    .unwrap_or_default()
}

/// The snapshot frame, `{"v":1,"seq":..,"type":"snapshot","state":{..}}`,
/// as the node's session writes it from the hub's `Outbound::Snapshot`
/// (with `serde_json::json!`). Only its schema is used here: it puts the
/// frame beside the others in [`schema_document`].
#[derive(JsonSchema)]
#[schemars(transform = close_frame_variants)]
#[expect(
    dead_code,
    reason = "the node writes this frame; only the schema is derived here"
)]
struct SnapshotFrame {
    /// The protocol version.
    #[schemars(schema_with = "protocol_version_schema")]
    v: u32,
    /// The class's `seq` the snapshot reflects; continue from it.
    seq: u64,
    #[schemars(flatten)]
    body: SnapshotBody,
}

/// The one body of [`SnapshotFrame`], so that it carries a `type` as every
/// other frame does.
#[derive(JsonSchema)]
#[schemars(tag = "type", rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "the node writes this frame; only the schema is derived here"
)]
enum SnapshotBody {
    /// The whole state of the class as this session may see it (see
    /// `docs/live-protocol.md`).
    Snapshot {
        /// Roster, assignments, grid, breakout groups, recent feed, ended.
        state: serde_json::Map<String, serde_json::Value>,
    },
}

/// The schema of `v`: always [`PROTOCOL_VERSION`]. Public for frames that
/// another crate adds to the protocol (the edge's `media` frames).
pub fn protocol_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "const": PROTOCOL_VERSION })
}

/// The schema of a client's `presence` status: a client may only say it is
/// active or idle; joining and leaving are the server's to tell.
fn client_status_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": [Presence::Active, Presence::Idle],
    })
}

/// Makes a frame's schema one closed object per message type. A frame is
/// its own fields (`id` and `class_id`, or `v`, `seq` and `at_ms`) plus one
/// body flattened in by `type`, and nothing else: the client body denies
/// unknown fields, and the server writes no others. schemars renders the
/// flatten as the frame's properties beside a `oneOf` of bodies, where no
/// body may say "no other field" (it would refuse the frame's own); this
/// moves the frame's properties into every body and closes each.
///
/// Public for frames that another crate adds to the protocol.
///
/// # Panics
/// When the schema is not properties beside a `oneOf` (a type changed
/// shape; the schema tests then fail here, not in a validator).
pub fn close_frame_variants(schema: &mut Schema) {
    let frame = schema.ensure_object();
    let properties = frame
        .remove("properties")
        .and_then(|p| p.as_object().cloned())
        .expect("a frame has properties of its own");
    let required = match frame.remove("required") {
        Some(serde_json::Value::Array(required)) => required,
        _ => Vec::new(),
    };
    frame.remove("type");
    let Some(serde_json::Value::Array(bodies)) = frame.get_mut("oneOf") else {
        panic!("a frame flattens one body by `type` (a `oneOf`)");
    };
    for body in bodies {
        let body = body.as_object_mut().expect("a body is an object schema");
        let own = body
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}));
        let own = own.as_object_mut().expect("properties are an object");
        own.extend(properties.clone());
        let own_required = match body.remove("required") {
            Some(serde_json::Value::Array(own_required)) => own_required,
            _ => Vec::new(),
        };
        let all: Vec<_> = required.iter().cloned().chain(own_required).collect();
        body.insert("required".into(), all.into());
        body.insert("additionalProperties".into(), false.into());
    }
}

/// The JSON Schema (draft 2020-12) of every frame of the protocol, as the
/// text of `docs/live-protocol.schema.json` (a test holds the two equal):
/// `$defs` `client_frame` and `server_frame`, one closed object per `type`
/// each, and the types they share. Keys inside are in alphabetical order
/// (serde_json's map); the head of the document reads in its own order.
pub fn schema_document() -> String {
    schema_document_with(|_| (Vec::new(), Vec::new()))
}

/// [`schema_document`] with frames another crate adds to the protocol:
/// `extend` derives them with the document's generator (so shared types
/// land in `$defs` once) and returns the client frames and the server
/// frames, each a frame schema closed by [`close_frame_variants`]; their
/// bodies join `client_frame` and `server_frame` after this crate's own.
/// The edge adds its `media` frames this way, and the committed
/// `docs/live-protocol.schema.json` is that whole document.
pub fn schema_document_with(
    extend: impl FnOnce(&mut SchemaGenerator) -> (Vec<Schema>, Vec<Schema>),
) -> String {
    /// The document's head first, then what it defines.
    #[derive(Serialize)]
    struct Document {
        #[serde(rename = "$schema")]
        meta_schema: &'static str,
        #[serde(rename = "$id")]
        id: &'static str,
        title: &'static str,
        description: &'static str,
        #[serde(rename = "oneOf")]
        one_of: serde_json::Value,
        #[serde(rename = "$defs")]
        defs: serde_json::Map<String, serde_json::Value>,
    }

    // The deserialize contract (schemars' default): a client frame as the
    // server reads it. Server frames read the same, but for optional fields
    // the server skips rather than writes as null; those say so with
    // `#[schemars(with = ..)]`.
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut client = ClientFrame::json_schema(&mut generator);
    let mut server = Vec::new();
    let own = [
        ReplyFrame::json_schema(&mut generator),
        SnapshotFrame::json_schema(&mut generator),
        EventFrame::json_schema(&mut generator),
    ];
    let (more_client, more_server) = extend(&mut generator);
    for frame in own.iter().chain(&more_server) {
        if let Some(serde_json::Value::Array(bodies)) = frame.get("oneOf") {
            server.extend(bodies.iter().cloned());
        }
    }
    for frame in &more_client {
        if let Some(serde_json::Value::Array(bodies)) = frame.get("oneOf") {
            if let Some(serde_json::Value::Array(all)) = client.get_mut("oneOf") {
                all.extend(bodies.iter().cloned());
            }
        }
    }
    let mut defs = generator.take_definitions(true);
    defs.insert("client_frame".into(), client.to_value());
    defs.insert(
        "server_frame".into(),
        serde_json::json!({
            "description": "A server frame: a reply to this session (`welcome`, `error`, `pong`), \
                a snapshot, an event of the class, or the edge's own `media` frame; each carries `v` and `seq`.",
            "oneOf": server,
        }),
    );
    let document = Document {
        meta_schema: "https://json-schema.org/draft/2020-12/schema",
        id: "https://lyceum.dev/schemas/live-protocol-v1.json",
        title: "Lyceum live protocol, version 1",
        description: "Frames on the /api/v1/live WebSocket, derived from \
            actors/src/live/protocol.rs. See docs/live-protocol.md.",
        one_of: serde_json::json!([
            { "$ref": "#/$defs/client_frame" },
            { "$ref": "#/$defs/server_frame" },
        ]),
        defs,
    };
    let mut text = serde_json::to_string_pretty(&document).expect("JSON values always serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_are_told_from_malformed_frames() {
        assert_eq!(
            parse_client_frame(r#"{"type":"dance"}"#, 1024).map_err(|e| e.code()),
            Err(LiveErrorCode::UnknownType)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"chat"}"#, 1024).map_err(|e| e.code()),
            Err(LiveErrorCode::BadMessage)
        );
        assert_eq!(
            parse_client_frame("not json", 1024).map_err(|e| e.code()),
            Err(LiveErrorCode::BadMessage)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"chat","text":"hi","extra":1}"#, 1024)
                .map_err(|e| e.code()),
            Err(LiveErrorCode::BadMessage)
        );
        assert_eq!(
            parse_client_frame(
                &format!(r#"{{"type":"chat","text":"{}"}}"#, "a".repeat(100)),
                64
            )
            .map_err(|e| e.code()),
            Err(LiveErrorCode::MessageTooLarge)
        );
        let frame = parse_client_frame(
            r#"{"type":"chat","text":"hi","id":"7","class_id":"c"}"#,
            1024,
        )
        .expect("valid");
        assert_eq!(frame.id.as_deref(), Some("7"));
        assert_eq!(frame.body, ClientBody::Chat { text: "hi".into() });
    }

    #[test]
    fn every_client_type_parses_and_names_itself() {
        for (text, kind) in [
            (r#"{"type":"join","ticket":"t"}"#, "join"),
            (r#"{"type":"hand","raised":true}"#, "hand"),
            (r#"{"type":"presence","status":"idle"}"#, "presence"),
            (r#"{"type":"broadcast","text":"x"}"#, "broadcast"),
            (
                r#"{"type":"drop_assignment","assignment":{"title":"t","language":"python"}}"#,
                "drop_assignment",
            ),
            (
                r#"{"type":"submit","assignment_id":"a","source":"s"}"#,
                "submit",
            ),
            (r#"{"type":"breakout_start","groups":[]}"#, "breakout_start"),
            (
                r#"{"type":"breakout_message","group":"g","text":"x"}"#,
                "breakout_message",
            ),
            (r#"{"type":"breakout_end"}"#, "breakout_end"),
            (r#"{"type":"end_class"}"#, "end_class"),
            (r#"{"type":"ping"}"#, "ping"),
            (r#"{"type":"chat","text":""}"#, "chat"),
        ] {
            let frame = parse_client_frame(text, 4096).expect(text);
            assert_eq!(frame.body.kind(), kind);
            assert!(CLIENT_TYPES.contains(&kind));
            check_fits("client_frame", text);
            let framed = serde_json::to_string(&ClientFrame {
                id: Some("7".into()),
                class_id: Some("c".into()),
                body: frame.body,
            })
            .expect("json");
            check_fits("client_frame", &framed);
        }
    }

    #[test]
    fn learners_never_see_an_assignments_tests() {
        let event = Event {
            seq: 3,
            at_ms: 1,
            audience: Audience::all(),
            kind: EventKind::Assignment {
                assignment_id: "a1".into(),
                title: "Sum".into(),
                language: "python".into(),
                instructions: String::new(),
                starter: String::new(),
                tests_count: 1,
                tests: Some(vec![LiveTest {
                    name: "secret".into(),
                    stdin: "1 2".into(),
                    expected_stdout: "3".into(),
                }]),
            },
        };
        assert!(event.frame_full().contains("secret"));
        let learner = event.frame_learner().expect("differs");
        assert!(!learner.contains("secret"));
        assert!(learner.contains(r#""seq":3"#));
        assert!(learner.contains(r#""v":1"#));
    }

    /// The derived schema's variants, by `type`: (properties, required).
    fn schema_variants(which: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
        let schema: serde_json::Value = serde_json::from_str(&schema_document()).expect("json");
        schema["$defs"][which]["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|variant| {
                let kind = variant["properties"]["type"]["const"]
                    .as_str()
                    .expect("const type")
                    .to_owned();
                let props = variant["properties"]
                    .as_object()
                    .expect("properties")
                    .keys()
                    .cloned()
                    .collect();
                let required = variant["required"]
                    .as_array()
                    .expect("required")
                    .iter()
                    .map(|r| r.as_str().expect("name").to_owned())
                    .collect();
                (kind, props, required)
            })
            .collect()
    }

    #[test]
    fn the_schema_names_exactly_the_protocols_types() {
        let client: Vec<_> = schema_variants("client_frame")
            .into_iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(client, CLIENT_TYPES.to_vec());
        let server: Vec<_> = schema_variants("server_frame")
            .into_iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(server, SERVER_TYPES.to_vec());
    }

    /// `text` has every field the schema's variant of its `type` requires
    /// (in `which`, `client_frame` or `server_frame`), and no other.
    fn check_fits(which: &str, text: &str) {
        let variants = schema_variants(which);
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        let kind = value["type"].as_str().expect("type");
        let (_, props, required) = variants
            .iter()
            .find(|v| v.0 == kind)
            .unwrap_or_else(|| panic!("{kind} not in the schema"));
        for key in required {
            assert!(value.get(key).is_some(), "{kind} lacks {key}: {text}");
        }
        for key in value.as_object().expect("object").keys() {
            assert!(props.contains(key), "{kind} has {key} not in the schema");
        }
    }

    #[test]
    fn the_schemas_error_codes_are_exactly_the_live_codes() {
        let schema: serde_json::Value = serde_json::from_str(&schema_document()).expect("json");
        let codes: Vec<_> = schema["$defs"]["LiveErrorCode"]["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|code| code["const"].as_str().expect("const"))
            .collect();
        let all: Vec<_> = LiveErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, all);
        let error = schema_variants("server_frame")
            .into_iter()
            .find(|v| v.0 == "error")
            .expect("error frame");
        assert!(error.1.contains(&"code".to_owned()));
    }

    #[test]
    fn every_server_frame_we_write_fits_the_schema() {
        let check = |text: &str| check_fits("server_frame", text);
        let snippet = CodeSnippet {
            language: "python".into(),
            source: "print(1)".into(),
        };
        let kinds = vec![
            EventKind::Presence {
                user_id: "u".into(),
                name: "n".into(),
                role: ClassRole::Learner,
                status: Presence::Joined,
            },
            EventKind::Chat {
                user_id: "u".into(),
                name: "n".into(),
                text: "t".into(),
                group: Some("g".into()),
            },
            EventKind::Hand {
                user_id: "u".into(),
                raised: true,
            },
            EventKind::Broadcast {
                text: "t".into(),
                code: Some(snippet),
            },
            EventKind::Assignment {
                assignment_id: "a".into(),
                title: "t".into(),
                language: "python".into(),
                instructions: String::new(),
                starter: String::new(),
                tests_count: 0,
                tests: Some(Vec::new()),
            },
            EventKind::SubmissionStarted {
                assignment_id: "a".into(),
                user_id: "u".into(),
                name: "n".into(),
            },
            EventKind::Submission {
                assignment_id: "a".into(),
                user_id: "u".into(),
                name: "n".into(),
                run_id: "r".into(),
                verdict: "accepted".into(),
                passed: 1,
                total: 1,
                region: "eu-west".into(),
            },
            EventKind::BreakoutStarted {
                groups: vec![Group {
                    name: "g".into(),
                    members: vec!["u".into()],
                }],
            },
            EventKind::BreakoutMessage {
                group: "g".into(),
                text: "t".into(),
            },
            EventKind::BreakoutEnded {},
            EventKind::ClassEnded {},
        ];
        for kind in kinds {
            let event = Event {
                seq: 1,
                at_ms: 2,
                audience: Audience::all(),
                kind,
            };
            check(&event.frame_full());
            if let Some(learner) = event.frame_learner() {
                check(&learner);
            }
        }
        for reply in [
            Reply::Welcome {
                class_id: "c".into(),
                user_id: "u".into(),
                role: ClassRole::Instructor,
                node_id: "n".into(),
                region: "r".into(),
                home_node_id: "h".into(),
                epoch: 1,
                resumed: false,
                replayed: 0,
            },
            Reply::error(LiveErrorCode::BadMessage, "m", Some("1".into())),
            Reply::Pong { re: None },
        ] {
            check(&reply_frame(&reply, 5));
        }
        // As the node's session writes it (`node/src/edge/live/session.rs`).
        check(
            &serde_json::json!({
                "v": PROTOCOL_VERSION, "seq": 4, "type": "snapshot", "state": {"ended": false},
            })
            .to_string(),
        );
    }
}
