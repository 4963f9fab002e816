//! The record of one drill run: the timeline of faults applied and healed,
//! the probe samples, the checker's verdict and the summary numbers an
//! operator reads first (recovery time, probe values during the faults,
//! lost and duplicated counts). It is written twice: as JSON, for the
//! console and for comparing runs, and as one self-contained HTML page
//! (inline CSS, inline SVG charts, no script, no external resource) that
//! opens from disk without a server. The page is an askama template, so
//! every piece of text, the drill's own name and title included, is
//! HTML-escaped.

use std::path::{Path, PathBuf};

use askama::Template;
use serde::{Deserialize, Serialize};

use crate::checker::Verdict;
use crate::drill::{Drill, Probe};

/// Most samples kept per probe in a report: an hour at one per second.
/// A runner keeps the newest ones when a drill samples more.
pub const SAMPLES_PER_PROBE_MAX: usize = 3600;

/// Most steady-state breaches listed in a summary; the rest are counted in
/// `Summary::steady_state_breaches_omitted`.
pub const BREACHES_LISTED_MAX: usize = 100;

/// What happened to a fault at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultEvent {
    /// Applied at its planned time.
    Applied,
    /// Healed at the end of its window.
    Healed,
    /// Healed early because the drill aborted.
    HealedOnAbort,
    /// The runner could not apply it (the detail says why); it was healed
    /// anyway.
    Failed,
}

impl FaultEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Healed => "healed",
            Self::HealedOnAbort => "healed on abort",
            Self::Failed => "failed",
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When, in milliseconds from the start of the workload.
    pub at_ms: u64,
    /// The fault's id (its position in the drill file).
    pub fault: u32,
    /// The fault, in words.
    pub label: String,
    /// What happened.
    pub event: FaultEvent,
    /// More, such as the error of a failed fault or the resolved class home.
    pub detail: Option<String>,
}

/// One sample of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When, in milliseconds from the start of the workload.
    pub at_ms: u64,
    /// The value, in the probe's unit.
    pub value: f64,
}

/// Every sample of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSeries {
    /// The probe.
    pub probe: Probe,
    /// Its steady-state threshold from the drill.
    pub threshold: f64,
    /// The samples, in time order, at most [`SAMPLES_PER_PROBE_MAX`], each a
    /// finite number (`Report::new` drops any other).
    pub samples: Vec<Sample>,
}

/// Why a drill stopped early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// When.
    pub at_ms: u64,
    /// Why, in words (the condition and the value that broke it).
    pub reason: String,
}

/// The worst value of a probe while any fault was applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DuringFault {
    /// The probe.
    pub probe: Probe,
    /// Its worst sample inside a fault window (absent: no sample there).
    pub worst: Option<f64>,
}

/// A probe sample outside its steady-state threshold at a time the drill
/// expected steady state: before a fault, or after a fault's heal plus the
/// recovery bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SteadyBreach {
    /// The probe.
    pub probe: Probe,
    /// When.
    pub at_ms: u64,
    /// The sample.
    pub value: f64,
    /// The threshold it broke.
    pub threshold: f64,
}

/// The numbers read first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The verdict held, the steady state held outside the faults and their
    /// recovery, and the drill was not aborted.
    pub hypothesis_held: bool,
    /// The longest time from the last heal to a process being ready.
    pub recovery_ms: Option<u64>,
    /// Acknowledged things lost (runs, events, transfers).
    pub lost: u64,
    /// Acknowledged things doubled (runs, events).
    pub duplicated: u64,
    /// Each probe's worst value during the faults.
    pub during_fault: Vec<DuringFault>,
    /// Samples that broke the steady state where it was expected, up to
    /// [`BREACHES_LISTED_MAX`].
    pub steady_state_breaches: Vec<SteadyBreach>,
    /// Breaches beyond the listed ones.
    pub steady_state_breaches_omitted: u64,
}

