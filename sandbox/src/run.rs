//! A run from request to verdict, in four timed stages: validate (size,
//! language, names, limits), schedule (take a warm container), execute (the
//! agent compiles and runs each case), capture (compare outputs on the
//! host, decide the verdict). The HTTP layer adds authentication and rate
//! limits in front.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};

use crate::abuse::{AbuseKind, AbuseRules};
use crate::compare::{self, Compare, FLOAT_TOLERANCE_DEFAULT};
use crate::container::{self, AgentCommand, ContainerLimits, OutputSink, Watch};
use crate::engine::{DockerEngine, Refusal, SandboxError};
use crate::job::{Job, JobFile, StepReport};
use crate::languages::{self, Language, LANGUAGES};
use crate::pool::Pools;

/// Settings of the sandbox (the `[sandbox]` table of the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Languages to offer (ids); empty means every one installed on the host.
    pub languages: Vec<String>,
    /// Warm containers kept per language.
    pub pool_target: u32,
    /// Wall-clock limit of a run when the request names none.
    pub wall_ms_default: u64,
    /// Largest wall-clock limit a request may ask for.
    pub wall_ms_max: u64,
    /// CPU-time limit of a run, as a share of its wall-clock limit (percent).
    pub cpu_percent_of_wall: u32,
    /// Memory of a container (the JVM and others get their headroom on top).
    pub memory_mb: u32,
    /// CPU quota per container, in thousandths of a CPU.
    pub cpu_millis: u32,
    /// Processes and threads per container.
    pub pids_max: u32,
    /// Open files per process.
    pub nofile_max: u32,
    /// Largest file a program may write.
    pub file_bytes_max: u64,
    /// Size of the `/work` tmpfs.
    pub work_bytes_max: u64,
    /// Inodes of the `/work` tmpfs.
    pub work_inodes_max: u32,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes_max: u64,
    /// Cap on each of stdout and stderr kept per step.
    pub output_bytes_max: u64,
    /// Files per submission.
    pub files_max: u32,
    /// Total bytes of a submission's files and inputs.
    pub source_bytes_max: u64,
    /// Test cases per run.
    pub tests_max: u32,
    /// Host-side slack on top of all limits before the container is killed.
    pub host_slack_ms: u64,
    /// Whether the abuse monitor watches runs.
    pub abuse_monitor: bool,
    /// How often the abuse monitor reads a running container's counters.
    pub abuse_sample_ms: u64,
    /// CPU use, in percent of the container's quota, that counts as saturated.
    pub abuse_cpu_percent: u32,
    /// How long a run may saturate its CPU quota before it counts as abuse.
    pub abuse_cpu_sustained_ms: u64,
    /// How long a run may sit at its pids limit before it counts as a fork bomb.
    pub abuse_pids_sustained_ms: u64,
    /// Output pieces buffered for a streaming client before pieces are
    /// dropped (the final result still carries all output).
    pub stream_chunks_max: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            languages: Vec::new(),
            pool_target: 1,
            wall_ms_default: 2_000,
            wall_ms_max: 10_000,
            cpu_percent_of_wall: 100,
            memory_mb: 256,
            cpu_millis: 1_000,
            pids_max: 64,
            nofile_max: 256,
            file_bytes_max: 16 * 1024 * 1024,
            work_bytes_max: 32 * 1024 * 1024,
            work_inodes_max: 4_096,
            tmp_bytes_max: 32 * 1024 * 1024,
            output_bytes_max: 64 * 1024,
            files_max: 16,
            source_bytes_max: 512 * 1024,
            tests_max: 32,
            host_slack_ms: 5_000,
            abuse_monitor: true,
            abuse_sample_ms: 100,
            abuse_cpu_percent: 60,
            abuse_cpu_sustained_ms: 3_000,
            abuse_pids_sustained_ms: 500,
            stream_chunks_max: 1_024,
        }
    }
}

