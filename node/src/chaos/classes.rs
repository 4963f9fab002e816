//! The live-class part of a drill's workload. The runner makes its own
//! course with `workload.classes` live classes, homed round-robin in the
//! drill's regions, and seats the drill's learners in them round-robin, each
//! on the edge of a region taken round-robin too; each class's instructor
//! sits on the next region's edge, so class traffic crosses regions. The
//! instructor broadcasts once a second while the workload runs; every
//! client records what it saw (its join's snapshot seq, each event's seq,
//! each resume and why) for the checker, and the broadcasts feed the
//! class-delivery probe. A client whose connection ends resumes with its
//! last seq, first on the same edge, then on the next region's, as the web
//! app would; a `4011 class_moved` counts as a failover.
//!
//! The workload holds no breakout groups and no in-class submissions, so
//! every event of a class is meant for every client of it: the checker's
//! per-client hidden sets are empty.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use chaos::checker::{ClassLog, ClientLog, ClientStep, ResumeReason};
use chaos::probe::DeliveryTracker;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::record::Learner;
use crate::api_client;

/// How often each class's instructor broadcasts while the workload runs.
const BROADCAST_EVERY: Duration = Duration::from_secs(1);

/// How long a connection and its join may take before the client tries
/// again (on the next region's edge).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait before a client tries again after losing its connection.
const RETRY_AFTER: Duration = Duration::from_millis(300);

/// An instructor broadcasts once every learner of the class has joined, or
/// this long after its own first join, whichever comes first: a message
/// sent before a learner joined reaches her in the snapshot, not as an
/// event, and would count as undelivered.
const SEATING_GRACE: Duration = Duration::from_secs(15);

/// Steps one client records at most; past it the client stops recording
/// events (and its log will show them missing). A drill of an hour at one
/// broadcast a second stays far below.
pub(super) const CLIENT_STEPS_MAX: usize = 100_000;

/// One client to run: who, in which class, through which edges.
#[derive(Debug, Clone)]
struct Seat {
    client: String,
    class_id: String,
    ticket: String,
    /// Edges to try, in order: its own region's first.
    edges: Vec<String>,
    /// Broadcasts when set: the class's instructor.
    instructor: bool,
    /// The class's index, for the class-home fault (class 0).
    class_index: usize,
}

/// The classes a drill runs and who sits where.
pub(super) struct Classes {
    seats: Vec<Seat>,
    /// Class ids, in order; the first is the `class-home` fault's class.
    class_ids: Vec<String>,
    /// Learners per class, the recipients of each broadcast.
    learners_per_class: Vec<u32>,
    /// The instructor's ticket per class, for reading each class's last seq.
    observer_tickets: Vec<String>,
    /// Every edge's URL, for the observer.
    edges: Vec<String>,
}

/// What the class clients saw, shared with the runner's probes.
pub(super) struct Observed {
    /// Class-delivery probe.
    pub(super) delivery: Mutex<DeliveryTracker>,
    /// The node id the first class's home answered with (its instructor's
    /// latest `welcome`), for the `class-home` fault.
    pub(super) first_home: Mutex<Option<String>>,
    /// Clients joined now.
    pub(super) connected: AtomicU64,
    /// Resumes after `4011 class_moved`.
    pub(super) failovers: AtomicU64,
    /// Other resumes.
    pub(super) reconnects: AtomicU64,
    next_message: AtomicU64,
    /// Per class, learners who joined at least once.
    seated: Vec<AtomicU64>,
}

impl Observed {
    /// For `classes` classes and the drill's delivery deadline.
    pub(super) fn new(within_ms: u64, classes: u32) -> Self {
        Self {
            seated: (0..classes).map(|_| AtomicU64::new(0)).collect(),
            delivery: Mutex::new(DeliveryTracker::new(within_ms)),
            first_home: Mutex::new(None),
            connected: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            next_message: AtomicU64::new(0),
        }
    }
}

