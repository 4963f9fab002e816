//! `lyceum edge`: one regional edge node. It keeps its identity (node id and
//! a generation that every restart bumps) in `sled` under the data dir,
//! verifies access tokens locally with the control plane's published keys,
//! runs learners' code on the local Docker engine, hosts live classes and
//! reports runs and attendance to the control plane through its outboxes.
//!
//! Codemap, dependencies pointing down:
//! - `wiring`: starts everything and serves; imported by nothing but this
//!   file.
//! - `router`: the only list of routes.
//! - `routes/*`: the HTTP handlers (`runs`, `grading`, `operator`,
//!   `cluster`); they never import each other.
//! - `live/*`: the WebSocket gateway (`gateway`, `session`, `ticket`,
//!   `submit`).
//! - `extract` (`Caller`, `Operator`) and `http` (error answers): shared by
//!   the routes.
//! - `state` (`EdgeState`), `keys` (`KeyCache`), `runs` (the run service,
//!   no HTTP), `faults`, `identity`: leaves.
//!
//! This file only declares the modules and re-exports the entry point
//! (`run`): no child imports it, so it closes no import cycle.

mod extract;
mod faults;
mod http;
pub mod identity;
mod keys;
mod live;
mod pools;
mod router;
mod routes;
mod runs;
mod state;
mod wiring;

pub use wiring::run;