impl SandboxConfig {
    /// Checks ranges; returns the offending key and why.
    ///
    /// # Errors
    /// `(key, reason)` for the first bad setting.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_one: [(&'static str, u64); 18] = [
            ("abuse_sample_ms", self.abuse_sample_ms),
            ("abuse_cpu_percent", u64::from(self.abuse_cpu_percent)),
            ("abuse_cpu_sustained_ms", self.abuse_cpu_sustained_ms),
            ("abuse_pids_sustained_ms", self.abuse_pids_sustained_ms),
            ("stream_chunks_max", u64::from(self.stream_chunks_max)),
            ("wall_ms_default", self.wall_ms_default),
            ("wall_ms_max", self.wall_ms_max),
            ("cpu_percent_of_wall", u64::from(self.cpu_percent_of_wall)),
            ("memory_mb", u64::from(self.memory_mb)),
            ("cpu_millis", u64::from(self.cpu_millis)),
            ("pids_max", u64::from(self.pids_max)),
            ("nofile_max", u64::from(self.nofile_max)),
            ("file_bytes_max", self.file_bytes_max),
            ("work_bytes_max", self.work_bytes_max),
            ("work_inodes_max", u64::from(self.work_inodes_max)),
            ("output_bytes_max", self.output_bytes_max),
            ("files_max", u64::from(self.files_max)),
            ("source_bytes_max", self.source_bytes_max),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.wall_ms_default > self.wall_ms_max {
            return Err((
                "wall_ms_default",
                "must not exceed sandbox.wall_ms_max".into(),
            ));
        }
        if self.abuse_cpu_percent > 100 {
            return Err((
                "abuse_cpu_percent",
                "must be at most 100 (a share of the quota)".into(),
            ));
        }
        if self.memory_mb < 16 {
            return Err(("memory_mb", "must be at least 16".into()));
        }
        // tmpfs pages count against the container's memory: leave room to run.
        let tmpfs_mb = (self.work_bytes_max + self.tmp_bytes_max) / (1024 * 1024);
        if tmpfs_mb >= u64::from(self.memory_mb) {
            return Err((
                "work_bytes_max",
                "work_bytes_max plus tmp_bytes_max must stay below memory_mb (tmpfs counts as memory)".into(),
            ));
        }
        if let Some(unknown) = self
            .languages
            .iter()
            .find(|id| languages::find(id).is_none())
        {
            return Err(("languages", format!("unknown language {unknown:?}")));
        }
        if self.pool_target > crate::pool::POOL_TARGET_MAX {
            return Err((
                "pool_target",
                format!("must be at most {}", crate::pool::POOL_TARGET_MAX),
            ));
        }
        Ok(())
    }

    /// The abuse monitor's rules, or `None` when it is off.
    pub fn abuse_rules(&self) -> Option<AbuseRules> {
        self.abuse_monitor.then(|| AbuseRules {
            sample: Duration::from_millis(self.abuse_sample_ms),
            cpu_share: f64::from(self.abuse_cpu_percent) / 100.0,
            cpu_sustained: Duration::from_millis(self.abuse_cpu_sustained_ms),
            pids_sustained: Duration::from_millis(self.abuse_pids_sustained_ms),
            quota_cpus: f64::from(self.cpu_millis) / 1000.0,
        })
    }

    fn container_limits(&self) -> ContainerLimits {
        ContainerLimits {
            memory_mb: self.memory_mb,
            cpu_millis: self.cpu_millis,
            pids_max: self.pids_max,
            nofile_max: self.nofile_max,
            file_bytes_max: self.file_bytes_max,
            work_bytes_max: self.work_bytes_max,
            work_inodes_max: self.work_inodes_max,
            tmp_bytes_max: self.tmp_bytes_max,
        }
    }
}

/// A file of a submission; the first is the entry point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// File name.
    pub name: String,
    /// Contents.
    pub content: String,
}

/// Longest file name a run may use, in bytes (the usual file system limit).
pub const FILE_NAME_BYTES_MAX: usize = 255;

