//! One sandbox container: created and started ahead of time with the agent
//! attached and waiting, then given exactly one job and destroyed. Everything
//! that locks it down is set here, in one place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, RemoveContainerOptions,
};
use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::abuse::{AbuseKind, AbuseRules, Detector};
use crate::cgroup::ContainerCgroup;
use crate::engine::{DockerEngine, SandboxError};
use crate::image::SANDBOX_UID;
use crate::job::{
    AgentLine, AgentReport, Job, OutputChunk, StepKind, StepReport, REPORT_BYTES_MAX,
};

/// Where the agent binary is mounted inside every container.
pub const AGENT_PATH: &str = "/opt/lyceum/agent";
/// How much of the agent's own stderr is kept for diagnostics.
const AGENT_STDERR_BYTES_MAX: usize = 64 * 1024;
/// Label that marks our containers with their owner (a node id), so a
/// restarted node can find and remove what its previous life left.
pub const LABEL: &str = "dev.lyceum.sandbox";

/// Limits of one container; the run's own limits sit inside these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLimits {
    /// Memory cap; swap is off (memory-swap equals memory).
    pub memory_mb: u32,
    /// CPU quota in thousandths of a CPU.
    pub cpu_millis: u32,
    /// Processes and threads at once.
    pub pids_max: u32,
    /// Open files per process.
    pub nofile_max: u32,
    /// Largest file a process may write.
    pub file_bytes_max: u64,
    /// Size of the `/work` tmpfs.
    pub work_bytes_max: u64,
    /// Inodes of the `/work` tmpfs.
    pub work_inodes_max: u32,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes_max: u64,
}

/// How to start the agent in a container.
#[derive(Debug, Clone)]
pub struct AgentCommand {
    /// Host path of the binary, bind-mounted read-only at [`AGENT_PATH`].
    pub host_path: PathBuf,
    /// Arguments after the binary (`["sandbox-agent"]` for `lyceum`).
    pub args: Vec<String>,
    /// Who owns the containers (the node id); the value of [`LABEL`].
    pub owner: String,
}

/// Where agent copies live on the host: a neutral directory, named for
/// nobody, so the bind mount's source says nothing about the host.
pub const AGENT_STAGE_DIR: &str = "/tmp/lyceum-sandbox-agent";

/// How long an unused agent copy is kept in [`AGENT_STAGE_DIR`].
const AGENT_STAGE_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Most agent copies kept in [`AGENT_STAGE_DIR`], the newest: each build of
/// the binary stages one (a hard link keeps the old build's file alive),
/// so a machine that builds often would otherwise fill its disk within the
/// week (about 200 MB a copy for a debug build).
const AGENT_STAGE_COPIES_MAX: usize = 8;

