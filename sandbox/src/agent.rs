//! The agent that runs inside every sandbox container. It starts with the
//! container (so a warm container costs nothing but memory), waits for one
//! job on stdin, runs it and writes one report to stdout, then exits; the
//! container is destroyed after. Learners' processes never see the agent's
//! stdin or stdout: theirs are pipes the agent reads with caps.
//!
//! It runs as the container's unprivileged user on a read-only root with a
//! tmpfs work dir; it trusts nothing it reads back from the programs it runs.
//! It is the container's pid 1 and not dumpable, so the programs, which
//! share its user id, can neither signal it nor reach its `/proc` files.

use std::io::{BufRead as _, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::time::Instant;

use crate::job::{
    AgentLine, AgentReport, Job, OutputChunk, StepKind, StepReport, StreamKind, JOB_BYTES_MAX,
};

/// Where the job's files go (a tmpfs in the container).
pub const WORK_DIR: &str = "/work";
/// How often a running step is checked against its limits.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long the agent waits for killed processes to be reaped after a step.
const REAP_WAIT: Duration = Duration::from_millis(500);
/// How long the agent waits, after a step's processes are all killed, for
/// its readers to hand over what the program wrote. Every writer is dead
/// by then, so the readers end as soon as they are scheduled; the bound
/// is generous because a loaded machine can starve a thread for seconds
/// (a 500 ms bound once returned an honest run's output as empty). A
/// reader that still has not answered makes the step's output
/// incomplete, which the host reports as its own fault, never as output.
pub const OUTPUT_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Reads one job from stdin, runs it, writes the report to stdout.
/// Returns the process exit code.
pub fn main() -> i32 {
    let report = match harden().and_then(|()| read_job()) {
        Ok(job) => run_job(&job, Path::new(WORK_DIR)),
        Err(err) => AgentReport {
            agent_error: Some(err),
            ..AgentReport::default()
        },
    };
    let failed = emit(&AgentLine::Report(report)).is_err();
    linger();
    i32::from(failed)
}

/// Stays until the host hangs up (it closes our stdin once it has read the
/// container's cgroup counters, and destroys the container anyway). The
/// agent is pid 1: were it to exit at once, the container would stop and
/// Docker would remove its cgroup, and a busy host could miss the OOM kill
/// and the memory peak it reads there.
fn linger() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// Writes one line to the host. Output threads and the final report share
/// stdout; holding its lock for the whole line keeps lines whole.
fn emit(line: &AgentLine) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, line)
        .map_err(|e| e.to_string())
        .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()))
        .and_then(|()| out.flush().map_err(|e| e.to_string()))
}

/// Where a piece of output came from, when the job streams.
#[derive(Debug, Clone, Copy)]
struct Tag {
    step: StepKind,
    case: usize,
    stream: StreamKind,
}

/// How many leading bytes of `bytes` end on a UTF-8 character boundary,
/// so a multi-byte character split across reads is sent whole, later.
fn utf8_cut(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let i = len - back;
        let byte = bytes[i];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back
        }
        let needed = match byte {
            b if b & 0b1110_0000 == 0b1100_0000 => 2,
            b if b & 0b1111_0000 == 0b1110_0000 => 3,
            b if b & 0b1111_1000 == 0b1111_0000 => 4,
            _ => 1,
        };
        return if i + needed > len { i } else { len };
    }
    len
}

fn send_chunk(tag: Tag, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // The host going away ends the job anyway; nothing to do on error.
    let _ = emit(&AgentLine::Output(OutputChunk {
        step: tag.step,
        case: tag.case,
        stream: tag.stream,
        data: String::from_utf8_lossy(bytes).into_owned(),
    }));
}

/// Puts the agent out of reach of the programs it runs, which share its
/// user id. Not dumpable: its `/proc/<pid>` files (fds, memory, environment)
/// become root's, so a program can neither write a forged report into the
/// agent's stdout through `/proc/<pid>/fd/1` nor read other cases' input
/// from its memory. (It is also the container's pid 1, see
/// [`reap_orphans`], so programs cannot signal it either.)
fn harden() -> Result<(), String> {
    nix::sys::prctl::set_dumpable(false).map_err(|err| format!("set_dumpable: {err}"))
}

