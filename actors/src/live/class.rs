//! A live class as data: what the classroom actor knows, changed only by
//! folding events. Commands are *decided* against the state (checked, and
//! turned into event kinds) and the resulting events are *folded* in; the
//! same fold rebuilds the state from a stored snapshot and log, and keeps a
//! replica in step, so the home node, a restarted home and a replica agree by
//! construction.
//!
//! Connections are not part of it: which sockets a user has open is
//! transport, kept by the actor. Presence is: it changes only through
//! `presence` events, which the actor emits when a user's first connection
//! opens and last one closes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::protocol::{
    AssignmentSpec, Audience, ClassRole, ClientBody, Event, EventKind, Group, LiveErrorCode,
    Presence, GROUPS_MAX, NAME_CHARS_MAX, SOURCE_BYTES_MAX, TESTS_MAX, TEXT_CHARS_MAX,
};

/// Most assignments one class may hold.
pub const ASSIGNMENTS_MAX: usize = 64;
/// Feed lines (chat, broadcasts, assignments, submissions, breakouts, the
/// end) a snapshot carries, so that a page that rejoins from a snapshot
/// shows the same feed as one that stayed.
pub const RECENT_MAX: usize = 100;

/// A command refused against the class's state; nothing is forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// Stable code for the error frame.
    pub code: LiveErrorCode,
    /// For people.
    pub message: String,
}

impl CommandError {
    fn new(code: LiveErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Who issued a command (from their verified ticket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Role in this class.
    pub role: ClassRole,
}

/// One person in the roster, with what attendance needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Display name.
    pub name: String,
    /// Role.
    pub role: ClassRole,
    /// Presence.
    pub presence: Presence,
    /// Hand raised?
    pub hand: bool,
    /// First joined, unix ms.
    pub joined_at_ms: u64,
    /// Last left, unix ms.
    pub left_at_ms: Option<u64>,
    /// Since when connected, when connected.
    pub present_since_ms: Option<u64>,
    /// Time connected before the current stretch.
    pub present_ms: u64,
    /// Submissions made.
    pub submissions: u32,
    /// Of which accepted.
    pub accepted: u32,
}

/// A dropped assignment, with its tests (never sent to learners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Id within the class (`a<seq>`).
    pub id: String,
    /// What the instructor dropped.
    pub spec: AssignmentSpec,
}

impl Assignment {
    /// The assignment (with its tests) an `assignment` event drops into
    /// the class; what the class folds and every node caches.
    pub fn dropped_by(event: &Event) -> Option<Self> {
        match &event.kind {
            EventKind::Assignment {
                assignment_id,
                title,
                language,
                instructions,
                starter,
                tests,
                ..
            } => Some(Self {
                id: assignment_id.clone(),
                spec: AssignmentSpec {
                    title: title.clone(),
                    language: language.clone(),
                    instructions: instructions.clone(),
                    starter: starter.clone(),
                    tests: tests.clone().unwrap_or_default(),
                },
            }),
            _ => None,
        }
    }
}

/// A learner's latest submission to one assignment (a cell of the grid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// `running` or the sandbox verdict.
    pub verdict: String,
    /// Tests passed.
    pub passed: u32,
    /// Tests run.
    pub total: u32,
    /// Run id, once finished.
    pub run_id: Option<String>,
    /// Submissions so far.
    pub attempts: u32,
}

/// A feed line kept for snapshots, with who may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    /// Who may see it.
    pub audience: Audience,
    /// The event.
    pub kind: EventKind,
    /// Its sequence number.
    pub seq: u64,
}

/// Who may speak in a class and who is muted: class state, decided here
/// and enforced by every edge's SFU for the peers it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioRights {
    /// Every learner may speak.
    #[serde(default)]
    pub open_mic: bool,
    /// Learners allowed to speak one by one.
    #[serde(default)]
    pub allowed: BTreeSet<String>,
    /// Learners an instructor muted.
    #[serde(default)]
    pub muted: BTreeSet<String>,
}

impl AudioRights {
    /// Whether a learner may publish (instructors always may).
    pub fn may_speak(&self, user_id: &str) -> bool {
        self.open_mic || self.allowed.contains(user_id)
    }

    /// Applies an audio event; other events leave it as it was. True when
    /// it was one.
    pub fn apply(&mut self, kind: &EventKind) -> bool {
        match kind {
            EventKind::AllowToSpeak { user_id, allowed } => {
                if *allowed {
                    self.allowed.insert(user_id.clone());
                } else {
                    self.allowed.remove(user_id);
                }
            }
            EventKind::Mute { user_id, muted } => {
                if *muted {
                    self.muted.insert(user_id.clone());
                } else {
                    self.muted.remove(user_id);
                }
            }
            EventKind::OpenMic { open } => self.open_mic = *open,
            _ => return false,
        }
        true
    }
}

/// What an edge needs of a class to steer its audio: the rights and the
/// breakout split, as of the class's `seq`. The classroom hands it to each
/// node with a welcome; the node's hub keeps it up to date from the events
/// it delivers (see `hub::Registry::audio`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassAudio {
    /// The class's `seq` this reflects.
    pub seq: u64,
    /// Who may speak and who is muted.
    pub rights: AudioRights,
    /// The breakout groups, while split.
    pub breakout: Option<Vec<Group>>,
}

