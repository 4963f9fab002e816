//! `lyceum chaos run`: one drill against the dev cluster, start to report.
//!
//! The order of things is the plan's (`chaos::plan`); this module only
//! executes its steps on a 100 ms tick, samples the probes every
//! `interval_ms`, aborts (healing everything) when an abort condition
//! trips or the operator presses Ctrl-C, and after the settle time reads
//! the platform, runs the checker and writes the report. One drill runs at
//! a time per data dir: the runner holds an exclusive lock on
//! `chaos/drill.lock` there, which the OS releases if the runner dies.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chaos::checker::{self, Acknowledged, Platform};
use chaos::drill::{Drill, Probe};
use chaos::live::{Counters, LiveState, LiveStatus};
use chaos::plan::{AbortWatch, Action, Plan, Step};
use chaos::report::{Aborted, FaultEvent, ProbeSeries, Report, Sample, TimelineEntry};
use tokio::time::Instant;

use super::faults::{self, Faults};
use super::outcome::{self, EXIT_DID_NOT_HOLD, EXIT_REFUSED};
use super::platform::{self, ReadinessLog, Target};
use super::record::{Observed, REQUEST_TIMEOUT};
use super::workload::{self, Running};
use crate::cli::ChaosRunArgs;
use crate::cluster_file::ClusterFile;
use crate::config::Config;

/// How often the runner looks for due steps.
const TICK: Duration = Duration::from_millis(100);

/// How often the live timeline prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Longest a readiness probe waits for one process.
const READINESS_TIMEOUT_MAX: Duration = Duration::from_secs(2);

/// How long the runner waits for every process to be ready before a drill
/// (a previous drill's restarts may still be settling); a drill starts
/// only from the steady state.
const READY_BEFORE_MAX: Duration = Duration::from_secs(120);

