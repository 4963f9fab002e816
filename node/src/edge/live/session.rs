//! The live sessions of an edge node: `GET /api/v1/live` upgrades to a
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
//! The gateway's shared state is `edge::live::gateway`, the ticket check
//! `edge::live::ticket`, the submit path `edge::live::submit`.

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use tokio::time::Instant;

use actors::live::{
    classroom::Input,
    hub::{Outbound, SessionHandle},
    protocol::{self, close, ClientBody, ClientFrame, LiveErrorCode, Reply},
};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use futures_util::{SinkExt as _, StreamExt as _};

use crate::edge::live::gateway::Gateway;
use crate::edge::live::media::{self as live_media, MediaClientBody, MEDIA_TYPE};
use crate::edge::live::submit::Submitter;
use crate::edge::live::ticket::{verify_ticket, Ticket};
use crate::edge::state::EdgeState;

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

    /// Writes one `media` frame.
    async fn media(&mut self, signal: &media::ServerSignal, re: Option<&str>) -> bool {
        let text = live_media::server_frame(signal, self.seq, re);
        self.send(text).await
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
                Err(protocol::FrameError::UnknownType(kind)) if kind == MEDIA_TYPE => {
                    refuse(
                        writer,
                        &gateway,
                        close::JOIN_REQUIRED,
                        LiveErrorCode::JoinRequired,
                        "the first frame must be a join; media frames come after the welcome",
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
        let ticket = match verify_ticket(&state.keys, &ticket_text).await {
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

    /// The session's loop; returns the close to send, if any. Its audio
    /// peer, if it made one, leaves the SFU with it.
    async fn serve(
        &self,
        writer: &mut Writer,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        rx: tokio::sync::mpsc::Receiver<Outbound>,
    ) -> Option<(u16, String)> {
        let mut link = None;
        let ended = self.serve_loop(writer, stream, rx, &mut link).await;
        if let (Some(link), Some(sfu)) = (link, self.state.live.media.sfu()) {
            sfu.leave_link(&self.ticket.who.user_id, &link).await;
        }
        ended
    }

    async fn serve_loop(
        &self,
        writer: &mut Writer,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        mut rx: tokio::sync::mpsc::Receiver<Outbound>,
        link: &mut Option<media::PeerLink>,
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
                        let welcome = matches!(item, Outbound::Reply(Reply::Welcome { .. }));
                        if let Err(close) = writer.write(item).await {
                            return close;
                        }
                        // Every welcome (a join, a resume, a failover) tells
                        // the client how to build its peer connection here.
                        if let Some(config) = welcome.then(|| gateway.media.config_signal(&self.ticket.who.user_id)).flatten() {
                            if !writer.media(&config, None).await {
                                return writer.failed();
                            }
                        }
                    }
                    // The hub let go of this session: it fell behind.
                    None => return Some((close::SLOW_CONSUMER, LiveErrorCode::SlowConsumer.as_str().into())),
                },
                signal = next_signal(link) => match signal {
                    Some(signal) => {
                        // Taken over by a newer connection of the same
                        // person: this one stops, and starts nothing new.
                        if matches!(&signal, media::ServerSignal::Error { code: media::MediaErrorCode::PeerExists, .. }) {
                            *link = None;
                        }
                        if !writer.media(&signal, None).await {
                            return writer.failed();
                        }
                    }
                    // The SFU dropped the peer (its connection failed or it
                    // fell behind): the client starts a fresh one.
                    None => {
                        *link = None;
                        if let Some(config) = gateway.media.config_signal(&self.ticket.who.user_id) {
                            if !writer.media(&config, None).await {
                                return writer.failed();
                            }
                        }
                    }
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
                        Err(protocol::FrameError::UnknownType(kind)) if kind == MEDIA_TYPE => {
                            if let Err(close) = self.media(writer, link, &text).await {
                                return close;
                            }
                            continue;
                        }
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

    /// Handles one `media` frame: the first offer joins the SFU, the rest
    /// go to the peer it made. A refusal is a media `error` signal, and the
    /// connection, the peer and the class go on as they were.
    async fn media(
        &self,
        writer: &mut Writer,
        link: &mut Option<media::PeerLink>,
        text: &str,
    ) -> Result<(), Option<(u16, String)>> {
        let frame = match live_media::parse_client_frame(text) {
            Ok(frame) => frame,
            Err(message) => {
                // Echo the frame's `id` when it has a readable one.
                let re = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|frame| frame.get("id")?.as_str().map(str::to_owned))
                    .filter(|id| id.chars().count() <= protocol::REQUEST_ID_CHARS_MAX);
                self.refuse_frame(writer, LiveErrorCode::BadMessage, &message, re)
                    .await;
                return Ok(());
            }
        };
        if !self
            .for_this_class(writer, frame.class_id.as_deref(), &frame.id)
            .await
        {
            return Ok(());
        }
        let MediaClientBody::Media { signal } = frame.body;
        let answered = self.signal(link, signal).await;
        let (reply, re) = match &answered {
            Ok(Some(reply)) => (reply.clone(), None),
            Ok(None) => return Ok(()),
            Err(err) => {
                self.state
                    .live
                    .metrics
                    .refused
                    .with_label_values(&[err.code().as_str()])
                    .inc();
                (err.to_signal(), frame.id.as_deref())
            }
        };
        if writer.media(&reply, re).await {
            Ok(())
        } else {
            Err(writer.failed())
        }
    }

    async fn signal(
        &self,
        link: &mut Option<media::PeerLink>,
        signal: media::ClientSignal,
    ) -> Result<Option<media::ServerSignal>, media::MediaError> {
        let gateway = &self.state.live;
        let sfu = gateway.media.sfu().ok_or_else(live_media::unavailable)?;
        let user = &self.ticket.who.user_id;
        if matches!(signal, media::ClientSignal::Leave {}) {
            if let Some(left) = link.take() {
                sfu.leave_link(user, &left).await;
            }
            return Ok(None);
        }
        let joining = link.is_none();
        if joining {
            if !matches!(signal, media::ClientSignal::Offer { .. }) {
                return Err(media::MediaError::new(
                    media::MediaErrorCode::UnknownPeer,
                    "this connection has no audio peer yet: send an offer first",
                ));
            }
            let view = gateway.node.registry().audio(&self.ticket.class_id);
            let joined = gateway
                .media
                .join(
                    &self.ticket.class_id,
                    user,
                    self.ticket.who.role,
                    view.as_ref(),
                )
                .await?;
            *link = Some(joined);
        }
        let handled = sfu.handle(user, signal).await;
        // A refused first offer leaves nothing behind on the edge.
        if joining && handled.is_err() {
            if let Some(joined) = link.take() {
                sfu.leave_link(user, &joined).await;
            }
        }
        handled
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

    /// Whether a frame naming `class_id` (if it names one) is for this
    /// connection's class; refuses it with `not_enrolled` when not.
    async fn for_this_class(
        &self,
        writer: &mut Writer,
        class_id: Option<&str>,
        id: &Option<String>,
    ) -> bool {
        if class_id.is_some_and(|class| class != self.ticket.class_id) {
            self.refuse_frame(
                writer,
                LiveErrorCode::NotEnrolled,
                "this connection is joined to another class; a class needs its own ticket",
                id.clone(),
            )
            .await;
            return false;
        }
        true
    }

    async fn handle(&self, writer: &mut Writer, frame: ClientFrame) {
        let ClientFrame { id, class_id, body } = frame;
        if !self.for_this_class(writer, class_id.as_deref(), &id).await {
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
                let submitter = Submitter {
                    node: &self.state.live.node,
                    runs: &self.state.runs,
                    ticket: &self.ticket,
                    session_id: self.id,
                    running: &self.running,
                };
                if let Err((code, message)) = submitter.submit(&assignment_id, source) {
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
}

/// The next signal the SFU has for this session's peer; pending forever
/// while it has none, and `None` once the SFU dropped it.
async fn next_signal(link: &mut Option<media::PeerLink>) -> Option<media::ServerSignal> {
    match link {
        Some(link) => link.signals.recv().await,
        None => std::future::pending().await,
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
