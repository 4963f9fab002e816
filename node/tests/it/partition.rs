//! Real processes, real QUIC: an operator splits a dev cluster in two
//! (eu-west alone, us-east with ap-south) through the fault-injection API,
//! both sides see the other down while each side still sees its own,
//! `lyceum route` passes over what its node thinks is down and over nodes
//! that do not answer, and clearing the rules heals the cluster. The same
//! cluster answers a table of bad code-run requests with exact 4xx codes.
//!
//! A single cut link is not a partition for SWIM: the third node's
//! indirect probes still reach across, which is the protocol working. So
//! the cut isolates a whole side.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::support::{client, eventually, get_json, lyceum, Proc, START_LIMIT};

/// A bad run request: what it is, its JSON body or raw text, and the
/// status and error code it must get.
type BadRun = (
    &'static str,
    Option<Value>,
    Option<&'static str>,
    u16,
    &'static str,
);

/// How `url` sees the member of `region`.
async fn state_of(url: &str, region: &str) -> Option<String> {
    let (_, members) = get_json(&format!("{url}/api/v1/cluster/members"), None).await?;
    members
        .as_array()?
        .iter()
        .find(|m| m["region"] == region)
        .and_then(|m| m["state"].as_str().map(str::to_owned))
}

async fn put_faults(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let answer = client()
        .put(format!("{url}/api/v1/operator/faults"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("put faults");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn route(from: &str) -> (i32, Value) {
    let output = lyceum()
        .args(["route", "--json", "--probes", "2", "--from", from])
        .output()
        .expect("lyceum route");
    let text = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "route printed no JSON ({err}): {text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), value)
}

/// A dev cluster with fault injection on, and its `cluster.json`.
async fn start_cluster(dir: &std::path::Path) -> (Proc, Value) {
    let data = dir.join("data");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_EDGE__FAULT_INJECTION", "true")
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]");
    let dev = Proc::spawn(command, &dir.join("dev.log"));
    let cluster_path = data.join("cluster.json");
    let cluster: Value = eventually("cluster.json", START_LIMIT, || {
        let path = cluster_path.clone();
        async move { serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok() }
    })
    .await;
    (dev, cluster)
}

/// Waits until `from` sees the member of `region` in `state`.
async fn wait_state(from: &str, region: &str, state: &str) {
    eventually(
        &format!("{from} to see {region} {state}"),
        START_LIMIT,
        || async { (state_of(from, region).await.as_deref() == Some(state)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_partitions_two_regions_and_heals_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, cluster) = start_cluster(dir.path()).await;
    let edges = cluster["edges"].as_array().expect("edges").clone();
    let url = |i: usize| edges[i]["url"].as_str().expect("url").to_owned();
    let id = |i: usize| edges[i]["node_id"].as_str().expect("id").to_owned();
    let (eu, us, ap) = (url(0), url(1), url(2));
    let operator = cluster["tokens"]["operator"].as_str().expect("token");
    let learner = cluster["tokens"]["learner"].as_str().expect("token");

    // Everyone sees everyone first.
    for (from, region) in [(&eu, "ap-south"), (&ap, "eu-west"), (&us, "ap-south")] {
        eventually(
            &format!("{from} to see {region} alive"),
            START_LIMIT,
            || async { (state_of(from, region).await.as_deref() == Some("alive")).then_some(()) },
        )
        .await;
    }

    // `lyceum route` passes over a node that does not answer and picks a
    // region that answers.
    let (code, chosen) = route(&format!("http://127.0.0.1:1,{eu}"));
    assert_eq!(code, 0, "{chosen}");
    assert_eq!(chosen["asked"], eu.as_str(), "{chosen}");
    assert!(chosen["chosen"]["rtt_ms"].as_f64().is_some(), "{chosen}");
    assert_eq!(
        chosen["regions"].as_array().map(Vec::len),
        Some(3),
        "{chosen}"
    );

    // Bad runs get clear 4xx errors with stable codes, never a 5xx.
    let runs = format!("{eu}/api/v1/runs");
    let big = "x".repeat(2 * 1024 * 1024);
    let file = |name: &str| json!([{"name": name, "content": "print(1)"}]);
    let cases: Vec<BadRun> = vec![
        ("empty body", None, Some(""), 400, "bad_request"),
        ("not JSON", None, Some("{"), 400, "bad_request"),
        ("an array", Some(json!([])), None, 400, "bad_request"),
        (
            "wrong type",
            Some(json!({"language": 5, "files": file("a.py")})),
            None,
            400,
            "bad_request",
        ),
        (
            "no files field",
            Some(json!({"language": "python"})),
            None,
            400,
            "bad_request",
        ),
        (
            "no files",
            Some(json!({"language": "python", "files": []})),
            None,
            400,
            "bad_request",
        ),
        (
            "unknown field",
            Some(json!({"language": "python", "files": file("a.py"), "sudo": true})),
            None,
            400,
            "bad_request",
        ),
        (
            "unknown language",
            Some(json!({"language": "cobol", "files": file("a.cob")})),
            None,
            400,
            "unknown_language",
        ),
        (
            "path traversal",
            Some(
                json!({"language": "python", "files": [{"name": "main.py", "content": ""}, {"name": "../etc/x", "content": ""}]}),
            ),
            None,
            400,
            "bad_file_name",
        ),
        (
            "path traversal in the entry file's name",
            Some(
                json!({"language": "python", "files": [{"name": "../../etc/passwd", "content": "print(1)"}]}),
            ),
            None,
            400,
            "bad_file_name",
        ),
        (
            "an absolute entry file name",
            Some(
                json!({"language": "python", "files": [{"name": "/etc/passwd", "content": "print(1)"}]}),
            ),
            None,
            400,
            "bad_file_name",
        ),
        (
            "a name that climbs out through a folder",
            Some(
                json!({"language": "python", "files": [{"name": "a/../../b.py", "content": "print(1)"}]}),
            ),
            None,
            400,
            "bad_file_name",
        ),
        (
            "hidden file",
            Some(
                json!({"language": "python", "files": [{"name": "main.py", "content": ""}, {"name": ".bashrc", "content": ""}]}),
            ),
            None,
            400,
            "bad_file_name",
        ),
        (
            "zero wall",
            Some(json!({"language": "python", "files": file("a.py"), "limits": {"wall_ms": 0}})),
            None,
            400,
            "bad_request",
        ),
        (
            "absurd wall",
            Some(
                json!({"language": "python", "files": file("a.py"), "limits": {"wall_ms": 1_000_000_000_u64}}),
            ),
            None,
            400,
            "bad_request",
        ),
        (
            "negative wall",
            Some(json!({"language": "python", "files": file("a.py"), "limits": {"wall_ms": -1}})),
            None,
            400,
            "bad_request",
        ),
        (
            "zero memory",
            Some(json!({"language": "python", "files": file("a.py"), "limits": {"memory_mb": 0}})),
            None,
            400,
            "bad_request",
        ),
        (
            "absurd memory",
            Some(
                json!({"language": "python", "files": file("a.py"), "limits": {"memory_mb": 1_000_000}}),
            ),
            None,
            400,
            "bad_request",
        ),
        (
            "bad tolerance",
            Some(
                json!({"language": "python", "files": file("a.py"), "tests": [{"name": "t", "expected_stdout": "1", "compare": "float", "tolerance": -1.0}]}),
            ),
            None,
            400,
            "bad_request",
        ),
        (
            "unknown compare",
            Some(
                json!({"language": "python", "files": file("a.py"), "tests": [{"name": "t", "expected_stdout": "1", "compare": "fuzzy"}]}),
            ),
            None,
            400,
            "bad_request",
        ),
        (
            "huge payload",
            Some(json!({"language": "python", "files": [{"name": "main.py", "content": big}]})),
            None,
            413,
            "payload_too_large",
        ),
    ];
    for (what, body, raw, status, code) in cases {
        let mut request = client()
            .post(&runs)
            .bearer_auth(learner)
            .header("content-type", "application/json");
        request = match (body, raw) {
            (Some(body), _) => request.body(body.to_string()),
            (None, Some(raw)) => request.body(raw.to_owned()),
            (None, None) => request,
        };
        let answer = request.send().await.expect("post");
        let got = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {body}"
        );
    }
    let no_type = client()
        .post(&runs)
        .bearer_auth(learner)
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(no_type.status().as_u16(), 415);

    // The API checks who asks and what they send.
    let cut_ap = json!({"rules": [{"peer": id(2), "action": "cut"}]});
    assert_eq!(put_faults(&eu, learner, &cut_ap).await.0, 403);
    for bad in [
        json!({"rules": [{"peer": "not a node id!", "action": "cut"}]}),
        json!({"rules": [{"peer": id(2), "action": "delay"}]}),
        json!({"rules": [{"peer": id(2), "action": "drop", "delay_ms": 5}]}),
        json!({"rules": [{"peer": id(2), "action": "explode"}]}),
        json!({"rules": [{"peer": id(2), "action": "delay", "delay_ms": 3_600_000}]}),
        json!({"rules": (0..65).map(|_| json!({"peer": id(2), "action": "drop"})).collect::<Vec<_>>()}),
        json!([1, 2, 3]),
        json!({"rules": [{"peer": id(2), "action": "drop"}], "for_ms": 0}),
        json!({"rules": [{"peer": id(2), "action": "drop"}], "for_ms": 3_600_001}),
    ] {
        let (status, body) = put_faults(&eu, operator, &bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }

    // Rules with a window clear themselves at its end (how a drill's
    // faults heal even when the drill dies), unless replaced meanwhile.
    let brief = json!({"rules": [{"peer": id(2), "action": "drop"}], "for_ms": 300});
    let (status, body) = put_faults(&eu, operator, &brief).await;
    assert_eq!((status, &body), (200, &brief));
    eventually("the brief rules to clear", START_LIMIT, || async {
        let (_, listed) = get_json(&format!("{eu}/api/v1/operator/faults"), Some(operator)).await?;
        (listed["rules"] == json!([])).then_some(())
    })
    .await;
    let (status, _) = put_faults(&eu, operator, &brief).await;
    assert_eq!(status, 200);
    let lasting = json!({"rules": [{"peer": id(2), "action": "drop"}]});
    assert_eq!(put_faults(&eu, operator, &lasting).await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, listed) = get_json(&format!("{eu}/api/v1/operator/faults"), Some(operator))
        .await
        .expect("get faults");
    assert_eq!(
        listed, lasting,
        "a replaced window must not clear its successor"
    );

    // The control plane as a peer: a cut fails the edge's calls to it
    // (here: reading a unit to grade) until the rule goes; drop and delay
    // are refused (a degrade is in the test below).
    let submit = || async {
        let answer = client()
            .post(format!("{eu}/api/v1/units/no-such-unit/submissions"))
            .bearer_auth(learner)
            .json(&json!({"files": [{"name": "main.py", "content": "print(1)"}]}))
            .send()
            .await
            .expect("submit");
        let status = answer.status().as_u16();
        (status, answer.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (healthy, body) = submit().await;
    assert_ne!(healthy, 503, "{body}");
    let drop_cp = json!({"rules": [{"peer": "control-plane", "action": "drop"}]});
    assert_eq!(put_faults(&eu, operator, &drop_cp).await.0, 400);
    let cut_cp = json!({"rules": [{"peer": "control-plane", "action": "cut"}]});
    assert_eq!(put_faults(&eu, operator, &cut_cp).await.0, 200);
    let (status, body) = submit().await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_eq!(
        put_faults(&eu, operator, &json!({"rules": []})).await.0,
        200
    );
    assert_eq!(submit().await.0, healthy);

    // Split: eu-west cuts both others, and both others cut eu-west.
    let cut_others = json!({"rules": [
        {"peer": id(1), "action": "cut"},
        {"peer": id(2), "action": "cut"},
    ]});
    let (status, body) = put_faults(&eu, operator, &cut_others).await;
    assert_eq!(status, 200, "{body}");
    let cut_eu = json!({"rules": [{"peer": id(0), "action": "cut"}]});
    for url in [&us, &ap] {
        assert_eq!(put_faults(url, operator, &cut_eu).await.0, 200);
    }
    let (status, listed) = get_json(&format!("{eu}/api/v1/operator/faults"), Some(operator))
        .await
        .expect("get faults");
    assert_eq!((status, &listed), (200, &cut_others));
    let cut_at = tokio::time::Instant::now();
    for (from, region) in [
        (&eu, "ap-south"),
        (&eu, "us-east"),
        (&ap, "eu-west"),
        (&us, "eu-west"),
    ] {
        eventually(
            &format!("{from} to see {region} down"),
            START_LIMIT,
            || async { (state_of(from, region).await.as_deref() == Some("down")).then_some(()) },
        )
        .await;
    }
    eprintln!(
        "both sides of the split saw the other down after {:?}",
        cut_at.elapsed()
    );
    // The side of two still sees itself whole.
    assert_eq!(state_of(&us, "ap-south").await.as_deref(), Some("alive"));
    assert_eq!(state_of(&ap, "us-east").await.as_deref(), Some("alive"));
    // Routing through us-east passes over eu-west, which it thinks down.
    let (code, seen) = route(&us);
    assert_eq!(code, 0, "{seen}");
    let eu_entry = seen["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["region"] == "eu-west")
        .expect("eu-west listed")
        .clone();
    assert_eq!(eu_entry["healthy"], false, "{seen}");
    assert!(eu_entry["rtt_ms"].is_null(), "{seen}");
    assert_ne!(seen["chosen"]["region"], "eu-west", "{seen}");

    // Heal: clear the rules everywhere; the sides find each other again.
    for url in [&eu, &us, &ap] {
        let answer = client()
            .delete(format!("{url}/api/v1/operator/faults"))
            .bearer_auth(operator)
            .send()
            .await
            .expect("delete faults");
        assert_eq!(answer.status().as_u16(), 200);
    }
    let healed_at = tokio::time::Instant::now();
    for (from, region) in [
        (&eu, "ap-south"),
        (&eu, "us-east"),
        (&ap, "eu-west"),
        (&us, "eu-west"),
    ] {
        eventually(
            &format!("{from} to see {region} alive again"),
            START_LIMIT,
            || async { (state_of(from, region).await.as_deref() == Some("alive")).then_some(()) },
        )
        .await;
    }
    eprintln!("the cut healed after {:?}", healed_at.elapsed());

    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "dev exit {status:?}; log:\n{}",
        dev.log_text()
    );
}

/// One edge drops what it sends to a second, a third drops what it
/// receives from the first: nothing the first sends arrives anywhere, so
/// the others see it down (its suspicion reaches it, its refutation does
/// not), and see it alive again once the rules go. A degrade, on a peer and
/// on the control plane, is set and read back; bad bodies are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_rule_silences_an_edge_and_a_degrade_reads_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, cluster) = start_cluster(dir.path()).await;
    let edges = cluster["edges"].as_array().expect("edges").clone();
    let url = |i: usize| edges[i]["url"].as_str().expect("url").to_owned();
    let id = |i: usize| edges[i]["node_id"].as_str().expect("id").to_owned();
    let (eu, us, ap) = (url(0), url(1), url(2));
    let operator = cluster["tokens"]["operator"].as_str().expect("token");
    let learner = cluster["tokens"]["learner"].as_str().expect("token");
    for (from, region) in [(&us, "eu-west"), (&ap, "eu-west")] {
        wait_state(from, region, "alive").await;
    }

    for (bad, words) in [
        (
            json!({"peer": id(1), "action": "degrade", "delay_ms": 10, "jitter_ms": 11}),
            "jitter_ms (11) may not exceed delay_ms (10)",
        ),
        (
            json!({"peer": id(1), "action": "degrade", "delay_ms": 10, "loss_percent": 101}),
            "loss_percent must be a number from 0 to 100",
        ),
        (
            json!({"peer": id(1), "action": "degrade", "delay_ms": 60_001}),
            "at most 60000 ms",
        ),
        (
            json!({"peer": id(1), "action": "cut", "direction": "outbound"}),
            "a cut acts both ways",
        ),
        (
            json!({"peer": id(1), "action": "drop", "direction": "up"}),
            "unknown variant",
        ),
        (
            json!({"peer": "control-plane", "action": "delay", "delay_ms": 5}),
            "can only be cut or degraded",
        ),
    ] {
        let (status, body) = put_faults(&eu, operator, &json!({"rules": [bad]})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{bad}: {message}");
    }

    // A degrade is read back as it was put; a degraded control-plane link
    // is slower, not cut: the edge still reads from it.
    let degrade = json!({"rules": [
        {"peer": id(1), "action": "degrade", "direction": "outbound",
         "delay_ms": 50, "jitter_ms": 10, "loss_percent": 2.5},
        {"peer": "control-plane", "action": "degrade", "delay_ms": 20, "jitter_ms": 5},
    ], "for_ms": 60_000});
    let (status, body) = put_faults(&eu, operator, &degrade).await;
    assert_eq!((status, &body), (200, &degrade));
    let (status, listed) = get_json(&format!("{eu}/api/v1/operator/faults"), Some(operator))
        .await
        .expect("get faults");
    assert_eq!((status, &listed), (200, &degrade));
    let answer = client()
        .post(format!("{eu}/api/v1/units/no-such-unit/submissions"))
        .bearer_auth(learner)
        .json(&json!({"files": [{"name": "main.py", "content": "print(1)"}]}))
        .send()
        .await
        .expect("submit");
    assert_ne!(answer.status().as_u16(), 503, "a degraded link is not cut");

    // One way: eu-west's packets are dropped on their way out to us-east
    // and on their way in at ap-south.
    let (status, body) = put_faults(
        &eu,
        operator,
        &json!({"rules": [{"peer": id(1), "action": "drop", "direction": "outbound"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put_faults(
        &ap,
        operator,
        &json!({"rules": [{"peer": id(0), "action": "drop", "direction": "inbound"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let silenced_at = tokio::time::Instant::now();
    for from in [&us, &ap] {
        wait_state(from, "eu-west", "down").await;
    }
    eprintln!(
        "us-east and ap-south saw eu-west down after {:?}; eu-west sees us-east {:?}",
        silenced_at.elapsed(),
        state_of(&eu, "us-east").await
    );
    // us-east and ap-south still hear each other.
    assert_eq!(state_of(&us, "ap-south").await.as_deref(), Some("alive"));

    for url in [&eu, &ap] {
        let answer = client()
            .delete(format!("{url}/api/v1/operator/faults"))
            .bearer_auth(operator)
            .send()
            .await
            .expect("delete faults");
        assert_eq!(answer.status().as_u16(), 200);
    }
    for from in [&us, &ap] {
        wait_state(from, "eu-west", "alive").await;
    }

    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "dev exit {status:?}; log:\n{}",
        dev.log_text()
    );
}