/// Runs the drill of `args`; the exit code.
///
/// # Errors
/// When the cluster cannot be read or prepared, or the report written.
pub(super) async fn run(args: &ChaosRunArgs, config: &Config) -> anyhow::Result<u8> {
    let cluster_path = args
        .cluster
        .cluster
        .clone()
        .unwrap_or_else(|| config.data_dir.join("cluster.json"));
    let (file, cluster) = outcome::read_cluster(&cluster_path)?;
    let drill = match Drill::load(&args.drill, &cluster) {
        Ok(drill) => drill,
        Err(errors) => {
            eprintln!("{}: refused:", args.drill.display());
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            return Ok(EXIT_REFUSED);
        }
    };
    let unsupported = faults::unsupported(&drill, &file);
    if !unsupported.is_empty() {
        eprintln!(
            "{}: refused: this runner cannot run it yet [unsupported]:",
            args.drill.display()
        );
        for reason in &unsupported {
            eprintln!("  {reason}");
        }
        return Ok(EXIT_REFUSED);
    }
    let data_dir = cluster_path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let Some(_lock) = outcome::drill_lock(&data_dir.join("chaos"))? else {
        eprintln!(
            "lyceum chaos: another drill runs against this cluster ({}); one at a time [drill_running]",
            data_dir.join("chaos").join("drill.lock").display()
        );
        return Ok(EXIT_REFUSED);
    };
    let reports = args
        .reports
        .clone()
        .unwrap_or_else(|| data_dir.join("chaos").join("reports"));
    std::fs::create_dir_all(&reports)
        .with_context(|| format!("create the report folder {}", reports.display()))?;

    let mut live = LiveFile::new(
        chaos::live::LiveStatus::path(&data_dir.join("chaos")),
        LiveStatus::preparing(&drill, std::process::id(), crate::store::now_rfc3339()),
    );
    live.save();
    let outcome = async {
        let runner = Runner::prepare(&drill, &file).await?;
        let report = runner.execute(&drill, &mut live).await?;
        let written = report
            .write(&reports)
            .map_err(|err| anyhow::anyhow!("{err} ({})", err.as_str()))?;
        anyhow::Ok((report, written))
    }
    .await;
    let (report, (json, html)) = match outcome {
        Ok(done) => done,
        Err(err) => {
            live.status.fail(format!("{err:#}"));
            live.save();
            return Err(err);
        }
    };
    live.status.finish(&report);
    live.save();
    print_summary(&report);
    println!("report: {}\n        {}", json.display(), html.display());
    Ok(if report.summary.hypothesis_held {
        0
    } else {
        EXIT_DID_NOT_HOLD
    })
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The live status and its file, which the console reads. A failed write
/// is logged and the drill goes on: the file is for watching, the report
/// is the record.
struct LiveFile {
    path: PathBuf,
    status: LiveStatus,
}

impl LiveFile {
    fn new(path: PathBuf, status: LiveStatus) -> Self {
        Self { path, status }
    }

    fn save(&self) {
        if let Err(err) = self.status.write(&self.path) {
            tracing::warn!(error = %err, code = err.as_str(), "the drill's live status was not written");
        }
    }
}

struct Runner {
    http: reqwest::Client,
    cp: String,
    operator: String,
    setup: Arc<workload::Setup>,
    faults: Faults,
    targets: Vec<Target>,
}

impl Runner {
    async fn prepare(drill: &Drill, file: &ClusterFile) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let cp = file.control_plane.url.trim_end_matches('/').to_owned();
        let edges: Vec<String> = drill
            .workload()
            .regions
            .iter()
            .filter_map(|region| {
                file.edges
                    .iter()
                    .find(|e| &e.region == region)
                    .map(|e| e.url.clone())
            })
            .collect();
        let mut targets = vec![Target {
            name: "control-plane".to_owned(),
            url: cp.clone(),
        }];
        targets.extend(file.edges.iter().map(|e| Target {
            name: format!("edge-{}", e.region),
            url: e.url.clone(),
        }));
        let deadline = Instant::now() + READY_BEFORE_MAX;
        loop {
            let ready = platform::readiness(&http, &targets, READINESS_TIMEOUT_MAX).await;
            if ready.iter().all(|r| *r) {
                break;
            }
            if Instant::now() >= deadline {
                let down: Vec<&str> = targets
                    .iter()
                    .zip(&ready)
                    .filter(|(_, r)| !**r)
                    .map(|(t, _)| t.name.as_str())
                    .collect();
                anyhow::bail!(
                    "the cluster is not ready after {} s ({} not ready); a drill starts from the steady state",
                    READY_BEFORE_MAX.as_secs(),
                    down.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let setup = workload::prepare(&http, &cp, &file.tokens, drill.workload(), edges).await?;
        Ok(Self {
            faults: Faults::new(http.clone(), file),
            http,
            cp,
            operator: file.tokens.operator.clone(),
            setup: Arc::new(setup),
            targets,
        })
    }

    async fn execute(self, drill: &Drill, live: &mut LiveFile) -> anyhow::Result<Report> {
        let plan = Plan::new(drill);
        let mut progress = plan.start();
        let mut watch = AbortWatch::new(drill);
        let observed = Arc::new(Observed::default());
        let in_class = Arc::new(super::classes::Observed::new(
            drill.probes().class_delivery_within_ms,
            drill.workload().classes,
        ));
        let faults = self.faults.with_class_home(in_class.clone());
        let started_at = crate::store::now_rfc3339();
        let start = Instant::now();
        let interval = Duration::from_millis(drill.probes().interval_ms);
        let readiness_timeout = (interval * 4 / 5).min(READINESS_TIMEOUT_MAX);
        let (probe_tx, mut probe_rx) = tokio::sync::mpsc::channel::<(u64, Vec<bool>)>(8);
        let mut series: Vec<ProbeSeries> = Probe::ALL
            .iter()
            .map(|probe| ProbeSeries {
                probe: *probe,
                threshold: drill.probes().threshold(*probe),
                samples: Vec::new(),
            })
            .collect();
        let mut readiness = ReadinessLog::default();
        let mut timeline: Vec<TimelineEntry> = Vec::new();
        let mut pending: Vec<Step> = Vec::new();
        let mut aborted: Option<Aborted> = None;
        let mut running: Option<Running> = None;
        let mut healed_at_ms = 0_u64;
        let mut next_probe = start + interval;
        let mut next_progress = start + PROGRESS_EVERY;
        let mut last_ready = (0_usize, self.targets.len());
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        let mut interrupted = false;
        println!(
            "lyceum chaos: {} ({}): {} s of workload, then {} s to settle",
            drill.name(),
            drill.title(),
            drill.duration_ms() / 1000,
            drill.settle_ms() / 1000
        );

        live.status.state = LiveState::Running;
        live.save();
        'drill: loop {
            let now_ms = ms(start.elapsed());
            let events = timeline.len();
            pending.extend(progress.due(now_ms));
            while let Some(at) = pending.first().map(|s| s.at_ms) {
                if at > now_ms {
                    break;
                }
                let step = pending.remove(0);
                let at_ms = ms(start.elapsed());
                match step.action {
                    Action::StartWorkload => {
                        running = Some(Running::start(
                            self.http.clone(),
                            self.setup.clone(),
                            drill.workload(),
                            start,
                            observed.clone(),
                            in_class.clone(),
                        ));
                        line(at_ms, "workload started");
                    }
                    Action::StopWorkload => {
                        if let Some(running) = &running {
                            running.stop();
                        }
                        line(at_ms, "workload stopped; settling");
                    }
                    Action::Apply(id) => {
                        let (event, detail) = match faults.apply(drill, id).await {
                            Ok(detail) => (FaultEvent::Applied, detail),
                            Err(why) => (FaultEvent::Failed, why),
                        };
                        timeline.push(entry(drill, id, at_ms, event, detail));
                    }
                    Action::Heal(id) => {
                        let event = if aborted.is_some() {
                            FaultEvent::HealedOnAbort
                        } else {
                            FaultEvent::Healed
                        };
                        let detail = match faults.heal(drill, id).await {
                            Ok(detail) => detail,
                            Err(why) => format!(
                                "the heal failed ({why}); the supervisor heals it at the fault's deadline"
                            ),
                        };
                        healed_at_ms = at_ms;
                        timeline.push(entry(drill, id, at_ms, event, detail));
                    }
                    Action::Check => break 'drill,
                }
            }

            let trip_at = |aborted: &mut Option<Aborted>, at_ms: u64, reason: String| {
                if aborted.is_none() {
                    line(at_ms, &format!("ABORT: {reason}; healing everything"));
                    *aborted = Some(Aborted { at_ms, reason });
                }
            };
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                Some((at_ms, ready)) = probe_rx.recv() => {
                    readiness.record(&self.targets, at_ms, &ready);
                    let up = ready.iter().filter(|r| **r).count();
                    last_ready = (up, ready.len());
                    let total = u32::try_from(ready.len()).unwrap_or(u32::MAX);
                    let up32 = u32::try_from(up).unwrap_or(u32::MAX);
                    if let Some(value) = chaos::probe::readiness_ratio(up32, total) {
                        push(&mut series, Probe::ReadinessRatio, at_ms, value);
                        if let Some(trip) = watch.observe(Probe::ReadinessRatio, at_ms, value) {
                            trip_at(&mut aborted, at_ms, trip.reason());
                            pending.extend(progress.abort(at_ms));
                        }
                    }
                }
                result = &mut interrupt, if !interrupted => {
                    interrupted = true;
                    let _ = result;
                    let at_ms = ms(start.elapsed());
                    trip_at(&mut aborted, at_ms, "interrupted by the operator (Ctrl-C, or the console's abort)".to_owned());
                    pending.extend(progress.abort(at_ms));
                }
            }

            if timeline.len() != events {
                live.status.timeline.clone_from(&timeline);
                live.save();
            }
            if Instant::now() >= next_probe {
                next_probe += interval;
                let at_ms = ms(start.elapsed());
                live.status.elapsed_ms = at_ms;
                live.status.timeline.clone_from(&timeline);
                live.status.probes.clone_from(&series);
                live.status.aborted.clone_from(&aborted);
                live.status.counters = Counters {
                    answered: observed.ok.load(Ordering::Relaxed),
                    failed: observed.failed.load(Ordering::Relaxed),
                    skipped: observed.skipped.load(Ordering::Relaxed),
                    in_class: in_class.connected.load(Ordering::Relaxed),
                    failovers: in_class.failovers.load(Ordering::Relaxed),
                    reconnects: in_class.reconnects.load(Ordering::Relaxed),
                };
                live.save();
                let p99 = observed.latency.lock().ok().and_then(|mut w| w.take_p99());
                if let Some(value) = p99 {
                    push(&mut series, Probe::RunLatencyP99Ms, at_ms, value);
                    if let Some(trip) = watch.observe(Probe::RunLatencyP99Ms, at_ms, value) {
                        trip_at(&mut aborted, at_ms, trip.reason());
                        pending.extend(progress.abort(at_ms));
                    }
                }
                let ratio = in_class
                    .delivery
                    .lock()
                    .ok()
                    .and_then(|mut d| d.take_ratio(at_ms));
                if let Some(value) = ratio {
                    push(&mut series, Probe::ClassDeliveryRatio, at_ms, value);
                    if let Some(trip) = watch.observe(Probe::ClassDeliveryRatio, at_ms, value) {
                        trip_at(&mut aborted, at_ms, trip.reason());
                        pending.extend(progress.abort(at_ms));
                    }
                }
                let http = self.http.clone();
                let targets = self.targets.clone();
                let tx = probe_tx.clone();
                tokio::spawn(async move {
                    let ready = platform::readiness(&http, &targets, readiness_timeout).await;
                    let _ = tx.send((at_ms, ready)).await;
                });
            }
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                let p99 = series
                    .iter()
                    .find(|s| s.probe == Probe::RunLatencyP99Ms)
                    .and_then(|s| s.samples.last())
                    .map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s.value));
                let failure = observed
                    .last_failure
                    .lock()
                    .ok()
                    .and_then(|mut f| f.take())
                    .map_or_else(String::new, |f| format!(" (last failure: {f})"));
                line(
                    ms(start.elapsed()),
                    &format!(
                        "answered {}, failed {}, skipped {}; in class {}, failovers {}, reconnects {}; run p99 {p99}; ready {}/{}{failure}",
                        observed.ok.load(Ordering::Relaxed),
                        observed.failed.load(Ordering::Relaxed),
                        observed.skipped.load(Ordering::Relaxed),
                        in_class.connected.load(Ordering::Relaxed),
                        in_class.failovers.load(Ordering::Relaxed),
                        in_class.reconnects.load(Ordering::Relaxed),
                        last_ready.0,
                        last_ready.1,
                    ),
                );
            }
        }

        let clients = match running {
            Some(running) => running.finish().await,
            None => Vec::new(),
        };
        let check_ms = ms(start.elapsed());
        line(check_ms, "checking what the platform holds");
        live.status.state = LiveState::Checking;
        live.status.elapsed_ms = check_ms;
        live.status.timeline.clone_from(&timeline);
        live.status.probes.clone_from(&series);
        live.status.aborted.clone_from(&aborted);
        live.save();
        let copy = |list: &std::sync::Mutex<Vec<chaos::checker::Transfer>>| {
            list.lock().map(|l| l.clone()).unwrap_or_default()
        };
        let acknowledged = Acknowledged {
            runs: observed
                .acked
                .lock()
                .map(|acked| acked.clone())
                .unwrap_or_default(),
            clients,
            transfers: copy(&observed.transfers.accepted),
            transfers_unanswered: copy(&observed.transfers.unanswered),
        };
        let ledger = match &self.setup.ledger {
            Some((accounts, before)) => {
                super::ledger::read_back(
                    &self.http,
                    &self.cp,
                    &self.operator,
                    accounts,
                    before.clone(),
                )
                .await?
            }
            None => chaos::checker::Ledger::default(),
        };
        let platform_state = Platform {
            submissions_recorded: platform::submissions(
                &self.http,
                &self.cp,
                &self.operator,
                &self.setup.learners,
            )
            .await?,
            classes: match &self.setup.classes {
                Some(classes) => classes.read_back().await?,
                None => Vec::new(),
            },
            ledger,
            healed_at_ms,
            readiness: readiness.ready_again(&self.targets, healed_at_ms),
        };
        let verdict = checker::check(&acknowledged, &platform_state, drill.recovery_bound_ms());
        Ok(Report::new(
            drill, started_at, timeline, series, aborted, verdict,
        ))
    }
}

