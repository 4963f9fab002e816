//! `lyceum chaos run` against a real `lyceum dev` cluster: real processes
//! killed and paused through the supervisor, a real workload (live classes
//! over WebSockets, code runs, graded submissions, ledger transfers), and
//! the checker's verdict from what the platform holds afterwards. A second cluster drops one acknowledged report on
//! purpose (`edge.test_drop_reports`), and the checker must say so: a
//! checker that cannot fail proves nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, get_json, lyceum, Proc, START_LIMIT};

/// Longest a drill of these tests may take, settle and check included.
const DRILL_LIMIT: Duration = Duration::from_secs(240);

/// A dev cluster in `dir`, ready on every process; the path of its
/// `cluster.json`.
async fn dev_cluster(dir: &Path, extra_env: &[(&str, &str)]) -> (Proc, PathBuf) {
    let data = dir.join("data");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__POOL_TARGET", "2")
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]")
        .env("LYCEUM_DEV__RESTART_BACKOFF_INITIAL_MS", "500")
        .env("LYCEUM_EDGE__OUTBOX_RETRY_MAX_MS", "1000");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let dev = Proc::spawn(command, &dir.join("dev.log"));
    let cluster_path = data.join("cluster.json");
    let cluster: Value = eventually("cluster.json", START_LIMIT, || {
        let path = cluster_path.clone();
        async move { serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok() }
    })
    .await;
    let mut urls = vec![cluster["control_plane"]["url"]
        .as_str()
        .expect("control plane url")
        .to_owned()];
    for edge in cluster["edges"].as_array().expect("edges") {
        urls.push(edge["url"].as_str().expect("edge url").to_owned());
    }
    for url in urls {
        eventually(&format!("{url}/readyz"), START_LIMIT, || {
            let url = url.clone();
            async move {
                let (status, _) = get_json(&format!("{url}/readyz"), None).await?;
                (status == 200).then_some(())
            }
        })
        .await;
    }
    assert!(
        cluster["supervisor"]["url"].as_str().is_some(),
        "dev.chaos is on by default: {cluster}"
    );
    (dev, cluster_path)
}

/// The command line of a drill run; its stdout goes to `out`.
fn chaos_run(drill: &Path, cluster: &Path, reports: &Path, out: &Path) -> Command {
    let mut command = lyceum();
    command
        .args(["--log-filter", "warn", "chaos", "run"])
        .arg(drill)
        .arg("--cluster")
        .arg(cluster)
        .arg("--reports")
        .arg(reports)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).expect("stdout file"))
        .stderr(std::fs::File::create(out.with_extension("err")).expect("stderr file"));
    command
}

