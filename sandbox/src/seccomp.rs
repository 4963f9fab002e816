//! Our own seccomp profile, handed to every sandbox container as
//! `seccomp=<json>` in Docker's profile format. It is an allow-list written
//! for what honest programs in our languages do (interpreters, JITs, the
//! compilers and linkers, their threads and child processes), not a copy
//! of Docker's default:
//!
//! * anything not listed fails with `EPERM` (the default action), so a
//!   program that probes something exotic gets an error it can handle;
//! * a short list of calls no honest program makes here (ptrace, mounts,
//!   namespaces, bpf, keyrings, perf, userfaultfd, modules, reading other
//!   processes' memory...) kills the whole process with `SIGSYS`, which the
//!   host reports as `disallowed_syscall`;
//! * calls that runtimes probe at start-up and fall back from get `ENOSYS`
//!   (`clone3`, so glibc uses `clone`; io_uring, so libuv uses epoll);
//! * `clone` with a namespace flag, raw and packet sockets, netlink other
//!   than routing, and odd `personality` values fail with `EPERM` through
//!   argument filters.
//!
//! Only the native architecture is listed (x86_64, or aarch64 when the
//! node runs there). A system call made through another ABI, such as the
//! 32-bit `int $0x80` on x86_64, does not match the filter's architecture
//! and libseccomp's bad-architecture action kills the calling thread with
//! `SIGSYS`; so 32-bit code cannot reach the 32-bit table (and its
//! `socketcall` multiplexer) around the rules above.

use std::sync::OnceLock;

use serde::Serialize;

/// `EPERM`: what anything not allowed gets, as if a capability were missing.
pub const EPERM: u32 = 1;
/// `ENOSYS`: what probed-for calls get, so runtimes take their fallback.
pub const ENOSYS: u32 = 38;

/// The signal a killing rule delivers; the host maps it to
/// `disallowed_syscall`.
pub const SIGSYS: i32 = 31;

/// Calls honest programs make, allowed without conditions. Names unknown on
/// an architecture (`open` on aarch64, `arch_prctl` off x86) are skipped by
/// the engine.
pub const ALLOWED: &[&str] = &[
    // Files and directories.
    "access",
    "chdir",
    "chmod",
    "chown",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "ioctl",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pipe",
    "pipe2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "setxattr",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    // Memory (JITs and garbage collectors use most of these).
    "brk",
    "get_mempolicy",
    "madvise",
    "map_shadow_stack",
    "mbind",
    "membarrier",
    "memfd_create",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "set_mempolicy",
    // Processes, threads and credentials (changing to other ids still needs
    // capabilities the container does not have).
    "arch_prctl",
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "get_robust_list",
    "getcpu",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "getuid",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "restart_syscall",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setuid",
    "sysinfo",
    "tgkill",
    "times",
    "tkill",
    "uname",
    "vfork",
    "wait4",
    "waitid",
    // Signals.
    "alarm",
    "pause",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    // Time and timers (setting the clock is not here: EPERM).
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    // Waiting on many things; classic AIO (io_uring is not here).
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "poll",
    "ppoll",
    "pselect6",
    "select",
    // Sockets once made (`socket` itself is filtered below); the container
    // has no network but loopback.
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketpair",
    // System V and POSIX IPC, private to the container's IPC namespace.
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
];

/// Calls that runtimes probe and fall back from when the kernel lacks them:
/// they get `ENOSYS`, never a kill.
pub const PROBED: &[&str] = &[
    // glibc 2.34+ tries clone3 for threads and posix_spawn, then clone.
    "clone3",
    // libuv (Node) and others try io_uring, then epoll; io_uring has been
    // the source of many kernel holes and bypasses seccomp for its work.
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
];

/// Calls no honest program makes in a sandbox: each kills the process with
/// `SIGSYS` (the verdict `disallowed_syscall`). Most would fail anyway for
/// lack of capabilities; killing makes the attempt visible and leaves no
/// error path to explore.
pub const KILLED: &[&str] = &[
    // Looking into or steering other processes.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // Mounts and namespaces: the way out of a container.
    "chroot",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "pivot_root",
    "setns",
    "umount",
    "umount2",
    "unshare",
    // Kernel attack surface with a long record of holes.
    "add_key",
    "bpf",
    "keyctl",
    "perf_event_open",
    "request_key",
    "userfaultfd",
    // Files by handle (the "shocker" escape).
    "open_by_handle_at",
    // The machine itself.
    "acct",
    "create_module",
    "delete_module",
    "finit_module",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "lookup_dcookie",
    "nfsservctl",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "swapoff",
    "swapon",
    "vm86",
    "vm86old",
];

