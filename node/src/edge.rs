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
use serde::Serialize;
use serde_json::json;

use crate::cli::EdgeArgs;
use crate::config::{Config, EdgeConfig};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::ready_file::{self, ReadyInfo};
use crate::server::{self, error_response, Basics};
use crate::shutdown::Shutdown;

/// Why the edge's local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled refused to open, read or flush.
    #[error("edge store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value has the wrong shape.
    #[error("edge store: key {key} is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

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

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[derive(Clone)]
struct EdgeState {
    identity: NodeIdentity,
    url: String,
    join: Vec<String>,
    keys: Arc<KeyCache>,
    /// Set once the image is built and the pools are warming.
    sandbox: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    /// Cluster membership.
    gossip: Arc<gossip::GossipHandle>,
    /// Per-user budget of code runs.
    run_limiter: Arc<crate::rate_limit::RateLimiter>,
}

/// The control plane's public keys as this edge knows them. Tokens are
/// verified locally; only a token signed by a key we have not seen (the set
/// rotated since the last fetch) makes us refetch, at most once per
/// `edge.key_refetch_min_interval_ms`.
struct KeyCache {
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

    let listener = tokio::net::TcpListener::bind(&edge.listen)
        .await
        .with_context(|| format!("listen on {} (edge.listen)", edge.listen))?;
    let http_addr = listener.local_addr()?;
    let url = format!("http://{http_addr}");
    let gossip = start_gossip(config, &identity, &url, http_addr, &metrics)
        .await
        .context("start gossip")?;
    let gossip_addr = gossip.local_addr();
    tracing::info!(%gossip_addr, seeds = ?edge.join, "gossip started");
    let state = EdgeState {
        identity: identity.clone(),
        url: url.clone(),
        join: edge.join.clone(),
        keys: Arc::new(KeyCache::new(&edge)?),
        sandbox: Arc::new(tokio::sync::OnceCell::new()),
        gossip: Arc::new(gossip),
        run_limiter: Arc::new(crate::rate_limit::RateLimiter::new(
            edge.runs_per_user_per_minute_max,
            usize::try_from(edge.rate_limited_users_max).unwrap_or(usize::MAX),
        )),
    };
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
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/runs", axum::routing::post(run_code))
        .route("/api/v1/sandbox/pools", get(pool_sizes))
        .route(
            "/api/v1/sandbox/pools/{language}",
            axum::routing::put(set_pool_target),
        )
        .with_state(state.clone());
    let app = server::app(routes, &basics, &config.http);
    if edge.join.is_empty() {
        tracing::info!(
            "no seed peers given (edge.join); gossip arrives with the cluster-fabric work"
        );
    }
    tracing::info!(%url, "edge node serving");

    tokio::spawn(watch_keys(
        edge.clone(),
        state.keys.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(watch_docker(
        edge.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
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
    http_addr: std::net::SocketAddr,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<gossip::GossipHandle> {
    let edge = &config.edge;
    let tls = if edge.tls_ca_cert.is_empty() {
        let dir = config.data_dir.join("cluster-ca");
        let ca = gossip::ClusterCa::generate(&dir)
            .with_context(|| format!("dev cluster CA in {}", dir.display()))?;
        ca.material_for(&identity.node_id)?
    } else {
        gossip::TlsMaterial::from_pem_files(
            Path::new(&edge.tls_ca_cert),
            Path::new(&edge.tls_cert),
            Path::new(&edge.tls_key),
        )
        .context("edge.tls_ca_cert, edge.tls_cert, edge.tls_key")?
    };
    let bind: std::net::SocketAddr = edge.gossip_listen.parse().context("edge.gossip_listen")?;
    // The actor transport arrives with the actors work; until then the
    // identity advertises the HTTP address in its place.
    let me = gossip::NodeIdentity::new(
        identity.node_id.clone(),
        identity.region.clone(),
        bind,
        http_url,
        http_addr,
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
async fn caller(state: &EdgeState, headers: &HeaderMap) -> Result<tokens::Claims, Response> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = tokens::bearer(header).map_err(|err| {
        error_response(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            &err.to_string(),
        )
    })?;
    state.keys.verify(token).await.map_err(|err| match err {
        VerifyError::NoKeys => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node has not loaded the control plane's token keys yet",
        ),
        VerifyError::Rejected(err) => error_response(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            &err.to_string(),
        ),
    })
}

fn sandbox_starting() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
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
            "forbidden",
            "this needs the operator role",
        );
    }
    let Ok(Json(body)) = body else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send {\"target\": N}",
        );
    };
    let Some(sandbox) = state.sandbox.get() else {
        return sandbox_starting();
    };
    match sandbox.pools().set_target(&language, body.target).await {
        Ok(target) => Json(json!({"language": language, "target": target})).into_response(),
        Err(err) => error_response(StatusCode::NOT_FOUND, "unknown_language", &err.to_string()),
    }
}

async fn languages(State(state): State<EdgeState>) -> Response {
    match state.sandbox.get() {
        Some(sandbox) => Json(json!({"languages": sandbox.languages()})).into_response(),
        None => sandbox_starting(),
    }
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
    match state
        .run_limiter
        .check(&claims.sub, std::time::Instant::now())
    {
        Ok(()) => {}
        Err(crate::rate_limit::Refusal::RetryAfter(wait)) => {
            let seconds = wait.as_secs().saturating_add(1);
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("too many runs; retry in {seconds} s (edge.runs_per_user_per_minute_max)"),
            );
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(crate::rate_limit::Refusal::TooManyKeys) => {
            return error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this edge is tracking too many users (edge.rate_limited_users_max); retry shortly",
            );
        }
    }
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            let (status, code) = match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                _ => (StatusCode::BAD_REQUEST, "bad_request"),
            };
            return error_response(status, code, &rejection.body_text());
        }
    };
    let Some(sandbox) = state.sandbox.get() else {
        return sandbox_starting();
    };
    match sandbox.run(&request).await {
        Ok(result) => {
            tracing::info!(
                user_id = claims.sub,
                tenant_id = claims.tid,
                language = request.language,
                status = ?result.status,
                hot = result.hot,
                "code run"
            );
            let mut body = serde_json::to_value(&result).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut body {
                map.insert("region".into(), json!(state.identity.region));
            }
            Json(body).into_response()
        }
        Err(sandbox::SandboxError::Rejected(why)) => {
            let code = if why.starts_with("unknown language") || why.contains("not installed") {
                "unknown_language"
            } else {
                "bad_request"
            };
            error_response(StatusCode::BAD_REQUEST, code, &why)
        }
        Err(err) => {
            tracing::error!(error = %err, "code run failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the sandbox could not run this; try again",
            )
        }
    }
}

async fn node_info(State(state): State<EdgeState>) -> Json<serde_json::Value> {
    Json(json!({
        "node_id": state.identity.node_id,
        "region": state.identity.region,
        "generation": state.identity.generation,
        "url": state.url,
        "join": state.join,
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
