//! Starting a sandbox for a test.

use sandbox::run::{agent_at, RunRequest, SourceFile};
use sandbox::{DockerEngine, Sandbox, SandboxConfig};

/// The machine the tests share. Most tests take it shared; the adversarial
/// ones take it whole, so their load (a 200-run storm, CPU spinners that
/// must get their CPU share) never pushes another test past a time limit.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A share of the machine, held for a test's whole run.
pub async fn machine_shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// The whole machine, held for a test's whole run.
pub async fn machine_whole() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// A sandbox with warm pools for `languages` (all installed when empty).
pub async fn sandbox(languages: &[&str], tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    sandbox_owned(languages, tweak).await.0
}

/// As [`sandbox`], with the owner its containers are labelled with, so a
/// test can check that none is left.
pub async fn sandbox_owned(
    languages: &[&str],
    tweak: impl FnOnce(&mut SandboxConfig),
) -> (Sandbox, String) {
    let engine = DockerEngine::connect("").expect("docker client");
    let mut config = SandboxConfig {
        languages: languages.iter().map(|s| (*s).to_owned()).collect(),
        ..SandboxConfig::default()
    };
    tweak(&mut config);
    let owner = format!("test-{}", uuid::Uuid::new_v4().simple());
    let agent = agent_at(env!("CARGO_BIN_EXE_lyceum-sandbox-agent").into(), &owner);
    let registry = prometheus::Registry::new();
    let sandbox = Sandbox::start(engine, config, agent, &registry)
        .await
        .unwrap_or_else(|err| {
            panic!("the sandbox needs a running Docker engine (scripts/test starts one): {err}")
        });
    (sandbox, owner)
}

/// Containers labelled as `owner`'s, running or not, as the engine lists
/// them (through the `docker` CLI, which the test machine has).
pub fn containers_of(owner: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args(["ps", "--all", "--quiet", "--no-trunc", "--filter"])
        .arg(format!("label={}={owner}", sandbox::container::LABEL))
        .output()
        .expect("the docker CLI");
    assert!(output.status.success(), "docker ps: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A request with one file.
pub fn request(language: &str, code: &str) -> RunRequest {
    RunRequest {
        language: language.to_owned(),
        files: vec![SourceFile {
            name: String::new(),
            content: code.to_owned(),
        }],
        stdin: String::new(),
        tests: Vec::new(),
        limits: Default::default(),
    }
}
