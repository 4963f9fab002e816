//! Timetables drive the warm pools, end to end on a real `lyceum dev`
//! cluster (one region, real Docker): an instructor imports a class that is
//! on now, the control plane plans its burst, the edge fetches the plan
//! and its python pool actor warms to it within the node's budget; an
//! operator's target wins until cleared; and with the control plane down,
//! a restarted edge follows the plan it kept in sled.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, get_json, lyceum, Proc, START_LIMIT};

/// How long the pool may take to reach a target (warm-ups on a busy
/// machine); a harness bound, not a speed check.
const WARM_LIMIT: Duration = Duration::from_secs(120);

async fn send(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<(&str, String)>,
) -> (u16, Value) {
    let mut request = crate::support::client()
        .request(method, url)
        .bearer_auth(token);
    if let Some((media, text)) = body {
        request = request.header("content-type", media).body(text);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn python_pool(edge: &str, token: &str) -> Option<(Value, Value)> {
    let (status, body) = get_json(&format!("{edge}/api/v1/sandbox/pools"), Some(token)).await?;
    if status != 200 {
        return None;
    }
    let python = body["pools"]
        .as_array()?
        .iter()
        .find(|p| p["language"] == "python")?
        .clone();
    Some((python, body))
}

fn cluster(dir: &Path) -> Value {
    let path = dir.join("data").join("cluster.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok().unwrap_or_default())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timetabled_class_raises_the_pool_and_the_edge_keeps_its_plan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LYCEUM_DEV__REGIONS", "[\"eu-west\"]")
        .env("LYCEUM_SANDBOX__POOL_TARGET", "1")
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]")
        .env("LYCEUM_DEV__RESTART_BACKOFF_INITIAL_MS", "500")
        .env("LYCEUM_EDGE__POOL_PLAN_REFRESH_MS", "500")
        // The budget binds before the plan: 3 warm containers at most.
        .env("LYCEUM_EDGE__POOL_WARM_CONTAINERS_MAX", "3")
        // A slow engine, so 30 learners' burst plans more than 3.
        .env(
            "LYCEUM_CONTROL_PLANE__FORECAST_CONTAINER_CREATIONS_PER_MINUTE",
            "20",
        );
    let dev = Proc::spawn(command, &dir.path().join("dev.log"));
    let info = eventually("cluster.json", START_LIMIT, || async {
        let c = cluster(dir.path());
        c["edges"][0]["url"].as_str().map(|_| c.clone())
    })
    .await;
    let cp = info["control_plane"]["url"]
        .as_str()
        .expect("cp")
        .to_owned();
    let edge = info["edges"][0]["url"].as_str().expect("edge").to_owned();
    let operator = info["tokens"]["operator"].as_str().expect("op").to_owned();
    let instructor = info["tokens"]["instructor"]
        .as_str()
        .expect("in")
        .to_owned();
    let supervisor = info["supervisor"]["url"].as_str().expect("sup").to_owned();
    let supervisor_key = info["supervisor"]["key"].as_str().expect("key").to_owned();
    for url in [&cp, &edge] {
        eventually(&format!("{url}/readyz"), START_LIMIT, || async {
            let (status, _) = get_json(&format!("{url}/readyz"), None).await?;
            (status == 200).then_some(())
        })
        .await;
    }
    // Nothing planned yet: the base target.
    let (before, body) = python_pool(&edge, &operator).await.expect("pools");
    assert_eq!(
        (&before["target"], &before["source"]),
        (&1.into(), &"base".into()),
        "{body}"
    );
    assert_eq!(body["policy"], "predictive");
    assert_eq!(body["budget"]["containers_max"], 3);

    // A class of 30 that began a minute ago and lasts an hour.
    let now = time::OffsetDateTime::now_utc();
    let minute = |t: time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    let start = minute(now - time::Duration::minutes(1));
    let end = minute(now + time::Duration::minutes(60));
    let csv = format!(
        "title,start,end,time_zone,region,languages,learners\n\
         Loops,{start},{end},UTC,eu-west,python,30\n"
    );
    let (status, report) = send(
        reqwest::Method::POST,
        &format!("{cp}/api/v1/timetables"),
        &instructor,
        Some(("text/csv", csv)),
    )
    .await;
    assert_eq!(status, 201, "{report}");

    // The edge fetches the plan; its actor wants the plan's target, the
    // budget grants 3, and the pool fills to it.
    let (during, body) = eventually("the pool warmed to the plan", WARM_LIMIT, || async {
        let (python, body) = python_pool(&edge, &operator).await?;
        (python["source"] == "plan" && python["warm"] == 3).then_some((python, body))
    })
    .await;
    assert_eq!(during["target"], 3, "{body}");
    assert_eq!(during["budget_capped"], true, "{body}");
    assert!(during["planned"].as_u64().unwrap_or(0) > 3, "{body}");
    assert!(
        during["planned_runs_per_minute"].as_f64().unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(body["plan"]["fetched_at"].is_string(), "{body}");
    assert_eq!(body["plan"]["minutes"], 360, "{body}");
    let (_, metrics) = {
        let text = crate::support::client()
            .get(format!("{edge}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        ((), text)
    };
    for name in [
        "lyceum_sandbox_pool_planned_containers{language=\"python\"",
        "lyceum_sandbox_pool_wanted_containers{language=\"python\",source=\"plan\"",
        "lyceum_sandbox_pool_wasted_total",
        "lyceum_edge_pool_plan_fetches_total{outcome=\"ok\"",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // An operator's target wins until cleared; a learner may not set one.
    let pool_url = format!("{edge}/api/v1/sandbox/pools/python");
    let learner = info["tokens"]["learner"].as_str().expect("learner");
    let (status, _) = send(reqwest::Method::DELETE, &pool_url, learner, None).await;
    assert_eq!(status, 403);
    let put = |target: u32| {
        let body = serde_json::json!({ "target": target }).to_string();
        send(
            reqwest::Method::PUT,
            &pool_url,
            &operator,
            Some(("application/json", body)),
        )
    };
    let (status, held) = put(1).await;
    assert_eq!(
        (status, &held["source"], &held["target"]),
        (200, &"operator".into(), &1.into()),
        "{held}"
    );
    eventually("the operator's target", WARM_LIMIT, || async {
        let (python, _) = python_pool(&edge, &operator).await?;
        (python["warm"] == 1 && python["operator_target"] == 1).then_some(())
    })
    .await;
    let (status, cleared) = send(reqwest::Method::DELETE, &pool_url, &operator, None).await;
    assert_eq!(
        (status, &cleared["source"], &cleared["target"]),
        (200, &"plan".into(), &3.into()),
        "{cleared}"
    );
    let (status, unknown) = send(
        reqwest::Method::DELETE,
        &format!("{edge}/api/v1/sandbox/pools/cobol"),
        &operator,
        None,
    )
    .await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &"unknown_language".into())
    );
    let (wasted, _) = python_pool(&edge, &operator).await.expect("pools");
    assert!(
        wasted["wasted"].as_u64().unwrap_or(0) >= 2,
        "the operator's 1 wasted two: {wasted}"
    );

    // The control plane goes away; the edge restarts and follows the plan
    // it kept.
    let kill = |name: &str| {
        let url = format!("{supervisor}/v1/processes/{name}/kill");
        let key = supervisor_key.clone();
        async move {
            let body = serde_json::json!({"down_ms": 600_000}).to_string();
            send(
                reqwest::Method::POST,
                &url,
                &key,
                Some(("application/json", body)),
            )
            .await
        }
    };
    let (status, answer) = kill("control-plane").await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = kill("edge-eu-west").await;
    assert_eq!(status, 200, "{answer}");
    let start_url = format!("{supervisor}/v1/processes/edge-eu-west/start");
    let (status, answer) = send(reqwest::Method::POST, &start_url, &supervisor_key, None).await;
    assert_eq!(status, 200, "{answer}");
    // Without the control plane the restarted edge has no token keys, so
    // its metrics (no sign-in) show what the pool actor follows.
    eventually(
        "the restarted edge on its kept plan",
        START_LIMIT,
        || async {
            let url = cluster(dir.path())["edges"][0]["url"].as_str()?.to_owned();
            let text = crate::support::client()
                .get(format!("{url}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let value = |name: &str| -> Option<f64> {
                text.lines()
                    .find(|l| l.starts_with(name))?
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            };
            let planned = value("lyceum_sandbox_pool_planned_containers{language=\"python\"")?;
            let target = value("lyceum_sandbox_pool_target_containers{language=\"python\"")?;
            let failed = value("lyceum_edge_pool_plan_fetches_total{outcome=\"failed\"")?;
            (planned > 3.0 && target == 3.0 && failed >= 1.0).then_some(())
        },
    )
    .await;
    drop(dev);
}
