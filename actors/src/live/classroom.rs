//! The classroom actor: one per live class, on its home node. It holds the
//! class's state, numbers its events, keeps the replay buffer, stores the
//! log and snapshots in sled, and sends each event once to every node that
//! has sessions in the class.
//!
//! *Storage.* Tree `class:<id>`: key `s` holds the latest snapshot (state
//! and epoch), keys `e` + big-endian seq hold events. A snapshot is written
//! every `snapshot_every_events`; events older than the snapshot minus the
//! replay buffer are trimmed. A classroom started on a node that has the
//! class stored resumes from it (same events, same numbers), at the epoch
//! its claim won.
//!
//! *Replication.* Everything bound for a hub waits in an outbox until the
//! replica has acknowledged the events it depends on (see
//! [`super::replication`]); a refusal from the replica means a newer home
//! exists, and this one steps down.

use crate::live::protocol::LiveErrorCode;
use std::{
    collections::{HashMap, VecDeque},
    sync::Weak,
    time::Duration,
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::bucket::Bucket;
use super::storage::Write;
use super::wire::Wire;

use super::{
    class::{ClassState, CommandError, Participant},
    hub::{to_hub_large, AttendanceReport, Deliver, Direct, Large, LiveNode},
    now_ms,
    protocol::{close, Audience, ClientBody, Event, EventKind, Reply},
    replication::{self, event_key, AckResult, ReplicaAck, Replicate, Stored, SNAPSHOT_KEY},
};

/// What a classroom understands. Payloads are typed [`Wire`]s so they
/// cross nodes as JSON, and a damaged one is a logged decode error in the
/// classroom rather than a panic in the transport.
#[derive(RactorClusterMessage)]
pub enum ClassroomMessage {
    /// One input from a session (or the node).
    Command(Wire<Envelope>),
    /// A [`Control`] from this node: timers, the replica's answers, the
    /// outcome of a new epoch's claim.
    Control(Wire<Control>),
}

impl ClassroomMessage {
    /// A control message for a classroom.
    pub fn control(control: &Control) -> Self {
        Self::Control(Wire::new(control))
    }

    /// An input for a classroom.
    pub fn command(envelope: &Envelope) -> Self {
        Self::Command(Wire::new(envelope))
    }
}

/// What drives a classroom's replication.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// The classroom is registered on its node: copy the class to the
    /// replica.
    Start,
    /// Time passed: resend when the replica has been silent too long.
    Tick,
    /// The replica answered.
    Ack(ReplicaAck),
    /// A claim for a new epoch with a new replica was granted.
    Reconfigured {
        /// The epoch won.
        epoch: u64,
        /// The replica named in the claim.
        replica: Option<String>,
    },
    /// It was not: someone else holds the class, or too few voters answered.
    Lost {
        /// Why, for the log.
        reason: String,
    },
    /// Another node holds the class at `epoch` (it replicates to this node,
    /// or this node accepted its claim): give the class up if that is newer.
    Fenced {
        /// The other home's epoch.
        epoch: u64,
    },
    /// Fail now, as a bug would (tests of the hub's supervision only).
    #[cfg(test)]
    Panic,
}

/// One input and who sent it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The node of the session.
    pub node_id: String,
    /// The session on that node.
    pub session_id: u64,
    /// Who (from their verified ticket).
    pub who: Participant,
    /// What.
    pub input: Input,
}

/// The inputs of a classroom.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A session opened (or resumed from `last_seq`).
    Join {
        /// The largest `seq` the client saw.
        last_seq: Option<u64>,
        /// The region serving the session (for the welcome).
        region: String,
    },
    /// A session closed.
    Leave,
    /// A client command.
    Client {
        /// The request id, for replies.
        id: Option<String>,
        /// The command.
        body: ClientBody,
    },
    /// A learner's submission started running on their node.
    SubmissionStarted {
        /// Assignment.
        assignment_id: String,
    },
    /// It finished.
    SubmissionFinished {
        /// Assignment.
        assignment_id: String,
        /// Sandbox run id.
        run_id: String,
        /// Verdict.
        verdict: String,
        /// Tests passed.
        passed: u32,
        /// Tests run.
        total: u32,
        /// Region that ran it.
        region: String,
    },
    /// Every session of `node_id` is gone (gossip declared it down).
    NodeDown,
}

