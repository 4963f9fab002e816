//! A real network partition: three `lyceum edge` processes, each in its own
//! network namespace, gossip and actor sessions on a data network (a bridge
//! in a switch namespace), HTTP on a separate management network that the
//! test reaches from the root namespace. Taking one node's port on the data
//! bridge down cuts it off as a failed switch port would: nothing passes,
//! and no fault filter is involved. The cut node must see both others down
//! and both others must see it down while still seeing each other alive,
//! and each side's actor sessions to the other side end (group `nodes`
//! shrinks to the node's own side). Bringing the port back must merge the
//! two sides (every member alive on every node) and the actor sessions must
//! come back, with `nodes` listing all three echo actors everywhere again.
//!
//! The edges need neither a control plane nor Docker for this (they only
//! stay not ready), so none is started. The test needs root and iproute2
//! (`scripts/services.sh netns`) and fails, never skips, when it cannot make
//! the namespaces. Everything it creates is named after the test process's
//! pid and removed on the way out, after a failure too; what a killed run
//! left behind is removed by the next run. `tc netem` would be the other way
//! to cut a link, but this machine's kernel has no netem qdisc, so the link
//! goes down instead.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;

use crate::support::{eventually, lyceum, pid_alive, Proc, START_LIMIT};

/// Prefix of every namespace and root-namespace link this test makes.
const PREFIX: &str = "lycnt";
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// The data network, which exists only inside the test's namespaces.
const DATA_NET: &str = "10.99.0.";
const GOSSIP_PORT: u16 = 7500;
const HTTP_PORT: u16 = 7400;
/// How long a partition or its healing may take to be seen. Detection takes
/// about 3 s on the LAN preset and a merge about 5 s (the announce to down
/// members); this only catches a cluster that never gets there.
const CHANGE_LIMIT: Duration = Duration::from_secs(60);

/// Runs `ip` and panics with its error output when it fails: a test that
/// cannot build its network fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "ip {}: {err} (needs iproute2 and root: scripts/services.sh netns)",
                args.join(" ")
            )
        });
    assert!(
        output.status.success(),
        "ip {} failed (needs root and network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn ip_output(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("ip {}: {err}", args.join(" ")));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The pid in a name this test made (`lycnt<pid>`, `lycnt<pid>-...`).
fn owner(name: &str) -> Option<i64> {
    name.strip_prefix(PREFIX)?
        .split(['-', '@'])
        .next()?
        .parse()
        .ok()
}

/// Removes the namespaces and links of earlier runs whose process is gone.
fn sweep_leftovers() {
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if owner(name).is_some_and(|pid| !pid_alive(pid)) {
            eprintln!("removing namespace {name} left by an earlier run");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    for line in ip_output(&["-o", "link", "show"]).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if owner(name).is_some_and(|pid| !pid_alive(pid)) {
            eprintln!("removing link {name} left by an earlier run");
            let _ = Command::new("ip")
                .args(["link", "del", "dev", name])
                .status();
        }
    }
}

/// A management subnet (`10.a.b.`) that no address or route of the root
/// namespace uses yet.
fn management_net(pid: u32) -> String {
    let taken = format!(
        "{}{}",
        ip_output(&["-4", "-o", "addr", "show"]),
        ip_output(&["-4", "route", "show"])
    );
    let pid = pid as usize;
    (0..256)
        .map(|k| format!("10.{}.{}.", 200 + (pid + k) % 50, 1 + (pid / 50 + k) % 250))
        .find(|net| !taken.contains(net.as_str()))
        .expect("a free management subnet")
}

/// One edge in its namespace.
struct Edge {
    ns: String,
    data_ip: String,
    mgmt_ip: String,
    data: PathBuf,
    proc: Option<Proc>,
    url: String,
    node_id: String,
}

/// The namespaces, links and processes of one run; dropping it stops the
/// processes and deletes the namespaces (their links go with them).
struct Lab {
    switch: String,
    /// The root namespace's link to the management bridge, once made.
    host_link: Option<String>,
    edges: Vec<Edge>,
    namespaces: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for edge in &mut self.edges {
            drop(edge.proc.take());
        }
        // Deleting a namespace frees its links in the background; the root
        // namespace's own link goes at once.
        if let Some(link) = &self.host_link {
            let _ = Command::new("ip")
                .args(["link", "del", "dev", link])
                .status();
        }
        for ns in self.namespaces.iter().rev() {
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "ip netns del {ns}: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(err) => eprintln!("ip netns del {ns}: {err}"),
            }
        }
    }
}

