//! A drill in progress, as the runner last saw it: the file
//! `<data-dir>/chaos/live.json` that the runner rewrites at every probe
//! sample and every fault event, and that the operator console reads to
//! show the timeline and the probes while the drill runs. It is a separate
//! file rather than a socket so that a drill started from the command line
//! shows in the console too, and so that the console needs no connection to
//! the runner: one drill runs per data dir, so there is one file.
//!
//! The file is replaced atomically (written beside, then renamed), so a
//! reader sees the old status or the new one, never half of one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::drill::Drill;
use crate::report::{Aborted, ProbeSeries, Report, TimelineEntry};

/// Largest live file a reader accepts: the probes of an hour's drill at one
/// sample a second fit many times over.
pub const LIVE_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// No drill has run against this data dir.
    Idle,
    /// Waiting for the cluster's steady state and setting up the workload.
    Preparing,
    /// The workload runs and faults are applied on plan.
    Running,
    /// Settled; the checker reads what the platform holds.
    Checking,
    /// The report is written.
    Finished,
    /// The runner stopped with an error before a report.
    Failed,
    /// The file says a drill runs, but no runner holds the drill lock: the
    /// runner was killed. Only readers set this, never the runner.
    Died,
}

impl LiveState {
    /// Whether a runner is still at work in this state.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Preparing | Self::Running | Self::Checking)
    }
}

/// One fault of the plan, for drawing the windows before they happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// The fault's id.
    pub id: u32,
    /// The fault, in words.
    pub label: String,
    /// When it is applied, from the start of the workload.
    pub start_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
}

/// The workload's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Runs and submissions answered.
    pub answered: u64,
    /// Runs and submissions that failed.
    pub failed: u64,
    /// Ticks skipped because too many requests were in flight.
    pub skipped: u64,
    /// Class clients connected now.
    pub in_class: u64,
    /// Class failovers the clients went through.
    pub failovers: u64,
    /// Class reconnects (other losses of the socket).
    pub reconnects: u64,
}

/// The live status of one drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// Where the drill is.
    pub state: LiveState,
    /// The runner's process id, so a console can interrupt it.
    pub pid: u32,
    /// The drill's name.
    pub drill: String,
    /// Its title.
    pub title: String,
    /// When the runner started, wall clock (RFC 3339).
    pub started_at: String,
    /// Milliseconds since the workload started (0 while preparing).
    pub elapsed_ms: u64,
    /// Where the drill ends: workload plus settle time.
    pub end_ms: u64,
    /// Every fault's window.
    pub plan: Vec<PlannedFault>,
    /// Faults applied and healed so far.
    pub timeline: Vec<TimelineEntry>,
    /// The probes so far.
    pub probes: Vec<ProbeSeries>,
    /// The workload's totals.
    pub counters: Counters,
    /// Why the drill stopped early, once it did.
    pub aborted: Option<Aborted>,
    /// The report's id (its file stem), once written.
    pub report: Option<String>,
    /// Whether the hypothesis held, once checked.
    pub hypothesis_held: Option<bool>,
    /// Why the runner stopped, for `failed`.
    pub error: Option<String>,
}

/// Why a live file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The file (or its temporary twin) could not be written or renamed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than [`LIVE_FILE_BYTES_MAX`].
    #[error("{path} is {len} bytes, more than a live status ({LIVE_FILE_BYTES_MAX})")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The file is not a live status.
    #[error("{path} is not a live status: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

impl LiveError {
    /// The stable string code of the error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Write { .. } => "live_unwritable",
            Self::Read { .. } => "live_unreadable",
            Self::TooLarge { .. } => "live_too_large",
            Self::Corrupt { .. } => "live_corrupt",
        }
    }
}

impl LiveStatus {
    /// A drill that is being prepared by the runner `pid`.
    pub fn preparing(drill: &Drill, pid: u32, started_at: String) -> Self {
        Self {
            state: LiveState::Preparing,
            pid,
            drill: drill.name().to_owned(),
            title: drill.title().to_owned(),
            started_at,
            elapsed_ms: 0,
            end_ms: drill.duration_ms() + drill.settle_ms(),
            plan: drill
                .faults()
                .iter()
                .map(|f| PlannedFault {
                    id: f.id,
                    label: f.label(),
                    start_ms: f.start_ms,
                    duration_ms: f.duration_ms,
                })
                .collect(),
            timeline: Vec::new(),
            probes: Vec::new(),
            counters: Counters::default(),
            aborted: None,
            report: None,
            hypothesis_held: None,
            error: None,
        }
    }

