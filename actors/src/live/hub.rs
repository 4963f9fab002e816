//! Each node's side of live classes: the [`Registry`] of local sessions, the
//! [`LiveHub`] actor that receives a classroom's one copy for this node and
//! fans it out, and [`LiveNode`], which places classrooms (finds the home of
//! a class or starts it) and carries commands to them. The hub never
//! touches the disk: votes and class copies go to the node's storage worker
//! (see `storage`), so a slow fsync holds up no delivery.

use super::protocol::LiveErrorCode;
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    class::{Assignment, Attendee, ClassAudio, Participant},
    classroom::{ClassroomActor, ClassroomArgs, ClassroomMessage, Control, Input},
    hub_group,
    protocol::{ClassRole, Event, EventKind, Reply},
    replication::{self, Claim, ClaimReply, Copy, ReplicaAck, Replicate, StoreError, Vote},
    storage::{self, Answer, Job, Storage, Write},
    wire::Wire,
    LiveLimits, Peer, Peers,
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
    /// The node the class is homed on, from the last welcome.
    home: Option<String>,
    /// The class's audio view, from the first welcome on, kept by the
    /// events delivered since.
    audio: Option<ClassAudio>,
}

/// Told of a class's audio view whenever it changes on this node (a
/// welcome brought a newer one, or an event changed it): the edge applies
/// it to the peers its SFU holds for the class. Called outside the
/// registry's lock; it must not block.
pub type AudioObserver = Arc<dyn Fn(&str, &ClassAudio) + Send + Sync>;

/// Where the registry keeps its [`AudioObserver`], set once.
#[derive(Default)]
struct ObserverSlot(std::sync::OnceLock<AudioObserver>);

impl std::fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ObserverSlot(set)"
        } else {
            "ObserverSlot(unset)"
        })
    }
}

/// The sessions of this node, by class.
#[derive(Debug, Default)]
pub struct Registry {
    classes: RwLock<HashMap<String, LocalClass>>,
    audio_observer: ObserverSlot,
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

    /// Sets the one audio observer of this node (see [`AudioObserver`]);
    /// a second call is ignored.
    pub fn set_audio_observer(&self, observer: AudioObserver) {
        let _set = self.audio_observer.0.set(observer);
    }

    /// The audio view of a class this node has sessions in, once one of
    /// them was welcomed.
    pub fn audio(&self, class_id: &str) -> Option<ClassAudio> {
        let classes = self.classes.read().unwrap_or_else(PoisonError::into_inner);
        classes.get(class_id).and_then(|class| class.audio.clone())
    }

