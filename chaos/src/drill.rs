//! A validated drill: what it expects, what load it runs, what it watches,
//! which faults it injects and when. `Drill::parse` is the only way to get
//! one, and it refuses, before anything starts, every file that could not
//! run as written: unknown keys, impossible timings, overlapping faults that
//! cannot overlap, regions the cluster does not have, and OS-level faults on
//! a machine that is not root. Every refusal carries the line it is about
//! (`toml::Spanned` keeps byte offsets; `line_of` turns them into lines).
//! The file format is documented field by field in `docs/design/chaos.md`.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use crate::cluster::{Cluster, Privilege, CONTROL_PLANE};
use crate::error::{DrillError, DrillErrorCode, DrillErrors};
use crate::file::{
    AbortFile, DirectionName, DrillFile, FaultFile, KindName, ProbeName, TargetName, ViaName,
};

/// Largest drill file read, in bytes: a drill is a page of TOML.
pub const DRILL_FILE_BYTES_MAX: usize = 64 * 1024;
/// Longest drill name (the file's stem), in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// Longest `title`, in bytes.
pub const TITLE_BYTES_MAX: usize = 200;
/// Longest `hypothesis`, in bytes.
pub const HYPOTHESIS_BYTES_MAX: usize = 4096;
/// Longest `duration_s`: an hour; drills are rehearsals, not soak tests.
pub const DURATION_S_MAX: i64 = 3600;
/// Longest `settle_s`.
pub const SETTLE_S_MAX: i64 = 600;
/// Longest `recovery_bound_s`.
pub const RECOVERY_BOUND_S_MAX: i64 = 600;
/// Most `[[fault]]` entries in one drill.
pub const FAULTS_MAX: usize = 32;
/// Most `[[abort]]` entries in one drill.
pub const ABORTS_MAX: usize = 16;
/// Most `workload.learners`: what one machine's load generator can drive.
pub const LEARNERS_MAX: i64 = 10_000;
/// Most `workload.classes`.
pub const CLASSES_MAX: i64 = 500;
/// Highest of each workload rate (`*_per_second`).
pub const RATE_PER_SECOND_MAX: f64 = 1000.0;
/// Shortest `probes.interval_ms`.
pub const PROBE_INTERVAL_MS_MIN: i64 = 100;
/// Longest `probes.interval_ms`.
pub const PROBE_INTERVAL_MS_MAX: i64 = 60_000;
/// Largest latency threshold or added latency/jitter, in milliseconds.
pub const LATENCY_MS_MAX: i64 = 60_000;

/// Which probe a threshold or an abort condition is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// The p99 of code-run latency over the last interval, in milliseconds.
    RunLatencyP99Ms,
    /// The share of class messages every client received within
    /// `class_delivery_within_ms`, 0 to 1.
    ClassDeliveryRatio,
    /// The share of processes whose `/readyz` answers 200, 0 to 1.
    ReadinessRatio,
}

impl Probe {
    /// Every probe.
    pub const ALL: [Probe; 3] = [
        Self::RunLatencyP99Ms,
        Self::ClassDeliveryRatio,
        Self::ReadinessRatio,
    ];

    /// The stable name, as in drill files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunLatencyP99Ms => "run_latency_p99_ms",
            Self::ClassDeliveryRatio => "class_delivery_ratio",
            Self::ReadinessRatio => "readiness_ratio",
        }
    }

    /// Whether a larger value is worse (latency) or better (ratios).
    pub fn higher_is_worse(self) -> bool {
        matches!(self, Self::RunLatencyP99Ms)
    }
}

/// The load run during the drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Learners connected.
    pub learners: u32,
    /// Live classes they sit in (0: no live class).
    pub classes: u32,
    /// Regions whose edges the learners use, each known to the cluster.
    pub regions: Vec<String>,
    /// Code runs per second, over all learners.
    pub runs_per_second: f64,
    /// Graded submissions per second, over all learners.
    pub submissions_per_second: f64,
    /// Ledger transfers per second.
    pub ledger_transfers_per_second: f64,
}

/// How often probes are sampled and what steady state means.
#[derive(Debug, Clone, PartialEq)]
pub struct Probes {
    /// Sampling period, in milliseconds.
    pub interval_ms: u64,
    /// Steady state: run latency p99 at most this, in milliseconds.
    pub run_latency_p99_ms: f64,
    /// Steady state: at least this share of class messages delivered in time.
    pub class_delivery_ratio: f64,
    /// What "in time" means for class delivery, in milliseconds.
    pub class_delivery_within_ms: u64,
    /// Steady state: at least this share of processes ready.
    pub readiness_ratio: f64,
}

impl Probes {
    /// The steady-state threshold of a probe (a maximum for latency, a
    /// minimum for ratios).
    pub fn threshold(&self, probe: Probe) -> f64 {
        match probe {
            Probe::RunLatencyP99Ms => self.run_latency_p99_ms,
            Probe::ClassDeliveryRatio => self.class_delivery_ratio,
            Probe::ReadinessRatio => self.readiness_ratio,
        }
    }
}