impl Lab {
    /// Builds the two networks: in the switch namespace a data bridge and a
    /// management bridge; per edge a namespace with `data0` and `mgmt0`
    /// on them; and one link from the root namespace to the management
    /// bridge, so the test can reach every edge's HTTP.
    fn build(dir: &std::path::Path) -> Self {
        sweep_leftovers();
        let pid = std::process::id();
        let tag = format!("{PREFIX}{pid}");
        let mgmt_net = management_net(pid);
        let mut lab = Lab {
            switch: format!("{tag}-sw"),
            host_link: None,
            edges: Vec::new(),
            namespaces: Vec::new(),
        };
        let sw = lab.switch.clone();
        ip(&["netns", "add", &sw]);
        lab.namespaces.push(sw.clone());
        ip(&["-n", &sw, "link", "set", "dev", "lo", "up"]);
        for bridge in ["brdata", "brmgmt"] {
            ip(&["-n", &sw, "link", "add", "name", bridge, "type", "bridge"]);
            ip(&["-n", &sw, "link", "set", "dev", bridge, "up"]);
        }
        // The root namespace's foot on the management network.
        ip(&[
            "link", "add", "name", &tag, "type", "veth", "peer", "name", "host", "netns", &sw,
        ]);
        lab.host_link = Some(tag.clone());
        ip(&[
            "-n", &sw, "link", "set", "dev", "host", "master", "brmgmt", "up",
        ]);
        ip(&["addr", "add", &format!("{mgmt_net}254/24"), "dev", &tag]);
        ip(&["link", "set", "dev", &tag, "up"]);

        for (i, _) in REGIONS.iter().enumerate() {
            let ns = format!("{tag}-n{i}");
            ip(&["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"]);
            let data_ip = format!("{DATA_NET}{}", i + 1);
            let mgmt_ip = format!("{mgmt_net}{}", i + 1);
            for (inside, port, bridge, addr) in [
                ("data0", format!("d{i}"), "brdata", &data_ip),
                ("mgmt0", format!("m{i}"), "brmgmt", &mgmt_ip),
            ] {
                ip(&[
                    "-n", &ns, "link", "add", "name", inside, "type", "veth", "peer", "name",
                    &port, "netns", &sw,
                ]);
                ip(&[
                    "-n", &sw, "link", "set", "dev", &port, "master", bridge, "up",
                ]);
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    inside,
                ]);
                ip(&["-n", &ns, "link", "set", "dev", inside, "up"]);
            }
            lab.edges.push(Edge {
                ns,
                data_ip,
                mgmt_ip,
                data: dir.join(format!("node{i}")),
                proc: None,
                url: String::new(),
                node_id: String::new(),
            });
        }
        lab
    }

    /// Takes edge `i`'s port on the data bridge down (`up == false`) or
    /// brings it back.
    fn set_data_port(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            "dev",
            &format!("d{i}"),
            state,
        ]);
    }

    /// Starts edge `i` inside its namespace and waits for its ready file.
    async fn start(&mut self, i: usize, join: Option<&str>, dir: &std::path::Path) {
        let edge = &mut self.edges[i];
        std::fs::create_dir_all(&edge.data).expect("data dir");
        let ready = edge.data.join("edge.ready.json");
        let base = lyceum();
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &edge.ns])
            .arg(base.get_program());
        for (name, value) in base.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
            .arg("--data-dir")
            .arg(&edge.data)
            .args(["edge", "--region", REGIONS[i]])
            .args(["--listen", &format!("{}:{HTTP_PORT}", edge.mgmt_ip)])
            .args([
                "--gossip-listen",
                &format!("{}:{GOSSIP_PORT}", edge.data_ip),
            ])
            // Gossip and actors need no control plane and no Docker.
            .args(["--control-plane", "http://127.0.0.1:9"])
            .env(
                "LYCEUM_EDGE__DOCKER_HOST",
                format!("unix://{}", dir.join("no-docker.sock").display()),
            )
            .arg("--ready-file")
            .arg(&ready)
            .arg("--supervised");
        if let Some(seed) = join {
            command.args(["--join", seed]);
        }
        edge.proc = Some(Proc::spawn(command, &dir.join(format!("node{i}.log"))));
        let info: Value = eventually(&format!("edge {i}'s ready file"), START_LIMIT, || {
            let ready = ready.clone();
            async move { serde_json::from_str(&std::fs::read_to_string(ready).ok()?).ok() }
        })
        .await;
        edge.url = info["url"].as_str().expect("url").to_owned();
        edge.node_id = info["node_id"].as_str().expect("node id").to_owned();
        assert_eq!(
            edge.url,
            format!("http://{}:{HTTP_PORT}", edge.mgmt_ip),
            "the edge serves HTTP on its management address"
        );
    }

    fn log(&self, i: usize) -> String {
        self.edges[i]
            .proc
            .as_ref()
            .map(Proc::log_text)
            .unwrap_or_default()
    }
}

