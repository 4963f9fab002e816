//! The live gateway's shared state on one edge: [`Gateway`] holds this
//! node's live side (its hub), the per-tenant session and frame budgets and
//! the live metrics; it starts the task that moves ended classes'
//! attendance reports into the durable attendance outbox
//! (the `outbox` module), whose publisher posts them to the control plane
//! (`POST /api/v1/live/attendance`, idempotent by class) until taken,
//! across restarts, and it follows gossip's membership for the classrooms.
//! Knows nothing of HTTP or of the edge's shared state: the sessions
//! (`edge::live::session`) use it, not the other way round.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actors::live::{
    hub::{AttendanceReport, LiveNode},
    LiveConfig,
};

use crate::edge::live::media::MediaGateway;
use crate::rate_limit::RateLimiter;
use crate::shutdown::Shutdown;

/// Tenants whose frame budgets one node tracks at once.
const TENANTS_TRACKED_MAX: usize = 100_000;

/// Ended classes' attendance reports the hub may hand over while the
/// attendance outbox is full.
const ATTENDANCE_CHANNEL_MAX: usize = 1024;

/// The gateway's shared state on one node.
pub struct Gateway {
    /// The `[live]` section.
    pub(crate) config: LiveConfig,
    /// This node's live side: hub, registry, classrooms.
    pub(crate) node: Arc<LiveNode>,
    /// Sessions per tenant on this node.
    tenants: Mutex<HashMap<String, usize>>,
    /// Frames per tenant on this node.
    pub(crate) tenant_rate: RateLimiter,
    /// Prometheus series of the gateway.
    pub(crate) metrics: LiveMetrics,
    /// The edge's live audio.
    pub(crate) media: Arc<MediaGateway>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Prometheus series of the live gateway.
#[derive(Clone)]
pub(crate) struct LiveMetrics {
    /// `live_sessions`: sessions open on this node.
    pub(crate) sessions: prometheus::IntGauge,
    /// `live_homed_classes`: classes homed on this node.
    pub(crate) classes: prometheus::IntGauge,
    /// `live_frames_in_total`.
    pub(crate) frames_in: prometheus::IntCounter,
    /// `live_frames_out_total`.
    pub(crate) frames_out: prometheus::IntCounter,
    /// `live_refused_total{code}`.
    pub(crate) refused: prometheus::IntCounterVec,
    /// `live_closed_total{reason}`.
    pub(crate) closed: prometheus::IntCounterVec,
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
    /// Starts this node's live side: the hub, the audio SFU (following each
    /// class's audio view), and the task that queues each ended class's
    /// attendance report in `attendance`.
    ///
    /// # Errors
    /// When the hub cannot start or the metrics cannot register.
    #[expect(
        clippy::too_many_arguments,
        reason = "the live side's parts, each named once at the one call"
    )]
    pub async fn start(
        config: LiveConfig,
        media: media::SfuConfig,
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
            config.limits(),
            store.clone(),
            tx,
            whereabouts.peers,
        )
        .await?;
        node.counters().register(registry)?;
        let media = Arc::new(MediaGateway::start(media, registry).await?);
        {
            let media = Arc::clone(&media);
            node.registry()
                .set_audio_observer(Arc::new(move |class_id, view| media.apply(class_id, view)));
        }
        tasks.spawn(
            "queue_attendance",
            queue_attendance(attendance, rx, shutdown),
        );
        let per_tenant = config.messages_per_tenant_per_minute.max(1);
        Ok(Arc::new(Self {
            config,
            node,
            tenant_rate: RateLimiter::new(per_tenant, TENANTS_TRACKED_MAX),
            tenants: Mutex::new(HashMap::new()),
            metrics: LiveMetrics::new(registry)?,
            media,
        }))
    }

    /// The node's live side.
    pub fn node(&self) -> &Arc<LiveNode> {
        &self.node
    }

    /// Takes one of `tenant`'s session slots on this node; false when it
    /// holds `live.sessions_per_tenant_max` already.
    pub(crate) fn take_tenant_slot(&self, tenant: &str) -> bool {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let count = tenants.entry(tenant.to_owned()).or_default();
        if *count >= self.config.sessions_per_tenant_max {
            return false;
        }
        *count += 1;
        true
    }

    /// Gives back a slot taken with [`Gateway::take_tenant_slot`].
    pub(crate) fn give_tenant_slot(&self, tenant: &str) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = tenants.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                tenants.remove(tenant);
            }
        }
    }
}

/// Moves each ended class's attendance report from the hub into the
/// durable attendance outbox, whose publisher hands it to the control
/// plane. While the outbox is full, reports wait in the hub's channel
/// (bounded: past it the hub logs each report it cannot hand over).
/// The first wait before storing an attendance report again.
const ATTENDANCE_RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest wait between tries to store an attendance report.
const ATTENDANCE_RETRY_MAX: Duration = Duration::from_secs(5);

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
        // A report that cannot be stored is kept and tried again (the
        // class's record would be lost otherwise), backing off up to
        // ATTENDANCE_RETRY_MAX; reports behind it wait in the channel.
        let mut wait = ATTENDANCE_RETRY_MIN;
        while let Err(err) = queue.push(report.class_id.as_bytes(), &wire).await {
            tracing::error!(class_id = report.class_id, error = %err, retry_in = ?wait, "cannot store an attendance report");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.clone().wait() => return,
            }
            wait = (wait * 2).min(ATTENDANCE_RETRY_MAX);
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