/// What a classroom starts from.
#[derive(Debug)]
pub struct ClassroomArgs {
    /// The class.
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The node it lives on.
    pub node: Weak<LiveNode>,
    /// The epoch its claim won.
    pub epoch: u64,
    /// The replica its claim named (None only for a node alone).
    pub replica: Option<String>,
}

/// Something for a hub, held until the replica has what it depends on.
#[derive(Debug)]
struct Held {
    /// The class's `seq` it reflects.
    needs: u64,
    node_id: String,
    message: Large,
}

/// The running classroom.
#[derive(Debug)]
pub struct ClassroomState {
    class: ClassState,
    epoch: u64,
    node: Weak<LiveNode>,
    tree: sled::Tree,
    replay: VecDeque<Event>,
    replay_max: usize,
    snapshot_every: u64,
    members_max: usize,
    /// Open connections: (node, session) → user.
    connections: HashMap<(String, u64), String>,
    /// Connections per node: the nodes to deliver to.
    subscribers: HashMap<String, usize>,
    /// Commands the class still accepts this second.
    commands: Bucket,
    /// The replica, when there is one.
    replica: Option<String>,
    /// The largest `seq` the replica has acknowledged at this epoch.
    acked: u64,
    /// When the replica last made progress (or was sent a full copy).
    progressed: Instant,
    /// Messages waiting for the replica.
    outbox: VecDeque<Held>,
    /// A claim for a new replica is under way.
    reconfiguring: bool,
    /// This home gave the class up; it is stopping.
    stepped_down: bool,
    myself: Option<ActorRef<ClassroomMessage>>,
}

/// The classroom actor.
#[derive(Debug)]
pub struct ClassroomActor;

/// Loads a stored class: its snapshot, then the events after it.
fn load(
    tree: &sled::Tree,
    class_id: &str,
    tenant_id: &str,
) -> Result<(ClassState, u64, Vec<Event>), String> {
    let (mut state, epoch) = match tree.get(SNAPSHOT_KEY).map_err(|e| e.to_string())? {
        Some(bytes) => {
            let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            (stored.state, stored.epoch)
        }
        None => (ClassState::new(class_id, tenant_id, now_ms()), 0),
    };
    let mut events = Vec::new();
    for item in tree.range(event_key(0)..=event_key(u64::MAX)) {
        let (_, bytes) = item.map_err(|e| e.to_string())?;
        let event: Event = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if event.seq > state.seq {
            state.fold(&event);
        }
        events.push(event);
    }
    Ok((state, epoch, events))
}

impl Actor for ClassroomActor {
    type Msg = ClassroomMessage;
    type State = ClassroomState;
    type Arguments = ClassroomArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ClassroomArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let node = args
            .node
            .upgrade()
            .ok_or("the live node is shutting down")?;
        let tree = replication::class_tree(node.store(), &args.class_id)?;
        let (class, stored_epoch, events) = load(&tree, &args.class_id, &args.tenant_id)?;
        assert!(
            args.epoch > stored_epoch,
            "a claim is granted only above the stored copy's epoch"
        );
        let epoch = args.epoch;
        replication::write_snapshot(&tree, epoch, &class)?;
        let limits = node.limits().clone();
        let replay: VecDeque<Event> = events
            .into_iter()
            .rev()
            .take(limits.replay_events_max)
            .rev()
            .collect();
        let rate = f64::from(limits.class_commands_per_second.max(1));
        let mut state = ClassroomState {
            class,
            epoch,
            node: args.node,
            tree,
            replay,
            replay_max: limits.replay_events_max,
            snapshot_every: limits.snapshot_every_events.max(1),
            members_max: limits.class_members_max,
            connections: HashMap::new(),
            subscribers: HashMap::new(),
            commands: Bucket::full(rate, Instant::now()),
            acked: 0,
            progressed: Instant::now(),
            outbox: VecDeque::new(),
            reconfiguring: false,
            stepped_down: false,
            myself: Some(myself.clone()),
            replica: args.replica,
        };
        state.acked = if state.replica.is_none() {
            u64::MAX
        } else {
            state.class.seq
        };
        let period = limits.replica_retry / 2;
        myself.send_interval(period.max(Duration::from_millis(10)), || {
            ClassroomMessage::control(&Control::Tick)
        });
        // Whoever was connected to the previous home is not connected to
        // this one until they join again.
        let departed: Vec<_> = state
            .class
            .members
            .keys()
            .filter_map(|user| state.class.depart(user))
            .collect();
        state.emit(departed);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let wire = match message {
            ClassroomMessage::Command(wire) => wire,
            ClassroomMessage::Control(wire) => {
                match wire.open() {
                    Ok(control) => state.control(control),
                    Err(err) => {
                        tracing::warn!(error = %err, "undecodable classroom control dropped")
                    }
                }
                return Ok(());
            }
        };
        if state.stepped_down {
            return Ok(());
        }
        let envelope = match wire.open() {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(error = %err, "undecodable classroom input dropped");
                return Ok(());
            }
        };
        let was_ended = state.class.ended();
        state.input(envelope);
        if !was_ended && state.class.ended() {
            if let Some(node) = state.node.upgrade() {
                node.report_attendance(AttendanceReport {
                    class_id: state.class.class_id.clone(),
                    tenant_id: state.class.tenant_id.clone(),
                    epoch: state.epoch,
                    started_at_ms: state.class.started_at_ms,
                    ended_at_ms: state.class.ended_at_ms.unwrap_or_else(now_ms),
                    attendees: state.class.attendance(now_ms()),
                });
                let linger = node.limits().ended_linger;
                let actor = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(linger).await;
                    actor.stop(Some("class ended".into()));
                });
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.myself = None;
        // A home that gave the class up keeps its copy as it was: the new
        // home's copy may be written into the same tree next.
        if !state.stepped_down {
            state.store_snapshot();
        }
        if let Some(node) = state.node.upgrade() {
            node.forget(&state.class.class_id);
        }
        Ok(())
    }
}

