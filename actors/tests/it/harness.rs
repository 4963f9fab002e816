//! Shared helpers: start the in-process node and child-process nodes from one
//! CA directory, wait for a condition with a bound, read metrics back.

use std::{future::Future, net::SocketAddr, path::Path, process::Stdio, sync::Arc, time::Duration};

use tokio::time::Instant;

use actors::{ActorConfig, ActorSystem, EchoActor, EchoMessage};
use gossip::{
    ClusterCa, Gossip, GossipConfig, GossipHandle, MemberState, NodeId, NodeIdentity, Region,
};
use ractor::ActorRef;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a test waits for the cluster to get where it should.
pub const CONVERGE_WAIT_MS: u64 = 30_000;
/// How often a waiting test looks again.
pub const POLL_MS: u64 = 50;
/// How long one echo call may take.
pub const CALL_MS: u64 = 5_000;
/// The line a child prints once its node is up.
pub const READY_LINE: &str = "LYCEUM-ACTORS-CHILD-READY";

/// Environment variables a child node reads.
pub const ENV_CHILD: &str = "LYCEUM_ACTORS_CHILD";
pub const ENV_CA_DIR: &str = "LYCEUM_ACTORS_CHILD_CA_DIR";
pub const ENV_ID: &str = "LYCEUM_ACTORS_CHILD_ID";
pub const ENV_REGION: &str = "LYCEUM_ACTORS_CHILD_REGION";
pub const ENV_GENERATION: &str = "LYCEUM_ACTORS_CHILD_GENERATION";
pub const ENV_SEED: &str = "LYCEUM_ACTORS_CHILD_SEED";

/// ractor's statics are per process, so the tests of this binary that host a
/// node take turns.
pub static ONE_NODE_PER_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn init_tracing() {
    let _already = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn node_id(text: &str) -> NodeId {
    NodeId::new(text).expect("valid node id")
}

/// A node: gossip, the actor system following it, and its echo actor.
pub struct Node {
    pub id: NodeId,
    pub gossip: Arc<GossipHandle>,
    pub actors: ActorSystem,
    pub echo: ActorRef<EchoMessage>,
    pub registry: prometheus::Registry,
}

impl Node {
    pub async fn start(
        ca: &ClusterCa,
        id: &str,
        region: &str,
        generation: u64,
        seeds: Vec<SocketAddr>,
    ) -> Node {
        let id = node_id(id);
        let tls = ca.material_for(&id).expect("issue certificate");
        let registry = prometheus::Registry::new();
        let mut config = ActorConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            tls.clone(),
            generation,
        );
        config.registry = registry.clone();
        let actors = ActorSystem::start(config)
            .await
            .expect("actor system starts");
        let identity = NodeIdentity::new(
            id.clone(),
            Region::new(region).expect("region"),
            "127.0.0.1:0".parse().expect("addr"),
            &format!("http://{id}.test"),
            actors.local_addr(),
            generation,
        )
        .expect("identity");
        let mut gossip_config =
            GossipConfig::new(identity, "127.0.0.1:0".parse().expect("addr"), tls);
        gossip_config.seeds = seeds;
        gossip_config.registry = registry.clone();
        let gossip = Arc::new(Gossip::start(gossip_config).await.expect("gossip starts"));
        actors.follow(&gossip);
        let echo = EchoActor::start(id.clone()).await.expect("echo actor");
        Node {
            id,
            gossip,
            actors,
            echo,
            registry,
        }
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip.local_addr()
    }

    /// How this node's gossip sees `other`.
    pub fn state_of(&self, other: &NodeId) -> Option<MemberState> {
        self.gossip
            .members()
            .into_iter()
            .find(|member| &member.node_id == other)
            .map(|member| member.state)
    }

    /// The node ids of the authenticated sessions.
    pub async fn session_ids(&self) -> Vec<String> {
        self.actors
            .sessions()
            .await
            .expect("sessions")
            .into_iter()
            .map(|session| session.node_id.to_string())
            .collect()
    }

    /// A metric's value from the registry's text exposition.
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

    /// Stops the echo actor, the actor system and leaves gossip.
    pub async fn stop(self) {
        self.echo.stop(None);
        self.actors.shutdown().await;
        match Arc::try_unwrap(self.gossip) {
            Ok(handle) => bounded("leave", handle.leave()).await.expect("leave"),
            Err(_) => panic!("gossip handle still shared"),
        }
    }
}

/// A node in a child process of this test binary.
pub struct ChildNode {
    pub id: NodeId,
    child: tokio::process::Child,
}

impl ChildNode {
    /// Starts `id` (with certificates from the CA in `ca_dir`) joining
    /// `seed`, and waits until it is up.
    pub async fn spawn(
        ca_dir: &Path,
        id: &str,
        region: &str,
        generation: u64,
        seed: SocketAddr,
    ) -> ChildNode {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--exact",
                "child::child_node",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ENV_CHILD, "1")
            .env(ENV_CA_DIR, ca_dir)
            .env(ENV_ID, id)
            .env(ENV_REGION, region)
            .env(ENV_GENERATION, generation.to_string())
            .env(ENV_SEED, seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child node");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        bounded(&format!("child {id} to start"), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("read child stdout")
                    .unwrap_or_else(|| panic!("child {id} exited before it was ready"));
                if line.contains(READY_LINE) {
                    break;
                }
            }
        })
        .await;
        // Keep draining its output so it never blocks on a full pipe.
        let label = id.to_owned();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{label}] {line}");
            }
        });
        ChildNode {
            id: node_id(id),
            child,
        }
    }

    /// SIGKILL: a crash, nothing announced.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill child");
        bounded("the killed child to exit", self.child.wait())
            .await
            .expect("wait child");
    }

    /// Closes its stdin, so it stops gracefully, and waits for it.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let status = bounded("the child to stop", self.child.wait())
            .await
            .expect("wait child");
        assert!(status.success(), "child {} ended with {status}", self.id);
    }
}

/// Polls `check` until it holds; panics with `what` after
/// [`CONVERGE_WAIT_MS`]. Returns how long it took.
pub async fn wait_for<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let bound = Duration::from_millis(CONVERGE_WAIT_MS);
    loop {
        if check().await {
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
