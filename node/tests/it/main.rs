//! Integration tests of the `lyceum` binary: configuration layering and
//! errors, the local dev cluster (four real processes on loopback, a real
//! Docker engine behind the edges' readiness), edge identity across restarts,
//! HTTP limits, and the control plane on PostgreSQL.

mod actors_cluster;
mod chaos_cli;
mod chaos_run;
mod config;
mod control_plane_process;
mod dev_cluster;
mod edge_node;
mod five_nodes;
mod graded_submissions;
mod live_audio;
mod live_class;
mod live_failover;
mod module_graph;
mod netns_partition;
mod outbox;
mod partition;
mod run_cli;
mod support;
mod tidy;
mod warm_pools;