/// Links (or, across file systems, copies) the agent binary into
/// [`AGENT_STAGE_DIR`] under a name derived from its size and modification
/// time (a rebuilt binary gets a new entry), and returns that path. Entries
/// are made under a temporary name and renamed, so nodes starting together
/// never bind a half-written file; entries older than a week go.
///
/// # Errors
/// I/O errors reading the binary or writing the copy.
pub fn stage_agent(binary: &std::path::Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(binary)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = PathBuf::from(AGENT_STAGE_DIR);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let staged = dir.join(format!("agent-{}-{modified}", meta.len()));
    if staged.exists() {
        return Ok(staged);
    }
    let partial = dir.join(format!(
        ".agent-{}-{}.partial",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    if std::fs::hard_link(binary, &partial).is_err() {
        std::fs::copy(binary, &partial)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&partial, &staged)?;
    // Newest first; beyond the first AGENT_STAGE_COPIES_MAX, or older than
    // a week, a copy goes (never the one just staged).
    let mut copies: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("agent-"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    copies.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (rank, (modified, path)) in copies.iter().enumerate() {
        let old = modified.elapsed().is_ok_and(|age| age > AGENT_STAGE_KEEP);
        if (old || rank >= AGENT_STAGE_COPIES_MAX) && *path != staged {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(staged)
}

/// A started container whose agent waits for its job.
pub struct WarmContainer {
    /// Container id.
    pub id: String,
    output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for WarmContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmContainer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Creates, starts and attaches a container for `image`. This is the slow
/// part (hundreds of milliseconds) that the pool does ahead of time.
///
/// # Errors
/// [`SandboxError::Engine`] when Docker refuses.
pub async fn warm(
    engine: &DockerEngine,
    image: &str,
    agent: &AgentCommand,
    limits: &ContainerLimits,
    extra_memory_mb: u32,
) -> Result<WarmContainer, SandboxError> {
    let memory = i64::from(limits.memory_mb.saturating_add(extra_memory_mb)) * 1024 * 1024;
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/work".to_owned(),
        format!(
            "rw,exec,nosuid,nodev,size={},nr_inodes={},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
            limits.work_bytes_max, limits.work_inodes_max
        ),
    );
    tmpfs.insert(
        "/tmp".to_owned(),
        format!(
            "rw,exec,nosuid,nodev,size={},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
            limits.tmp_bytes_max
        ),
    );
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(value),
        hard: Some(value),
    };
    let host_config = HostConfig {
        binds: Some(vec![
            "/usr:/usr:ro".to_owned(),
            format!("{}:{AGENT_PATH}:ro", agent.host_path.display()),
        ]),
        network_mode: Some("none".to_owned()),
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec![
            "no-new-privileges".to_owned(),
            crate::seccomp::security_opt(),
        ]),
        tmpfs: Some(tmpfs),
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some(i64::from(limits.cpu_millis) * 1_000_000),
        pids_limit: Some(i64::from(limits.pids_max)),
        ulimits: Some(vec![
            ulimit("nofile", i64::from(limits.nofile_max)),
            ulimit(
                "fsize",
                i64::try_from(limits.file_bytes_max).unwrap_or(i64::MAX),
            ),
            ulimit("core", 0),
        ]),
        // No docker-init: the agent is pid 1, the init that reaps, and so
        // out of reach of its programs' signals (see `agent::reap_orphans`).
        init: Some(false),
        privileged: Some(false),
        ..Default::default()
    };
    let mut labels = HashMap::new();
    labels.insert(LABEL.to_owned(), agent.owner.clone());
    let mut cmd = vec![AGENT_PATH.to_owned()];
    cmd.extend(agent.args.iter().cloned());
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(cmd),
        user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
        working_dir: Some("/work".to_owned()),
        env: Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
            "HOME=/work".to_owned(),
            "TMPDIR=/tmp".to_owned(),
            "LANG=C.UTF-8".to_owned(),
        ]),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        network_disabled: Some(true),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    };
    let docker = engine.docker();
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await?;
    let id = created.id;
    // Attach before start, so no byte the agent writes is missed.
    let attached = docker
        .attach_container(
            &id,
            Some(AttachContainerOptions {
                stream: true,
                stdin: true,
                stdout: true,
                stderr: true,
                logs: false,
                detach_keys: None,
            }),
        )
        .await;
    let attached = match attached {
        Ok(attached) => attached,
        Err(err) => {
            destroy(engine, &id).await;
            return Err(err.into());
        }
    };
    if let Err(err) = docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
    {
        destroy(engine, &id).await;
        return Err(err.into());
    }
    Ok(WarmContainer {
        id,
        output: attached.output,
        input: attached.input,
    })
}

/// What a container did with its job.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The agent's report (made up by the host when the abuse monitor
    /// ended the run: one killed step).
    pub report: AgentReport,
    /// The kernel's OOM killer fired in the container's cgroup.
    pub oom_killed: bool,
    /// The most memory the container held at once (cgroup counter).
    pub memory_peak_bytes: Option<u64>,
    /// The abuse profile that ended the run, if one did.
    pub abuse: Option<AbuseKind>,
    /// What the agent wrote on stderr (its own diagnostics), capped.
    pub agent_stderr: String,
}

/// Where live output goes while a job runs. Bounded: when the receiver
/// falls behind, pieces are dropped and counted rather than slowing the
/// program down; the report still carries all output up to the caps.
#[derive(Debug, Clone)]
pub struct OutputSink {
    sender: tokio::sync::mpsc::Sender<OutputChunk>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl OutputSink {
    /// A sink holding at most `capacity` pieces, and its receiver.
    pub fn new(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<OutputChunk>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            Self {
                sender,
                dropped: std::sync::Arc::default(),
            },
            receiver,
        )
    }

