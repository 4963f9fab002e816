//! The ready file: a supervised process writes one JSON object (its URL, pid
//! and identity) once it is serving, and `lyceum dev` waits for it. The file
//! appears atomically (write then rename), so a reader never sees half of it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a child reports once it is serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// `control-plane` or `edge`.
    pub role: String,
    /// Base URL the process serves HTTP on.
    pub url: String,
    /// OS process id.
    pub pid: u32,
    /// Region, for edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Node id, for edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Gossip (QUIC) address, for edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip_addr: Option<String>,
    /// Dev-account tokens, for a control plane started with `--seed-dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_tokens: Option<control_plane::seed::DevTokens>,
}

/// Writes `value` as JSON to `path` atomically, readable by the owner only.
///
/// # Errors
/// Fails on I/O errors.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a ready file, `None` while it does not exist yet.
///
/// # Errors
/// Fails on I/O errors other than absence, or on bad JSON.
pub fn read(path: &Path) -> std::io::Result<Option<ReadyInfo>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}
