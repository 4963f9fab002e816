//! Real processes: in a dev cluster every edge opens an actor-cluster session
//! (ractor_cluster over QUIC with mutual TLS) to each of the other two as
//! gossip reports them up, and group `nodes` lists the three echo actors on
//! every edge, as `GET /api/v1/cluster/actors` reports.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{eventually, get_json, lyceum, Proc, START_LIMIT};

/// Whether `view` (an edge's `/api/v1/cluster/actors`) shows connected
/// sessions to every id in `others` and three echo actors in `nodes`.
fn complete(view: &Value, others: &[String]) -> bool {
    let connected = |id: &String| {
        view["sessions"].as_array().is_some_and(|sessions| {
            sessions
                .iter()
                .any(|s| s["node_id"] == id.as_str() && s["connected"] == true)
        })
    };
    others.iter().all(connected) && view["groups"]["nodes"] == 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edge_has_sessions_to_the_others_and_sees_three_echo_actors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]");
    let mut dev = Proc::spawn(command, &dir.path().join("dev.log"));
    let cluster_path = data.join("cluster.json");
    let cluster: Value = eventually("cluster.json", START_LIMIT, || {
        let path = cluster_path.clone();
        async move { serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok() }
    })
    .await;
    let edges = cluster["edges"].as_array().expect("edges").clone();
    assert_eq!(edges.len(), 3, "{cluster}");
    let ids: Vec<String> = edges
        .iter()
        .map(|e| e["node_id"].as_str().expect("id").to_owned())
        .collect();

    for (i, edge) in edges.iter().enumerate() {
        let url = edge["url"].as_str().expect("url").to_owned();
        let others: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        let view = eventually(
            &format!("{url} to have sessions to {others:?} and three echo actors"),
            START_LIMIT,
            || async {
                let (status, view) =
                    get_json(&format!("{url}/api/v1/cluster/actors"), None).await?;
                (status == 200 && complete(&view, &others)).then_some(view)
            },
        )
        .await;
        eprintln!("{url}: {view}");
    }

    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "dev exit {status:?}; log:\n{}",
        dev.log_text()
    );
}