/// Whether `name` names a file in the work directory itself: not empty,
/// at most [`FILE_NAME_BYTES_MAX`] bytes, no separator or NUL, not hidden
/// (which also rules out `.` and `..`).
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= FILE_NAME_BYTES_MAX
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Name shown in results.
    pub name: String,
    /// Standard input.
    #[serde(default)]
    pub stdin: String,
    /// What standard output must be.
    pub expected_stdout: String,
    /// How to compare.
    #[serde(default)]
    pub compare: Compare,
    /// Tolerance for `float` comparison.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

/// Limits a request may ask for, capped by the server's maxima.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLimits {
    /// Wall-clock limit per run.
    pub wall_ms: Option<u64>,
    /// Memory limit (at most the container's).
    pub memory_mb: Option<u32>,
}

/// `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Language id.
    pub language: String,
    /// Files; the first is the entry point.
    pub files: Vec<SourceFile>,
    /// Standard input, when there are no tests.
    #[serde(default)]
    pub stdin: String,
    /// Test cases; when given, each runs once.
    #[serde(default)]
    pub tests: Vec<TestCase>,
    /// Requested limits.
    #[serde(default)]
    pub limits: RequestLimits,
}

/// The verdict of a run or a test, exact and distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Ran and (if tested) matched.
    Accepted,
    /// Ran but the output did not match.
    WrongAnswer,
    /// Did not compile.
    CompilationError,
    /// Exited with a non-zero code or a signal.
    RuntimeError,
    /// Hit the wall-clock or CPU-time limit (see `limit`).
    TimeLimitExceeded,
    /// Killed by the out-of-memory killer of its cgroup.
    MemoryLimitExceeded,
    /// Wrote more than the output cap.
    OutputLimitExceeded,
    /// Killed by the seccomp profile for a system call no honest program
    /// makes (ptrace, mount, unshare, bpf...): it died by `SIGSYS`.
    DisallowedSyscall,
    /// Failed validation; never reached a container.
    Rejected,
    /// Our fault; logged.
    InternalError,
}

impl Verdict {
    /// The verdict's wire name, as in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::WrongAnswer => "wrong_answer",
            Self::CompilationError => "compilation_error",
            Self::RuntimeError => "runtime_error",
            Self::TimeLimitExceeded => "time_limit_exceeded",
            Self::MemoryLimitExceeded => "memory_limit_exceeded",
            Self::OutputLimitExceeded => "output_limit_exceeded",
            Self::DisallowedSyscall => "disallowed_syscall",
            Self::Rejected => "rejected",
            Self::InternalError => "internal_error",
        }
    }
}

/// Result of one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Test name.
    pub name: String,
    /// Verdict.
    pub status: Verdict,
    /// What the program printed.
    pub stdout: String,
    /// Wall-clock time.
    pub time_ms: f64,
}

/// Time spent in each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Checking the request.
    pub validate: f64,
    /// Getting a container.
    pub schedule: f64,
    /// Compiling and running.
    pub execute: f64,
    /// Comparing and deciding.
    pub capture: f64,
}

/// The answer to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Run id.
    pub id: String,
    /// Overall verdict.
    pub status: Verdict,
    /// For `time_limit_exceeded`: `wall` or `cpu`.
    pub limit: Option<String>,
    /// Exit code of the (first failing, else first) run.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Compiler output.
    pub compile_output: String,
    /// Its wall-clock time.
    pub time_ms: f64,
    /// Its CPU time.
    pub cpu_ms: f64,
    /// The most memory the container held at once, in KiB (the kernel's
    /// cgroup counter; it includes the agent's few MiB).
    pub memory_kb: Option<u64>,
    /// The abuse profile that ended the run, if the monitor ended it.
    pub abuse: Option<AbuseKind>,
    /// Whether the container came warm from the pool.
    pub hot: bool,
    /// Per test, when tests were given.
    pub tests: Vec<TestResult>,
    /// Stage timings.
    pub stages_ms: StageTimes,
}

