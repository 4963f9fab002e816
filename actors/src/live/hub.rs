//! Each node's side of live classes: the [`Registry`] of local sessions, the
//! [`LiveHub`] actor that receives a classroom's one copy for this node and
//! fans it out, and [`LiveNode`], which places classrooms (finds the home of
//! a class or starts it) and carries commands to them.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    class::{Assignment, Attendee, Participant},
    classroom::{ClassroomActor, ClassroomArgs, ClassroomMessage, Input},
    hub_group,
    protocol::{ClassRole, Event, EventKind, Reply},
    LiveLimits,
};
use crate::groups::{classroom_group, join_group, members_of};
use crate::system::ActorsError;

/// What a session's writer receives, in order.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A class event (already a frame), with its sequence number.
    Event {
        /// Its `seq`.
        seq: u64,
        /// The frame text.
        text: Arc<str>,
    },
    /// A full state; the session continues from `seq`.
    Snapshot {
        /// The class's `seq` the snapshot reflects.
        seq: u64,
        /// The state as JSON.
        state: Arc<serde_json::Value>,
    },
    /// A reply, stamped with the session's position when written.
    Reply(Reply),
    /// A resume's replayed events, in order: one queue slot, so a long
    /// replay never counts as a slow consumer.
    Replay(Vec<(u64, Arc<str>)>),
    /// Close the connection with this code and reason (after what came
    /// before has been written).
    Close(u16, String),
}

/// One local session as the hub knows it.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Its user.
    pub user_id: String,
    /// Their role in the class.
    pub role: ClassRole,
    /// Its bounded outbound queue.
    pub tx: mpsc::Sender<Outbound>,
    /// Woken when the hub gives up on the session (a slow consumer), so it
    /// stops writing what is queued and closes at once.
    pub kick: Arc<tokio::sync::Notify>,
}

/// What this node knows of a class it has sessions in.
#[derive(Debug, Default)]
struct LocalClass {
    sessions: HashMap<u64, SessionHandle>,
    /// Sessions whose welcome has not arrived yet: events for them are
    /// dropped (the welcome's replay or snapshot covers them).
    pending: HashSet<u64>,
    /// The dropped assignments, with tests, so a learner's submission runs
    /// on this node without asking the home.
    assignments: HashMap<String, Assignment>,
    ended: bool,
}

/// The sessions of this node, by class.
#[derive(Debug, Default)]
pub struct Registry {
    classes: RwLock<HashMap<String, LocalClass>>,
    next_session: AtomicU64,
    sessions: AtomicU64,
    slow_consumers: AtomicU64,
}

/// Why an outbound frame could not be queued.
enum Push {
    Sent,
    Slow,
    Gone,
}

fn push(handle: &SessionHandle, item: Outbound) -> Push {
    match handle.tx.try_send(item) {
        Ok(()) => Push::Sent,
        Err(mpsc::error::TrySendError::Full(_)) => Push::Slow,
        Err(mpsc::error::TrySendError::Closed(_)) => Push::Gone,
    }
}

