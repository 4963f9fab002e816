//! `lyceum edge`: one regional edge node. It keeps its identity (node id and
//! a generation that every restart bumps) in `sled` under the data dir,
//! verifies access tokens locally with the control plane's published keys,
//! and watches the local Docker engine that the sandbox will run on. Gossip,
//! actors and the sandbox pools arrive with their issues.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use control_plane::tokens::{self, Jwks, TokenVerifier};
use gossip::{NodeId, Region};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::EdgeArgs;
use crate::config::{Config, EdgeConfig};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::ready_file::{self, ReadyInfo};
use crate::server::{self, error_response, Basics};
use crate::shutdown::Shutdown;
use crate::store::runs::{AbuseEvent, RunRecord, RunStore, StoreLimits};
use control_plane::submissions::SubmissionReport;
use control_plane::ErrorCode;

pub use crate::store::StoreError;

/// Who this node is, as kept in its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeIdentity {
    /// Stable across restarts.
    pub node_id: NodeId,
    /// Region served.
    pub region: Region,
    /// Bumped on every start, so peers can tell a restarted node from a
    /// stale one.
    pub generation: u64,
}

const KEY_NODE_ID: &str = "node_id";
const KEY_GENERATION: &str = "generation";

/// Directory of an edge's state for `region` under `data_dir`.
pub fn edge_dir(data_dir: &Path, region: &Region) -> PathBuf {
    data_dir.join(format!("edge-{region}"))
}

/// Opens the store, loads or creates the node id and bumps the generation,
/// durably, before the node serves anything. Blocking: call from a blocking
/// context.
///
/// # Errors
/// [`StoreError`] when sled fails or the stored identity is corrupt.
pub fn open_identity(
    dir: &Path,
    region: &Region,
    configured_id: Option<NodeId>,
) -> Result<(sled::Db, NodeIdentity), StoreError> {
    let db = sled::open(dir.join("state.sled"))?;
    let stored = db
        .get(KEY_NODE_ID)?
        .map(|bytes| {
            let text = String::from_utf8(bytes.to_vec()).map_err(|err| StoreError::Corrupt {
                key: KEY_NODE_ID,
                reason: err.to_string(),
            })?;
            NodeId::new(&text).map_err(|err| StoreError::Corrupt {
                key: KEY_NODE_ID,
                reason: err.to_string(),
            })
        })
        .transpose()?;
    let node_id = match (configured_id, stored) {
        (Some(id), _) => id,
        (None, Some(id)) => id,
        (None, None) => NodeId::generate(region, rand_u32()),
    };
    db.insert(KEY_NODE_ID, node_id.as_str().as_bytes())?;
    let previous = match db.get(KEY_GENERATION)? {
        None => 0,
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: KEY_GENERATION,
                reason: format!("expected 8 bytes, found {}", bytes.len()),
            })?;
            u64::from_be_bytes(array)
        }
    };
    let generation = previous + 1;
    db.insert(KEY_GENERATION, &generation.to_be_bytes())?;
    // A node that cannot persist its generation must not run: peers would
    // see the same generation twice after a crash.
    db.flush()?;
    let read_back = db.get(KEY_GENERATION)?.map(|b| b.to_vec());
    assert_eq!(read_back.as_deref(), Some(&generation.to_be_bytes()[..]));
    Ok((
        db,
        NodeIdentity {
            node_id,
            region: region.clone(),
            generation,
        },
    ))
}

/// Raises the stored generation to `generation` if it is higher, durably.
/// Gossip renews a node's identity (a higher generation) when the cluster
/// declared it down and it rejoins; keeping that number means the next
/// start goes above it, never back to one the cluster has seen.
///
/// # Errors
/// [`StoreError::Sled`] when sled fails.
pub fn persist_generation(db: &sled::Db, generation: u64) -> Result<(), StoreError> {
    let stored = db
        .get(KEY_GENERATION)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map_or(0, u64::from_be_bytes);
    if generation > stored {
        db.insert(KEY_GENERATION, &generation.to_be_bytes())?;
        db.flush()?;
    }
    Ok(())
}

