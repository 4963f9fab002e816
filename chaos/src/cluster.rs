//! What a drill is validated against: the regions of the cluster it will run
//! on and whether this machine may perform OS-level faults. A drill is
//! refused before anything starts when it names a region the cluster does
//! not have or needs root it will not get, so both are inputs here rather
//! than something the validator discovers, which keeps validation pure and
//! lets tests check both sides. A leaf: imports nothing from the crate.

use serde::Deserialize;

/// The name a fault uses for the control plane as one side of a network
/// fault (`from`/`to`). A cluster may not have a region of this name.
pub const CONTROL_PLANE: &str = "control-plane";

/// Largest `cluster.json` read, in bytes. The dev cluster's file is a few
/// kilobytes (addresses and dev tokens); anything larger is not one.
pub const CLUSTER_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Most regions a cluster may have; the dev cluster's own cap is lower.
pub const CLUSTER_REGIONS_MAX: usize = 64;

/// Why a cluster description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// `cluster.json` is not the JSON `lyceum dev` writes.
    #[error("cluster.json is not readable as the dev cluster's file: {0}")]
    BadFile(String),
    /// `cluster.json` is longer than [`CLUSTER_FILE_BYTES_MAX`].
    #[error("cluster.json is {0} bytes, more than {CLUSTER_FILE_BYTES_MAX}")]
    TooLarge(usize),
    /// No region at all, or more than [`CLUSTER_REGIONS_MAX`].
    #[error("a cluster has 1 to {CLUSTER_REGIONS_MAX} regions, got {0}")]
    RegionCount(usize),
    /// A region name that is empty, not `a-z0-9-`, or [`CONTROL_PLANE`].
    #[error("region {0:?} is not a usable region name")]
    BadRegion(String),
}

impl ClusterError {
    /// The stable string code of the error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BadFile(_) => "bad_cluster_file",
            Self::TooLarge(_) => "cluster_file_too_large",
            Self::RegionCount(_) => "bad_region_count",
            Self::BadRegion(_) => "bad_region",
        }
    }
}

/// Whether the drill runs with the rights OS-level faults need (network
/// namespaces with `tc netem`, stopping the database). An enum, not a
/// boolean, so call sites say what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// The runner is root: every fault kind is possible.
    Root,
    /// The runner is not root: OS-level faults are refused.
    Unprivileged,
}

/// The cluster a drill will run against, as far as validation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    regions: Vec<String>,
    privilege: Privilege,
}

/// The part of `cluster.json` (written by `lyceum dev`, a public contract in
/// `node::cluster_file`) that validation needs. Other fields are ignored, so
/// fields the file gains later do not break drills.
#[derive(Deserialize)]
struct ClusterFile {
    edges: Vec<EdgeEntry>,
}

#[derive(Deserialize)]
struct EdgeEntry {
    region: String,
}

impl Cluster {
    /// A cluster of the given regions, in order, duplicates removed.
    ///
    /// # Errors
    /// [`ClusterError`] when there is no region, too many, or a bad name.
    pub fn new(regions: &[&str], privilege: Privilege) -> Result<Self, ClusterError> {
        let mut kept: Vec<String> = Vec::new();
        for region in regions {
            // The rule of `gossip::names::Region`, restated: no crate but
            // `node` depends on another workspace crate (ARCHITECTURE.md).
            let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            let ok = !region.is_empty()
                && region.len() <= 64
                && region.chars().all(ok_char)
                && !region.starts_with('-')
                && !region.ends_with('-')
                && *region != CONTROL_PLANE;
            if !ok {
                return Err(ClusterError::BadRegion((*region).to_owned()));
            }
            if !kept.iter().any(|r| r == region) {
                kept.push((*region).to_owned());
            }
        }
        if kept.is_empty() || kept.len() > CLUSTER_REGIONS_MAX {
            return Err(ClusterError::RegionCount(kept.len()));
        }
        Ok(Self {
            regions: kept,
            privilege,
        })
    }

    /// The cluster described by the text of a `cluster.json`: the regions of
    /// its edges.
    ///
    /// # Errors
    /// [`ClusterError`] when the text is too large, not that file's shape,
    /// or its regions are unusable.
    pub fn from_cluster_json(text: &str, privilege: Privilege) -> Result<Self, ClusterError> {
        if text.len() > CLUSTER_FILE_BYTES_MAX {
            return Err(ClusterError::TooLarge(text.len()));
        }
        let file: ClusterFile =
            serde_json::from_str(text).map_err(|e| ClusterError::BadFile(e.to_string()))?;
        let regions: Vec<&str> = file.edges.iter().map(|e| e.region.as_str()).collect();
        Self::new(&regions, privilege)
    }

    /// The regions, in the cluster's order.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// Whether OS-level faults are possible.
    pub fn privilege(&self) -> Privilege {
        self.privilege
    }

    /// Whether the cluster has this region.
    pub fn has_region(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }
}