/// A client that never goes through a proxy (the management network is
/// private to this test).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

async fn get(url: String) -> Option<Value> {
    let response = client().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// How the edge at `url` sees each other member: node id to state.
async fn states(url: &str) -> Option<Vec<(String, String)>> {
    let members = get(format!("{url}/api/v1/cluster/members")).await?;
    Some(
        members
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["node_id"].as_str().unwrap_or_default().to_owned(),
                    m["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    )
}

/// Whether the edge at `url` sees every id in `expected` in that state.
async fn sees(url: &str, expected: &[(&str, &str)]) -> bool {
    let Some(states) = states(url).await else {
        return false;
    };
    expected
        .iter()
        .all(|(id, state)| states.iter().any(|(i, s)| i == id && s == state))
}

/// Whether the edge at `url` has actor sessions open to exactly `connected`
/// among `all_others`, and group `nodes` holds `nodes` echo actors.
async fn actors_are(url: &str, all_others: &[&str], connected: &[&str], nodes: u64) -> bool {
    let Some(view) = get(format!("{url}/api/v1/cluster/actors")).await else {
        return false;
    };
    let is_connected = |id: &str| {
        view["sessions"].as_array().is_some_and(|sessions| {
            sessions
                .iter()
                .any(|s| s["node_id"] == id && s["connected"] == true)
        })
    };
    all_others
        .iter()
        .all(|id| is_connected(id) == connected.contains(id))
        && view["groups"]["nodes"] == nodes
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, lab: &Lab, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            let logs: String = (0..lab.edges.len())
                .map(|i| format!("--- node{i} log (tail):\n{}\n", tail(&lab.log(i), 30)))
                .collect();
            panic!("timed out after {limit:?} waiting for {what}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_partition_in_network_namespaces_is_seen_and_heals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut lab = Lab::build(dir.path());

    // The first edge makes the dev CA; the others share it and join it.
    let began = Instant::now();
    lab.start(0, None, dir.path()).await;
    let ca = lab.edges[0].data.join("cluster-ca");
    let seed = format!("{}:{GOSSIP_PORT}", lab.edges[0].data_ip);
    for i in 1..REGIONS.len() {
        std::fs::create_dir_all(&lab.edges[i].data).expect("data dir");
        std::os::unix::fs::symlink(&ca, lab.edges[i].data.join("cluster-ca")).expect("share CA");
        lab.start(i, Some(&seed), dir.path()).await;
    }
    let urls: Vec<String> = lab.edges.iter().map(|e| e.url.clone()).collect();
    let ids: Vec<String> = lab.edges.iter().map(|e| e.node_id.clone()).collect();
    let others: Vec<Vec<&str>> = (0..ids.len())
        .map(|i| {
            (0..ids.len())
                .filter(|j| *j != i)
                .map(|j| ids[j].as_str())
                .collect()
        })
        .collect();
    let all_alive: Vec<Vec<(&str, &str)>> = others
        .iter()
        .map(|ids| ids.iter().map(|id| (*id, "alive")).collect())
        .collect();

    // One membership, and actor sessions between every pair.
    for i in 0..urls.len() {
        wait_for(
            &format!("node{i} to see the others alive"),
            START_LIMIT,
            &lab,
            || sees(&urls[i], &all_alive[i]),
        )
        .await;
        wait_for(
            &format!("node{i} to have actor sessions to the others"),
            START_LIMIT,
            &lab,
            || actors_are(&urls[i], &others[i], &others[i], 3),
        )
        .await;
    }
    eprintln!(
        "three edges in three namespaces joined, with actor sessions, {:?} after the first started",
        began.elapsed()
    );

    // Cut node 0's data link: {node0} | {node1, node2}.
    lab.set_data_port(0, false);
    let cut = Instant::now();
    let (a, b, c) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    let sides: [(usize, Vec<(&str, &str)>); 3] = [
        (0, vec![(b, "down"), (c, "down")]),
        (1, vec![(a, "down"), (c, "alive")]),
        (2, vec![(a, "down"), (b, "alive")]),
    ];
    for (i, expected) in &sides {
        wait_for(
            &format!("node{i} to see the partition"),
            CHANGE_LIMIT,
            &lab,
            || sees(&urls[*i], expected),
        )
        .await;
    }
    eprintln!(
        "both sides of the namespace partition saw the other down after {:?}",
        cut.elapsed()
    );
    // Each side still sees its own side whole, and its actors only.
    for (i, expected) in &sides {
        assert!(
            sees(&urls[*i], expected).await,
            "node{i}: {:?}",
            states(&urls[*i]).await
        );
    }
    let side_actors: [(usize, Vec<&str>, u64); 3] =
        [(0, vec![], 1), (1, vec![c], 2), (2, vec![b], 2)];
    for (i, connected, nodes) in &side_actors {
        wait_for(
            &format!("node{i}'s actor sessions across the partition to end"),
            CHANGE_LIMIT,
            &lab,
            || actors_are(&urls[*i], &others[*i], connected, *nodes),
        )
        .await;
    }
    eprintln!(
        "actor sessions across the partition ended after {:?}",
        cut.elapsed()
    );

    // Heal: the sides merge and the actors find each other again.
    lab.set_data_port(0, true);
    let healed = Instant::now();
    for i in 0..urls.len() {
        wait_for(
            &format!("node{i} to see everyone alive again"),
            CHANGE_LIMIT,
            &lab,
            || sees(&urls[i], &all_alive[i]),
        )
        .await;
    }
    eprintln!(
        "the namespace partition healed after {:?}",
        healed.elapsed()
    );
    for i in 0..urls.len() {
        wait_for(
            &format!("node{i} to re-resolve the echo actors of the other side"),
            CHANGE_LIMIT,
            &lab,
            || actors_are(&urls[i], &others[i], &others[i], 3),
        )
        .await;
    }
    eprintln!(
        "actor sessions and group `nodes` whole again {:?} after healing ({:?} in all)",
        healed.elapsed(),
        began.elapsed()
    );
    for (i, url) in urls.iter().enumerate() {
        eprintln!("node{i} sees {:?}", states(url).await);
    }
    drop(lab);
}