    fn tell_audio(&self, class_id: &str, view: Option<ClassAudio>) {
        if let (Some(view), Some(observer)) = (view, self.audio_observer.0.get()) {
            observer(class_id, &view);
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

    /// Closes every session of a class homed on `node_id` with 4011 (the
    /// home is gone): each client resumes with its last `seq`, wherever
    /// the class is homed next.
    pub fn close_moved(&self, node_id: &str) -> usize {
        self.close_where(|_, home| home == node_id)
    }

    /// Closes the sessions of `class_id` while it is homed on `home` with
    /// 4011: its classroom there failed, and each client resumes.
    pub fn close_class(&self, class_id: &str, home: &str) -> usize {
        self.close_where(|class, homed_on| class == class_id && homed_on == home)
    }

    /// Closes every session of a class homed on another node than
    /// `node_id` (this one) with 4011: gossip declared this node down and
    /// it came back as a new generation, so those homes dropped its
    /// sessions; each client resumes and is counted in again.
    pub fn close_remote(&self, node_id: &str) -> usize {
        self.close_where(|_, home| home != node_id)
    }

    /// Closes the sessions of every class for which `pick(class_id, home)`
    /// holds.
    fn close_where(&self, pick: impl Fn(&str, &str) -> bool) -> usize {
        let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
        let mut closed = 0;
        for (class_id, class) in classes.iter_mut() {
            if !class
                .home
                .as_deref()
                .is_some_and(|home| pick(class_id, home))
            {
                continue;
            }
            class.home = None;
            for session in class.sessions.values() {
                if session
                    .tx
                    .try_send(Outbound::Close(
                        super::protocol::close::CLASS_MOVED,
                        LiveErrorCode::ClassMoved.as_str().into(),
                    ))
                    .is_err()
                {
                    session.kick.notify_one();
                }
                closed += 1;
            }
        }
        closed
    }

    /// Fans events out to this node's sessions of the class, by audience.
    /// A session whose queue is full is closed as a slow consumer, so no
    /// one waits for it.
    fn deliver(&self, class_id: &str, events: &[Event]) {
        let mut slow = Vec::new();
        let mut audio_changed = None;
        {
            let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
            let Some(class) = classes.get_mut(class_id) else {
                return;
            };
            if let Some(audio) = &mut class.audio {
                let mut changed = false;
                for event in events {
                    changed |= audio.apply(event);
                }
                if changed {
                    audio_changed = Some(audio.clone());
                }
            }
            for event in events {
                if let Some(assignment) = Assignment::dropped_by(event) {
                    class.assignments.insert(assignment.id.clone(), assignment);
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
                            LiveErrorCode::ClassEnded.as_str().into(),
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
        self.tell_audio(class_id, audio_changed);
    }

    /// Delivers what a classroom sent to one session: its welcome, its
    /// replay or snapshot, an error, or a close.
    fn direct(&self, direct: Direct) {
        let class_id = direct.class_id.clone();
        let audio_changed = self.direct_locked(direct);
        self.tell_audio(&class_id, audio_changed);
    }

    /// [`Self::direct`] under the lock; returns the class's new audio view
    /// when the welcome brought a newer one.
    fn direct_locked(&self, direct: Direct) -> Option<ClassAudio> {
        let mut classes = self.classes.write().unwrap_or_else(PoisonError::into_inner);
        let class = classes.get_mut(&direct.class_id)?;
        let mut audio_changed = None;
        if let Some(view) = direct.audio {
            if class.audio.as_ref().is_none_or(|have| have.seq < view.seq) {
                class.audio = Some(view.clone());
                audio_changed = Some(view);
            }
        }
        for assignment in direct.assignments {
            class.assignments.insert(assignment.id.clone(), assignment);
        }
        class.ended |= direct.ended;
        let Some(session) = class.sessions.get(&direct.session_id).cloned() else {
            return audio_changed;
        };
        let mut items = Vec::new();
        if let Some(welcome) = direct.welcome {
            if let Reply::Welcome { home_node_id, .. } = &welcome {
                class.home = Some(home_node_id.clone());
            }
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
        audio_changed
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
    /// The class's audio view, with a welcome.
    #[serde(default)]
    pub audio: Option<ClassAudio>,
}

/// A request to start a classroom on the receiving node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// The class.
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// How many nodes passed the request on already (at most one does:
    /// a node whose claim is refused sends it where the votes point).
    #[serde(default)]
    pub hops: u8,
}

/// What a hub understands. Payloads cross nodes as JSON in a typed
/// [`Wire`], decoded by the hub (a malformed one is logged and dropped).
#[derive(RactorClusterMessage)]
pub enum LiveHubMessage {
    /// Events for this node's sessions.
    Deliver(Wire<Deliver>),
    /// Something for one session.
    Direct(Wire<Direct>),
    /// Start a classroom here.
    Host(Wire<Host>),
    /// A piece of a [`Large`] message too large for one actor frame; the
    /// hub joins the pieces.
    Part(Wire<Part>),
    /// Vote on a class's next epoch.
    Claim(Wire<Claim>),
    /// The answer to a claim this node made.
    Vote(Wire<ClaimReply>),
    /// A home's batch for this node's copy.
    Replicate(Wire<Replicate>),
    /// A replica's acknowledgement for a classroom homed here.
    Ack(Wire<ReplicaAck>),
    /// A classroom homed on the sender failed: its sessions here resume.
    Failed(Wire<Failed>),
}

/// A classroom that failed (panicked), from its home's hub to every hub.
/// The classroom's state in memory is gone; its log and snapshot in the
/// home's store are not. Sessions are closed with 4011 (class moved), so
/// each client resumes from its last `seq` and the class starts again
/// (from the store, at a new epoch) on the first join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    /// The class.
    pub class_id: String,
    /// The node it was homed on.
    pub home: String,
}

/// A hub message that may be larger than one actor frame, so it may travel
/// as [`Part`]s: its kind and its JSON.
#[derive(Debug, Clone)]
pub struct Large {
    kind: PartKind,
    json: Vec<u8>,
}

/// Which [`Large`] message a [`Part`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// A [`Deliver`].
    Deliver,
    /// A [`Direct`].
    Direct,
    /// A [`Replicate`].
    Replicate,
}

/// A payload that may travel as a [`Large`] message.
pub trait Piecewise: Serialize {
    /// Its kind, carried by every piece.
    const KIND: PartKind;
}

impl Piecewise for Deliver {
    const KIND: PartKind = PartKind::Deliver;
}

impl Piecewise for Direct {
    const KIND: PartKind = PartKind::Direct;
}

impl Piecewise for Replicate {
    const KIND: PartKind = PartKind::Replicate;
}

impl<T: Piecewise> From<Wire<T>> for Large {
    fn from(wire: Wire<T>) -> Self {
        Self {
            kind: T::KIND,
            json: wire.into_json(),
        }
    }
}

impl Large {
    /// Encodes `value`.
    pub fn new<T: Piecewise>(value: &T) -> Self {
        Wire::new(value).into()
    }

    fn kind(&self) -> PartKind {
        self.kind
    }

    fn len(&self) -> usize {
        self.json.len()
    }

    fn into_json(self) -> Vec<u8> {
        self.json
    }

    /// The message whose pieces have all arrived.
    fn joined(kind: PartKind, json: Vec<u8>) -> Self {
        Self { kind, json }
    }

    fn into_message(self) -> LiveHubMessage {
        let json = self.json;
        match self.kind {
            PartKind::Deliver => LiveHubMessage::Deliver(Wire::from_json(json)),
            PartKind::Direct => LiveHubMessage::Direct(Wire::from_json(json)),
            PartKind::Replicate => LiveHubMessage::Replicate(Wire::from_json(json)),
        }
    }
}

/// How long shutting down waits for one classroom to write its snapshot
/// and stop.
pub const CLASSROOM_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Which message it is a piece of.
    pub kind: PartKind,
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
    /// What operators see of it.
    counters: super::LiveCounters,
    /// The membership, for replicas and votes.
    peers: Peers,
    /// This node's votes (tree `live_votes`), changed only by the storage
    /// worker.
    votes: sled::Tree,
    /// Claims under way here: where their votes go.
    claims: Mutex<HashMap<String, mpsc::UnboundedSender<ClaimReply>>>,
    /// Classes this node keeps a copy of, as replica.
    copies: Mutex<HashMap<String, Copy>>,
    /// Classes being started here now (a second start waits instead).
    hosting: Mutex<HashSet<String>>,
    /// The store's durable steps (sled's, or a test's faults).
    disk: Arc<dyn storage::Disk>,
    /// The storage worker's queue (votes, batches), bounded.
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// Its bound.
    queue_max: usize,
    /// Why the store failed, once it has (the first reason): it then takes
    /// no more votes or copies.
    fault: std::sync::OnceLock<String>,
    /// This node's hub, which supervises the classrooms homed here.
    hub: std::sync::OnceLock<ractor::ActorCell>,
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
    /// The votes say another node has the class (or its newest copy).
    #[error("the class belongs to epoch {} on {}", .0.epoch, .0.home)]
    Elsewhere(Vote),
    /// Too few edges answered to grant a new epoch.
    #[error("only {granted} of the {needed} votes needed were granted")]
    NoQuorum {
        /// Votes granted.
        granted: usize,
        /// Votes needed (a majority of the edges known).
        needed: usize,
    },
    /// The class is being started here already.
    #[error("the class is being started on this node")]
    Busy,
    /// This node's live store failed (see [`LiveNode::storage_fault`]):
    /// it cannot vote, so it cannot hold a class.
    #[error("the live store failed: {0}")]
    Storage(String),
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
        peers: Peers,
    ) -> Result<Arc<Self>, ActorsError> {
        let storage = Storage {
            queue_max: limits.storage_queue_max,
            ..Storage::default()
        };
        Self::start_with(node_id, region, limits, store, attendance, peers, storage).await
    }

    /// [`Self::start`], with the store worked as `storage` says (tests
    /// inject faults and a small queue this way).
    pub(crate) async fn start_with(
        node_id: &str,
        region: &str,
        limits: LiveLimits,
        store: sled::Db,
        attendance: mpsc::Sender<AttendanceReport>,
        peers: Peers,
        storage: Storage,
    ) -> Result<Arc<Self>, ActorsError> {
        let votes = store
            .open_tree(replication::VOTES_TREE)
            .map_err(|err| ActorsError::Spawn(format!("open the votes tree: {err}")))?;
        let (jobs, queued) = std::sync::mpsc::sync_channel(storage.queue_max);
        let node = Arc::new(Self {
            peers,
            votes,
            claims: Mutex::new(HashMap::new()),
            copies: Mutex::new(HashMap::new()),
            hosting: Mutex::new(HashSet::new()),
            node_id: node_id.to_owned(),
            region: region.to_owned(),
            limits,
            registry: Arc::new(Registry::default()),
            store,
            attendance,
            homed: Mutex::new(HashMap::new()),
            counters: super::LiveCounters::new(),
            disk: storage.disk,
            jobs,
            queue_max: storage.queue_max,
            fault: std::sync::OnceLock::new(),
            hub: std::sync::OnceLock::new(),
        });
        storage::spawn_worker(Arc::downgrade(&node), queued, storage.queue_max)
            .map_err(|err| ActorsError::Spawn(format!("start the storage worker: {err}")))?;
        let (hub, _handle) = Actor::spawn(None, LiveHub, Arc::downgrade(&node))
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        join_group(&hub_group(node_id), hub.get_cell());
        let _set = node.hub.set(hub.get_cell());
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

    /// The node's live counters (register them to export them).
    pub fn counters(&self) -> &super::LiveCounters {
        &self.counters
    }

    /// Why this node's live store failed, once it has; `None` while it is
    /// healthy. A store that failed one read, write or flush (or held a
    /// record that does not decode) is not used for votes or class copies
    /// again until the process restarts: the node refuses every claim and
    /// every replica batch, so it never grants from a vote it may have lost
    /// nor acknowledges what it may not have stored. The node cannot take
    /// part in keeping classes alive then, so it should report not ready.
    pub fn storage_fault(&self) -> Option<String> {
        self.fault.get().cloned()
    }

    /// Records a failure of the live store: counted, logged, and from now
    /// on the store takes no votes or copies (the first reason is kept).
    pub(super) fn storage_failed(&self, doing: &str, err: &dyn std::fmt::Display) {
        self.counters.storage_errors.inc();
        tracing::error!(
            doing,
            error = %err,
            "live store failed; it takes no more votes or class copies"
        );
        let _first = self.fault.set(format!("cannot {doing}: {err}"));
    }

    /// The store's durable steps, for a classroom's own writes.
    pub(super) fn disk(&self) -> &dyn storage::Disk {
        self.disk.as_ref()
    }

    pub(super) fn store(&self) -> &sled::Db {
        &self.store
    }

    pub(super) fn report_attendance(&self, report: AttendanceReport) {
        if let Err(err) = self.attendance.try_send(report) {
            tracing::error!(error = %err, "attendance report queue full or closed");
        }
    }

    /// A classroom homed here failed (it panicked; ractor stopped it and
    /// told its supervisor, the hub). Its memory is gone but its store is
    /// not: forget it, count it, and tell every node with sessions in the
    /// class (this one too) to close them with 4011, so each client
    /// resumes and the first join starts the class again from the store.
    fn classroom_failed(&self, actor: ractor::ActorId, error: &str) {
        let class_id = {
            let mut homed = self.homed.lock().unwrap_or_else(PoisonError::into_inner);
            let class_id = homed
                .iter()
                .find(|(_, (_, homed))| homed.get_id() == actor)
                .map(|(class_id, _)| class_id.clone());
            if let Some(class_id) = &class_id {
                homed.remove(class_id);
            }
            class_id
        };
        self.counters.classroom_failures.inc();
        let Some(class_id) = class_id else {
            tracing::error!(error, "a classroom no longer homed here failed");
            return;
        };
        tracing::error!(
            class_id,
            error,
            "classroom failed; its sessions resume and it starts again from the store"
        );
        let failed = Wire::new(&Failed {
            class_id,
            home: self.node_id.clone(),
        });
        let mut nodes: Vec<String> = self.peers().into_iter().map(|p| p.node_id).collect();
        if !nodes.contains(&self.node_id) {
            nodes.push(self.node_id.clone());
        }
        for node_id in nodes {
            let _sent = to_hub(&node_id, LiveHubMessage::Failed(failed.clone()));
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

    /// The membership now; empty once it is gone (the node is stopping).
    pub fn peers(&self) -> Vec<Peer> {
        (self.peers)().unwrap_or_default()
    }

    fn alive(&self, node_id: &str) -> bool {
        node_id == self.node_id || self.peers().iter().any(|p| p.node_id == node_id && p.alive)
    }

    /// The replica a class homed here should copy to: an alive edge in
    /// another region (the smallest id of the smallest region, so choices
    /// agree), or any other alive edge when no other region has one.
    pub fn choose_replica(&self) -> Option<String> {
        self.peers()
            .into_iter()
            .filter(|p| p.alive && p.node_id != self.node_id)
            .min_by(|a, b| {
                (a.region == self.region, &a.region, &a.node_id).cmp(&(
                    b.region == self.region,
                    &b.region,
                    &b.node_id,
                ))
            })
            .map(|p| p.node_id)
    }

    /// Votes on a claim here: decided, stored and flushed by the storage
    /// worker (in order with every other vote and batch) before it is
    /// answered. Refused as `unavailable` when the store has failed or the
    /// storage queue is full.
    ///
    /// Cancel safety: dropping the future does not withdraw the vote; it
    /// may still be stored, unanswered, like a reply lost on the way.
    pub async fn vote(&self, claim: &Claim) -> ClaimReply {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Job::Vote {
            claim: claim.clone(),
            answer: Answer::Local(tx),
        });
        rx.await.unwrap_or_else(|_| self.unavailable(claim))
    }

    /// A refusal from a voter that cannot vote now.
    fn unavailable(&self, claim: &Claim) -> ClaimReply {
        ClaimReply {
            claim_id: claim.claim_id.clone(),
            voter: self.node_id.clone(),
            granted: false,
            behind: false,
            unavailable: true,
            vote: Vote::default(),
        }
    }

    /// Queues a job for the storage worker without waiting; when the queue
    /// is full, a vote is refused at once and a batch dropped (the home
    /// sends the class again).
    pub(super) fn submit(&self, job: Job) {
        let job = match self.jobs.try_send(job) {
            Ok(()) => return,
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                tracing::warn!(
                    queue_max = self.queue_max,
                    "storage queue full; refusing a vote or dropping a class copy"
                );
                job
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(job)) => job,
        };
        match job {
            Job::Vote { claim, answer } => {
                let reply = self.unavailable(&claim);
                self.answer_vote(&claim, answer, reply);
            }
            Job::Copy(_) => {}
        }
    }

    fn answer_vote(&self, claim: &Claim, answer: Answer, reply: ClaimReply) {
        match answer {
            Answer::Hub => {
                let _unreachable = to_hub(&claim.home, LiveHubMessage::Vote(Wire::new(&reply)));
            }
            Answer::Local(tx) => {
                let _gone = tx.send(reply);
            }
        }
    }

    /// The storage worker's work on one run of queued jobs: each vote
    /// decided and written, each batch applied, in order; then one flush
    /// for the run; then the answers. None goes out before the flush, and
    /// once the store has failed (before or during the run) every answer
    /// is a refusal: votes `unavailable`, batches unacknowledged.
    pub(super) fn store_run(&self, run: Vec<Job>) {
        let mut done = Vec::with_capacity(run.len());
        let mut wrote = false;
        for job in run {
            if self.fault.get().is_some() {
                done.push(Done::Refused(job));
                continue;
            }
            match job {
                Job::Vote { claim, answer } => match self.store_vote(&claim) {
                    Ok((reply, stored)) => {
                        wrote |= stored;
                        done.push(Done::Vote {
                            claim,
                            answer,
                            reply,
                        });
                    }
                    Err(err) => {
                        self.storage_failed("store a vote", &err);
                        done.push(Done::Refused(Job::Vote { claim, answer }));
                    }
                },
                Job::Copy(batch) => match self.store_copy(&batch) {
                    Ok(ack) => {
                        wrote = true;
                        done.push(Done::Ack(batch.home, ack));
                    }
                    Err(err) => {
                        self.storage_failed("store a class copy", &err);
                        done.push(Done::Refused(Job::Copy(batch)));
                    }
                },
            }
        }
        if wrote && self.fault.get().is_none() {
            if let Err(err) = self.disk.flush(&self.store) {
                self.storage_failed("flush the live store", &err);
            }
        }
        let failed = self.fault.get().is_some();
        for done in done {
            match done {
                Done::Vote {
                    claim,
                    answer,
                    reply,
                } if !failed => {
                    if reply.granted && claim.establish && claim.home != self.node_id {
                        // Another node now holds the class: a classroom
                        // here is over.
                        self.fence_local(&claim.class_id, claim.epoch);
                    }
                    self.answer_vote(&claim, answer, reply);
                }
                Done::Vote { claim, answer, .. } | Done::Refused(Job::Vote { claim, answer }) => {
                    let reply = self.unavailable(&claim);
                    self.answer_vote(&claim, answer, reply);
                }
                Done::Ack(home, Some(ack)) if !failed => {
                    let _unreachable = to_hub(&home, LiveHubMessage::Ack(Wire::new(&ack)));
                }
                Done::Ack(..) | Done::Refused(Job::Copy(_)) => {}
            }
        }
    }

    /// Decides a claim against this node's vote and writes the new vote
    /// (unflushed); answers the reply and whether anything was written.
    fn store_vote(&self, claim: &Claim) -> Result<(ClaimReply, bool), StoreError> {
        let current = replication::read_vote(&self.votes, &claim.class_id)?;
        let (granted, behind, vote) = match replication::decide(&current, claim) {
            Ok(next) => {
                self.disk.write(Write::Vote)?;
                replication::write_vote(&self.votes, &claim.class_id, &next)?;
                (true, false, next)
            }
            Err(behind) => (false, behind, current),
        };
        let reply = ClaimReply {
            claim_id: claim.claim_id.clone(),
            voter: self.node_id.clone(),
            granted,
            behind,
            unavailable: false,
            vote,
        };
        Ok((reply, granted))
    }

    /// Claims the epoch after `after` for a class, with `replica`, from a
    /// majority of the edges this node knows, in both rounds (promise, then
    /// establish). Answers the epoch won. A claim outbid by another
    /// claimant's promise tries again higher, a few times.
    ///
    /// # Errors
    /// [`PlaceError::Elsewhere`] when a voter knows a newer home or copy,
    /// [`PlaceError::NoQuorum`] when too few grant in time.
    pub async fn claim(
        &self,
        class_id: &str,
        after: u64,
        replica: Option<String>,
    ) -> Result<u64, PlaceError> {
        const ATTEMPTS: usize = 3;
        if let Some(reason) = self.storage_fault() {
            self.counters.claims.with_label_values(&["storage"]).inc();
            return Err(PlaceError::Storage(reason));
        }
        let data_epoch = replication::data_epoch(&self.store, class_id)
            .map_err(|err| self.storage_error("read a class copy", &err))?;
        let mut above = after.max(data_epoch);
        let mut outcome = Err(PlaceError::NoQuorum {
            granted: 0,
            needed: 1,
        });
        for _ in 0..ATTEMPTS {
            let known = replication::read_vote(&self.votes, class_id)
                .map_err(|err| self.storage_error("read a vote", &err))?
                .epoch;
            let mut claim = Claim {
                claim_id: format!(
                    "{}-{}-{}",
                    self.node_id,
                    super::now_ms(),
                    PART_KEYS.fetch_add(1, Ordering::Relaxed)
                ),
                class_id: class_id.to_owned(),
                epoch: above.max(known) + 1,
                home: self.node_id.clone(),
                replica: replica.clone(),
                data_epoch,
                establish: false,
            };
            let promised = self.round(&claim).await;
            let round = match promised {
                Ok(()) => {
                    claim.establish = true;
                    self.round(&claim).await
                }
                Err(err) => Err(err),
            };
            let outcome_label = match &round {
                Ok(()) => "won",
                Err(Refused::Outbid(_)) => "outbid",
                Err(Refused::Behind(_)) => "behind",
                Err(Refused::NoQuorum { .. }) => "no_quorum",
                Err(Refused::Storage(_)) => "storage",
            };
            self.counters
                .claims
                .with_label_values(&[outcome_label])
                .inc();
            match round {
                Ok(()) => return Ok(claim.epoch),
                Err(Refused::Outbid(vote)) => {
                    above = above.max(vote.epoch);
                    outcome = Err(PlaceError::Elsewhere(vote));
                }
                Err(Refused::Behind(vote)) => return Err(PlaceError::Elsewhere(vote)),
                Err(Refused::NoQuorum { granted, needed }) => {
                    return Err(PlaceError::NoQuorum { granted, needed })
                }
                Err(Refused::Storage(reason)) => return Err(PlaceError::Storage(reason)),
            }
        }
        outcome
    }

    /// Records a failed read of the live store for a claim; the claim's
    /// error.
    fn storage_error(&self, doing: &str, err: &StoreError) -> PlaceError {
        self.storage_failed(doing, err);
        self.counters.claims.with_label_values(&["storage"]).inc();
        PlaceError::Storage(format!("cannot {doing}: {err}"))
    }

    /// One round of a claim: the alive peers' votes, then (only when they
    /// make a majority with it) this node's own. A node that cannot win
    /// never promises itself anything, so a cut-off or outdated node does
    /// not outbid the real home while it keeps trying.
    async fn round(&self, claim: &Claim) -> Result<(), Refused> {
        // Without a membership there is no majority to count: never claim
        // alone then (a stopping node would otherwise win every vote).
        let Some(peers) = (self.peers)() else {
            return Err(Refused::NoQuorum {
                granted: 0,
                needed: 1,
            });
        };
        // A majority of every edge known, this one included.
        let voters = peers.len() + 1;
        let needed = voters / 2 + 1;
        let from_peers = if needed > 1 {
            self.ask_peers(claim, &peers, needed - 1).await
        } else {
            Ok(())
        };
        from_peers?;
        let own = self.vote(claim).await;
        if own.granted {
            Ok(())
        } else if own.unavailable {
            // This node cannot vote: a failed store never will (the claim
            // fails), a full queue may in a moment (retried as too few
            // votes).
            Err(match self.storage_fault() {
                Some(reason) => Refused::Storage(reason),
                None => Refused::NoQuorum {
                    granted: needed - 1,
                    needed,
                },
            })
        } else if own.behind {
            Err(Refused::Behind(own.vote))
        } else {
            Err(Refused::Outbid(own.vote))
        }
    }

    /// Sends a claim to the alive peers; Ok once `needed` granted it.
    async fn ask_peers(&self, claim: &Claim, peers: &[Peer], needed: usize) -> Result<(), Refused> {
        let mut granted = 0;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(claim.claim_id.clone(), tx);
        let wire = Wire::new(claim);
        let mut asked = 0;
        for peer in peers.iter().filter(|p| p.alive) {
            if to_hub(&peer.node_id, LiveHubMessage::Claim(wire.clone())) {
                asked += 1;
            }
        }
        let deadline = tokio::time::Instant::now() + self.limits.claim_timeout;
        let mut refusal: Option<Refused> = None;
        let mut answered = 0;
        let outcome = loop {
            if granted >= needed {
                break Ok(());
            }
            if answered >= asked || granted + (asked - answered) < needed {
                break Err(refusal.unwrap_or(Refused::NoQuorum {
                    granted: granted + 1,
                    needed: needed + 1,
                }));
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => {
                    answered += 1;
                    if reply.granted {
                        granted += 1;
                    } else if reply.unavailable {
                        // A voter that cannot vote is one that did not
                        // answer: it says nothing of where the class is.
                    } else if reply.behind {
                        refusal = Some(Refused::Behind(reply.vote));
                    } else if !matches!(refusal, Some(Refused::Behind(_))) {
                        refusal = Some(Refused::Outbid(reply.vote));
                    }
                }
                Ok(None) | Err(_) => {
                    break Err(refusal.unwrap_or(Refused::NoQuorum {
                        granted: granted + 1,
                        needed: needed + 1,
                    }))
                }
            }
        };
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&claim.claim_id);
        outcome
    }

    /// Claims as [`Self::claim`] does, choosing the replica afresh each
    /// time, and tries again while too few voters answer (actor sessions
    /// come back a moment after gossip does), until `class_start_timeout`.
    ///
    /// # Errors
    /// As [`Self::claim`]; `NoQuorum` once the time is up.
    pub async fn claim_patiently(
        &self,
        class_id: &str,
        after: u64,
    ) -> Result<(u64, Option<String>), PlaceError> {
        let deadline = tokio::time::Instant::now() + self.limits.class_start_timeout;
        loop {
            let replica = self.choose_replica();
            match self.claim(class_id, after, replica.clone()).await {
                Ok(epoch) => return Ok((epoch, replica)),
                Err(PlaceError::NoQuorum { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.limits.replica_retry / 4).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Starts the classroom here unless it already runs here: claims the
    /// class's next epoch, then starts from this node's copy (if any).
    ///
    /// # Errors
    /// [`PlaceError::TooManyClasses`] past the tenant's limit, the claim's
    /// errors, [`PlaceError::Busy`] while another start runs, or the spawn
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
        if !self
            .hosting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(class_id.to_owned())
        {
            return Err(PlaceError::Busy);
        }
        let started = self.start_classroom(class_id, tenant_id).await;
        self.hosting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(class_id);
        started
    }

    async fn start_classroom(
        self: &Arc<Self>,
        class_id: &str,
        tenant_id: &str,
    ) -> Result<ActorRef<ClassroomMessage>, PlaceError> {
        let (epoch, replica) = self.claim_patiently(class_id, 0).await?;
        let args = ClassroomArgs {
            class_id: class_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            node: Arc::downgrade(self),
            epoch,
            replica: replica.clone(),
        };
        let hub = self
            .hub
            .get()
            .cloned()
            .ok_or_else(|| ActorsError::Spawn("the hub is not running".into()))?;
        // Linked to the hub, which hears when a classroom fails.
        let (actor, _handle) = Actor::spawn_linked(None, ClassroomActor, args, hub)
            .await
            .map_err(|err| ActorsError::Spawn(err.to_string()))?;
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(class_id);
        {
            let mut homed = self.homed.lock().unwrap_or_else(PoisonError::into_inner);
            join_group(&classroom_group(class_id), actor.get_cell());
            homed.insert(class_id.to_owned(), (tenant_id.to_owned(), actor.clone()));
        }
        let _started = actor.cast(ClassroomMessage::control(&Control::Start));
        tracing::info!(
            class_id,
            tenant_id,
            epoch,
            replica = replica.as_deref().unwrap_or("none"),
            "classroom homed here"
        );
        Ok(actor)
    }

    /// Where the votes say to start a class: its last home if alive, else
    /// the replica holding its newest copy, if alive; never this node.
    fn pointed_at(&self, vote: &Vote) -> Option<String> {
        [Some(vote.home.clone()), vote.replica.clone()]
            .into_iter()
            .flatten()
            .find(|node| node != &self.node_id && !node.is_empty() && self.alive(node))
    }

    fn ask_host(&self, node_id: &str, class_id: &str, tenant_id: &str, hops: u8) -> bool {
        let host = Wire::new(&Host {
            class_id: class_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            hops,
        });
        to_hub(node_id, LiveHubMessage::Host(host))
    }

    /// Finds the class's classroom, or has it started: on `home` (this
    /// node when `home` is this node), or where the votes point when the
    /// class already lived somewhere; then waits for it to be reachable.
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
        let deadline = tokio::time::Instant::now() + self.limits.class_start_timeout;
        let mut target = Some(home.to_owned());
        let mut asked = HashSet::new();
        let mut last_error = None;
        loop {
            if let Some(actor) = self.classroom(class_id) {
                return Ok(actor);
            }
            if let Some(node) = target.take().filter(|node| asked.insert(node.clone())) {
                if node == self.node_id {
                    match self.host(class_id, tenant_id).await {
                        Ok(actor) => return Ok(actor),
                        Err(PlaceError::Elsewhere(vote)) => {
                            target = self.pointed_at(&vote);
                            last_error = Some(PlaceError::Elsewhere(vote));
                        }
                        Err(PlaceError::Busy) => {}
                        Err(err @ PlaceError::TooManyClasses(_)) => return Err(err),
                        Err(err) => last_error = Some(err),
                    }
                } else if !self.ask_host(&node, class_id, tenant_id, 0) {
                    // The chosen home is unreachable from here: try here.
                    target = Some(self.node_id.clone());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(
                    last_error.unwrap_or(PlaceError::Timeout(self.limits.class_start_timeout))
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Tells a classroom homed here that another home holds its class at
    /// `epoch`; true when there was one.
    fn fence_local(&self, class_id: &str, epoch: u64) -> bool {
        self.tell_local(class_id, &Control::Fenced { epoch })
    }

    /// Sends a [`Control`] to the classroom of `class_id` homed here; false
    /// when there is none.
    fn tell_local(&self, class_id: &str, control: &Control) -> bool {
        let local = self
            .homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(class_id)
            .map(|(_, actor)| actor.clone());
        let Some(local) = local else {
            return false;
        };
        let _gone = local.cast(ClassroomMessage::control(control));
        true
    }

    /// Applies a home's batch to this node's copy of a class (unflushed);
    /// answers the acknowledgement to send once it is flushed, or None when
    /// there is none to send.
    fn store_copy(&self, batch: &Replicate) -> Result<Option<ReplicaAck>, StoreError> {
        if self.fence_local(&batch.class_id, batch.epoch) {
            let vote = replication::read_vote(&self.votes, &batch.class_id)?;
            if batch.epoch >= vote.epoch {
                // This node still runs an older home of the class, in the
                // tree the copy goes to: no copy, no answer, until it has
                // stopped; the sender tries again.
                return Ok(None);
            }
        }
        let copy = self
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&batch.class_id)
            .cloned();
        let (result, copy) = replication::apply(
            self.disk.as_ref(),
            &self.store,
            &self.votes,
            &self.node_id,
            copy.as_ref(),
            batch,
        )?;
        let seq = copy.as_ref().map_or(0, |c| c.seq);
        if let Some(copy) = copy {
            self.copies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(batch.class_id.clone(), copy);
        }
        Ok(Some(ReplicaAck {
            class_id: batch.class_id.clone(),
            epoch: batch.epoch,
            replica: self.node_id.clone(),
            seq,
            result,
        }))
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
            .cast(ClassroomMessage::command(&envelope))
            .map_err(|err| ActorsError::Call(err.to_string()))
    }

    /// Tells every classroom homed here that `node_id` is gone, so its
    /// sessions leave (and a class whose replica it was finds another);
    /// takes over the classes this node copies from it; closes local
    /// sessions of classes homed on it, so they resume at the new home.
    pub fn node_down(self: &Arc<Self>, node_id: &str) {
        let orphans: Vec<(String, String)> = self
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, copy)| copy.home == node_id)
            .map(|(class_id, copy)| (class_id.clone(), copy.tenant_id.clone()))
            .collect();
        for (class_id, tenant_id) in orphans {
            let node = self.clone();
            tokio::spawn(async move {
                match node.host(&class_id, &tenant_id).await {
                    Ok(_) => {
                        node.counters.takeovers.inc();
                        tracing::info!(class_id, "took the class over from its dead home");
                    }
                    Err(err) => {
                        tracing::warn!(class_id, error = %err, "cannot take the class over")
                    }
                }
            });
        }
        let closed = self.registry.close_moved(node_id);
        if closed > 0 {
            tracing::info!(node_id, closed, "sessions told their class's home is gone");
        }
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
        let message = Wire::new(&envelope);
        for actor in homed {
            let _stopped = actor.cast(ClassroomMessage::Command(message.clone()));
        }
    }

    /// Stops every classroom homed here (the node is shutting down) and
    /// waits for each to finish (up to [`CLASSROOM_STOP_WAIT`] each), so their last snapshots are written and their sled handles
    /// dropped while the store is still open. A classroom dropped during the
    /// runtime's own shutdown, after the store, hung the process in sled's
    /// flush.
    pub async fn stop_all(&self) {
        let homed: Vec<_> = self
            .homed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, (_, actor))| actor)
            .collect();
        for actor in homed {
            if let Err(err) = actor.stop_and_wait(None, Some(CLASSROOM_STOP_WAIT)).await {
                tracing::warn!(error = %err, "a classroom did not stop in time");
            }
        }
    }
}

/// What the storage worker did with one job, to answer once the run is
/// flushed.
enum Done {
    /// A vote decided (and, when granted, written).
    Vote {
        claim: Claim,
        answer: Answer,
        reply: ClaimReply,
    },
    /// A batch applied: the home, and the acknowledgement (if any).
    Ack(String, Option<ReplicaAck>),
    /// Refused: the store has failed.
    Refused(Job),
}

/// Why a round of a claim failed.
enum Refused {
    /// Someone promised a higher epoch (to another claimant): try higher.
    Outbid(Vote),
    /// The claimant's copy is older than an established epoch.
    Behind(Vote),
    /// Too few voters answered in time.
    NoQuorum { granted: usize, needed: usize },
    /// This node's store failed: it cannot vote.
    Storage(String),
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
            LiveHubMessage::Part(part) => match part.open() {
                Ok(part) => {
                    let kind = part.kind;
                    match state.piece(part) {
                        Some(whole) => Large::joined(kind, whole.into_bytes()).into_message(),
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
            LiveHubMessage::Deliver(wire) => match wire.open() {
                Ok(deliver) => node.registry.deliver(&deliver.class_id, &deliver.events),
                Err(err) => tracing::warn!(error = %err, "undecodable delivery dropped"),
            },
            LiveHubMessage::Direct(wire) => match wire.open() {
                Ok(direct) => node.registry.direct(direct),
                Err(err) => tracing::warn!(error = %err, "undecodable direct message dropped"),
            },
            LiveHubMessage::Host(wire) => match wire.open() {
                // Claiming takes round trips: never inside the hub, which
                // must keep delivering.
                Ok(host) => {
                    tokio::spawn(async move {
                        match node.host(&host.class_id, &host.tenant_id).await {
                            Ok(_) | Err(PlaceError::Busy) => {}
                            Err(PlaceError::Elsewhere(vote)) if host.hops == 0 => {
                                if let Some(next) = node.pointed_at(&vote) {
                                    node.ask_host(&next, &host.class_id, &host.tenant_id, 1);
                                }
                            }
                            Err(err) => {
                                tracing::warn!(class_id = host.class_id, error = %err, "cannot host a class");
                            }
                        }
                    });
                }
                Err(err) => tracing::warn!(error = %err, "undecodable host request dropped"),
            },
            LiveHubMessage::Claim(wire) => match wire.open() {
                // Stored off the hub, which must keep delivering; the
                // worker answers the claimant once the vote is flushed.
                Ok(claim) => node.submit(Job::Vote {
                    claim,
                    answer: Answer::Hub,
                }),
                Err(err) => tracing::warn!(error = %err, "undecodable claim dropped"),
            },
            LiveHubMessage::Vote(wire) => match wire.open() {
                Ok(reply) => {
                    let waiting = node
                        .claims
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&reply.claim_id)
                        .cloned();
                    if let Some(waiting) = waiting {
                        let _done = waiting.send(reply);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "undecodable vote dropped"),
            },
            LiveHubMessage::Replicate(wire) => match wire.open() {
                Ok(batch) => node.submit(Job::Copy(Box::new(batch))),
                Err(err) => tracing::warn!(error = %err, "undecodable class copy dropped"),
            },
            LiveHubMessage::Ack(wire) => match wire.open() {
                Ok(ack) => {
                    let class_id = ack.class_id.clone();
                    node.tell_local(&class_id, &Control::Ack(ack));
                }
                Err(err) => tracing::warn!(error = %err, "undecodable replica answer dropped"),
            },
            LiveHubMessage::Failed(wire) => match wire.open() {
                Ok(failed) => {
                    let closed = node.registry.close_class(&failed.class_id, &failed.home);
                    tracing::info!(
                        class_id = failed.class_id,
                        closed,
                        "sessions told their class's classroom failed"
                    );
                }
                Err(err) => tracing::warn!(error = %err, "undecodable classroom failure dropped"),
            },
            LiveHubMessage::Part(_) => {}
        }
        Ok(())
    }

    /// The classrooms homed here are linked to the hub. The hub outlives
    /// them: one that fails is forgotten and its sessions resume (see
    /// [`LiveNode::classroom_failed`]); one that stops needs nothing (it
    /// forgot itself). ractor's default would stop the hub instead.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(actor, error) = event {
            if let Some(node) = state.node.upgrade() {
                node.classroom_failed(actor.get_id(), &error.to_string());
            }
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

/// Sends a [`Large`] message, in pieces of at most
/// [`HUB_MESSAGE_BYTES_MAX`] when it is larger; false when the hub is not
/// reachable.
pub(super) fn to_hub_large(node_id: &str, message: Large) -> bool {
    if message.len() <= HUB_MESSAGE_BYTES_MAX {
        return to_hub(node_id, message.into_message());
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
    let kind = message.kind();
    // serde_json writes UTF-8, so the pieces can be cut at characters.
    let Ok(text) = String::from_utf8(message.into_json()) else {
        return false;
    };
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
            kind,
            text: piece.to_owned(),
            last: rest.is_empty(),
        };
        if hub.cast(LiveHubMessage::Part(Wire::new(&part))).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests;
