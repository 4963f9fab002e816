//! Drill files: what is accepted, and every refusal with its line and code.

use chaos::cluster::{
    Cluster, ClusterError, Privilege, CLUSTER_FILE_BYTES_MAX, CLUSTER_REGIONS_MAX,
};
use chaos::drill::{
    Drill, ABORTS_MAX, CLASSES_MAX, DRILL_FILE_BYTES_MAX, FAULTS_MAX, HYPOTHESIS_BYTES_MAX,
    NAME_BYTES_MAX, TITLE_BYTES_MAX,
};
use chaos::error::DrillErrorCode;
use expect_test::{expect, Expect};

use crate::{dev_cluster, BASE};

/// Parses `BASE` with `extra` appended (after replacing `from` by `to` in
/// `BASE` when given) on the dev cluster as root, and compares what came
/// out: the faults in words when accepted, every refusal otherwise.
fn check(replace: Option<(&str, &str)>, extra: &str, expected: Expect) {
    check_on(&dev_cluster(Privilege::Root), replace, extra, expected);
}

fn check_on(cluster: &Cluster, replace: Option<(&str, &str)>, extra: &str, expected: Expect) {
    let mut text = BASE.to_owned();
    if let Some((from, to)) = replace {
        assert!(text.contains(from), "{from:?} is not in BASE");
        text = text.replacen(from, to, 1);
    }
    text.push_str(extra);
    let actual = match Drill::parse("test", &text, cluster) {
        Ok(drill) => {
            let mut out = String::from("ok\n");
            for fault in drill.faults() {
                out.push_str(&format!(
                    "fault {} line {} {}..{} ms: {}\n",
                    fault.id,
                    fault.line,
                    fault.start_ms,
                    fault.end_ms(),
                    fault.label()
                ));
            }
            out
        }
        Err(errors) => format!("{errors}\n"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn a_drill_without_faults_is_accepted() {
    check(
        None,
        "",
        expect![[r#"
        ok
    "#]],
    );
}

#[test]
fn every_fault_kind_is_accepted_and_described() {
    check(
        None,
        r#"
[[fault]]
kind = "kill"
target = "edge"
region = "eu-west"
start_s = 0
duration_s = 10

[[fault]]
kind = "pause"
target = "control-plane"
start_s = 5
duration_s = 10

[[fault]]
kind = "kill"
target = "class-home"
start_s = 10
duration_s = 10

[[fault]]
kind = "partition"
from = ["ap-south"]
to = ["eu-west", "control-plane"]
direction = "one-way"
start_s = 0
duration_s = 30

[[fault]]
kind = "degrade"
from = ["eu-west"]
to = ["us-east"]
latency_ms = 200
jitter_ms = 50
loss_percent = 5
via = "netns"
start_s = 0
duration_s = 60

[[fault]]
kind = "database-down"
start_s = 20
duration_s = 30

[[fault]]
kind = "sandbox-drain"
region = "us-east"
start_s = 40
duration_s = 20
"#,
        expect![[r#"
            ok
            fault 1 line 21 0..10000 ms: kill -9 edge eu-west
            fault 2 line 28 5000..15000 ms: pause the control plane
            fault 3 line 34 10000..20000 ms: kill -9 the class's home edge
            fault 4 line 40 0..30000 ms: partition ap-south -> eu-west+control-plane (fault API)
            fault 5 line 48 0..60000 ms: degrade eu-west <-> us-east by 200 ms ± 50 ms, 5 % loss (netns)
            fault 6 line 59 20000..50000 ms: database unavailable
            fault 7 line 64 40000..60000 ms: drain the sandbox pools of us-east
        "#]],
    );
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    check(
        Some(("settle_s = 10", "settle_s = 10\nsetle_s = 3")),
        "",
        expect![[r#"
            line 5: unknown field 'setle_s', expected one of 'title', 'hypothesis', 'duration_s', 'settle_s', 'recovery_bound_s', 'workload', 'probes', 'abort', 'fault' [unknown_key]
        "#]],
    );
    check(
        Some((
            "runs_per_second = 2",
            "runs_per_second = 2\nrun_per_second = 2",
        )),
        "",
        expect![[r#"
            line 12: unknown field 'run_per_second', expected one of 'learners', 'classes', 'regions', 'runs_per_second', 'submissions_per_second', 'ledger_transfers_per_second' [unknown_key]
        "#]],
    );
    // A key of another kind of fault is refused by name.
    check(
        None,
        r#"
[[fault]]
kind = "kill"
target = "control-plane"
latency_ms = 100
start_s = 0
duration_s = 10
"#,
        expect![[r#"
            line 24: fault 1: latency_ms is not a key of a kill fault [unknown_key]
        "#]],
    );
}

#[test]
fn missing_keys_and_bad_words_are_refused() {
    check(
        Some(("hypothesis = \"nothing acknowledged is lost\"\n", "")),
        "",
        expect![[r#"
            line 1: missing field 'hypothesis' [missing_key]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"kil\"\nstart_s = 0\nduration_s = 10\n",
        expect![[r#"
            line 22: unknown variant 'kil', expected one of 'kill', 'pause', 'partition', 'degrade', 'database-down', 'sandbox-drain' [bad_value]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"kill\"\nstart_s = 0\nduration_s = 10\n",
        expect![[r#"
            line 21: fault 1: a kill fault needs target [missing_key]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"kill\"\ntarget = \"edge\"\nstart_s = 0\nduration_s = 10\n",
        expect![[r#"
            line 21: fault 1: a kill fault needs region (with target = "edge") [missing_key]
        "#]],
    );
    check(
        Some(("learners = 10", "learners = \"ten\"")),
        "",
        expect![[r#"
            line 8: invalid type: string "ten", expected i64 [bad_value]
        "#]],
    );
}

#[test]
fn refusals_inside_tables_point_at_the_table_or_the_key() {
    check(
        Some(("learners = 10\n", "")),
        "",
        expect![[r#"
            line 7: missing field 'learners' [missing_key]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"kill\"\ntarget = \"edge\"\nregoin = \"eu-west\"\nstart_s = 0\nduration_s = 10\n",
        expect![[r#"
            line 24: unknown field 'regoin', expected one of 'kind', 'start_s', 'duration_s', 'target', 'region', 'from', 'to', 'direction', 'via', 'latency_ms', 'jitter_ms', 'loss_percent' [unknown_key]
        "#]],
    );
}

#[test]
fn broken_toml_is_a_syntax_error_with_its_line() {
    check(
        None,
        "\n[[fault]\nkind = \"kill\"\n",
        expect![[r#"
            line 21: invalid table header: expected '.', ']]' [syntax]
        "#]],
    );
}

#[test]
fn impossible_timings_are_refused() {
    // Zero and negative durations.
    check(
        None,
        "\n[[fault]]\nkind = \"database-down\"\nstart_s = 0\nduration_s = 0\n",
        expect![[r#"
            line 24: fault 1: duration_s must be 1 to 3600, got 0 [bad_timing]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"database-down\"\nstart_s = -5\nduration_s = 10\n",
        expect![[r#"
            line 23: fault 1: start_s must be 0 to 3600, got -5 [bad_timing]
        "#]],
    );
    check(
        Some(("duration_s = 60", "duration_s = -60")),
        "",
        expect![[r#"
            line 3: duration_s must be 1 to 3600, got -60 [bad_timing]
        "#]],
    );
    // A fault past the drill's end (60 s); ending exactly at it is fine.
    check(
        None,
        "\n[[fault]]\nkind = \"database-down\"\nstart_s = 50\nduration_s = 11\n",
        expect![[r#"
            line 24: fault 1 ends at 61 s, after the drill's end at 60 s (duration_s) [bad_timing]
        "#]],
    );
    check(
        None,
        "\n[[fault]]\nkind = \"database-down\"\nstart_s = 50\nduration_s = 10\n",
        expect![[r#"
            ok
            fault 1 line 21 50000..60000 ms: database unavailable
        "#]],
    );
    // A recovery bound the checker cannot observe: the fault heals at 60 s,
    // the checker runs at 70 s, the bound is 20 s.
    check(
        Some(("recovery_bound_s = 10", "recovery_bound_s = 20")),
        "\n[[fault]]\nkind = \"database-down\"\nstart_s = 50\nduration_s = 10\n",
        expect![[r#"
            line 5: recovery_bound_s 20 s cannot be observed: the last fault heals at 60 s and the checker runs at 70 s [bad_timing]
        "#]],
    );
}

#[test]
fn faults_that_cannot_overlap_are_refused() {
    // Two kills of the same edge overlapping by one second.
    check(
        None,
        r#"
[[fault]]
kind = "kill"
target = "edge"
region = "eu-west"
start_s = 0
duration_s = 11

[[fault]]
kind = "pause"
target = "edge"
region = "eu-west"
start_s = 10
duration_s = 10
"#,
        expect![[r#"
            line 28: fault 2 (pause) acts on edge eu-west while fault 1 (line 21) does, from 10 s to 11 s; one must end before the other starts [overlap]
        "#]],
    );
    // Back to back is fine: the first heals as the second applies.
    check(
        None,
        r#"
[[fault]]
kind = "kill"
target = "edge"
region = "eu-west"
start_s = 0
duration_s = 10

[[fault]]
kind = "kill"
target = "edge"
region = "eu-west"
start_s = 10
duration_s = 10
"#,
        expect![[r#"
            ok
            fault 1 line 21 0..10000 ms: kill -9 edge eu-west
            fault 2 line 28 10000..20000 ms: kill -9 edge eu-west
        "#]],
    );
    // The class's home may be any edge.
    check(
        None,
        r#"
[[fault]]
kind = "kill"
target = "class-home"
start_s = 0
duration_s = 20

[[fault]]
kind = "pause"
target = "edge"
region = "us-east"
start_s = 10
duration_s = 10
"#,
        expect![[r#"
            line 27: fault 2 (pause) acts on edge us-east while fault 1 (line 21) does, from 10 s to 20 s; one must end before the other starts [overlap]
        "#]],
    );
    // Opposite one-way partitions of one link may overlap (faults 1 and 2),
    // and so may faults on other links (3); a both-ways degrade of the same
    // link (4, `direction` defaults to both) clashes with each of them.
    check(
        None,
        r#"
[[fault]]
kind = "partition"
from = ["eu-west"]
to = ["us-east"]
direction = "one-way"
start_s = 0
duration_s = 20

[[fault]]
kind = "partition"
from = ["us-east"]
to = ["eu-west"]
direction = "one-way"
start_s = 0
duration_s = 20

[[fault]]
kind = "degrade"
from = ["ap-south"]
to = ["eu-west"]
latency_ms = 100
start_s = 0
duration_s = 20

[[fault]]
kind = "degrade"
from = ["us-east"]
to = ["eu-west"]
loss_percent = 1
start_s = 5
duration_s = 5
"#,
        expect![[r#"
            line 45: fault 4 (degrade) acts on traffic eu-west -> us-east while fault 1 (line 21) does, from 5 s to 10 s; one must end before the other starts [overlap]
            line 45: fault 4 (degrade) acts on traffic us-east -> eu-west while fault 2 (line 29) does, from 5 s to 10 s; one must end before the other starts [overlap]
        "#]],
    );
}

#[test]
fn regions_the_cluster_lacks_are_refused() {
    check(
        Some((
            "regions = [\"eu-west\", \"us-east\"]",
            "regions = [\"eu-west\", \"mars-1\"]",
        )),
        r#"
[[fault]]
kind = "partition"
from = ["eu-west"]
to = ["us-west"]
start_s = 0
duration_s = 10

[[fault]]
kind = "sandbox-drain"
region = "eu-north"
start_s = 0
duration_s = 10
"#,
        expect![[r#"
            line 10: workload.regions: the cluster has no region "mars-1"; it has eu-west, us-east, ap-south [unknown_region]
            line 24: fault 1: to: the cluster has no region "us-west"; it has eu-west, us-east, ap-south (and control-plane) [unknown_region]
            line 30: fault 2: region: the cluster has no region "eu-north"; it has eu-west, us-east, ap-south [unknown_region]
        "#]],
    );
}

#[test]
fn os_level_faults_need_root() {
    let faults = r#"
[[fault]]
kind = "degrade"
from = ["eu-west"]
to = ["us-east"]
latency_ms = 200
via = "netns"
start_s = 0
duration_s = 10

[[fault]]
kind = "database-down"
start_s = 0
duration_s = 10

[[fault]]
kind = "partition"
from = ["eu-west"]
to = ["ap-south"]
start_s = 0
duration_s = 10
"#;
    check_on(
        &dev_cluster(Privilege::Unprivileged),
        None,
        faults,
        expect![[r#"
            line 21: fault 1: degrade eu-west <-> us-east by 200 ms ± 0 ms, 0 % loss (netns) is an OS-level fault and needs root; run the drill as root, or use via = "fault-api" [needs_root]
            line 30: fault 2: database unavailable is an OS-level fault and needs root; run the drill as root [needs_root]
        "#]],
    );
    check_on(
        &dev_cluster(Privilege::Root),
        None,
        faults,
        expect![[r#"
            ok
            fault 1 line 21 0..10000 ms: degrade eu-west <-> us-east by 200 ms ± 0 ms, 0 % loss (netns)
            fault 2 line 30 0..10000 ms: database unavailable
            fault 3 line 35 0..10000 ms: partition eu-west <-> ap-south (fault API)
        "#]],
    );
}

#[test]
fn bad_values_are_refused_each_with_a_reason() {
    check(
        Some(("class_delivery_ratio = 0.99", "class_delivery_ratio = 1.5")),
        r#"
[[abort]]
probe = "run_latency_p99_ms"
above = 5000
below = 10

[[fault]]
kind = "degrade"
from = ["eu-west"]
to = ["eu-west", "us-east"]
start_s = 0
duration_s = 10

[[fault]]
kind = "degrade"
from = ["eu-west"]
to = ["us-east"]
latency_ms = 10
jitter_ms = 20
start_s = 0
duration_s = 10

[[fault]]
kind = "kill"
target = "class-home"
region = "eu-west"
start_s = 0
duration_s = 10
"#,
        expect![[r#"
            line 17: probes.class_delivery_ratio must be 0 to 1, got 1.5 [bad_value]
            line 21: abort run_latency_p99_ms: give exactly one of above and below [bad_value]
            line 29: fault 1: eu-west is on both sides (from and to) [bad_value]
            line 38: fault 2: jitter_ms (20) cannot exceed latency_ms (10) [bad_value]
            line 45: fault 3: region is only for target = "edge" [unknown_key]
        "#]],
    );
    check(
        Some(("classes = 1", "classes = 0")),
        "\n[[fault]]\nkind = \"pause\"\ntarget = \"class-home\"\nstart_s = 0\nduration_s = 10\n",
        expect![[r#"
            line 21: fault 1: target class-home needs a live class, but workload.classes is 0 [bad_value]
        "#]],
    );
}

#[test]
fn limits_are_enforced_at_their_edge() {
    let fault = |i: usize| {
        format!("\n[[fault]]\nkind = \"sandbox-drain\"\nregion = \"eu-west\"\nstart_s = {i}\nduration_s = 1\n")
    };
    let at_max: String = (0..FAULTS_MAX).map(fault).collect();
    let cluster = dev_cluster(Privilege::Root);
    let ok = Drill::parse("t", &format!("{BASE}{at_max}"), &cluster).expect("at the limit");
    assert_eq!(ok.faults().len(), FAULTS_MAX);
    let over = format!("{BASE}{at_max}{}", fault(FAULTS_MAX));
    let err = Drill::parse("t", &over, &cluster).expect_err("over the limit");
    assert_eq!(err.codes(), vec![DrillErrorCode::TooMany]);

    let padded = |len: usize| {
        let mut text = BASE.to_owned();
        text.push('#');
        while text.len() < len - 1 {
            text.push('x');
        }
        text.push('\n');
        text
    };
    assert!(Drill::parse("t", &padded(DRILL_FILE_BYTES_MAX), &cluster).is_ok());
    let err =
        Drill::parse("t", &padded(DRILL_FILE_BYTES_MAX + 1), &cluster).expect_err("too large");
    assert_eq!(err.codes(), vec![DrillErrorCode::TooLarge]);
}

#[test]
fn every_error_code_has_a_distinct_stable_string() {
    let codes: Vec<&str> = DrillErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    expect![[r#"
        ["unreadable", "too_large", "syntax", "unknown_key", "missing_key", "bad_value", "bad_timing", "overlap", "unknown_region", "needs_root", "too_many"]
    "#]]
    .assert_eq(&format!("{codes:?}\n"));
}

#[test]
fn the_cluster_comes_from_cluster_json() {
    // The shape `lyceum dev` writes (node::cluster_file), trimmed.
    let json = r#"{
      "control_plane": {"url": "http://127.0.0.1:7400", "pid": 10, "state": "running"},
      "edges": [
        {"region": "eu-west", "node_id": "a", "url": "http://127.0.0.1:7401", "pid": 11, "state": "running"},
        {"region": "us-east", "node_id": "b", "url": "http://127.0.0.1:7402", "pid": 12, "state": "running"},
        {"region": "ap-south", "node_id": "c", "url": "http://127.0.0.1:7403", "pid": 13, "state": "exited"}
      ],
      "tokens": {}
    }"#;
    let cluster = Cluster::from_cluster_json(json, Privilege::Unprivileged).expect("cluster");
    assert_eq!(cluster.regions(), ["eu-west", "us-east", "ap-south"]);
    assert_eq!(cluster.privilege(), Privilege::Unprivileged);

    let refused = |json: &str| {
        Cluster::from_cluster_json(json, Privilege::Root)
            .expect_err("refused")
            .as_str()
    };
    assert_eq!(refused("{}"), "bad_cluster_file");
    assert_eq!(refused(r#"{"edges": []}"#), "bad_region_count");
    assert_eq!(
        refused(r#"{"edges": [{"region": "control-plane"}]}"#),
        "bad_region"
    );
    assert_eq!(
        Cluster::new(&["Eu West"], Privilege::Root),
        Err(ClusterError::BadRegion("Eu West".to_owned()))
    );
}

/// The codes of what `BASE` with `from` replaced by `to` is refused for;
/// empty when it is accepted.
fn codes(from: &str, to: &str) -> Vec<DrillErrorCode> {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    let text = BASE.replacen(from, to, 1);
    match Drill::parse("t", &text, &dev_cluster(Privilege::Root)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.codes(),
    }
}

#[test]
fn numeric_limits_hold_at_their_edges() {
    use DrillErrorCode::{BadTiming, BadValue};
    let edges: &[(&str, &str, &str, DrillErrorCode)] = &[
        (
            "duration_s = 60",
            "duration_s = 3600",
            "duration_s = 3601",
            BadTiming,
        ),
        (
            "settle_s = 10",
            "settle_s = 600",
            "settle_s = 601",
            BadTiming,
        ),
        ("settle_s = 10", "settle_s = 1", "settle_s = 0", BadTiming),
        (
            "settle_s = 10\nrecovery_bound_s = 10",
            "settle_s = 600\nrecovery_bound_s = 600",
            "settle_s = 600\nrecovery_bound_s = 601",
            BadTiming,
        ),
        (
            "learners = 10",
            "learners = 10000",
            "learners = 10001",
            BadValue,
        ),
        ("classes = 1", "classes = 10", "classes = 11", BadValue),
        (
            "runs_per_second = 2",
            "runs_per_second = 1000",
            "runs_per_second = 1000.5",
            BadValue,
        ),
        (
            "runs_per_second = 2",
            "runs_per_second = 0",
            "runs_per_second = -0.5",
            BadValue,
        ),
        (
            "interval_ms = 1000",
            "interval_ms = 100",
            "interval_ms = 99",
            BadValue,
        ),
        (
            "interval_ms = 1000",
            "interval_ms = 60000",
            "interval_ms = 60001",
            BadValue,
        ),
        (
            "run_latency_p99_ms = 800",
            "run_latency_p99_ms = 60000",
            "run_latency_p99_ms = 60001",
            BadValue,
        ),
        (
            "class_delivery_within_ms = 1000",
            "class_delivery_within_ms = 60000",
            "class_delivery_within_ms = 60001",
            BadValue,
        ),
        (
            "readiness_ratio = 1.0",
            "readiness_ratio = 0.0",
            "readiness_ratio = nan",
            BadValue,
        ),
    ];
    for (from, at, over, code) in edges {
        assert_eq!(codes(from, at), vec![], "{at} is at the limit");
        assert_eq!(codes(from, over), vec![*code], "{over} is over it");
    }
    // classes may reach learners (10) but not 500 + 1 even with more learners.
    let many = BASE.replacen("learners = 10", "learners = 10000", 1);
    let cluster = dev_cluster(Privilege::Root);
    let at = many.replacen("classes = 1", &format!("classes = {CLASSES_MAX}"), 1);
    assert!(Drill::parse("t", &at, &cluster).is_ok());
    let over = many.replacen("classes = 1", &format!("classes = {}", CLASSES_MAX + 1), 1);
    assert_eq!(
        Drill::parse("t", &over, &cluster)
            .expect_err("over")
            .codes(),
        vec![BadValue]
    );
}

#[test]
fn text_limits_hold_at_their_edges() {
    let title = |n: usize| format!("title = \"{}\"", "t".repeat(n));
    assert_eq!(
        codes("title = \"test drill\"", &title(TITLE_BYTES_MAX)),
        vec![]
    );
    assert_eq!(
        codes("title = \"test drill\"", &title(TITLE_BYTES_MAX + 1)),
        vec![DrillErrorCode::BadValue]
    );
    assert_eq!(
        codes("title = \"test drill\"", "title = \"  \""),
        vec![DrillErrorCode::BadValue]
    );
    let hypothesis = |n: usize| format!("hypothesis = \"{}\"", "h".repeat(n));
    let from = "hypothesis = \"nothing acknowledged is lost\"";
    assert_eq!(codes(from, &hypothesis(HYPOTHESIS_BYTES_MAX)), vec![]);
    assert_eq!(
        codes(from, &hypothesis(HYPOTHESIS_BYTES_MAX + 1)),
        vec![DrillErrorCode::BadValue]
    );
    let cluster = dev_cluster(Privilege::Root);
    assert!(Drill::parse(&"n".repeat(NAME_BYTES_MAX), BASE, &cluster).is_ok());
    let err = Drill::parse(&"n".repeat(NAME_BYTES_MAX + 1), BASE, &cluster).expect_err("long name");
    assert_eq!(err.codes(), vec![DrillErrorCode::BadValue]);
}

#[test]
fn abort_entries_are_limited() {
    let abort = "\n[[abort]]\nprobe = \"readiness_ratio\"\nbelow = 0.5\n";
    let cluster = dev_cluster(Privilege::Root);
    let at = format!("{BASE}{}", abort.repeat(ABORTS_MAX));
    assert_eq!(
        Drill::parse("t", &at, &cluster).expect("at").aborts().len(),
        ABORTS_MAX
    );
    let over = format!("{BASE}{}", abort.repeat(ABORTS_MAX + 1));
    let err = Drill::parse("t", &over, &cluster).expect_err("over");
    assert_eq!(err.codes(), vec![DrillErrorCode::TooMany]);
    // The hard limit is checked against the probe's unit.
    let ratio = format!("{BASE}\n[[abort]]\nprobe = \"readiness_ratio\"\nbelow = 2\n");
    assert_eq!(
        Drill::parse("t", &ratio, &cluster)
            .expect_err("ratio")
            .codes(),
        vec![DrillErrorCode::BadValue]
    );
}

#[test]
fn files_are_read_up_to_the_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = dev_cluster(Privilege::Root);
    let path = dir.path().join("big-one.toml");
    let mut text = BASE.to_owned();
    text.push('#');
    text.push_str(&"x".repeat(DRILL_FILE_BYTES_MAX - text.len() - 1));
    text.push('\n');
    std::fs::write(&path, &text).expect("write");
    assert_eq!(
        Drill::load(&path, &cluster).expect("at the limit").name(),
        "big-one"
    );
    text.push('\n');
    std::fs::write(&path, &text).expect("write");
    let err = Drill::load(&path, &cluster).expect_err("over the limit");
    assert_eq!(err.codes(), vec![DrillErrorCode::TooLarge]);
    let err = Drill::load(&dir.path().join("absent.toml"), &cluster).expect_err("absent");
    assert_eq!(err.codes(), vec![DrillErrorCode::Unreadable]);
    std::fs::write(&path, [0xff, 0xfe]).expect("write");
    let err = Drill::load(&path, &cluster).expect_err("not utf-8");
    assert_eq!(err.codes(), vec![DrillErrorCode::Syntax]);
}

#[test]
fn cluster_limits_hold_at_their_edges() {
    let names: Vec<String> = (0..=CLUSTER_REGIONS_MAX).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert!(Cluster::new(&refs[..CLUSTER_REGIONS_MAX], Privilege::Root).is_ok());
    assert_eq!(
        Cluster::new(&refs, Privilege::Root),
        Err(ClusterError::RegionCount(CLUSTER_REGIONS_MAX + 1))
    );
    let padded = |len: usize| {
        let mut json = r#"{"edges": [{"region": "eu-west"}], "pad": ""#.to_owned();
        json.push_str(&"x".repeat(len - json.len() - 2));
        json.push_str("\"}");
        json
    };
    assert!(Cluster::from_cluster_json(&padded(CLUSTER_FILE_BYTES_MAX), Privilege::Root).is_ok());
    assert_eq!(
        Cluster::from_cluster_json(&padded(CLUSTER_FILE_BYTES_MAX + 1), Privilege::Root),
        Err(ClusterError::TooLarge(CLUSTER_FILE_BYTES_MAX + 1))
    );
}
