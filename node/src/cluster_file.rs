//! `cluster.json`: what `lyceum dev` runs and where, for people and scripts.
//! Its shape is a public contract (see README): fields may be added, never
//! renamed or removed.

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// The control plane.
    pub control_plane: ControlPlaneEntry,
    /// One entry per edge node.
    pub edges: Vec<EdgeEntry>,
    /// Tokens of the seeded dev accounts, by role.
    pub tokens: control_plane::seed::DevTokens,
    /// The supervisor's control API, with which chaos drills kill and pause
    /// processes; absent when `dev.chaos` is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<SupervisorEntry>,
}

/// Where the supervisor's control API serves (`node::dev::control`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorEntry {
    /// Base URL, on loopback.
    pub url: String,
    /// The bearer key every call needs.
    pub key: String,
}

/// Where the control plane runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneEntry {
    /// Base URL.
    pub url: String,
    /// OS process id.
    pub pid: u32,
    /// `running`, or `exited` once it died.
    pub state: String,
}

/// Where one edge node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEntry {
    /// Region it serves.
    pub region: String,
    /// Its node id.
    pub node_id: String,
    /// Base URL.
    pub url: String,
    /// OS process id.
    pub pid: u32,
    /// `running`, or `exited` once it died.
    pub state: String,
}