/// Histograms and counters of the run pipeline.
#[derive(Clone)]
struct RunMetrics {
    stages: HistogramVec,
    /// The four stages together: how long a run took, for the operator's
    /// run-latency chart (stage histograms cannot be summed per run).
    total: HistogramVec,
    runs: IntCounterVec,
    abuse: IntCounterVec,
}

impl RunMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![
            0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0, 30.0,
        ];
        let metrics = Self {
            stages: HistogramVec::new(
                HistogramOpts::new(
                    "sandbox_stage_seconds",
                    "Time in each stage of a run (validate, schedule, execute, capture), per language",
                )
                .buckets(buckets.clone()),
                &["stage", "language"],
            )?,
            total: HistogramVec::new(
                HistogramOpts::new(
                    "sandbox_run_seconds",
                    "Time of a whole run (its four stages together), per language",
                )
                .buckets(buckets),
                &["language"],
            )?,
            runs: IntCounterVec::new(
                Opts::new("sandbox_runs_total", "Runs by language and verdict"),
                &["language", "status"],
            )?,
            abuse: IntCounterVec::new(
                Opts::new(
                    "sandbox_abuse_total",
                    "Runs the abuse monitor ended, by profile and language",
                ),
                &["kind", "language"],
            )?,
        };
        registry.register(Box::new(metrics.stages.clone()))?;
        registry.register(Box::new(metrics.total.clone()))?;
        registry.register(Box::new(metrics.runs.clone()))?;
        registry.register(Box::new(metrics.abuse.clone()))?;
        Ok(metrics)
    }

    fn observe(&self, language: &str, result: &RunResult) {
        let stages = &result.stages_ms;
        for (stage, value) in [
            ("validate", stages.validate),
            ("schedule", stages.schedule),
            ("execute", stages.execute),
            ("capture", stages.capture),
        ] {
            self.stages
                .with_label_values(&[stage, language])
                .observe(value / 1000.0);
        }
        self.total.with_label_values(&[language]).observe(
            (stages.validate + stages.schedule + stages.execute + stages.capture) / 1000.0,
        );
        self.runs
            .with_label_values(&[language, result.status.as_str()])
            .inc();
        if let Some(kind) = result.abuse {
            self.abuse
                .with_label_values(&[kind.as_str(), language])
                .inc();
        }
    }
}

