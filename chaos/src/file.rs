//! The drill file's shape exactly as written in TOML, before validation.
//! Every value keeps its byte span (`toml::Spanned`) so that validation can
//! name the line of whatever it refuses; every table refuses keys it does
//! not know. Nothing here is trusted: `drill` turns it into a `Drill` or a
//! list of refusals. The words a file may use for fault kinds, targets and
//! the like are enums here, so a misspelt one is refused by the parser with
//! the list of allowed words.

use serde::Deserialize;
use toml::Spanned;

/// A whole drill file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillFile {
    /// One line for people; shown in lists and reports.
    pub title: Spanned<String>,
    /// What the drill expects to hold, in words.
    pub hypothesis: Spanned<String>,
    /// How long the workload runs; every fault ends by then.
    pub duration_s: Spanned<i64>,
    /// How long to wait after the workload stops before checking.
    pub settle_s: Spanned<i64>,
    /// How soon after its last heal every process must be ready again.
    pub recovery_bound_s: Spanned<i64>,
    /// `[workload]`.
    pub workload: Spanned<WorkloadFile>,
    /// `[probes]`.
    pub probes: Spanned<ProbesFile>,
    /// `[[abort]]` entries.
    #[serde(default)]
    pub abort: Vec<Spanned<AbortFile>>,
    /// `[[fault]]` entries.
    #[serde(default)]
    pub fault: Vec<Spanned<FaultFile>>,
}

/// `[workload]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Learners connected during the drill.
    pub learners: Spanned<i64>,
    /// Live classes they sit in.
    pub classes: Spanned<i64>,
    /// Regions whose edges the learners use.
    pub regions: Spanned<Vec<String>>,
    /// Code runs per second over all learners.
    pub runs_per_second: Spanned<f64>,
    /// Graded submissions per second over all learners.
    #[serde(default)]
    pub submissions_per_second: Option<Spanned<f64>>,
    /// Ledger transfers per second.
    pub ledger_transfers_per_second: Spanned<f64>,
}

/// `[probes]`: how often to sample and the steady-state thresholds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesFile {
    /// Sampling period.
    pub interval_ms: Spanned<i64>,
    /// Steady state: run latency p99 at most this.
    pub run_latency_p99_ms: Spanned<f64>,
    /// Steady state: at least this share of class messages delivered in time.
    pub class_delivery_ratio: Spanned<f64>,
    /// What "in time" means for class delivery.
    pub class_delivery_within_ms: Spanned<i64>,
    /// Steady state: at least this share of processes ready.
    pub readiness_ratio: Spanned<f64>,
}

/// The probes a drill samples, as a file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeName {
    /// `run_latency_p99_ms`.
    RunLatencyP99Ms,
    /// `class_delivery_ratio`.
    ClassDeliveryRatio,
    /// `readiness_ratio`.
    ReadinessRatio,
}

/// One `[[abort]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortFile {
    /// The probe watched.
    pub probe: Spanned<ProbeName>,
    /// Abort when the probe is above this.
    #[serde(default)]
    pub above: Option<Spanned<f64>>,
    /// Abort when the probe is below this.
    #[serde(default)]
    pub below: Option<Spanned<f64>>,
    /// For at least this long (absent: the first sample that breaks it).
    #[serde(default)]
    pub for_s: Option<Spanned<i64>>,
}

/// Fault kinds as a file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KindName {
    /// `kill`.
    Kill,
    /// `pause`.
    Pause,
    /// `partition`.
    Partition,
    /// `degrade`.
    Degrade,
    /// `database-down`.
    DatabaseDown,
    /// `sandbox-drain`.
    SandboxDrain,
}

/// Process targets as a file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetName {
    /// `edge`, with `region`.
    Edge,
    /// `class-home`.
    ClassHome,
    /// `control-plane`.
    ControlPlane,
}

/// Directions as a file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectionName {
    /// `both`.
    Both,
    /// `one-way`.
    OneWay,
}

/// Mechanisms as a file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViaName {
    /// `fault-api`.
    FaultApi,
    /// `netns`.
    Netns,
}

/// One `[[fault]]` entry: every key any kind may use, checked per kind by
/// validation so that a key of another kind is refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    /// What the fault does.
    pub kind: Spanned<KindName>,
    /// When it starts, from the start of the workload.
    pub start_s: Spanned<i64>,
    /// How long it lasts before it is healed.
    pub duration_s: Spanned<i64>,
    /// `kill`, `pause`: which process.
    #[serde(default)]
    pub target: Option<Spanned<TargetName>>,
    /// `kill`/`pause` of an `edge`, `sandbox-drain`: which region.
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// `partition`, `degrade`: one side.
    #[serde(default)]
    pub from: Option<Spanned<Vec<String>>>,
    /// `partition`, `degrade`: the other side.
    #[serde(default)]
    pub to: Option<Spanned<Vec<String>>>,
    /// `partition`, `degrade`: both ways or only `from` to `to`.
    #[serde(default)]
    pub direction: Option<Spanned<DirectionName>>,
    /// `partition`, `degrade`: the edges' fault API or OS-level.
    #[serde(default)]
    pub via: Option<Spanned<ViaName>>,
    /// `degrade`: added one-way latency.
    #[serde(default)]
    pub latency_ms: Option<Spanned<i64>>,
    /// `degrade`: jitter around the latency.
    #[serde(default)]
    pub jitter_ms: Option<Spanned<i64>>,
    /// `degrade`: share of packets dropped, in percent.
    #[serde(default)]
    pub loss_percent: Option<Spanned<f64>>,
}