/// Follows gossip's events and persists every renewed generation.
async fn keep_generations(
    db: sled::Db,
    mut events: tokio::sync::broadcast::Receiver<gossip::MembershipEvent>,
    shutdown: Shutdown,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = shutdown.clone().wait() => return,
        };
        match event {
            Ok(gossip::MembershipEvent::Rejoined { generation }) => {
                tracing::warn!(generation, "the cluster declared this node down; rejoined");
                let db = db.clone();
                let stored =
                    tokio::task::spawn_blocking(move || persist_generation(&db, generation)).await;
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(error = %err, "cannot persist the generation"),
                    Err(err) => tracing::error!(error = %err, "generation task failed"),
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "gossip events missed while persisting generations");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// What every edge handler shares.
#[derive(Clone)]
pub(crate) struct EdgeState {
    pub(crate) identity: NodeIdentity,
    url: String,
    join: Vec<String>,
    /// The control plane's base URL, named in `/api/v1/node` so that a
    /// browser app served by this edge knows where identity and content live.
    control_plane_url: String,
    pub(crate) keys: Arc<KeyCache>,
    /// Set once the image is built and the pools are warming.
    pub(crate) sandbox: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    /// Cluster membership.
    pub(crate) gossip: Arc<gossip::GossipHandle>,
    /// Live classrooms: the WebSocket gateway and this node's hub.
    pub(crate) live: Arc<crate::live::Gateway>,
    /// The actor system: ractor_cluster sessions to the other edges.
    actors: Arc<actors::ActorSystem>,
    /// Per-user budget of code runs.
    run_limiter: Arc<crate::rate_limit::RateLimiter>,
    /// Per-tenant budget of code runs.
    tenant_limiter: Arc<crate::rate_limit::RateLimiter>,
    /// Results, submission reports and abuse events.
    pub(crate) runs: Arc<RunStore>,
    /// Attendance reports waiting for the control plane.
    pub(crate) attendance:
        Arc<crate::outbox::Queue<control_plane::learning::live::AttendanceReport>>,
    /// Reading units whole from the control plane, to grade submissions.
    pub(crate) grading: crate::grading::Grading,
    /// Cap on `?limit=` of list requests.
    list_page_max: u32,
    /// The gossip fault rules in force, as last set; `None` when fault
    /// injection is off (`edge.fault_injection`).
    faults: Option<Arc<tokio::sync::Mutex<FaultRules>>>,
}

/// The control plane's public keys as this edge knows them. Tokens are
/// verified locally; only a token signed by a key we have not seen (the set
/// rotated since the last fetch) makes us refetch, at most once per
/// `edge.key_refetch_min_interval_ms`.
pub(crate) struct KeyCache {
    verifier: RwLock<Option<Arc<TokenVerifier>>>,
    client: reqwest::Client,
    url: String,
    refetch_min_interval: Duration,
    /// When the last refetch triggered by an unknown key ran.
    last_refetch: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Why a token was not accepted.
enum VerifyError {
    /// No key set loaded yet.
    NoKeys,
    /// The token is bad.
    Rejected(control_plane::ControlPlaneError),
}

impl KeyCache {
    fn new(edge: &EdgeConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(edge.control_plane_timeout_ms))
            .build()
            .context("http client")?;
        Ok(Self {
            verifier: RwLock::new(None),
            client,
            url: format!(
                "{}/.well-known/jwks.json",
                edge.control_plane_url.trim_end_matches('/')
            ),
            refetch_min_interval: Duration::from_millis(edge.key_refetch_min_interval_ms),
            last_refetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The key set in use; an `Arc`, so a request does not copy it.
    fn current(&self) -> Option<Arc<TokenVerifier>> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn install(&self, fresh: TokenVerifier) {
        *self
            .verifier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(fresh));
    }

    /// Fetches the key set now and installs it.
    async fn fetch(&self) -> Result<(), String> {
        self.install(fetch_keys(&self.client, &self.url).await?);
        Ok(())
    }

    /// Refetches unless another refetch happened within the minimum interval.
    /// Holding the lock across the fetch makes concurrent callers share one.
    async fn refetch_if_due(&self) {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_min_interval) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
        match fetch_keys(&self.client, &self.url).await {
            Ok(fresh) => self.install(fresh),
            Err(err) => tracing::warn!(error = %err, "key set refetch failed"),
        }
    }

    /// Verifies a live-class ticket the same way, refetching the key set
    /// once when it names an unknown key; the error is for the client.
    pub(crate) async fn verify_ticket(
        &self,
        ticket: &str,
    ) -> Result<tokens::LiveTicketClaims, String> {
        let verifier = self
            .current()
            .ok_or("this node has not loaded the control plane's token keys yet")?;
        match verifier.verify_live_ticket(ticket) {
            Err(control_plane::ControlPlaneError::UnknownKey(_)) => {
                self.refetch_if_due().await;
                let verifier = self
                    .current()
                    .ok_or("this node has not loaded the control plane's token keys yet")?;
                verifier
                    .verify_live_ticket(ticket)
                    .map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    async fn verify(&self, token: &str) -> Result<tokens::Claims, VerifyError> {
        let verifier = self.current().ok_or(VerifyError::NoKeys)?;
        match verifier.verify(token) {
            Err(control_plane::ControlPlaneError::UnknownKey(kid)) => {
                tracing::info!(
                    kid,
                    "token signed by an unknown key; refetching the key set"
                );
                self.refetch_if_due().await;
                let verifier = self.current().ok_or(VerifyError::NoKeys)?;
                verifier.verify(token).map_err(VerifyError::Rejected)
            }
            other => other.map_err(VerifyError::Rejected),
        }
    }
}

/// Runs one edge node until SIGINT/SIGTERM (or stdin EOF when supervised).
///
/// # Errors
/// Fails when the store cannot be opened or the address cannot be bound.
pub async fn run(args: &EdgeArgs, config: &Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen(args.child.supervised).context("install signal handlers")?;
    let edge = config.edge.clone();
    let region = Region::new(&edge.region).context("edge.region")?;
    let configured_id = if edge.node_id.is_empty() {
        None
    } else {
        Some(NodeId::new(&edge.node_id).context("edge.node_id")?)
    };
    let dir = edge_dir(&config.data_dir, &region);
    let (store, identity) = {
        let task_dir = dir.clone();
        let region = region.clone();
        tokio::task::spawn_blocking(move || open_identity(&task_dir, &region, configured_id))
            .await
            .context("store task")?
            .with_context(|| format!("open the edge store in {}", dir.display()))?
    };
    tracing::info!(
        node_id = %identity.node_id,
        region = %identity.region,
        generation = identity.generation,
        "edge identity loaded"
    );

    let metrics = Metrics::new("edge", Some(region.as_str()))?;
    let readiness = Readiness::default();
    for check in [
        "store",
        "control_plane_keys",
        "docker",
        "sandbox",
        "shutdown",
    ] {
        readiness.register(check);
    }
    readiness.set("store", Ok(()));
    readiness.set("shutdown", Ok(()));
    let tasks = crate::tasks::Tasks::new(metrics.registry(), readiness.clone(), shutdown.clone())
        .context("task metrics")?;

    let listener = tokio::net::TcpListener::bind(&edge.listen)
        .await
        .with_context(|| format!("listen on {} (edge.listen)", edge.listen))?;
    let http_addr = listener.local_addr()?;
    let url = format!("http://{http_addr}");
    let actor_system = start_actors(config, &identity, &metrics)
        .await
        .context("start the actor system")?;
    let gossip = start_gossip(config, &identity, &url, actor_system.local_addr(), &metrics)
        .await
        .context("start gossip")?;
    let gossip_addr = gossip.local_addr();
    tracing::info!(%gossip_addr, seeds = ?edge.join, "gossip started");
    let gossip = Arc::new(gossip);
    actor_system.follow(&gossip);
    tasks.spawn(
        "keep_generations",
        keep_generations(store.clone(), gossip.subscribe(), shutdown.clone()),
    );
    let echo = actors::EchoActor::start(identity.node_id.clone())
        .await
        .context("start the echo actor")?;
    // Weak: shutdown takes the gossip handle back to leave the cluster.
    let peers: actors::live::Peers = {
        let gossip = Arc::downgrade(&gossip);
        std::sync::Arc::new(move || {
            let gossip = gossip.upgrade()?;
            let members = gossip
                .members()
                .into_iter()
                .map(|m| actors::live::Peer {
                    node_id: m.node_id.to_string(),
                    region: m.region.to_string(),
                    alive: m.state == gossip::MemberState::Alive,
                })
                .collect();
            Some(members)
        })
    };
    let control_plane_client = reqwest::Client::builder()
        .timeout(Duration::from_millis(edge.control_plane_timeout_ms))
        .build()
        .context("http client")?;
    let outbox_metrics =
        crate::outbox::OutboxMetrics::register(metrics.registry()).context("outbox metrics")?;
    let attendance = Arc::new(
        crate::outbox::Queue::open(
            &store,
            "attendance",
            crate::outbox::attendance::TREES,
            crate::outbox::QueueLimits {
                items_max: usize::try_from(edge.outbox_events_max).unwrap_or(usize::MAX),
                dead_letters_max: usize::try_from(edge.outbox_dead_letters_max)
                    .unwrap_or(usize::MAX),
            },
        )
        .context("open the attendance outbox")?,
    );
    crate::outbox::attendance::migrate(&store, &attendance)
        .await
        .context("move old attendance reports")?;
    crate::outbox::start(
        attendance.clone(),
        crate::outbox::attendance::Attendance {
            client: control_plane_client.clone(),
            control_plane_url: edge.control_plane_url.clone(),
            service_key: edge.control_plane_service_key.clone(),
        },
        crate::outbox::Publisher {
            readiness_check: "outbox_attendance",
            limit_setting: "edge.outbox_events_max",
            enabled: !edge.control_plane_service_key.is_empty(),
            batch_max: 1,
            retry_max: Duration::from_millis(edge.outbox_retry_max_ms),
        },
        outbox_metrics.clone(),
        readiness.clone(),
        &tasks,
        shutdown.clone(),
    );
    let live = crate::live::Gateway::start(
        config.live.clone(),
        crate::live::Whereabouts {
            node_id: identity.node_id.to_string(),
            region: identity.region.to_string(),
            peers,
        },
        store.clone(),
        attendance.clone(),
        metrics.registry(),
        &tasks,
        shutdown.clone(),
    )
    .await
    .context("start the live gateway")?;
    tasks.spawn(
        "follow_membership",
        crate::live::follow_membership(live.clone(), gossip.subscribe(), shutdown.clone()),
    );
    let state = EdgeState {
        live,
        identity: identity.clone(),
        url: url.clone(),
        join: edge.join.clone(),
        control_plane_url: edge.control_plane_url.trim_end_matches('/').to_owned(),
        grading: crate::grading::Grading {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(edge.control_plane_timeout_ms))
                .build()
                .context("http client")?,
            control_plane_url: edge.control_plane_url.trim_end_matches('/').to_owned(),
            service_key: edge.control_plane_service_key.clone(),
            confirm_wait: Duration::from_millis(edge.submission_confirm_wait_ms),
        },
        keys: Arc::new(KeyCache::new(&edge)?),
        sandbox: Arc::new(tokio::sync::OnceCell::new()),
        gossip,
        actors: Arc::new(actor_system),
        run_limiter: Arc::new(crate::rate_limit::RateLimiter::new(
            edge.runs_per_user_per_minute_max,
            usize::try_from(edge.rate_limited_users_max).unwrap_or(usize::MAX),
        )),
        tenant_limiter: Arc::new(crate::rate_limit::RateLimiter::new(
            edge.runs_per_tenant_per_minute_max,
            usize::try_from(edge.rate_limited_tenants_max).unwrap_or(usize::MAX),
        )),
        attendance: attendance.clone(),
        runs: Arc::new(
            RunStore::open(
                &store,
                StoreLimits {
                    runs_max: usize::try_from(edge.run_results_max).unwrap_or(usize::MAX),
                    outbox: crate::outbox::QueueLimits {
                        items_max: usize::try_from(edge.outbox_events_max).unwrap_or(usize::MAX),
                        dead_letters_max: usize::try_from(edge.outbox_dead_letters_max)
                            .unwrap_or(usize::MAX),
                    },
                },
            )
            .context("open the run store")?,
        ),
        list_page_max: edge.list_page_max,
        faults: edge
            .fault_injection
            .then(|| Arc::new(tokio::sync::Mutex::new(FaultRules::default()))),
    };
    if edge.fault_injection {
        tracing::warn!("gossip fault injection is on (edge.fault_injection); never in production");
    }
    let basics = Basics {
        metrics,
        readiness: readiness.clone(),
        identity: json!({
            "role": "edge",
            "region": identity.region,
            "node_id": identity.node_id,
            "generation": identity.generation,
        }),
    };
    let routes = Router::new()
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/languages", get(languages))
        .route("/api/v1/cluster/members", get(cluster_members))
        .route("/api/v1/cluster/actors", get(cluster_actors))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/live", get(crate::live::upgrade))
        .route("/api/v1/runs", axum::routing::post(run_code))
        .route("/api/v1/runs/{id}", get(get_run))
        .route(
            "/api/v1/units/{id}/submissions",
            axum::routing::post(crate::grading::submit),
        )
        .route("/api/v1/sandbox/abuse", get(abuse_events))
        .route("/api/v1/operator/outbox", get(outbox_status))
        .route(
            "/api/v1/operator/outbox/dead-letters",
            get(outbox_dead_letters),
        )
        .route(
            "/api/v1/operator/outbox/dead-letters/{id}",
            axum::routing::delete(discard_dead_letter),
        )
        .route(
            "/api/v1/operator/outbox/dead-letters/{id}/retry",
            axum::routing::post(retry_dead_letter),
        )
        .route(
            "/api/v1/operator/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/api/v1/sandbox/pools", get(pool_sizes))
        .route(
            "/api/v1/sandbox/pools/{language}",
            axum::routing::put(set_pool_target),
        )
        .with_state(state.clone());
    let app = server::app(routes, &basics, &config.http);
    if edge.join.is_empty() {
        tracing::info!(
            "no seed peers given (edge.join): this edge starts a cluster of its own until others join it"
        );
    }
    tracing::info!(%url, "edge node serving");

    tasks.spawn(
        "watch_keys",
        watch_keys(
            edge.clone(),
            state.keys.clone(),
            readiness.clone(),
            shutdown.clone(),
        ),
    );
    readiness.register("live_store");
    tasks.spawn(
        "watch_live_store",
        watch_live_store(
            state.live.node().clone(),
            Duration::from_millis(edge.readiness_interval_ms),
            readiness.clone(),
            shutdown.clone(),
        ),
    );
    tasks.spawn(
        "watch_docker",
        watch_docker(edge.clone(), readiness.clone(), shutdown.clone()),
    );
    crate::outbox::start(
        state.runs.outbox().clone(),
        crate::outbox::submissions::Submissions {
            client: control_plane_client.clone(),
            control_plane_url: edge.control_plane_url.clone(),
            service_key: edge.control_plane_service_key.clone(),
        },
        crate::outbox::Publisher {
            readiness_check: "outbox",
            limit_setting: "edge.outbox_events_max",
            enabled: !edge.control_plane_service_key.is_empty(),
            batch_max: usize::try_from(edge.outbox_batch_max).unwrap_or(usize::MAX),
            retry_max: Duration::from_millis(edge.outbox_retry_max_ms),
        },
        outbox_metrics,
        readiness.clone(),
        &tasks,
        shutdown.clone(),
    );
    tokio::spawn(start_sandbox(
        edge.clone(),
        config.sandbox.clone(),
        identity.node_id.to_string(),
        state.sandbox.clone(),
        basics.metrics.registry().clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    if let Some(path) = &args.child.ready_file {
        let info = ReadyInfo {
            role: "edge".into(),
            url: url.clone(),
            pid: std::process::id(),
            region: Some(identity.region.to_string()),
            node_id: Some(identity.node_id.to_string()),
            gossip_addr: Some(gossip_addr.to_string()),
            dev_tokens: None,
        };
        ready_file::write_json_atomic(path, &info)
            .with_context(|| format!("write ready file {}", path.display()))?;
    }
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    {
        let readiness = readiness.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            readiness.set("shutdown", Err("shutting down".into()));
        });
    }
    server::serve(listener, app, grace, shutdown).await?;
    if let Some(sandbox) = state.sandbox.get() {
        sandbox.shutdown().await;
    }
    state.live.node().stop_all().await;
    echo.stop(None);
    if let Ok(actor_system) = Arc::try_unwrap(state.actors) {
        actor_system.shutdown().await;
    }
    // Leave the cluster so peers do not suspect a crash.
    match Arc::try_unwrap(state.gossip) {
        Ok(handle) => {
            if let Err(err) = handle.leave().await {
                tracing::warn!(error = %err, "leaving the cluster failed");
            }
        }
        Err(_) => tracing::warn!("gossip still in use at shutdown; stopping without a leave"),
    }
    store.flush_async().await.context("flush the edge store")?;
    tracing::info!("edge node stopped");
    Ok(())
}

/// Starts SWIM gossip over QUIC with mutual TLS: the operator's CA and
/// certificate when configured, else the dev CA under the data dir (created
/// by the first edge that needs it).
async fn start_gossip(
    config: &Config,
    identity: &NodeIdentity,
    http_url: &str,
    actor_addr: std::net::SocketAddr,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<gossip::GossipHandle> {
    let edge = &config.edge;
    let tls = cluster_tls(config, identity)?;
    let bind: std::net::SocketAddr = edge.gossip_listen.parse().context("edge.gossip_listen")?;
    let me = gossip::NodeIdentity::new(
        identity.node_id.clone(),
        identity.region.clone(),
        bind,
        http_url,
        actor_addr,
        identity.generation,
    )?;
    let mut gossip_config = gossip::GossipConfig::new(me, bind, tls);
    gossip_config.seeds = edge
        .join
        .iter()
        .map(|addr| addr.parse().context("edge.join"))
        .collect::<anyhow::Result<_>>()?;
    gossip_config.swim = match edge.swim_preset {
        crate::config::SwimPreset::Lan => gossip::SwimSettings::lan(),
        crate::config::SwimPreset::Wan => gossip::SwimSettings::wan(),
    };
    gossip_config.registry = metrics.component_registry().clone();
    Ok(gossip::Gossip::start(gossip_config).await?)
}

/// The cluster's mutual-TLS material, shared by gossip and the actor
/// transport: the operator's CA and certificate when configured, else the dev
/// CA under the data dir (created by the first edge that needs it).
fn cluster_tls(config: &Config, identity: &NodeIdentity) -> anyhow::Result<gossip::TlsMaterial> {
    let edge = &config.edge;
    if edge.tls_ca_cert.is_empty() {
        let dir = config.data_dir.join("cluster-ca");
        let ca = gossip::ClusterCa::generate(&dir)
            .with_context(|| format!("dev cluster CA in {}", dir.display()))?;
        Ok(ca.material_for(&identity.node_id)?)
    } else {
        gossip::TlsMaterial::from_pem_files(
            Path::new(&edge.tls_ca_cert),
            Path::new(&edge.tls_cert),
            Path::new(&edge.tls_key),
        )
        .context("edge.tls_ca_cert, edge.tls_cert, edge.tls_key")
    }
}

/// Starts the actor system (issue 4): its QUIC endpoint on `edge.actor_listen`
/// with the cluster's TLS material, metrics in the component registry. It is
/// started before gossip so gossip can advertise its bound address, and told
/// to follow gossip once that runs.
async fn start_actors(
    config: &Config,
    identity: &NodeIdentity,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<actors::ActorSystem> {
    let tls = cluster_tls(config, identity)?;
    let bind = config.edge.actor_addr()?;
    let mut actor_config = actors::ActorConfig::new(bind, tls, identity.generation);
    actor_config.registry = metrics.component_registry().clone();
    Ok(actors::ActorSystem::start(actor_config).await?)
}

/// The actor-cluster view of this node: one entry per gossip member with
/// whether an authenticated ractor_cluster session to it is open, and how many
/// echo actors group `nodes` holds (this node's own included).
async fn cluster_actors(State(state): State<EdgeState>) -> Response {
    let sessions = match state.actors.sessions().await {
        Ok(sessions) => sessions,
        Err(err) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                &err.to_string(),
            )
        }
    };
    let members: Vec<_> = state
        .gossip
        .members()
        .into_iter()
        .map(|m| {
            let connected = sessions.iter().any(|s| s.node_id == m.node_id);
            json!({"node_id": m.node_id, "region": m.region, "connected": connected})
        })
        .collect();
    Json(json!({
        "sessions": members,
        "groups": {"nodes": actors::members_of(actors::NODES_GROUP).len()},
    }))
    .into_response()
}

fn state_name(state: gossip::MemberState) -> &'static str {
    match state {
        gossip::MemberState::Alive => "alive",
        gossip::MemberState::Suspect => "suspect",
        gossip::MemberState::Down => "down",
    }
}

/// This node's view of the cluster, itself included.
async fn cluster_members(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    let mut members = vec![json!({
        "node_id": state.identity.node_id,
        "region": state.identity.region,
        "state": "alive",
        "http_url": state.url,
        "generation": state.identity.generation,
        "rtt_ms": 0.0,
    })];
    members.extend(state.gossip.members().into_iter().map(|m| {
        json!({
            "node_id": m.node_id,
            "region": m.region,
            "state": state_name(m.state),
            "http_url": m.http_url,
            "generation": m.generation,
            "rtt_ms": m.rtt_ms,
        })
    }));
    Json(serde_json::Value::Array(members))
}

/// Every region this node knows, with its health and edge URLs; a region is
/// healthy while at least one of its edges is alive.
async fn regions(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    let mut by_region: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        std::collections::BTreeMap::new();
    by_region
        .entry(state.identity.region.to_string())
        .or_default()
        .push(json!({"node_id": state.identity.node_id, "url": state.url, "state": "alive"}));
    for m in state.gossip.members() {
        by_region
            .entry(m.region.to_string())
            .or_default()
            .push(json!({"node_id": m.node_id, "url": m.http_url, "state": state_name(m.state)}));
    }
    let regions: Vec<_> = by_region
        .into_iter()
        .map(|(region, edges)| {
            let healthy = edges.iter().any(|e| e["state"] == "alive");
            json!({"region": region, "healthy": healthy, "edges": edges})
        })
        .collect();
    Json(json!({"regions": regions}))
}

/// Builds the sandbox image and starts the warm pools, retrying until the
/// engine answers; the node is not ready before this succeeds.
async fn start_sandbox(
    edge: EdgeConfig,
    config: sandbox::SandboxConfig,
    owner: String,
    cell: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    registry: prometheus::Registry,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    let agent = match sandbox::run::lyceum_agent(&owner) {
        Ok(agent) => agent,
        Err(err) => {
            readiness.set(
                "sandbox",
                Err(format!("cannot find the lyceum binary: {err}")),
            );
            return;
        }
    };
    loop {
        let started = match sandbox::DockerEngine::connect(&edge.docker_host) {
            Ok(engine) => {
                sandbox::Sandbox::start(engine, config.clone(), agent.clone(), &registry).await
            }
            Err(err) => Err(err),
        };
        match started {
            Ok(sandbox) => {
                let languages: Vec<String> =
                    sandbox.languages().into_iter().map(|l| l.id).collect();
                tracing::info!(?languages, "sandbox ready");
                if cell.set(sandbox).is_err() {
                    tracing::error!("sandbox started twice");
                }
                readiness.set("sandbox", Ok(()));
                return;
            }
            Err(err) => readiness.set("sandbox", Err(err.to_string())),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(edge.readiness_interval_ms)) => {}
            () = shutdown.clone().wait() => return,
        }
    }
}

/// Verifies the bearer token of a request, as a ready-made error response
/// when it does not check out.
pub(crate) async fn caller(
    state: &EdgeState,
    headers: &HeaderMap,
) -> Result<tokens::Claims, Response> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = tokens::bearer(header).map_err(|err| {
        error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            &err.to_string(),
        )
    })?;
    state.keys.verify(token).await.map_err(|err| match err {
        VerifyError::NoKeys => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "this node has not loaded the control plane's token keys yet",
        ),
        VerifyError::Rejected(err) => error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            &err.to_string(),
        ),
    })
}

