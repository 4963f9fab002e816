//! `lyceum dev` end to end: four processes come up, `cluster.json` lists
//! them, tokens work on every node, `kill -9` of one edge leaves the other
//! three serving until the supervisor starts it again on the same address,
//! and SIGTERM stops everything.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{eventually, get_json, lyceum, pid_alive, Proc, START_LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_starts_survives_a_dead_edge_and_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__POOL_TARGET", "1")
        // Long enough for the survivors to see the dead edge down first.
        .env("LYCEUM_DEV__RESTART_BACKOFF_INITIAL_MS", "15000")
        .env("LYCEUM_EDGE__RUNS_PER_USER_PER_MINUTE_MAX", "3")
        .env("LYCEUM_EDGE__RUNS_PER_TENANT_PER_MINUTE_MAX", "6")
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\", \"bash\"]");
    let mut dev = Proc::spawn(command, &dir.path().join("dev.log"));

    let cluster_path = data.join("cluster.json");
    let cluster: Value = eventually("cluster.json", START_LIMIT, || {
        let path = cluster_path.clone();
        async move {
            let text = std::fs::read_to_string(path).ok()?;
            serde_json::from_str(&text).ok()
        }
    })
    .await;

    // The contract's shape.
    let cp_url = cluster["control_plane"]["url"]
        .as_str()
        .expect("control_plane.url");
    let edges = cluster["edges"].as_array().expect("edges");
    let regions: Vec<&str> = edges
        .iter()
        .map(|e| e["region"].as_str().expect("region"))
        .collect();
    assert_eq!(regions, ["eu-west", "us-east", "ap-south"]);
    for edge in edges {
        for key in ["node_id", "url"] {
            assert!(
                edge[key].as_str().is_some_and(|s| !s.is_empty()),
                "edge.{key}: {edge}"
            );
        }
        assert!(
            edge["pid"].as_i64().is_some_and(pid_alive),
            "edge pid: {edge}"
        );
    }
    let tokens = &cluster["tokens"];
    let learner = tokens["learner"].as_str().expect("learner token");
    for role in ["learner", "instructor", "operator"] {
        assert!(
            tokens[role].as_str().is_some_and(|t| t.len() > 20),
            "token for {role}"
        );
    }

    // Every process answers /healthz and /readyz (the edges only once the
    // Docker engine answers them).
    let mut urls = vec![cp_url.to_owned()];
    urls.extend(
        edges
            .iter()
            .map(|e| e["url"].as_str().expect("url").to_owned()),
    );
    for url in &urls {
        let (status, body) = get_json(&format!("{url}/healthz"), None)
            .await
            .expect("healthz");
        assert_eq!(status, 200, "{url}/healthz: {body}");
        let ready = eventually(&format!("{url}/readyz"), START_LIMIT, || {
            let url = url.clone();
            async move {
                let (status, body) = get_json(&format!("{url}/readyz"), None).await?;
                (status == 200).then_some(body)
            }
        })
        .await;
        assert_eq!(ready["ready"], Value::Bool(true));
    }

    // The edges form one membership over QUIC with mutual TLS.
    for url in &urls[1..] {
        eventually(
            &format!("{url} to see three alive edges"),
            START_LIMIT,
            || {
                let url = url.clone();
                async move {
                    let (_, members) =
                        get_json(&format!("{url}/api/v1/cluster/members"), None).await?;
                    let alive = members
                        .as_array()?
                        .iter()
                        .filter(|m| m["state"] == "alive")
                        .count();
                    (alive == 3).then_some(())
                }
            },
        )
        .await;
    }
    let (_, members) = get_json(&format!("{}/api/v1/cluster/members", urls[1]), None)
        .await
        .expect("members");
    for member in members.as_array().expect("array") {
        for key in [
            "node_id",
            "region",
            "state",
            "http_url",
            "generation",
            "rtt_ms",
        ] {
            assert!(!member[key].is_null(), "{key} in {member}");
        }
    }

    // The dev learner token is verified locally by every edge, and by the
    // control plane.
    for edge in edges {
        let url = edge["url"].as_str().expect("url");
        let (status, body) = get_json(&format!("{url}/api/v1/whoami"), Some(learner))
            .await
            .expect("whoami");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["role"], "learner");
        assert_eq!(body["verified_by"], edge["node_id"]);
    }
    let (status, me) = get_json(&format!("{cp_url}/api/v1/me"), Some(learner))
        .await
        .expect("me");
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "learner@dev.lyceum.test");

    // An operator rotates the signing key; a token signed with the new key
    // is accepted by an edge at once (an unknown key makes it refetch).
    let operator = tokens["operator"].as_str().expect("operator token");
    let rotated = crate::support::client()
        .post(format!("{cp_url}/api/v1/auth/keys/rotate"))
        .bearer_auth(operator)
        .send()
        .await
        .expect("rotate");
    assert_eq!(rotated.status().as_u16(), 200);
    let signed_in: Value = crate::support::client()
        .post(format!("{cp_url}/api/v1/auth/sign-in"))
        .json(&serde_json::json!({"email": "instructor@dev.lyceum.test", "password": "lyceum-dev-instructor"}))
        .send()
        .await
        .expect("sign-in")
        .json()
        .await
        .expect("json");
    let fresh = signed_in["access_token"].as_str().expect("access token");
    let edge_url = edges[2]["url"].as_str().expect("url");
    let (status, body) = get_json(&format!("{edge_url}/api/v1/whoami"), Some(fresh))
        .await
        .expect("whoami");
    assert_eq!(
        (status, body["role"].as_str()),
        (200, Some("instructor")),
        "{body}"
    );
    // Tokens signed before the rotation still verify.
    let (status, _) = get_json(&format!("{edge_url}/api/v1/whoami"), Some(learner))
        .await
        .expect("whoami");
    assert_eq!(status, 200);

    // A learner runs code on the nearest edge, in a warm container.
    let run_url = format!("{}/api/v1/runs", urls[1]);
    let run = serde_json::json!({
        "language": "python",
        "files": [{"name": "main.py", "content": "print(int(input()) * 2)"}],
        "tests": [{"name": "double", "stdin": "21", "expected_stdout": "42", "compare": "trimmed"}]
    });
    let answer = crate::support::client()
        .post(&run_url)
        .bearer_auth(learner)
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(answer.status().as_u16(), 200);
    let result: Value = answer.json().await.expect("json");
    assert_eq!(result["status"], "accepted", "{result}");
    assert_eq!(result["region"], "eu-west", "{result}");
    assert!(
        result["memory_kb"].as_u64().is_some_and(|kb| kb > 0),
        "{result}"
    );
    // The edge kept the result before answering: its owner reads it back.
    let run_id = result["id"].as_str().expect("run id");
    let kept_url = format!("{}/api/v1/runs/{run_id}", urls[1]);
    let (status, kept) = get_json(&kept_url, Some(learner)).await.expect("kept");
    assert_eq!((status, &kept), (200, &result));
    // ...and its outbox reports it to the control plane, which records it.
    let submissions_url = format!("{cp_url}/api/v1/submissions");
    let recorded: Value = eventually("the control plane to record the run", START_LIMIT, || {
        let (url, id) = (submissions_url.clone(), run_id.to_owned());
        async move {
            let (status, page) = get_json(&url, Some(learner)).await?;
            let found = page["items"]
                .as_array()?
                .iter()
                .find(|s| s["id"] == id.as_str());
            (status == 200).then(|| found.cloned()).flatten()
        }
    })
    .await;
    assert_eq!(
        (
            recorded["status"].as_str(),
            recorded["region"].as_str(),
            recorded["language"].as_str()
        ),
        (Some("accepted"), Some("eu-west"), Some("python")),
        "{recorded}"
    );
    assert_eq!(result["tests"][0]["status"], "accepted", "{result}");
    for key in ["validate", "schedule", "execute", "capture"] {
        assert!(result["stages_ms"][key].is_number(), "{result}");
    }
    let (status, langs) = get_json(&format!("{}/api/v1/languages", urls[1]), None)
        .await
        .expect("languages");
    assert_eq!(status, 200);
    let ids: Vec<&str> = langs["languages"]
        .as_array()
        .expect("languages")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["python", "bash"]);
    let bad = crate::support::client()
        .post(&run_url)
        .bearer_auth(learner)
        .json(&serde_json::json!({"language": "cobol", "files": [{"name": "x", "content": ""}]}))
        .send()
        .await
        .expect("run");
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().await.expect("json");
    assert_eq!(bad["error"]["code"], "unknown_language");
    let anonymous = crate::support::client()
        .post(&run_url)
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(anonymous.status().as_u16(), 401);
    // Three runs a minute per user here: the third passes, the fourth waits.
    let third = crate::support::client()
        .post(&run_url)
        .bearer_auth(learner)
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(third.status().as_u16(), 200);
    let fourth = crate::support::client()
        .post(&run_url)
        .bearer_auth(learner)
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(fourth.status().as_u16(), 429);
    assert!(fourth.headers().contains_key("retry-after"));
    let fourth: Value = fourth.json().await.expect("json");
    assert_eq!(fourth["error"]["code"], "rate_limited");
    // Another user has a budget of their own.
    let other = crate::support::client()
        .post(&run_url)
        .bearer_auth(tokens["instructor"].as_str().expect("token"))
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(other.status().as_u16(), 200);

    // Someone else's run is not found; an operator may read it.
    let instructor = tokens["instructor"].as_str().expect("token");
    let operator_token = tokens["operator"].as_str().expect("token");
    let (status, body) = get_json(&kept_url, Some(instructor)).await.expect("get");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = get_json(&kept_url, Some(operator_token))
        .await
        .expect("get");
    assert_eq!(status, 200);
    for id in ["not-a-uuid", "01960000-0000-7000-8000-000000000000"] {
        let url = format!("{}/api/v1/runs/{id}", urls[1]);
        let (status, _) = get_json(&url, Some(learner)).await.expect("get");
        assert_eq!(status, 404, "{id}");
    }

    // Output streams as server-sent events, then the result.
    let streamed = crate::support::client()
        .post(&run_url)
        .bearer_auth(instructor)
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({
            "language": "python",
            "files": [{"name": "main.py", "content": "import time\nprint('one', flush=True)\ntime.sleep(0.1)\nprint('two')"}],
        }))
        .send()
        .await
        .expect("stream");
    assert_eq!(streamed.status().as_u16(), 200);
    assert!(streamed.headers()["content-type"]
        .to_str()
        .is_ok_and(|v| v.starts_with("text/event-stream")));
    let text = streamed.text().await.expect("body");
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((
                event,
                serde_json::from_str(data).expect("event data is JSON"),
            ))
        })
        .collect();
    let streamed_out: String = events
        .iter()
        .filter(|(event, _)| *event == "output")
        .map(|(_, data)| data["data"].as_str().expect("data").to_owned())
        .collect();
    assert_eq!(streamed_out, "one\ntwo\n", "{text}");
    let (last, final_result) = events.last().expect("events");
    assert_eq!(*last, "result", "{text}");
    assert_eq!(final_result["status"], "accepted", "{text}");
    assert_eq!(final_result["stdout"], "one\ntwo\n", "{text}");
    // A bad streamed request is a plain JSON error, before any event.
    let bad_stream = crate::support::client()
        .post(&run_url)
        .bearer_auth(instructor)
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({"language": "cobol", "files": [{"name": "x", "content": ""}]}))
        .send()
        .await
        .expect("stream");
    assert_eq!(bad_stream.status().as_u16(), 400);
    let bad_stream: Value = bad_stream.json().await.expect("plain JSON error");
    assert_eq!(bad_stream["error"]["code"], "unknown_language");

    // Six runs a minute per tenant here (the learner's three, the
    // instructor's three): the operator, same tenant, has a budget of their
    // own but the organisation has spent its six.
    let tenant_spent = crate::support::client()
        .post(&run_url)
        .bearer_auth(operator_token)
        .json(&run)
        .send()
        .await
        .expect("run");
    assert_eq!(tenant_spent.status().as_u16(), 429);
    let tenant_spent: Value = tenant_spent.json().await.expect("json");
    assert!(
        tenant_spent["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("runs_per_tenant_per_minute_max")),
        "{tenant_spent}"
    );

    // A dev cluster is for drills (`dev.chaos`, on by default): its edges
    // take fault rules, and its supervisor serves its control API.
    let faults = crate::support::client()
        .put(format!("{}/api/v1/operator/faults", urls[1]))
        .bearer_auth(operator_token)
        .json(&serde_json::json!({"rules": []}))
        .send()
        .await
        .expect("faults");
    assert_eq!(faults.status().as_u16(), 200);
    assert!(
        cluster["supervisor"]["url"].as_str().is_some()
            && cluster["supervisor"]["key"].as_str().is_some(),
        "{cluster}"
    );

    // Abuse events are for operators.
    let abuse_url = format!("{}/api/v1/sandbox/abuse", urls[1]);
    let (status, _) = get_json(&abuse_url, Some(learner)).await.expect("abuse");
    assert_eq!(status, 403);
    let (status, body) = get_json(&abuse_url, Some(operator_token))
        .await
        .expect("abuse");
    assert_eq!(status, 200);
    assert!(body["events"].is_array(), "{body}");
    for bad in ["limit=0", "limit=1001", "limit=x", "color=red"] {
        let (status, body) = get_json(&format!("{abuse_url}?{bad}"), Some(operator_token))
            .await
            .expect("abuse");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }

    // Metrics count requests per route.
    let metrics = crate::support::client()
        .get(format!("{}/metrics", urls[1]))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let whoami_counted = metrics.lines().any(|line| {
        line.starts_with("lyceum_http_requests_total{")
            && [
                "route=\"/api/v1/whoami\"",
                "status=\"200\"",
                "region=\"eu-west\"",
                "role=\"edge\"",
            ]
            .iter()
            .all(|label| line.contains(label))
            && line.ends_with(" 1")
    });
    assert!(whoami_counted, "{metrics}");
    assert!(
        metrics.contains("lyceum_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    // Every process's metrics follow one naming scheme (a doubled
    // `lyceum_lyceum_` prefix once slipped through), and the families of
    // each part of an edge are there to be checked.
    for url in &urls {
        let text = crate::support::client()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        assert_eq!(
            node::metrics::naming_violations(&text),
            Vec::<String>::new(),
            "{url}/metrics:\n{text}"
        );
        if url == &urls[0] {
            assert!(
                text.contains("lyceum_control_plane_round_panics_total{role=\"control-plane\"} 0"),
                "the control plane counts panicked background rounds:\n{text}"
            );
        }
    }
    for family in [
        "lyceum_live_sessions",
        "lyceum_live_claims_total",
        "lyceum_gossip_members",
        "lyceum_actors_sessions",
        "lyceum_sandbox_pool_containers",
        "lyceum_edge_outbox_pending_reports",
        "lyceum_process_ready",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{metrics}"
        );
    }

    // kill -9 one edge: dev says so, the other three keep serving.
    let victim = &edges[1];
    let victim_pid = i32::try_from(victim["pid"].as_i64().expect("pid")).expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim_pid), Signal::SIGKILL).expect("kill");
    eventually("dev to report the dead edge", START_LIMIT, || {
        let log = dev.log_text();
        async move {
            log.contains("edge-us-east")
                .then_some(())
                .filter(|()| log.contains("killed by SIGKILL"))
        }
    })
    .await;
    for (i, url) in urls.iter().enumerate() {
        let answer = get_json(&format!("{url}/healthz"), None).await;
        if i == 2 {
            assert!(answer.is_none(), "the killed edge must not answer");
        } else {
            assert_eq!(answer.map(|a| a.0), Some(200), "{url} must keep serving");
        }
    }
    // Gossip notices: the surviving edges see us-east down, and its region
    // unhealthy.
    let killed_at = tokio::time::Instant::now();
    for url in [&urls[1], &urls[3]] {
        eventually(&format!("{url} to see us-east down"), START_LIMIT, || {
            let url = url.clone();
            async move {
                let (_, members) = get_json(&format!("{url}/api/v1/cluster/members"), None).await?;
                let down = members
                    .as_array()?
                    .iter()
                    .any(|m| m["region"] == "us-east" && m["state"] == "down");
                down.then_some(())
            }
        })
        .await;
    }
    eprintln!(
        "a killed edge was seen down by both survivors after {:?}",
        killed_at.elapsed()
    );
    let (_, regions) = get_json(&format!("{}/api/v1/regions", urls[1]), None)
        .await
        .expect("regions");
    let health: Vec<(String, bool)> = regions["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| {
            (
                r["region"].as_str().expect("region").to_owned(),
                r["healthy"].as_bool().expect("healthy"),
            )
        })
        .collect();
    assert_eq!(
        health,
        [
            ("ap-south".to_owned(), true),
            ("eu-west".to_owned(), true),
            ("us-east".to_owned(), false)
        ]
    );
    let updated: Value = eventually("cluster.json to mark the edge exited", START_LIMIT, || {
        let path = cluster_path.clone();
        async move {
            let value: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
            (value["edges"][1]["state"] == "exited").then_some(value)
        }
    })
    .await;
    assert_eq!(updated["edges"][0]["state"], "running");

    // The supervisor starts the dead edge again, on the same address, and
    // it rejoins: its region is healthy again on a survivor.
    let restarted: Value = eventually("the dead edge to be started again", START_LIMIT, || {
        let path = cluster_path.clone();
        async move {
            let value: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
            let edge = &value["edges"][1];
            (edge["state"] == "running" && edge["pid"].as_i64() != Some(i64::from(victim_pid)))
                .then_some(value)
        }
    })
    .await;
    assert_eq!(
        restarted["edges"][1]["url"],
        victim["url"],
        "same address; before {cluster}\nafter {restarted}\nlog:\n{}",
        dev.log_text()
    );
    eventually("the restarted edge to be ready", START_LIMIT, || {
        let url = urls[2].clone();
        async move {
            let (status, _) = get_json(&format!("{url}/readyz"), None).await?;
            (status == 200).then_some(())
        }
    })
    .await;
    eventually("us-east to be healthy again", START_LIMIT, || {
        let url = urls[1].clone();
        async move {
            let (_, regions) = get_json(&format!("{url}/api/v1/regions"), None).await?;
            regions["regions"]
                .as_array()?
                .iter()
                .any(|r| r["region"] == "us-east" && r["healthy"] == true)
                .then_some(())
        }
    })
    .await;
    assert!(dev.log_text().contains("edge-us-east started again"));

    // A second dev on the same data dir is refused while the first runs.
    let second = lyceum()
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run second dev");
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("uses this data dir"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // SIGTERM stops every child cleanly and removes cluster.json.
    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "dev exit {status:?}; log:\n{}",
        dev.log_text()
    );
    let pids: Vec<i64> = std::iter::once(cluster["control_plane"]["pid"].as_i64().expect("pid"))
        .chain(edges.iter().map(|e| e["pid"].as_i64().expect("pid")))
        .chain(restarted["edges"][1]["pid"].as_i64())
        .collect();
    eventually("every child to be gone", Duration::from_secs(30), || {
        let pids = pids.clone();
        async move { pids.iter().all(|&p| !pid_alive(p)).then_some(()) }
    })
    .await;
    assert!(
        !cluster_path.exists(),
        "cluster.json must be removed on stop"
    );
    let log = dev.log_text();
    assert!(log.contains("lyceum dev: stopped"), "{log}");

    // The killed edge could not clean up its warm containers; remove them
    // (a restart under the same node id would). The edges that stopped
    // cleanly must have left nothing behind.
    let containers_of = |node_id: &str| {
        let filter = format!("label=dev.lyceum.sandbox={node_id}");
        let listed = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for id in containers_of(victim["node_id"].as_str().expect("id")) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &id])
            .output();
    }
    for edge in [&edges[0], &edges[2]] {
        let left = containers_of(edge["node_id"].as_str().expect("id"));
        assert!(
            left.is_empty(),
            "{} left containers behind: {left:?}",
            edge["region"]
        );
    }
}
