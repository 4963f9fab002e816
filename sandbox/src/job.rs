//! What crosses the container boundary: the job the host writes to the
//! agent's stdin (one JSON line) and the report the agent writes back (one
//! JSON line). Both sides share these types, so the protocol cannot drift.

use serde::{Deserialize, Serialize};

/// Hard cap on a job line the agent accepts; the host's own limits are far
/// below it.
pub const JOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Hard cap on the report line the host accepts.
pub const REPORT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A file to write into the work directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    /// Plain file name: no `/`, not `.` or `..`.
    pub name: String,
    /// Contents (UTF-8 text).
    pub content: String,
}

/// One job: write files, compile once, run once per case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Files to write into the work directory.
    pub files: Vec<JobFile>,
    /// Compile command, if any.
    pub compile: Option<Vec<String>>,
    /// Run command.
    pub run: Vec<String>,
    /// Environment for both commands.
    pub env: Vec<(String, String)>,
    /// Standard input of each run; at least one.
    pub cases: Vec<String>,
    /// Wall-clock limit of the compile step.
    pub compile_wall_ms: u64,
    /// Wall-clock limit of each run.
    pub wall_ms: u64,
    /// CPU-time limit of each run.
    pub cpu_ms: u64,
    /// Cap on each of stdout and stderr of each step.
    pub output_bytes_max: u64,
    /// Send output as it comes ([`AgentLine::Output`]) as well as whole in
    /// the report; off for callers that only want the verdict.
    #[serde(default)]
    pub stream: bool,
}

/// Which step of a job produced some output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The compile command.
    Compile,
    /// A run of the program (one per case).
    Run,
}

/// Which pipe some output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a program's output, sent while it runs. Pieces are cut on
/// UTF-8 character boundaries, so concatenating them gives the same text as
/// the report (up to the same cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Compile or run.
    pub step: StepKind,
    /// Index of the case (0 for the compile step).
    pub case: usize,
    /// Which pipe.
    pub stream: StreamKind,
    /// The text.
    pub data: String,
}

/// One line the agent writes on its stdout: step markers and output pieces
/// (only when the job asked to stream), then exactly one report, last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentLine {
    /// A step begins (sent whether or not the job streams), so the host
    /// knows when learners' code runs rather than the compiler.
    Step {
        /// Compile or run.
        step: StepKind,
        /// Index of the case (0 for the compile step).
        case: usize,
    },
    /// Live output.
    Output(OutputChunk),
    /// The final report; the agent exits after it.
    Report(AgentReport),
}

/// What happened to one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// Standard output, cut at the cap (lossy UTF-8).
    pub stdout: String,
    /// Standard error, cut at the cap (lossy UTF-8).
    pub stderr: String,
    /// Wall-clock time.
    pub wall_ms: f64,
    /// CPU time (user + system) of the process and its children.
    pub cpu_ms: f64,
    /// Killed at the wall-clock limit.
    pub wall_exceeded: bool,
    /// Killed at the CPU-time limit.
    pub cpu_exceeded: bool,
    /// Killed because stdout or stderr passed the cap.
    pub output_exceeded: bool,
    /// What the program wrote could not be collected in time
    /// (`agent::OUTPUT_DRAIN_WAIT`): the step's output is unknown, and the
    /// host answers an internal error rather than an empty output.
    #[serde(default)]
    pub output_incomplete: bool,
}

/// The agent's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The compile step, when the language compiles.
    pub compile: Option<StepReport>,
    /// One report per case, in order; empty when compilation failed.
    pub runs: Vec<StepReport>,
    /// Set when the agent itself could not do the job (bad job, I/O error).
    pub agent_error: Option<String>,
}