    /// Pieces dropped because the receiver was full or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn offer(&self, chunk: OutputChunk) {
        if self.sender.try_send(chunk).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How the host watches a job: its overall limit, where live output goes,
/// and the abuse rules (none: no monitor).
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    /// The host-side limit on the whole job; past it the container is killed.
    pub limit: Duration,
    /// Where streamed output goes.
    pub sink: Option<&'a OutputSink>,
    /// The abuse monitor's thresholds.
    pub abuse: Option<AbuseRules>,
}

/// How an exchange with the agent ended.
enum Exchanged {
    Report(AgentReport, String),
    Abuse(AbuseKind, StepReport, String),
}

/// Hands `job` to the agent and waits for its report, within `watch`. The
/// caller destroys the container afterwards (off the hot path).
///
/// # Errors
/// [`SandboxError::HostTimeout`] when the agent does not answer in time,
/// [`SandboxError::Agent`] when it answers nonsense.
pub async fn run(
    engine: &DockerEngine,
    mut container: WarmContainer,
    job: &Job,
    watch: Watch<'_>,
) -> Result<Outcome, SandboxError> {
    let id = container.id.clone();
    let cgroup = ContainerCgroup::new(&id);
    let result = tokio::time::timeout(watch.limit, exchange(&mut container, job, watch)).await;
    // Read before a kill by the host, which takes the cgroup with it.
    let mut peak_before_kill = None;
    let (report, abuse, agent_stderr) = match result {
        Ok(Ok(Exchanged::Report(report, stderr))) => (report, None, stderr),
        Ok(Ok(Exchanged::Abuse(kind, step, stderr))) => {
            peak_before_kill = cgroup.memory_peak_bytes();
            // The host, not the program, ends it: kill everything now.
            let _ = engine
                .docker()
                .kill_container(&id, None::<KillContainerOptions>)
                .await;
            let report = AgentReport {
                runs: vec![step],
                ..AgentReport::default()
            };
            (report, Some(kind), stderr)
        }
        Ok(Err(SandboxError::Agent(why))) => {
            // The agent gone without a report in a box the OOM killer
            // struck: the kernel took the agent too, for the program's
            // memory. That is the program's memory limit, not our fault.
            if cgroup.oom_kills().is_some_and(|n| n > 0) || engine_oom_killed(engine, &id).await {
                let report = AgentReport {
                    runs: vec![StepReport {
                        signal: Some(9),
                        stderr: "the sandbox ran out of memory".into(),
                        ..StepReport::default()
                    }],
                    ..AgentReport::default()
                };
                return Ok(Outcome {
                    report,
                    oom_killed: true,
                    memory_peak_bytes: cgroup.memory_peak_bytes(),
                    abuse: None,
                    agent_stderr: why,
                });
            }
            return Err(SandboxError::Agent(why));
        }
        Ok(Err(err)) => return Err(err),
        Err(_) => {
            return Err(SandboxError::HostTimeout(
                u64::try_from(watch.limit.as_millis()).unwrap_or(u64::MAX),
            ))
        }
    };
    // The cgroup's OOM counter is final once the agent has reported (its
    // children have exited); reading it costs microseconds, where waiting
    // for the container to exit costs tens of ms.
    let oom_killed = match cgroup.oom_kills() {
        Some(count) => count > 0,
        None => engine_oom_killed(engine, &id).await,
    };
    drop(container);
    Ok(Outcome {
        report,
        oom_killed,
        memory_peak_bytes: cgroup.memory_peak_bytes().or(peak_before_kill),
        abuse,
        agent_stderr,
    })
}

