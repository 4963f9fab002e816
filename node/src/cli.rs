//! The command line. Flags override environment variables, which override
//! the config file; `docs/configuration.md` lists every key.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lyceum: a learn-to-code platform of regional edge nodes and a control plane.
///
/// Start here: `lyceum dev` runs the control plane and three edge nodes
/// (eu-west, us-east, ap-south) on this machine and writes their addresses
/// and dev-account tokens to `<data-dir>/cluster.json`. `lyceum config`
/// prints the effective configuration.
#[derive(Debug, Parser)]
#[command(name = "lyceum", version, propagate_version = true)]
pub struct Cli {
    /// TOML config file; keys are listed in docs/configuration.md.
    #[arg(long, global = true, env = "LYCEUM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where every process keeps its data (SQLite, sled, cluster.json).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info,node=debug`).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_filter: Option<String>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform locally: the control plane and three regional
    /// edge nodes, each its own process on loopback. Ctrl-C stops them all.
    Dev(DevArgs),
    /// Run the control plane (courses, identity, billing, ledger).
    ControlPlane(ControlPlaneArgs),
    /// Run one regional edge node.
    Edge(EdgeArgs),
    /// Print the effective configuration as TOML and exit.
    Config,
    /// Run one file through the sandbox on the local Docker engine, as an
    /// edge would. Exit code 0 when accepted, 3 for any other verdict.
    Run(RunArgs),
    /// Find the nearest healthy region: ask a node for the regions, time
    /// round trips to each healthy region's edges, print the lowest. Exit
    /// code 0 with a region, 1 when none answers.
    Route(RouteArgs),
    /// Load-test live classrooms on a running dev cluster: open many
    /// WebSocket sessions across regions, broadcast at a set rate, and print
    /// fan-out latency percentiles (optionally beside a baseline server).
    Load(LoadArgs),
    /// Chaos drills for operators: list the catalogue, or check one drill
    /// file against a cluster before running it.
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// One process of `lyceum load` (spawned by it; reads a plan on stdin).
    #[command(hide = true)]
    LoadWorker,
    /// Run one sandbox job from stdin (used inside sandbox containers only).
    #[command(hide = true)]
    SandboxAgent,
}

/// Flags of `lyceum load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The dev cluster's `cluster.json`. Default: `<data-dir>/cluster.json`.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// Learner sessions to open, spread over the regions' edges.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,

    /// Learner accounts the sessions share (each a separate sign-up).
    #[arg(long, default_value_t = 10)]
    pub users: usize,

    /// Regions to connect to (comma-separated); the first homes the class.
    /// Default: every running edge, in cluster.json's order.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,

    /// Broadcasts the instructor sends.
    #[arg(long, default_value_t = 50)]
    pub broadcasts: u64,

    /// Broadcasts per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,

    /// Worker processes at least (more when sessions need them: one
    /// process may hold at most 20,000 open files).
    #[arg(long, default_value_t = 2)]
    pub processes: usize,

    /// Seconds to wait after the last broadcast for stragglers.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,

    /// A plain WebSocket broadcast server to run the same load against in
    /// the same run (`ws://127.0.0.1:PORT`; see node/bench/ws-baseline).
    #[arg(long, value_name = "URL")]
    pub baseline: Option<String>,

    /// The baseline server's pid, to report its memory and CPU too.
    #[arg(long, value_name = "PID")]
    pub baseline_pid: Option<u32>,

    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `lyceum dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// First port: the control plane gets it, edges the next ones; 0 picks
    /// free ports.
    #[arg(long, value_name = "PORT")]
    pub base_port: Option<u16>,
}

/// Flags of `lyceum run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The program; its extension picks the language unless --lang is given.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Language id (python, javascript, c, cpp, java, go, rust, ruby, bash, sql).
    #[arg(long = "lang", value_name = "LANG")]
    pub language: Option<String>,

    /// File whose contents become standard input.
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,

    /// JSON file with test cases: `[{"name", "stdin", "expected_stdout", "compare"}]`.
    #[arg(long, value_name = "FILE")]
    pub tests: Option<PathBuf>,

    /// Wall-clock limit per run, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub wall_ms: Option<u64>,

    /// Print the whole result as JSON (the `POST /api/v1/runs` answer).
    #[arg(long)]
    pub json: bool,
}

