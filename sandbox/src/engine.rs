//! The handle on the local Docker engine. Debian's engine speaks an older
//! API than bollard's default, so the version is negotiated on first use.

use std::time::Duration;

use bollard::Docker;

/// Why the Docker engine could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No client could be built for the configured host.
    #[error("cannot reach the docker engine at {host}: {source}")]
    Connect {
        /// The host we tried (`local defaults` when none was configured).
        host: String,
        /// The client's error.
        source: bollard::errors::Error,
    },
    /// The engine did not answer in time.
    #[error("the docker engine did not answer within {timeout_ms} ms")]
    Timeout {
        /// The limit that was exceeded.
        timeout_ms: u64,
    },
    /// The engine answered with an error.
    #[error("the docker engine failed: {0}")]
    Engine(#[from] bollard::errors::Error),
    /// The sandbox image could not be built.
    #[error("cannot build the sandbox image: {0}")]
    Image(String),
    /// The agent in a container broke the protocol (no or a bad report).
    #[error("sandbox agent: {0}")]
    Agent(String),
    /// A run did not finish within the host-side limit; the container was killed.
    #[error("the sandbox did not answer within {0} ms")]
    HostTimeout(u64),
    /// The request cannot run here (unknown language, bad limits...):
    /// the caller's fault, answered with the refusal's stable code.
    #[error("{message}")]
    Rejected {
        /// Which rule the request broke.
        refusal: Refusal,
        /// What is wrong, for a person.
        message: String,
    },
}

impl SandboxError {
    /// A refusal of a request, with its reason.
    pub fn rejected(refusal: Refusal, message: impl Into<String>) -> Self {
        Self::Rejected {
            refusal,
            message: message.into(),
        }
    }
}

/// The rule a refused request broke: a closed set, so callers map each to
/// their stable error code (`unknown_language`, `bad_file_name`,
/// `bad_request` on edges) without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The language is unknown, or not installed (or pooled) on this node.
    UnknownLanguage,
    /// A file name is empty, too long, hidden, a path, or used twice.
    BadFileName,
    /// Anything else about the request's shape (too many files or tests,
    /// too many bytes, limits, tolerances, no files, a bad sandbox
    /// setting).
    BadRequest,
}

/// A handle on the local Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
}

/// What the engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Engine version, such as `26.1.5`.
    pub version: String,
}

impl DockerEngine {
    /// Builds a client for `host` (`unix:///...` or `tcp://...`), or for the
    /// local defaults (`DOCKER_HOST`, else `/var/run/docker.sock`) when empty.
    /// No request is sent yet.
    ///
    /// # Errors
    /// [`SandboxError::Connect`] when the host cannot be parsed.
    pub fn connect(host: &str) -> Result<Self, SandboxError> {
        let docker = if host.is_empty() {
            Docker::connect_with_local_defaults()
        } else if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(host, 30, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|source| SandboxError::Connect {
            host: if host.is_empty() {
                "local defaults".to_owned()
            } else {
                host.to_owned()
            },
            source,
        })?;
        Ok(Self { docker })
    }

    /// The bollard client, for the other modules of this crate.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Agrees on an API version with the engine; later calls use it.
    ///
    /// # Errors
    /// [`SandboxError::Engine`] when the engine does not answer.
    pub async fn negotiate(&mut self) -> Result<(), SandboxError> {
        self.docker = self.docker.clone().negotiate_version().await?;
        Ok(())
    }

    /// Asks the engine for its version, within `timeout`.
    ///
    /// Cancel safe: dropping the future abandons the request.
    ///
    /// # Errors
    /// [`SandboxError::Timeout`] or [`SandboxError::Engine`].
    pub async fn ping(&self, timeout: Duration) -> Result<EngineInfo, SandboxError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        // Debian's engine speaks an older API than bollard's default, so agree
        // on a version first (this costs the same single round trip).
        let ask = async {
            let docker = self.docker.clone().negotiate_version().await?;
            docker.version().await
        };
        let version = tokio::time::timeout(timeout, ask)
            .await
            .map_err(|_| SandboxError::Timeout { timeout_ms })??;
        Ok(EngineInfo {
            version: version.version.unwrap_or_else(|| "unknown".to_owned()),
        })
    }
}