impl ClassAudio {
    /// Applies an event newer than `seq`; true when the view changed.
    /// Older events (a replay to one session) are skipped.
    pub fn apply(&mut self, event: &Event) -> bool {
        if event.seq <= self.seq {
            return false;
        }
        self.seq = event.seq;
        match &event.kind {
            EventKind::BreakoutStarted { groups } => {
                self.breakout = Some(groups.clone());
                true
            }
            EventKind::BreakoutEnded {} => self.breakout.take().is_some(),
            kind => self.rights.apply(kind),
        }
    }

    /// The breakout group `user_id` is in, while split.
    pub fn group_of(&self, user_id: &str) -> Option<&str> {
        self.breakout
            .as_ref()?
            .iter()
            .find(|group| group.members.iter().any(|member| member == user_id))
            .map(|group| group.name.as_str())
    }
}

/// Everything a class is, rebuilt by folding its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassState {
    /// Class id (the live unit's id).
    pub class_id: String,
    /// Tenant that owns it.
    pub tenant_id: String,
    /// The last folded event's sequence number.
    pub seq: u64,
    /// When the class started, unix ms.
    pub started_at_ms: u64,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// The roster, by user id.
    pub members: BTreeMap<String, Member>,
    /// Dropped assignments, in order.
    pub assignments: Vec<Assignment>,
    /// The submission grid: assignment id → user id → cell.
    pub grid: BTreeMap<String, BTreeMap<String, Cell>>,
    /// The breakout split, while one is on.
    pub breakout: Option<Vec<Group>>,
    /// The last [`RECENT_MAX`] feed lines.
    pub recent: VecDeque<Recent>,
    /// Who may speak and who is muted.
    #[serde(default)]
    pub audio: AudioRights,
}

/// What a snapshot keeps of an event for the feed, or `None` for events
/// the feed does not show (presence, hands, a run starting: the roster and
/// the grid carry those). An assignment is kept without its tests, so a
/// snapshot can never hand hidden tests to a learner; the snapshot's
/// `assignments` carry them for instructors.
fn feed_line(kind: &EventKind) -> Option<EventKind> {
    match kind {
        EventKind::Assignment { .. } => {
            let mut kind = kind.clone();
            if let EventKind::Assignment { tests, .. } = &mut kind {
                *tests = None;
            }
            Some(kind)
        }
        EventKind::Chat { .. }
        | EventKind::Broadcast { .. }
        | EventKind::Submission { .. }
        | EventKind::BreakoutStarted { .. }
        | EventKind::BreakoutMessage { .. }
        | EventKind::BreakoutEnded {}
        | EventKind::ClassEnded {} => Some(kind.clone()),
        EventKind::Presence { .. }
        | EventKind::Hand { .. }
        | EventKind::SubmissionStarted { .. }
        | EventKind::AllowToSpeak { .. }
        | EventKind::Mute { .. }
        | EventKind::OpenMic { .. } => None,
    }
}

/// One attendee's record at the end of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    /// User id.
    pub user_id: String,
    /// `learner` or `instructor`.
    pub class_role: ClassRole,
    /// First joined, unix ms.
    pub joined_at_ms: u64,
    /// Last left, unix ms (the end of class if still connected).
    pub left_at_ms: u64,
    /// Seconds connected in all.
    pub seconds_present: u64,
    /// Submissions made.
    pub submissions: u32,
    /// Of which accepted.
    pub accepted: u32,
}

