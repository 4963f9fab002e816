//! The code sandbox, and the only crate that talks to Docker. Learners' code
//! runs in one-shot containers taken from a warm pool per language: each is
//! created and started before it is needed with an agent waiting on its
//! stdin, serves exactly one submission, and is destroyed; a replacement is
//! warmed in the background. Runtimes are the host's Debian packages,
//! bind-mounted read-only into an image the project builds locally (no
//! pulls). Every container: no network, no capabilities, read-only root,
//! tmpfs work dir, memory/CPU/pids/file limits, non-root, an init.

pub mod abuse;
pub mod agent;
pub mod cgroup;
pub mod compare;
pub mod container;
pub mod engine;
pub mod image;
pub mod job;
pub mod languages;
pub mod pool;
pub mod run;
pub mod seccomp;

pub use engine::{DockerEngine, EngineInfo, Refusal, SandboxError};
pub use languages::{Language, LANGUAGES};
pub use run::{RunRequest, RunResult, Sandbox, SandboxConfig, Verdict};
