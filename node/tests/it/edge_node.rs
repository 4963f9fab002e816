//! One `lyceum edge` on its own: identity kept across restarts in sled, and
//! honest readiness while the control plane is unreachable.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{eventually, get_json, lyceum, ready_url, Proc, START_LIMIT};

fn start_edge(data: &std::path::Path, log: &std::path::Path) -> (Proc, std::path::PathBuf) {
    let ready = data.join("edge.ready.json");
    let _ = std::fs::remove_file(&ready);
    let mut command = lyceum();
    command
        .args(["--data-dir"])
        .arg(data)
        .args([
            "edge",
            "--region",
            "ap-south",
            "--listen",
            "127.0.0.1:0",
            // Nothing listens on port 9 (discard); the edge must say so.
            "--control-plane",
            "http://127.0.0.1:9",
            "--ready-file",
        ])
        .arg(&ready);
    (Proc::spawn(command, log), ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_keeps_its_id_bumps_its_generation_and_reports_why_it_is_not_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut seen = Vec::new();
    for run in 0..2 {
        let (mut edge, ready) = start_edge(&data, &dir.path().join(format!("edge{run}.log")));
        let url = eventually("edge ready file", START_LIMIT, || {
            let ready = ready.clone();
            async move { ready_url(&ready) }
        })
        .await;
        let (status, node) = get_json(&format!("{url}/api/v1/node"), None)
            .await
            .expect("node");
        assert_eq!(status, 200);
        seen.push((node["node_id"].clone(), node["generation"].clone()));

        let report = eventually(
            "a readiness report naming the control plane",
            START_LIMIT,
            || {
                let url = url.clone();
                async move {
                    let (status, body) = get_json(&format!("{url}/readyz"), None).await?;
                    let reason = body["checks"]["control_plane_keys"].as_str()?.to_owned();
                    (status == 503 && reason.contains("127.0.0.1:9")).then_some(body)
                }
            },
        )
        .await;
        assert_eq!(report["ready"], false);
        assert!(
            report["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{report}"
        );

        // Without the control plane's keys a token cannot be checked.
        let (status, body) = get_json(&format!("{url}/api/v1/whoami"), Some("x"))
            .await
            .expect("whoami");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");

        edge.signal(Signal::SIGTERM);
        let status = edge.wait_exit(Duration::from_secs(30));
        assert!(
            status.success(),
            "edge exit {status:?}: {}",
            edge.log_text()
        );
    }
    assert_eq!(seen[0].0, seen[1].0, "node id must persist across restarts");
    assert_eq!(seen[0].1, 1);
    assert_eq!(seen[1].1, 2, "generation must bump on restart");
    assert!(seen[0]
        .0
        .as_str()
        .is_some_and(|id| id.starts_with("ap-south-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_edge_stops_when_its_stdin_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let ready = data.join("edge.ready.json");
    let mut command = lyceum();
    command
        .arg("--data-dir")
        .arg(&data)
        .args([
            "edge",
            "--region",
            "eu-west",
            "--listen",
            "127.0.0.1:0",
            "--supervised",
            "--ready-file",
        ])
        .arg(&ready);
    let mut edge = Proc::spawn(command, &dir.path().join("edge.log"));
    eventually("edge ready file", START_LIMIT, || {
        let ready = ready.clone();
        async move { ready_url(&ready) }
    })
    .await;
    drop(edge.child.stdin.take());
    let status = edge.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", edge.log_text());
    assert!(
        edge.log_text().contains("stdin closed"),
        "{}",
        edge.log_text()
    );
}