/// Makes the course and its classes, enrols the learners, and gets every
/// ticket. `regions` are the drill's, `edges` their edges' URLs (same
/// order), `all_edges` every edge of the cluster.
pub(super) async fn prepare(
    http: &reqwest::Client,
    cp: &str,
    instructor: &str,
    count: u32,
    regions: &[String],
    edges: &[String],
    learners: &[Learner],
) -> anyhow::Result<Classes> {
    assert_eq!(regions.len(), edges.len(), "one edge per region");
    let (course, module) = api_client::course_with_module(
        http,
        cp,
        instructor,
        "Chaos drill",
        "made by lyceum chaos run",
    )
    .await?;
    let mut class_ids = Vec::new();
    let mut observer_tickets = Vec::new();
    let mut seats = Vec::new();
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let ring = |from: usize| -> Vec<String> {
        (0..edges.len())
            .map(|k| edges[(from + k) % edges.len()].clone())
            .collect()
    };
    for c in 0..count {
        let region = &regions[c % regions.len()];
        let unit = api_client::live_class(
            http,
            cp,
            instructor,
            &module,
            &format!("Drill class {c}"),
            region,
        )
        .await?;
        let ticket = ticket(http, cp, instructor, &unit).await?;
        seats.push(Seat {
            client: format!("instructor-{c}"),
            class_id: unit.clone(),
            ticket: ticket.clone(),
            edges: ring(c + 1),
            instructor: true,
            class_index: c,
        });
        observer_tickets.push(ticket);
        class_ids.push(unit);
    }
    let mut learners_per_class = vec![0_u32; count];
    for (i, learner) in learners.iter().enumerate() {
        api_client::post_json(
            http,
            &format!("{cp}/api/v1/courses/{course}/enrollments"),
            Some(&learner.token()),
            &json!({}),
        )
        .await?;
        let c = i % count;
        seats.push(Seat {
            client: learner.user_id.clone(),
            class_id: class_ids[c].clone(),
            ticket: ticket(http, cp, &learner.token(), &class_ids[c]).await?,
            edges: ring(i),
            instructor: false,
            class_index: c,
        });
        learners_per_class[c] += 1;
    }
    eprintln!(
        "lyceum chaos: {count} live class(es) made, {} learner(s) seated",
        learners.len()
    );
    Ok(Classes {
        seats,
        class_ids,
        learners_per_class,
        observer_tickets,
        edges: edges.to_vec(),
    })
}

async fn ticket(
    http: &reqwest::Client,
    cp: &str,
    token: &str,
    class_id: &str,
) -> anyhow::Result<String> {
    let body = api_client::post_json(
        http,
        &format!("{cp}/api/v1/live/tickets"),
        Some(token),
        &json!({"class_id": class_id}),
    )
    .await?;
    body["ticket"]
        .as_str()
        .map(str::to_owned)
        .context("a ticket answer without a ticket")
}

/// The running clients: stop broadcasting, then end them and take their
/// logs.
pub(super) struct Running {
    broadcasting: watch::Sender<bool>,
    ending: watch::Sender<bool>,
    clients: Vec<tokio::task::JoinHandle<ClientLog>>,
}

impl Running {
    /// Connects every client; times count from `start`.
    pub(super) fn start(classes: &Arc<Classes>, observed: Arc<Observed>, start: Instant) -> Self {
        let (broadcasting, stop_rx) = watch::channel(true);
        let (ending, end_rx) = watch::channel(false);
        let clients = classes
            .seats
            .iter()
            .map(|seat| {
                tokio::spawn(client(
                    seat.clone(),
                    Context {
                        observed: observed.clone(),
                        start,
                        recipients: classes.learners_per_class[seat.class_index],
                        class_index: seat.class_index,
                        first_joined: None,
                        broadcasting: stop_rx.clone(),
                        ending: end_rx.clone(),
                    },
                ))
            })
            .collect();
        Self {
            broadcasting,
            ending,
            clients,
        }
    }

    /// Instructors broadcast no more; clients stay to receive what is late.
    pub(super) fn stop(&self) {
        let _ = self.broadcasting.send(false);
    }

    /// Every client leaves; their logs.
    pub(super) async fn finish(self) -> Vec<ClientLog> {
        self.stop();
        let _ = self.ending.send(true);
        let mut logs = Vec::new();
        for client in self.clients {
            if let Ok(log) = client.await {
                logs.push(log);
            }
        }
        logs
    }
}

#[derive(Clone)]
struct Context {
    observed: Arc<Observed>,
    start: Instant,
    recipients: u32,
    class_index: usize,
    /// When this client first joined (the instructor's seating grace).
    first_joined: Option<Instant>,
    broadcasting: watch::Receiver<bool>,
    ending: watch::Receiver<bool>,
}