/// The sandbox of one edge node.
#[derive(Clone)]
pub struct Sandbox {
    metrics: RunMetrics,
    engine: DockerEngine,
    config: SandboxConfig,
    pools: Pools,
    languages: Vec<(&'static Language, String)>,
    teardown: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// A language as `GET /api/v1/languages` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanguageInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version reported by the runtime.
    pub version: String,
    /// Entry file name.
    pub file_name: String,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn host_version(lang: &Language) -> Option<String> {
    let (program, args) = lang.version.split_first()?;
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
}

impl Sandbox {
    /// Connects to the engine, builds the image and starts the warm pools for
    /// every language whose runtime is installed on this host.
    ///
    /// # Errors
    /// Fails when the engine is unreachable or the image cannot be built.
    pub async fn start(
        mut engine: DockerEngine,
        config: SandboxConfig,
        agent: AgentCommand,
        registry: &Registry,
    ) -> Result<Self, SandboxError> {
        config.validate().map_err(|(key, why)| {
            SandboxError::rejected(Refusal::BadRequest, format!("sandbox.{key}: {why}"))
        })?;
        engine.negotiate().await?;
        container::remove_leftovers(&engine, &agent.owner).await;
        // Bind the agent from a neutral copy, so a program reading
        // /proc/self/mountinfo learns no path of the host's (a home dir).
        let mut agent = agent;
        let original = agent.host_path.clone();
        agent.host_path = tokio::task::spawn_blocking(move || container::stage_agent(&original))
            .await
            .map_err(|err| SandboxError::Image(format!("agent copy task: {err}")))?
            .map_err(|err| SandboxError::Image(format!("copy the agent binary: {err}")))?;
        let image = crate::image::ensure_image(&engine).await?;
        let wanted = config.languages.clone();
        let languages: Vec<(&'static Language, String)> = tokio::task::spawn_blocking(move || {
            LANGUAGES
                .iter()
                .filter(|lang| wanted.is_empty() || wanted.iter().any(|id| id == lang.id))
                .filter_map(|lang| host_version(lang).map(|version| (lang, version)))
                .collect()
        })
        .await
        .map_err(|err| SandboxError::Image(err.to_string()))?;
        for lang in LANGUAGES {
            let wanted =
                config.languages.is_empty() || config.languages.iter().any(|id| id == lang.id);
            if wanted && !languages.iter().any(|(l, _)| l.id == lang.id) {
                tracing::warn!(
                    language = lang.id,
                    "runtime not installed on this host; language disabled"
                );
            }
        }
        let ids: Vec<&'static Language> = languages.iter().map(|(l, _)| *l).collect();
        let metrics = RunMetrics::register(registry)
            .map_err(|err| SandboxError::Image(format!("metrics: {err}")))?;
        let pools = Pools::start(
            engine.clone(),
            image,
            agent,
            config.container_limits(),
            &ids,
            config.pool_target,
            registry,
        )
        .map_err(|err| SandboxError::Image(format!("metrics: {err}")))?;
        Ok(Self {
            metrics,
            engine,
            config,
            pools,
            languages,
            teardown: std::sync::Arc::default(),
        })
    }

    /// The languages this node runs, with their versions.
    pub fn languages(&self) -> Vec<LanguageInfo> {
        self.languages
            .iter()
            .map(|(lang, version)| LanguageInfo {
                id: lang.id.to_owned(),
                name: lang.name.to_owned(),
                version: version.clone(),
                file_name: lang.file_name.to_owned(),
            })
            .collect()
    }

    /// The warm pools, to change targets and read sizes.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// Destroys a used container in the background; [`Sandbox::shutdown`]
    /// waits for every such removal.
    fn destroy_later(&self, id: String) {
        let engine = self.engine.clone();
        let mut tasks = self
            .teardown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reap finished removals so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { container::destroy(&engine, &id).await });
    }