impl ClassroomState {
    fn input(&mut self, envelope: Envelope) {
        let Envelope {
            node_id,
            session_id,
            who,
            input,
        } = envelope;
        match input {
            Input::Join { last_seq, region } => {
                self.join(&node_id, session_id, &who, last_seq, &region)
            }
            Input::Leave => {
                if self
                    .connections
                    .remove(&(node_id.clone(), session_id))
                    .is_some()
                {
                    self.unsubscribe(&node_id);
                    if !self.connected(&who.user_id) {
                        let event = self.class.depart(&who.user_id);
                        self.emit(event.into_iter().collect());
                    }
                }
            }
            Input::NodeDown => {
                if self.replica.as_deref() == Some(node_id.as_str()) {
                    self.reconfigure();
                }
                let gone: Vec<_> = self
                    .connections
                    .keys()
                    .filter(|(node, _)| *node == node_id)
                    .cloned()
                    .collect();
                let mut users = Vec::new();
                for key in gone {
                    if let Some(user) = self.connections.remove(&key) {
                        users.push(user);
                    }
                }
                self.subscribers.remove(&node_id);
                users.sort();
                users.dedup();
                let events: Vec<_> = users
                    .iter()
                    .filter(|user| !self.connected(user))
                    .filter_map(|user| self.class.depart(user))
                    .collect();
                self.emit(events);
            }
            Input::Client { id, body } => {
                if !self
                    .connections
                    .contains_key(&(node_id.clone(), session_id))
                {
                    self.reply(
                        &node_id,
                        session_id,
                        Reply::error(LiveErrorCode::JoinRequired, "join the class first", id),
                    );
                    return;
                }
                if !self.commands.take(Instant::now()) {
                    self.reply(
                        &node_id,
                        session_id,
                        Reply::error(
                            LiveErrorCode::RateLimited,
                            "this class is receiving too many messages; slow down",
                            id,
                        ),
                    );
                    return;
                }
                match self.class.decide(&who, &body) {
                    Ok(events) => self.emit(events),
                    Err(CommandError { code, message }) => {
                        self.reply(&node_id, session_id, Reply::error(code, message, id));
                    }
                }
            }
            Input::SubmissionStarted { assignment_id } => {
                match self.class.check_submission(&who, &assignment_id) {
                    Ok(_) => self.emit(vec![(
                        Audience::instructors_and(vec![who.user_id.clone()]),
                        EventKind::SubmissionStarted {
                            assignment_id,
                            user_id: who.user_id.clone(),
                            name: who.name.clone(),
                        },
                    )]),
                    Err(CommandError { code, message }) => {
                        self.reply(&node_id, session_id, Reply::error(code, message, None));
                    }
                }
            }
            Input::SubmissionFinished {
                assignment_id,
                run_id,
                verdict,
                passed,
                total,
                region,
            } => {
                // A run that finishes after the class ended still counts
                // for the learner's record, but the class is closed.
                if self.class.assignment(&assignment_id).is_some() && !self.class.ended() {
                    self.emit(vec![(
                        Audience::instructors_and(vec![who.user_id.clone()]),
                        EventKind::Submission {
                            assignment_id,
                            user_id: who.user_id.clone(),
                            name: who.name.clone(),
                            run_id,
                            verdict,
                            passed,
                            total,
                            region,
                        },
                    )]);
                }
            }
        }
    }

