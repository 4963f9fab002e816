//! The live gateway of an edge node: `GET /api/v1/live` upgrades to a
//! WebSocket and becomes one session (a task with a bounded mailbox, see
//! below), which joins one class with a ticket the control plane signed,
//! carries the client's commands to the class's classroom actor and writes
//! what the node's hub hands it. The protocol is in `actors::live::protocol`
//! and `docs/live-protocol.md`.
//!
//! *Why a task and not a ractor actor per session.* Fan-out must never wait
//! for a slow client, so a session's mailbox has to be bounded and written
//! with `try_send`; ractor mailboxes are unbounded. The session is still an
//! actor in the plain sense: it owns its socket and state, and others talk
//! to it only through its queue.
//!
//! *Attendance.* A class homed here that ends produces an attendance report;
//! it goes into the edge's durable attendance outbox (`crate::outbox`), whose
//! publisher posts it to the control plane (`POST /api/v1/live/attendance`,
//! idempotent by class) until it is taken, across restarts.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use crate::edge::EdgeState;
use crate::shutdown::Shutdown;
use actors::live::{
    class::Participant,
    classroom::Input,
    hub::{AttendanceReport, LiveNode, Outbound, SessionHandle},
    protocol::{self, close, ClassRole, ClientBody, ClientFrame, LiveErrorCode, Reply},
    LiveConfig,
};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use futures_util::{SinkExt as _, StreamExt as _};

/// The limits the actors enforce, from the `[live]` section.
pub fn limits(config: &LiveConfig) -> actors::live::LiveLimits {
    actors::live::LiveLimits {
        replay_events_max: config.replay_events_max,
        session_queue_max: config.session_queue_max,
        class_members_max: config.class_members_max,
        class_commands_per_second: config.class_commands_per_second,
        classes_per_tenant_max: config.classes_per_tenant_max,
        snapshot_every_events: config.snapshot_every_events,
        class_start_timeout: Duration::from_millis(config.class_start_timeout_ms),
        ended_linger: Duration::from_millis(config.ended_linger_ms),
        replica_retry: Duration::from_millis(config.replica_retry_ms),
        claim_timeout: Duration::from_millis(config.claim_timeout_ms),
        replication_pending_max: config.replication_pending_max,
        storage_queue_max: config.storage_queue_max,
    }
}

/// Tenants whose frame budgets one node tracks at once.
const TENANTS_TRACKED_MAX: usize = 100_000;

/// Ended classes' attendance reports the hub may hand over while the
/// attendance outbox is full.
const ATTENDANCE_CHANNEL_MAX: usize = 1024;

