//! `lyceum dev`: the whole platform on one machine. It starts the control
//! plane and one edge node per region, each its own OS process on loopback,
//! waits until each serves and is ready, prints what runs where and writes
//! the same to `<data-dir>/cluster.json`. A child that dies is reported,
//! the others keep running, and it is started again after a backoff
//! (`dev.restart_backoff_*_ms`) on the same addresses, as a real supervisor
//! would; an edge rejoins the cluster through a living edge. SIGINT or
//! SIGTERM stops every child (SIGTERM, then SIGKILL after
//! `dev.child_stop_timeout_ms`). Children also stop when this process dies,
//! because their stdin closes. With `dev.chaos` on, the supervisor also
//! serves its control API (`control`) on loopback, through which chaos
//! drills kill and pause its children, each fault with a deadline, and
//! beside it the operator console's drill API (`console`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub mod console;
pub mod control;

use crate::cli::{Cli, DevArgs};
use crate::cluster_file::{ClusterFile, ControlPlaneEntry, EdgeEntry, SupervisorEntry};
use crate::config::{Config, LogFormat};
use crate::ready_file::{self, ReadyInfo};

/// Longest line of child output forwarded as one line; longer ones are cut.
pub const CHILD_LINE_BYTES_MAX: usize = 16 * 1024;
/// How often the supervisor polls for ready files and `/readyz`.
const POLL_INTERVAL_MS: u64 = 100;
/// Name of the file that marks a data dir as in use by a `lyceum dev`.
const PID_FILE: &str = "dev.pid";

struct Running {
    name: String,
    /// Its arguments after the global ones; addresses are pinned to the
    /// first start's once it is ready, so a restart serves where it did.
    args: Vec<String>,
    pid: u32,
    /// When this instance was started.
    started: Instant,
    /// Deaths in a row that followed a short life (for the backoff).
    quick_deaths: u32,
    /// Whether this instance's ready file has been read.
    ready: bool,
    /// Dropping this closes the child's stdin, which stops it.
    stdin: Option<ChildStdin>,
    info: Option<ReadyInfo>,
    exited: Option<ExitStatus>,
}

struct Exit {
    name: String,
    status: std::io::Result<ExitStatus>,
}

