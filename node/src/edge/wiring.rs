//! The wiring of one edge (`lyceum edge`): opens its store and identity,
//! starts the actor system, gossip, the live gateway, the outbox
//! publishers, the sandbox and the readiness watchers, builds the shared
//! state, serves the router, and takes it all down again on shutdown. The
//! one place that knows every part; nothing imports it but `edge/mod.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gossip::{NodeId, Region};
use serde_json::json;

use crate::cli::EdgeArgs;
use crate::config::{Config, EdgeConfig, SwimPreset};
use crate::edge::faults::FaultRules;
use crate::edge::identity::{edge_dir, keep_generations, open_identity, NodeIdentity};
use crate::edge::keys::KeyCache;
use crate::edge::live::gateway::{follow_membership, Gateway, Whereabouts};
use crate::edge::pools::{follow_plan, PlanSource, PoolControl};
use crate::edge::router::router;
use crate::edge::runs::RunService;
use crate::edge::state::{EdgeState, Grading};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::readiness::Readiness;
use crate::ready_file::{self, ReadyInfo};
use crate::server::{self, Basics};
use crate::shutdown::Shutdown;
use crate::store::runs::{RunStore, StoreLimits};

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
    let control_plane_link = crate::control_plane_link::ControlPlaneLink::default();
    crate::outbox::start(
        attendance.clone(),
        crate::outbox::attendance::Attendance {
            client: control_plane_client.clone(),
            control_plane_url: edge.control_plane_url.clone(),
            service_key: edge.control_plane_service_key.clone(),
            link: control_plane_link.clone(),
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
    let live = Gateway::start(
        config.live.clone(),
        config.media.clone(),
        Whereabouts {
            node_id: identity.node_id.to_string(),
            region: identity.region.to_string(),
            peers: peers.clone(),
        },
        store.clone(),
        attendance.clone(),
        metrics.registry(),
        &tasks,
        shutdown.clone(),
    )
    .await
    .context("start the live gateway")?;
    // Audio between edges rides the actor sessions' connections.
    if let (Some(sfu), Some(datagrams)) = (live.media.sfu(), actor_system.take_datagrams()) {
        crate::edge::live::relay::start(
            crate::edge::live::relay::RelayStart {
                sfu: sfu.clone(),
                sender: actor_system.datagram_sender(),
                datagrams,
                peers,
                refresh: Duration::from_millis(config.media.relay_refresh_ms),
                ttl: Duration::from_millis(config.media.relay_subscription_ttl_ms),
                packets_per_second_max: config.media.relay_packets_per_second_max,
            },
            metrics.registry(),
            &tasks,
            &shutdown,
        )
        .context("start the audio relay")?;
    }
    tasks.spawn(
        "follow_membership",
        follow_membership(live.clone(), gossip.subscribe(), shutdown.clone()),
    );
    let sandbox_cell = Arc::new(tokio::sync::OnceCell::new());
    let run_store = Arc::new(
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
    );
    let pools = Arc::new(
        PoolControl::new(
            actors::pool::PoolSettings {
                policy: edge.pool_policy,
                base_target: config.sandbox.pool_target,
                tick: Duration::from_millis(edge.pool_tick_ms),
                observed_half_life: Duration::from_millis(edge.pool_observed_half_life_ms),
                reactive_horizon: Duration::from_millis(edge.pool_reactive_horizon_ms),
                surplus_grace: Duration::from_millis(edge.pool_surplus_grace_ms),
            },
            actors::pool::Budget::new(edge.pool_warm_containers_max, edge.pool_warm_memory_mb_max),
            store.clone(),
            metrics.registry(),
        )
        .context("pool metrics")?,
    );
    tasks.spawn(
        "follow_plan",
        follow_plan(
            pools.clone(),
            PlanSource {
                client: control_plane_client.clone(),
                control_plane_url: edge.control_plane_url.clone(),
                service_key: edge.control_plane_service_key.clone(),
                region: identity.region.to_string(),
                every: Duration::from_millis(edge.pool_plan_refresh_ms),
                link: control_plane_link.clone(),
            },
            shutdown.clone(),
        ),
    );
    let state = EdgeState {
        pools: pools.clone(),
        live,
        identity: identity.clone(),
        url: url.clone(),
        join: edge.join.clone(),
        control_plane_url: edge.control_plane_url.trim_end_matches('/').to_owned(),
        drills_url: (!edge.drills_url.is_empty())
            .then(|| edge.drills_url.trim_end_matches('/').to_owned()),
        grading: Grading {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(edge.control_plane_timeout_ms))
                .build()
                .context("http client")?,
            control_plane_url: edge.control_plane_url.trim_end_matches('/').to_owned(),
            service_key: edge.control_plane_service_key.clone(),
            confirm_wait: Duration::from_millis(edge.submission_confirm_wait_ms),
            link: control_plane_link.clone(),
        },
        keys: Arc::new(KeyCache::new(&edge, control_plane_link.clone())?),
        sandbox: sandbox_cell.clone(),
        gossip,
        actors: Arc::new(actor_system),
        runs: RunService {
            region: identity.region.to_string(),
            store: run_store.clone(),
            sandbox: sandbox_cell,
            user_limiter: Arc::new(RateLimiter::new(
                edge.runs_per_user_per_minute_max,
                usize::try_from(edge.rate_limited_users_max).unwrap_or(usize::MAX),
            )),
            tenant_limiter: Arc::new(RateLimiter::new(
                edge.runs_per_tenant_per_minute_max,
                usize::try_from(edge.rate_limited_tenants_max).unwrap_or(usize::MAX),
            )),
            drop_reports: Arc::new(std::sync::atomic::AtomicU32::new(edge.test_drop_reports)),
        },
        run_store,
        attendance: attendance.clone(),
        list_page_max: edge.list_page_max,
        pool_override_ms_max: edge.pool_override_ms_max,
        fault_window_ms_max: edge.fault_window_ms_max,
        control_plane_link: control_plane_link.clone(),
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
    let routes = router(state.clone());
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
        state.run_store.outbox().clone(),
        crate::outbox::submissions::Submissions {
            client: control_plane_client.clone(),
            control_plane_url: edge.control_plane_url.clone(),
            service_key: edge.control_plane_service_key.clone(),
            link: control_plane_link.clone(),
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
        Registries {
            prefixed: basics.metrics.registry().clone(),
            full: basics.metrics.component_registry().clone(),
        },
        (pools.clone(), identity.region.clone()),
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
    pools.stop();
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
    metrics: &Metrics,
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
        SwimPreset::Lan => gossip::SwimSettings::lan(),
        SwimPreset::Wan => gossip::SwimSettings::wan(),
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
    metrics: &Metrics,
) -> anyhow::Result<actors::ActorSystem> {
    let tls = cluster_tls(config, identity)?;
    let bind = config.edge.actor_addr()?;
    let mut actor_config = actors::ActorConfig::new(bind, tls, identity.generation);
    actor_config.registry = metrics.component_registry().clone();
    Ok(actors::ActorSystem::start(actor_config).await?)
}

/// The process's two metric registries: one that prefixes `lyceum_`, one
/// for components that name their metrics in full.
struct Registries {
    prefixed: prometheus::Registry,
    full: prometheus::Registry,
}

/// Builds the sandbox image, starts the warm pools and their actors,
/// retrying until the engine answers; the node is not ready before this
/// succeeds.
#[expect(
    clippy::too_many_arguments,
    reason = "the wiring hands each part what it needs"
)]
async fn start_sandbox(
    edge: EdgeConfig,
    config: sandbox::SandboxConfig,
    owner: String,
    cell: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    registries: Registries,
    (pools, region): (Arc<PoolControl>, Region),
    readiness: Readiness,
    shutdown: Shutdown,
) {
    let registry = registries.prefixed;
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
                if let Err(err) = pools
                    .start_actors(&sandbox, &region, &registries.full)
                    .await
                {
                    readiness.set("sandbox", Err(format!("pool actors: {err:#}")));
                    return;
                }
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