/// Namespace flags of `clone` (`CLONE_NEWNS`, `NEWCGROUP`, `NEWUTS`,
/// `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`); `clone` is allowed only when
/// none is set. (`CLONE_NEWTIME` exists only for `clone3` and `unshare`.)
pub const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const NETLINK_ROUTE: u64 = 0;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
/// The low bits of `socket`'s type argument; the rest are flags
/// (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u64 = 0xf;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;

/// `personality` values programs use: `PER_LINUX`, `PER_LINUX32`, either
/// with `UNAME26`, and the query `0xffffffff`. `ADDR_NO_RANDOMIZE` is not
/// among them: it would switch address randomisation off for children.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// One argument condition, as Docker writes it.
#[derive(Debug, Clone, Serialize)]
struct Arg {
    index: u32,
    /// The value, or for `SCMP_CMP_MASKED_EQ` the mask.
    value: u64,
    /// For `SCMP_CMP_MASKED_EQ`, the value the masked argument must equal.
    #[serde(rename = "valueTwo")]
    value_two: u64,
    op: &'static str,
}

/// One rule: names, an action, conditions that must all hold.
#[derive(Debug, Clone, Serialize)]
struct Rule {
    names: Vec<&'static str>,
    action: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<Arg>,
    #[serde(rename = "errnoRet", skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
}

/// The whole profile.
#[derive(Debug, Clone, Serialize)]
struct Profile {
    #[serde(rename = "defaultAction")]
    default_action: &'static str,
    #[serde(rename = "defaultErrnoRet")]
    default_errno_ret: u32,
    architectures: Vec<&'static str>,
    syscalls: Vec<Rule>,
}

fn eq(index: u32, value: u64) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op: "SCMP_CMP_EQ",
    }
}

fn masked_eq(index: u32, mask: u64, value: u64) -> Arg {
    Arg {
        index,
        value: mask,
        value_two: value,
        op: "SCMP_CMP_MASKED_EQ",
    }
}

fn allow_if(name: &'static str, args: Vec<Arg>) -> Rule {
    Rule {
        names: vec![name],
        action: "SCMP_ACT_ALLOW",
        args,
        errno_ret: None,
    }
}

/// The seccomp architectures of the machine we run on: the native one only
/// (an unknown machine gets none listed, which means native only too).
pub fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64"],
        _ => Vec::new(),
    }
}

fn profile() -> Profile {
    let mut syscalls = vec![
        Rule {
            names: ALLOWED.to_vec(),
            action: "SCMP_ACT_ALLOW",
            args: Vec::new(),
            errno_ret: None,
        },
        Rule {
            names: PROBED.to_vec(),
            action: "SCMP_ACT_ERRNO",
            args: Vec::new(),
            errno_ret: Some(ENOSYS),
        },
        Rule {
            names: KILLED.to_vec(),
            action: "SCMP_ACT_KILL_PROCESS",
            args: Vec::new(),
            errno_ret: None,
        },
        // Threads and processes, but no new namespaces (EPERM otherwise).
        allow_if("clone", vec![masked_eq(0, CLONE_NAMESPACE_FLAGS, 0)]),
        // UNIX sockets of every type; the container's own network namespace
        // keeps abstract names private to it.
        allow_if("socket", vec![eq(0, AF_UNIX)]),
        // Routing netlink only: getaddrinfo and getifaddrs ask it what
        // interfaces exist.
        allow_if("socket", vec![eq(0, AF_NETLINK), eq(2, NETLINK_ROUTE)]),
    ];
    // TCP and UDP over IPv4 and IPv6 (loopback only: the network is
    // `none`). Raw, packet and ICMP sockets are not here: EPERM.
    for domain in [AF_INET, AF_INET6] {
        for (kind, protocol) in [
            (SOCK_STREAM, 0),
            (SOCK_STREAM, IPPROTO_TCP),
            (SOCK_DGRAM, 0),
            (SOCK_DGRAM, IPPROTO_UDP),
        ] {
            syscalls.push(allow_if(
                "socket",
                vec![
                    eq(0, domain),
                    masked_eq(1, SOCK_TYPE_MASK, kind),
                    eq(2, protocol),
                ],
            ));
        }
    }
    for &persona in PERSONALITIES {
        syscalls.push(allow_if("personality", vec![eq(0, persona)]));
    }
    Profile {
        default_action: "SCMP_ACT_ERRNO",
        default_errno_ret: EPERM,
        architectures: architectures(),
        syscalls,
    }
}