pub(crate) fn sandbox_starting() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the sandbox is still starting; see /readyz",
    )
}

async fn pool_sizes(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    if let Err(response) = caller(&state, &headers).await {
        return response;
    }
    let Some(sandbox) = state.sandbox.get() else {
        return sandbox_starting();
    };
    let pools: Vec<_> = sandbox
        .pools()
        .sizes()
        .await
        .into_iter()
        .map(|(language, warm, target)| json!({"language": language, "warm": warm, "target": target}))
        .collect();
    Json(json!({"pools": pools})).into_response()
}

/// Body of `PUT /api/v1/sandbox/pools/{language}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolTarget {
    target: u32,
}

async fn set_pool_target(
    State(state): State<EdgeState>,
    axum::extract::Path(language): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Result<Json<PoolTarget>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let claims = match caller(&state, &headers).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    if claims.role != control_plane::tokens::Role::Operator {
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this needs the operator role",
        );
    }
    let Ok(Json(body)) = body else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "send {\"target\": N}",
        );
    };
    let Some(sandbox) = state.sandbox.get() else {
        return sandbox_starting();
    };
    match sandbox.pools().set_target(&language, body.target).await {
        Ok(target) => Json(json!({"language": language, "target": target})).into_response(),
        Err(err) => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownLanguage,
            &err.to_string(),
        ),
    }
}