/// `lyceum chaos ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ChaosCommand {
    /// List the drill catalogue, each drill checked against the cluster.
    /// Exit code 0 when every drill is valid, 3 when one is refused.
    List(ChaosListArgs),
    /// Check one drill file against the cluster: print its plan, or every
    /// refusal with its line and code. Exit code 0 when valid, 3 when not.
    Check(ChaosCheckArgs),
    /// Run one drill against the dev cluster: the workload, the faults on
    /// their timeline, the probes, then the checker; prints a live timeline
    /// and writes a report (JSON and HTML). Exit code 0 when the hypothesis
    /// held, 4 when it did not, 3 when the drill is refused (or another
    /// drill runs), 1 when the drill could not be run.
    Run(ChaosRunArgs),
    /// Print the summary of the newest report of each drill in a report
    /// folder as a Markdown table (the README's).
    Table(ChaosTableArgs),
}

/// Flags of `lyceum chaos table`.
#[derive(Debug, Clone, Args)]
pub struct ChaosTableArgs {
    /// The report folder. Default: `chaos/reports` in the data dir.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,
}

/// Flags of `lyceum chaos run`.
#[derive(Debug, Clone, Args)]
pub struct ChaosRunArgs {
    /// The drill file.
    #[arg(value_name = "DRILL")]
    pub drill: PathBuf,

    /// The cluster to run it against.
    #[command(flatten)]
    pub cluster: ChaosClusterArgs,

    /// Where the report goes. Default: `chaos/reports` in the cluster's
    /// data dir (beside its `cluster.json`).
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,
}

/// Where drills are checked against.
#[derive(Debug, Clone, Args)]
pub struct ChaosClusterArgs {
    /// The cluster's `cluster.json` (its regions). Default:
    /// `<data-dir>/cluster.json`, else the configured `dev.regions`.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
}

/// Flags of `lyceum chaos list`.
#[derive(Debug, Clone, Args)]
pub struct ChaosListArgs {
    /// The catalogue folder.
    #[arg(long, value_name = "DIR", default_value = "chaos/drills")]
    pub drills: PathBuf,

    /// The cluster the drills are checked against.
    #[command(flatten)]
    pub cluster: ChaosClusterArgs,
}

/// Flags of `lyceum chaos check`.
#[derive(Debug, Clone, Args)]
pub struct ChaosCheckArgs {
    /// The drill file.
    #[arg(value_name = "DRILL")]
    pub drill: PathBuf,

    /// The cluster the drills are checked against.
    #[command(flatten)]
    pub cluster: ChaosClusterArgs,
}

/// Flags of `lyceum route`.
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// Nodes to ask for the regions, tried in order until one answers
    /// (comma-separated URLs). Default: the edges in
    /// `<data-dir>/cluster.json`, else `http://127.0.0.1:7401`.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub from: Vec<String>,

    /// Round trips timed per edge; the fastest counts.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub probes: u32,

    /// Give up on an edge after this long, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,

    /// Print the choice and every region's figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags shared by the processes `lyceum dev` supervises.
#[derive(Debug, Clone, Default, Args)]
pub struct ChildArgs {
    /// Write `{"url", "pid", ...}` here once serving (used by `lyceum dev`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub ready_file: Option<PathBuf>,

    /// Stop when standard input closes, so a supervisor's death stops us.
    #[arg(long, hide = true)]
    pub supervised: bool,
}

/// Flags of `lyceum control-plane`.
#[derive(Debug, Clone, Args)]
pub struct ControlPlaneArgs {
    /// Address to listen on, such as 127.0.0.1:7400.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// `postgres://user:pass@host/db` for PostgreSQL; SQLite in the data dir
    /// when unset.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Create the dev tenant and one account per role (see README).
    #[arg(long)]
    pub seed_dev: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub child: ChildArgs,
}

/// Flags of `lyceum edge`.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Region this node serves, such as eu-west.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Address to listen on for HTTP, such as 127.0.0.1:7401.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Seed peers to join (host:port of other edge nodes' gossip endpoints).
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub join: Vec<String>,

    /// Base URL of the control plane, for its token key set.
    #[arg(long, value_name = "URL")]
    pub control_plane: Option<String>,

    /// Node id; by default one is generated once and kept in the data dir.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,

    /// QUIC (UDP) address for gossip, such as 127.0.0.1:7501.
    #[arg(long, value_name = "ADDR")]
    pub gossip_listen: Option<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub child: ChildArgs,
}