/// The agent is the container's init (pid 1, no `--init`): the kernel drops
/// every signal sent to pid 1 from inside its namespace that it has no
/// handler for, SIGKILL and SIGSTOP included, and `kill(-1)` skips it, so a
/// program can neither kill nor freeze the agent to dodge its limits or its
/// report. Being init, it inherits orphans and must reap them, or their
/// zombies would eat the pids limit: this reaps every exited child except
/// `keep` (the step's own child, whose status `Child::try_wait` collects).
/// Outside a container (not pid 1) it only ever sees its own children.
fn reap_orphans(keep: nix::unistd::Pid) {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
    loop {
        // Peek first (WNOWAIT), so the step's own child is left alone.
        let peeked = waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        let Some(pid) = peeked.ok().and_then(|status| status.pid()) else {
            return;
        };
        if pid == keep {
            return;
        }
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// After `kill(-1)`: reaps every remaining child until none is left (or
/// `within` passes), so the next case starts with the whole pids budget.
fn reap_all(within: Duration) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + within;
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(POLL_INTERVAL);
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
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
            "",
            (job.compile_wall_ms, job.compile_wall_ms),
            (StepKind::Compile, 0),
            job,
            dir,
        );
        let failed = step.exit_code != Some(0);
        report.compile = Some(step);
        if failed {
            return report;
        }
    }
    for (case, stdin) in job.cases.iter().enumerate() {
        report.runs.push(run_step(
            &job.run,
            stdin,
            (job.wall_ms, job.cpu_ms),
            (StepKind::Run, case),
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

/// Gives an output pipe room for more than `cap` bytes, so that a program
/// can always write past the cap without waiting for our reader.
///
/// Why: Node.js writes to a full pipe by queueing in memory and never
/// retries while its loop spins, so with the default 64 KiB pipe and a
/// reader the kernel had not scheduled yet, `while (true) console.log(..)`
/// parked 64,064 bytes in the pipe and grew its heap until it died, instead
/// of meeting the output limit. With room for `cap + 1` bytes the reader
/// always sees the excess. Best effort above the system's
/// `fs.pipe-max-size` (1 MiB by default): the kernel refuses, and the pipe
/// keeps the size it has.
fn widen_pipe(pipe: &std::fs::File, cap: usize) {
    let want = cap
        .saturating_add(1)
        .max(PIPE_DEFAULT_BYTES)
        .next_power_of_two();
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(PIPE_DEFAULT_BYTES);
    let size = i32::try_from(want.min(max)).unwrap_or(i32::MAX);
    use std::os::fd::AsRawFd as _;
    let _ = nix::fcntl::fcntl(pipe.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
}

/// The kernel's default pipe capacity.
const PIPE_DEFAULT_BYTES: usize = 64 * 1024;

/// Reads a pipe to its end, keeping at most `cap` bytes; reports whether
/// more came, and raises `over` at once so the step can be killed.
fn read_capped(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    over_flag: Arc<AtomicBool>,
    stream: Option<Tag>,
) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut over = false;
        let mut buffer = [0_u8; 8192];
        // Bytes kept but not streamed yet (at most a split character).
        let mut sent = 0;
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    if let Some(tag) = stream {
                        let cut = sent + utf8_cut(&kept[sent..]);
                        send_chunk(tag, &kept[sent..cut]);
                        sent = cut;
                    }
                    if n > room {
                        over = true;
                        over_flag.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        if let Some(tag) = stream {
            send_chunk(tag, &kept[sent..]);
        }
        let _ = tx.send((kept, over));
    });
    rx
}

/// Runs one command to its end or its limits. `limits` is (wall ms, CPU
/// ms); `at` says which step and case this is, for streamed output.
fn run_step(
    argv: &[String],
    stdin: &str,
    limits: (u64, u64),
    at: (StepKind, usize),
    job: &Job,
    dir: &Path,
) -> StepReport {
    let (wall_ms, cpu_ms) = limits;
    let _ = emit(&AgentLine::Step {
        step: at.0,
        case: at.1,
    });
    let tag = |stream| {
        job.stream.then_some(Tag {
            step: at.0,
            case: at.1,
            stream,
        })
    };
    let mut report = StepReport::default();
    let Some((program, args)) = argv.split_first() else {
        report.stderr = "empty command".into();
        report.exit_code = Some(127);
        return report;
    };
    let cap = usize::try_from(job.output_bytes_max).unwrap_or(usize::MAX);
    // The pipes and the threads that serve them exist before the program
    // does: a fork bomb fills the pids limit at once, and a thread started
    // after it would fail to start (and take the agent down with it).
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map(|(read, write)| (std::fs::File::from(read), std::fs::File::from(write)))
    };
    let pipes = (|| Ok::<_, nix::Error>((pipe()?, pipe()?, pipe()?)))();
    let ((in_read, mut in_write), (out_read, out_write), (err_read, err_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(err) => {
            report.stderr = format!("cannot make pipes for {program}: {err}");
            report.exit_code = Some(127);
            return report;
        }
    };
    widen_pipe(&out_write, cap);
    widen_pipe(&err_write, cap);
    let input = stdin.as_bytes().to_vec();
    std::thread::spawn(move || {
        // A program that does not read its input closes the pipe: fine.
        let _ = in_write.write_all(&input);
    });
    let over = Arc::new(AtomicBool::new(false));
    let out_rx = Some(read_capped(
        out_read,
        cap,
        over.clone(),
        tag(StreamKind::Stdout),
    ));
    let err_rx = Some(read_capped(
        err_read,
        cap,
        over.clone(),
        tag(StreamKind::Stderr),
    ));
    let started = Instant::now();
    // The command (and with it our copies of the program's pipe ends) is
    // dropped right after the spawn, so the readers see the end of output.
    let spawned = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(in_read)
        .stdout(out_write)
        .stderr(err_write)
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
        reap_orphans(pgid);
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
    reap_all(REAP_WAIT);
    report.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    report.cpu_ms = (cpu_ms_now(pid) - cpu_before).max(0.0);
    if let Some(status) = status {
        use std::os::unix::process::ExitStatusExt as _;
        report.exit_code = status.code();
        report.signal = status.signal();
    }
    let drained_by = Instant::now() + OUTPUT_DRAIN_WAIT;
    let mut collect = |rx: Option<mpsc::Receiver<(Vec<u8>, bool)>>| {
        let wait = drained_by.saturating_duration_since(Instant::now());
        match rx.map(|rx| rx.recv_timeout(wait)) {
            Some(Ok(output)) => output,
            _ => {
                report.output_incomplete = true;
                (Vec::new(), false)
            }
        }
    };
    let (out, out_over) = collect(out_rx);
    let (err, err_over) = collect(err_rx);
    report.output_exceeded = out_over || err_over;
    report.stdout = String::from_utf8_lossy(&out).into_owned();
    report.stderr = String::from_utf8_lossy(&err).into_owned();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd as _;

    fn capacity(pipe: &std::fs::File) -> usize {
        let size = nix::fcntl::fcntl(pipe.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .expect("F_GETPIPE_SZ");
        usize::try_from(size).expect("a pipe's size is positive")
    }

    #[test]
    fn an_output_pipe_holds_one_byte_past_the_cap() {
        for cap in [1, 4096, 64 * 1024, 300 * 1024] {
            let (_read, write) = nix::unistd::pipe().expect("pipe");
            let write = std::fs::File::from(write);
            widen_pipe(&write, cap);
            assert!(capacity(&write) > cap, "cap {cap}: {}", capacity(&write));
        }
    }
}