/// Which side of a threshold breaks an abort condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Broken when the probe is above the value.
    Above(f64),
    /// Broken when the probe is below the value.
    Below(f64),
}

/// Stop the drill and heal everything when a probe breaks a hard limit for
/// long enough.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortCondition {
    /// The probe watched.
    pub probe: Probe,
    /// The hard limit.
    pub limit: Limit,
    /// How long the limit must stay broken, in milliseconds (0: one sample).
    pub for_ms: u64,
}

impl AbortCondition {
    /// Whether one sample of the probe breaks the limit.
    pub fn broken_by(&self, value: f64) -> bool {
        match self.limit {
            Limit::Above(limit) => value > limit,
            Limit::Below(limit) => value < limit,
        }
    }
}

/// A process a fault acts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// The edge of a region.
    Edge(String),
    /// The home edge of the workload's first live class, resolved when the
    /// fault is applied.
    ClassHome,
    /// The control plane.
    ControlPlane,
}

impl Process {
    fn label(&self) -> String {
        match self {
            Self::Edge(region) => format!("edge {region}"),
            Self::ClassHome => "the class's home edge".to_owned(),
            Self::ControlPlane => "the control plane".to_owned(),
        }
    }

    /// Whether two targets may be the same process: a class's home is one
    /// of the edges, and which one is known only when the fault applies.
    fn may_be(&self, other: &Process) -> bool {
        match (self, other) {
            (Self::ClassHome, Self::Edge(_) | Self::ClassHome)
            | (Self::Edge(_), Self::ClassHome) => true,
            _ => self == other,
        }
    }
}

/// One side of a network fault: a region's edge or the control plane.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// Every node of a region.
    Region(String),
    /// The control plane.
    ControlPlane,
}

impl Endpoint {
    fn label(&self) -> &str {
        match self {
            Self::Region(region) => region,
            Self::ControlPlane => CONTROL_PLANE,
        }
    }
}

/// Whether a network fault cuts both ways or only `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic both ways.
    Both,
    /// Only traffic sent from `from` to `to`.
    OneWay,
}

/// How a network fault is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The edges' own fault API: no root needed, applies to Lyceum's own
    /// traffic.
    FaultApi,
    /// Network namespaces with `tc netem`: OS-level, needs root.
    Netns,
}

/// The traffic a network fault acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// One side.
    pub from: Vec<Endpoint>,
    /// The other side.
    pub to: Vec<Endpoint>,
    /// Both ways or one way.
    pub direction: Direction,
}

impl Link {
    /// Every (sender, receiver) pair the fault touches.
    fn pairs(&self) -> Vec<(Endpoint, Endpoint)> {
        let mut pairs = Vec::new();
        for a in &self.from {
            for b in &self.to {
                pairs.push((a.clone(), b.clone()));
                if self.direction == Direction::Both {
                    pairs.push((b.clone(), a.clone()));
                }
            }
        }
        pairs
    }

    fn label(&self) -> String {
        let side = |s: &[Endpoint]| s.iter().map(Endpoint::label).collect::<Vec<_>>().join("+");
        let arrow = match self.direction {
            Direction::Both => "<->",
            Direction::OneWay => "->",
        };
        format!("{} {arrow} {}", side(&self.from), side(&self.to))
    }
}

/// What a fault does while it lasts.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// `kill -9` at the start; the supervisor keeps it down and starts it
    /// again at the heal.
    Kill(Process),
    /// SIGSTOP at the start, SIGCONT at the heal.
    Pause(Process),
    /// All traffic between the sides dropped.
    Partition {
        /// Which traffic.
        link: Link,
        /// How.
        via: Via,
    },
    /// Latency, jitter and loss added to the traffic between the sides.
    Degrade {
        /// Which traffic.
        link: Link,
        /// How.
        via: Via,
        /// Added latency, in milliseconds.
        latency_ms: u32,
        /// Jitter around it, in milliseconds.
        jitter_ms: u32,
        /// Packets dropped, in percent.
        loss_percent: f64,
    },
    /// The control plane's database unavailable (PostgreSQL stopped, or the
    /// SQLite file made unwritable). OS-level.
    DatabaseDown,
    /// A region's sandbox pools drained to zero warm containers.
    SandboxDrain(String),
}

/// A thing two faults cannot act on at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Process(Process),
    Pair(Endpoint, Endpoint),
    Database,
    Pool(String),
}

impl Resource {
    fn clashes(&self, other: &Resource) -> bool {
        match (self, other) {
            (Self::Process(a), Self::Process(b)) => a.may_be(b),
            _ => self == other,
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Process(p) => p.label(),
            Self::Pair(a, b) => format!("traffic {} -> {}", a.label(), b.label()),
            Self::Database => "the database".to_owned(),
            Self::Pool(region) => format!("the sandbox pools of {region}"),
        }
    }
}

