//! The `lyceum` binary's library half: configuration, the HTTP scaffolding
//! every process shares (health, readiness, metrics, request ids, limits),
//! and the three ways to run (control plane, edge node, local dev cluster).
//! `main.rs` only parses the command line and calls in here, so integration
//! tests can reach the same code.

pub mod api_client;
pub mod chaos;
pub mod cli;
pub mod cluster_file;
pub mod config;
pub mod control_plane;
pub mod control_plane_link;
pub mod dev;
pub mod edge;
pub mod load;
pub mod metrics;
pub mod outbox;
pub mod parse_errors;
pub mod rate_limit;
pub mod readiness;
pub mod ready_file;
pub mod route;
pub mod run_cmd;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod tasks;
pub mod telemetry;