fn check_text(field: &str, text: &str, empty_ok: bool) -> Result<(), CommandError> {
    if !empty_ok && text.trim().is_empty() {
        return Err(CommandError::new(
            LiveErrorCode::BadMessage,
            format!("`{field}` is empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > TEXT_CHARS_MAX {
        return Err(CommandError::new(
            LiveErrorCode::MessageTooLarge,
            format!("`{field}` has {chars} characters; the limit is {TEXT_CHARS_MAX}"),
        ));
    }
    Ok(())
}

fn check_name(field: &str, text: &str) -> Result<(), CommandError> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > NAME_CHARS_MAX {
        return Err(CommandError::new(
            LiveErrorCode::BadMessage,
            format!("`{field}` must have 1 to {NAME_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

fn check_source(field: &str, text: &str) -> Result<(), CommandError> {
    if text.len() > SOURCE_BYTES_MAX {
        return Err(CommandError::new(
            LiveErrorCode::MessageTooLarge,
            format!(
                "`{field}` has {} bytes; the limit is {SOURCE_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    Ok(())
}

impl ClassState {
    /// A class that has not started yet: no events, nobody in it.
    pub fn new(class_id: &str, tenant_id: &str, started_at_ms: u64) -> Self {
        Self {
            class_id: class_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            seq: 0,
            started_at_ms,
            ended_at_ms: None,
            members: BTreeMap::new(),
            assignments: Vec::new(),
            grid: BTreeMap::new(),
            breakout: None,
            recent: VecDeque::new(),
            audio: AudioRights::default(),
        }
    }

    /// Whether the class has ended.
    pub fn ended(&self) -> bool {
        self.ended_at_ms.is_some()
    }

    /// The group `user_id` is in, while split.
    pub fn group_of(&self, user_id: &str) -> Option<&Group> {
        self.breakout
            .as_ref()?
            .iter()
            .find(|group| group.members.iter().any(|member| member == user_id))
    }

    /// An assignment by id.
    pub fn assignment(&self, id: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.id == id)
    }

    /// The audience of something said in the main room while split: the
    /// instructors and everyone in no group. Everyone when not split.
    fn main_room(&self) -> Audience {
        match &self.breakout {
            None => Audience::all(),
            Some(_) => Audience::instructors_and(
                self.members
                    .iter()
                    .filter(|(id, m)| m.role == ClassRole::Learner && self.group_of(id).is_none())
                    .map(|(id, _)| id.clone())
                    .collect(),
            ),
        }
    }

    /// The presence event for a user whose first connection just opened;
    /// `None` when they were already connected.
    pub fn arrive(&self, who: &Participant) -> Option<(Audience, EventKind)> {
        let already = self
            .members
            .get(&who.user_id)
            .is_some_and(|m| m.present_since_ms.is_some());
        (!already).then(|| {
            (
                Audience::all(),
                EventKind::Presence {
                    user_id: who.user_id.clone(),
                    name: who.name.clone(),
                    role: who.role,
                    status: Presence::Joined,
                },
            )
        })
    }

    /// The presence event for a user whose last connection just closed.
    pub fn depart(&self, user_id: &str) -> Option<(Audience, EventKind)> {
        let member = self.members.get(user_id)?;
        member.present_since_ms.is_some().then(|| {
            (
                Audience::all(),
                EventKind::Presence {
                    user_id: user_id.to_owned(),
                    name: member.name.clone(),
                    role: member.role,
                    status: Presence::Left,
                },
            )
        })
    }

    /// Checks a client command and says what events it makes.
    ///
    /// # Errors
    /// [`CommandError`] with a stable code when it is not allowed now.
    pub fn decide(
        &self,
        who: &Participant,
        body: &ClientBody,
    ) -> Result<Vec<(Audience, EventKind)>, CommandError> {
        if self.ended() {
            return Err(CommandError::new(
                LiveErrorCode::ClassEnded,
                "the class has ended",
            ));
        }
        let instructor_only = |what: &str| -> Result<(), CommandError> {
            if who.role == ClassRole::Instructor {
                Ok(())
            } else {
                Err(CommandError::new(
                    LiveErrorCode::Forbidden,
                    format!("only an instructor may {what}"),
                ))
            }
        };
        let event = match body {
            ClientBody::Chat { text } => {
                check_text("text", text, false)?;
                let (audience, group) = match (who.role, self.group_of(&who.user_id)) {
                    (ClassRole::Learner, Some(group)) => (
                        Audience::instructors_and(group.members.clone()),
                        Some(group.name.clone()),
                    ),
                    (ClassRole::Learner, None) => (self.main_room(), None),
                    (ClassRole::Instructor, _) => (Audience::all(), None),
                };
                (
                    audience,
                    EventKind::Chat {
                        user_id: who.user_id.clone(),
                        name: who.name.clone(),
                        text: text.clone(),
                        group,
                    },
                )
            }
            ClientBody::Hand { raised } => {
                let current = self.members.get(&who.user_id).is_some_and(|m| m.hand);
                if current == *raised {
                    return Ok(Vec::new());
                }
                (
                    Audience::all(),
                    EventKind::Hand {
                        user_id: who.user_id.clone(),
                        raised: *raised,
                    },
                )
            }
            ClientBody::Presence { status } => {
                if !matches!(status, Presence::Active | Presence::Idle) {
                    return Err(CommandError::new(
                        LiveErrorCode::BadMessage,
                        "`status` is `active` or `idle`",
                    ));
                }
                if self
                    .members
                    .get(&who.user_id)
                    .is_some_and(|m| m.presence == *status)
                {
                    return Ok(Vec::new());
                }
                (
                    Audience::all(),
                    EventKind::Presence {
                        user_id: who.user_id.clone(),
                        name: who.name.clone(),
                        role: who.role,
                        status: *status,
                    },
                )
            }
            ClientBody::Broadcast { text, code } => {
                instructor_only("broadcast")?;
                check_text("text", text, code.is_some())?;
                if let Some(code) = code {
                    check_name("code.language", &code.language)?;
                    check_source("code.source", &code.source)?;
                }
                (
                    Audience::all(),
                    EventKind::Broadcast {
                        text: text.clone(),
                        code: code.clone(),
                    },
                )
            }
            ClientBody::DropAssignment { assignment } => {
                instructor_only("drop an assignment")?;
                check_name("assignment.title", &assignment.title)?;
                check_name("assignment.language", &assignment.language)?;
                check_text("assignment.instructions", &assignment.instructions, true)?;
                check_source("assignment.starter", &assignment.starter)?;
                if assignment.tests.len() > TESTS_MAX {
                    return Err(CommandError::new(
                        LiveErrorCode::BadMessage,
                        format!("an assignment has at most {TESTS_MAX} tests"),
                    ));
                }
                for test in &assignment.tests {
                    check_name("tests[].name", &test.name)?;
                    check_source("tests[].stdin", &test.stdin)?;
                    check_source("tests[].expected_stdout", &test.expected_stdout)?;
                }
                if self.assignments.len() >= ASSIGNMENTS_MAX {
                    return Err(CommandError::new(
                        LiveErrorCode::TooManyAssignments,
                        format!("a class holds at most {ASSIGNMENTS_MAX} assignments"),
                    ));
                }
                (
                    Audience::all(),
                    EventKind::Assignment {
                        assignment_id: format!("a{}", self.seq + 1),
                        title: assignment.title.clone(),
                        language: assignment.language.clone(),
                        instructions: assignment.instructions.clone(),
                        starter: assignment.starter.clone(),
                        tests_count: u32::try_from(assignment.tests.len()).unwrap_or(u32::MAX),
                        tests: Some(assignment.tests.clone()),
                    },
                )
            }
            ClientBody::BreakoutStart { groups } => {
                instructor_only("start breakout rooms")?;
                if groups.is_empty() || groups.len() > GROUPS_MAX {
                    return Err(CommandError::new(
                        LiveErrorCode::BadGroup,
                        format!("give 1 to {GROUPS_MAX} groups"),
                    ));
                }
                let mut names = std::collections::BTreeSet::new();
                let mut seen = std::collections::BTreeSet::new();
                for group in groups {
                    check_name("groups[].name", &group.name)?;
                    if !names.insert(group.name.as_str()) {
                        return Err(CommandError::new(
                            LiveErrorCode::BadGroup,
                            format!("group {:?} is named twice", group.name),
                        ));
                    }
                    for member in &group.members {
                        match self.members.get(member) {
                            Some(m) if m.role == ClassRole::Learner => {}
                            _ => {
                                return Err(CommandError::new(
                                    LiveErrorCode::BadGroup,
                                    format!("{member:?} is not a learner of this class"),
                                ))
                            }
                        }
                        if !seen.insert(member.as_str()) {
                            return Err(CommandError::new(
                                LiveErrorCode::BadGroup,
                                format!("{member:?} is in two groups"),
                            ));
                        }
                    }
                }
                (
                    Audience::all(),
                    EventKind::BreakoutStarted {
                        groups: groups
                            .iter()
                            .map(|g| Group {
                                name: g.name.clone(),
                                members: g.members.clone(),
                            })
                            .collect(),
                    },
                )
            }
            ClientBody::BreakoutMessage { group, text } => {
                instructor_only("message a group")?;
                check_text("text", text, false)?;
                let target = self
                    .breakout
                    .as_ref()
                    .and_then(|groups| groups.iter().find(|g| &g.name == group))
                    .ok_or_else(|| {
                        CommandError::new(
                            LiveErrorCode::BadGroup,
                            format!("no breakout group {group:?}"),
                        )
                    })?;
                (
                    Audience::instructors_and(target.members.clone()),
                    EventKind::BreakoutMessage {
                        group: group.clone(),
                        text: text.clone(),
                    },
                )
            }
            ClientBody::BreakoutEnd {} => {
                instructor_only("end breakout rooms")?;
                if self.breakout.is_none() {
                    return Err(CommandError::new(
                        LiveErrorCode::BadGroup,
                        "no breakout rooms are open",
                    ));
                }
                (Audience::all(), EventKind::BreakoutEnded {})
            }
            ClientBody::EndClass {} => {
                instructor_only("end the class")?;
                (Audience::all(), EventKind::ClassEnded {})
            }
            ClientBody::AllowToSpeak { user_id, allowed } => {
                instructor_only("let someone speak")?;
                self.check_learner(user_id)?;
                if self.audio.allowed.contains(user_id) == *allowed {
                    return Ok(Vec::new());
                }
                let mut events = vec![(
                    Audience::all(),
                    EventKind::AllowToSpeak {
                        user_id: user_id.clone(),
                        allowed: *allowed,
                    },
                )];
                // Her raised hand was the request; it is answered.
                if *allowed && self.members.get(user_id).is_some_and(|m| m.hand) {
                    events.push((
                        Audience::all(),
                        EventKind::Hand {
                            user_id: user_id.clone(),
                            raised: false,
                        },
                    ));
                }
                return Ok(events);
            }
            ClientBody::Mute { user_id, muted } => {
                instructor_only("mute someone")?;
                self.check_learner(user_id)?;
                if self.audio.muted.contains(user_id) == *muted {
                    return Ok(Vec::new());
                }
                (
                    Audience::all(),
                    EventKind::Mute {
                        user_id: user_id.clone(),
                        muted: *muted,
                    },
                )
            }
            ClientBody::OpenMic { open } => {
                instructor_only("open the microphone")?;
                if self.audio.open_mic == *open {
                    return Ok(Vec::new());
                }
                (Audience::all(), EventKind::OpenMic { open: *open })
            }
            ClientBody::Join { .. } | ClientBody::Submit { .. } | ClientBody::Ping {} => {
                return Err(CommandError::new(
                    LiveErrorCode::BadMessage,
                    format!("{} is not a class command", body.kind()),
                ))
            }
        };
        Ok(vec![event])
    }

    /// The audio view of the class now, for a node that serves it.
    pub fn audio_view(&self) -> ClassAudio {
        ClassAudio {
            seq: self.seq,
            rights: self.audio.clone(),
            breakout: self.breakout.clone(),
        }
    }

    /// Refuses a user id that is no learner of the class (one who was ever
    /// in the roster counts, present or not).
    fn check_learner(&self, user_id: &str) -> Result<(), CommandError> {
        match self.members.get(user_id) {
            Some(member) if member.role == ClassRole::Learner => Ok(()),
            _ => Err(CommandError::new(
                LiveErrorCode::UnknownUser,
                format!("{user_id:?} is not a learner of this class"),
            )),
        }
    }

    /// The events of a submission starting to run: the learner must be in
    /// the class and the assignment must exist.
    ///
    /// # Errors
    /// `class_ended`, `forbidden` (instructors don't submit) or
    /// `unknown_assignment`.
    pub fn check_submission(
        &self,
        who: &Participant,
        assignment_id: &str,
    ) -> Result<&Assignment, CommandError> {
        if self.ended() {
            return Err(CommandError::new(
                LiveErrorCode::ClassEnded,
                "the class has ended",
            ));
        }
        if who.role != ClassRole::Learner {
            return Err(CommandError::new(
                LiveErrorCode::Forbidden,
                "only learners submit",
            ));
        }
        self.assignment(assignment_id).ok_or_else(|| {
            CommandError::new(
                LiveErrorCode::UnknownAssignment,
                format!("no assignment {assignment_id:?} in this class"),
            )
        })
    }

    /// Applies one event. Events arrive in sequence; anything else is a bug
    /// in whoever produced the log.
    pub fn fold(&mut self, event: &Event) {
        assert_eq!(
            event.seq,
            self.seq + 1,
            "class {} folded event {} after {}",
            self.class_id,
            event.seq,
            self.seq
        );
        self.seq = event.seq;
        let at = event.at_ms;
        if let Some(kind) = feed_line(&event.kind) {
            self.recent.push_back(Recent {
                audience: event.audience.clone(),
                kind,
                seq: event.seq,
            });
            while self.recent.len() > RECENT_MAX {
                self.recent.pop_front();
            }
        }
        match &event.kind {
            EventKind::Presence {
                user_id,
                name,
                role,
                status,
            } => {
                let member = self
                    .members
                    .entry(user_id.clone())
                    .or_insert_with(|| Member {
                        name: name.clone(),
                        role: *role,
                        presence: Presence::Left,
                        hand: false,
                        joined_at_ms: at,
                        left_at_ms: None,
                        present_since_ms: None,
                        present_ms: 0,
                        submissions: 0,
                        accepted: 0,
                    });
                member.name.clone_from(name);
                member.presence = *status;
                match status {
                    Presence::Joined => {
                        member.present_since_ms.get_or_insert(at);
                    }
                    Presence::Left => {
                        if let Some(since) = member.present_since_ms.take() {
                            member.present_ms += at.saturating_sub(since);
                        }
                        member.left_at_ms = Some(at);
                        member.hand = false;
                    }
                    Presence::Active | Presence::Idle => {}
                }
            }
            EventKind::Hand { user_id, raised } => {
                if let Some(member) = self.members.get_mut(user_id) {
                    member.hand = *raised;
                }
            }
            EventKind::Chat { .. } | EventKind::Broadcast { .. } => {}
            EventKind::Assignment { .. } => {
                self.assignments.extend(Assignment::dropped_by(event));
            }
            EventKind::SubmissionStarted {
                assignment_id,
                user_id,
                ..
            } => {
                let cell = self
                    .grid
                    .entry(assignment_id.clone())
                    .or_default()
                    .entry(user_id.clone())
                    .or_insert_with(|| Cell {
                        verdict: String::new(),
                        passed: 0,
                        total: 0,
                        run_id: None,
                        attempts: 0,
                    });
                cell.verdict = "running".into();
                cell.attempts += 1;
                if let Some(member) = self.members.get_mut(user_id) {
                    member.submissions += 1;
                }
            }
            EventKind::Submission {
                assignment_id,
                user_id,
                run_id,
                verdict,
                passed,
                total,
                ..
            } => {
                let cell = self
                    .grid
                    .entry(assignment_id.clone())
                    .or_default()
                    .entry(user_id.clone())
                    .or_insert_with(|| Cell {
                        verdict: String::new(),
                        passed: 0,
                        total: 0,
                        run_id: None,
                        attempts: 1,
                    });
                cell.verdict.clone_from(verdict);
                cell.passed = *passed;
                cell.total = *total;
                cell.run_id = Some(run_id.clone());
                if verdict == "accepted" {
                    if let Some(member) = self.members.get_mut(user_id) {
                        member.accepted += 1;
                    }
                }
            }
            EventKind::BreakoutStarted { groups } => self.breakout = Some(groups.clone()),
            EventKind::BreakoutMessage { .. } => {}
            EventKind::BreakoutEnded {} => self.breakout = None,
            EventKind::AllowToSpeak { .. } | EventKind::Mute { .. } | EventKind::OpenMic { .. } => {
                self.audio.apply(&event.kind);
            }
            EventKind::ClassEnded {} => {
                self.ended_at_ms = Some(at);
                for member in self.members.values_mut() {
                    if let Some(since) = member.present_since_ms.take() {
                        member.present_ms += at.saturating_sub(since);
                        member.left_at_ms = Some(at);
                    }
                }
            }
        }
    }

    /// What a user sees on joining afresh (or resuming from too far back):
    /// the roster, the assignments (learners without tests), the grid
    /// (learners only their own row), the breakout split (learners only their
    /// own group) and the recent feed lines meant for them.
    pub fn snapshot_for(&self, user_id: &str, role: ClassRole) -> serde_json::Value {
        let instructor = role == ClassRole::Instructor;
        let roster: Vec<_> = self
            .members
            .iter()
            .map(|(id, m)| {
                serde_json::json!({
                    "user_id": id, "name": m.name, "role": m.role,
                    "status": m.presence, "hand": m.hand,
                })
            })
            .collect();
        let assignments: Vec<_> = self
            .assignments
            .iter()
            .map(|a| {
                let mut value = serde_json::json!({
                    "assignment_id": a.id, "title": a.spec.title,
                    "language": a.spec.language, "instructions": a.spec.instructions,
                    "starter": a.spec.starter, "tests_count": a.spec.tests.len(),
                });
                if instructor {
                    value["tests"] = serde_json::json!(a.spec.tests);
                }
                value
            })
            .collect();
        let grid: BTreeMap<&String, BTreeMap<&String, &Cell>> = self
            .grid
            .iter()
            .map(|(assignment, row)| {
                (
                    assignment,
                    row.iter()
                        .filter(|(user, _)| instructor || user.as_str() == user_id)
                        .collect(),
                )
            })
            .collect();
        let breakout = self.breakout.as_ref().map(|groups| {
            groups
                .iter()
                .filter(|g| instructor || g.members.iter().any(|m| m == user_id))
                .cloned()
                .collect::<Vec<_>>()
        });
        let recent: Vec<_> = self
            .recent
            .iter()
            .filter(|r| r.audience.includes(user_id, role))
            .map(|r| {
                let mut value = serde_json::to_value(&r.kind).unwrap_or_default();
                value["seq"] = serde_json::json!(r.seq);
                value
            })
            .collect();
        serde_json::json!({
            "class_id": self.class_id,
            "started_at_ms": self.started_at_ms,
            "ended": self.ended(),
            "roster": roster,
            "assignments": assignments,
            "grid": grid,
            "breakout": breakout,
            "recent": recent,
            "audio": self.audio,
        })
    }

    /// Everyone who attended, as of `now_ms` (the end of class).
    pub fn attendance(&self, now_ms: u64) -> Vec<Attendee> {
        self.members
            .iter()
            .map(|(id, m)| {
                let open = m
                    .present_since_ms
                    .map_or(0, |since| now_ms.saturating_sub(since));
                Attendee {
                    user_id: id.clone(),
                    class_role: m.role,
                    joined_at_ms: m.joined_at_ms,
                    left_at_ms: if m.present_since_ms.is_some() {
                        now_ms
                    } else {
                        m.left_at_ms.unwrap_or(now_ms)
                    },
                    seconds_present: (m.present_ms + open) / 1000,
                    submissions: m.submissions,
                    accepted: m.accepted,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::protocol::{GroupSpec, LiveTest};

    fn person(id: &str, role: ClassRole) -> Participant {
        Participant {
            user_id: id.into(),
            name: format!("{id}@example.com"),
            role,
        }
    }

    struct Class {
        state: ClassState,
        log: Vec<Event>,
        now: u64,
    }

    impl Class {
        fn new() -> Self {
            Self {
                state: ClassState::new("c1", "t1", 0),
                log: Vec::new(),
                now: 1_000,
            }
        }
        fn emit(&mut self, events: Vec<(Audience, EventKind)>) {
            for (audience, kind) in events {
                self.now += 1_000;
                let event = Event {
                    seq: self.state.seq + 1,
                    at_ms: self.now,
                    audience,
                    kind,
                };
                self.state.fold(&event);
                self.log.push(event);
            }
        }
        fn arrive(&mut self, who: &Participant) {
            let event = self.state.arrive(who);
            self.emit(event.into_iter().collect());
        }
        fn say(&mut self, who: &Participant, body: ClientBody) -> Result<(), CommandError> {
            let events = self.state.decide(who, &body)?;
            self.emit(events);
            Ok(())
        }
    }

    #[test]
    fn learners_cannot_do_what_instructors_do() {
        let mut class = Class::new();
        let learner = person("l1", ClassRole::Learner);
        class.arrive(&learner);
        for body in [
            ClientBody::Broadcast {
                text: "x".into(),
                code: None,
            },
            ClientBody::EndClass {},
            ClientBody::BreakoutEnd {},
            ClientBody::DropAssignment {
                assignment: AssignmentSpec {
                    title: "t".into(),
                    language: "python".into(),
                    instructions: String::new(),
                    starter: String::new(),
                    tests: Vec::new(),
                },
            },
        ] {
            assert_eq!(
                class.say(&learner, body).map_err(|e| e.code),
                Err(LiveErrorCode::Forbidden)
            );
        }
    }

    #[test]
    fn audio_rights_are_the_instructors_to_give_and_every_node_can_follow_them() {
        let mut class = Class::new();
        let teacher = person("t", ClassRole::Instructor);
        let learner = person("l1", ClassRole::Learner);
        class.arrive(&teacher);
        class.arrive(&learner);
        // A node's view starts from a welcome and follows the events.
        let mut view = class.state.audio_view();

        // Learners cannot give rights, not even to themselves.
        for body in [
            ClientBody::AllowToSpeak {
                user_id: "l1".into(),
                allowed: true,
            },
            ClientBody::Mute {
                user_id: "l1".into(),
                muted: false,
            },
            ClientBody::OpenMic { open: true },
        ] {
            assert_eq!(
                class.say(&learner, body).map_err(|e| e.code),
                Err(LiveErrorCode::Forbidden)
            );
        }
        // Only learners of the class can be named.
        for user in ["nobody", "t"] {
            assert_eq!(
                class
                    .say(
                        &teacher,
                        ClientBody::Mute {
                            user_id: user.into(),
                            muted: true,
                        },
                    )
                    .map_err(|e| e.code),
                Err(LiveErrorCode::UnknownUser)
            );
        }

        // Raise hand, be allowed: the hand comes down with the answer.
        class
            .say(&learner, ClientBody::Hand { raised: true })
            .expect("hand");
        let before = class.log.len();
        class
            .say(
                &teacher,
                ClientBody::AllowToSpeak {
                    user_id: "l1".into(),
                    allowed: true,
                },
            )
            .expect("allow");
        let kinds: Vec<_> = class.log[before..].iter().map(|e| e.kind.kind()).collect();
        assert_eq!(kinds, ["allow_to_speak", "hand"]);
        assert!(class.state.audio.may_speak("l1"));
        assert!(!class.state.members["l1"].hand);
        // Saying it again changes nothing and makes no event.
        let before = class.log.len();
        class
            .say(
                &teacher,
                ClientBody::AllowToSpeak {
                    user_id: "l1".into(),
                    allowed: true,
                },
            )
            .expect("again");
        assert_eq!(class.log.len(), before);

        class
            .say(
                &teacher,
                ClientBody::Mute {
                    user_id: "l1".into(),
                    muted: true,
                },
            )
            .expect("mute");
        class
            .say(&teacher, ClientBody::OpenMic { open: true })
            .expect("open");
        let snapshot = class.state.snapshot_for("l1", ClassRole::Learner);
        assert_eq!(
            snapshot["audio"],
            serde_json::json!({"open_mic": true, "allowed": ["l1"], "muted": ["l1"]})
        );

        // The node's view, fed the same events (and a replayed old one),
        // ends where the class is.
        let mut changed = 0;
        for event in class.log.iter().chain(class.log.first()) {
            changed += usize::from(view.apply(event));
        }
        assert_eq!(changed, 3, "allow, mute and open changed the view");
        assert_eq!(view, class.state.audio_view());
    }

    #[test]
    fn breakout_chat_stays_in_its_group_and_snapshots_follow_the_split() {
        let mut class = Class::new();
        let teacher = person("i", ClassRole::Instructor);
        let (a, b, c) = (
            person("a", ClassRole::Learner),
            person("b", ClassRole::Learner),
            person("c", ClassRole::Learner),
        );
        for who in [&teacher, &a, &b, &c] {
            class.arrive(who);
        }
        assert_eq!(
            class
                .say(
                    &teacher,
                    ClientBody::BreakoutStart {
                        groups: vec![
                            GroupSpec {
                                name: "g1".into(),
                                members: vec!["a".into()],
                            },
                            GroupSpec {
                                name: "g2".into(),
                                members: vec!["a".into()],
                            },
                        ],
                    },
                )
                .map_err(|e| e.code),
            Err(LiveErrorCode::BadGroup)
        );
        class
            .say(
                &teacher,
                ClientBody::BreakoutStart {
                    groups: vec![GroupSpec {
                        name: "g1".into(),
                        members: vec!["a".into(), "b".into()],
                    }],
                },
            )
            .expect("split");
        class
            .say(&a, ClientBody::Chat { text: "hi".into() })
            .expect("chat");
        let chat = class.log.last().expect("event");
        assert!(chat.audience.includes("b", ClassRole::Learner));
        assert!(chat.audience.includes("i", ClassRole::Instructor));
        assert!(!chat.audience.includes("c", ClassRole::Learner));
        class
            .say(
                &c,
                ClientBody::Chat {
                    text: "alone".into(),
                },
            )
            .expect("chat");
        let main = class.log.last().expect("event");
        assert!(main.audience.includes("c", ClassRole::Learner));
        assert!(!main.audience.includes("a", ClassRole::Learner));
        let snap = class.state.snapshot_for("c", ClassRole::Learner);
        assert_eq!(snap["breakout"], serde_json::json!([]));
        // c's feed: the split and her own line, not g1's chat.
        let types = |snap: &serde_json::Value| -> Vec<(String, String)> {
            snap["recent"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|l| {
                            let text = l["text"].as_str().unwrap_or_default().to_owned();
                            (l["type"].as_str().unwrap_or_default().to_owned(), text)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let line = |t: &str, text: &str| (t.to_owned(), text.to_owned());
        assert_eq!(
            types(&snap),
            [line("breakout_started", ""), line("chat", "alone")]
        );
        assert_eq!(
            types(&class.state.snapshot_for("b", ClassRole::Learner)),
            [line("breakout_started", ""), line("chat", "hi")]
        );
        class
            .say(&teacher, ClientBody::BreakoutEnd {})
            .expect("end split");
        assert!(class.state.breakout.is_none());
    }

    #[test]
    fn attendance_counts_connected_time_and_submissions() {
        let mut class = Class::new();
        let teacher = person("i", ClassRole::Instructor);
        let learner = person("l", ClassRole::Learner);
        class.arrive(&teacher);
        class.arrive(&learner);
        class
            .say(
                &teacher,
                ClientBody::DropAssignment {
                    assignment: AssignmentSpec {
                        title: "Sum".into(),
                        language: "python".into(),
                        instructions: String::new(),
                        starter: String::new(),
                        tests: vec![LiveTest {
                            name: "t".into(),
                            stdin: String::new(),
                            expected_stdout: "3".into(),
                        }],
                    },
                },
            )
            .expect("drop");
        let id = class.state.assignments[0].id.clone();
        assert!(class.state.check_submission(&learner, &id).is_ok());
        assert_eq!(
            class
                .state
                .check_submission(&learner, "nope")
                .map(|_| ())
                .map_err(|e| e.code),
            Err(LiveErrorCode::UnknownAssignment)
        );
        class.emit(vec![(
            Audience::instructors_and(vec!["l".into()]),
            EventKind::SubmissionStarted {
                assignment_id: id.clone(),
                user_id: "l".into(),
                name: "l".into(),
            },
        )]);
        class.emit(vec![(
            Audience::instructors_and(vec!["l".into()]),
            EventKind::Submission {
                assignment_id: id.clone(),
                user_id: "l".into(),
                name: "l".into(),
                run_id: "r".into(),
                verdict: "accepted".into(),
                passed: 1,
                total: 1,
                region: "eu-west".into(),
            },
        )]);
        // A snapshot's feed holds the assignment (never its tests for
        // anyone: the snapshot's `assignments` carry them for instructors)
        // and the submission only for those it was meant for.
        let feed = |user: &str, role: ClassRole| -> Vec<serde_json::Value> {
            class.state.snapshot_for(user, role)["recent"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let kinds = |lines: &[serde_json::Value]| -> Vec<String> {
            lines
                .iter()
                .map(|l| l["type"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let own = feed("l", ClassRole::Learner);
        assert_eq!(kinds(&own), ["assignment", "submission"]);
        assert!(own[0].get("tests").is_none(), "tests in a learner's feed");
        assert_eq!(own[0]["tests_count"], 1);
        assert_eq!(kinds(&feed("m", ClassRole::Learner)), ["assignment"]);
        assert_eq!(
            kinds(&feed("i", ClassRole::Instructor)),
            ["assignment", "submission"]
        );
        let depart = class.state.depart("l");
        class.emit(depart.into_iter().collect());
        class.say(&teacher, ClientBody::EndClass {}).expect("end");
        let records = class.state.attendance(class.now);
        let learner_record = records.iter().find(|r| r.user_id == "l").expect("learner");
        assert_eq!(learner_record.submissions, 1);
        assert_eq!(learner_record.accepted, 1);
        // Joined at 3 s, left at 7 s.
        assert_eq!(learner_record.seconds_present, 4);
        assert_eq!(
            class
                .say(&teacher, ClientBody::Chat { text: "x".into() })
                .map_err(|e| e.code),
            Err(LiveErrorCode::ClassEnded)
        );
    }

    #[test]
    fn folding_the_log_again_gives_the_same_state() {
        let mut class = Class::new();
        let teacher = person("i", ClassRole::Instructor);
        let learner = person("l", ClassRole::Learner);
        class.arrive(&teacher);
        class.arrive(&learner);
        class
            .say(&learner, ClientBody::Hand { raised: true })
            .expect("hand");
        class
            .say(&learner, ClientBody::Hand { raised: true })
            .expect("no change");
        class
            .say(
                &teacher,
                ClientBody::Chat {
                    text: "hello".into(),
                },
            )
            .expect("chat");
        let mut replayed = ClassState::new("c1", "t1", 0);
        for event in &class.log {
            replayed.fold(event);
        }
        assert_eq!(replayed, class.state);
        assert_eq!(class.state.seq, 4);
    }
}
