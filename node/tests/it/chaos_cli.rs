//! `lyceum chaos list|check`: the catalogue and one drill, checked against
//! a cluster before anything starts; refusals name the line and the code.

use std::path::Path;

use crate::support::lyceum;

fn chaos(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let output = lyceum()
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--log-filter", "warn", "chaos"])
        .args(args)
        .output()
        .expect("run lyceum");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn catalogue() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../chaos/drills")
        .display()
        .to_string()
}

#[test]
fn the_catalogue_lists_and_each_drill_checks_against_the_dev_regions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let drills = catalogue();
    let (code, stdout, stderr) = chaos(&["list", "--drills", &drills], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for name in [
        "home-edge-killed",
        "learner-edge-killed",
        "region-partitioned",
        "slow-link",
        "control-plane-killed",
        "database-down",
        "edge-paused",
    ] {
        assert!(stdout.contains(&format!("{name}  [")), "{name}:\n{stdout}");
    }

    let drill = format!("{drills}/home-edge-killed.toml");
    let (code, stdout, stderr) = chaos(&["check", &drill], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("apply kill -9"), "{stdout}");
    assert!(stdout.contains("heal kill -9"), "{stdout}");
}

#[test]
fn a_bad_drill_or_an_unknown_region_is_refused_with_its_line_and_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "title = \"x\"\nbogus = 1\n").expect("write");
    let (code, _, stderr) = chaos(&["check", &bad.display().to_string()], dir.path());
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("[unknown_key]"), "{stderr}");

    // A cluster of one region: a drill partitioning two others cannot run.
    let cluster = dir.path().join("cluster.json");
    std::fs::write(
        &cluster,
        r#"{"control_plane": {"url": "http://127.0.0.1:1", "pid": 1, "state": "running"},
            "edges": [{"region": "eu-west", "node_id": "n", "url": "http://127.0.0.1:2", "pid": 2, "state": "running"}],
            "tokens": {}}"#,
    )
    .expect("write");
    let drill = format!("{}/region-partitioned.toml", catalogue());
    let (code, _, stderr) = chaos(
        &["check", &drill, "--cluster", &cluster.display().to_string()],
        dir.path(),
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("[unknown_region]"), "{stderr}");
}
