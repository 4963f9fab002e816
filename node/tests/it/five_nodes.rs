//! Five real `lyceum edge` processes across three regions (two in eu-west,
//! two in us-east, one in ap-south) form one membership over QUIC with
//! mutual TLS; a `kill -9`ed node is seen down by every other node (the time
//! is printed); restarted under the same id it rejoins with a new
//! generation; a node stopped with SIGTERM leaves without ever being
//! suspected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{eventually, get_json, lyceum, Proc, START_LIMIT};

const REGIONS: [&str; 5] = ["eu-west", "eu-west", "us-east", "us-east", "ap-south"];

/// One edge: its data dir, and once started its process and URLs.
struct Node {
    data: PathBuf,
    region: &'static str,
    proc: Option<Proc>,
    url: String,
    gossip: String,
    node_id: String,
}

async fn start(node: &mut Node, join: Option<&str>, log: &Path) {
    let ready = node.data.join("edge.ready.json");
    let _ = std::fs::remove_file(&ready);
    let mut command = lyceum();
    command
        .arg("--data-dir")
        .arg(&node.data)
        .args(["edge", "--region", node.region, "--listen", "127.0.0.1:0"])
        // No control plane: gossip does not need one.
        .args(["--control-plane", "http://127.0.0.1:9"])
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"bash\"]")
        .arg("--ready-file")
        .arg(&ready);
    if let Some(seed) = join {
        command.args(["--join", seed]);
    }
    node.proc = Some(Proc::spawn(command, log));
    let info: Value = eventually("an edge's ready file", START_LIMIT, || {
        let ready = ready.clone();
        async move { serde_json::from_str(&std::fs::read_to_string(ready).ok()?).ok() }
    })
    .await;
    node.url = info["url"].as_str().expect("url").to_owned();
    node.gossip = info["gossip_addr"]
        .as_str()
        .expect("gossip addr")
        .to_owned();
    node.node_id = info["node_id"].as_str().expect("node id").to_owned();
}

/// `from`'s view of `node_id`: (state, generation).
async fn view(from: &str, node_id: &str) -> Option<(String, u64)> {
    let (_, members) = get_json(&format!("{from}/api/v1/cluster/members"), None).await?;
    members
        .as_array()?
        .iter()
        .find(|m| m["node_id"] == node_id)
        .map(|m| {
            (
                m["state"].as_str().unwrap_or_default().to_owned(),
                m["generation"].as_u64().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_in_three_regions_join_detect_a_crash_rejoin_and_leave() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes: Vec<Node> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, region)| Node {
            data: dir.path().join(format!("node{i}")),
            region,
            proc: None,
            url: String::new(),
            gossip: String::new(),
            node_id: String::new(),
        })
        .collect();
    let log = |name: String| dir.path().join(name);

    // The first node makes the dev CA; the others share it.
    start(&mut nodes[0], None, &log("node0.log".into())).await;
    let seed = nodes[0].gossip.clone();
    let ca = nodes[0].data.join("cluster-ca");
    for (i, node) in nodes.iter_mut().enumerate().skip(1) {
        std::fs::create_dir_all(&node.data).expect("data dir");
        std::os::unix::fs::symlink(&ca, node.data.join("cluster-ca")).expect("share the CA");
        start(node, Some(&seed), &log(format!("node{i}.log"))).await;
    }

    // One membership: everyone sees the four others alive.
    let joined = Instant::now();
    for a in 0..5 {
        for b in 0..5 {
            if a == b {
                continue;
            }
            let (from, id) = (nodes[a].url.clone(), nodes[b].node_id.clone());
            eventually(
                &format!("node{a} to see node{b} alive"),
                START_LIMIT,
                || {
                    let (from, id) = (from.clone(), id.clone());
                    async move { (view(&from, &id).await?.0 == "alive").then_some(()) }
                },
            )
            .await;
        }
    }
    eprintln!("five nodes joined one membership in {:?}", joined.elapsed());

    // kill -9 node 3: every other node sees it down.
    let victim = nodes[3].node_id.clone();
    nodes[3]
        .proc
        .as_ref()
        .expect("running")
        .signal(Signal::SIGKILL);
    let killed = Instant::now();
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != 3) {
        let (from, id) = (node.url.clone(), victim.clone());
        eventually(&format!("node{i} to see node3 down"), START_LIMIT, || {
            let (from, id) = (from.clone(), id.clone());
            async move { (view(&from, &id).await?.0 == "down").then_some(()) }
        })
        .await;
    }
    eprintln!(
        "every node saw the killed one down after {:?}",
        killed.elapsed()
    );

    // Restarted under the same id, it rejoins with the next generation.
    let _ = nodes[3]
        .proc
        .take()
        .map(|mut p| p.wait_exit(Duration::from_secs(10)));
    start(&mut nodes[3], Some(&seed), &log("node3-again.log".into())).await;
    assert_eq!(nodes[3].node_id, victim, "same id after a restart");
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != 3) {
        let (from, id) = (node.url.clone(), victim.clone());
        let (_, generation) =
            eventually(&format!("node{i} to see node3 back"), START_LIMIT, || {
                let (from, id) = (from.clone(), id.clone());
                async move { view(&from, &id).await.filter(|(state, _)| state == "alive") }
            })
            .await;
        assert_eq!(generation, 2, "node{i} sees the new generation");
    }

    // SIGTERM on node 4: it announces its leave; nobody suspects it first.
    let leaver = nodes[4].node_id.clone();
    nodes[4]
        .proc
        .as_ref()
        .expect("running")
        .signal(Signal::SIGTERM);
    let watchers: Vec<String> = nodes[..4].iter().map(|n| n.url.clone()).collect();
    let mut suspected = false;
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let mut all_down = true;
        for from in &watchers {
            match view(from, &leaver).await.map(|(state, _)| state) {
                Some(state) if state == "down" => {}
                Some(state) => {
                    suspected |= state == "suspect";
                    all_down = false;
                }
                None => all_down = false,
            }
        }
        if all_down {
            break;
        }
        assert!(Instant::now() < deadline, "the leaver was never seen down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!suspected, "a graceful leave must not look like a failure");
    let status = nodes[4]
        .proc
        .as_mut()
        .expect("running")
        .wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}