/// One fault of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Its 1-based position in the file, the id in plans and reports.
    pub id: u32,
    /// The line of its `[[fault]]` header.
    pub line: usize,
    /// When it is applied, from the start of the workload, in milliseconds.
    pub start_ms: u64,
    /// How long it lasts before it is healed, in milliseconds; never 0.
    pub duration_ms: u64,
    /// What it does.
    pub action: FaultAction,
}

impl Fault {
    /// When it is healed, from the start of the workload.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.duration_ms
    }

    /// Whether it is made at the OS level and so needs root: network faults
    /// through network namespaces, and the database taken away.
    pub fn needs_root(&self) -> bool {
        match &self.action {
            FaultAction::Partition { via, .. } | FaultAction::Degrade { via, .. } => {
                *via == Via::Netns
            }
            FaultAction::DatabaseDown => true,
            FaultAction::Kill(_) | FaultAction::Pause(_) | FaultAction::SandboxDrain(_) => false,
        }
    }

    /// The stable kind name, as in drill files.
    pub fn kind(&self) -> &'static str {
        match &self.action {
            FaultAction::Kill(_) => "kill",
            FaultAction::Pause(_) => "pause",
            FaultAction::Partition { .. } => "partition",
            FaultAction::Degrade { .. } => "degrade",
            FaultAction::DatabaseDown => "database-down",
            FaultAction::SandboxDrain(_) => "sandbox-drain",
        }
    }

    /// A one-line description for timelines and reports.
    pub fn label(&self) -> String {
        let via = |via: &Via| match via {
            Via::FaultApi => "fault API",
            Via::Netns => "netns",
        };
        match &self.action {
            FaultAction::Kill(p) => format!("kill -9 {}", p.label()),
            FaultAction::Pause(p) => format!("pause {}", p.label()),
            FaultAction::Partition { link, via: v } => {
                format!("partition {} ({})", link.label(), via(v))
            }
            FaultAction::Degrade {
                link,
                via: v,
                latency_ms,
                jitter_ms,
                loss_percent,
            } => format!(
                "degrade {} by {latency_ms} ms ± {jitter_ms} ms, {loss_percent} % loss ({})",
                link.label(),
                via(v)
            ),
            FaultAction::DatabaseDown => "database unavailable".to_owned(),
            FaultAction::SandboxDrain(region) => format!("drain the sandbox pools of {region}"),
        }
    }

    fn resources(&self) -> Vec<Resource> {
        match &self.action {
            FaultAction::Kill(p) | FaultAction::Pause(p) => vec![Resource::Process(p.clone())],
            FaultAction::Partition { link, .. } | FaultAction::Degrade { link, .. } => link
                .pairs()
                .into_iter()
                .map(|(a, b)| Resource::Pair(a, b))
                .collect(),
            FaultAction::DatabaseDown => vec![Resource::Database],
            FaultAction::SandboxDrain(region) => vec![Resource::Pool(region.clone())],
        }
    }
}

/// A validated drill. Built only by [`Drill::parse`] (or [`Drill::load`]),
/// so holding one means the file can run as written on the cluster it was
/// validated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    name: String,
    title: String,
    hypothesis: String,
    duration_ms: u64,
    settle_ms: u64,
    recovery_bound_ms: u64,
    workload: Workload,
    probes: Probes,
    aborts: Vec<AbortCondition>,
    faults: Vec<Fault>,
}