    /// Destroys every warm container and waits for pending removals.
    pub async fn shutdown(&self) {
        self.pools.shutdown().await;
        let mut tasks = std::mem::take(
            &mut *self
                .teardown
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        while tasks.join_next().await.is_some() {}
    }

    /// Checks a request without running it.
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] saying what is wrong.
    pub fn validate(&self, request: &RunRequest) -> Result<(&'static Language, u64), SandboxError> {
        let reject = |refusal: Refusal, why: String| Err(SandboxError::rejected(refusal, why));
        let Some(lang) = languages::find(&request.language) else {
            return reject(
                Refusal::UnknownLanguage,
                format!("unknown language {:?}", request.language),
            );
        };
        if !self.languages.iter().any(|(l, _)| l.id == lang.id) {
            return reject(
                Refusal::UnknownLanguage,
                format!("language {} is not installed on this node", lang.id),
            );
        }
        let config = &self.config;
        if request.files.is_empty() {
            return reject(
                Refusal::BadRequest,
                "files must hold at least the entry file".into(),
            );
        }
        if request.files.len() > usize::try_from(config.files_max).unwrap_or(usize::MAX) {
            return reject(
                Refusal::BadRequest,
                format!("at most {} files (sandbox.files_max)", config.files_max),
            );
        }
        if request.tests.len() > usize::try_from(config.tests_max).unwrap_or(usize::MAX) {
            return reject(
                Refusal::BadRequest,
                format!("at most {} tests (sandbox.tests_max)", config.tests_max),
            );
        }
        let mut total = request.stdin.len();
        let mut names = std::collections::HashSet::new();
        for (i, file) in request.files.iter().enumerate() {
            // The entry file runs under the language's own name; the name
            // it was sent with may be empty, but when given it must be a
            // plain file name like any other.
            let entry_unnamed = i == 0 && file.name.is_empty();
            if !entry_unnamed && !plain_file_name(&file.name) {
                return reject(
                    Refusal::BadFileName,
                    format!(
                        "bad file name {:?}: a file name is 1 to {FILE_NAME_BYTES_MAX} bytes, \
                         with no '/', '\\' or NUL, and does not start with '.'",
                        file.name
                    ),
                );
            }
            let stored = if i == 0 {
                lang.file_name
            } else {
                file.name.as_str()
            };
            if !names.insert(stored) {
                return reject(
                    Refusal::BadFileName,
                    format!(
                        "file name {stored:?} is used twice (the entry file is {:?})",
                        lang.file_name
                    ),
                );
            }
            total += file.content.len();
        }
        for test in &request.tests {
            total += test.stdin.len() + test.expected_stdout.len();
            if test.tolerance.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
                return reject(
                    Refusal::BadRequest,
                    format!(
                        "test {:?}: tolerance must be a finite number >= 0",
                        test.name
                    ),
                );
            }
        }
        if total as u64 > config.source_bytes_max {
            return reject(
                Refusal::BadRequest,
                format!(
                    "files and inputs are limited to {} bytes (sandbox.source_bytes_max)",
                    config.source_bytes_max
                ),
            );
        }
        let wall_ms = request.limits.wall_ms.unwrap_or(config.wall_ms_default);
        if wall_ms == 0 || wall_ms > config.wall_ms_max {
            return reject(
                Refusal::BadRequest,
                format!(
                    "limits.wall_ms must be 1 to {} (sandbox.wall_ms_max)",
                    config.wall_ms_max
                ),
            );
        }
        if let Some(memory) = request.limits.memory_mb {
            if memory < 16 || memory > config.memory_mb {
                return reject(
                    Refusal::BadRequest,
                    format!(
                        "limits.memory_mb must be 16 to {} (sandbox.memory_mb)",
                        config.memory_mb
                    ),
                );
            }
        }
        Ok((lang, wall_ms))
    }

    /// Runs a request to its verdict.
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a bad request; engine and agent
    /// failures otherwise (the caller answers `internal_error`).
    pub async fn run(&self, request: &RunRequest) -> Result<RunResult, SandboxError> {
        self.run_streaming(request, None).await
    }

    /// A sink for [`Sandbox::run_streaming`], sized by
    /// `sandbox.stream_chunks_max`.
    pub fn output_sink(
        &self,
    ) -> (
        OutputSink,
        tokio::sync::mpsc::Receiver<crate::job::OutputChunk>,
    ) {
        OutputSink::new(self.stream_chunks_max())
    }

    /// How many output pieces a streaming run buffers
    /// (`sandbox.stream_chunks_max`).
    pub fn stream_chunks_max(&self) -> usize {
        usize::try_from(self.config.stream_chunks_max).unwrap_or(usize::MAX)
    }

    /// Runs a request to its verdict, sending output to `sink` while the
    /// program runs (when given).
    ///
    /// # Errors
    /// As [`Sandbox::run`].
    pub async fn run_streaming(
        &self,
        request: &RunRequest,
        sink: Option<&OutputSink>,
    ) -> Result<RunResult, SandboxError> {
        let started = Instant::now();
        let (lang, wall_ms) = self.validate(request)?;
        let mut stages = StageTimes {
            validate: ms(started),
            ..StageTimes::default()
        };

        let scheduled = Instant::now();
        let (warm, hot) = self.pools.take(lang.id).await?;
        if let Some(memory) = request.limits.memory_mb {
            if memory < self.config.memory_mb {
                let bytes = i64::from(memory.saturating_add(lang.memory_headroom_mb)) * 1024 * 1024;
                let update = bollard::models::ContainerUpdateBody {
                    memory: Some(bytes),
                    memory_swap: Some(bytes),
                    ..Default::default()
                };
                if let Err(err) = self
                    .engine
                    .docker()
                    .update_container(&warm.id, update)
                    .await
                {
                    container::destroy(&self.engine, &warm.id).await;
                    return Err(err.into());
                }
            }
        }
        stages.schedule = ms(scheduled);

        let executed = Instant::now();
        let cases: Vec<String> = if request.tests.is_empty() {
            vec![request.stdin.clone()]
        } else {
            request.tests.iter().map(|t| t.stdin.clone()).collect()
        };
        let compile_wall_ms = wall_ms
            .saturating_mul(u64::from(lang.compile_wall_factor))
            .max(10_000);
        let job = Job {
            files: request
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| JobFile {
                    name: if i == 0 {
                        lang.file_name.to_owned()
                    } else {
                        f.name.clone()
                    },
                    content: f.content.clone(),
                })
                .collect(),
            compile: lang
                .compile
                .map(|argv| argv.iter().map(|s| (*s).to_owned()).collect()),
            run: lang.run.iter().map(|s| (*s).to_owned()).collect(),
            env: lang
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cases,
            compile_wall_ms,
            wall_ms,
            cpu_ms: wall_ms.saturating_mul(u64::from(self.config.cpu_percent_of_wall)) / 100,
            output_bytes_max: self.config.output_bytes_max,
            stream: sink.is_some(),
        };
        let case_count = u64::try_from(job.cases.len()).unwrap_or(u64::MAX);
        let host_limit = Duration::from_millis(
            compile_wall_ms
                .saturating_add(wall_ms.saturating_mul(case_count))
                .saturating_add(self.config.host_slack_ms),
        );
        let id = warm.id.clone();
        let watch = Watch {
            limit: host_limit,
            sink,
            abuse: self.config.abuse_rules(),
        };
        let outcome = container::run(&self.engine, warm, &job, watch).await;
        self.destroy_later(id);
        let outcome = outcome?;
        stages.execute = ms(executed);

        let captured = Instant::now();
        let mut result = decide(request, &outcome, hot);
        stages.capture = ms(captured);
        result.stages_ms = stages;
        self.metrics.observe(lang.id, &result);
        Ok(result)
    }
}