/// The profile as Docker's JSON, built once.
pub fn profile_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serialising plain structs of strings and numbers cannot fail; an
        // empty profile would be refused by the engine, loudly.
        serde_json::to_string(&profile()).unwrap_or_default()
    })
}

/// The `security_opt` entry that applies the profile to a container.
pub fn security_opt() -> String {
    format!("seccomp={}", profile_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parsed() -> Value {
        serde_json::from_str(profile_json()).expect("profile is JSON")
    }

    /// The action and errno a name gets when called with no matching
    /// argument condition in mind: rules without `args` only.
    fn unconditional(name: &str) -> Vec<(String, Option<u64>)> {
        parsed()["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .filter(|rule| rule.get("args").is_none())
            .filter(|rule| {
                rule["names"]
                    .as_array()
                    .expect("names")
                    .iter()
                    .any(|n| n == name)
            })
            .map(|rule| {
                (
                    rule["action"].as_str().expect("action").to_owned(),
                    rule.get("errnoRet").and_then(Value::as_u64),
                )
            })
            .collect()
    }

    #[test]
    fn profile_parses_with_the_intended_defaults() {
        let profile = parsed();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["defaultErrnoRet"], 1);
        let arches = profile["architectures"].as_array().expect("architectures");
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(arches, &[Value::from("SCMP_ARCH_X86_64")]);
        }
        assert!(
            arches.len() <= 1,
            "only the native architecture: {arches:?}"
        );
        assert!(security_opt().starts_with("seccomp={"));
    }

    #[test]
    fn every_denial_named_in_the_issue_has_its_action() {
        let killed = [
            "ptrace",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "bpf",
            "keyctl",
            "add_key",
            "request_key",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "process_vm_readv",
            "process_vm_writev",
            "open_by_handle_at",
            "reboot",
            "swapon",
            "swapoff",
        ];
        for name in killed {
            assert_eq!(
                unconditional(name),
                [("SCMP_ACT_KILL_PROCESS".to_owned(), None)],
                "{name}"
            );
        }
        for name in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "clone3",
        ] {
            assert_eq!(
                unconditional(name),
                [("SCMP_ACT_ERRNO".to_owned(), Some(u64::from(ENOSYS)))],
                "{name}"
            );
        }
        // Filtered, never unconditionally allowed: the default EPERM applies
        // when no condition matches.
        for name in ["clone", "socket", "personality"] {
            assert_eq!(unconditional(name), [], "{name}");
        }
    }

    #[test]
    fn socket_and_clone_filters_say_what_they_mean() {
        let profile = parsed();
        let rules: Vec<&Value> = profile["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .filter(|rule| rule.get("args").is_some())
            .collect();
        let clone: Vec<&&Value> = rules.iter().filter(|r| r["names"][0] == "clone").collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["value"], 0x7E02_0000_u64);
        assert_eq!(clone[0]["args"][0]["valueTwo"], 0);
        // No allowed socket rule admits SOCK_RAW (3) or SOCK_PACKET (10), or
        // a domain other than UNIX, IPv4, IPv6 and routing netlink.
        for rule in rules.iter().filter(|r| r["names"][0] == "socket") {
            assert_eq!(rule["action"], "SCMP_ACT_ALLOW");
            let args = rule["args"].as_array().expect("args");
            let domain = args
                .iter()
                .find(|a| a["index"] == 0)
                .expect("every socket rule names a domain");
            assert_eq!(domain["op"], "SCMP_CMP_EQ");
            let domain = domain["value"].as_u64().expect("domain");
            assert!([1, 2, 10, 16].contains(&domain), "{rule}");
            if domain == 2 || domain == 10 {
                let kind = args.iter().find(|a| a["index"] == 1).expect("type");
                assert_eq!(kind["value"], 0xf);
                assert!([1, 2].contains(&kind["valueTwo"].as_u64().expect("type")));
            }
            if domain == 16 {
                let protocol = args.iter().find(|a| a["index"] == 2).expect("protocol");
                assert_eq!(protocol["value"], 0, "NETLINK_ROUTE only");
            }
        }
    }

    #[test]
    fn no_name_is_both_allowed_and_denied() {
        let lists: [(&str, &[&str]); 3] =
            [("allowed", ALLOWED), ("probed", PROBED), ("killed", KILLED)];
        let mut seen = std::collections::HashMap::new();
        for (list, names) in lists {
            for name in names {
                if let Some(other) = seen.insert(*name, list) {
                    panic!("{name} is in both {other} and {list}");
                }
            }
        }
        for name in ["clone", "socket", "personality"] {
            assert!(!seen.contains_key(name), "{name} must stay filtered");
        }
    }
}