    /// The status once `report` is written: its timeline, probes and
    /// verdict replace what was live.
    pub fn finish(&mut self, report: &Report) {
        self.state = LiveState::Finished;
        self.elapsed_ms = self.elapsed_ms.max(report.end_ms);
        self.timeline.clone_from(&report.timeline);
        self.probes.clone_from(&report.probes);
        self.aborted.clone_from(&report.aborted);
        self.report = Some(report.file_stem());
        self.hypothesis_held = Some(report.summary.hypothesis_held);
    }

    /// The status of a runner that stopped with `error`.
    pub fn fail(&mut self, error: String) {
        self.state = LiveState::Failed;
        self.error = Some(error);
    }

    /// The live file of a data dir's `chaos` folder.
    pub fn path(chaos_dir: &Path) -> PathBuf {
        chaos_dir.join("live.json")
    }

    /// Replaces the file at `path` with this status, atomically.
    ///
    /// # Errors
    /// [`LiveError::Write`].
    pub fn write(&self, path: &Path) -> Result<(), LiveError> {
        let text = serde_json::to_vec(self).map_err(|err| LiveError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(err),
        })?;
        let tmp = path.with_extension("json.tmp");
        let write = |p: &Path, r: std::io::Result<()>| {
            r.map_err(|source| LiveError::Write {
                path: p.to_owned(),
                source,
            })
        };
        write(&tmp, std::fs::write(&tmp, text))?;
        write(path, std::fs::rename(&tmp, path))
    }

    /// The status in the file at `path`; `None` when there is no file
    /// (no drill ever ran here).
    ///
    /// # Errors
    /// [`LiveError`] when the file cannot be read, is too large or is not
    /// a live status.
    pub fn read(path: &Path) -> Result<Option<Self>, LiveError> {
        let len = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LiveError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if len > LIVE_FILE_BYTES_MAX {
            return Err(LiveError::TooLarge {
                path: path.to_owned(),
                len,
            });
        }
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LiveError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| LiveError::Corrupt {
                path: path.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, Privilege};

    const DRILL: &str = r#"
title = "t"
hypothesis = "h"
duration_s = 60
settle_s = 10
recovery_bound_s = 10
[workload]
learners = 2
classes = 0
regions = ["eu-west"]
runs_per_second = 1
ledger_transfers_per_second = 0
[probes]
interval_ms = 1000
run_latency_p99_ms = 800
class_delivery_ratio = 0.9
class_delivery_within_ms = 1000
readiness_ratio = 1.0
[[fault]]
kind = "pause"
target = "edge"
region = "eu-west"
start_s = 10
duration_s = 5
"#;

    fn drill() -> Drill {
        let cluster = Cluster::new(&["eu-west"], Privilege::Unprivileged).expect("cluster");
        Drill::parse("d", DRILL, &cluster).expect("valid drill")
    }

    #[test]
    fn round_trips_through_its_file_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = LiveStatus::path(dir.path());
        assert_eq!(LiveStatus::read(&path).expect("no file"), None);
        let mut status = LiveStatus::preparing(&drill(), 42, "2026-12-07T00:00:00Z".to_owned());
        assert_eq!(status.end_ms, 70_000);
        assert_eq!(status.plan.len(), 1);
        assert_eq!(status.plan[0].start_ms, 10_000);
        status.write(&path).expect("write");
        assert_eq!(LiveStatus::read(&path).expect("read"), Some(status.clone()));
        status.fail("boom".to_owned());
        status.write(&path).expect("rewrite");
        let back = LiveStatus::read(&path).expect("read").expect("some");
        assert_eq!(back.state, LiveState::Failed);
        assert!(!back.state.is_active());
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_file_that_is_not_a_status_is_corrupt_not_a_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = LiveStatus::path(dir.path());
        std::fs::write(&path, b"{\"state\": \"running\"}").expect("write");
        let err = LiveStatus::read(&path).expect_err("corrupt");
        assert_eq!(err.as_str(), "live_corrupt");
    }

    #[test]
    fn states_have_their_wire_names() {
        let names: Vec<String> = [
            LiveState::Idle,
            LiveState::Preparing,
            LiveState::Running,
            LiveState::Checking,
            LiveState::Finished,
            LiveState::Failed,
            LiveState::Died,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).expect("json"))
        .collect();
        assert_eq!(
            names.join(","),
            r#""idle","preparing","running","checking","finished","failed","died""#
        );
    }
}
