//! The adversarial suite: attacks from the issue's list, each with its exact
//! outcome, each followed by an honest run on the same sandbox that must
//! find a clean box. Attacks run a few at a time on one shared sandbox;
//! those that need a partner (two sandboxes talking) and the 200-run storm
//! have their own tests. At the end no container of ours is left and the
//! host has none of the files the attacks tried to leave.
//!
//! The suite's sandbox sets the CPU limit to a quarter of the wall-clock
//! limit, and CPU-bound attacks run one at a time after the rest, so a
//! spinning program hits `cpu` (it gets far more than a quarter of a CPU)
//! and a sleeping one `wall`, each for sure.

use std::io::ErrorKind;
use std::net::TcpListener;

use futures_util::StreamExt as _;
use sandbox::run::TestCase;
use sandbox::{RunResult, Sandbox, Verdict};

use crate::support::{containers_of, machine_whole, request, sandbox_owned};

/// Attacks in flight at once: enough to overlap container starts and
/// compiles, few enough that a 2-core machine gives every one its CPU share.
const CONCURRENCY: usize = 3;
/// A name the attacks try to leave on the host; it must never appear there.
const CANARY: &str = "lyceum-adversarial-canary";

/// The honest run after each attack: nothing of the attack is left in the
/// sandbox it gets (files, shared memory, processes).
const PROBE: &str = r#"import os
procs = sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit())
print(sorted(os.listdir('/work')), sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')), procs)
"#;
const PROBE_CLEAN: &str = "['main.py'] [] [] ['agent', 'python3']\n";

/// One expectation beyond the verdict.
#[derive(Debug, Clone)]
enum Check {
    /// Standard output, exactly.
    Stdout(&'static str),
    /// Standard output is this byte, this many times (a flood cut at the cap).
    StdoutRepeats(u8, usize),
    /// Standard error has exactly this many bytes.
    StderrLen(usize),
    /// Standard error ends with this.
    StderrEndsWith(&'static str),
    /// The compiler's output contains this.
    CompileOutputContains(&'static str),
    /// Which time limit was hit.
    Limit(&'static str),
    /// The signal that ended the (first failing) run.
    Signal(i32),
    /// The exit code of the (first failing) run.
    ExitCode(i32),
    /// The abuse profile the monitor matched, if any.
    Abuse(Option<&'static str>),
    /// The verdict of each test, in order.
    Tests(Vec<Verdict>),
    /// What test `i` printed.
    TestStdout(usize, &'static str),
}

impl Check {
    fn apply(&self, r: &RunResult) -> Result<(), String> {
        let fail = |what: String| Err(format!("{self:?}: got {what}"));
        match self {
            Self::Stdout(want) if r.stdout != *want => fail(format!("{:?}", r.stdout)),
            Self::StdoutRepeats(byte, n)
                if r.stdout.len() != *n || r.stdout.bytes().any(|b| b != *byte) =>
            {
                fail(format!("{} bytes", r.stdout.len()))
            }
            Self::StderrLen(n) if r.stderr.len() != *n => fail(format!("{}", r.stderr.len())),
            Self::StderrEndsWith(end) if !r.stderr.ends_with(end) => {
                fail(format!("{:?}", r.stderr))
            }
            Self::CompileOutputContains(part) if !r.compile_output.contains(part) => {
                fail(format!("{:?}", r.compile_output))
            }
            Self::Limit(limit) if r.limit.as_deref() != Some(*limit) => {
                fail(format!("{:?}", r.limit))
            }
            Self::Signal(signal) if r.signal != Some(*signal) => fail(format!("{:?}", r.signal)),
            Self::ExitCode(code) if r.exit_code != Some(*code) => {
                fail(format!("{:?}", r.exit_code))
            }
            Self::Abuse(want) if r.abuse.map(|kind| kind.as_str()) != *want => {
                fail(format!("{:?}", r.abuse))
            }
            Self::Tests(want) => {
                let got: Vec<Verdict> = r.tests.iter().map(|t| t.status).collect();
                if got == *want {
                    Ok(())
                } else {
                    fail(format!("{got:?}"))
                }
            }
            Self::TestStdout(i, want) => match r.tests.get(*i) {
                Some(test) if test.stdout == *want => Ok(()),
                other => fail(format!("{:?}", other.map(|t| &t.stdout))),
            },
            _ => Ok(()),
        }
    }
}

/// One attack: a program, its input and limits, and its exact outcome.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    language: &'static str,
    source: &'static str,
    stdin: String,
    wall_ms: u64,
    memory_mb: Option<u32>,
    tests: Vec<(&'static str, &'static str)>,
    status: Verdict,
    checks: Vec<Check>,
    /// CPU-bound: runs alone, so its CPU share is not split with others.
    alone: bool,
}

fn case(name: &'static str, language: &'static str, source: &'static str, status: Verdict) -> Case {
    Case {
        name,
        language,
        source,
        stdin: String::new(),
        wall_ms: 2_000,
        memory_mb: None,
        tests: Vec::new(),
        status,
        checks: Vec::new(),
        alone: false,
    }
}

impl Case {
    fn stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = stdin.into();
        self
    }
    fn wall(mut self, ms: u64) -> Self {
        self.wall_ms = ms;
        self
    }
    fn memory(mut self, mb: u32) -> Self {
        self.memory_mb = Some(mb);
        self
    }
    /// Test cases as (stdin, expected stdout), compared trimmed.
    fn tests(mut self, tests: &[(&'static str, &'static str)]) -> Self {
        self.tests = tests.to_vec();
        self
    }
    fn alone(mut self) -> Self {
        self.alone = true;
        self
    }
    fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }
    fn stdout(self, stdout: &'static str) -> Self {
        self.check(Check::Stdout(stdout))
    }

    fn request(&self) -> sandbox::RunRequest {
        let mut req = request(self.language, self.source);
        req.stdin = self.stdin.clone();
        req.limits.wall_ms = Some(self.wall_ms);
        req.limits.memory_mb = self.memory_mb;
        req.tests = self
            .tests
            .iter()
            .enumerate()
            .map(|(i, (stdin, expected))| TestCase {
                name: format!("t{i}"),
                stdin: (*stdin).to_owned(),
                expected_stdout: (*expected).to_owned(),
                compare: Default::default(),
                tolerance: None,
            })
            .collect();
        req
    }
}

/// Runs an attack, checks its outcome, then checks that the next run on the
/// same sandbox finds a clean box. Answers every problem found.
async fn attack(sb: &Sandbox, case: &Case) -> Result<(), String> {
    let result = sb
        .run(&case.request())
        .await
        .map_err(|err| format!("{}: the run failed: {err}", case.name))?;
    let mut problems = Vec::new();
    if result.status != case.status {
        problems.push(format!(
            "status {:?}, want {:?}",
            result.status, case.status
        ));
    }
    problems.extend(case.checks.iter().filter_map(|c| c.apply(&result).err()));
    let mut probe = request("python", PROBE);
    probe.limits.wall_ms = Some(5_000);
    match sb.run(&probe).await {
        Ok(after) if after.status == Verdict::Accepted && after.stdout == PROBE_CLEAN => {}
        Ok(after) => problems.push(format!("the next run is not clean: {after:?}")),
        Err(err) => problems.push(format!("the next run failed: {err}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n  result: {result:?}",
            case.name,
            problems.join("; ")
        ))
    }
}

/// Runs cases `CONCURRENCY` at a time, then the CPU-bound ones one by
/// one, and fails with every broken one.
async fn run_all(sb: &Sandbox, cases: &[Case]) {
    let (alone, together): (Vec<&Case>, Vec<&Case>) = cases.iter().partition(|c| c.alone);
    let mut failures: Vec<String> = futures_util::stream::iter(together)
        .map(|case| attack(sb, case))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|outcome| async move { outcome.err() })
        .collect()
        .await;
    for case in alone {
        if let Err(failure) = attack(sb, case).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attacks broke:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const PY_ERRNO: &str =
    "import errno\ndef name(e):\n    return errno.errorcode.get(e.errno, str(e))\n";

/// Each program prints `errno` names; Python gets a helper prepended.
fn py(body: &str) -> &'static str {
    Box::leak(format!("{PY_ERRNO}{body}").into_boxed_str())
}

fn resource_attacks() -> Vec<Case> {
    use Verdict::*;
    vec![
        // Every process forks until the pids limit says no; the first to
        // hear it reports. The bomb is contained and cleaned up after.
        case("fork bomb", "python", py(r#"import os, signal
root = os.getpid()
while True:
    try:
        os.fork()
    except OSError as e:
        if os.getpid() == root:
            print('fork refused:', name(e), flush=True)
            os._exit(0)
        signal.pause()
"#), Accepted)
        .alone()
        .stdout("fork refused: EAGAIN\n"),
        // The shell classic never returns: it sits at the pids limit until
        // the abuse monitor ends it.
        case("shell fork bomb", "bash", "f() { f | f; }; f", RuntimeError)
            .wall(5_000)
            .check(Check::Signal(9))
            .check(Check::Abuse(Some("fork_bomb"))),
        case("thread bomb", "python", r#"import threading, time
n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
        n += 1
except RuntimeError as e:
    print('thread refused:', e)
"#, Accepted)
        .stdout("thread refused: can't start new thread\n"),
        case("memory bomb", "c", r#"#include <stdlib.h>
#include <string.h>
int main(void) { for (;;) { char *p = malloc(1 << 20); if (!p) return 3; memset(p, 1, 1 << 20); } }
"#, MemoryLimitExceeded)
        .memory(64)
        .check(Check::Signal(9)),
        case("fill the work tmpfs", "python", py(r#"
try:
    for i in range(10):
        with open(f'/work/big{i}', 'wb') as f:
            for _ in range(15):
                f.write(b'x' * (1 << 20))
                f.flush()
    print('no limit')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("ENOSPC\n"),
        case("fill the tmp tmpfs", "python", py(r#"
try:
    for i in range(10):
        with open(f'/tmp/big{i}', 'wb') as f:
            for _ in range(15):
                f.write(b'x' * (1 << 20))
                f.flush()
    print('no limit')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("ENOSPC\n"),
        case("fill /dev/shm", "python", py(r#"
try:
    for i in range(20):
        with open(f'/dev/shm/big{i}', 'wb') as f:
            for _ in range(15):
                f.write(b'x' * (1 << 20))
                f.flush()
    print('no limit')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("ENOSPC\n"),
        case("exhaust inodes", "python", py(r#"
try:
    for i in range(100000):
        open(f'/work/f{i}', 'w').close()
    print('no limit')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("ENOSPC\n"),
        // Past the fsize limit the kernel sends SIGXFSZ, which kills.
        case("fill the disk with one file", "c", r#"#include <stdio.h>
int main(void) { static char b[1 << 20]; FILE *f = fopen("big", "w"); for (int i = 0; i < 64; i++) fwrite(b, 1, sizeof b, f); fclose(f); puts("no limit"); }
"#, RuntimeError)
        .check(Check::Signal(25))
        .stdout(""),
        case("fd exhaustion", "python", py(r#"
fds = []
try:
    while True:
        fds.append(open('/dev/null'))
except OSError as e:
    print(name(e), len(fds) < 256)
"#), Accepted)
        .stdout("EMFILE True\n"),
    ]
}

fn output_attacks() -> Vec<Case> {
    use Verdict::*;
    vec![
        case(
            "stdout flood",
            "c",
            r#"#include <stdio.h>
int main(void) { for (;;) fputs("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", stdout); }
"#,
            OutputLimitExceeded,
        )
        .check(Check::StderrLen(0)),
        case(
            "stderr flood",
            "python",
            "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n",
            OutputLimitExceeded,
        )
        .check(Check::StderrLen(64 * 1024))
        .stdout(""),
        case(
            "endless line",
            "bash",
            "yes | tr -d '\\n'",
            OutputLimitExceeded,
        )
        .check(Check::StdoutRepeats(b'y', 64 * 1024)),
        case(
            "invalid UTF-8",
            "python",
            "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok \\xc3\\x28\\n')\n",
            Accepted,
        )
        .stdout("\u{fffd}\u{fffd} ok \u{fffd}(\n"),
        // Escapes pass through untouched: JSON carries them escaped, and the
        // client shows output as text.
        case(
            "terminal escapes",
            "python",
            "print('\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\x1b[0m\\r\\x08')",
            Accepted,
        )
        .stdout("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\u{1b}[0m\r\u{8}\n"),
    ]
}

fn time_attacks() -> Vec<Case> {
    use Verdict::*;
    vec![
        case(
            "cpu spin on all threads",
            "c",
            r#"#include <pthread.h>
static void *spin(void *a) { for (;;) {} return a; }
int main(void) { pthread_t t; for (int i = 0; i < 7; i++) pthread_create(&t, 0, spin, 0); spin(0); }
"#,
            TimeLimitExceeded,
        )
        .alone()
        .check(Check::Limit("cpu")),
        case(
            "sleep forever",
            "c",
            "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
            TimeLimitExceeded,
        )
        .wall(500)
        .check(Check::Limit("wall")),
        case(
            "read stdin to its end",
            "python",
            "import sys\nprint('eof after', len(sys.stdin.read()), 'bytes')\n",
            Accepted,
        )
        .stdin("abc")
        .stdout("eof after 3 bytes\n"),
        case(
            "block on stdin",
            "python",
            "input()\ninput()\n",
            RuntimeError,
        )
        .stdin("one line\n")
        .check(Check::ExitCode(1))
        .check(Check::StderrEndsWith("EOFError: EOF when reading a line\n")),
        // A double-forked, setsid daemon writes forever; the next case, in
        // the same container, sees that it died with the first.
        case(
            "double-forked setsid survivor",
            "python",
            r#"import os, sys, time
if sys.stdin.read().strip() == 'spawn':
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                with open('/tmp/alive', 'a') as f:
                    f.write('x')
                time.sleep(0.005)
        os._exit(0)
    time.sleep(0.1)
    print('spawned')
else:
    before = os.path.getsize('/tmp/alive')
    time.sleep(0.2)
    print('survivor:', 'none' if os.path.getsize('/tmp/alive') == before else 'alive')
"#,
            Accepted,
        )
        .tests(&[("spawn", "spawned"), ("check", "survivor: none")])
        .check(Check::Tests(vec![Accepted, Accepted])),
        case(
            "print the expected output, then loop",
            "python",
            "print(42, flush=True)\nwhile True:\n    pass\n",
            TimeLimitExceeded,
        )
        .tests(&[("", "42")])
        .alone()
        .check(Check::Limit("cpu"))
        .check(Check::Tests(vec![TimeLimitExceeded]))
        .check(Check::TestStdout(0, "42\n")),
    ]
}

fn compile_attacks() -> Vec<Case> {
    use Verdict::*;
    vec![
        case("#include \"/dev/zero\"", "c", "#include \"/dev/zero\"\nint main(void) { return 0; }\n", CompilationError)
            .check(Check::CompileOutputContains("Killed signal terminated program cc1")),
        case("template recursion", "cpp", "template <int N> struct F { enum { v = F<N + 1>::v }; };\nint main() { return F<0>::v; }\n", CompilationError)
            .check(Check::CompileOutputContains("template instantiation depth exceeds")),
    ]
}

fn network_attacks(control_plane_port: u16) -> Vec<Case> {
    use Verdict::*;
    let connect = |host: &str| {
        format!(
            "import socket\ntry:\n    socket.create_connection(('{host}', 80), timeout=2)\n    print('connected')\nexcept OSError as e:\n    print(name(e))\n"
        )
    };
    vec![
        case("TCP out over IPv4", "python", py(&connect("1.1.1.1")), Accepted).stdout("ENETUNREACH\n"),
        case("TCP out over IPv6", "python", py(&connect("2606:4700:4700::1111")), Accepted).stdout("ENETUNREACH\n"),
        case("the cloud metadata service", "python", py(&connect("169.254.169.254")), Accepted).stdout("ENETUNREACH\n"),
        case("the Docker gateway", "python", py(&connect("172.17.0.1")), Accepted).stdout("ENETUNREACH\n"),
        case("DNS lookup", "python", "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept socket.gaierror as e:\n    print(e.errno == socket.EAI_NONAME)\n", Accepted)
            .stdout("True\n"),
        case("the Docker socket", "python", py(r#"import socket
for path in ['/var/run/docker.sock', '/run/docker.sock']:
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        print('connected')
    except OSError as e:
        print(name(e))
"#), Accepted)
        .stdout("ENOENT\nENOENT\n"),
        // A listener on the host stands for the control plane; the
        // container's loopback is its own and the host is unreachable.
        case("the control plane", "python", py(r#"import socket
port = int(input())
for host in ['127.0.0.1', '172.17.0.1', '::1']:
    try:
        socket.create_connection((host, port), timeout=2)
        print('connected')
    except OSError as e:
        print(name(e))
"#), Accepted)
        .stdin(format!("{control_plane_port}\n"))
        .stdout("ECONNREFUSED\nENETUNREACH\nECONNREFUSED\n"),
        case("port scan of loopback", "python", r#"import socket
open_ports = []
for port in list(range(1, 1025)) + [2375, 2376, 3000, 5432, 6379, 8080, 9090]:
    s = socket.socket()
    if s.connect_ex(('127.0.0.1', port)) == 0:
        open_ports.append(port)
    s.close()
print('open:', open_ports)
"#, Accepted)
        .stdout("open: []\n"),
        case("raw and packet sockets", "python", py(r#"import socket
for args in [(socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_INET6, socket.SOCK_RAW, 58), (socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, 10, 0), (socket.AF_NETLINK, socket.SOCK_RAW, 9)]:
    try:
        socket.socket(*args)
        print('made')
    except OSError as e:
        print(name(e))
"#), Accepted)
        .stdout("EPERM\nEPERM\nEPERM\nEPERM\nEPERM\n"),
        case("ping", "python", py(r#"import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    print('made')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("EPERM\n"),
    ]
}

fn file_attacks() -> Vec<Case> {
    use Verdict::*;
    vec![
        case("read /etc/shadow", "python", py(r#"
try:
    open('/etc/shadow').read()
    print('read')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("ENOENT\n"),
        case("the host's home", "python", py(r#"import os
for path in ['/root', '/home', '/var/lib/docker']:
    try:
        print(os.listdir(path))
    except OSError as e:
        print(path, name(e))
"#), Accepted)
        .stdout("/root ENOENT\n/home ENOENT\n/var/lib/docker ENOENT\n"),
        // Another job's files are in another container; the only other
        // process here is the agent, whose root and files are out of reach.
        case("another job's files", "python", py(r#"import os
print(sorted(os.listdir('/work')), sorted(p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())))
for path in ['/proc/1/root/work', '/proc/1/cwd', '/proc/1/fd']:
    try:
        os.listdir(path)
        print('listed', path)
    except OSError as e:
        print(path, name(e))
"#), Accepted)
        .stdout("['main.py'] ['1']\n/proc/1/root/work EACCES\n/proc/1/cwd EACCES\n/proc/1/fd EACCES\n"),
        // Other cases' input lives in the agent's memory; the expected
        // output never enters the container.
        case("the hidden test cases", "python", py(r#"import os, sys
mine = sys.stdin.read()
found = []
for path in ['/proc/1/mem', '/proc/1/environ', '/proc/1/fd/0', '/proc/1/fd/1', '/proc/1/maps']:
    try:
        open(path, 'rb').read(1)
        found.append(path)
    except OSError as e:
        pass
for root in ['/work', '/tmp', '/dev/shm']:
    for name_ in set(os.listdir(root)) - {'main.py'}:
        if b'hidden' in open(os.path.join(root, name_), 'rb').read():
            found.append(name_)
print('leaked:', found or 'none')
"#), Accepted)
        .tests(&[("first", "leaked: none"), ("hidden input", "leaked: none")])
        .check(Check::Tests(vec![Accepted, Accepted])),
        case("write to /, /usr, /etc and the agent", "python", py(&format!(r#"import os
for path in ['/evil', '/usr/evil', '/etc/evil', '/etc/passwd', '/opt/lyceum/agent', '/sbin/evil', '/proc/sys/kernel/hostname', '/tmp/{CANARY}']:
    try:
        with open(path, 'w') as f:
            f.write('x')
        print(path, 'written')
    except OSError as e:
        print(path, name(e))
"#)), Accepted)
        .stdout(Box::leak(format!("/evil EROFS\n/usr/evil EROFS\n/etc/evil EROFS\n/etc/passwd EROFS\n/opt/lyceum/agent EROFS\n/sbin/evil EROFS\n/proc/sys/kernel/hostname EROFS\n/tmp/{CANARY} written\n").into_boxed_str())),
        // Output is collected over pipes: links and FIFOs named like
        // outputs change nothing, for this case or the next.
        case("planted symlinks and FIFOs", "python", &*Box::leak(format!(r#"import os, sys
if sys.stdin.read().strip() == 'plant':
    os.symlink('/etc/passwd', '/work/stdout')
    os.symlink('/proc/1/fd/1', '/work/report')
    os.symlink('/', '/work/root')
    os.symlink('/tmp/{CANARY}', '/work/{CANARY}')
    os.mkfifo('/work/stdin')
    os.mkfifo('/work/out')
    print('planted')
else:
    print(sorted(os.listdir('/work')))
"#).into_boxed_str()), Accepted)
        .tests(&[("plant", "planted"), ("look", Box::leak(format!("['{CANARY}', 'main.py', 'out', 'report', 'root', 'stdin', 'stdout']").into_boxed_str()))])
        .check(Check::Tests(vec![Accepted, Accepted])),
        // A program that swaps its stdout for a FIFO nobody reads blocks in
        // its own write; what it printed before is kept.
        case("stdout into a FIFO", "python", r#"import os
print('before', flush=True)
os.mkfifo('/work/fifo')
fd = os.open('/work/fifo', os.O_RDWR)
os.dup2(fd, 1)
os.write(1, b'x' * (1 << 20))
"#, TimeLimitExceeded)
        .wall(1_000)
        .check(Check::Limit("wall"))
        .stdout("before\n"),
        case("/proc: environ of pid 1", "python", py(r#"
try:
    open('/proc/1/environ', 'rb').read()
    print('read')
except OSError as e:
    print(name(e))
"#), Accepted)
        .stdout("EACCES\n"),
        // The mount table is the container's own: none of the host's mounts
        // (its home, Docker's socket, other containers) shows up in it; only
        // ours and Docker's usual /proc, /sys and /dev. (Mount sources still
        // name Docker's overlay directories; the agent is bound from a
        // neutral copy, see the next case.)
        case("/proc: host mount paths", "python", r#"
points = sorted(line.split()[4] for line in open('/proc/self/mountinfo'))
print([p for p in points if p.split('/')[1] not in ('proc', 'sys', 'dev')])
"#, Accepted)
        .stdout("['/', '/etc/hostname', '/opt/lyceum/agent', '/tmp', '/usr', '/work']\n"),
        // Mount sources name Docker's storage and a neutral agent copy,
        // never a home directory or the build tree.
        case("/proc: no home paths in mount sources", "python", r#"
text = open('/proc/self/mountinfo').read()
print(any(word in text for word in ('/root/', '/home/', 'target/debug', 'target/release')))
"#, Accepted)
        .stdout("False\n"),
        case("/proc: kallsyms", "python", r#"
lines = open('/proc/kallsyms').read().splitlines()
print(len(lines) > 1000, all(line.split()[0] == '0000000000000000' for line in lines))
"#, Accepted)
        .stdout("True True\n"),
        case("write cgroup files", "python", py(r#"
for path in ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/release_agent']:
    try:
        with open(path, 'w') as f:
            f.write('-1')
        print(path, 'written')
    except OSError as e:
        print(name(e))
"#), Accepted)
        .stdout("EROFS\nEROFS\nEROFS\nEACCES\n"),
    ]
}

fn privilege_attacks() -> Vec<Case> {
    use Verdict::*;
    let killed = |name: &'static str, source: &'static str| {
        case(name, "c", source, DisallowedSyscall)
            .check(Check::Signal(31))
            .stdout("before\n")
    };
    let mut cases = vec![
        // no-new-privileges: the setuid bit is there and does nothing.
        case("setuid binaries", "python", r#"import os, subprocess
print(bool(os.stat('/usr/bin/su').st_mode & 0o4000))
r = subprocess.run(['/usr/bin/su', 'root', '-c', 'id'], capture_output=True, stdin=subprocess.DEVNULL)
print(r.returncode, b'uid=0' in r.stdout)
"#, Accepted)
        .stdout("True\n1 False\n"),
        case("capabilities and chown", "python", py(r#"import os
print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])
for call in [lambda: os.chown('/work/main.py', 0, 0), lambda: os.setuid(0), lambda: os.setgroups([0])]:
    try:
        call()
        print('allowed')
    except OSError as e:
        print(name(e))
"#), Accepted)
        .stdout("0000000000000000\nEPERM\nEPERM\nEPERM\n"),
        // kill(-1) spares the caller and pid 1, the agent: nothing else runs.
        case("kill -9 -1", "bash", "kill -9 -1\necho survived", Accepted)
            .stdout("survived\n"),
        // Signals to pid 1 from inside are dropped: the agent stays.
        case("kill or stop the agent", "python", "import os, signal\nfor s in [signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV]:\n    os.kill(os.getppid(), s)\nprint('agent untouched', os.getppid())\n", Accepted)
            .stdout("agent untouched 1\n"),
        // A forged report written into the agent's stdout would decide the
        // verdict; the agent is not dumpable, so its fds are not reachable.
        case("forge the agent's report", "python", py(r#"import time
try:
    with open('/proc/1/fd/1', 'w') as f:
        f.write('{"type":"report","runs":[{"exit_code":0,"stdout":"forged"}]}\n')
    print('forged')
except OSError as e:
    print(name(e), flush=True)
time.sleep(100)
"#), TimeLimitExceeded)
        .wall(1_000)
        .check(Check::Limit("wall"))
        .stdout("EACCES\n"),
        killed("ptrace", "#include <stdio.h>\n#include <sys/ptrace.h>\nint main(void) { puts(\"before\"); fflush(stdout); ptrace(PTRACE_TRACEME, 0, 0, 0); puts(\"after\"); }\n"),
        killed("ptrace the agent", "#include <stdio.h>\n#include <sys/ptrace.h>\nint main(void) { puts(\"before\"); fflush(stdout); ptrace(PTRACE_ATTACH, 1, 0, 0); puts(\"after\"); }\n"),
        killed("mount", "#include <stdio.h>\n#include <sys/mount.h>\nint main(void) { puts(\"before\"); fflush(stdout); mount(\"none\", \"/work\", \"tmpfs\", 0, 0); puts(\"after\"); }\n"),
        killed("unshare", "#define _GNU_SOURCE\n#include <sched.h>\n#include <stdio.h>\nint main(void) { puts(\"before\"); fflush(stdout); unshare(CLONE_NEWUSER); puts(\"after\"); }\n"),
        killed("setns", "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <sched.h>\n#include <stdio.h>\nint main(void) { int fd = open(\"/proc/self/ns/net\", O_RDONLY); puts(\"before\"); fflush(stdout); setns(fd, 0); puts(\"after\"); }\n"),
        killed("bpf", "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { puts(\"before\"); fflush(stdout); syscall(SYS_bpf, 0, 0, 0); puts(\"after\"); }\n"),
        killed("keyctl", "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { puts(\"before\"); fflush(stdout); syscall(SYS_keyctl, 0, 0, 0); puts(\"after\"); }\n"),
        killed("userfaultfd", "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { puts(\"before\"); fflush(stdout); syscall(SYS_userfaultfd, 0); puts(\"after\"); }\n"),
        killed("perf_event_open", "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { puts(\"before\"); fflush(stdout); syscall(SYS_perf_event_open, 0, 0, -1, -1, 0); puts(\"after\"); }\n"),
        killed("process_vm_readv", "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { puts(\"before\"); fflush(stdout); syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0); puts(\"after\"); }\n"),
        // Probed by runtimes, so an errno, never a kill.
        case("io_uring", "c", "#include <errno.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { long r = syscall(SYS_io_uring_setup, 1, 0); printf(\"%ld %s\\n\", r, errno == ENOSYS ? \"ENOSYS\" : \"other\"); }\n", Accepted)
            .stdout("-1 ENOSYS\n"),
        case("clone3 and clone with namespaces", "c", "#define _GNU_SOURCE\n#include <errno.h>\n#include <sched.h>\n#include <signal.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { long a = syscall(SYS_clone3, 0, 0); int ea = errno; long b = syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0); printf(\"%ld %d %ld %d\\n\", a, ea == ENOSYS, b, errno == EPERM); }\n", Accepted)
            .stdout("-1 1 -1 1\n"),
        // abort() with a core limit of 0: the second case, in the same
        // container, finds no core file.
        case("core dump", "c", "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\nint main(void) { char b[16] = {0}; fgets(b, sizeof b, stdin); if (!strncmp(b, \"abort\", 5)) abort(); puts(access(\"core\", F_OK) ? \"no core\" : \"core\"); }\n", RuntimeError)
            .tests(&[("abort", ""), ("look", "no core")])
            .check(Check::Signal(6))
            .check(Check::Tests(vec![RuntimeError, Accepted])),
    ];
    // The 32-bit ABI is not in the filter's architectures: killed.
    if cfg!(target_arch = "x86_64") {
        cases.push(killed("32-bit syscall via int 0x80", "#include <stdio.h>\nint main(void) { long r; puts(\"before\"); fflush(stdout); __asm__ volatile(\"int $0x80\" : \"=a\"(r) : \"a\"(20)); printf(\"getpid32 %ld\\n\", r); }\n"));
    }
    cases
}

/// Exiting by each signal, one test case per signal, in one run.
fn signal_case() -> Case {
    use Verdict::*;
    const SIGNALS: [(&str, &str); 31] = [
        ("1", ""),
        ("2", ""),
        ("3", ""),
        ("4", ""),
        ("5", ""),
        ("6", ""),
        ("7", ""),
        ("8", ""),
        ("9", ""),
        ("10", ""),
        ("11", ""),
        ("12", ""),
        ("13", ""),
        ("14", ""),
        ("15", ""),
        ("16", ""),
        ("17", "survived"),
        ("18", "survived"),
        ("19", ""),
        ("20", ""),
        ("21", ""),
        ("22", ""),
        ("23", "survived"),
        ("24", ""),
        ("25", ""),
        ("26", ""),
        ("27", ""),
        ("28", "survived"),
        ("29", ""),
        ("30", ""),
        ("31", ""),
    ];
    let verdicts = (1..=31)
        .map(|signal| match signal {
            // Ignored by default.
            17 | 18 | 23 | 28 => Accepted,
            // Stop signals stop it until the wall-clock limit.
            19..=22 => TimeLimitExceeded,
            // SIGSYS is what the seccomp profile kills with.
            31 => DisallowedSyscall,
            _ => RuntimeError,
        })
        .collect();
    case("exit by each signal", "c", "#include <signal.h>\n#include <stdio.h>\n#include <stdlib.h>\nint main(void) { char b[8] = {0}; fgets(b, sizeof b, stdin); raise(atoi(b)); puts(\"survived\"); }\n", RuntimeError)
        .wall(300)
        .tests(&SIGNALS)
        .check(Check::Signal(1))
        .check(Check::Tests(verdicts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_get_exact_verdicts_and_leave_nothing_behind() {
    let _machine = machine_whole().await;
    let (sb, owner) = sandbox_owned(&["python", "c", "cpp", "bash"], |c| {
        c.pool_target = 2;
        c.cpu_percent_of_wall = 25;
    })
    .await;
    let control_plane = TcpListener::bind("0.0.0.0:0").expect("a host listener");
    control_plane.set_nonblocking(true).expect("nonblocking");
    let port = control_plane.local_addr().expect("address").port();

    let mut cases = Vec::new();
    cases.extend(resource_attacks());
    cases.extend(output_attacks());
    cases.extend(time_attacks());
    cases.extend(compile_attacks());
    cases.extend(network_attacks(port));
    cases.extend(file_attacks());
    cases.extend(privilege_attacks());
    cases.push(signal_case());
    assert!(cases.len() >= 40, "{} attacks", cases.len());
    run_all(&sb, &cases).await;

    match control_plane.accept() {
        Err(err) if err.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a sandbox reached the host's listener: {other:?}"),
    }
    sb.shutdown().await;
    assert_eq!(containers_of(&owner), Vec::<String>::new());
    let canary = std::path::Path::new("/tmp").join(CANARY);
    assert!(!canary.exists(), "{} leaked to the host", canary.display());
}

/// Talking to a concurrent sandbox: one run holds an abstract UNIX socket,
/// a System V shared-memory key and a file in /dev/shm, and first checks
/// that it can reach them itself; another run, at the same time, looks for
/// all three and finds none (each container has its own network and IPC
/// namespaces and its own /dev/shm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sandboxes_cannot_talk() {
    let _machine = machine_whole().await;
    let (sb, owner) = sandbox_owned(&["python"], |c| c.pool_target = 2).await;
    let holder = r#"import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def look():
    seen = []
    try:
        socket.socket(socket.AF_UNIX).connect('\0lyceum-adversarial')
        seen.append('socket')
    except OSError:
        pass
    if libc.shmget(0x4c59, 0, 0) >= 0:
        seen.append('shm')
    if os.path.exists('/dev/shm/lyceum-adversarial'):
        seen.append('dev/shm')
    return seen
s = socket.socket(socket.AF_UNIX)
s.bind('\0lyceum-adversarial')
s.listen()
libc.shmget(0x4c59, 4096, 0o1666)
open('/dev/shm/lyceum-adversarial', 'w').write('x')
print('self-check:', look(), flush=True)
s.accept()
s.settimeout(3)
try:
    s.accept()
    print('contacted')
except socket.timeout:
    print('nobody came')
"#;
    let seeker = r#"import ctypes, os, socket, time
libc = ctypes.CDLL(None, use_errno=True)
time.sleep(0.5)
seen = set()
for _ in range(10):
    try:
        socket.socket(socket.AF_UNIX).connect('\0lyceum-adversarial')
        seen.add('socket')
    except OSError:
        pass
    if libc.shmget(0x4c59, 0, 0) >= 0:
        seen.add('shm')
    if os.path.exists('/dev/shm/lyceum-adversarial'):
        seen.add('dev/shm')
    time.sleep(0.1)
print('seen:', sorted(seen))
"#;
    let run = |code: &str| {
        let mut req = request("python", code);
        req.limits.wall_ms = Some(6_000);
        let sb = sb.clone();
        async move { sb.run(&req).await.expect("run") }
    };
    let (held, sought) = tokio::join!(run(holder), run(seeker));
    assert_eq!(
        (held.status, held.stdout.as_str()),
        (
            Verdict::Accepted,
            "self-check: ['socket', 'shm', 'dev/shm']\nnobody came\n"
        ),
        "{held:?}"
    );
    assert_eq!(
        (sought.status, sought.stdout.as_str()),
        (Verdict::Accepted, "seen: []\n"),
        "{sought:?}"
    );
    sb.shutdown().await;
    assert_eq!(containers_of(&owner), Vec::<String>::new());
}

/// What one of the 200 simultaneous submissions is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HonestPython,
    HonestC,
    Spin,
    Sleep,
    Memory,
    Flood,
    Seccomp,
    ForkBomb,
}

const KINDS: [Kind; 8] = [
    Kind::HonestPython,
    Kind::HonestC,
    Kind::Spin,
    Kind::Sleep,
    Kind::Memory,
    Kind::Flood,
    Kind::Seccomp,
    Kind::ForkBomb,
];

fn storm_request(kind: Kind, i: usize) -> sandbox::RunRequest {
    let (language, code, wall_ms, memory_mb) = match kind {
        Kind::HonestPython => ("python", "print(int(input()) * 2)", 20_000, None),
        Kind::HonestC => (
            "c",
            "#include <stdio.h>\nint main(void) { int n; if (scanf(\"%d\", &n) != 1) return 1; printf(\"%d\\n\", n * 2); }\n",
            20_000,
            None,
        ),
        Kind::Spin => ("python", "while True:\n    pass\n", 1_000, None),
        Kind::Sleep => ("python", "import time\ntime.sleep(60)\n", 1_000, None),
        Kind::Memory => (
            "python",
            "a = bytearray(512 * 1024 * 1024)\nprint(len(a))\n",
            20_000,
            Some(64),
        ),
        Kind::Flood => ("python", "while True:\n    print('x' * 1000)\n", 20_000, None),
        Kind::Seccomp => (
            "python",
            "import ctypes\nctypes.CDLL(None).unshare(0x10000000)\nprint('unshared')\n",
            20_000,
            None,
        ),
        Kind::ForkBomb => ("bash", "f() { f | f; }; f", 20_000, None),
    };
    let mut req = request(language, code);
    req.stdin = format!("{i}\n");
    req.limits.wall_ms = Some(wall_ms);
    req.limits.memory_mb = memory_mb;
    req
}

fn storm_check(kind: Kind, i: usize, r: &RunResult) -> bool {
    let doubled = format!("{}\n", i * 2);
    match kind {
        Kind::HonestPython | Kind::HonestC => r.status == Verdict::Accepted && r.stdout == doubled,
        // With 200 runs on 2 cores, whether a spinner first spends its CPU
        // allowance or its wall-clock time depends on its share; either
        // way it is a time limit.
        Kind::Spin => {
            r.status == Verdict::TimeLimitExceeded
                && matches!(r.limit.as_deref(), Some("cpu" | "wall"))
        }
        Kind::Sleep => r.status == Verdict::TimeLimitExceeded && r.limit.as_deref() == Some("wall"),
        Kind::Memory => r.status == Verdict::MemoryLimitExceeded,
        Kind::Flood => r.status == Verdict::OutputLimitExceeded,
        Kind::Seccomp => r.status == Verdict::DisallowedSyscall && r.stdout.is_empty(),
        Kind::ForkBomb => {
            r.status == Verdict::RuntimeError
                && r.abuse.map(|kind| kind.as_str()) == Some("fork_bomb")
        }
    }
}

/// 200 submissions at once, a quarter honest, the rest abusive in six
/// ways (the fork bomb is the shell's, which the abuse monitor ends), against small warm pools: every honest one is accepted with its
/// answer, every abusive one gets its verdict, and nothing is left after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_simultaneous_submissions() {
    let _machine = machine_whole().await;
    const SUBMISSIONS: usize = 200;
    // Runs that must finish get a wall-clock limit far above their need:
    // 200 containers starting at once on 2 cores can starve one for
    // seconds, and that must not turn a verdict into a time limit.
    let (sb, owner) = sandbox_owned(&["python", "c", "bash"], |c| {
        c.pool_target = 2;
        c.wall_ms_max = 20_000;
    })
    .await;
    let runs = (0..SUBMISSIONS).map(|i| {
        let kind = KINDS[i % KINDS.len()];
        let sb = sb.clone();
        async move { (i, kind, sb.run(&storm_request(kind, i)).await) }
    });
    let outcomes = futures_util::future::join_all(runs).await;
    let broken: Vec<String> = outcomes
        .iter()
        .filter_map(|(i, kind, outcome)| match outcome {
            Ok(result) if storm_check(*kind, *i, result) => None,
            other => Some(format!("#{i} {kind:?}: {other:?}")),
        })
        .collect();
    assert!(
        broken.is_empty(),
        "{} of {SUBMISSIONS} broke:\n{}",
        broken.len(),
        broken.join("\n")
    );
    let after = sb.run(&request("python", PROBE)).await.expect("run");
    assert_eq!(
        (after.status, after.stdout.as_str()),
        (Verdict::Accepted, PROBE_CLEAN)
    );
    sb.shutdown().await;
    assert_eq!(containers_of(&owner), Vec::<String>::new());
}
