//! How a chaos command ends, and what it may do: the exit codes, this
//! process's privilege, the drill lock and reading `cluster.json`. A leaf
//! (it imports only `cluster_file`), shared by `lyceum chaos list|check`,
//! the runner and the supervisor's console.

use chaos::cluster::Privilege;

/// Exit code of a command whose drill (or one of the catalogue's) is
/// refused, or of a run while another drill runs; 1 stays for failures to
/// run at all, 2 for a bad command line.
pub const EXIT_REFUSED: u8 = 3;

/// Exit code of a drill that ran and whose hypothesis did not hold.
pub const EXIT_DID_NOT_HOLD: u8 = 4;

/// Whether this process may perform OS-level faults.
pub(crate) fn privilege() -> Privilege {
    if nix::unistd::geteuid().is_root() {
        Privilege::Root
    } else {
        Privilege::Unprivileged
    }
}

/// The drill lock of a data dir's `chaos` folder (`drill.lock`), held
/// while the returned file is open; `None` when another runner holds it.
/// The OS drops it when its holder dies, so a killed runner never leaves a
/// cluster locked.
///
/// # Errors
/// When the folder or the file cannot be made, or the lock call fails.
pub(crate) fn drill_lock(
    dir: &std::path::Path,
) -> anyhow::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("drill.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, err)) => Err(anyhow::anyhow!("lock {}: {err}", path.display())),
    }
}

/// The `cluster.json` at `path` (at most a cluster file's size), as the
/// runner reads it and as drills are validated against it.
///
/// # Errors
/// When it is missing, too large, or not the file `lyceum dev` writes.
pub(crate) fn read_cluster(
    path: &std::path::Path,
) -> anyhow::Result<(crate::cluster_file::ClusterFile, chaos::cluster::Cluster)> {
    use anyhow::Context as _;
    let len = std::fs::metadata(path)
        .with_context(|| format!("read {} (start `lyceum dev` first)", path.display()))?
        .len();
    if len > chaos::cluster::CLUSTER_FILE_BYTES_MAX as u64 {
        anyhow::bail!(
            "{} is {len} bytes, more than a cluster file ({})",
            path.display(),
            chaos::cluster::CLUSTER_FILE_BYTES_MAX
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let file = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the file `lyceum dev` writes", path.display()))?;
    let cluster = chaos::cluster::Cluster::from_cluster_json(&text, privilege())
        .map_err(|err| anyhow::anyhow!("{}: {err} ({})", path.display(), err.as_str()))?;
    Ok((file, cluster))
}