fn push(series: &mut [ProbeSeries], probe: Probe, at_ms: u64, value: f64) {
    if let Some(s) = series.iter_mut().find(|s| s.probe == probe) {
        s.samples.push(Sample { at_ms, value });
        let extra = s
            .samples
            .len()
            .saturating_sub(chaos::report::SAMPLES_PER_PROBE_MAX);
        s.samples.drain(..extra);
    }
}

fn entry(drill: &Drill, id: u32, at_ms: u64, event: FaultEvent, detail: String) -> TimelineEntry {
    let label = drill
        .faults()
        .iter()
        .find(|f| f.id == id)
        .map_or_else(|| format!("fault {id}"), chaos::drill::Fault::label);
    let what = match event {
        FaultEvent::Applied => "applied",
        FaultEvent::Healed => "healed",
        FaultEvent::HealedOnAbort => "healed on abort",
        FaultEvent::Failed => "FAILED",
    };
    line(at_ms, &format!("fault {id} {what}: {label}: {detail}"));
    TimelineEntry {
        at_ms,
        fault: id,
        label,
        event,
        detail: Some(detail),
    }
}

/// One line of the live timeline.
fn line(at_ms: u64, text: &str) {
    println!("[{:>7.1} s] {text}", at_ms as f64 / 1000.0);
}

fn print_summary(report: &Report) {
    let summary = &report.summary;
    let counts = &report.verdict.counts;
    println!(
        "\n{}: hypothesis {}",
        report.drill,
        if summary.hypothesis_held {
            "HELD"
        } else {
            "DID NOT HOLD"
        }
    );
    println!(
        "  acknowledged runs {}, lost {}, duplicated {}; recovery {}",
        counts.runs_acknowledged,
        summary.lost,
        summary.duplicated,
        summary
            .recovery_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
    );
    if let Some(aborted) = &report.aborted {
        println!("  aborted at {} ms: {}", aborted.at_ms, aborted.reason);
    }
    for violation in report.verdict.violations.iter().take(20) {
        println!("  violation: {violation}");
    }
    if report.verdict.violations.len() > 20 {
        println!(
            "  … {} more violation(s) in the report",
            report.verdict.violations.len() - 20
        );
    }
    for breach in summary.steady_state_breaches.iter().take(10) {
        println!(
            "  steady state broken: {} was {} at {} ms (threshold {})",
            breach.probe.as_str(),
            breach.value,
            breach.at_ms,
            breach.threshold
        );
    }
}