/// The gateway's shared state on one node.
pub struct Gateway {
    config: LiveConfig,
    node: Arc<LiveNode>,
    /// Sessions per tenant on this node.
    tenants: Mutex<HashMap<String, usize>>,
    /// Frames per tenant on this node.
    tenant_rate: crate::rate_limit::RateLimiter,
    metrics: LiveMetrics,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Prometheus series of the live gateway.
#[derive(Clone)]
struct LiveMetrics {
    sessions: prometheus::IntGauge,
    classes: prometheus::IntGauge,
    frames_in: prometheus::IntCounter,
    frames_out: prometheus::IntCounter,
    refused: prometheus::IntCounterVec,
    closed: prometheus::IntCounterVec,
}

impl LiveMetrics {
    fn new(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let sessions =
            prometheus::IntGauge::new("live_sessions", "Live WebSocket sessions on this node")?;
        let classes =
            prometheus::IntGauge::new("live_homed_classes", "Live classes homed on this node")?;
        let frames_in = prometheus::IntCounter::new(
            "live_frames_in_total",
            "Frames received from live clients",
        )?;
        let frames_out =
            prometheus::IntCounter::new("live_frames_out_total", "Frames written to live clients")?;
        let refused = prometheus::IntCounterVec::new(
            prometheus::Opts::new("live_refused_total", "Client frames refused, by error code"),
            &["code"],
        )?;
        let closed = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "live_closed_total",
                "Live sessions closed by the server, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(classes.clone()))?;
        registry.register(Box::new(frames_in.clone()))?;
        registry.register(Box::new(frames_out.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(Self {
            sessions,
            classes,
            frames_in,
            frames_out,
            refused,
            closed,
        })
    }
}

/// Who this node is among the others, for the live side: classes are
/// homed by region, copied to another region and voted on by every edge.
pub struct Whereabouts {
    /// This node.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// The membership, read when a replica is chosen or votes are counted.
    pub peers: actors::live::Peers,
}

impl Gateway {
    /// Starts this node's live side: the hub, and the task that queues
    /// each ended class's attendance report in `attendance`.
    ///
    /// # Errors
    /// When the hub cannot start or the metrics cannot register.
    pub async fn start(
        config: LiveConfig,
        whereabouts: Whereabouts,
        store: sled::Db,
        attendance: Arc<crate::outbox::Queue<control_plane::learning::live::AttendanceReport>>,
        registry: &prometheus::Registry,
        tasks: &crate::tasks::Tasks,
        shutdown: Shutdown,
    ) -> anyhow::Result<Arc<Self>> {
        let (tx, rx) = tokio::sync::mpsc::channel(ATTENDANCE_CHANNEL_MAX);
        let node = LiveNode::start(
            &whereabouts.node_id,
            &whereabouts.region,
            limits(&config),
            store.clone(),
            tx,
            whereabouts.peers,
        )
        .await?;
        node.counters().register(registry)?;
        tasks.spawn(
            "queue_attendance",
            queue_attendance(attendance, rx, shutdown),
        );
        let per_tenant = config.messages_per_tenant_per_minute.max(1);
        Ok(Arc::new(Self {
            config,
            node,
            tenant_rate: crate::rate_limit::RateLimiter::new(per_tenant, TENANTS_TRACKED_MAX),
            tenants: Mutex::new(HashMap::new()),
            metrics: LiveMetrics::new(registry)?,
        }))
    }

    /// The node's live side.
    pub fn node(&self) -> &Arc<LiveNode> {
        &self.node
    }

    fn take_tenant_slot(&self, tenant: &str) -> bool {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let count = tenants.entry(tenant.to_owned()).or_default();
        if *count >= self.config.sessions_per_tenant_max {
            return false;
        }
        *count += 1;
        true
    }

    fn give_tenant_slot(&self, tenant: &str) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = tenants.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                tenants.remove(tenant);
            }
        }
    }
}

/// `GET /api/v1/live`: the WebSocket upgrade.
pub(crate) async fn upgrade(State(state): State<EdgeState>, ws: WebSocketUpgrade) -> Response {
    let max = state.live.config.websocket_message_bytes_max;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(state.live.config.websocket_read_buffer_bytes)
        .write_buffer_size(state.live.config.websocket_write_buffer_bytes)
        .on_upgrade(move |socket| async move {
            Session::run(state, socket).await;
        })
}

/// Who a verified ticket says the client is.
struct Ticket {
    class_id: String,
    tenant_id: String,
    who: Participant,
    region: Option<String>,
}

/// One connection's writer side and position.
struct Writer {
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    /// The `seq` of the last event (or snapshot) written.
    seq: u64,
    timeout: Duration,
    frames_out: prometheus::IntCounter,
    /// The hub's signal that this session fell behind.
    kick: Arc<tokio::sync::Notify>,
    /// Set when a write was abandoned because of it.
    kicked: bool,
    /// Set once the classroom's welcome is written.
    welcomed: bool,
}

impl Writer {
    /// Writes one frame; false when the client is gone, too slow to take it
    /// within the write timeout, or the hub gave up on it meanwhile.
    async fn send(&mut self, text: String) -> bool {
        let kick = self.kick.clone();
        let ok = tokio::select! {
            sent = tokio::time::timeout(self.timeout, self.sink.send(Message::Text(text.into()))) => {
                matches!(sent, Ok(Ok(())))
            }
            () = kick.notified() => {
                self.kicked = true;
                false
            }
        };
        if ok {
            self.frames_out.inc();
        }
        ok
    }

    async fn reply(&mut self, reply: &Reply) -> bool {
        let text = protocol::reply_frame(reply, self.seq);
        self.send(text).await
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        let _gone =
            tokio::time::timeout(self.timeout, self.sink.send(Message::Close(Some(frame)))).await;
    }