impl Context {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the class is seated: every learner joined once, or the
    /// seating grace is over.
    fn seated(&self) -> bool {
        let seated = self
            .observed
            .seated
            .get(self.class_index)
            .map_or(0, |n| n.load(Ordering::Relaxed));
        seated >= u64::from(self.recipients)
            || self
                .first_joined
                .is_some_and(|at| at.elapsed() >= SEATING_GRACE)
    }
}

/// How one connection ended.
enum Ended {
    /// The run is over; the client left.
    Left,
    /// The class moved (4011): resume at once.
    Moved,
    /// The class ended (4010): nothing more to see.
    ClassOver,
    /// Anything else: resume after a pause, on the next edge if this one
    /// could not be reached.
    Lost { unreachable: bool },
}

async fn client(seat: Seat, mut cx: Context) -> ClientLog {
    let mut steps: Vec<ClientStep> = Vec::new();
    let mut last_seq: Option<u64> = None;
    let mut resume: Option<ResumeReason> = None;
    let mut edge = 0_usize;
    loop {
        if *cx.ending.borrow() {
            break;
        }
        let url = format!(
            "{}/api/v1/live",
            seat.edges[edge % seat.edges.len()].replacen("http", "ws", 1)
        );
        let (ended, joined) =
            connection(&seat, &url, &mut cx, &mut steps, &mut last_seq, resume).await;
        if joined {
            // The pending resume, if any, was made; the next one's reason
            // is this connection's end.
            resume = None;
        }
        match ended {
            Ended::Left | Ended::ClassOver => break,
            Ended::Moved => {
                cx.observed.failovers.fetch_add(1, Ordering::Relaxed);
                resume = Some(ResumeReason::Failover);
            }
            Ended::Lost { unreachable } => {
                if last_seq.is_some() && resume.is_none() {
                    cx.observed.reconnects.fetch_add(1, Ordering::Relaxed);
                    resume = Some(ResumeReason::Reconnect);
                }
                if unreachable {
                    edge += 1;
                }
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = cx.ending.changed() => {}
                }
            }
        }
    }
    if last_seq.is_some() {
        steps.push(ClientStep::Leave);
    }
    ClientLog {
        client: seat.client,
        class_id: seat.class_id,
        steps,
    }
}