impl Drill {
    /// Reads and validates a drill file; its name is the file's stem.
    ///
    /// # Errors
    /// [`DrillErrors`] listing every refusal (code `unreadable` when the
    /// file cannot be read).
    pub fn load(path: &Path, cluster: &Cluster) -> Result<Self, DrillErrors> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unreadable = |e: std::io::Error| {
            DrillError::new(
                DrillErrorCode::Unreadable,
                0,
                format!("cannot read {}: {e}", path.display()),
            )
        };
        // Read at most one byte past the limit, so a huge file is refused
        // without being read whole.
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut text = Vec::new();
        file.take(DRILL_FILE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut text)
            .map_err(unreadable)?;
        if text.len() > DRILL_FILE_BYTES_MAX {
            return Err(DrillError::new(
                DrillErrorCode::TooLarge,
                0,
                format!("the file is more than {DRILL_FILE_BYTES_MAX} bytes"),
            )
            .into());
        }
        let text = String::from_utf8(text).map_err(|_| {
            DrillError::new(DrillErrorCode::Syntax, 0, "the file is not UTF-8 text")
        })?;
        Self::parse(&name, &text, cluster)
    }

    /// Parses and validates the text of a drill file.
    ///
    /// # Errors
    /// [`DrillErrors`] listing every refusal, each with its line.
    pub fn parse(name: &str, text: &str, cluster: &Cluster) -> Result<Self, DrillErrors> {
        if text.len() > DRILL_FILE_BYTES_MAX {
            return Err(too_large(text.len()).into());
        }
        if name.is_empty() || name.len() > NAME_BYTES_MAX {
            return Err(DrillError::new(
                DrillErrorCode::BadValue,
                0,
                format!(
                    "a drill's name is 1 to {NAME_BYTES_MAX} bytes, got {}",
                    name.len()
                ),
            )
            .into());
        }
        let file: DrillFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let mut v = Validator {
            text,
            errors: Vec::new(),
        };
        let drill = v.drill(name, &file, cluster);
        match drill {
            Some(drill) if v.errors.is_empty() => Ok(drill),
            _ => {
                v.errors.sort_by_key(|e| e.line);
                Err(DrillErrors(v.errors))
            }
        }
    }

    /// The name, the file's stem.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// One line for people.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// What the drill expects to hold, in words.
    pub fn hypothesis(&self) -> &str {
        &self.hypothesis
    }
    /// How long the workload runs, in milliseconds; every fault ends by then.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    /// How long to wait after the workload stops before checking.
    pub fn settle_ms(&self) -> u64 {
        self.settle_ms
    }
    /// How soon after its last heal every process must be ready again.
    pub fn recovery_bound_ms(&self) -> u64 {
        self.recovery_bound_ms
    }
    /// The load.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
    /// The probes and their steady-state thresholds.
    pub fn probes(&self) -> &Probes {
        &self.probes
    }
    /// When to stop early.
    pub fn aborts(&self) -> &[AbortCondition] {
        &self.aborts
    }
    /// The faults, in file order.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }
    /// Whether any fault needs root.
    pub fn needs_root(&self) -> bool {
        self.faults.iter().any(Fault::needs_root)
    }
}

fn too_large(len: usize) -> DrillError {
    DrillError::new(
        DrillErrorCode::TooLarge,
        0,
        format!("the file is {len} bytes, more than {DRILL_FILE_BYTES_MAX}"),
    )
}

/// The 1-based line holding a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A parse error as a refusal. toml reports no kind of error, only a
/// message and a span, so the code is read from serde's standard wording;
/// anything else is a syntax error. Multi-line messages become one line.
fn toml_error(text: &str, error: &toml::de::Error) -> DrillErrors {
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let line = error.span().map_or(1, |span| line_of(text, span.start));
    let code = if message.contains("unknown field") {
        DrillErrorCode::UnknownKey
    } else if message.contains("missing field") {
        DrillErrorCode::MissingKey
    } else if message.contains("invalid type")
        || message.contains("unknown variant")
        || message.contains("invalid value")
    {
        DrillErrorCode::BadValue
    } else {
        DrillErrorCode::Syntax
    };
    DrillError::new(code, line, message.replace('`', "'")).into()
}

/// Collects refusals while turning a [`DrillFile`] into a [`Drill`].
struct Validator<'a> {
    text: &'a str,
    errors: Vec<DrillError>,
}