/// The whole record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The drill's name (its file's stem).
    pub drill: String,
    /// Its title.
    pub title: String,
    /// Its hypothesis.
    pub hypothesis: String,
    /// When the run started, wall clock, as the runner wrote it (RFC 3339).
    pub started_at: String,
    /// Where the drill ends: workload duration plus settle time.
    pub end_ms: u64,
    /// The drill's recovery bound.
    pub recovery_bound_ms: u64,
    /// Faults applied and healed.
    pub timeline: Vec<TimelineEntry>,
    /// The probes.
    pub probes: Vec<ProbeSeries>,
    /// Set when the drill stopped early.
    pub aborted: Option<Aborted>,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// The summary, computed from the rest.
    pub summary: Summary,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The HTML template failed.
    #[error("cannot render the report page: {0}")]
    Render(#[from] askama::Error),
    /// The JSON could not be made.
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ReportError {
    /// The stable string code of the error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Render(_) => "report_render",
            Self::Encode(_) => "report_encode",
            Self::Write { .. } => "report_write",
        }
    }
}

impl Report {
    /// Assembles a report and computes its summary.
    pub fn new(
        drill: &Drill,
        started_at: String,
        timeline: Vec<TimelineEntry>,
        mut probes: Vec<ProbeSeries>,
        aborted: Option<Aborted>,
        verdict: Verdict,
    ) -> Self {
        for series in &mut probes {
            // JSON has no NaN or infinity, and the probes never make one.
            series.samples.retain(|s| s.value.is_finite());
            let extra = series.samples.len().saturating_sub(SAMPLES_PER_PROBE_MAX);
            series.samples.drain(..extra);
        }
        let windows = windows(&timeline);
        let during_fault = probes
            .iter()
            .map(|series| DuringFault {
                probe: series.probe,
                worst: worst_in(series, &windows),
            })
            .collect();
        let (steady_state_breaches, steady_state_breaches_omitted) =
            breaches(&probes, &windows, drill.recovery_bound_ms());
        let summary = Summary {
            hypothesis_held: verdict.held()
                && aborted.is_none()
                && steady_state_breaches.is_empty(),
            recovery_ms: verdict.counts.recovery_ms,
            lost: verdict.counts.lost(),
            duplicated: verdict.counts.duplicated(),
            during_fault,
            steady_state_breaches,
            steady_state_breaches_omitted,
        };
        Self {
            drill: drill.name().to_owned(),
            title: drill.title().to_owned(),
            hypothesis: drill.hypothesis().to_owned(),
            started_at,
            end_ms: drill.duration_ms() + drill.settle_ms(),
            recovery_bound_ms: drill.recovery_bound_ms(),
            timeline,
            probes,
            aborted,
            verdict,
            summary,
        }
    }

    /// The report as pretty JSON.
    ///
    /// # Errors
    /// [`ReportError::Encode`] (only if a number cannot be encoded).
    pub fn to_json(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The report as one self-contained HTML page.
    ///
    /// # Errors
    /// [`ReportError::Render`] when the template fails.
    pub fn to_html(&self) -> Result<String, ReportError> {
        Ok(Page::new(self).render()?)
    }

    /// A file name stem safe on any file system: the drill's name and the
    /// start time, with anything but `a-z0-9-_` replaced by `_`.
    pub fn file_stem(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .take(80)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("{}-{}", clean(&self.drill), clean(&self.started_at))
    }

    /// Writes `<stem>.json` and `<stem>.html` into `dir`, returning both
    /// paths.
    ///
    /// # Errors
    /// [`ReportError`] when rendering or writing fails.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ReportError> {
        let stem = self.file_stem();
        let json_path = dir.join(format!("{stem}.json"));
        let html_path = dir.join(format!("{stem}.html"));
        for (path, text) in [(&json_path, self.to_json()?), (&html_path, self.to_html()?)] {
            std::fs::write(path, text).map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok((json_path, html_path))
    }
}

/// The summary of several runs as a Markdown table, one row a run: what
/// the README shows for each catalogue drill. Cells are single-line, with
/// `|` escaped, whatever a drill's name holds.
pub fn markdown_table(reports: &[Report]) -> String {
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    let worst = |r: &Report, probe: Probe| {
        r.summary
            .during_fault
            .iter()
            .find(|d| d.probe == probe)
            .and_then(|d| d.worst)
            .map_or("-".to_owned(), |v| value(probe, v))
    };
    let mut out = String::from(
        "| drill | hypothesis | recovery | run p99 during faults | class delivery during faults | readiness during faults | lost | duplicated |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&r.drill),
            if r.summary.hypothesis_held {
                "held"
            } else if r.aborted.is_some() {
                "aborted"
            } else {
                "did not hold"
            },
            r.summary.recovery_ms.map_or("never".to_owned(), seconds),
            worst(r, Probe::RunLatencyP99Ms),
            worst(r, Probe::ClassDeliveryRatio),
            worst(r, Probe::ReadinessRatio),
            r.summary.lost,
            r.summary.duplicated,
        ));
    }
    out
}