/// Runs the dev cluster until SIGINT or SIGTERM.
///
/// # Errors
/// Fails when the data dir is in use by another `lyceum dev`, or when a
/// process cannot be started or does not start serving in time.
pub async fn run(cli: &Cli, _args: &DevArgs, config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data dir {}", config.data_dir.display()))?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .with_context(|| format!("resolve data dir {}", config.data_dir.display()))?;
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    claim_data_dir(&run_dir)?;
    let cluster_path = data_dir.join("cluster.json");
    let _ = std::fs::remove_file(&cluster_path);

    let shutdown = crate::shutdown::Shutdown::listen(false).context("install signal handlers")?;
    let mut supervisor = Supervisor::new(cli, config, data_dir.clone(), run_dir.clone())?;
    if config.dev.chaos {
        // A supervisor that died mid-drill may have left the database
        // unwritable; clearing a flag that is not set changes nothing.
        supervisor.database_down = Some(Instant::now());
        let _ = supervisor.database_available(true).await;
        supervisor.database_down = None;
    }
    // The control API's address is known before the children start, so
    // that the edges can name the console's API (`edge.drills_url`).
    let control_listener = if config.dev.chaos {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the supervisor's control API on loopback")?;
        let url = format!("http://{}", listener.local_addr()?);
        supervisor
            .child_env
            .push(("LYCEUM_EDGE__DRILLS_URL".to_owned(), url.clone()));
        Some((listener, url))
    } else {
        None
    };
    let outcome = supervisor.start_all(&shutdown).await;
    if let Err(err) = outcome {
        supervisor.stop_all().await;
        release_data_dir(&run_dir);
        return Err(err);
    }
    if shutdown.is_triggered() {
        supervisor.stop_all().await;
        release_data_dir(&run_dir);
        return Ok(());
    }
    let (orders_tx, mut orders) = mpsc::channel(control::CONTROL_QUEUE_MAX);
    let control_server = if let Some((listener, url)) = control_listener {
        let console = console::Console::new(
            data_dir.clone(),
            config.dev.drills_dir.clone(),
            supervisor.exe.clone(),
            supervisor.global_args.clone(),
        );
        let console = match console {
            Ok(console) => Arc::new(console),
            Err(err) => {
                supervisor.stop_all().await;
                release_data_dir(&run_dir);
                return Err(err);
            }
        };
        if let Some(cp) = supervisor
            .children
            .get("control-plane")
            .and_then(|c| c.info.as_ref())
        {
            console.set_control_plane(&cp.url).await;
        }
        let (entry, server) = serve_control(
            listener,
            url,
            orders_tx,
            console,
            web::Cors::new(config.http.cors_allowed_origins.clone()),
        );
        supervisor.control = Some(entry);
        Some(server)
    } else {
        drop(orders_tx);
        None
    };
    supervisor.print_table(&cluster_path);
    supervisor.write_cluster_file(&cluster_path)?;

    let restarting = supervisor.config.dev.restart_backoff_initial_ms > 0;
    loop {
        let next_restart = supervisor.restarts.values().min().copied();
        let next_resume = supervisor.paused.values().min().copied();
        let database_back = supervisor.database_down;
        let starting = supervisor
            .children
            .values()
            .any(|c| !c.ready && c.exited.is_none());
        tokio::select! {
            () = shutdown.clone().wait() => break,
            exit = supervisor.exits.recv() => {
                let Some(exit) = exit else { break };
                let name = exit.name.clone();
                supervisor.record_exit(exit);
                supervisor.write_cluster_file(&cluster_path)?;
                if let Some(at) = supervisor.held.remove(&name) {
                    // Killed by a drill: down for the fault's window.
                    supervisor.restarts.insert(name, at);
                } else if restarting {
                    supervisor.schedule_restart(&name);
                } else if supervisor.children.values().all(|c| c.exited.is_some()) {
                    let _ = std::fs::remove_file(&cluster_path);
                    release_data_dir(&run_dir);
                    bail!("every process of the dev cluster has exited");
                }
            }
            () = sleep_until_some(next_restart) => {
                supervisor.restart_due();
                supervisor.write_cluster_file(&cluster_path)?;
            }
            () = sleep_until_some(next_resume) => supervisor.resume_due(),
            () = sleep_until_some(database_back) => {
                if let Err(err) = supervisor.database_available(true).await {
                    eprintln!("lyceum dev: {err}");
                }
            }
            Some(envelope) = orders.recv() => {
                let answer = supervisor.obey(envelope.order).await;
                supervisor.write_cluster_file(&cluster_path)?;
                let _ = envelope.reply.send(answer);
            }
            () = tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)), if starting => {
                if supervisor.read_ready_files() {
                    supervisor.write_cluster_file(&cluster_path)?;
                }
            }
        }
    }
    eprintln!("lyceum dev: stopping every process");
    if let Some(server) = control_server {
        server.abort();
    }
    supervisor.stop_all().await;
    let _ = std::fs::remove_file(&cluster_path);
    release_data_dir(&run_dir);
    eprintln!("lyceum dev: stopped");
    Ok(())
}

/// Refuses to run when another live `lyceum dev` owns this data dir.
fn claim_data_dir(run_dir: &Path) -> anyhow::Result<()> {
    let path = run_dir.join(PID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(pid) = text.trim().parse::<i32>() {
            let alive = kill(Pid::from_raw(pid), None).is_ok();
            if alive && pid != i32::try_from(std::process::id()).unwrap_or(0) {
                bail!(
                    "another lyceum dev (pid {pid}) uses this data dir; stop it or pass --data-dir"
                );
            }
        }
    }
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .with_context(|| format!("write {}", path.display()))
}

/// Removes the pid file and every ready file, so nothing stale is left.
fn release_data_dir(run_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(run_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".ready.json") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let _ = std::fs::remove_file(run_dir.join(PID_FILE));
}

struct Supervisor {
    exe: PathBuf,
    global_args: Vec<String>,
    /// Environment every child gets: the service key edges report
    /// submissions with, shared by the control plane.
    child_env: Vec<(String, String)>,
    config: Config,
    run_dir: PathBuf,
    children: BTreeMap<String, Running>,
    exits: mpsc::Receiver<Exit>,
    exits_tx: mpsc::Sender<Exit>,
    /// Dead children and when each starts again.
    restarts: BTreeMap<String, Instant>,
    /// Children a drill killed whose exit is not seen yet, and when each
    /// starts again.
    held: BTreeMap<String, Instant>,
    /// Children a drill stopped (SIGSTOP), and when each continues.
    paused: BTreeMap<String, Instant>,
    /// The control API, once it serves (`dev.chaos`).
    control: Option<SupervisorEntry>,
    /// What a `database-down` acts on.
    database: DatabaseTarget,
    /// While a drill holds the database down: when it comes back.
    database_down: Option<Instant>,
}

