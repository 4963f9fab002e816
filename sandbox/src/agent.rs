//! The agent that runs inside every sandbox container. It starts with the
//! container (so a warm container costs nothing but memory), waits for one
//! job on stdin, runs it and writes one report to stdout, then exits; the
//! container is destroyed after. Learners' processes never see the agent's
//! stdin or stdout: theirs are pipes the agent reads with caps.
//!
//! It runs as the container's unprivileged user on a read-only root with a
//! tmpfs work dir; it trusts nothing it reads back from the programs it runs.

use std::io::{BufRead as _, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::job::{AgentReport, Job, StepReport, JOB_BYTES_MAX};

/// Where the job's files go (a tmpfs in the container).
pub const WORK_DIR: &str = "/work";
/// How often a running step is checked against its limits.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Reads one job from stdin, runs it, writes the report to stdout.
/// Returns the process exit code.
pub fn main() -> i32 {
    let report = match read_job() {
        Ok(job) => run_job(&job, Path::new(WORK_DIR)),
        Err(err) => AgentReport {
            agent_error: Some(err),
            ..AgentReport::default()
        },
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &report)
        .map_err(|e| e.to_string())
        .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()))
        .and_then(|()| out.flush().map_err(|e| e.to_string()));
    i32::from(written.is_err())
}

fn read_job() -> Result<Job, String> {
    let mut line = Vec::new();
    let limit = u64::try_from(JOB_BYTES_MAX).unwrap_or(u64::MAX);
    std::io::stdin()
        .lock()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read job: {e}"))?;
    if line.is_empty() {
        return Err("no job on stdin".into());
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad job: {e}"))
}

/// Runs a job in `dir`: writes the files, compiles, runs each case.
pub fn run_job(job: &Job, dir: &Path) -> AgentReport {
    let mut report = AgentReport::default();
    for file in &job.files {
        let bad = file.name.is_empty()
            || file.name.contains('/')
            || file.name.contains('\0')
            || file.name == "."
            || file.name == "..";
        if bad {
            report.agent_error = Some(format!("bad file name {:?}", file.name));
            return report;
        }
        if let Err(err) = std::fs::write(dir.join(&file.name), &file.content) {
            report.agent_error = Some(format!("write {}: {err}", file.name));
            return report;
        }
    }
    if let Some(compile) = &job.compile {
        let step = run_step(
            compile,
            &job.env,
            "",
            job.compile_wall_ms,
            job.compile_wall_ms,
            job,
            dir,
        );
        let failed = step.exit_code != Some(0);
        report.compile = Some(step);
        if failed {
            return report;
        }
    }
    for stdin in &job.cases {
        report.runs.push(run_step(
            &job.run,
            &job.env,
            stdin,
            job.wall_ms,
            job.cpu_ms,
            job,
            dir,
        ));
    }
    report
}

/// CPU time used so far, in ms: the container's cgroup counter when it is
/// visible (it includes every process the program started), else the
/// program's own counters from `/proc` (clock ticks at 100 Hz).
fn cpu_ms_now(pid: u32) -> f64 {
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/cpuacct/cpuacct.usage") {
        if let Ok(ns) = text.trim().parse::<u64>() {
            return ns as f64 / 1e6;
        }
    }
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/cpu.stat") {
        let usec = text.lines().find_map(|l| {
            l.strip_prefix("usage_usec ")
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if let Some(usec) = usec {
            return usec as f64 / 1e3;
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) as f64 * 10.0
}

/// Reads a pipe to its end, keeping at most `cap` bytes; reports whether
/// more came, and raises `over` at once so the step can be killed.
fn read_capped(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    over_flag: Arc<AtomicBool>,
) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut over = false;
        let mut buffer = [0_u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    if n > room {
                        over = true;
                        over_flag.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        let _ = tx.send((kept, over));
    });
    rx
}

fn run_step(
    argv: &[String],
    env: &[(String, String)],
    stdin: &str,
    wall_ms: u64,
    cpu_ms: u64,
    job: &Job,
    dir: &Path,
) -> StepReport {
    let mut report = StepReport::default();
    let Some((program, args)) = argv.split_first() else {
        report.stderr = "empty command".into();
        report.exit_code = Some(127);
        return report;
    };
    let cap = usize::try_from(job.output_bytes_max).unwrap_or(usize::MAX);
    let started = Instant::now();
    let spawned = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            report.stderr = format!("cannot start {program}: {err}");
            report.exit_code = Some(127);
            return report;
        }
    };
    let pid = child.id();
    let cpu_before = cpu_ms_now(pid);
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.as_bytes().to_vec();
        std::thread::spawn(move || {
            // A program that does not read its input closes the pipe: fine.
            let _ = pipe.write_all(&input);
        });
    }
    let over = Arc::new(AtomicBool::new(false));
    let out_rx = child
        .stdout
        .take()
        .map(|p| read_capped(p, cap, over.clone()));
    let err_rx = child
        .stderr
        .take()
        .map(|p| read_capped(p, cap, over.clone()));
    let wall = Duration::from_millis(wall_ms);
    let kill = || {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if started.elapsed() >= wall {
            report.wall_exceeded = true;
            kill();
        }
        if over.load(Ordering::SeqCst) {
            kill();
        }
        if cpu_ms_now(pid) - cpu_before > cpu_ms as f64 {
            report.cpu_exceeded = true;
            kill();
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    // Whatever the program left running goes with it: its group, and then
    // every other process we may signal (kill(-1) spares us and the init),
    // which catches daemons that escaped with setsid.
    kill();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-1),
        nix::sys::signal::Signal::SIGKILL,
    );
    report.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    report.cpu_ms = (cpu_ms_now(pid) - cpu_before).max(0.0);
    if let Some(status) = status {
        use std::os::unix::process::ExitStatusExt as _;
        report.exit_code = status.code();
        report.signal = status.signal();
    }
    let collect = |rx: Option<mpsc::Receiver<(Vec<u8>, bool)>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_millis(500)).ok())
            .unwrap_or_default()
    };
    let (out, out_over) = collect(out_rx);
    let (err, err_over) = collect(err_rx);
    report.output_exceeded = out_over || err_over;
    report.stdout = String::from_utf8_lossy(&out).into_owned();
    report.stderr = String::from_utf8_lossy(&err).into_owned();
    report
}