/// Each fault's window, from applied to healed (or to the end when never
/// healed, which a correct runner never leaves).
fn windows(timeline: &[TimelineEntry]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (i, entry) in timeline.iter().enumerate() {
        if entry.event != FaultEvent::Applied {
            continue;
        }
        let end = timeline[i + 1..]
            .iter()
            .find(|e| {
                e.fault == entry.fault
                    && matches!(e.event, FaultEvent::Healed | FaultEvent::HealedOnAbort)
            })
            .map_or(u64::MAX, |e| e.at_ms);
        out.push((entry.at_ms, end));
    }
    out
}

/// Samples that break their probe's threshold outside every fault window
/// extended by the recovery bound.
fn breaches(
    probes: &[ProbeSeries],
    windows: &[(u64, u64)],
    recovery_bound_ms: u64,
) -> (Vec<SteadyBreach>, u64) {
    let mut listed = Vec::new();
    let mut omitted = 0;
    for series in probes {
        let higher_is_worse = series.probe.higher_is_worse();
        for sample in &series.samples {
            let excused = windows.iter().any(|(a, b)| {
                *a <= sample.at_ms && sample.at_ms <= b.saturating_add(recovery_bound_ms)
            });
            let ok = if higher_is_worse {
                sample.value <= series.threshold
            } else {
                sample.value >= series.threshold
            };
            if excused || ok {
                continue;
            }
            if listed.len() < BREACHES_LISTED_MAX {
                listed.push(SteadyBreach {
                    probe: series.probe,
                    at_ms: sample.at_ms,
                    value: sample.value,
                    threshold: series.threshold,
                });
            } else {
                omitted += 1;
            }
        }
    }
    (listed, omitted)
}

fn worst_in(series: &ProbeSeries, windows: &[(u64, u64)]) -> Option<f64> {
    let inside = series
        .samples
        .iter()
        .filter(|s| windows.iter().any(|(a, b)| *a <= s.at_ms && s.at_ms <= *b))
        .map(|s| s.value);
    if series.probe.higher_is_worse() {
        inside.reduce(f64::max)
    } else {
        inside.reduce(f64::min)
    }
}

/// Chart geometry, in SVG user units.
const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 160.0;
const CHART_LEFT: f64 = 56.0;
const CHART_BOTTOM: f64 = 20.0;
const CHART_TOP: f64 = 8.0;

/// The HTML page; every field is plain text or numbers, escaped by askama.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    report: &'a Report,
    held: bool,
    verdict_text: &'static str,
    aborted_at: String,
    summary_rows: Vec<(String, String)>,
    timeline: Vec<(String, String, String, String, String)>,
    charts: Vec<Chart>,
    violations: Vec<String>,
}

struct Chart {
    title: String,
    width: String,
    height: String,
    points: String,
    threshold_y: String,
    threshold_label: String,
    threshold_label_y: String,
    top_label: String,
    faults: Vec<(String, String)>,
    x_end_label: String,
    plot_left: String,
    plot_bottom: String,
    plot_right: String,
}

fn seconds(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    format!("{s:.1} s")
}

fn value(probe: Probe, v: f64) -> String {
    if probe.higher_is_worse() {
        format!("{v:.0} ms")
    } else {
        format!("{:.1} %", v * 100.0)
    }
}