impl Supervisor {
    fn new(
        cli: &Cli,
        config: &Config,
        data_dir: PathBuf,
        run_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("find the lyceum executable")?;
        let mut global_args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
        if let Some(path) = &cli.config {
            let path = path.canonicalize().unwrap_or_else(|_| path.clone());
            global_args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        let format = match config.log_format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        };
        global_args.extend([
            "--log-format".to_owned(),
            format.to_owned(),
            "--log-filter".to_owned(),
            config.log_filter.clone(),
        ]);
        // The edges' service key: the configured one, or one made up for
        // this run (it never leaves this machine's processes).
        let key = if config.control_plane.edge_service_key.is_empty() {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        } else {
            config.control_plane.edge_service_key.clone()
        };
        let mut child_env = vec![
            (
                "LYCEUM_CONTROL_PLANE__EDGE_SERVICE_KEY".to_owned(),
                key.clone(),
            ),
            ("LYCEUM_EDGE__CONTROL_PLANE_SERVICE_KEY".to_owned(), key),
        ];
        // Everything of a dev cluster is on this machine: its SFUs offer the
        // loopback address too, so audio works without any other interface.
        if std::env::var_os("LYCEUM_MEDIA__LOOPBACK_CANDIDATES").is_none() {
            child_env.push((
                "LYCEUM_MEDIA__LOOPBACK_CANDIDATES".to_owned(),
                "true".to_owned(),
            ));
        }
        if config.dev.chaos {
            // Drills partition regions through the edges' fault API.
            child_env.push(("LYCEUM_EDGE__FAULT_INJECTION".to_owned(), "true".to_owned()));
        }
        // One slot per child is enough: each child exits once.
        let (exits_tx, exits) = mpsc::channel(config.dev.regions.len() + 1);
        Ok(Self {
            exe,
            global_args,
            child_env,
            config: config.clone(),
            run_dir,
            children: BTreeMap::new(),
            exits,
            exits_tx,
            restarts: BTreeMap::new(),
            held: BTreeMap::new(),
            paused: BTreeMap::new(),
            control: None,
            database: DatabaseTarget::of(config, &data_dir),
            database_down: None,
        })
    }

    fn listen_addr(&self, index: u16) -> String {
        match self.config.dev.base_port {
            0 => "127.0.0.1:0".to_owned(),
            base => format!("127.0.0.1:{}", base.saturating_add(index)),
        }
    }

    /// Gossip (UDP) address of the `index`th process: 100 above its HTTP port.
    fn gossip_addr(&self, index: u16) -> String {
        match self.config.dev.base_port {
            0 => "127.0.0.1:0".to_owned(),
            base => format!(
                "127.0.0.1:{}",
                base.saturating_add(100).saturating_add(index)
            ),
        }
    }

    async fn start_all(&mut self, shutdown: &crate::shutdown::Shutdown) -> anyhow::Result<()> {
        let deadline =
            Instant::now() + Duration::from_millis(self.config.dev.child_ready_timeout_ms);
        let cp_listen = self.listen_addr(0);
        self.spawn(
            "control-plane",
            &["control-plane", "--listen", &cp_listen, "--seed-dev"],
        )?;
        let cp = self
            .await_ready_file("control-plane", deadline, shutdown)
            .await?;
        let Some(cp) = cp else { return Ok(()) };
        // The first edge is the gossip seed: start it, learn its gossip
        // address from its ready file, then start the others joining it.
        let regions = self.config.dev.regions.clone();
        let mut seed: Option<String> = None;
        for (i, region) in regions.iter().enumerate() {
            let index = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let listen = self.listen_addr(index);
            let gossip_listen = self.gossip_addr(index);
            let name = format!("edge-{region}");
            let mut args = vec![
                "edge",
                "--region",
                region,
                "--listen",
                &listen,
                "--gossip-listen",
                &gossip_listen,
                "--control-plane",
                &cp.url,
            ];
            if let Some(seed) = &seed {
                args.extend(["--join", seed.as_str()]);
            }
            self.spawn(&name, &args)?;
            if seed.is_none() {
                let Some(info) = self.await_ready_file(&name, deadline, shutdown).await? else {
                    return Ok(());
                };
                seed = info.gossip_addr;
            }
        }
        for region in &regions {
            let name = format!("edge-{region}");
            if self
                .await_ready_file(&name, deadline, shutdown)
                .await?
                .is_none()
            {
                return Ok(());
            }
        }
        self.await_readyz(deadline, shutdown).await;
        Ok(())
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        self.spawn_with(name, args, 0)
    }