/// Runs `command` to its end, at most [`DRILL_LIMIT`].
async fn wait(command: Command) -> std::process::ExitStatus {
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("start the runner");
    tokio::time::timeout(DRILL_LIMIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the drill did not end within {DRILL_LIMIT:?}"))
        .expect("wait for the runner")
}

/// Runs a drill to its end; the exit code, its output, and its report.
async fn run_drill(dir: &Path, cluster: &Path, drill_text: &str) -> (Option<i32>, String, Value) {
    let drill = dir.join("drill.toml");
    std::fs::write(&drill, drill_text).expect("write drill");
    let reports = dir.join("reports");
    let out = dir.join("drill.out");
    let command = chaos_run(&drill, cluster, &reports, &out);
    let status = wait(command).await;
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
    );
    let report = std::fs::read_dir(&reports)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        })
        .and_then(|path| serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok())
        .unwrap_or(Value::Null);
    (status.code(), text, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_class_home_control_plane_and_a_cut_region_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (dev, cluster) = dev_cluster(dir.path(), &[]).await;
    let drill = r#"
title = "A class's home and the control plane killed, a region cut off, the database down, under load"
hypothesis = "Class events, runs, submissions and transfers acknowledged while a class's home and then the control plane are down are all kept, once."
duration_s = 30
settle_s = 25
recovery_bound_s = 25

[workload]
learners = 6
classes = 2
regions = ["eu-west", "us-east"]
runs_per_second = 2
submissions_per_second = 0.5
ledger_transfers_per_second = 2

[probes]
interval_ms = 1000
run_latency_p99_ms = 60000
class_delivery_ratio = 0.5
class_delivery_within_ms = 5000
readiness_ratio = 0.5

[[fault]]
kind = "kill"
target = "class-home"
start_s = 3
duration_s = 5

[[fault]]
kind = "kill"
target = "control-plane"
start_s = 10
duration_s = 5

[[fault]]
kind = "partition"
from = ["ap-south"]
to = ["eu-west", "us-east", "control-plane"]
start_s = 17
duration_s = 5

[[fault]]
kind = "database-down"
start_s = 23
duration_s = 5
"#;
    let (code, out, report) = run_drill(dir.path(), &cluster, drill).await;
    assert_eq!(code, Some(0), "{out}\n{}", dev.log_text());
    assert!(out.contains("fault 1 applied"), "{out}");
    assert!(out.contains("fault 2 healed"), "{out}");
    assert_eq!(
        report["summary"]["hypothesis_held"], true,
        "{out}\n{report}"
    );
    let counts = &report["verdict"]["counts"];
    assert!(
        counts["runs_acknowledged"].as_u64().unwrap_or(0) >= 20,
        "{counts}"
    );
    assert_eq!(counts["runs_lost"], 0, "{counts}");
    assert_eq!(counts["runs_duplicated"], 0, "{counts}");
    assert!(
        counts["transfers_accepted"].as_u64().unwrap_or(0) >= 20,
        "{counts}"
    );
    assert_eq!(counts["transfers_lost"], 0, "{counts}");
    assert_eq!(counts["balance_mismatches"], 0, "{counts}");
    assert!(
        counts["events_received"].as_u64().unwrap_or(0) >= 40,
        "{counts}"
    );
    assert_eq!(counts["events_missing"], 0, "{counts}");
    assert_eq!(counts["events_duplicated"], 0, "{counts}");
    assert!(counts["failovers"].as_u64().unwrap_or(0) >= 1, "{counts}");
    let events: Vec<(&str, u64)> = report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().expect("event"),
                e["fault"].as_u64().expect("fault"),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("applied", 1),
            ("healed", 1),
            ("applied", 2),
            ("healed", 2),
            ("applied", 3),
            ("healed", 3),
            ("applied", 4),
            ("healed", 4)
        ],
        "{report}"
    );
    assert!(
        out.contains("fault 3 applied: partition ap-south <-> eu-west+us-east+control-plane (fault API): gossip cut between ap-south <-> eu-west+us-east+control-plane (5 rules on 3 edges); the control plane's link cut"),
        "{out}"
    );
    // Everything runs again: the supervisor started both processes.
    let processes: Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster).expect("cluster.json"))
            .expect("json");
    assert_eq!(processes["control_plane"]["state"], "running");
    assert!(
        out.contains("fault 4 applied: database unavailable: the control plane's database: SQLite files made immutable"),
        "{out}"
    );
    // The database is writable again: a sign-up is stored.
    let cp = processes["control_plane"]["url"].as_str().expect("cp url");
    let signed_up = crate::support::client()
        .post(format!("{cp}/api/v1/auth/sign-up"))
        .json(&serde_json::json!({"email": "after@chaos.test", "password": "a long enough password", "display_name": "After", "tenant": "dev"}))
        .send()
        .await
        .expect("sign-up");
    assert_eq!(signed_up.status().as_u16(), 201);
    // The partition left no rule behind on any edge.
    let operator = processes["tokens"]["operator"].as_str().expect("operator");
    for edge in processes["edges"].as_array().expect("edges") {
        let url = edge["url"].as_str().expect("url");
        let (status, rules) = get_json(&format!("{url}/api/v1/operator/faults"), Some(operator))
            .await
            .expect("fault rules");
        assert_eq!(status, 200, "{rules}");
        assert_eq!(rules["rules"], serde_json::json!([]), "{url}: {rules}");
    }
    drop(dev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_an_acknowledged_run_the_platform_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The pool API's checks below name exact targets: under the `fixed`
    // policy a pool follows only its base (2), not the workload's rate.
    let (dev, cluster) = dev_cluster(
        dir.path(),
        &[
            ("LYCEUM_EDGE__TEST_DROP_REPORTS", "1"),
            ("LYCEUM_EDGE__POOL_POLICY", "fixed"),
        ],
    )
    .await;
    let drill_text = r#"
title = "A paused edge and a drained pool, on a platform that drops a report"
hypothesis = "Nothing acknowledged is lost (it is: the edges drop their first report)."
duration_s = 10
settle_s = 8
recovery_bound_s = 6

[workload]
learners = 3
classes = 0
regions = ["eu-west", "us-east"]
runs_per_second = 2
ledger_transfers_per_second = 0

[probes]
interval_ms = 500
run_latency_p99_ms = 60000
class_delivery_ratio = 0
class_delivery_within_ms = 1000
readiness_ratio = 0.5

[[fault]]
kind = "pause"
target = "edge"
region = "us-east"
start_s = 2
duration_s = 3

[[fault]]
kind = "sandbox-drain"
region = "eu-west"
start_s = 1
duration_s = 5
"#;
    let drill = dir.path().join("drill.toml");
    std::fs::write(&drill, drill_text).expect("write drill");

    // A second drill while one runs is refused.
    let first_out = dir.path().join("first.out");
    let first = tokio::spawn(wait(chaos_run(
        &drill,
        &cluster,
        &dir.path().join("reports"),
        &first_out,
    )));
    eventually("the first drill to start", START_LIMIT, || {
        let path = first_out.clone();
        async move {
            std::fs::read_to_string(path)
                .ok()?
                .contains("workload started")
                .then_some(())
        }
    })
    .await;
    let second = lyceum()
        .args(["--log-filter", "warn", "chaos", "run"])
        .arg(&drill)
        .arg("--cluster")
        .arg(&cluster)
        .output()
        .expect("second runner");
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{second_err}");
    assert!(second_err.contains("[drill_running]"), "{second_err}");
    let status = first.await.expect("the first runner");
    let out = format!(
        "{}{}",
        std::fs::read_to_string(&first_out).unwrap_or_default(),
        std::fs::read_to_string(first_out.with_extension("err")).unwrap_or_default()
    );

    assert_eq!(status.code(), Some(4), "{out}\n{}", dev.log_text());
    assert!(out.contains("DID NOT HOLD"), "{out}");
    assert!(out.contains("is not recorded"), "{out}");
    assert!(out.contains("fault 1 applied"), "{out}");
    assert!(out.contains("fault 1 healed"), "{out}");
    assert!(
        out.contains("edge-eu-west pools drained: python 2->0"),
        "{out}"
    );
    assert!(
        out.contains("edge-eu-west pools back to their policy: python"),
        "{out}"
    );
    let report_path = std::fs::read_dir(dir.path().join("reports"))
        .expect("reports")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    assert!(
        report_path.with_extension("html").exists(),
        "the HTML report beside {}",
        report_path.display()
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("read")).expect("json");
    assert_eq!(report["summary"]["hypothesis_held"], false);
    let lost = report["verdict"]["counts"]["runs_lost"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (1..=3).contains(&lost),
        "one report per edge at most: {report}"
    );
    let violations = report["verdict"]["violations"]
        .as_array()
        .expect("violations");
    assert!(
        violations
            .iter()
            .any(|v| v.to_string().contains("run_lost")),
        "{violations:?}"
    );

    // The pool API a drain uses: a temporary target at the edges of its
    // limit, and the edge going back on its own when the window ends.
    let cluster_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster).expect("read")).expect("json");
    let operator = cluster_json["tokens"]["operator"]
        .as_str()
        .expect("operator");
    let learner = cluster_json["tokens"]["learner"].as_str().expect("learner");
    let edge = cluster_json["edges"][0]["url"].as_str().expect("url");
    let put = |token: &str, body: Value| {
        let request = crate::support::client()
            .put(format!("{edge}/api/v1/sandbox/pools/python"))
            .bearer_auth(token)
            .json(&body)
            .send();
        async move {
            let response = request.await.expect("PUT pool");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let target = || async {
        let (_, pools) = get_json(&format!("{edge}/api/v1/sandbox/pools"), Some(operator))
            .await
            .expect("pools");
        pools["pools"][0]["target"].as_u64()
    };
    assert_eq!(target().await, Some(2));
    let (status, _) = put(learner, serde_json::json!({"target": 0})).await;
    assert_eq!(status, 403);
    for bad in [0_u64, 3_600_001] {
        let (status, body) = put(operator, serde_json::json!({"target": 0, "for_ms": bad})).await;
        assert_eq!(status, 400, "for_ms {bad}: {body}");
        assert!(
            body.to_string().contains("edge.pool_override_ms_max"),
            "{body}"
        );
    }
    let (status, body) = put(operator, serde_json::json!({"target": 0, "for_ms": 300})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["target"],
            &body["restores_to"],
            &body["restores_in_ms"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(2),
            &serde_json::json!(300)
        ),
        "{body}"
    );
    eventually("the pool's target back at 2", START_LIMIT, || async {
        (target().await == Some(2)).then_some(())
    })
    .await;
    drop(dev);
}

/// A POST of `body` to `url` as `token`; the status and the JSON answer.
async fn post_json(url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = crate::support::client().post(url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_starts_shows_aborts_and_reports_a_drill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let drills = dir.path().join("drills");
    std::fs::create_dir_all(&drills).expect("drills dir");
    std::fs::write(
        drills.join("short-pause.toml"),
        r#"
title = "A short pause"
hypothesis = "Nothing acknowledged is lost."
duration_s = 20
settle_s = 4
recovery_bound_s = 4

[workload]
learners = 2
classes = 0
regions = ["eu-west"]
runs_per_second = 1
ledger_transfers_per_second = 0

[probes]
interval_ms = 500
run_latency_p99_ms = 60000
class_delivery_ratio = 0
class_delivery_within_ms = 1000
readiness_ratio = 0

[[fault]]
kind = "pause"
target = "edge"
region = "us-east"
start_s = 10
duration_s = 2
"#,
    )
    .expect("write drill");
    std::fs::write(drills.join("broken.toml"), "title = \"x\"\nsurprise = 1\n").expect("write");
    let drills_dir = drills.display().to_string();
    let (dev, cluster_path) = dev_cluster(
        dir.path(),
        &[("LYCEUM_DEV__DRILLS_DIR", drills_dir.as_str())],
    )
    .await;
    let cluster: Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster_path).expect("read")).expect("json");
    let operator = cluster["tokens"]["operator"].as_str().expect("operator");
    let learner = cluster["tokens"]["learner"].as_str().expect("learner");
    let edge = cluster["edges"][0]["url"].as_str().expect("edge url");

    // The edge names the console's API; only operators get in.
    let (_, node) = get_json(&format!("{edge}/api/v1/node"), None)
        .await
        .expect("node info");
    let api = node["drills_url"].as_str().expect("drills_url").to_owned();
    let (status, body) = get_json(&format!("{api}/v1/chaos/drills"), None)
        .await
        .expect("drills");
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &Value::from("unauthorized"))
    );
    let (status, body) = get_json(&format!("{api}/v1/chaos/drills"), Some(learner))
        .await
        .expect("drills");
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &Value::from("forbidden"))
    );
    let (status, body) = get_json(&format!("{api}/v1/chaos/drills"), Some("not-a-token"))
        .await
        .expect("drills");
    assert_eq!(status, 401, "{body}");

    // The catalogue, a broken drill with its reasons.
    let (status, body) = get_json(&format!("{api}/v1/chaos/drills"), Some(operator))
        .await
        .expect("drills");
    assert_eq!(status, 200, "{body}");
    let list = body["drills"].as_array().expect("drills");
    let names: Vec<&str> = list.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["broken", "short-pause"], "{body}");
    assert_eq!(list[0]["runnable"], false);
    assert!(list[0]["problems"].to_string().contains("line 2"), "{body}");
    assert_eq!(list[1]["runnable"], true, "{body}");
    assert_eq!(list[1]["faults"][0]["kind"], "pause");
    assert_eq!(list[1]["faults"][0]["start_ms"], 10_000);
    let (_, live) = get_json(&format!("{api}/v1/chaos/live"), Some(operator))
        .await
        .expect("live");
    assert_eq!(live, serde_json::json!({"state": "idle"}));
    let (_, runs) = get_json(&format!("{api}/v1/chaos/runs"), Some(operator))
        .await
        .expect("runs");
    assert_eq!(runs, serde_json::json!({"runs": []}));

    // Starting: refusals, then a drill, then a second one refused.
    let start = format!("{api}/v1/chaos/runs");
    let (status, body) = post_json(
        &start,
        operator,
        Some(serde_json::json!({"drill": "broken"})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &Value::from("drill_refused")),
        "{body}"
    );
    assert!(
        body["error"]["problems"].to_string().contains("surprise"),
        "{body}"
    );
    let (status, body) =
        post_json(&start, operator, Some(serde_json::json!({"drill": "../x"}))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &Value::from("unknown_drill")),
        "{body}"
    );
    let (status, body) = post_json(&start, operator, Some(serde_json::json!({"name": "x"}))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &Value::from("bad_request")),
        "{body}"
    );
    let (status, body) = post_json(
        &start,
        learner,
        Some(serde_json::json!({"drill": "short-pause"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post_json(
        &start,
        operator,
        Some(serde_json::json!({"drill": "short-pause"})),
    )
    .await;
    assert_eq!(status, 202, "{body}\n{}", dev.log_text());
    assert_eq!(body["drill"], "short-pause");
    assert_eq!(body["plan"][0]["label"], "pause edge us-east");
    let (status, body) = post_json(
        &start,
        operator,
        Some(serde_json::json!({"drill": "short-pause"})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &Value::from("drill_running")),
        "{body}"
    );

    // Live: running with probe samples and the fault applied, then aborted.
    let live_url = format!("{api}/v1/chaos/live");
    eventually("the fault applied, seen live", DRILL_LIMIT, || {
        let url = live_url.clone();
        async move {
            let (_, live) = get_json(&url, Some(operator)).await?;
            (live["state"] == "running"
                && live["timeline"].as_array().is_some_and(|t| !t.is_empty())
                && live["probes"][0]["samples"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()))
            .then_some(())
        }
    })
    .await;
    let (status, body) = post_json(&format!("{api}/v1/chaos/live/abort"), operator, None).await;
    assert_eq!(status, 202, "{body}");
    let finished: Value = eventually("the aborted drill's report", DRILL_LIMIT, || {
        let url = live_url.clone();
        async move {
            let (_, live) = get_json(&url, Some(operator)).await?;
            (live["state"] == "finished").then_some(live)
        }
    })
    .await;
    assert_eq!(finished["hypothesis_held"], false, "aborted: {finished}");
    assert!(
        finished["aborted"]["reason"]
            .to_string()
            .contains("interrupted"),
        "{finished}"
    );
    let events: Vec<&str> = finished["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(events, ["applied", "healed_on_abort"], "{finished}");
    let (status, body) = post_json(&format!("{api}/v1/chaos/live/abort"), operator, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &Value::from("no_drill_running")),
        "{body}"
    );

    // The run is listed, its report served as JSON and HTML.
    let id = finished["report"].as_str().expect("report id").to_owned();
    let (_, runs) = get_json(&format!("{api}/v1/chaos/runs"), Some(operator))
        .await
        .expect("runs");
    assert_eq!(runs["runs"][0]["id"], id.as_str(), "{runs}");
    assert_eq!(runs["runs"][0]["aborted"], true, "{runs}");
    assert_eq!(runs["runs"][0]["lost"], 0, "{runs}");
    let (status, report) = get_json(&format!("{api}/v1/chaos/runs/{id}"), Some(operator))
        .await
        .expect("report");
    assert_eq!(status, 200);
    assert_eq!(report["drill"], "short-pause");
    let html = crate::support::client()
        .get(format!("{api}/v1/chaos/runs/{id}/html"))
        .bearer_auth(operator)
        .send()
        .await
        .expect("html");
    assert_eq!(html.status().as_u16(), 200);
    assert_eq!(
        html.headers()["content-type"].to_str().expect("type"),
        "text/html; charset=utf-8"
    );
    assert!(html.text().await.expect("text").contains("A short pause"));
    for bad in ["nope", "..%2Fcluster"] {
        let (status, body) = get_json(&format!("{api}/v1/chaos/runs/{bad}/html"), Some(operator))
            .await
            .expect("unknown report");
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &Value::from("unknown_run")),
            "{body}"
        );
    }

    // A status that claims a drill no runner holds the lock for: died.
    let live_path = cluster_path
        .parent()
        .expect("data dir")
        .join("chaos")
        .join("live.json");
    let mut stale = finished.clone();
    stale["state"] = Value::from("running");
    std::fs::write(&live_path, stale.to_string()).expect("write live.json");
    let (_, live) = get_json(&live_url, Some(operator)).await.expect("live");
    assert_eq!(live["state"], "died", "{live}");
    let (status, _) = post_json(&format!("{api}/v1/chaos/live/abort"), operator, None).await;
    assert_eq!(status, 409);
    drop(dev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_takes_a_postgresql_database_away_for_its_window() {
    let database_url = crate::control_plane_process::fresh_postgres().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (dev, cluster_path) = dev_cluster(
        dir.path(),
        &[("LYCEUM_CONTROL_PLANE__DATABASE_URL", database_url.as_str())],
    )
    .await;
    let cluster: Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster_path).expect("read")).expect("json");
    let supervisor = cluster["supervisor"]["url"].as_str().expect("supervisor");
    let key = cluster["supervisor"]["key"].as_str().expect("key");
    let cp = cluster["control_plane"]["url"]
        .as_str()
        .expect("cp")
        .to_owned();
    let sign_up = |n: u32| {
        let request = crate::support::client()
            .post(format!("{cp}/api/v1/auth/sign-up"))
            .json(&serde_json::json!({"email": format!("pg{n}@chaos.test"), "password": "a long enough password", "display_name": "Pg", "tenant": "dev"}))
            .send();
        async move { request.await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(sign_up(0).await, 201);

    let (status, body) = post_json(
        &format!("{supervisor}/v1/database/down"),
        key,
        Some(serde_json::json!({"for_ms": 4000})),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", dev.log_text());
    assert!(body["database_down_ms"].as_u64().is_some(), "{body}");
    let refused = sign_up(1).await;
    assert!(
        refused >= 500,
        "a sign-up while the database is away: {refused}"
    );
    // The supervisor gives it back at the window's end, on its own.
    let mut n = 2;
    eventually(
        "sign-ups stored again after the window",
        START_LIMIT,
        || {
            n += 1;
            let attempt = sign_up(n);
            async move { (attempt.await == 201).then_some(()) }
        },
    )
    .await;
    assert!(
        dev.log_text()
            .contains("PostgreSQL database refusing connections"),
        "{}",
        dev.log_text()
    );

    // Down for long: the control plane turns not ready; healed early with
    // `up`, ready again.
    let (status, _) = post_json(
        &format!("{supervisor}/v1/database/down"),
        key,
        Some(serde_json::json!({"for_ms": 600_000})),
    )
    .await;
    assert_eq!(status, 200);
    let readyz = format!("{cp}/readyz");
    let ready_is = |want: u16| {
        let url = readyz.clone();
        move || {
            let url = url.clone();
            async move {
                let (status, body) = get_json(&url, None).await?;
                (status == want).then_some(body)
            }
        }
    };
    let not_ready = eventually("the control plane not ready", START_LIMIT, ready_is(503)).await;
    assert!(not_ready.to_string().contains("database"), "{not_ready}");
    let (status, body) = post_json(&format!("{supervisor}/v1/database/up"), key, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("database_down_ms").is_none(), "{body}");
    eventually("the control plane ready again", START_LIMIT, ready_is(200)).await;
    eventually("sign-ups stored after up", START_LIMIT, || {
        n += 1;
        let attempt = sign_up(n);
        async move { (attempt.await == 201).then_some(()) }
    })
    .await;
    drop(dev);
    crate::control_plane_process::drop_postgres(&database_url).await;
}
