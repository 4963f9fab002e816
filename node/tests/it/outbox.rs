//! The edge's outbox keeps its promise while the control plane is away:
//! nothing acknowledged is dropped, new runs are refused once it is full
//! (503 `outbox_full`, readiness red), and the backlog drains in batches
//! when the control plane answers again.

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::live_class::{post, start_cluster};
use crate::support::{client, eventually, get_json, START_LIMIT};

fn run_body(n: u32) -> Value {
    json!({
        "language": "python",
        "files": [{"name": "main.py", "content": format!("print({n})")}],
    })
}

fn signal(pid: i64, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal the control plane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_refuses_runs_instead_of_dropping_reports_and_drains_in_batches() {
    let cluster = start_cluster(&[
        ("LYCEUM_EDGE__OUTBOX_EVENTS_MAX", "3"),
        ("LYCEUM_EDGE__OUTBOX_BATCH_MAX", "2"),
        ("LYCEUM_EDGE__OUTBOX_RETRY_MAX_MS", "200"),
        ("LYCEUM_EDGE__CONTROL_PLANE_TIMEOUT_MS", "1000"),
    ])
    .await;
    let edge = cluster.edge("eu-west").to_owned();
    let learner = cluster.token("learner");
    let operator = cluster.token("operator");
    let runs = format!("{edge}/api/v1/runs");

    // The control plane stops answering (a frozen process: connections
    // open, nothing comes back).
    signal(cluster.cp_pid, Signal::SIGSTOP);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, body) = post(&runs, &learner, &run_body(n)).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("accepted")),
            "{body}"
        );
        ids.push(body["id"].as_str().expect("run id").to_owned());
    }
    // Full: the next run is refused before it runs, with a reason and a
    // time to come back, and nothing queued is dropped to make room.
    let refused = client()
        .post(&runs)
        .bearer_auth(&learner)
        .json(&run_body(3))
        .send()
        .await
        .expect("run");
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "outbox_full", "{body}");
    // The publisher, between attempts, turns readiness red with the reason.
    eventually("readiness to name the full outbox", START_LIMIT, || {
        let edge = edge.clone();
        async move {
            let (status, ready) = get_json(&format!("{edge}/readyz"), None).await?;
            let why = ready["checks"]["outbox"].as_str()?.to_owned();
            (status == 503 && why.contains("edge.outbox_events_max")).then_some(())
        }
    })
    .await;
    let (status, view) = get_json(&format!("{edge}/api/v1/operator/outbox"), Some(&operator))
        .await
        .expect("outbox view");
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            view["pending"].clone(),
            view["pending_max"].clone(),
            view["full"].clone()
        ),
        (json!(3), json!(3), json!(true)),
        "{view}"
    );
    assert!(view["oldest_finished_at"].is_string(), "{view}");
    let (status, _) = get_json(&format!("{edge}/api/v1/operator/outbox"), Some(&learner))
        .await
        .expect("outbox view");
    assert_eq!(status, 403, "operators only");

    // The control plane is back: the backlog drains (two batches of at
    // most two), the edge is ready again and runs are taken.
    signal(cluster.cp_pid, Signal::SIGCONT);
    eventually("the outbox to drain", START_LIMIT, || {
        let (edge, operator) = (edge.clone(), operator.clone());
        async move {
            let (_, view) =
                get_json(&format!("{edge}/api/v1/operator/outbox"), Some(&operator)).await?;
            let (status, _) = get_json(&format!("{edge}/readyz"), None).await?;
            (view["pending"] == json!(0) && status == 200).then_some(())
        }
    })
    .await;
    let (status, mine) = get_json(
        &format!("{}/api/v1/submissions?limit=100", cluster.cp),
        Some(&learner),
    )
    .await
    .expect("submissions");
    assert_eq!(status, 200, "{mine}");
    let recorded: Vec<&str> = mine["items"]
        .as_array()
        .or_else(|| mine.as_array())
        .expect("a list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    for id in &ids {
        assert!(recorded.contains(&id.as_str()), "{id} not recorded: {mine}");
    }
    let metrics = client()
        .get(format!("{edge}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let batches = metrics
        .lines()
        .find(|l| {
            l.starts_with("lyceum_edge_outbox_batches_total") && l.contains("queue=\"submissions\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("batch counter");
    assert!(batches >= 2, "{metrics}");
    let (status, body) = post(&runs, &learner, &run_body(4)).await;
    assert_eq!(status, 200, "room again: {body}");

    // The dead-letter view: operators only, empty here, unknown ids 404.
    let letters = format!("{edge}/api/v1/operator/outbox/dead-letters");
    let (status, list) = get_json(&letters, Some(&operator)).await.expect("list");
    assert_eq!((status, list["items"].clone()), (200, json!([])), "{list}");
    let (status, _) = get_json(&letters, Some(&learner)).await.expect("list");
    assert_eq!(status, 403);
    let (status, _) = get_json(&format!("{letters}?limit=0"), Some(&operator))
        .await
        .expect("list");
    assert_eq!(status, 400);
    let gone = client()
        .delete(format!("{letters}/no-such-id"))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("delete");
    assert_eq!(gone.status().as_u16(), 404);
    let retried = client()
        .post(format!("{letters}/no-such-id/retry"))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("retry");
    assert_eq!(retried.status().as_u16(), 404);
}