    /// Starts `name` with `args`; `quick_deaths` carries the backoff over
    /// a restart.
    fn spawn_with(
        &mut self,
        name: &str,
        args: Vec<String>,
        quick_deaths: u32,
    ) -> anyhow::Result<()> {
        let ready_path = self.ready_path(name);
        let _ = std::fs::remove_file(&ready_path);
        let mut command = Command::new(&self.exe);
        command
            .args(&self.global_args)
            .args(&args)
            .envs(self.child_env.iter().map(|(k, v)| (k, v)))
            .arg("--ready-file")
            .arg(&ready_path)
            .arg("--supervised")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: a terminal's Ctrl-C reaches only us, and we
            // stop the children in order instead of racing their exits.
            .process_group(0)
            .kill_on_drop(true);
        let mut child: Child = command
            .spawn()
            .with_context(|| format!("start {name} ({})", self.exe.display()))?;
        let pid = child.id().context("child has no pid")?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(name.to_owned(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(name.to_owned(), err));
        }
        let stdin = child.stdin.take();
        let tx = self.exits_tx.clone();
        let task_name = name.to_owned();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx
                .send(Exit {
                    name: task_name,
                    status,
                })
                .await;
        });
        self.children.insert(
            name.to_owned(),
            Running {
                name: name.to_owned(),
                args,
                pid,
                started: Instant::now(),
                quick_deaths,
                ready: false,
                stdin,
                info: None,
                exited: None,
            },
        );
        Ok(())
    }

    /// Plans to start the dead child `name` again after its backoff: the
    /// initial wait, doubled for each death in a row that followed a life
    /// shorter than the longest wait.
    fn schedule_restart(&mut self, name: &str) {
        let dev = &self.config.dev;
        let Some(child) = self.children.get_mut(name) else {
            return;
        };
        let max = Duration::from_millis(dev.restart_backoff_max_ms);
        if child.started.elapsed() >= max {
            child.quick_deaths = 0;
        }
        let wait = Duration::from_millis(dev.restart_backoff_initial_ms)
            .saturating_mul(2_u32.saturating_pow(child.quick_deaths.min(16)))
            .min(max);
        child.quick_deaths = child.quick_deaths.saturating_add(1);
        eprintln!(
            "lyceum dev: starting {name} again in {} ms (dev.restart_backoff_*_ms)",
            wait.as_millis()
        );
        self.restarts.insert(name.to_owned(), Instant::now() + wait);
    }

    /// Starts every child whose restart is due, on its pinned addresses;
    /// an edge joins through a living edge's gossip address.
    fn restart_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.restarts.remove(&name);
            let Some(child) = self.children.get(&name) else {
                continue;
            };
            let mut args = child.args.clone();
            let quick_deaths = child.quick_deaths;
            // What it reported last stays in cluster.json (same addresses)
            // while the new instance starts.
            let info = child.info.clone();
            if args.first().map(String::as_str) == Some("edge") {
                let seed = self
                    .children
                    .values()
                    .filter(|c| c.name != name && c.exited.is_none() && c.ready)
                    .find_map(|c| c.info.as_ref()?.gossip_addr.clone());
                set_flag(&mut args, "--join", seed);
            }
            match self.spawn_with(&name, args, quick_deaths) {
                Ok(()) => {
                    if let Some(child) = self.children.get_mut(&name) {
                        child.info = info;
                    }
                    tracing::info!(process = %name, "process started again");
                    eprintln!("lyceum dev: {name} started again");
                }
                Err(err) => {
                    eprintln!("lyceum dev: cannot start {name} again: {err:#}");
                    self.schedule_restart(&name);
                }
            }
        }
    }

    /// Continues every paused child whose pause is over.
    fn resume_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .paused
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.continue_child(&name);
        }
    }

    fn continue_child(&mut self, name: &str) {
        if self.paused.remove(name).is_some() {
            if let Some(child) = self.children.get(name) {
                let _ = kill(pid_of(child.pid), Signal::SIGCONT);
                eprintln!("lyceum dev: {name} continued (SIGCONT)");
            }
        }
    }

    /// Carries out one order of the control API, in the supervisor's own
    /// loop so it never races an exit or a restart.
    async fn obey(
        &mut self,
        order: control::Order,
    ) -> Result<control::Processes, control::ControlError> {
        use control::{ControlError, Order};
        let max = self.config.dev.chaos_fault_ms_max;
        let window = |what: &'static str, ms: u64| {
            if ms == 0 || ms > max {
                Err(ControlError::BadWindow { what, max })
            } else {
                Ok(Duration::from_millis(ms))
            }
        };
        let known = |name: &str| {
            if self.children.contains_key(name) {
                Ok(())
            } else {
                Err(ControlError::UnknownProcess(name.to_owned()))
            }
        };
        match order {
            Order::List => {}
            Order::Kill { name, down_ms } => {
                known(&name)?;
                let down = window("down_ms", down_ms)?;
                let child = &self.children[&name];
                if child.exited.is_some() || self.held.contains_key(&name) {
                    return Err(ControlError::NotRunning(name));
                }
                kill(pid_of(child.pid), Signal::SIGKILL).map_err(|err| ControlError::Signal {
                    name: name.clone(),
                    reason: err.to_string(),
                })?;
                self.paused.remove(&name);
                eprintln!(
                    "lyceum dev: {name} killed by a chaos drill (kill -9); down for {} ms",
                    down.as_millis()
                );
                self.held.insert(name, Instant::now() + down);
            }
            Order::Pause { name, for_ms } => {
                known(&name)?;
                let pause = window("for_ms", for_ms)?;
                let child = &self.children[&name];
                if child.exited.is_some() || self.held.contains_key(&name) {
                    return Err(ControlError::NotRunning(name));
                }
                kill(pid_of(child.pid), Signal::SIGSTOP).map_err(|err| ControlError::Signal {
                    name: name.clone(),
                    reason: err.to_string(),
                })?;
                eprintln!(
                    "lyceum dev: {name} paused by a chaos drill (SIGSTOP) for {} ms",
                    pause.as_millis()
                );
                self.paused.insert(name, Instant::now() + pause);
            }
            Order::Resume { name } => {
                known(&name)?;
                self.continue_child(&name);
            }
            Order::DatabaseDown { for_ms } => {
                let down = window("for_ms", for_ms)?;
                self.database_available(false)
                    .await
                    .map_err(ControlError::Database)?;
                eprintln!(
                    "lyceum dev: the control plane's database taken away by a chaos drill ({}) for {} ms",
                    self.database.fault(),
                    down.as_millis()
                );
                self.database_down = Some(Instant::now() + down);
            }
            Order::DatabaseUp => {
                if self.database_down.is_some() {
                    self.database_available(true)
                        .await
                        .map_err(ControlError::Database)?;
                }
            }
            Order::Start { name } => {
                known(&name)?;
                let now = Instant::now();
                if let Some(at) = self.held.get_mut(&name) {
                    *at = now;
                }
                if let Some(at) = self.restarts.get_mut(&name) {
                    *at = now;
                    self.restart_due();
                }
            }
        }
        Ok(self.processes())
    }

    /// Every child as the control API shows it.
    fn processes(&self) -> control::Processes {
        let now = Instant::now();
        let left = |at: &Instant| u64::try_from(at.saturating_duration_since(now).as_millis()).ok();
        let processes = self
            .children
            .values()
            .map(|child| {
                let name = &child.name;
                let (state, until_ms) = if let Some(at) = self.paused.get(name) {
                    (control::ProcessState::Paused, left(at))
                } else if let Some(at) = self.held.get(name).or_else(|| self.restarts.get(name)) {
                    (control::ProcessState::Down, left(at))
                } else if child.exited.is_some() {
                    (control::ProcessState::Down, None)
                } else {
                    (control::ProcessState::Running, None)
                };
                control::ProcessView {
                    name: name.clone(),
                    pid: child.pid,
                    state,
                    until_ms,
                }
            })
            .collect();
        control::Processes {
            processes,
            database_down_ms: self.database_down.as_ref().and_then(left),
            database_fault: self
                .database_down
                .is_some()
                .then(|| self.database.fault().to_owned()),
        }
    }

    /// Gives the control plane its database back (`true`) or takes it
    /// away (`false`): SQLite's files made immutable, or PostgreSQL's
    /// database refusing connections.
    async fn database_available(&mut self, available: bool) -> Result<(), String> {
        match &self.database {
            DatabaseTarget::Sqlite(files) => {
                let flag = if available { "-i" } else { "+i" };
                for file in files.iter().filter(|f| f.exists()) {
                    let status = std::process::Command::new("chattr")
                        .arg(flag)
                        .arg(file)
                        .status()
                        .map_err(|err| {
                            format!("cannot run chattr (needs e2fsprogs and root): {err}")
                        })?;
                    if !status.success() {
                        if !available {
                            // Leave nothing half down.
                            for file in files {
                                let _ = std::process::Command::new("chattr")
                                    .arg("-i")
                                    .arg(file)
                                    .status();
                            }
                        }
                        return Err(format!(
                            "chattr {flag} {} failed ({status}); database-down needs root on a file system with the immutable flag",
                            file.display()
                        ));
                    }
                }
            }
            DatabaseTarget::Postgres(url) => {
                control_plane::outage::set_postgres_connections(url, available)
                    .await
                    .map_err(|err| format!("{err} ({})", err.as_str()))?;
            }
        }
        if available && self.database_down.take().is_some() {
            eprintln!("lyceum dev: the control plane's database is back");
        }
        Ok(())
    }

    /// Reads the ready files of children that are starting; true when one
    /// became ready.
    fn read_ready_files(&mut self) -> bool {
        let starting: Vec<String> = self
            .children
            .values()
            .filter(|c| !c.ready && c.exited.is_none())
            .map(|c| c.name.clone())
            .collect();
        let mut any = false;
        for name in starting {
            match ready_file::read(&self.ready_path(&name)) {
                Ok(Some(info)) => {
                    self.mark_ready(&name, info);
                    eprintln!("lyceum dev: {name} serves again");
                    any = true;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(process = %name, error = %err, "unreadable ready file"),
            }
        }
        any
    }

    /// Records `name`'s ready file and pins its addresses, so that a
    /// restart listens where it did (the URLs in `cluster.json` and the
    /// edges' control-plane URL stay true).
    fn mark_ready(&mut self, name: &str, info: ReadyInfo) {
        let Some(child) = self.children.get_mut(name) else {
            return;
        };
        let listen = info
            .url
            .strip_prefix("http://")
            .unwrap_or(&info.url)
            .to_owned();
        set_flag(&mut child.args, "--listen", Some(listen));
        if child.args.iter().any(|a| a == "--gossip-listen") {
            set_flag(&mut child.args, "--gossip-listen", info.gossip_addr.clone());
        }
        child.ready = true;
        child.info = Some(info);
    }

    fn ready_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.ready.json"))
    }

    /// Waits for `name`'s ready file; `None` when shutdown began meanwhile.
    async fn await_ready_file(
        &mut self,
        name: &str,
        deadline: Instant,
        shutdown: &crate::shutdown::Shutdown,
    ) -> anyhow::Result<Option<ReadyInfo>> {
        let path = self.ready_path(name);
        loop {
            if let Some(info) =
                ready_file::read(&path).with_context(|| format!("read {}", path.display()))?
            {
                self.mark_ready(name, info.clone());
                return Ok(Some(info));
            }
            if shutdown.is_triggered() {
                return Ok(None);
            }
            if let Ok(exit) = self.exits.try_recv() {
                let who = exit.name.clone();
                let status = describe(&exit.status);
                self.record_exit(exit);
                bail!("{who} exited while starting ({status}); its log is above");
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} did not start serving within {} ms (dev.child_ready_timeout_ms)",
                    self.config.dev.child_ready_timeout_ms
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }

    /// Waits until every child answers `/readyz` with 200, or the deadline;
    /// a child that is still not ready is reported, not fatal.
    async fn await_readyz(&mut self, deadline: Instant, shutdown: &crate::shutdown::Shutdown) {
        let Ok(client) = reqwest::Client::builder()
            .timeout(Duration::from_millis(POLL_INTERVAL_MS * 10))
            .build()
        else {
            return;
        };
        let urls: Vec<(String, String)> = self
            .children
            .values()
            .filter_map(|c| c.info.as_ref().map(|i| (c.name.clone(), i.url.clone())))
            .collect();
        let mut pending: BTreeMap<String, String> = urls.into_iter().collect();
        let mut last_reason: BTreeMap<String, String> = BTreeMap::new();
        while !pending.is_empty() && Instant::now() < deadline && !shutdown.is_triggered() {
            let mut done = Vec::new();
            for (name, url) in &pending {
                match client.get(format!("{url}/readyz")).send().await {
                    Ok(response) if response.status().is_success() => done.push(name.clone()),
                    Ok(response) => {
                        let body = response.text().await.unwrap_or_default();
                        last_reason.insert(name.clone(), body);
                    }
                    Err(err) => {
                        last_reason.insert(name.clone(), err.to_string());
                    }
                }
            }
            for name in done {
                pending.remove(&name);
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
            }
        }
        for name in pending.keys() {
            let reason = last_reason.get(name).map_or("no answer", String::as_str);
            tracing::warn!(process = %name, reason, "process is serving but not ready yet");
            eprintln!("lyceum dev: {name} is serving but not ready: {reason}");
        }
    }

    fn record_exit(&mut self, exit: Exit) {
        let status = describe(&exit.status);
        if let Some(child) = self.children.get_mut(&exit.name) {
            child.stdin = None;
            child.exited = Some(match exit.status {
                Ok(status) => status,
                Err(_) => std::os::unix::process::ExitStatusExt::from_raw(1),
            });
            let alive = self
                .children
                .values()
                .filter(|c| c.exited.is_none())
                .count();
            tracing::warn!(process = %exit.name, status, alive, "a dev cluster process exited");
            eprintln!(
                "lyceum dev: {} (pid {}) exited ({status}); {alive} other process(es) keep running",
                exit.name,
                self.children.get(&exit.name).map_or(0, |c| c.pid)
            );
        }
    }

    async fn stop_all(&mut self) {
        if self.database_down.is_some() {
            if let Err(err) = self.database_available(true).await {
                eprintln!("lyceum dev: {err}");
            }
        }
        // A stopped process cannot act on SIGTERM.
        for name in std::mem::take(&mut self.paused).into_keys() {
            if let Some(child) = self.children.get(&name) {
                let _ = kill(pid_of(child.pid), Signal::SIGCONT);
            }
        }
        for child in self.children.values_mut().filter(|c| c.exited.is_none()) {
            child.stdin = None;
            let _ = kill(pid_of(child.pid), Signal::SIGTERM);
        }
        let deadline =
            Instant::now() + Duration::from_millis(self.config.dev.child_stop_timeout_ms);
        while self.children.values().any(|c| c.exited.is_none()) {
            match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                Ok(Some(exit)) => self.mark_stopped(exit),
                Ok(None) => break,
                Err(_) => {
                    for child in self.children.values().filter(|c| c.exited.is_none()) {
                        eprintln!(
                            "lyceum dev: {} did not stop within {} ms (dev.child_stop_timeout_ms); killing it",
                            child.name, self.config.dev.child_stop_timeout_ms
                        );
                        let _ = kill(pid_of(child.pid), Signal::SIGKILL);
                    }
                    while self.children.values().any(|c| c.exited.is_none()) {
                        match self.exits.recv().await {
                            Some(exit) => self.mark_stopped(exit),
                            None => break,
                        }
                    }
                    break;
                }
            }
        }
    }

    fn mark_stopped(&mut self, exit: Exit) {
        if let Some(child) = self.children.get_mut(&exit.name) {
            tracing::info!(process = %exit.name, status = describe(&exit.status), "process stopped");
            child.exited = Some(
                exit.status
                    .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1)),
            );
        }
    }

    fn cluster_file(&self) -> Option<ClusterFile> {
        let cp = self.children.get("control-plane")?;
        let cp_info = cp.info.as_ref()?;
        let state = |c: &Running| {
            if c.exited.is_some() {
                "exited"
            } else {
                "running"
            }
            .to_owned()
        };
        let edges = self
            .config
            .dev
            .regions
            .iter()
            .filter_map(|region| {
                let child = self.children.get(&format!("edge-{region}"))?;
                let info = child.info.as_ref()?;
                Some(EdgeEntry {
                    region: region.clone(),
                    node_id: info.node_id.clone().unwrap_or_default(),
                    url: info.url.clone(),
                    pid: child.pid,
                    state: state(child),
                })
            })
            .collect();
        Some(ClusterFile {
            control_plane: ControlPlaneEntry {
                url: cp_info.url.clone(),
                pid: cp.pid,
                state: state(cp),
            },
            edges,
            tokens: cp_info.dev_tokens.clone()?,
            supervisor: self.control.clone(),
        })
    }

    fn write_cluster_file(&self, path: &Path) -> anyhow::Result<()> {
        let file = self
            .cluster_file()
            .context("the control plane did not report its URL and dev tokens")?;
        ready_file::write_json_atomic(path, &file)
            .with_context(|| format!("write {}", path.display()))
    }

    fn print_table(&self, cluster_path: &Path) {
        let Some(file) = self.cluster_file() else {
            return;
        };
        let mut out = String::new();
        out.push_str(&format!(
            "\nlyceum dev: {} processes running\n\n",
            1 + file.edges.len()
        ));
        out.push_str(&format!(
            "{:<14} {:<10} {:<20} {:>8}  {}\n",
            "ROLE", "REGION", "NODE ID", "PID", "URL"
        ));
        out.push_str(&format!(
            "{:<14} {:<10} {:<20} {:>8}  {}\n",
            "control-plane", "-", "-", file.control_plane.pid, file.control_plane.url
        ));
        for edge in &file.edges {
            out.push_str(&format!(
                "{:<14} {:<10} {:<20} {:>8}  {}\n",
                "edge", edge.region, edge.node_id, edge.pid, edge.url
            ));
        }
        out.push_str(&format!(
            "\ncluster.json: {}\n\
             dev accounts: learner@dev.lyceum.test, instructor@dev.lyceum.test, operator@dev.lyceum.test\n\
             (password lyceum-dev-<role>; ready-made tokens are in cluster.json)\n\
             Ctrl-C stops everything.\n",
            cluster_path.display()
        ));
        print!("{out}");
    }
}