async fn exchange(
    container: &mut WarmContainer,
    job: &Job,
    watch: Watch<'_>,
) -> Result<Exchanged, SandboxError> {
    let mut line =
        serde_json::to_vec(job).map_err(|err| SandboxError::Agent(format!("encode job: {err}")))?;
    line.push(b'\n');
    container
        .input
        .write_all(&line)
        .await
        .map_err(|err| SandboxError::Agent(format!("write job: {err}")))?;
    container
        .input
        .flush()
        .await
        .map_err(|err| SandboxError::Agent(format!("write job: {err}")))?;
    // The agent's stdout is a sequence of JSON lines: step markers and
    // output pieces, then the report. `pending` holds the unfinished line.
    let mut pending = Vec::new();
    let mut stderr = Vec::new();
    let bad = |why: String, stderr: &[u8]| {
        SandboxError::Agent(format!(
            "{why}; agent stderr: {}",
            String::from_utf8_lossy(stderr)
        ))
    };
    let cgroup = ContainerCgroup::new(&container.id);
    // The monitor watches run steps only (compilers are honest and busy).
    // The detector, when the run step began, and the CPU counter then.
    let mut monitor: Option<(Detector, tokio::time::Instant, Option<u64>)> = None;
    let sample = watch
        .abuse
        .map_or(Duration::from_secs(3600), |rules| rules.sample);
    let mut ticks = tokio::time::interval(sample);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            frame = container.output.next() => frame,
            _ = ticks.tick(), if monitor.is_some() => {
                if let Some((detector, started, cpu_at_start)) = monitor.as_mut() {
                    let at = started.elapsed();
                    let cpu_ns = cgroup.cpu_ns();
                    if let Some(kind) = detector.sample(at, cpu_ns, cgroup.pids()) {
                        // The run's CPU from the host's counter: the agent
                        // is killed before it can report its own.
                        let cpu_ms = match (cpu_ns, *cpu_at_start) {
                            (Some(now), Some(then)) => now.saturating_sub(then) as f64 / 1e6,
                            _ => 0.0,
                        };
                        tracing::warn!(container = container.id, abuse = kind.as_str(), "abuse monitor ends a run");
                        let step = StepReport {
                            signal: Some(9),
                            wall_ms: at.as_secs_f64() * 1000.0,
                            cpu_ms,
                            cpu_exceeded: kind == AbuseKind::CpuSaturation,
                            stderr: format!("ended by the abuse monitor ({})", kind.as_str()),
                            ..StepReport::default()
                        };
                        return Ok(Exchanged::Abuse(kind, step, String::from_utf8_lossy(&stderr).into_owned()));
                    }
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        match frame? {
            LogOutput::StdOut { message } => {
                pending.extend_from_slice(&message);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    match serde_json::from_slice::<AgentLine>(&line) {
                        Ok(AgentLine::Step { step, .. }) => {
                            monitor = match (step, watch.abuse) {
                                (StepKind::Run, Some(rules)) => {
                                    ticks.reset();
                                    Some((
                                        Detector::new(rules),
                                        tokio::time::Instant::now(),
                                        cgroup.cpu_ns(),
                                    ))
                                }
                                _ => None,
                            };
                        }
                        Ok(AgentLine::Output(chunk)) => {
                            if let Some(sink) = watch.sink {
                                sink.offer(chunk);
                            }
                        }
                        Ok(AgentLine::Report(report)) => {
                            return Ok(Exchanged::Report(
                                report,
                                String::from_utf8_lossy(&stderr).into_owned(),
                            ));
                        }
                        Err(err) => return Err(bad(format!("bad line ({err})"), &stderr)),
                    }
                }
                if pending.len() > REPORT_BYTES_MAX {
                    return Err(bad("line too long".into(), &stderr));
                }
            }
            LogOutput::StdErr { message } if stderr.len() < AGENT_STDERR_BYTES_MAX => {
                stderr.extend_from_slice(&message);
            }
            _ => {}
        }
    }
    Err(bad("the agent ended without a report".into(), &stderr))
}

/// Whether the engine recorded an OOM kill in the container (it keeps that
/// after the container exits, unlike the cgroup).
async fn engine_oom_killed(engine: &DockerEngine, id: &str) -> bool {
    engine
        .docker()
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|info| info.state)
        .and_then(|state| state.oom_killed)
        .unwrap_or(false)
}

/// Removes every container `owner` left behind (a crash, a kill -9).
pub async fn remove_leftovers(engine: &DockerEngine, owner: &str) {
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec![format!("{LABEL}={owner}")]);
    let listed = engine
        .docker()
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await;
    match listed {
        Ok(containers) => {
            for id in containers.into_iter().filter_map(|c| c.id) {
                destroy(engine, &id).await;
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot list leftover sandbox containers"),
    }
}

/// Kills and removes a container; errors are logged, not returned, because
/// there is nothing a caller could do.
pub async fn destroy(engine: &DockerEngine, id: &str) {
    let docker = engine.docker();
    let _ = docker
        .kill_container(id, None::<KillContainerOptions>)
        .await;
    if let Err(err) = docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await
    {
        tracing::warn!(container = id, error = %err, "cannot remove a sandbox container");
    }
}
