//! Helpers to start `lyceum` processes and talk to them. Every wait is
//! bounded by a generous harness limit: these catch hangs, they do not
//! measure speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// Upper bound on waiting for a process to come up (cold caches on a busy
/// 2-core machine can be slow; this only catches hangs).
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// The binary under test.
pub fn lyceum() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lyceum"));
    // Keep the developer's own settings out of the tests.
    for (name, _) in std::env::vars() {
        if name.starts_with("LYCEUM_") && !name.starts_with("LYCEUM_TEST_") {
            command.env_remove(name);
        }
    }
    command.env("LYCEUM_LOG_FORMAT", "json");
    // Edges warm no sandbox containers unless a test asks for them.
    command.env("LYCEUM_SANDBOX__POOL_TARGET", "0");
    // Standalone edges must not fight over the default gossip port.
    command.env("LYCEUM_EDGE__GOSSIP_LISTEN", "127.0.0.1:0");
    command
}

/// A child process that is killed when dropped, with its stderr in a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut command: Command, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("spawn lyceum");
        Self {
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("signal");
    }

    /// Waits for exit, up to `limit`; panics with the log if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How long a dropped process gets to stop on SIGTERM before SIGKILL. A
/// `lyceum dev` supervisor stops its children first; killing it outright
/// would leave them shutting down while the test deletes their data
/// directory under them (sled then waits forever in its final flush).
const STOP_GRACE: Duration = Duration::from_secs(20);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it yields a value or `limit` passes.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The Prometheus text a process serves at `{url}/metrics`.
pub async fn metrics_text(url: &str) -> String {
    client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}/metrics: {err}"))
        .text()
        .await
        .unwrap_or_else(|err| panic!("GET {url}/metrics body: {err}"))
}

/// GET `url` and return status and JSON body (Null when the body is not JSON).
pub async fn get_json(url: &str, token: Option<&str>) -> Option<(u16, serde_json::Value)> {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    Some((status, body))
}

/// Reads the ready file a supervised child writes.
pub fn ready_url(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["url"].as_str().map(str::to_owned)
}

pub fn pid_alive(pid: i64) -> bool {
    let pid = i32::try_from(pid).expect("pid fits i32");
    // A zombie still answers kill(0); check /proc for its state too.
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    !state.is_empty() && state != "Z"
}