    /// Writes what the hub queued; false when the session must end.
    async fn write(&mut self, item: Outbound) -> Result<(), Option<(u16, String)>> {
        if matches!(item, Outbound::Reply(Reply::Welcome { .. })) {
            self.welcomed = true;
        }
        match item {
            Outbound::Event { seq, text } => {
                if seq <= self.seq {
                    // Already delivered (a replay overlapping live events).
                    return Ok(());
                }
                self.seq = seq;
                if self.send(text.to_string()).await {
                    Ok(())
                } else {
                    Err(self.failed())
                }
            }
            Outbound::Snapshot { seq, state } => {
                self.seq = seq;
                let text = serde_json::json!({
                    "v": protocol::PROTOCOL_VERSION, "seq": seq, "type": "snapshot", "state": *state,
                })
                .to_string();
                if self.send(text).await {
                    Ok(())
                } else {
                    Err(self.failed())
                }
            }
            Outbound::Reply(reply) => {
                if self.reply(&reply).await {
                    Ok(())
                } else {
                    Err(self.failed())
                }
            }
            Outbound::Replay(events) => {
                for (seq, text) in events {
                    if seq <= self.seq {
                        continue;
                    }
                    self.seq = seq;
                    if !self.send(text.to_string()).await {
                        return Err(self.failed());
                    }
                }
                Ok(())
            }
            Outbound::Close(code, reason) => Err(Some((code, reason))),
        }
    }

    /// The close owed after a failed write.
    fn failed(&self) -> Option<(u16, String)> {
        self.kicked.then(|| {
            (
                close::SLOW_CONSUMER,
                LiveErrorCode::SlowConsumer.as_str().to_owned(),
            )
        })
    }
}

