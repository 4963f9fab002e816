//! Starting a sandbox for a test.

use sandbox::run::{agent_at, RunRequest, SourceFile};
use sandbox::{DockerEngine, Sandbox, SandboxConfig};

/// A sandbox with warm pools for `languages` (all installed when empty).
pub async fn sandbox(languages: &[&str], tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let engine = DockerEngine::connect("").expect("docker client");
    let mut config = SandboxConfig {
        languages: languages.iter().map(|s| (*s).to_owned()).collect(),
        ..SandboxConfig::default()
    };
    tweak(&mut config);
    let owner = format!("test-{}", uuid::Uuid::new_v4().simple());
    let agent = agent_at(env!("CARGO_BIN_EXE_lyceum-sandbox-agent").into(), &owner);
    let registry = prometheus::Registry::new();
    Sandbox::start(engine, config, agent, &registry)
        .await
        .unwrap_or_else(|err| {
            panic!("the sandbox needs a running Docker engine (scripts/test starts one): {err}")
        })
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