    fn connected(&self, user_id: &str) -> bool {
        self.connections.values().any(|user| user == user_id)
    }

    fn unsubscribe(&mut self, node_id: &str) {
        if let Some(count) = self.subscribers.get_mut(node_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.subscribers.remove(node_id);
            }
        }
    }

    fn join(
        &mut self,
        node_id: &str,
        session_id: u64,
        who: &Participant,
        last_seq: Option<u64>,
        region: &str,
    ) {
        let known = self.class.members.contains_key(&who.user_id);
        if !known && self.class.members.len() >= self.members_max {
            self.send_direct(
                Direct {
                    class_id: self.class.class_id.clone(),
                    session_id,
                    reply: Some(Reply::error(
                        LiveErrorCode::ClassFull,
                        format!("the class holds at most {} people", self.members_max),
                        None,
                    )),
                    close: Some((
                        super::protocol::close::CLASS_UNAVAILABLE,
                        "class_full".into(),
                    )),
                    ..Direct::default()
                },
                node_id,
            );
            return;
        }
        let seq = self.class.seq;
        let oldest = self.replay.front().map_or(seq + 1, |e| e.seq);
        let replayable = last_seq.filter(|last| *last <= seq && last + 1 >= oldest);
        let (events, snapshot) = match replayable {
            Some(last) => (
                self.replay
                    .iter()
                    .filter(|e| e.seq > last && e.audience.includes(&who.user_id, who.role))
                    .cloned()
                    .collect::<Vec<_>>(),
                None,
            ),
            None => (
                Vec::new(),
                Some((seq, self.class.snapshot_for(&who.user_id, who.role))),
            ),
        };
        let node_name = self
            .node
            .upgrade()
            .map(|node| node.node_id().to_owned())
            .unwrap_or_default();
        let welcome = Reply::Welcome {
            class_id: self.class.class_id.clone(),
            user_id: who.user_id.clone(),
            role: who.role,
            node_id: node_id.to_owned(),
            region: region.to_owned(),
            home_node_id: node_name,
            epoch: self.epoch,
            resumed: replayable.is_some(),
            replayed: u64::try_from(events.len()).unwrap_or(u64::MAX),
        };
        let ended = self.class.ended();
        self.send_direct(
            Direct {
                class_id: self.class.class_id.clone(),
                session_id,
                welcome: Some(welcome),
                snapshot,
                events,
                reply: None,
                close: ended.then(|| {
                    (
                        super::protocol::close::CLASS_ENDED,
                        LiveErrorCode::ClassEnded.as_str().into(),
                    )
                }),
                assignments: self.class.assignments.clone(),
                ended,
                audio: Some(self.class.audio_view()),
            },
            node_id,
        );
        if ended {
            return;
        }
        if self
            .connections
            .insert((node_id.to_owned(), session_id), who.user_id.clone())
            .is_none()
        {
            *self.subscribers.entry(node_id.to_owned()).or_default() += 1;
        }
        let event = self.class.arrive(who);
        self.emit(event.into_iter().collect());
    }

    fn reply(&mut self, node_id: &str, session_id: u64, reply: Reply) {
        self.send_direct(
            Direct {
                class_id: self.class.class_id.clone(),
                session_id,
                reply: Some(reply),
                ..Direct::default()
            },
            node_id,
        );
    }

    fn send_direct(&mut self, direct: Direct, node_id: &str) {
        let needs = self.class.seq;
        self.hold(needs, node_id, Large::new(&direct));
    }

    /// Queues a hub message behind what the replica has not acknowledged,
    /// then sends whatever may go.
    fn hold(&mut self, needs: u64, node_id: &str, message: Large) {
        self.outbox.push_back(Held {
            needs,
            node_id: node_id.to_owned(),
            message,
        });
        if self.outbox.len() > self.pending_max() {
            self.step_down("the replica fell too far behind");
            return;
        }
        self.release();
    }

    fn pending_max(&self) -> usize {
        self.node
            .upgrade()
            .map_or(usize::MAX, |node| node.limits().replication_pending_max)
    }

    /// Sends, in order, every held message the replica has caught up with.
    fn release(&mut self) {
        while self
            .outbox
            .front()
            .is_some_and(|held| held.needs <= self.acked)
        {
            if let Some(held) = self.outbox.pop_front() {
                if !to_hub_large(&held.node_id, held.message) {
                    tracing::debug!(node_id = held.node_id, "no hub to send to");
                }
            }
        }
    }

    fn control(&mut self, control: Control) {
        if self.stepped_down {
            return;
        }
        match control {
            #[cfg(test)]
            Control::Panic => panic!("a classroom fails, as a test asked"),
            Control::Start => self.sync(),
            Control::Tick => {
                let retry = self
                    .node
                    .upgrade()
                    .map_or(Duration::from_secs(1), |node| node.limits().replica_retry);
                let behind = self.acked < self.class.seq || !self.outbox.is_empty();
                if self.reconfiguring || self.progressed.elapsed() < retry {
                    return;
                }
                let Some(replica) = self.replica.clone() else {
                    return;
                };
                if behind {
                    tracing::info!(
                        class_id = self.class.class_id,
                        replica,
                        "the replica is silent; sending the class again"
                    );
                    self.sync();
                } else {
                    // Idle: an empty batch, so a home that lost the class
                    // while nobody spoke learns it (the replica answers
                    // stale) and lets its sessions go.
                    self.progressed = Instant::now();
                    let batch = self.batch(None, None, Vec::new());
                    self.to_replica(&replica, &batch);
                }
            }
            Control::Ack(ack) => {
                if ack.epoch != self.epoch || Some(&ack.replica) != self.replica.as_ref() {
                    return;
                }
                match ack.result {
                    AckResult::Stored => {
                        self.progressed = Instant::now();
                        self.acked = self.acked.max(ack.seq);
                        self.release();
                    }
                    AckResult::Gap => self.sync(),
                    AckResult::Stale => self.step_down("a newer home holds the class"),
                }
            }
            Control::Reconfigured { epoch, replica } => {
                tracing::info!(
                    class_id = self.class.class_id,
                    epoch,
                    replica = replica.as_deref().unwrap_or("none"),
                    "class has a new replica"
                );
                self.reconfiguring = false;
                self.epoch = epoch;
                self.replica = replica;
                self.store_snapshot();
                if self.replica.is_none() {
                    self.acked = u64::MAX;
                    self.release();
                } else {
                    self.sync();
                }
            }
            Control::Lost { reason } => {
                self.reconfiguring = false;
                self.step_down(&reason);
            }
            Control::Fenced { epoch } => {
                if epoch > self.epoch {
                    self.step_down(&format!("a newer home holds the class at epoch {epoch}"));
                }
            }
        }
    }

    /// Sends the replica a full copy: the state and the replay buffer.
    fn sync(&mut self) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        self.progressed = Instant::now();
        if let Some(node) = self.node.upgrade() {
            node.counters().replica_syncs.inc();
        }
        let batch = self.batch(
            Some(self.class.clone()),
            None,
            self.replay.iter().cloned().collect(),
        );
        self.to_replica(&replica, &batch);
    }

    /// A batch for the replica at this home's epoch.
    fn batch(
        &self,
        sync: Option<ClassState>,
        snapshot: Option<ClassState>,
        events: Vec<Event>,
    ) -> Replicate {
        Replicate {
            class_id: self.class.class_id.clone(),
            tenant_id: self.class.tenant_id.clone(),
            epoch: self.epoch,
            home: self.node_name(),
            sync,
            snapshot,
            events,
            replay_max: u64::try_from(self.replay_max).unwrap_or(u64::MAX),
        }
    }

    fn to_replica(&self, replica: &str, batch: &Replicate) {
        if !to_hub_large(replica, Large::new(batch)) {
            tracing::debug!(replica, "replica unreachable; retrying later");
        }
    }

    fn node_name(&self) -> String {
        self.node
            .upgrade()
            .map(|node| node.node_id().to_owned())
            .unwrap_or_default()
    }

    /// The replica is gone: claim the next epoch with another one. Until
    /// then, everything waits in the outbox.
    fn reconfigure(&mut self) {
        if self.reconfiguring || self.stepped_down {
            return;
        }
        let (Some(node), Some(myself)) = (self.node.upgrade(), self.myself.clone()) else {
            return;
        };
        self.reconfiguring = true;
        self.acked = self.acked.min(self.class.seq);
        let class_id = self.class.class_id.clone();
        let epoch = self.epoch;
        tokio::spawn(async move {
            let control = match node.claim_patiently(&class_id, epoch).await {
                Ok((epoch, replica)) => Control::Reconfigured { epoch, replica },
                Err(err) => Control::Lost {
                    reason: err.to_string(),
                },
            };
            let _gone = myself.cast(ClassroomMessage::control(&control));
        });
    }

    /// Gives the class up: its sessions are told it moved (4011) and
    /// resume wherever it is now; nothing held is sent.
    fn step_down(&mut self, reason: &str) {
        if self.stepped_down {
            return;
        }
        tracing::warn!(
            class_id = self.class.class_id,
            epoch = self.epoch,
            reason,
            "stepping down as the class's home"
        );
        self.stepped_down = true;
        self.outbox.clear();
        if let Some(node) = self.node.upgrade() {
            node.counters().step_downs.inc();
        }
        for (node_id, session_id) in self.connections.keys() {
            let direct = Direct {
                class_id: self.class.class_id.clone(),
                session_id: *session_id,
                close: Some((
                    close::CLASS_MOVED,
                    LiveErrorCode::ClassMoved.as_str().into(),
                )),
                ..Direct::default()
            };
            let _sent = to_hub_large(node_id, Large::new(&direct));
        }
        if let Some(myself) = &self.myself {
            myself.stop(Some("stepped down".into()));
        }
    }

    /// Numbers, folds, stores and delivers events.
    fn emit(&mut self, kinds: Vec<(Audience, EventKind)>) {
        if kinds.is_empty() {
            return;
        }
        let now = now_ms();
        let mut events = Vec::with_capacity(kinds.len());
        let mut batch = sled::Batch::default();
        for (audience, kind) in kinds {
            let event = Event {
                seq: self.class.seq + 1,
                at_ms: now,
                audience,
                kind,
            };
            self.class.fold(&event);
            batch.insert(
                &event_key(event.seq),
                serde_json::to_vec(&event).unwrap_or_default(),
            );
            self.replay.push_back(event.clone());
            events.push(event);
        }
        while self.replay.len() > self.replay_max {
            self.replay.pop_front();
        }
        let stored = match self.node.upgrade() {
            Some(node) => node.disk().write(Write::Events),
            None => Ok(()),
        }
        .and_then(|()| self.tree.apply_batch(batch));
        if let Err(err) = stored {
            // Nothing of these events has left the classroom: give the
            // class up rather than run on a store that lost them; the
            // sessions resume wherever it is homed next.
            tracing::error!(class_id = self.class.class_id, error = %err, "cannot store class events");
            if let Some(node) = self.node.upgrade() {
                node.storage_failed("store class events", &err);
            }
            self.step_down("the live store failed");
            return;
        }
        let crossed = events.iter().any(|e| {
            e.seq % self.snapshot_every == 0 || matches!(e.kind, EventKind::ClassEnded {})
        });
        if crossed {
            self.store_snapshot();
        }
        if let Some(node) = self.node.upgrade() {
            node.counters()
                .events
                .inc_by(u64::try_from(events.len()).unwrap_or(0));
        }
        let last = self.class.seq;
        if let Some(replica) = self.replica.clone() {
            let batch = self.batch(None, crossed.then(|| self.class.clone()), events.clone());
            if !self.reconfiguring {
                self.to_replica(&replica, &batch);
            }
        }
        let deliver = Wire::new(&Deliver {
            class_id: self.class.class_id.clone(),
            events,
        });
        let nodes: Vec<String> = self.subscribers.keys().cloned().collect();
        for node_id in nodes {
            self.hold(last, &node_id, Large::from(deliver.clone()));
        }
    }

    /// Writes the snapshot and trims events no replay can need.
    fn store_snapshot(&self) {
        let keep_from = self
            .class
            .seq
            .saturating_sub(u64::try_from(self.replay_max).unwrap_or(u64::MAX));
        let stored = replication::write_snapshot(&self.tree, self.epoch, &self.class)
            .and_then(|()| replication::trim(&self.tree, keep_from));
        if let Err(err) = stored {
            tracing::error!(class_id = self.class.class_id, error = %err, "cannot store a class snapshot");
            if let Some(node) = self.node.upgrade() {
                node.storage_failed("store a class snapshot", &err);
            }
        }
    }
}
