//! `lyceum chaos`: the operator's side of the drills in `chaos/`. `list`
//! shows the catalogue and `check` one drill, each validated against the
//! cluster it would run on (its regions, and whether this process may
//! perform OS-level faults), so a broken drill is refused before anything
//! starts. `run` executes one against the dev cluster (`run`: the
//! orchestration; `workload`: the learners' load and what it was told;
//! `classes`: the live classes and what each client saw;
//! `faults`: applying and healing through the supervisor; `ledger`: the
//! transfers and what the ledger holds; `platform`: what the platform holds
//! afterwards; `record`: what the workload was told, shared by them;
//! `outcome`: exit codes and privilege).

use std::path::Path;

use anyhow::Context as _;
use chaos::cluster::{Cluster, Privilege};
use chaos::drill::Drill;
use chaos::plan::{Action, Plan};

use crate::cli::{ChaosClusterArgs, ChaosCommand};
use crate::config::Config;

mod classes;
pub(crate) mod faults;
mod ledger;
pub(crate) mod outcome;
mod platform;
mod record;
mod run;
mod workload;

pub use outcome::{EXIT_DID_NOT_HOLD, EXIT_REFUSED};

/// Runs a `lyceum chaos` command; the process exit code.
///
/// # Errors
/// When the cluster file or the catalogue folder cannot be read.
pub async fn run(command: &ChaosCommand, config: &Config) -> anyhow::Result<u8> {
    match command {
        ChaosCommand::Run(args) => run::run(args, config).await,
        ChaosCommand::Table(args) => {
            let dir = args
                .reports
                .clone()
                .unwrap_or_else(|| config.data_dir.join("chaos").join("reports"));
            print!("{}", chaos::report::markdown_table(&newest_reports(&dir)?));
            Ok(0)
        }
        ChaosCommand::List(args) => {
            let cluster = cluster(&args.cluster, config)?;
            let entries = chaos::catalogue::list(&args.drills, &cluster)
                .map_err(|err| anyhow::anyhow!("{err} ({})", err.as_str()))?;
            print!("{}", chaos::catalogue::listing(&entries));
            let refused = entries.iter().filter(|e| e.drill.is_err()).count();
            Ok(if refused == 0 { 0 } else { EXIT_REFUSED })
        }
        ChaosCommand::Check(args) => {
            let cluster = cluster(&args.cluster, config)?;
            match Drill::load(&args.drill, &cluster) {
                Ok(drill) => {
                    print!("{}", describe(&drill));
                    Ok(0)
                }
                Err(errors) => {
                    eprintln!("{}: refused:", args.drill.display());
                    for error in &errors.0 {
                        eprintln!("  {error}");
                    }
                    Ok(EXIT_REFUSED)
                }
            }
        }
    }
}

/// Largest report file read back; a report keeps at most 3,600 samples a
/// probe and 1,000 violations, far below this.
const REPORT_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// The newest report of each drill in `dir`, by drill name. Files that are
/// not reports are skipped with a warning.
fn newest_reports(dir: &Path) -> anyhow::Result<Vec<chaos::report::Report>> {
    let mut newest: std::collections::BTreeMap<String, chaos::report::Report> =
        std::collections::BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("read the report folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let too_large = std::fs::metadata(&path).is_ok_and(|m| m.len() > REPORT_BYTES_MAX);
        let report = if too_large {
            Err(format!("larger than {REPORT_BYTES_MAX} bytes"))
        } else {
            std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str::<chaos::report::Report>(&text).map_err(|e| e.to_string())
                })
        };
        match report {
            Ok(report) => {
                let keep = newest
                    .get(&report.drill)
                    .is_none_or(|old| old.started_at < report.started_at);
                if keep {
                    newest.insert(report.drill.clone(), report);
                }
            }
            Err(why) => eprintln!("lyceum chaos: skipping {}: {why}", path.display()),
        }
    }
    Ok(newest.into_values().collect())
}

/// The cluster drills are checked against: the given `cluster.json`, the
/// dev cluster's own one if it runs, else the configured dev regions.
fn cluster(args: &ChaosClusterArgs, config: &Config) -> anyhow::Result<Cluster> {
    let privilege = outcome::privilege();
    let default = config.data_dir.join("cluster.json");
    let path = match &args.cluster {
        Some(path) => Some(path.clone()),
        None => default.exists().then_some(default),
    };
    match path {
        Some(path) => from_file(&path, privilege),
        None => {
            let regions: Vec<&str> = config.dev.regions.iter().map(String::as_str).collect();
            Cluster::new(&regions, privilege)
                .map_err(|err| anyhow::anyhow!("dev.regions: {err} ({})", err.as_str()))
        }
    }
}

fn from_file(path: &Path, privilege: Privilege) -> anyhow::Result<Cluster> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Cluster::from_cluster_json(&text, privilege)
        .map_err(|err| anyhow::anyhow!("{}: {err} ({})", path.display(), err.as_str()))
}

/// A valid drill in words: what it claims and what it will do when.
fn describe(drill: &Drill) -> String {
    let mut out = format!(
        "{}: {}\nhypothesis: {}\nduration {} s, settle {} s, recovery bound {} s{}\n",
        drill.name(),
        drill.title(),
        drill.hypothesis(),
        drill.duration_ms() / 1000,
        drill.settle_ms() / 1000,
        drill.recovery_bound_ms() / 1000,
        if drill.needs_root() {
            ", needs root"
        } else {
            ""
        },
    );
    let label = |id: u32| {
        drill
            .faults()
            .iter()
            .find(|fault| fault.id == id)
            .map_or_else(|| format!("fault {id}"), chaos::drill::Fault::label)
    };
    for step in Plan::new(drill).steps() {
        let what = match step.action {
            Action::StartWorkload => "start the workload and the probes".to_owned(),
            Action::Apply(id) => format!("apply {}", label(id)),
            Action::Heal(id) => format!("heal {}", label(id)),
            Action::StopWorkload => "stop the workload".to_owned(),
            Action::Check => "check that nothing acknowledged was lost".to_owned(),
        };
        out.push_str(&format!(
            "  {:>7.1} s  {what}\n",
            step.at_ms as f64 / 1000.0
        ));
    }
    out
}