async fn languages(State(state): State<EdgeState>) -> Response {
    match state.sandbox.get() {
        Some(sandbox) => Json(json!({"languages": sandbox.languages()})).into_response(),
        None => sandbox_starting(),
    }
}

/// The refusal of a new run: the outbox is full (nothing may be run that
/// could not be reported), or the user's or the tenant's run budget is
/// spent.
pub(crate) fn spent_run_budget(state: &EdgeState, claims: &tokens::Claims) -> Option<Response> {
    use crate::rate_limit::Refusal;
    if state.runs.outbox_full() {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::OutboxFull,
            &format!(
                "this edge holds {} submission reports the control plane has not taken yet \
                 (edge.outbox_events_max); run again shortly or on another region",
                state.runs.outbox().len()
            ),
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        return Some(response);
    }
    let now = std::time::Instant::now();
    let checks = [
        (
            &state.run_limiter,
            claims.sub.as_str(),
            "too many runs",
            "edge.runs_per_user_per_minute_max",
            "users (edge.rate_limited_users_max)",
        ),
        (
            &state.tenant_limiter,
            claims.tid.as_str(),
            "too many runs from your organisation",
            "edge.runs_per_tenant_per_minute_max",
            "tenants (edge.rate_limited_tenants_max)",
        ),
    ];
    for (limiter, key, what, setting, tracked) in checks {
        match limiter.check(key, now) {
            Ok(()) => {}
            Err(Refusal::RetryAfter(wait)) => {
                let seconds = wait.as_secs().saturating_add(1);
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    &format!("{what}; retry in {seconds} s ({setting})"),
                );
                if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, value);
                }
                return Some(response);
            }
            Err(Refusal::TooManyKeys) => {
                return Some(error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    &format!("this edge is tracking too many {tracked}; retry shortly"),
                ));
            }
        }
    }
    None
}

