//! Chaos drills that operators run against the fleet: kill the home of a
//! live class, cut a region off, slow a link, take the database away, and
//! show with numbers that nothing acknowledged was lost.
//!
//! This crate holds the parts that need no running cluster, each pure and
//! tested on its own: `drill` parses and validates drill files (`file` is
//! their raw TOML shape, `error` the refusals, `cluster` what a drill is
//! validated against); `catalogue` lists the drills under `chaos/drills/`;
//! `plan` turns a drill into the ordered actions a runner executes, with a
//! heal for every fault, also on abort; `probe` turns observations into
//! probe samples; `checker` decides from what the workload was told and
//! what the platform holds afterwards whether anything acknowledged was
//! lost or doubled; `report` is the record of one run, as JSON and as a
//! self-contained HTML page; `live` is the status of a drill in progress
//! that the runner rewrites and the operator console reads. See `docs/design/chaos.md`.

pub mod catalogue;
pub mod checker;
pub mod cluster;
pub mod drill;
pub mod error;
mod file;
pub mod live;
pub mod plan;
pub mod probe;
pub mod report;
