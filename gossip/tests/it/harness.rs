//! Shared helpers: start nodes from one CA, wait for a condition with a bound,
//! and read counters back from a node's Prometheus registry.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::time::Instant;

use gossip::{
    ClusterCa, Gossip, GossipConfig, GossipHandle, MemberState, NodeId, NodeIdentity, Region,
    TlsMaterial,
};

/// How long a test waits for the cluster to get where it should.
pub const CONVERGE_WAIT_MS: u64 = 30_000;
/// How often a waiting test looks again.
pub const POLL_MS: u64 = 50;

pub fn init_tracing() {
    let _already = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn node_id(text: &str) -> NodeId {
    NodeId::new(text).expect("valid node id")
}

pub fn identity(id: &str, region: &str) -> NodeIdentity {
    NodeIdentity::new(
        node_id(id),
        Region::new(region).expect("valid region"),
        "127.0.0.1:0".parse().expect("addr"),
        &format!("http://{id}.test"),
        "127.0.0.1:9".parse().expect("addr"),
        1,
    )
    .expect("valid identity")
}

/// A running node with the registry its metrics live in.
pub struct Node {
    pub handle: GossipHandle,
    pub registry: prometheus::Registry,
    pub id: NodeId,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// This node's view of `other`, if it knows it.
    pub fn state_of(&self, other: &NodeId) -> Option<MemberState> {
        self.handle
            .members()
            .into_iter()
            .find(|member| &member.node_id == other)
            .map(|member| member.state)
    }

    /// A counter's value from the registry's text exposition.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("encode metrics");
        let key = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|line| line.strip_prefix(&key))
            .map_or(0.0, |value| value.trim().parse().expect("numeric metric"))
    }

    pub fn dropped_metric(&self, reason: &str) -> f64 {
        self.metric(
            "lyceum_gossip_dropped_total",
            &format!("reason=\"{reason}\""),
        )
    }
}

pub async fn start_with(
    material: TlsMaterial,
    id: &str,
    region: &str,
    seeds: Vec<SocketAddr>,
) -> Node {
    let registry = prometheus::Registry::new();
    let mut config = GossipConfig::new(
        identity(id, region),
        "127.0.0.1:0".parse().expect("addr"),
        material,
    );
    config.seeds = seeds;
    config.registry = registry.clone();
    config.rng_seed = Some(id.bytes().map(u64::from).sum());
    let handle = Gossip::start(config).await.expect("gossip starts");
    Node {
        handle,
        registry,
        id: node_id(id),
    }
}

pub async fn start(ca: &ClusterCa, id: &str, region: &str, seeds: Vec<SocketAddr>) -> Node {
    let material = ca.material_for(&node_id(id)).expect("issue certificate");
    start_with(material, id, region, seeds).await
}

/// Starts a seed and `others` joining through it, ids `<prefix>-<n>` spread
/// over three regions.
pub async fn cluster(ca: &ClusterCa, prefix: &str, size: usize) -> Vec<Node> {
    const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
    let seed = start(ca, &format!("{prefix}-0"), REGIONS[0], Vec::new()).await;
    let seeds = vec![seed.addr()];
    let mut nodes = vec![seed];
    for n in 1..size {
        let node = start(
            ca,
            &format!("{prefix}-{n}"),
            REGIONS[n % REGIONS.len()],
            seeds.clone(),
        )
        .await;
        nodes.push(node);
    }
    nodes
}

/// Whether every node sees every other one Alive.
pub fn all_alive(nodes: &[Node]) -> bool {
    nodes.iter().all(|node| {
        nodes
            .iter()
            .filter(|other| other.id != node.id)
            .all(|other| node.state_of(&other.id) == Some(MemberState::Alive))
    })
}

/// Polls `check` until it holds; panics with `what` after
/// [`CONVERGE_WAIT_MS`]. Returns how long it took.
pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    let bound = Duration::from_millis(CONVERGE_WAIT_MS);
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Runs `future` and panics if it takes longer than [`CONVERGE_WAIT_MS`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_millis(CONVERGE_WAIT_MS), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