impl Registry {
    /// A fresh session id, unique on this node for its lifetime.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sessions registered now.
    pub fn session_count(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Sessions closed for falling behind, since start.
    pub fn slow_consumers(&self) -> u64 {
        self.slow_consumers.load(Ordering::Relaxed)
    }

    /// Adds a session that is waiting for its welcome.
    pub fn register(&self, class_id: &str, session_id: u64, handle: SessionHandle) {
        let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
        let class = classes.entry(class_id.to_owned()).or_default();
        if class.sessions.insert(session_id, handle).is_none() {
            self.sessions.fetch_add(1, Ordering::Relaxed);
        }
        class.pending.insert(session_id);
    }

    /// Removes a session; the class entry goes with its last session.
    pub fn unregister(&self, class_id: &str, session_id: u64) {
        let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(class) = classes.get_mut(class_id) {
            if class.sessions.remove(&session_id).is_some() {
                self.sessions.fetch_sub(1, Ordering::Relaxed);
            }
            class.pending.remove(&session_id);
            if class.sessions.is_empty() {
                classes.remove(class_id);
            }
        }
    }

    /// A dropped assignment of a class this node has sessions in, and
    /// whether the class has ended.
    pub fn assignment(&self, class_id: &str, assignment_id: &str) -> (Option<Assignment>, bool) {
        let classes = self.classes.read().unwrap_or_else(PoisonError::into_inner);
        classes.get(class_id).map_or((None, false), |class| {
            (class.assignments.get(assignment_id).cloned(), class.ended)
        })
    }

    /// Fans events out to this node's sessions of the class, by audience.
    /// A session whose queue is full is closed as a slow consumer, so no
    /// one waits for it.
    fn deliver(&self, class_id: &str, events: &[Event]) {
        let mut slow = Vec::new();
        {
            let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
            let Some(class) = classes.get_mut(class_id) else {
                return;
            };
            for event in events {
                if let EventKind::Assignment { assignment_id, .. } = &event.kind {
                    if let Some(assignment) = assignment_of(event) {
                        class.assignments.insert(assignment_id.clone(), assignment);
                    }
                }
                let ends = matches!(event.kind, EventKind::ClassEnded {});
                class.ended |= ends;
                let full: Arc<str> = Arc::from(event.frame_full());
                let learner: Arc<str> = event
                    .frame_learner()
                    .map_or_else(|| full.clone(), Arc::from);
                for (id, session) in &class.sessions {
                    if class.pending.contains(id)
                        || !event.audience.includes(&session.user_id, session.role)
                    {
                        continue;
                    }
                    let text = match session.role {
                        ClassRole::Instructor => full.clone(),
                        ClassRole::Learner => learner.clone(),
                    };
                    match push(
                        session,
                        Outbound::Event {
                            seq: event.seq,
                            text,
                        },
                    ) {
                        Push::Sent | Push::Gone => {}
                        Push::Slow => slow.push(*id),
                    }
                    if ends {
                        let _full = session.tx.try_send(Outbound::Close(
                            super::protocol::close::CLASS_ENDED,
                            "class_ended".into(),
                        ));
                    }
                }
            }
            for id in &slow {
                if let Some(session) = class.sessions.remove(id) {
                    class.pending.remove(id);
                    self.sessions.fetch_sub(1, Ordering::Relaxed);
                    self.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    session.kick.notify_one();
                }
            }
        }
        if !slow.is_empty() {
            tracing::info!(class_id, count = slow.len(), "closed slow consumers");
        }
    }

    /// Delivers what a classroom sent to one session: its welcome, its
    /// replay or snapshot, an error, or a close.
    fn direct(&self, direct: Direct) {
        let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
        let Some(class) = classes.get_mut(&direct.class_id) else {
            return;
        };
        for assignment in direct.assignments {
            class.assignments.insert(assignment.id.clone(), assignment);
        }
        class.ended |= direct.ended;
        let Some(session) = class.sessions.get(&direct.session_id).cloned() else {
            return;
        };
        let mut items = Vec::new();
        if let Some(welcome) = direct.welcome {
            items.push(Outbound::Reply(welcome));
            class.pending.remove(&direct.session_id);
        }
        if let Some((seq, state)) = direct.snapshot {
            items.push(Outbound::Snapshot {
                seq,
                state: Arc::new(state),
            });
        }
        if !direct.events.is_empty() {
            let replay = direct
                .events
                .iter()
                .map(|event| {
                    let text = match session.role {
                        ClassRole::Instructor => event.frame_full(),
                        ClassRole::Learner => {
                            event.frame_learner().unwrap_or_else(|| event.frame_full())
                        }
                    };
                    (event.seq, Arc::from(text))
                })
                .collect();
            items.push(Outbound::Replay(replay));
        }
        if let Some(reply) = direct.reply {
            items.push(Outbound::Reply(reply));
        }
        if let Some((code, reason)) = direct.close {
            items.push(Outbound::Close(code, reason));
        }
        for item in items {
            if let Push::Slow = push(&session, item) {
                // A welcome with a long replay overflowed the queue: the
                // client resumes again, from where it got to.
                session.kick.notify_one();
                class.sessions.remove(&direct.session_id);
                class.pending.remove(&direct.session_id);
                self.sessions.fetch_sub(1, Ordering::Relaxed);
                self.slow_consumers.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// The assignment (with tests) an assignment event carries.
fn assignment_of(event: &Event) -> Option<Assignment> {
    match &event.kind {
        EventKind::Assignment {
            assignment_id,
            title,
            language,
            instructions,
            starter,
            tests,
            ..
        } => Some(Assignment {
            id: assignment_id.clone(),
            spec: super::protocol::AssignmentSpec {
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

/// The events a classroom sends to one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    /// The class.
    pub class_id: String,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// What a classroom sends to one session through its node's hub.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Direct {
    /// The class.
    pub class_id: String,
    /// The session on the receiving node.
    pub session_id: u64,
    /// The welcome, on a join.
    #[serde(default)]
    pub welcome: Option<Reply>,
    /// A snapshot (its `seq` and state), on a join from too far back.
    #[serde(default)]
    pub snapshot: Option<(u64, serde_json::Value)>,
    /// Replayed events, on a resume.
    #[serde(default)]
    pub events: Vec<Event>,
    /// An error or other reply.
    #[serde(default)]
    pub reply: Option<Reply>,
    /// Close the session.
    #[serde(default)]
    pub close: Option<(u16, String)>,
    /// The class's assignments (with tests), for the node to cache.
    #[serde(default)]
    pub assignments: Vec<Assignment>,
    /// Whether the class has ended.
    #[serde(default)]
    pub ended: bool,
}

/// A request to start a classroom on the receiving node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// The class.
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
}

/// What a hub understands; payloads are JSON so they cross nodes.
#[derive(RactorClusterMessage)]
pub enum LiveHubMessage {
    /// A [`Deliver`]: events for this node's sessions.
    Deliver(String),
    /// A [`Direct`]: something for one session.
    Direct(String),
    /// A [`Host`]: start a classroom here.
    Host(String),
    /// A piece of a [`Deliver`] or [`Direct`] too large for one actor frame
    /// (a [`Part`]); the hub joins the pieces.
    Part(String),
}

/// Largest hub message sent in one piece, in bytes: well under the actor
/// transport's default frame cap (1 MiB), so a long replay or a large
/// snapshot crosses nodes in pieces instead of being refused.
pub const HUB_MESSAGE_BYTES_MAX: usize = 256 * 1024;
/// Bytes of unfinished pieces a hub holds at most; past it the oldest
/// unfinished message is dropped (its session times out and resumes).
pub const HUB_PARTS_BYTES_MAX: usize = 128 * 1024 * 1024;

/// One piece of a large hub message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// Which message (unique per sender).
    pub key: String,
    /// `deliver` or `direct`.
    pub kind: String,
    /// This piece.
    pub text: String,
    /// Whether it is the last piece.
    pub last: bool,
}

/// The end-of-class report the home node hands to whoever records
/// attendance (the node sends it to the control plane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceReport {
    /// The class.
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its ownership epoch.
    pub epoch: u64,
    /// Started, unix ms.
    pub started_at_ms: u64,
    /// Ended, unix ms.
    pub ended_at_ms: u64,
    /// Everyone who came.
    pub attendees: Vec<Attendee>,
}

/// Everything live on this node: the registry, the hub, the classrooms
/// homed here and how to reach the others.
pub struct LiveNode {
    node_id: String,
    region: String,
    limits: LiveLimits,
    registry: Arc<Registry>,
    store: sled::Db,
    attendance: mpsc::Sender<AttendanceReport>,
    /// Classrooms homed here, by class id, with their tenant.
    homed: Mutex<HashMap<String, (String, ActorRef<ClassroomMessage>)>>,
    /// Events emitted by classrooms homed here.
    events_total: AtomicU64,
}

impl std::fmt::Debug for LiveNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveNode")
            .field("node_id", &self.node_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Why a class could not be reached or started.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// No classroom appeared within the start timeout.
    #[error("the classroom did not start within {0:?}")]
    Timeout(std::time::Duration),
    /// The tenant has as many classes homed here as it may.
    #[error("the tenant has {0} classes on this node, the most it may")]
    TooManyClasses(usize),
    /// The actor could not start.
    #[error(transparent)]
    Actors(#[from] ActorsError),
}

impl LiveNode {
    /// Starts this node's hub and returns the node's live side.
    /// `attendance` receives every ended class's report.
    ///
    /// # Errors
    /// [`ActorsError::Spawn`] when the hub cannot start.
    pub async fn start(
        node_id: &str,
        region: &str,
        limits: LiveLimits,
        store: sled::Db,
        attendance: mpsc::Sender<AttendanceReport>,
    ) -> Result<Arc<Self>, ActorsError> {
        let node = Arc::new(Self {
            node_id: node_id.to_owned(),
            region: region.to_owned(),
            limits,
            registry: Arc::new(Registry::default()),
            store,
            attendance,
            homed: Mutex::new(HashMap::new()),
            events_total: AtomicU64::new(0),
        });
        let (hub, _handle) = Actor::spawn(None, LiveHub, Arc::downgrade(&node))
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        join_group(&hub_group(node_id), hub.get_cell());
        Ok(node)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The limits in force.
    pub fn limits(&self) -> &LiveLimits {
        &self.limits
    }

    /// The local sessions.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Classes homed on this node now.
    pub fn homed_count(&self) -> usize {
        self.homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Events emitted by the classrooms homed here since start.
    pub fn events_total(&self) -> u64 {
        self.events_total.load(Ordering::Relaxed)
    }

    pub(super) fn count_events(&self, n: usize) {
        self.events_total
            .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
    }

    pub(super) fn store(&self) -> &sled::Db {
        &self.store
    }

    pub(super) fn report_attendance(&self, report: AttendanceReport) {
        if let Err(err) = self.attendance.try_send(report) {
            tracing::error!(error = %err, "attendance report queue full or closed");
        }
    }

    pub(super) fn forget(&self, class_id: &str) {
        self.homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(class_id);
    }

    /// The classroom of `class_id`, wherever it is homed, if one is known.
    pub fn classroom(&self, class_id: &str) -> Option<ActorRef<ClassroomMessage>> {
        if let Some((_, actor)) = self
            .homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(class_id)
        {
            return Some(actor.clone());
        }
        members_of(&classroom_group(class_id))
            .into_iter()
            .next()
            .map(ActorRef::from)
    }

    /// Starts the classroom here unless it already runs here.
    ///
    /// # Errors
    /// [`PlaceError::TooManyClasses`] past the tenant's limit, or the spawn
    /// failing.
    pub async fn host(
        self: &Arc<Self>,
        class_id: &str,
        tenant_id: &str,
    ) -> Result<ActorRef<ClassroomMessage>, PlaceError> {
        {
            let homed = self.homed.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, actor)) = homed.get(class_id) {
                return Ok(actor.clone());
            }
            let of_tenant = homed.values().filter(|(t, _)| t == tenant_id).count();
            if of_tenant >= self.limits.classes_per_tenant_max {
                return Err(PlaceError::TooManyClasses(of_tenant));
            }
        }
        let args = ClassroomArgs {
            class_id: class_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            node: Arc::downgrade(self),
        };
        let (actor, _handle) = Actor::spawn(None, ClassroomActor, args)
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        let mut homed = self.homed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, existing)) = homed.get(class_id) {
            // Another join started it meanwhile; keep that one.
            actor.stop(None);
            return Ok(existing.clone());
        }
        join_group(&classroom_group(class_id), actor.get_cell());
        homed.insert(class_id.to_owned(), (tenant_id.to_owned(), actor.clone()));
        tracing::info!(class_id, tenant_id, "classroom homed here");
        Ok(actor)
    }

    /// Finds the class's classroom, or has `home` start it (this node when
    /// `home` is this node), then waits for it to be reachable.
    ///
    /// # Errors
    /// [`PlaceError`] when it cannot be started or reached in time.
    pub async fn place(
        self: &Arc<Self>,
        class_id: &str,
        tenant_id: &str,
        home: &str,
    ) -> Result<ActorRef<ClassroomMessage>, PlaceError> {
        if let Some(actor) = self.classroom(class_id) {
            return Ok(actor);
        }
        if home == self.node_id {
            return self.host(class_id, tenant_id).await;
        }
        let host = serde_json::to_string(&Host {
            class_id: class_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
        })
        .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + self.limits.class_start_timeout;
        let mut asked = false;
        loop {
            if let Some(actor) = self.classroom(class_id) {
                return Ok(actor);
            }
            if !asked {
                if let Some(hub) = members_of(&hub_group(home)).into_iter().next() {
                    let hub: ActorRef<LiveHubMessage> = hub.into();
                    asked = hub.cast(LiveHubMessage::Host(host.clone())).is_ok();
                }
            }
            if tokio::time::Instant::now() >= deadline {
                if !asked {
                    // The chosen home is unreachable from here: host it
                    // ourselves rather than fail the class.
                    return self.host(class_id, tenant_id).await;
                }
                return Err(PlaceError::Timeout(self.limits.class_start_timeout));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Sends one input of a session to the class's classroom.
    ///
    /// # Errors
    /// [`ActorsError::Call`] when no classroom is reachable.
    pub fn send(
        &self,
        class_id: &str,
        session_id: u64,
        who: &Participant,
        input: Input,
    ) -> Result<(), ActorsError> {
        let classroom = self
            .classroom(class_id)
            .ok_or_else(|| ActorsError::Call(format!("no classroom for class {class_id}")))?;
        let envelope = super::classroom::Envelope {
            node_id: self.node_id.clone(),
            session_id,
            who: who.clone(),
            input,
        };
        classroom
            .cast(ClassroomMessage::Command(
                serde_json::to_string(&envelope).unwrap_or_default(),
            ))
            .map_err(|err| ActorsError::Call(err.to_string()))
    }

    /// Tells every classroom homed here that `node_id` is gone, so its
    /// sessions leave.
    pub fn node_down(&self, node_id: &str) {
        let homed: Vec<_> = self
            .homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|(_, actor)| actor.clone())
            .collect();
        let envelope = super::classroom::Envelope {
            node_id: node_id.to_owned(),
            session_id: 0,
            who: Participant {
                user_id: String::new(),
                name: String::new(),
                role: ClassRole::Learner,
            },
            input: Input::NodeDown,
        };
        let text = serde_json::to_string(&envelope).unwrap_or_default();
        for actor in homed {
            let _stopped = actor.cast(ClassroomMessage::Command(text.clone()));
        }
    }

    /// Stops every classroom homed here (the node is shutting down).
    pub fn stop_all(&self) {
        let homed: Vec<_> = self
            .homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, (_, actor))| actor)
            .collect();
        for actor in homed {
            actor.stop(None);
        }
    }
}

/// The hub of one node: receives classrooms' messages for its sessions.
#[derive(Debug)]
pub struct LiveHub;

/// A hub's state: its node and the pieces of unfinished messages.
#[derive(Debug)]
pub struct HubState {
    node: std::sync::Weak<LiveNode>,
    parts: HashMap<String, String>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

impl HubState {
    /// Adds a piece; the whole message once its last piece is in.
    fn piece(&mut self, part: Part) -> Option<String> {
        if !self.parts.contains_key(&part.key) {
            self.order.push_back(part.key.clone());
        }
        self.bytes += part.text.len();
        self.parts
            .entry(part.key.clone())
            .or_default()
            .push_str(&part.text);
        while self.bytes > HUB_PARTS_BYTES_MAX {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.parts.remove(&oldest) {
                self.bytes -= dropped.len();
                tracing::warn!(
                    key = oldest,
                    "unfinished hub message dropped: too many pieces held"
                );
            }
        }
        if !part.last {
            return None;
        }
        self.order.retain(|key| key != &part.key);
        let whole = self.parts.remove(&part.key)?;
        self.bytes -= whole.len();
        Some(whole)
    }
}

impl Actor for LiveHub {
    type Msg = LiveHubMessage;
    type State = HubState;
    type Arguments = std::sync::Weak<LiveNode>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        node: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(HubState {
            node,
            parts: HashMap::new(),
            order: std::collections::VecDeque::new(),
            bytes: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(node) = state.node.upgrade() else {
            return Ok(());
        };
        let message = match message {
            LiveHubMessage::Part(text) => match serde_json::from_str::<Part>(&text) {
                Ok(part) => {
                    let kind = part.kind.clone();
                    match state.piece(part) {
                        Some(whole) if kind == "deliver" => LiveHubMessage::Deliver(whole),
                        Some(whole) => LiveHubMessage::Direct(whole),
                        None => return Ok(()),
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "undecodable hub message piece dropped");
                    return Ok(());
                }
            },
            other => other,
        };
        match message {
            LiveHubMessage::Deliver(text) => match serde_json::from_str::<Deliver>(&text) {
                Ok(deliver) => node.registry.deliver(&deliver.class_id, &deliver.events),
                Err(err) => tracing::warn!(error = %err, "undecodable delivery dropped"),
            },
            LiveHubMessage::Direct(text) => match serde_json::from_str::<Direct>(&text) {
                Ok(direct) => node.registry.direct(direct),
                Err(err) => tracing::warn!(error = %err, "undecodable direct message dropped"),
            },
            LiveHubMessage::Host(text) => match serde_json::from_str::<Host>(&text) {
                Ok(host) => {
                    if let Err(err) = node.host(&host.class_id, &host.tenant_id).await {
                        tracing::warn!(class_id = host.class_id, error = %err, "cannot host a class");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "undecodable host request dropped"),
            },
            LiveHubMessage::Part(_) => {}
        }
        Ok(())
    }
}

/// Sends something to a node's hub; false when the hub is not reachable.
pub(super) fn to_hub(node_id: &str, message: LiveHubMessage) -> bool {
    match members_of(&hub_group(node_id)).into_iter().next() {
        Some(cell) => ActorRef::<LiveHubMessage>::from(cell).cast(message).is_ok(),
        None => false,
    }
}

static PART_KEYS: AtomicU64 = AtomicU64::new(0);

/// Sends a [`Deliver`] (`kind` "deliver") or [`Direct`] ("direct") as
/// JSON, in pieces of at most [`HUB_MESSAGE_BYTES_MAX`] when it is larger.
pub(super) fn to_hub_text(node_id: &str, kind: &str, text: String) -> bool {
    if text.len() <= HUB_MESSAGE_BYTES_MAX {
        let message = match kind {
            "deliver" => LiveHubMessage::Deliver(text),
            _ => LiveHubMessage::Direct(text),
        };
        return to_hub(node_id, message);
    }
    let Some(cell) = members_of(&hub_group(node_id)).into_iter().next() else {
        return false;
    };
    let hub = ActorRef::<LiveHubMessage>::from(cell);
    let key = format!(
        "{}-{}",
        std::process::id(),
        PART_KEYS.fetch_add(1, Ordering::Relaxed)
    );
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(HUB_MESSAGE_BYTES_MAX);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        let part = Part {
            key: key.clone(),
            kind: kind.to_owned(),
            text: piece.to_owned(),
            last: rest.is_empty(),
        };
        let json = serde_json::to_string(&part).unwrap_or_default();
        if hub.cast(LiveHubMessage::Part(json)).is_err() {
            return false;
        }
    }
    true
}