impl Validator<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn refuse(&mut self, code: DrillErrorCode, span: Range<usize>, reason: String) {
        let line = self.line(span);
        self.errors.push(DrillError::new(code, line, reason));
    }

    /// An integer in `min..=max`, refused with `code` otherwise.
    fn int(
        &mut self,
        value: &Spanned<i64>,
        key: &str,
        (min, max): (i64, i64),
        code: DrillErrorCode,
    ) -> Option<u64> {
        let v = *value.get_ref();
        if v < min || v > max {
            self.refuse(
                code,
                value.span(),
                format!("{key} must be {min} to {max}, got {v}"),
            );
            return None;
        }
        u64::try_from(v).ok()
    }

    /// A finite number in `min..=max`.
    fn number(&mut self, value: &Spanned<f64>, key: &str, (min, max): (f64, f64)) -> Option<f64> {
        let v = *value.get_ref();
        if !v.is_finite() || v < min || v > max {
            self.refuse(
                DrillErrorCode::BadValue,
                value.span(),
                format!("{key} must be {min} to {max}, got {v}"),
            );
            return None;
        }
        Some(v)
    }

    fn text(&mut self, value: &Spanned<String>, key: &str, max: usize) -> Option<String> {
        let v = value.get_ref().trim();
        if v.is_empty() || v.len() > max {
            self.refuse(
                DrillErrorCode::BadValue,
                value.span(),
                format!("{key} must be 1 to {max} bytes of text, got {}", v.len()),
            );
            return None;
        }
        Some(v.to_owned())
    }

    fn region(&mut self, value: &Spanned<String>, key: &str, cluster: &Cluster) -> Option<String> {
        let region = value.get_ref();
        if cluster.has_region(region) {
            return Some(region.clone());
        }
        self.refuse(
            DrillErrorCode::UnknownRegion,
            value.span(),
            format!(
                "{key}: the cluster has no region {region:?}; it has {}",
                cluster.regions().join(", ")
            ),
        );
        None
    }

    fn drill(&mut self, name: &str, file: &DrillFile, cluster: &Cluster) -> Option<Drill> {
        let title = self.text(&file.title, "title", TITLE_BYTES_MAX);
        let hypothesis = self.text(&file.hypothesis, "hypothesis", HYPOTHESIS_BYTES_MAX);
        let duration_s = self.int(
            &file.duration_s,
            "duration_s",
            (1, DURATION_S_MAX),
            DrillErrorCode::BadTiming,
        );
        let settle_s = self.int(
            &file.settle_s,
            "settle_s",
            (1, SETTLE_S_MAX),
            DrillErrorCode::BadTiming,
        );
        let recovery_s = self.int(
            &file.recovery_bound_s,
            "recovery_bound_s",
            (1, RECOVERY_BOUND_S_MAX),
            DrillErrorCode::BadTiming,
        );
        let workload = self.workload(file, cluster);
        let probes = self.probes(file);
        let aborts = self.aborts(&file.abort, duration_s);
        let faults = self.faults(&file.fault, duration_s, cluster);
        if let (Some(faults), Some(workload)) = (&faults, &workload) {
            if workload.classes == 0 {
                for (fault, entry) in faults.iter().zip(&file.fault) {
                    if matches!(
                        fault.action,
                        FaultAction::Kill(Process::ClassHome)
                            | FaultAction::Pause(Process::ClassHome)
                    ) {
                        self.refuse(
                            DrillErrorCode::BadValue,
                            entry.span(),
                            format!(
                                "fault {}: target class-home needs a live class, but workload.classes is 0",
                                fault.id
                            ),
                        );
                    }
                }
            }
        }
        // Recovery is observed until the checker runs: the last heal plus
        // the recovery bound must fit before the end of the settle time.
        if let (Some(faults), Some(d), Some(s), Some(r)) =
            (&faults, duration_s, settle_s, recovery_s)
        {
            let last_heal_s = faults.iter().map(Fault::end_ms).max().unwrap_or(0) / 1000;
            if last_heal_s + r > d + s {
                self.refuse(
                    DrillErrorCode::BadTiming,
                    file.recovery_bound_s.span(),
                    format!(
                        "recovery_bound_s {r} s cannot be observed: the last fault heals at {last_heal_s} s and the checker runs at {} s",
                        d + s
                    ),
                );
            }
        }
        Some(Drill {
            name: name.to_owned(),
            title: title?,
            hypothesis: hypothesis?,
            duration_ms: duration_s? * 1000,
            settle_ms: settle_s? * 1000,
            recovery_bound_ms: recovery_s? * 1000,
            workload: workload?,
            probes: probes?,
            aborts: aborts?,
            faults: faults?,
        })
    }

    fn workload(&mut self, file: &DrillFile, cluster: &Cluster) -> Option<Workload> {
        let w = file.workload.get_ref();
        let learners = self.int(
            &w.learners,
            "workload.learners",
            (1, LEARNERS_MAX),
            DrillErrorCode::BadValue,
        );
        let classes = self.int(
            &w.classes,
            "workload.classes",
            (0, CLASSES_MAX),
            DrillErrorCode::BadValue,
        );
        if let (Some(l), Some(c)) = (learners, classes) {
            if c > l {
                self.refuse(
                    DrillErrorCode::BadValue,
                    w.classes.span(),
                    format!("workload.classes ({c}) cannot exceed workload.learners ({l})"),
                );
            }
        }
        let mut regions = Vec::new();
        if w.regions.get_ref().is_empty() {
            self.refuse(
                DrillErrorCode::BadValue,
                w.regions.span(),
                "workload.regions must name at least one region".to_owned(),
            );
        }
        for region in w.regions.get_ref() {
            if !cluster.has_region(region) {
                self.refuse(
                    DrillErrorCode::UnknownRegion,
                    w.regions.span(),
                    format!(
                        "workload.regions: the cluster has no region {region:?}; it has {}",
                        cluster.regions().join(", ")
                    ),
                );
            } else if !regions.contains(region) {
                regions.push(region.clone());
            }
        }
        let rate = (0.0, RATE_PER_SECOND_MAX);
        let runs = self.number(&w.runs_per_second, "workload.runs_per_second", rate);
        let submissions = match &w.submissions_per_second {
            Some(v) => self.number(v, "workload.submissions_per_second", rate),
            None => Some(0.0),
        };
        let transfers = self.number(
            &w.ledger_transfers_per_second,
            "workload.ledger_transfers_per_second",
            rate,
        );
        Some(Workload {
            learners: u32::try_from(learners?).ok()?,
            classes: u32::try_from(classes?).ok()?,
            regions,
            runs_per_second: runs?,
            submissions_per_second: submissions?,
            ledger_transfers_per_second: transfers?,
        })
    }

    fn probes(&mut self, file: &DrillFile) -> Option<Probes> {
        let p = file.probes.get_ref();
        let interval = self.int(
            &p.interval_ms,
            "probes.interval_ms",
            (PROBE_INTERVAL_MS_MIN, PROBE_INTERVAL_MS_MAX),
            DrillErrorCode::BadValue,
        );
        let latency_max = LATENCY_MS_MAX as f64;
        let p99 = self.number(
            &p.run_latency_p99_ms,
            "probes.run_latency_p99_ms",
            (1.0, latency_max),
        );
        let delivery = self.number(
            &p.class_delivery_ratio,
            "probes.class_delivery_ratio",
            (0.0, 1.0),
        );
        let within = self.int(
            &p.class_delivery_within_ms,
            "probes.class_delivery_within_ms",
            (1, LATENCY_MS_MAX),
            DrillErrorCode::BadValue,
        );
        let ready = self.number(&p.readiness_ratio, "probes.readiness_ratio", (0.0, 1.0));
        Some(Probes {
            interval_ms: interval?,
            run_latency_p99_ms: p99?,
            class_delivery_ratio: delivery?,
            class_delivery_within_ms: within?,
            readiness_ratio: ready?,
        })
    }

    fn aborts(
        &mut self,
        entries: &[Spanned<AbortFile>],
        duration_s: Option<u64>,
    ) -> Option<Vec<AbortCondition>> {
        if entries.len() > ABORTS_MAX {
            self.refuse(
                DrillErrorCode::TooMany,
                entries[ABORTS_MAX].span(),
                format!(
                    "a drill has at most {ABORTS_MAX} [[abort]] entries, got {}",
                    entries.len()
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for entry in entries {
            let a = entry.get_ref();
            let probe = match a.probe.get_ref() {
                ProbeName::RunLatencyP99Ms => Probe::RunLatencyP99Ms,
                ProbeName::ClassDeliveryRatio => Probe::ClassDeliveryRatio,
                ProbeName::ReadinessRatio => Probe::ReadinessRatio,
            };
            let range = if probe.higher_is_worse() {
                (0.0, LATENCY_MS_MAX as f64)
            } else {
                (0.0, 1.0)
            };
            let key = format!("abort {}", probe.as_str());
            let limit = match (&a.above, &a.below) {
                (Some(v), None) => self
                    .number(v, &format!("{key}: above"), range)
                    .map(Limit::Above),
                (None, Some(v)) => self
                    .number(v, &format!("{key}: below"), range)
                    .map(Limit::Below),
                _ => {
                    self.refuse(
                        DrillErrorCode::BadValue,
                        entry.span(),
                        format!("{key}: give exactly one of above and below"),
                    );
                    None
                }
            };
            let max_s = duration_s.map_or(DURATION_S_MAX, |d| {
                i64::try_from(d).unwrap_or(DURATION_S_MAX)
            });
            let for_ms = match &a.for_s {
                Some(v) => self
                    .int(
                        v,
                        &format!("{key}: for_s"),
                        (0, max_s),
                        DrillErrorCode::BadTiming,
                    )
                    .map(|s| s * 1000),
                None => Some(0),
            };
            match (limit, for_ms) {
                (Some(limit), Some(for_ms)) => out.push(AbortCondition {
                    probe,
                    limit,
                    for_ms,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn faults(
        &mut self,
        entries: &[Spanned<FaultFile>],
        duration_s: Option<u64>,
        cluster: &Cluster,
    ) -> Option<Vec<Fault>> {
        if entries.len() > FAULTS_MAX {
            self.refuse(
                DrillErrorCode::TooMany,
                entries[FAULTS_MAX].span(),
                format!(
                    "a drill has at most {FAULTS_MAX} [[fault]] entries, got {}",
                    entries.len()
                ),
            );
            return None;
        }
        let mut faults = Vec::new();
        let mut ok = true;
        for (index, entry) in entries.iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            match self.fault(id, entry, duration_s, cluster) {
                Some(fault) => faults.push(fault),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let before = self.errors.len();
        for (i, b) in faults.iter().enumerate() {
            for a in &faults[..i] {
                let overlap = a.start_ms < b.end_ms() && b.start_ms < a.end_ms();
                if !overlap {
                    continue;
                }
                let ra = a.resources();
                let clash = b
                    .resources()
                    .into_iter()
                    .find(|r| ra.iter().any(|x| x.clashes(r)));
                if let Some(resource) = clash {
                    let line = b.line;
                    self.errors.push(DrillError::new(
                        DrillErrorCode::Overlap,
                        line,
                        format!(
                            "fault {} ({}) acts on {} while fault {} (line {}) does, from {} s to {} s; one must end before the other starts",
                            b.id,
                            b.kind(),
                            resource.label(),
                            a.id,
                            a.line,
                            b.start_ms.max(a.start_ms) / 1000,
                            b.end_ms().min(a.end_ms()) / 1000
                        ),
                    ));
                }
            }
        }
        (self.errors.len() == before).then_some(faults)
    }

    fn fault(
        &mut self,
        id: u32,
        entry: &Spanned<FaultFile>,
        duration_s: Option<u64>,
        cluster: &Cluster,
    ) -> Option<Fault> {
        let f = entry.get_ref();
        let line = self.line(entry.span());
        let kind = *f.kind.get_ref();
        let kind_name = match kind {
            KindName::Kill => "kill",
            KindName::Pause => "pause",
            KindName::Partition => "partition",
            KindName::Degrade => "degrade",
            KindName::DatabaseDown => "database-down",
            KindName::SandboxDrain => "sandbox-drain",
        };
        let before = self.errors.len();
        // Keys each kind takes; any other optional key is refused by name.
        let allowed: &[&str] = match kind {
            KindName::Kill | KindName::Pause => &["target", "region"],
            KindName::Partition => &["from", "to", "direction", "via"],
            KindName::Degrade => &[
                "from",
                "to",
                "direction",
                "via",
                "latency_ms",
                "jitter_ms",
                "loss_percent",
            ],
            KindName::DatabaseDown => &[],
            KindName::SandboxDrain => &["region"],
        };
        let present: [(&str, Option<Range<usize>>); 9] = [
            ("target", f.target.as_ref().map(Spanned::span)),
            ("region", f.region.as_ref().map(Spanned::span)),
            ("from", f.from.as_ref().map(Spanned::span)),
            ("to", f.to.as_ref().map(Spanned::span)),
            ("direction", f.direction.as_ref().map(Spanned::span)),
            ("via", f.via.as_ref().map(Spanned::span)),
            ("latency_ms", f.latency_ms.as_ref().map(Spanned::span)),
            ("jitter_ms", f.jitter_ms.as_ref().map(Spanned::span)),
            ("loss_percent", f.loss_percent.as_ref().map(Spanned::span)),
        ];
        for (key, span) in present {
            if let Some(span) = span {
                if !allowed.contains(&key) {
                    self.refuse(
                        DrillErrorCode::UnknownKey,
                        span,
                        format!("fault {id}: {key} is not a key of a {kind_name} fault"),
                    );
                }
            }
        }
        let start = self.int(
            &f.start_s,
            &format!("fault {id}: start_s"),
            (0, DURATION_S_MAX),
            DrillErrorCode::BadTiming,
        );
        let length = self.int(
            &f.duration_s,
            &format!("fault {id}: duration_s"),
            (1, DURATION_S_MAX),
            DrillErrorCode::BadTiming,
        );
        if let (Some(start), Some(length), Some(drill)) = (start, length, duration_s) {
            if start + length > drill {
                self.refuse(
                    DrillErrorCode::BadTiming,
                    f.duration_s.span(),
                    format!(
                        "fault {id} ends at {} s, after the drill's end at {drill} s (duration_s)",
                        start + length
                    ),
                );
            }
        }
        let missing = |v: &mut Self, key: &str| {
            v.refuse(
                DrillErrorCode::MissingKey,
                entry.span(),
                format!("fault {id}: a {kind_name} fault needs {key}"),
            );
        };
        let action = match kind {
            KindName::Kill | KindName::Pause => {
                let process = match f.target.as_ref().map(|t| *t.get_ref()) {
                    None => {
                        missing(self, "target");
                        None
                    }
                    Some(TargetName::Edge) => match &f.region {
                        Some(region) => self
                            .region(region, &format!("fault {id}: region"), cluster)
                            .map(Process::Edge),
                        None => {
                            missing(self, "region (with target = \"edge\")");
                            None
                        }
                    },
                    Some(other) => {
                        if let Some(region) = &f.region {
                            self.refuse(
                                DrillErrorCode::UnknownKey,
                                region.span(),
                                format!("fault {id}: region is only for target = \"edge\""),
                            );
                        }
                        Some(if other == TargetName::ClassHome {
                            Process::ClassHome
                        } else {
                            Process::ControlPlane
                        })
                    }
                };
                process.map(|p| {
                    if kind == KindName::Kill {
                        FaultAction::Kill(p)
                    } else {
                        FaultAction::Pause(p)
                    }
                })
            }
            KindName::Partition | KindName::Degrade => {
                let link = self.link(id, f, entry, kind_name, cluster);
                let via = match f.via.as_ref().map(|v| *v.get_ref()) {
                    None | Some(ViaName::FaultApi) => Via::FaultApi,
                    Some(ViaName::Netns) => Via::Netns,
                };
                if kind == KindName::Partition {
                    link.map(|link| FaultAction::Partition { link, via })
                } else {
                    self.degrade(id, f, entry, link?, via)
                }
            }
            KindName::DatabaseDown => Some(FaultAction::DatabaseDown),
            KindName::SandboxDrain => match &f.region {
                Some(region) => self
                    .region(region, &format!("fault {id}: region"), cluster)
                    .map(FaultAction::SandboxDrain),
                None => {
                    missing(self, "region");
                    None
                }
            },
        };
        let fault = Fault {
            id,
            line,
            start_ms: start? * 1000,
            duration_ms: length? * 1000,
            action: action?,
        };
        if fault.needs_root() && cluster.privilege() == Privilege::Unprivileged {
            self.refuse(
                DrillErrorCode::NeedsRoot,
                entry.span(),
                format!(
                    "fault {id}: {} is an OS-level fault and needs root; run the drill as root{}",
                    fault.label(),
                    if matches!(fault.action, FaultAction::DatabaseDown) {
                        ""
                    } else {
                        ", or use via = \"fault-api\""
                    }
                ),
            );
        }
        (self.errors.len() == before).then_some(fault)
    }

    fn link(
        &mut self,
        id: u32,
        f: &FaultFile,
        entry: &Spanned<FaultFile>,
        kind_name: &str,
        cluster: &Cluster,
    ) -> Option<Link> {
        let side = |v: &mut Self, key: &str, value: &Option<Spanned<Vec<String>>>| {
            let Some(value) = value else {
                v.refuse(
                    DrillErrorCode::MissingKey,
                    entry.span(),
                    format!("fault {id}: a {kind_name} fault needs {key}"),
                );
                return None;
            };
            if value.get_ref().is_empty() {
                v.refuse(
                    DrillErrorCode::BadValue,
                    value.span(),
                    format!("fault {id}: {key} must name at least one region"),
                );
                return None;
            }
            let mut out: Vec<Endpoint> = Vec::new();
            let mut ok = true;
            for name in value.get_ref() {
                let endpoint = if name == CONTROL_PLANE {
                    Endpoint::ControlPlane
                } else if cluster.has_region(name) {
                    Endpoint::Region(name.clone())
                } else {
                    v.refuse(
                        DrillErrorCode::UnknownRegion,
                        value.span(),
                        format!(
                            "fault {id}: {key}: the cluster has no region {name:?}; it has {} (and {CONTROL_PLANE})",
                            cluster.regions().join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                };
                if !out.contains(&endpoint) {
                    out.push(endpoint);
                }
            }
            ok.then_some(out)
        };
        let from = side(self, "from", &f.from);
        let to = side(self, "to", &f.to);
        let (from, to) = (from?, to?);
        if let Some(both) = from.iter().find(|e| to.contains(e)) {
            let span = f.to.as_ref().map_or(entry.span(), Spanned::span);
            self.refuse(
                DrillErrorCode::BadValue,
                span,
                format!(
                    "fault {id}: {} is on both sides (from and to)",
                    both.label()
                ),
            );
            return None;
        }
        let direction = match f.direction.as_ref().map(|d| *d.get_ref()) {
            None | Some(DirectionName::Both) => Direction::Both,
            Some(DirectionName::OneWay) => Direction::OneWay,
        };
        Some(Link {
            from,
            to,
            direction,
        })
    }

    fn degrade(
        &mut self,
        id: u32,
        f: &FaultFile,
        entry: &Spanned<FaultFile>,
        link: Link,
        via: Via,
    ) -> Option<FaultAction> {
        let range = (0, LATENCY_MS_MAX);
        let latency = match &f.latency_ms {
            Some(v) => self.int(
                v,
                &format!("fault {id}: latency_ms"),
                range,
                DrillErrorCode::BadValue,
            ),
            None => Some(0),
        };
        let jitter = match &f.jitter_ms {
            Some(v) => self.int(
                v,
                &format!("fault {id}: jitter_ms"),
                range,
                DrillErrorCode::BadValue,
            ),
            None => Some(0),
        };
        let loss = match &f.loss_percent {
            Some(v) => self.number(v, &format!("fault {id}: loss_percent"), (0.0, 100.0)),
            None => Some(0.0),
        };
        let (latency, jitter, loss) = (latency?, jitter?, loss?);
        if jitter > latency {
            let span = f.jitter_ms.as_ref().map_or(entry.span(), Spanned::span);
            self.refuse(
                DrillErrorCode::BadValue,
                span,
                format!("fault {id}: jitter_ms ({jitter}) cannot exceed latency_ms ({latency})"),
            );
            return None;
        }
        if latency == 0 && loss == 0.0 {
            self.refuse(
                DrillErrorCode::BadValue,
                entry.span(),
                format!("fault {id}: a degrade fault needs latency_ms or loss_percent above 0"),
            );
            return None;
        }
        Some(FaultAction::Degrade {
            link,
            via,
            latency_ms: u32::try_from(latency).ok()?,
            jitter_ms: u32::try_from(jitter).ok()?,
            loss_percent: loss,
        })
    }
}
