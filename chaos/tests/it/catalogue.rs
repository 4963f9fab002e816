//! The catalogue under `chaos/drills/`: every file loads and validates
//! against the dev cluster's three regions, and it holds the drills the
//! issue asks for.

use std::path::Path;

use chaos::catalogue;
use chaos::cluster::Privilege;
use chaos::error::DrillErrorCode;
use expect_test::expect;

use crate::{dev_cluster, DEV_REGIONS};

fn drills_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/drills"))
}

#[test]
fn the_dev_regions_here_are_the_dev_clusters() {
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../node/src/config.rs"
    ))
    .expect("node's config");
    let line = format!(
        "regions: vec![{}]",
        DEV_REGIONS
            .iter()
            .map(|r| format!("\"{r}\".into()"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(config.contains(&line), "node/src/config.rs has no {line}");
}

#[test]
fn every_catalogue_drill_validates_on_the_dev_cluster() {
    let entries = catalogue::list(drills_dir(), &dev_cluster(Privilege::Root)).expect("list");
    let mut out = String::new();
    for entry in &entries {
        let drill = entry
            .drill
            .as_ref()
            .unwrap_or_else(|e| panic!("{}:\n{e}", entry.path.display()));
        assert!(
            drill.hypothesis().len() > 80,
            "{} states a hypothesis",
            drill.name()
        );
        out.push_str(&format!(
            "{}{}: {}\n",
            drill.name(),
            if drill.needs_root() { " (root)" } else { "" },
            drill.title()
        ));
        for fault in drill.faults() {
            out.push_str(&format!(
                "  {}..{} s {}\n",
                fault.start_ms / 1000,
                fault.end_ms() / 1000,
                fault.label()
            ));
        }
    }
    expect![[r#"
        control-plane-killed: Control plane killed for 30 s while learners run and submit
          30..60 s kill -9 the control plane
        database-down (root): Database unavailable for 30 s
          30..60 s database unavailable
        edge-paused: A paused edge (10 s) that comes back
          30..40 s pause edge us-east
        home-edge-killed: Home edge of a live class killed mid-class
          30..50 s kill -9 the class's home edge
        learner-edge-killed: A learner's edge killed while she submits
          30..50 s kill -9 edge eu-west
        region-partitioned: A region partitioned away for 30 s
          30..60 s partition ap-south <-> eu-west+us-east+control-plane (fault API)
        sandbox-drained: A region's sandbox pools drained for 20 s
          20..40 s drain the sandbox pools of eu-west
        slow-link: 200 ms ± 50 ms latency and 5 % loss between two regions
          20..100 s degrade eu-west <-> ap-south by 200 ms ± 50 ms, 5 % loss (fault API)
    "#]]
    .assert_eq(&out);
}

#[test]
fn without_root_only_os_level_drills_are_refused() {
    let entries =
        catalogue::list(drills_dir(), &dev_cluster(Privilege::Unprivileged)).expect("list");
    let refused: Vec<(String, Vec<DrillErrorCode>)> = entries
        .iter()
        .filter_map(|e| {
            let name = e.path.file_stem()?.to_string_lossy().into_owned();
            e.drill.as_ref().err().map(|err| (name, err.codes()))
        })
        .collect();
    assert_eq!(
        refused,
        vec![("database-down".to_owned(), vec![DrillErrorCode::NeedsRoot])]
    );
}

#[test]
fn a_missing_catalogue_folder_is_an_error_not_an_empty_list() {
    let err = catalogue::list(
        Path::new("/nonexistent/drills"),
        &dev_cluster(Privilege::Root),
    )
    .expect_err("missing folder");
    assert_eq!(err.as_str(), "catalogue_unreadable");
}

#[test]
fn a_catalogue_holds_at_most_its_limit_of_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = dev_cluster(Privilege::Root);
    for i in 0..catalogue::CATALOGUE_FILES_MAX {
        std::fs::write(dir.path().join(format!("d{i:03}.toml")), "").expect("write");
    }
    std::fs::write(dir.path().join("notes.md"), "not a drill").expect("write");
    let entries = catalogue::list(dir.path(), &cluster).expect("at the limit");
    assert_eq!(entries.len(), catalogue::CATALOGUE_FILES_MAX);
    // An empty file is listed with its refusal, not hidden.
    let err = entries[0].drill.as_ref().expect_err("empty drill");
    assert_eq!(err.codes(), vec![DrillErrorCode::MissingKey]);
    std::fs::write(dir.path().join("one-more.toml"), "").expect("write");
    let err = catalogue::list(dir.path(), &cluster).expect_err("over the limit");
    assert_eq!(err.as_str(), "catalogue_too_many");
}

#[test]
fn the_listing_shows_every_drill_and_why_one_is_refused() {
    let entries =
        catalogue::list(drills_dir(), &dev_cluster(Privilege::Unprivileged)).expect("list");
    expect![[r#"
        control-plane-killed  [kill]  Control plane killed for 30 s while learners run and submit
        database-down  refused:
            line 29: fault 1: database unavailable is an OS-level fault and needs root; run the drill as root [needs_root]
        edge-paused  [pause]  A paused edge (10 s) that comes back
        home-edge-killed  [kill]  Home edge of a live class killed mid-class
        learner-edge-killed  [kill]  A learner's edge killed while she submits
        region-partitioned  [partition]  A region partitioned away for 30 s
        sandbox-drained  [sandbox-drain]  A region's sandbox pools drained for 20 s
        slow-link  [degrade]  200 ms ± 50 ms latency and 5 % loss between two regions
    "#]].assert_eq(&catalogue::listing(&entries));
}
