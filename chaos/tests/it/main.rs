//! The chaos crate's one integration-test binary: drill files, the
//! catalogue, plans, the checker and reports, each through its public API.

mod catalogue;
mod checker;
mod drill;
mod plan;
mod probe;
mod report;

use chaos::cluster::{Cluster, Privilege};

/// The dev cluster's regions (`node::config`'s `dev.regions` default).
pub const DEV_REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// The dev cluster, with the given rights.
pub fn dev_cluster(privilege: Privilege) -> Cluster {
    Cluster::new(&DEV_REGIONS, privilege).expect("dev cluster")
}

/// A valid drill without faults; tests append `[[fault]]` and `[[abort]]`
/// tables or replace lines.
pub const BASE: &str = r#"title = "test drill"
hypothesis = "nothing acknowledged is lost"
duration_s = 60
settle_s = 10
recovery_bound_s = 10

[workload]
learners = 10
classes = 1
regions = ["eu-west", "us-east"]
runs_per_second = 2
ledger_transfers_per_second = 1

[probes]
interval_ms = 1000
run_latency_p99_ms = 800
class_delivery_ratio = 0.99
class_delivery_within_ms = 1000
readiness_ratio = 1.0
"#;