/// The stable code of a sandbox refusal (the sandbox knows nothing of
/// HTTP or of the control plane's codes).
pub(crate) fn refusal_code(refusal: sandbox::Refusal) -> ErrorCode {
    match refusal {
        sandbox::Refusal::UnknownLanguage => ErrorCode::UnknownLanguage,
        sandbox::Refusal::BadFileName => ErrorCode::BadFileName,
        sandbox::Refusal::BadRequest => ErrorCode::BadRequest,
    }
}

pub(crate) fn run_error(err: &sandbox::SandboxError) -> Response {
    match err {
        sandbox::SandboxError::Rejected { refusal, message } => {
            error_response(StatusCode::BAD_REQUEST, refusal_code(*refusal), message)
        }
        err => {
            tracing::error!(error = %err, "code run failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the sandbox could not run this; try again",
            )
        }
    }
}

pub(crate) use crate::store::now_rfc3339;

/// Test cases a run passed.
pub(crate) fn tests_passed(result: &sandbox::RunResult) -> u32 {
    u32::try_from(
        result
            .tests
            .iter()
            .filter(|t| t.status == sandbox::Verdict::Accepted)
            .count(),
    )
    .unwrap_or(u32::MAX)
}

/// The unit a run counts for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitRef<'a> {
    /// Unit id.
    pub(crate) id: &'a str,
    /// The published version graded against, when known.
    pub(crate) version: Option<i64>,
    /// The quiz code question answered, for a quiz submission: the control
    /// plane lets a quiz attempt cite the submission for that question only.
    pub(crate) question: Option<&'a str>,
}