/// The control plane's database as a `database-down` takes it away.
enum DatabaseTarget {
    /// SQLite's database, WAL and shared-memory files, made immutable.
    Sqlite(Vec<PathBuf>),
    /// A PostgreSQL database (its URL), made to refuse connections.
    Postgres(String),
}

impl DatabaseTarget {
    fn of(config: &Config, data_dir: &Path) -> Self {
        let url = &config.control_plane.database_url;
        let db = if url.is_empty() {
            data_dir.join("control-plane").join("lyceum.db")
        } else if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            PathBuf::from(rest.split('?').next().unwrap_or(rest))
        } else {
            return Self::Postgres(url.clone());
        };
        let with = |suffix: &str| {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self::Sqlite(vec![db.clone(), with("-wal"), with("-shm")])
    }

    /// What the fault does to it, in words.
    fn fault(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite files made immutable",
            Self::Postgres(_) => "PostgreSQL database refusing connections",
        }
    }
}

/// Serves the control API and the console's API on `listener` (a free
/// loopback port) with a fresh key for the control API.
fn serve_control(
    listener: tokio::net::TcpListener,
    url: String,
    orders: mpsc::Sender<control::Envelope>,
    console: Arc<console::Console>,
    cors: web::Cors,
) -> (SupervisorEntry, tokio::task::JoinHandle<()>) {
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let app = control::router(key.clone(), orders).merge(console::router(console, cors));
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the supervisor's control API stopped");
        }
    });
    (SupervisorEntry { url, key }, server)
}