fn step_verdict(step: &StepReport, oom_killed: bool) -> (Verdict, Option<String>) {
    if step.cpu_exceeded {
        return (Verdict::TimeLimitExceeded, Some("cpu".into()));
    }
    if step.wall_exceeded {
        return (Verdict::TimeLimitExceeded, Some("wall".into()));
    }
    if step.output_exceeded {
        return (Verdict::OutputLimitExceeded, None);
    }
    // SIGKILL that we did not send, in a cgroup that saw an OOM kill.
    if oom_killed && step.signal == Some(9) {
        return (Verdict::MemoryLimitExceeded, None);
    }
    // The seccomp profile kills with SIGSYS (see `seccomp`). A program that
    // raises SIGSYS on itself, or whose own handler re-raises it, lands here
    // too: we cannot tell the two apart, and neither is honest.
    if step.signal == Some(crate::seccomp::SIGSYS) {
        return (Verdict::DisallowedSyscall, None);
    }
    if step.signal.is_some() || step.exit_code != Some(0) {
        return (Verdict::RuntimeError, None);
    }
    (Verdict::Accepted, None)
}

fn decide(request: &RunRequest, outcome: &container::Outcome, hot: bool) -> RunResult {
    let report = &outcome.report;
    let mut result = RunResult {
        id: uuid::Uuid::now_v7().to_string(),
        status: Verdict::Accepted,
        limit: None,
        exit_code: None,
        signal: None,
        stdout: String::new(),
        stderr: String::new(),
        compile_output: String::new(),
        time_ms: 0.0,
        cpu_ms: 0.0,
        memory_kb: outcome.memory_peak_bytes.map(|bytes| bytes / 1024),
        abuse: outcome.abuse,
        hot,
        tests: Vec::new(),
        stages_ms: StageTimes::default(),
    };
    if let Some(err) = &report.agent_error {
        tracing::error!(error = %err, "sandbox agent failed");
        result.status = Verdict::InternalError;
        return result;
    }
    let incomplete = report
        .compile
        .iter()
        .chain(&report.runs)
        .any(|step| step.output_incomplete);
    if incomplete {
        tracing::error!(
            wait = ?crate::agent::OUTPUT_DRAIN_WAIT,
            "sandbox agent could not collect a step's output"
        );
        result.status = Verdict::InternalError;
        return result;
    }
    if let Some(compile) = &report.compile {
        result.compile_output = format!("{}{}", compile.stdout, compile.stderr);
        if compile.exit_code != Some(0) {
            result.status = Verdict::CompilationError;
            result.exit_code = compile.exit_code;
            result.signal = compile.signal;
            return result;
        }
    }
    let mut chosen: Option<(usize, Verdict, Option<String>)> = None;
    for (i, step) in report.runs.iter().enumerate() {
        let (mut verdict, limit) = step_verdict(step, outcome.oom_killed);
        if verdict == Verdict::Accepted {
            if let Some(test) = request.tests.get(i) {
                let tolerance = test.tolerance.unwrap_or(FLOAT_TOLERANCE_DEFAULT);
                if !compare::matches(test.compare, tolerance, &test.expected_stdout, &step.stdout) {
                    verdict = Verdict::WrongAnswer;
                }
            }
        }
        if let Some(test) = request.tests.get(i) {
            result.tests.push(TestResult {
                name: test.name.clone(),
                status: verdict,
                stdout: step.stdout.clone(),
                time_ms: step.wall_ms,
            });
        }
        if chosen.is_none() && verdict != Verdict::Accepted {
            chosen = Some((i, verdict, limit));
        }
    }
    let (index, verdict, limit) = chosen.unwrap_or((0, Verdict::Accepted, None));
    if let Some(step) = report.runs.get(index) {
        result.status = verdict;
        result.limit = limit;
        result.exit_code = step.exit_code;
        result.signal = step.signal;
        result.stdout = step.stdout.clone();
        result.stderr = step.stderr.clone();
        result.time_ms = step.wall_ms;
        result.cpu_ms = step.cpu_ms;
    } else {
        result.status = Verdict::InternalError;
    }
    result
}