impl<'a> Page<'a> {
    fn new(report: &'a Report) -> Self {
        let held = report.summary.hypothesis_held;
        let verdict_text = if held {
            "the hypothesis held"
        } else if report.aborted.is_some() {
            "aborted: the hypothesis did not hold"
        } else {
            "the hypothesis did not hold"
        };
        let mut summary_rows = vec![
            (
                "recovery time".to_owned(),
                report
                    .summary
                    .recovery_ms
                    .map_or("never ready".to_owned(), seconds),
            ),
            (
                "recovery bound".to_owned(),
                seconds(report.recovery_bound_ms),
            ),
            ("lost".to_owned(), report.summary.lost.to_string()),
            (
                "duplicated".to_owned(),
                report.summary.duplicated.to_string(),
            ),
            (
                "runs acknowledged".to_owned(),
                report.verdict.counts.runs_acknowledged.to_string(),
            ),
            (
                "class events received".to_owned(),
                report.verdict.counts.events_received.to_string(),
            ),
            (
                "transfers accepted".to_owned(),
                report.verdict.counts.transfers_accepted.to_string(),
            ),
        ];
        for d in &report.summary.during_fault {
            summary_rows.push((
                format!("{} during faults (worst)", d.probe.as_str()),
                d.worst
                    .map_or("no sample".to_owned(), |v| value(d.probe, v)),
            ));
        }
        let timeline = report
            .timeline
            .iter()
            .map(|e| {
                (
                    seconds(e.at_ms),
                    e.fault.to_string(),
                    e.label.clone(),
                    e.event.as_str().to_owned(),
                    e.detail.clone().unwrap_or_default(),
                )
            })
            .collect();
        let windows = windows(&report.timeline);
        let charts = report
            .probes
            .iter()
            .map(|s| chart(s, report.end_ms, &windows))
            .collect();
        summary_rows.push((
            "steady-state breaches".to_owned(),
            (report.summary.steady_state_breaches.len() as u64
                + report.summary.steady_state_breaches_omitted)
                .to_string(),
        ));
        let mut violations: Vec<String> = report
            .verdict
            .violations
            .iter()
            .map(ToString::to_string)
            .collect();
        for b in &report.summary.steady_state_breaches {
            violations.push(format!(
                "{} was {} at {}, outside its steady state ({}) with no fault to excuse it",
                b.probe.as_str(),
                value(b.probe, b.value),
                seconds(b.at_ms),
                value(b.probe, b.threshold)
            ));
        }
        if report.summary.steady_state_breaches_omitted > 0 {
            violations.push(format!(
                "and {} more steady-state breaches not listed",
                report.summary.steady_state_breaches_omitted
            ));
        }
        if report.verdict.omitted > 0 {
            violations.push(format!("and {} more not listed", report.verdict.omitted));
        }
        Self {
            report,
            held,
            verdict_text,
            aborted_at: report
                .aborted
                .as_ref()
                .map_or_else(String::new, |a| seconds(a.at_ms)),
            summary_rows,
            timeline,
            charts,
            violations,
        }
    }
}

fn chart(series: &ProbeSeries, end_ms: u64, windows: &[(u64, u64)]) -> Chart {
    let end = end_ms.max(1) as f64;
    let plot_w = CHART_WIDTH - CHART_LEFT - 8.0;
    let plot_h = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM;
    let top = if series.probe.higher_is_worse() {
        let highest = series
            .samples
            .iter()
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .fold(series.threshold, f64::max);
        (highest * 1.1).max(1.0)
    } else {
        1.0
    };
    let x = |ms: u64| CHART_LEFT + (ms.min(end_ms) as f64 / end) * plot_w;
    let y = |v: f64| {
        let v = if v.is_finite() {
            v.clamp(0.0, top)
        } else {
            top
        };
        CHART_TOP + plot_h - v / top * plot_h
    };
    let points = series
        .samples
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.at_ms), y(s.value)))
        .collect::<Vec<_>>()
        .join(" ");
    let faults = windows
        .iter()
        .map(|(a, b)| {
            let left = x(*a);
            (
                format!("{left:.1}"),
                format!("{:.1}", (x(*b) - left).max(1.0)),
            )
        })
        .collect();
    Chart {
        title: series.probe.as_str().to_owned(),
        width: format!("{CHART_WIDTH:.0}"),
        height: format!("{CHART_HEIGHT:.0}"),
        points,
        threshold_y: format!("{:.1}", y(series.threshold)),
        threshold_label: format!("steady {}", value(series.probe, series.threshold)),
        // Just above the dashed line, inside the picture.
        threshold_label_y: format!("{:.1}", (y(series.threshold) - 3.0).max(10.0)),
        top_label: value(series.probe, top),
        faults,
        x_end_label: seconds(end_ms),
        plot_left: format!("{CHART_LEFT:.1}"),
        plot_bottom: format!("{:.1}", CHART_TOP + plot_h),
        plot_right: format!("{:.1}", CHART_LEFT + plot_w),
    }
}