/// Sets `flag`'s value in `args` (adding the pair when missing), or
/// removes the pair for `None`.
fn set_flag(args: &mut Vec<String>, flag: &str, value: Option<String>) {
    let at = args.iter().position(|a| a == flag);
    match (at, value) {
        (Some(i), Some(value)) if i + 1 < args.len() => args[i + 1] = value,
        (Some(i), None) => {
            args.drain(i..(i + 2).min(args.len()));
        }
        (None, Some(value)) => args.extend([flag.to_owned(), value]),
        (Some(_), Some(value)) => args.push(value),
        (None, None) => {}
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => Signal::try_from(signal)
                .map_or_else(|_| format!("signal {signal}"), |s| format!("killed by {s}")),
            (None, None) => "unknown status".to_owned(),
        },
        Err(err) => format!("cannot wait for it: {err}"),
    }
}

/// Copies a child's output to our stderr, each line prefixed with its name,
/// cutting lines longer than [`CHILD_LINE_BYTES_MAX`].
async fn forward_lines(name: String, mut from: impl AsyncRead + Unpin) {
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0_u8; 8192];
    let mut cut = false;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                emit(&name, &line, cut);
                line.clear();
                cut = false;
            } else if line.len() < CHILD_LINE_BYTES_MAX {
                line.push(byte);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        emit(&name, &line, cut);
    }
}

fn emit(name: &str, line: &[u8], cut: bool) {
    let text = String::from_utf8_lossy(line);
    let marker = if cut { " [line cut]" } else { "" };
    eprintln!("{name:>14} | {text}{marker}");
}