/// Records a finished run (result, submission event, abuse event) in the
/// edge's store and returns the body to answer with; an error response
/// when the store fails, because an answer we cannot keep must not be given.
/// `unit` names the unit the run counts for (a live class's unit, or the
/// unit a graded submission was made against, with its version).
pub(crate) async fn finish_run(
    state: &EdgeState,
    claims: &tokens::Claims,
    language: &str,
    result: &sandbox::RunResult,
    unit: Option<UnitRef<'_>>,
) -> Result<serde_json::Value, Response> {
    tracing::info!(
        run_id = result.id,
        user_id = claims.sub,
        tenant_id = claims.tid,
        language,
        status = result.status.as_str(),
        hot = result.hot,
        "code run"
    );
    let mut body = serde_json::to_value(result).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("region".into(), json!(state.identity.region));
        if let Some(unit) = &unit {
            map.insert("unit_id".into(), json!(unit.id));
            if let Some(version) = unit.version {
                map.insert("unit_version".into(), json!(version));
            }
        }
    }
    let finished_at = now_rfc3339();
    let record = RunRecord {
        id: result.id.clone(),
        user_id: claims.sub.clone(),
        tenant_id: claims.tid.clone(),
        language: language.to_owned(),
        finished_at: finished_at.clone(),
        result: body.clone(),
    };
    let event = SubmissionReport {
        kind: "submission".into(),
        submission_id: result.id.clone(),
        user_id: claims.sub.clone(),
        tenant_id: claims.tid.clone(),
        language: language.to_owned(),
        status: result.status.as_str().to_owned(),
        region: state.identity.region.to_string(),
        finished_at: finished_at.clone(),
        unit_id: unit.as_ref().map(|u| u.id.to_owned()),
        unit_version: unit.as_ref().and_then(|u| u.version),
        question_id: unit.as_ref().and_then(|u| u.question.map(str::to_owned)),
        tests_passed: (!result.tests.is_empty()).then(|| tests_passed(result)),
        tests_total: (!result.tests.is_empty())
            .then(|| u32::try_from(result.tests.len()).unwrap_or(u32::MAX)),
    };
    if let Some(kind) = result.abuse {
        tracing::warn!(
            run_id = result.id,
            user_id = claims.sub,
            tenant_id = claims.tid,
            language,
            abuse = kind.as_str(),
            "abuse monitor ended a run"
        );
        let abuse = AbuseEvent {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: result.id.clone(),
            user_id: claims.sub.clone(),
            tenant_id: claims.tid.clone(),
            language: language.to_owned(),
            kind: kind.as_str().to_owned(),
            at: finished_at,
        };
        if let Err(err) = state.runs.record_abuse(&abuse) {
            tracing::error!(error = %err, "cannot record an abuse event");
        }
    }
    if let Err(err) = state.runs.record(&record, &event).await {
        tracing::error!(error = %err, run_id = result.id, "cannot record a run");
        return Err(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the run finished but could not be recorded; run it again",
        ));
    }
    Ok(body)
}

/// The answer to a JSON body axum could not take, with our error codes.
pub(crate) fn json_rejection(rejection: &axum::extract::rejection::JsonRejection) -> Response {
    let (status, code) = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
        ),
        _ => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
    };
    error_response(status, code, &rejection.body_text())
}

/// Whether the client asked for server-sent events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

async fn run_code(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Json<sandbox::RunRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let claims = match caller(&state, &headers).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    if let Some(response) = spent_run_budget(&state, &claims) {
        return response;
    }
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(&rejection),
    };
    let Some(sandbox) = state.sandbox.get().cloned() else {
        return sandbox_starting();
    };
    if wants_stream(&headers) {
        // Bad requests get a plain JSON error before any event is sent.
        if let Err(err) = sandbox.validate(&request) {
            return run_error(&err);
        }
        return stream_run(state, claims, sandbox, request);
    }
    match sandbox.run(&request).await {
        Ok(result) => match finish_run(&state, &claims, &request.language, &result, None).await {
            Ok(body) => Json(body).into_response(),
            Err(response) => response,
        },
        Err(err) => run_error(&err),
    }
}