/// One connection, from connect to its end; whether it joined.
async fn connection(
    seat: &Seat,
    url: &str,
    cx: &mut Context,
    steps: &mut Vec<ClientStep>,
    last_seq: &mut Option<u64>,
    resume: Option<ResumeReason>,
) -> (Ended, bool) {
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await;
    let Ok(Ok((mut socket, _))) = connected else {
        return (Ended::Lost { unreachable: true }, false);
    };
    let mut join = json!({"type": "join", "ticket": seat.ticket});
    if let Some(seq) = *last_seq {
        join["last_seq"] = json!(seq);
    }
    if socket.send(Message::text(join.to_string())).await.is_err() {
        return (Ended::Lost { unreachable: true }, false);
    }
    let mut joined = false;
    let mut counted = false;
    let mut ticks = tokio::time::interval(BROADCAST_EVERY);
    let ended = loop {
        let broadcasting = seat.instructor && joined && *cx.broadcasting.borrow();
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = ticks.tick(), if broadcasting => {
                if !cx.seated() {
                    continue;
                }
                let id = cx.observed.next_message.fetch_add(1, Ordering::Relaxed);
                let text = json!({"type": "broadcast", "text": format!("drill {id}")}).to_string();
                if socket.send(Message::text(text)).await.is_err() {
                    break Ended::Lost { unreachable: false };
                }
                if let Ok(mut delivery) = cx.observed.delivery.lock() {
                    delivery.sent(id, cx.now_ms(), cx.recipients);
                }
                continue;
            }
            _ = cx.ending.changed() => {
                let _ = socket.close(None).await;
                break Ended::Left;
            }
            changed = cx.broadcasting.changed() => {
                if changed.is_err() {
                    let _ = socket.close(None).await;
                    break Ended::Left;
                }
                continue;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                let code = close.map(|c| u16::from(c.code));
                break match code {
                    Some(4011) => Ended::Moved,
                    Some(4010) => Ended::ClassOver,
                    _ => Ended::Lost { unreachable: false },
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break Ended::Lost { unreachable: false },
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind = frame["type"].as_str().unwrap_or_default();
        let seq = frame["seq"].as_u64();
        match kind {
            "welcome" => {
                if seat.instructor && seat.class_index == 0 {
                    if let (Ok(mut home), Some(node)) = (
                        cx.observed.first_home.lock(),
                        frame["home_node_id"].as_str(),
                    ) {
                        *home = Some(node.to_owned());
                    }
                }
                joined = true;
                if cx.first_joined.is_none() {
                    cx.first_joined = Some(Instant::now());
                    if !seat.instructor {
                        if let Some(n) = cx.observed.seated.get(seat.class_index) {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if !counted {
                    counted = true;
                    cx.observed.connected.fetch_add(1, Ordering::Relaxed);
                }
                if frame["resumed"] == true {
                    if let Some(reason) = resume {
                        push(
                            steps,
                            ClientStep::Resume {
                                reason,
                                snapshot_seq: None,
                            },
                        );
                    }
                }
            }
            "snapshot" => {
                let Some(seq) = seq else { continue };
                let step = match (resume, last_seq.is_some()) {
                    (Some(reason), true) => ClientStep::Resume {
                        reason,
                        snapshot_seq: Some(seq),
                    },
                    _ => ClientStep::Join { snapshot_seq: seq },
                };
                push(steps, step);
                *last_seq = Some(seq);
            }
            "error" if !joined => break Ended::Lost { unreachable: true },
            // Only the class's events carry `at_ms` (docs/live-protocol.md);
            // replies and the edge's `media` frames carry the session's
            // `seq`, not one of their own.
            _ if frame.get("at_ms").is_none() => {}
            _ => {
                let Some(seq) = seq else { continue };
                push(steps, ClientStep::Event { seq });
                *last_seq = Some(seq);
                if kind == "broadcast" && !seat.instructor {
                    let id = frame["text"]
                        .as_str()
                        .and_then(|t| t.strip_prefix("drill "))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let (Some(id), Ok(mut delivery)) = (id, cx.observed.delivery.lock()) {
                        delivery.received(id, cx.now_ms());
                    }
                }
            }
        }
    };
    if counted {
        cx.observed.connected.fetch_sub(1, Ordering::Relaxed);
    }
    (ended, joined)
}

fn push(steps: &mut Vec<ClientStep>, step: ClientStep) {
    if steps.len() < CLIENT_STEPS_MAX {
        steps.push(step);
    }
}

impl Classes {
    /// Each class as the platform holds it now: its last seq, read from a
    /// fresh join's snapshot as the class's instructor.
    pub(super) async fn read_back(&self) -> anyhow::Result<Vec<ClassLog>> {
        let mut out = Vec::new();
        for (class_id, ticket) in self.class_ids.iter().zip(&self.observer_tickets) {
            let mut last = None;
            let mut why = String::new();
            'tries: for attempt in 0..30_usize {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let edge = &self.edges[attempt % self.edges.len()];
                match last_seq(edge, ticket).await {
                    Ok(seq) => {
                        last = Some(seq);
                        break 'tries;
                    }
                    Err(err) => why = format!("{err:#}"),
                }
            }
            let last_seq =
                last.with_context(|| format!("cannot read class {class_id}'s last seq: {why}"))?;
            out.push(ClassLog {
                class_id: class_id.clone(),
                last_seq,
                hidden: BTreeMap::new(),
            });
        }
        Ok(out)
    }
}

/// The seq of a fresh join's snapshot on `edge`.
async fn last_seq(edge: &str, ticket: &str) -> anyhow::Result<u64> {
    let url = format!("{}/api/v1/live", edge.replacen("http", "ws", 1));
    let (mut socket, _) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url))
            .await
            .context("connect timed out")??;
    socket
        .send(Message::text(
            json!({"type": "join", "ticket": ticket}).to_string(),
        ))
        .await?;
    let seq = tokio::time::timeout(CONNECT_TIMEOUT, async {
        while let Some(frame) = socket.next().await {
            let Message::Text(text) = frame? else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("snapshot") => return frame["seq"].as_u64().context("a snapshot without seq"),
                Some("error") => bail!("join refused: {frame}"),
                _ => {}
            }
        }
        bail!("the connection ended before a snapshot")
    })
    .await
    .context("no snapshot in time")??;
    let _ = socket.close(None).await;
    Ok(seq)
}