/// A token bucket per session.
struct Bucket {
    tokens: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate,
            rate,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long a closing connection waits for the client's close reply.
const LINGER: Duration = Duration::from_secs(2);

/// One live connection.
struct Session {
    state: EdgeState,
    id: u64,
    ticket: Ticket,
    /// True while a submission of this session runs.
    running: Arc<AtomicBool>,
}

impl Session {
    async fn run(state: EdgeState, socket: WebSocket) {
        let gateway = state.live.clone();
        let (sink, mut stream) = socket.split();
        let mut writer = Writer {
            sink,
            seq: 0,
            timeout: Duration::from_millis(gateway.config.write_timeout_ms),
            frames_out: gateway.metrics.frames_out.clone(),
            kick: Arc::new(tokio::sync::Notify::new()),
            kicked: false,
            welcomed: false,
        };
        Self::connection(state, gateway, &mut writer, &mut stream).await;
        // Read until the client answers the close (or a moment passes), so
        // its unread frames do not turn our close into a reset.
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Everything between the upgrade and the close.
    async fn connection(
        state: EdgeState,
        gateway: Arc<Gateway>,
        writer: &mut Writer,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
    ) {
        if gateway.node.registry().session_count() >= gateway.config.sessions_max {
            refuse(
                writer,
                &gateway,
                close::TOO_MANY_SESSIONS,
                LiveErrorCode::TooManySessions,
                "this node holds as many live sessions as it may; connect to another edge",
            )
            .await;
            return;
        }
        let join_timeout = Duration::from_millis(gateway.config.join_timeout_ms);
        let first = match tokio::time::timeout(join_timeout, next_text(stream)).await {
            Ok(Some(text)) => text,
            Ok(None) => return,
            Err(_) => {
                refuse(
                    writer,
                    &gateway,
                    close::JOIN_TIMEOUT,
                    LiveErrorCode::JoinTimeout,
                    "no join arrived in time",
                )
                .await;
                return;
            }
        };
        gateway.metrics.frames_in.inc();
        let (ticket_text, last_seq, request_id) =
            match protocol::parse_client_frame(&first, gateway.config.frame_bytes_max) {
                Ok(ClientFrame {
                    id,
                    body: ClientBody::Join { ticket, last_seq },
                    ..
                }) => (ticket, last_seq, id),
                Ok(_) => {
                    refuse(
                        writer,
                        &gateway,
                        close::JOIN_REQUIRED,
                        LiveErrorCode::JoinRequired,
                        "the first frame must be a join",
                    )
                    .await;
                    return;
                }
                Err(err) => {
                    refuse(
                        writer,
                        &gateway,
                        close::JOIN_REQUIRED,
                        err.code(),
                        &err.to_string(),
                    )
                    .await;
                    return;
                }
            };
        let ticket = match verify_ticket(&state, &ticket_text).await {
            Ok(ticket) => ticket,
            Err(message) => {
                gateway
                    .metrics
                    .refused
                    .with_label_values(&["unauthenticated"])
                    .inc();
                let _sent = writer
                    .reply(&Reply::error(
                        LiveErrorCode::Unauthenticated,
                        message,
                        request_id,
                    ))
                    .await;
                writer
                    .close(close::UNAUTHENTICATED, "unauthenticated")
                    .await;
                gateway
                    .metrics
                    .closed
                    .with_label_values(&["unauthenticated"])
                    .inc();
                return;
            }
        };
        if !gateway.take_tenant_slot(&ticket.tenant_id) {
            refuse(
                writer,
                &gateway,
                close::TOO_MANY_SESSIONS,
                LiveErrorCode::TooManySessions,
                "your organisation holds as many live sessions on this node as it may",
            )
            .await;
            return;
        }
        let tenant = ticket.tenant_id.clone();
        let home = choose_home(&state, ticket.region.as_deref());
        let placed = gateway
            .node
            .place(&ticket.class_id, &ticket.tenant_id, &home)
            .await;
        if let Err(err) = placed {
            let code = match err {
                actors::live::hub::PlaceError::TooManyClasses(_) => LiveErrorCode::TooManyClasses,
                _ => LiveErrorCode::ClassUnavailable,
            };
            refuse(
                writer,
                &gateway,
                close::CLASS_UNAVAILABLE,
                code,
                &err.to_string(),
            )
            .await;
            gateway.give_tenant_slot(&tenant);
            return;
        }
        let session = Session {
            id: gateway.node.registry().next_session_id(),
            state: state.clone(),
            ticket,
            running: Arc::new(AtomicBool::new(false)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(gateway.config.session_queue_max);
        gateway.node.registry().register(
            &session.ticket.class_id,
            session.id,
            SessionHandle {
                user_id: session.ticket.who.user_id.clone(),
                role: session.ticket.who.role,
                tx,
                kick: writer.kick.clone(),
            },
        );
        gateway.metrics.sessions.inc();
        gateway
            .metrics
            .classes
            .set(i64::try_from(gateway.node.homed_count()).unwrap_or(i64::MAX));
        let joined = gateway.node.send(
            &session.ticket.class_id,
            session.id,
            &session.ticket.who,
            Input::Join {
                last_seq,
                region: state.identity.region.to_string(),
            },
        );
        let ended = match joined {
            Ok(()) => session.serve(writer, stream, rx).await,
            Err(err) => Some((
                close::CLASS_UNAVAILABLE,
                format!("class_unavailable: {err}"),
            )),
        };
        gateway
            .node
            .registry()
            .unregister(&session.ticket.class_id, session.id);
        let _gone = gateway.node.send(
            &session.ticket.class_id,
            session.id,
            &session.ticket.who,
            Input::Leave,
        );
        gateway.metrics.sessions.dec();
        gateway.give_tenant_slot(&tenant);
        if let Some((code, reason)) = ended {
            let label = reason.split(':').next().unwrap_or("other").to_owned();
            gateway.metrics.closed.with_label_values(&[&label]).inc();
            writer.close(code, &reason).await;
        }
    }

    /// The session's loop; returns the close to send, if any.
    async fn serve(
        &self,
        writer: &mut Writer,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        mut rx: tokio::sync::mpsc::Receiver<Outbound>,
    ) -> Option<(u16, String)> {
        let gateway = self.state.live.clone();
        let mut bucket = Bucket::new(gateway.config.messages_per_session_per_second);
        let mut ping =
            tokio::time::interval(Duration::from_millis(gateway.config.ping_interval_ms));
        ping.tick().await;
        let kick = writer.kick.clone();
        // A classroom that vanished with its node between the look-up and
        // the join never answers: give up and let the client try again.
        let welcome_by = tokio::time::Instant::now()
            + Duration::from_millis(gateway.config.class_start_timeout_ms);
        loop {
            tokio::select! {
                () = kick.notified() => return Some((close::SLOW_CONSUMER, LiveErrorCode::SlowConsumer.as_str().into())),
                () = tokio::time::sleep_until(welcome_by), if !writer.welcomed => {
                    let _sent = writer
                        .reply(&Reply::error(LiveErrorCode::ClassUnavailable, "the class did not answer; try again", None))
                        .await;
                    return Some((close::CLASS_UNAVAILABLE, "class_unavailable".into()));
                }
                item = rx.recv() => match item {
                    Some(item) => {
                        if let Err(close) = writer.write(item).await {
                            return close;
                        }
                    }
                    // The hub let go of this session: it fell behind.
                    None => return Some((close::SLOW_CONSUMER, LiveErrorCode::SlowConsumer.as_str().into())),
                },
                frame = stream.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text.to_string(),
                        Some(Ok(Message::Binary(_))) => {
                            gateway.metrics.frames_in.inc();
                            self.refuse_frame(writer, LiveErrorCode::BadMessage, "frames are JSON text", None).await;
                            continue;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => return None,
                        Some(Err(err)) => {
                            // Past the WebSocket size limit, tungstenite fails
                            // the read; the socket is unusable after that.
                            tracing::debug!(error = %err, "live socket read failed");
                            return Some((1009, "message_too_large".into()));
                        }
                    };
                    gateway.metrics.frames_in.inc();
                    if !bucket.take() {
                        self.refuse_frame(writer, LiveErrorCode::RateLimited, "too many messages; slow down", None).await;
                        continue;
                    }
                    if gateway.tenant_rate.check(&self.ticket.tenant_id, Instant::now()).is_err() {
                        self.refuse_frame(writer, LiveErrorCode::RateLimited, "your organisation is sending too many messages on this node; slow down", None).await;
                        continue;
                    }
                    let frame = match protocol::parse_client_frame(&text, gateway.config.frame_bytes_max) {
                        Ok(frame) => frame,
                        Err(err) => {
                            self.refuse_frame(writer, err.code(), &err.to_string(), None).await;
                            continue;
                        }
                    };
                    self.handle(writer, frame).await;
                },
                _ = ping.tick() => {
                    let sent = tokio::time::timeout(writer.timeout, writer.sink.send(Message::Ping(Vec::new().into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return None;
                    }
                }
            }
        }
    }

    async fn refuse_frame(
        &self,
        writer: &mut Writer,
        code: LiveErrorCode,
        message: &str,
        re: Option<String>,
    ) {
        self.state
            .live
            .metrics
            .refused
            .with_label_values(&[code.as_str()])
            .inc();
        let _sent = writer.reply(&Reply::error(code, message, re)).await;
    }

    async fn handle(&self, writer: &mut Writer, frame: ClientFrame) {
        let ClientFrame { id, class_id, body } = frame;
        if class_id
            .as_deref()
            .is_some_and(|class| class != self.ticket.class_id)
        {
            self.refuse_frame(
                writer,
                LiveErrorCode::NotEnrolled,
                "this connection is joined to another class; a class needs its own ticket",
                id,
            )
            .await;
            return;
        }
        match body {
            ClientBody::Ping {} => {
                let _sent = writer.reply(&Reply::Pong { re: id }).await;
            }
            ClientBody::Join { .. } => {
                self.refuse_frame(
                    writer,
                    LiveErrorCode::AlreadyJoined,
                    "this connection has joined",
                    id,
                )
                .await;
            }
            ClientBody::Submit {
                assignment_id,
                source,
            } => {
                if let Err((code, message)) = self.submit(&assignment_id, source) {
                    self.refuse_frame(writer, code, &message, id).await;
                }
            }
            ClientBody::DropAssignment { assignment }
                if sandbox::languages::find(&assignment.language).is_none() =>
            {
                // Refused here, before it reaches the class: an assignment
                // in a language no sandbox has could never be submitted.
                let message = format!(
                    "{:?} is not a sandbox language (see GET /api/v1/languages)",
                    assignment.language
                );
                self.refuse_frame(writer, LiveErrorCode::UnknownLanguage, &message, id)
                    .await;
            }
            body => {
                let sent = self.state.live.node.send(
                    &self.ticket.class_id,
                    self.id,
                    &self.ticket.who,
                    Input::Client {
                        id: id.clone(),
                        body,
                    },
                );
                if let Err(err) = sent {
                    self.refuse_frame(
                        writer,
                        LiveErrorCode::ClassUnavailable,
                        &err.to_string(),
                        id,
                    )
                    .await;
                }
            }
        }
    }

    /// Starts a learner's submission on this node's sandbox.
    fn submit(&self, assignment_id: &str, source: String) -> Result<(), (LiveErrorCode, String)> {
        let who = &self.ticket.who;
        if who.role != ClassRole::Learner {
            return Err((LiveErrorCode::Forbidden, "only learners submit".into()));
        }
        if source.len() > protocol::SOURCE_BYTES_MAX {
            return Err((
                LiveErrorCode::MessageTooLarge,
                format!(
                    "a submission has at most {} bytes",
                    protocol::SOURCE_BYTES_MAX
                ),
            ));
        }
        let (assignment, ended) = self
            .state
            .live
            .node
            .registry()
            .assignment(&self.ticket.class_id, assignment_id);
        if ended {
            return Err((LiveErrorCode::ClassEnded, "the class has ended".into()));
        }
        let assignment = assignment.ok_or_else(|| {
            (
                LiveErrorCode::UnknownAssignment,
                format!("no assignment {assignment_id:?} in this class"),
            )
        })?;
        let Some(language) = sandbox::languages::find(&assignment.spec.language) else {
            return Err((
                LiveErrorCode::UnknownLanguage,
                format!("{:?} is not a sandbox language", assignment.spec.language),
            ));
        };
        let Some(sandbox) = self.state.sandbox.get().cloned() else {
            return Err((
                LiveErrorCode::SandboxUnavailable,
                "the sandbox is still starting".into(),
            ));
        };
        let claims = self.claims();
        if self.state.runs.outbox_full() {
            return Err((
                LiveErrorCode::OutboxFull,
                "this edge cannot report more submissions until the control plane takes its backlog; try again shortly".into(),
            ));
        }
        if crate::edge::spent_run_budget(&self.state, &claims).is_some() {
            return Err((
                LiveErrorCode::RateLimited,
                "too many runs; wait a moment".into(),
            ));
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return Err((
                LiveErrorCode::SubmissionInProgress,
                "your previous submission is still running".into(),
            ));
        }
        let request = sandbox::RunRequest {
            language: language.id.to_owned(),
            files: vec![sandbox::run::SourceFile {
                name: language.file_name.to_owned(),
                content: source,
            }],
            stdin: String::new(),
            tests: assignment
                .spec
                .tests
                .iter()
                .map(|test| sandbox::run::TestCase {
                    name: test.name.clone(),
                    stdin: test.stdin.clone(),
                    expected_stdout: test.expected_stdout.clone(),
                    compare: sandbox::compare::Compare::Trimmed,
                    tolerance: None,
                })
                .collect(),
            limits: sandbox::run::RequestLimits::default(),
        };
        let node = self.state.live.node.clone();
        let class_id = self.ticket.class_id.clone();
        let session_id = self.id;
        let who = who.clone();
        let state = self.state.clone();
        let running = self.running.clone();
        let assignment_id = assignment_id.to_owned();
        let _sent = node.send(
            &class_id,
            session_id,
            &who,
            Input::SubmissionStarted {
                assignment_id: assignment_id.clone(),
            },
        );
        tokio::spawn(async move {
            let outcome = sandbox.run(&request).await;
            let finished = match outcome {
                Ok(result) => {
                    let recorded = crate::edge::finish_run(
                        &state,
                        &claims,
                        &request.language,
                        &result,
                        Some(crate::edge::UnitRef {
                            id: &class_id,
                            version: None,
                            question: None,
                        }),
                    )
                    .await;
                    if recorded.is_err() {
                        tracing::error!(
                            run_id = result.id,
                            "a live submission ran but was not recorded"
                        );
                    }
                    let total = u32::try_from(result.tests.len()).unwrap_or(u32::MAX);
                    let passed = crate::edge::tests_passed(&result);
                    Input::SubmissionFinished {
                        assignment_id,
                        run_id: result.id.clone(),
                        verdict: result.status.as_str().to_owned(),
                        passed,
                        total,
                        region: state.identity.region.to_string(),
                    }
                }
                Err(err) => Input::SubmissionFinished {
                    assignment_id,
                    run_id: String::new(),
                    verdict: "internal_error".into(),
                    passed: 0,
                    total: 0,
                    region: format!("{}: {err}", state.identity.region),
                },
            };
            running.store(false, Ordering::Release);
            let _sent = node.send(&class_id, session_id, &who, finished);
        });
        Ok(())
    }

    /// The ticket as access-token claims, for the run path.
    fn claims(&self) -> control_plane::tokens::Claims {
        control_plane::tokens::Claims {
            iss: control_plane::tokens::ISSUER.to_owned(),
            sub: self.ticket.who.user_id.clone(),
            tid: self.ticket.tenant_id.clone(),
            role: control_plane::tokens::Role::Learner,
            email: self.ticket.who.name.clone(),
            iat: 0,
            exp: u64::MAX,
        }
    }
}

/// Sends an error frame and closes.
async fn refuse(
    writer: &mut Writer,
    gateway: &Gateway,
    code: u16,
    error: LiveErrorCode,
    message: &str,
) {
    gateway
        .metrics
        .refused
        .with_label_values(&[error.as_str()])
        .inc();
    gateway
        .metrics
        .closed
        .with_label_values(&[error.as_str()])
        .inc();
    let _sent = writer.reply(&Reply::error(error, message, None)).await;
    writer.close(code, error.as_str()).await;
}

/// The next text frame (skipping pings), or `None` when the socket ends.
async fn next_text(stream: &mut futures_util::stream::SplitStream<WebSocket>) -> Option<String> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Binary(_)) => return Some(String::new()),
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

/// Checks a class ticket against the control plane's published keys.
async fn verify_ticket(state: &EdgeState, text: &str) -> Result<Ticket, String> {
    let claims = state.keys.verify_ticket(text).await?;
    let role = match claims.crole {
        control_plane::tokens::ClassRole::Instructor => ClassRole::Instructor,
        control_plane::tokens::ClassRole::Learner => ClassRole::Learner,
    };
    Ok(Ticket {
        class_id: claims.cls,
        tenant_id: claims.tid,
        who: Participant {
            user_id: claims.sub,
            name: claims.name,
            role,
        },
        region: claims.reg,
    })
}

/// Where a class without a home should live: the alive edge with the
/// smallest node id in the class's region (the instructor's, by default),
/// so every node picks the same one; this node when that region has none.
fn choose_home(state: &EdgeState, region: Option<&str>) -> String {
    let own = state.identity.node_id.to_string();
    let Some(region) = region else {
        return own;
    };
    let mut candidates: Vec<String> = state
        .gossip
        .members()
        .into_iter()
        .filter(|m| m.state == gossip::MemberState::Alive && m.region.as_str() == region)
        .map(|m| m.node_id.to_string())
        .collect();
    if state.identity.region.as_str() == region {
        candidates.push(own.clone());
    }
    candidates.into_iter().min().unwrap_or(own)
}

/// Moves each ended class's attendance report from the hub into the
/// durable attendance outbox, whose publisher hands it to the control
/// plane. While the outbox is full, reports wait in the hub's channel
/// (bounded: past it the hub logs each report it cannot hand over).
async fn queue_attendance(
    queue: Arc<crate::outbox::Queue<control_plane::learning::live::AttendanceReport>>,
    mut reports: tokio::sync::mpsc::Receiver<AttendanceReport>,
    shutdown: Shutdown,
) {
    loop {
        while queue.full() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.clone().wait() => return,
            }
        }
        let report = tokio::select! {
            report = reports.recv() => match report {
                Some(report) => report,
                None => return,
            },
            () = shutdown.clone().wait() => return,
        };
        let wire = crate::outbox::attendance::wire(&report);
        if let Err(err) = queue.push(report.class_id.as_bytes(), &wire).await {
            tracing::error!(class_id = report.class_id, error = %err, "cannot store an attendance report");
        }
    }
}

/// Tells classrooms homed here when gossip declares a node down, so its
/// sessions leave the roster (and classes it homed or copied move); when
/// this node itself was declared down and rejoined, its sessions of classes
/// homed elsewhere resume, since those homes let them go.
pub async fn follow_membership(
    gateway: Arc<Gateway>,
    mut events: tokio::sync::broadcast::Receiver<gossip::MembershipEvent>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(gossip::MembershipEvent::Member { node_id, current: gossip::MemberState::Down, .. }) => {
                    gateway.node.node_down(node_id.as_str());
                }
                Ok(gossip::MembershipEvent::Rejoined { .. }) => {
                    let own = gateway.node.node_id().to_owned();
                    let closed = gateway.node.registry().close_remote(&own);
                    if closed > 0 {
                        tracing::info!(closed, "rejoined the cluster; live sessions of classes homed elsewhere resume");
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = shutdown.clone().wait() => return,
        }
        gateway
            .metrics
            .classes
            .set(i64::try_from(gateway.node.homed_count()).unwrap_or(i64::MAX));
    }
}
