//! The edge's HTTP handlers, one file per area: `runs`, `grading`,
//! `operator` and `cluster`. The WebSocket upgrade is in
//! `edge::live::session`.
//!
//! *Architecture Invariant*: routes never import each other. What two of
//! them share lives in leaf files of the edge (`state`, `extract`, `http`,
//! `runs`), and only `edge::router` lists the routes.

pub(crate) mod cluster;
pub(crate) mod grading;
pub(crate) mod operator;
pub(crate) mod runs;