/// The agent as run by the `lyceum` binary itself, for containers owned by
/// `owner` (the node id).
///
/// # Errors
/// Fails when the running executable cannot be found.
pub fn lyceum_agent(owner: &str) -> std::io::Result<AgentCommand> {
    Ok(AgentCommand {
        host_path: std::env::current_exe()?,
        args: vec!["sandbox-agent".to_owned()],
        owner: owner.to_owned(),
    })
}

/// The agent from a given binary path (tests use the crate's own binary).
pub fn agent_at(path: PathBuf, owner: &str) -> AgentCommand {
    AgentCommand {
        host_path: path,
        args: Vec::new(),
        owner: owner.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::AgentReport;

    fn outcome(step: StepReport) -> container::Outcome {
        container::Outcome {
            report: AgentReport {
                runs: vec![step],
                ..AgentReport::default()
            },
            oom_killed: false,
            memory_peak_bytes: None,
            abuse: None,
            agent_stderr: String::new(),
        }
    }

    #[test]
    fn output_the_agent_could_not_collect_is_our_fault_not_an_empty_answer() {
        let request = RunRequest {
            language: "python".into(),
            files: Vec::new(),
            stdin: String::new(),
            tests: Vec::new(),
            limits: RequestLimits::default(),
        };
        let exited = StepReport {
            exit_code: Some(0),
            ..StepReport::default()
        };
        assert_eq!(
            decide(&request, &outcome(exited.clone()), false).status,
            Verdict::Accepted
        );
        let lost = StepReport {
            output_incomplete: true,
            ..exited
        };
        assert_eq!(
            decide(&request, &outcome(lost), false).status,
            Verdict::InternalError
        );
    }
}