/// Answers a run as server-sent events: `output` events while it runs
/// (`{"step","case","stream","data"}`), a `lagged` event if the client fell
/// behind and pieces were dropped (`{"dropped": n}`), then one `result`
/// event with the same JSON as the plain answer, or one `error` event with
/// the usual error body. The run goes on and is recorded even if the
/// client goes away.
fn stream_run(
    state: EdgeState,
    claims: tokens::Claims,
    sandbox: sandbox::Sandbox,
    request: sandbox::RunRequest,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (sink, mut chunks) = sandbox.output_sink();
    // As many events as the sink holds pieces, plus the last two.
    let capacity = sandbox.stream_chunks_max().saturating_add(2);
    let (events, receiver) =
        tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(capacity);
    tokio::spawn(async move {
        let mut dropped = 0_u64;
        let run = sandbox.run_streaming(&request, Some(&sink));
        tokio::pin!(run);
        let forward = |chunk: sandbox::job::OutputChunk, dropped: &mut u64| {
            let event = Event::default().event("output").json_data(&chunk);
            // Never wait on a slow client: the run must not slow down.
            if event
                .map(|e| events.try_send(Ok(e)))
                .map_or(true, |sent| sent.is_err())
            {
                *dropped += 1;
            }
        };
        let outcome = loop {
            tokio::select! {
                biased;
                Some(chunk) = chunks.recv() => forward(chunk, &mut dropped),
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(chunk) = chunks.try_recv() {
            forward(chunk, &mut dropped);
        }
        dropped += sink.dropped();
        if dropped > 0 {
            if let Ok(event) = Event::default()
                .event("lagged")
                .json_data(json!({"dropped": dropped}))
            {
                let _ = events.send(Ok(event)).await;
            }
        }
        let last = match outcome {
            Ok(result) => match finish_run(&state, &claims, &request.language, &result, None).await
            {
                Ok(body) => Event::default().event("result").json_data(body),
                Err(_) => Event::default().event("error").json_data(json!({"error": {
                    "code": ErrorCode::Internal.as_str(),
                    "message": "the run finished but could not be recorded; run it again"}})),
            },
            Err(err) => {
                let (code, message) = match &err {
                    sandbox::SandboxError::Rejected { refusal, message } => {
                        (refusal_code(*refusal).as_str(), message.clone())
                    }
                    other => {
                        tracing::error!(error = %other, "code run failed");
                        (
                            ErrorCode::Internal.as_str(),
                            "the sandbox could not run this; try again".to_owned(),
                        )
                    }
                };
                Event::default()
                    .event("error")
                    .json_data(json!({"error": {"code": code, "message": message}}))
            }
        };
        if let Ok(event) = last {
            let _ = events.send(Ok(event)).await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /api/v1/runs/{id}`: a recorded run, for the user who ran it or an
/// operator; anyone else gets 404, so ids do not leak.
async fn get_run(
    State(state): State<EdgeState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let claims = match caller(&state, &headers).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    let not_found = || error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such run");
    if uuid::Uuid::parse_str(&id).is_err() {
        return not_found();
    }
    match state.runs.get(&id) {
        Ok(Some(record))
            if record.user_id == claims.sub
                || claims.role == control_plane::tokens::Role::Operator =>
        {
            Json(record.result).into_response()
        }
        Ok(_) => not_found(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read a run");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "cannot read the run store",
            )
        }
    }
}

/// `?limit=` of list requests.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

/// An operator's request: anyone else is refused (401 or 403) before the
/// handler runs.
pub(crate) struct Operator;

impl axum::extract::FromRequestParts<EdgeState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &EdgeState,
    ) -> Result<Self, Response> {
        operator(state, &parts.headers).await.map(|_| Operator)
    }
}

/// The outbox a dead-letter route names (`?queue=`), or the refusal.
pub(crate) struct DeadLetterQueue(QueueName);

impl axum::extract::FromRequestParts<EdgeState> for DeadLetterQueue {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &EdgeState,
    ) -> Result<Self, Response> {
        axum::extract::Query::<QueueQuery>::try_from_uri(&parts.uri)
            .map(|query| DeadLetterQueue(query.0.queue))
            .map_err(|_| bad_queue())
    }
}

/// The caller's claims when they are an operator's, else the refusal.
async fn operator(state: &EdgeState, headers: &HeaderMap) -> Result<tokens::Claims, Response> {
    let claims = caller(state, headers).await?;
    if claims.role != control_plane::tokens::Role::Operator {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this needs the operator role",
        ));
    }
    Ok(claims)
}

fn store_failure(err: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %err, "cannot read or write the run store");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "cannot read or write the run store",
    )
}

/// One outbox as operators see it.
fn queue_view<T: serde::Serialize + serde::de::DeserializeOwned>(
    queue: &crate::outbox::Queue<T>,
) -> serde_json::Value {
    let limits = queue.limits();
    json!({
        "pending": queue.len(),
        "pending_max": limits.items_max,
        "full": queue.full(),
        "dead_letters": queue.dead_letters_len(),
        "dead_letters_max": limits.dead_letters_max,
    })
}

/// `GET /api/v1/operator/outbox`: how many submission reports wait for
/// the control plane, since when, and the dead letters; the same for
/// attendance reports under `attendance`; operators only.
async fn outbox_status(State(state): State<EdgeState>, _: Operator) -> Response {
    match state.runs.oldest_finished_at() {
        Ok(oldest) => {
            let mut view = queue_view(state.runs.outbox());
            view["oldest_finished_at"] = json!(oldest);
            view["attendance"] = queue_view(&state.attendance);
            Json(view).into_response()
        }
        Err(err) => store_failure(&err),
    }
}

/// Which outbox a dead-letter route is about.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum QueueName {
    /// Submission reports (the default).
    #[default]
    Submissions,
    /// Attendance reports.
    Attendance,
}

/// `?limit=&after=&queue=` of the dead-letter list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    limit: Option<u32>,
    after: Option<String>,
    #[serde(default)]
    queue: QueueName,
}

/// `?queue=` of a dead letter's routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    #[serde(default)]
    queue: QueueName,
}

/// The list, discard and requeue of one queue's dead letters, as JSON.
trait DeadLetters {
    fn list(&self, after: Option<&str>, limit: usize)
        -> Result<Vec<serde_json::Value>, StoreError>;
    fn discard(&self, id: &str) -> Result<bool, StoreError>;
    fn requeue(&self, id: &str) -> Result<bool, StoreError>;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> DeadLetters for crate::outbox::Queue<T> {
    fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .dead_letters(after, limit)?
            .into_iter()
            .map(|letter| json!(letter))
            .collect())
    }

    fn discard(&self, id: &str) -> Result<bool, StoreError> {
        self.discard_dead_letter(id)
    }

    fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        self.requeue_dead_letter(id)
    }
}

fn dead_letters_of(state: &EdgeState, queue: QueueName) -> &dyn DeadLetters {
    match queue {
        QueueName::Submissions => state.runs.outbox().as_ref(),
        QueueName::Attendance => state.attendance.as_ref(),
    }
}

/// `GET /api/v1/operator/outbox/dead-letters?limit=N&after=ID&queue=Q`:
/// reports the control plane refused for good, in key order, with the
/// reason (`queue`: `submissions`, the default, or `attendance`);
/// operators only. `next_after` pages on.
async fn outbox_dead_letters(
    State(state): State<EdgeState>,
    _: Operator,
    query: Result<axum::extract::Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the parameters are limit (a whole number), after (a dead letter id) and \
             queue (submissions or attendance)",
        );
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > state.list_page_max {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!(
                "limit must be 1 to {} (edge.list_page_max)",
                state.list_page_max
            ),
        );
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match dead_letters_of(&state, query.queue).list(query.after.as_deref(), limit) {
        Ok(items) => {
            let next_after = (items.len() == limit)
                .then(|| {
                    items
                        .last()
                        .and_then(|letter| letter["id"].as_str().map(str::to_owned))
                })
                .flatten();
            Json(json!({"items": items, "next_after": next_after})).into_response()
        }
        Err(err) => store_failure(&err),
    }
}

/// `DELETE /api/v1/operator/outbox/dead-letters/{id}?queue=Q`: an
/// operator has dealt with a refused report; 204, or 404 when there is
/// none.
async fn discard_dead_letter(
    State(state): State<EdgeState>,
    _: Operator,
    DeadLetterQueue(queue): DeadLetterQueue,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match dead_letters_of(&state, queue).discard(&id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such dead letter",
        ),
        Err(err) => store_failure(&err),
    }
}

/// `POST /api/v1/operator/outbox/dead-letters/{id}/retry?queue=Q`: puts a
/// refused report back in its outbox (after what the control plane
/// refused was fixed); 202, or 404 when there is none.
async fn retry_dead_letter(
    State(state): State<EdgeState>,
    _: Operator,
    DeadLetterQueue(queue): DeadLetterQueue,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match dead_letters_of(&state, queue).requeue(&id) {
        Ok(true) => (StatusCode::ACCEPTED, Json(json!({"requeued": id}))).into_response(),
        Ok(false) => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such dead letter",
        ),
        Err(StoreError::Corrupt { reason, .. }) => {
            error_response(StatusCode::CONFLICT, ErrorCode::Conflict, &reason)
        }
        Err(err) => store_failure(&err),
    }
}

fn bad_queue() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        "the only parameter is queue: submissions or attendance",
    )
}

/// `GET /api/v1/sandbox/abuse?limit=N`: the newest abuse events, newest
/// first; operators only.
async fn abuse_events(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let claims = match caller(&state, &headers).await {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    if claims.role != control_plane::tokens::Role::Operator {
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this needs the operator role",
        );
    }
    let Ok(axum::extract::Query(query)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the only parameter is limit, a whole number",
        );
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > state.list_page_max {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &format!(
                "limit must be 1 to {} (edge.list_page_max)",
                state.list_page_max
            ),
        );
    }
    match state
        .runs
        .recent_abuse(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read abuse events");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "cannot read the run store",
            )
        }
    }
}

/// Body of `PUT /api/v1/operator/faults` (and answer of `GET`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRules {
    rules: Vec<FaultRuleBody>,
}

/// One rule: a peer (node id) and what to do with gossip traffic to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRuleBody {
    peer: String,
    action: FaultActionBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultActionBody {
    Drop,
    Delay,
    Cut,
}

impl FaultRules {
    fn to_filter(&self) -> Result<gossip::FaultFilter, String> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let peer = NodeId::new(&rule.peer).map_err(|err| format!("rules[{i}].peer: {err}"))?;
            let action = match (rule.action, rule.delay_ms) {
                (FaultActionBody::Drop, None) => gossip::FaultAction::Drop,
                (FaultActionBody::Cut, None) => gossip::FaultAction::Cut,
                (FaultActionBody::Delay, Some(ms)) if ms > 0 => gossip::FaultAction::DelayMs(ms),
                (FaultActionBody::Delay, _) => {
                    return Err(format!("rules[{i}]: delay needs delay_ms of at least 1"))
                }
                (_, Some(_)) => {
                    return Err(format!("rules[{i}]: delay_ms goes only with action delay"))
                }
            };
            rules.push(gossip::FaultRule {
                peer: gossip::PeerSelector::NodeId(peer),
                action,
            });
        }
        gossip::FaultFilter::new(rules).map_err(|err| err.to_string())
    }
}

/// The fault rules when the caller is an operator and injection is on.
async fn fault_rules(
    state: &EdgeState,
    headers: &HeaderMap,
) -> Result<Arc<tokio::sync::Mutex<FaultRules>>, Response> {
    let claims = caller(state, headers).await?;
    if claims.role != control_plane::tokens::Role::Operator {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this needs the operator role",
        ));
    }
    state.faults.clone().ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "fault injection is off on this node (edge.fault_injection)",
        )
    })
}

/// `GET /api/v1/operator/faults`: the rules in force.
async fn get_faults(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    match fault_rules(&state, &headers).await {
        Ok(rules) => Json(rules.lock().await.clone()).into_response(),
        Err(response) => response,
    }
}

/// `PUT /api/v1/operator/faults`: replaces the rules.
async fn put_faults(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Json<FaultRules>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let rules = match fault_rules(&state, &headers).await {
        Ok(rules) => rules,
        Err(response) => return response,
    };
    let wanted = match body {
        Ok(Json(wanted)) => wanted,
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &format!(
                    "{}; send {{\"rules\": [{{\"peer\": NODE_ID, \"action\": \"drop\"|\"cut\"|\"delay\", \"delay_ms\": N}}]}}",
                    rejection.body_text()
                ),
            )
        }
    };
    let filter = match wanted.to_filter() {
        Ok(filter) => filter,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, &why),
    };
    let mut current = rules.lock().await;
    state.gossip.set_fault_filter(filter);
    tracing::warn!(rules = ?wanted.rules, "gossip fault rules set by an operator");
    *current = wanted;
    Json(current.clone()).into_response()
}

/// `DELETE /api/v1/operator/faults`: clears every rule.
async fn delete_faults(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    let rules = match fault_rules(&state, &headers).await {
        Ok(rules) => rules,
        Err(response) => return response,
    };
    let mut current = rules.lock().await;
    state.gossip.clear_fault_filter();
    tracing::warn!("gossip fault rules cleared by an operator");
    *current = FaultRules::default();
    Json(current.clone()).into_response()
}

async fn node_info(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    Json(json!({
        "node_id": state.identity.node_id,
        "region": state.identity.region,
        "generation": state.identity.generation,
        "url": state.url,
        "join": state.join,
        "control_plane_url": state.control_plane_url,
    }))
}

async fn whoami(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    match caller(&state, &headers).await {
        Ok(claims) => Json(json!({
            "user_id": claims.sub,
            "tenant_id": claims.tid,
            "role": claims.role,
            "email": claims.email,
            "expires_at": claims.exp,
            "verified_by": state.identity.node_id,
        }))
        .into_response(),
        Err(response) => response,
    }
}

/// Fetches the control plane's key set until it succeeds, then refreshes it
/// periodically; the last good set keeps working while the control plane is
/// away.
async fn watch_keys(
    edge: EdgeConfig,
    keys: Arc<KeyCache>,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    loop {
        let have_keys = keys.current().is_some();
        let wait_ms = match keys.fetch().await {
            Ok(()) => {
                readiness.set("control_plane_keys", Ok(()));
                edge.key_refresh_interval_ms
            }
            Err(err) if have_keys => {
                tracing::warn!(error = %err, "key set refresh failed; keeping the last good set");
                edge.readiness_interval_ms
            }
            Err(err) => {
                readiness.set("control_plane_keys", Err(err));
                edge.readiness_interval_ms.min(1_000)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            () = shutdown.clone().wait() => return,
        }
    }
}

async fn fetch_keys(client: &reqwest::Client, url: &str) -> Result<TokenVerifier, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| format!("cannot reach {url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let jwks: Jwks = response
        .json()
        .await
        .map_err(|err| format!("bad key set from {url}: {err}"))?;
    let verifier = TokenVerifier::new(&jwks).map_err(|err| err.to_string())?;
    if verifier.key_count() == 0 {
        return Err(format!("{url} published no Ed25519 keys"));
    }
    Ok(verifier)
}

/// Keeps the `live_store` readiness check: red from the first failed read,
/// write or flush of the live store (votes, class copies), after which the
/// node takes no more votes or copies until it restarts.
async fn watch_live_store(
    live: Arc<actors::live::hub::LiveNode>,
    interval: Duration,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    loop {
        let outcome = match live.storage_fault() {
            None => Ok(()),
            Some(why) => Err(format!(
                "the live store failed and is not used again: {why}"
            )),
        };
        readiness.set("live_store", outcome);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.clone().wait() => return,
        }
    }
}

async fn watch_docker(edge: EdgeConfig, readiness: Readiness, shutdown: Shutdown) {
    let engine = match sandbox::DockerEngine::connect(&edge.docker_host) {
        Ok(engine) => engine,
        Err(err) => {
            readiness.set("docker", Err(err.to_string()));
            return;
        }
    };
    let timeout = Duration::from_millis(edge.docker_ping_timeout_ms);
    loop {
        let outcome = engine
            .ping(timeout)
            .await
            .map(|info| tracing::debug!(version = info.version, "docker engine answers"))
            .map_err(|err| err.to_string());
        readiness.set("docker", outcome);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(edge.readiness_interval_ms)) => {}
            () = shutdown.clone().wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_generation_survives_a_restart_and_never_goes_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let region = Region::new("eu-west").expect("region");
        let (db, first) = open_identity(dir.path(), &region, None).expect("open");
        assert_eq!(first.generation, 1);
        // Gossip rejoined as generation 4 while running.
        persist_generation(&db, 4).expect("persist");
        // A lower one (a stale event) changes nothing.
        persist_generation(&db, 2).expect("persist");
        drop(db);
        // sled lets go of its lock from a background thread: retry a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            match open_identity(dir.path(), &region, None) {
                Ok((_, identity)) => break identity,
                Err(err) if std::time::Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("reopen: {err}"),
            }
        };
        assert_eq!(second.node_id, first.node_id);
        assert_eq!(second.generation, 5);
    }
}
