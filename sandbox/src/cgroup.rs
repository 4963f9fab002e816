//! Reading a container's cgroup from the host. These counters are the
//! kernel's, outside the box: nothing a program does inside can forge them,
//! which is why the OOM verdict, the memory peak and the abuse monitor read
//! them here rather than trusting the agent.
//!
//! Docker places a container's cgroup at `<controller>/docker/<id>` with the
//! cgroupfs driver on cgroup v1 (this project's engine setup), and at
//! `system.slice/docker-<id>.scope` or `docker/<id>` on cgroup v2; every
//! reader tries those in turn and answers `None` when none is there.

use std::path::PathBuf;

/// The cgroup files of one container.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    id: String,
}

impl ContainerCgroup {
    /// The cgroup of container `id` (the full id).
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned() }
    }

    /// Candidate paths of `file` for controller `v1` (cgroup v1) or the
    /// unified hierarchy, in the order they are tried.
    fn paths(&self, v1: &str, file_v1: &str, file_v2: &str) -> [PathBuf; 3] {
        let id = &self.id;
        [
            PathBuf::from(format!("/sys/fs/cgroup/{v1}/docker/{id}/{file_v1}")),
            PathBuf::from(format!(
                "/sys/fs/cgroup/system.slice/docker-{id}.scope/{file_v2}"
            )),
            PathBuf::from(format!("/sys/fs/cgroup/docker/{id}/{file_v2}")),
        ]
    }

    fn read(&self, v1: &str, file_v1: &str, file_v2: &str) -> Option<(usize, String)> {
        self.paths(v1, file_v1, file_v2)
            .iter()
            .enumerate()
            .find_map(|(i, path)| std::fs::read_to_string(path).ok().map(|text| (i, text)))
    }

    /// CPU time used by every process of the container, in nanoseconds.
    pub fn cpu_ns(&self) -> Option<u64> {
        let (which, text) = self.read("cpuacct", "cpuacct.usage", "cpu.stat")?;
        if which == 0 {
            return text.trim().parse().ok();
        }
        keyed(&text, "usage_usec").map(|usec| usec.saturating_mul(1_000))
    }

    /// Processes and threads alive in the container, and its limit
    /// (`None` for the limit when it is `max`).
    pub fn pids(&self) -> Option<(u64, Option<u64>)> {
        let (_, current) = self.read("pids", "pids.current", "pids.current")?;
        let current = current.trim().parse().ok()?;
        let max = self
            .read("pids", "pids.max", "pids.max")
            .and_then(|(_, text)| text.trim().parse().ok());
        Some((current, max))
    }

    /// The most memory the container has held at once, in bytes (cgroup v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak` on kernels that have it).
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        let (_, text) = self.read("memory", "memory.max_usage_in_bytes", "memory.peak")?;
        text.trim().parse().ok()
    }

    /// How many processes the kernel's OOM killer took in the container.
    pub fn oom_kills(&self) -> Option<u64> {
        let (_, text) = self.read("memory", "memory.oom_control", "memory.events")?;
        keyed(&text, "oom_kill")
    }
}

/// The value of `key` in a `key value` per line file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::keyed;

    #[test]
    fn keyed_files_are_read_by_exact_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(text, "oom_kill"), Some(2));
        assert_eq!(keyed(text, "under_oom"), Some(0));
        assert_eq!(keyed(text, "missing"), None);
        assert_eq!(
            keyed("usage_usec 1500\nuser_usec 10\n", "usage_usec"),
            Some(1500)
        );
    }
}
