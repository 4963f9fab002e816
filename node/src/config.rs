//! Configuration: defaults, then a TOML file, then `LYCEUM_*` environment
//! variables, then command-line flags, each overriding the one before.
//! Loading checks types and unknown keys (serde), then relations and ranges
//! (`validate`), and names the offending key in every error. The reference
//! for every key is `docs/configuration.md`; a tidy test keeps it complete.

use std::path::{Path, PathBuf};

use control_plane::ControlPlaneConfig;
use figment::providers::{Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::cli::{Cli, Command, LogFormatArg};

/// Prefix of every environment variable we read.
pub const ENV_PREFIX: &str = "LYCEUM_";
/// Separator between table and key in environment variable names
/// (`LYCEUM_HTTP__REQUEST_TIMEOUT_MS` is `http.request_timeout_ms`).
pub const ENV_SEPARATOR: &str = "__";

/// Default cap on a request body.
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;
/// Default time a request may take before it is answered 408.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default cap on requests being handled at once; more are answered 503.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: u32 = 4_096;
/// Default time open requests get to finish when a process stops.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 10_000;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a bad value, an unknown name or a bad type.
    #[error("invalid configuration: key `{key}`{origin}: {reason}")]
    Invalid {
        /// Dotted key, such as `http.request_timeout_ms`.
        key: String,
        /// Where the value came from, such as ` (in lyceum.toml)`.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A source could not be parsed at all (for example a TOML syntax error).
    #[error("invalid configuration{origin}: {reason}")]
    Syntax {
        /// Where the text came from, such as ` (in lyceum.toml)`.
        origin: String,
        /// What is wrong, with line and column when known.
        reason: String,
    },
    /// The config file named on the command line does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// The effective configuration could not be printed.
    #[error("cannot print the configuration: {0}")]
    Print(String),
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            origin: String::new(),
            reason: reason.into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of a `lyceum` process, immutable once loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of every process's data.
    pub data_dir: PathBuf,
    /// Log format on stderr.
    pub log_format: LogFormat,
    /// `tracing` env-filter directives.
    pub log_filter: String,
    /// HTTP limits shared by every process.
    pub http: HttpConfig,
    /// The control plane.
    pub control_plane: ControlPlaneConfig,
    /// An edge node.
    pub edge: EdgeConfig,
    /// The local dev cluster.
    pub dev: DevConfig,
    /// The code sandbox of edge nodes.
    pub sandbox: sandbox::SandboxConfig,
    /// Live classrooms on edge nodes.
    pub live: actors::live::LiveConfig,
    /// Live audio on edge nodes (the SFU's limits).
    pub media: media::SfuConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./.lyceum"),
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
            http: HttpConfig::default(),
            control_plane: ControlPlaneConfig::default(),
            edge: EdgeConfig::default(),
            dev: DevConfig::default(),
            sandbox: sandbox::SandboxConfig::default(),
            live: actors::live::LiveConfig::default(),
            media: media::SfuConfig::default(),
        }
    }
}

/// Limits of every HTTP server (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted; bigger ones get 413 `payload_too_large`.
    pub request_body_bytes_max: u64,
    /// Longest a request may take; slower ones get 408 `request_timeout`.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more get 503 `overloaded`.
    pub requests_in_flight_max: u32,
    /// Time open requests get to finish on shutdown.
    pub shutdown_grace_ms: u64,
    /// Browser origins allowed to call the API across origins (CORS): exact
    /// origins, or `scheme://host:*` for any port. The browser app is served
    /// by one process and calls the control plane and edges on other ports.
    pub cors_allowed_origins: Vec<String>,
}

/// Default CORS allow-list: the dev cluster's loopback origins on any port.
pub fn cors_allowed_origins_default() -> Vec<String> {
    vec![
        "http://127.0.0.1:*".to_owned(),
        "http://localhost:*".to_owned(),
    ]
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_body_bytes_max: REQUEST_BODY_BYTES_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS_DEFAULT,
            cors_allowed_origins: cors_allowed_origins_default(),
        }
    }
}

/// An edge node (`[edge]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Region this node serves.
    pub region: String,
    /// HTTP listen address.
    pub listen: String,
    /// Node id; empty means generate once and keep in the data dir.
    pub node_id: String,
    /// Base URL of the control plane.
    pub control_plane_url: String,
    /// Seed peers (gossip addresses of other edge nodes).
    pub join: Vec<String>,
    /// QUIC address gossip listens on (UDP).
    pub gossip_listen: String,
    /// QUIC address the actor transport (ractor_cluster sessions) listens on
    /// (UDP); empty means `gossip_listen`'s IP with its port + 100 (a free
    /// port when gossip's is 0).
    pub actor_listen: String,
    /// SWIM timing preset: `lan` (a dead node known in about 3 s) or `wan`
    /// (about 15 s, tolerant of slow links).
    pub swim_preset: SwimPreset,
    /// Cluster CA certificate (PEM); empty means the dev CA in
    /// `<data_dir>/cluster-ca`, created on first use.
    pub tls_ca_cert: String,
    /// This node's certificate chain (PEM), naming `<node_id>.lyceum.node`.
    pub tls_cert: String,
    /// This node's private key (PEM).
    pub tls_key: String,
    /// Docker engine address; empty means `DOCKER_HOST` or the local socket.
    pub docker_host: String,
    /// How long a Docker ping may take before the engine counts as down.
    pub docker_ping_timeout_ms: u64,
    /// How often readiness checks (Docker, control-plane keys) rerun.
    pub readiness_interval_ms: u64,
    /// Timeout of calls to the control plane (key set fetches).
    pub control_plane_timeout_ms: u64,
    /// How often the token key set is refetched once loaded.
    pub key_refresh_interval_ms: u64,
    /// Code runs one user may start per minute on this edge (bursts up to
    /// that many); more get 429 `rate_limited`.
    pub runs_per_user_per_minute_max: u32,
    /// Users whose run budgets are tracked at once; past it, new users get
    /// 429 until idle budgets are dropped.
    pub rate_limited_users_max: u32,
    /// Code runs one tenant's users together may start per minute on this
    /// edge, so one busy organisation cannot take a node's sandboxes.
    pub runs_per_tenant_per_minute_max: u32,
    /// Tenants whose run budgets are tracked at once.
    pub rate_limited_tenants_max: u32,
    /// Run results (and as many abuse events) kept in the edge's store
    /// for read-back; past it the oldest go. Submission reports are not
    /// retention: see `outbox_events_max`.
    pub run_results_max: u32,
    /// Submission reports the outbox may hold while the control plane is
    /// away; at it the edge refuses new runs with 503 `outbox_full` (and
    /// readiness goes red) rather than drop a report it promised to send.
    pub outbox_events_max: u32,
    /// Most reports the publisher sends in one batch
    /// (`POST /api/v1/submissions/batch`); at most the control plane's
    /// `submissions_batch_max`, or the publisher halves its batches.
    pub outbox_batch_max: u32,
    /// Reports the control plane refused for good kept for an operator
    /// (`/api/v1/operator/outbox/dead-letters`); when full, the publisher
    /// stops at the next refused report until an operator clears some.
    pub outbox_dead_letters_max: u32,
    /// Most items one list request returns (`?limit=` is capped by it).
    pub list_page_max: u32,
    /// The control plane's `edge_service_key`, sent with submission
    /// reports; empty keeps reports in the outbox (nothing is published).
    pub control_plane_service_key: String,
    /// Longest pause between retries of a submission report the control
    /// plane did not take (the pause doubles from 100 ms up to this).
    pub outbox_retry_max_ms: u64,
    /// How long a graded submission's answer waits for the outbox to hand
    /// it to the control plane (so the learner's progress shows it at
    /// once); past it the answer says `recorded: false` and the report
    /// follows later. 0 answers without waiting.
    pub submission_confirm_wait_ms: u64,
    /// Whether operators may inject gossip faults through
    /// `/api/v1/operator/faults` (drop, delay or cut traffic with chosen
    /// peers). Off by default: a production node must not offer it.
    pub fault_injection: bool,
    /// Test switch of debug builds: the first this many finished runs are
    /// answered but their submission reports are dropped on the floor, so
    /// the chaos checker's own test can prove it catches a lost,
    /// acknowledged submission. Release builds refuse anything but 0.
    pub test_drop_reports: u32,
    /// Longest a temporary warm-pool target (`for_ms` of
    /// `PUT /api/v1/sandbox/pools/{language}`) may last.
    pub pool_override_ms_max: u64,
    /// Longest window fault rules may be given (`for_ms` of
    /// `PUT /api/v1/operator/faults`).
    pub fault_window_ms_max: u64,
    /// How the pool actors decide warm targets: `fixed` (the
    /// `sandbox.pool_target` only), `reactive` (and the rate observed
    /// here) or `predictive` (and the timetable's plan).
    pub pool_policy: actors::pool::Policy,
    /// How often each pool actor decides its target again.
    pub pool_tick_ms: u64,
    /// Half-life of the smoothing of the observed run rate.
    pub pool_observed_half_life_ms: u64,
    /// Seconds of the observed rate a pool holds warm (in ms).
    pub pool_reactive_horizon_ms: u64,
    /// How long a warm surplus is kept after a pool's target falls (runs
    /// use it up) before what is left is destroyed; 0 destroys at once.
    pub pool_surplus_grace_ms: u64,
    /// Most warm containers this node holds across languages.
    pub pool_warm_containers_max: u32,
    /// Most memory (the containers' limits, MB) warm containers hold
    /// across languages.
    pub pool_warm_memory_mb_max: u64,
    /// How often the edge fetches its region's pool plan from the control
    /// plane (`GET /api/v1/sandbox/plan`).
    pub pool_plan_refresh_ms: u64,
    /// Where the operator console finds the drill API of the `lyceum dev`
    /// supervisor that runs this edge (`GET /api/v1/node` names it as
    /// `drills_url`). `lyceum dev` sets it when `dev.chaos` is on; empty
    /// (the default, and always in production): drills are not offered.
    pub drills_url: String,
    /// Shortest gap between refetches triggered by a token signed with an
    /// unknown key (after a rotation), so bad tokens cannot flood the
    /// control plane.
    pub key_refetch_min_interval_ms: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            region: "eu-west".to_owned(),
            listen: "127.0.0.1:7401".to_owned(),
            node_id: String::new(),
            control_plane_url: "http://127.0.0.1:7400".to_owned(),
            join: Vec::new(),
            gossip_listen: "127.0.0.1:7501".to_owned(),
            actor_listen: String::new(),
            swim_preset: SwimPreset::Lan,
            tls_ca_cert: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            docker_host: String::new(),
            docker_ping_timeout_ms: 2_000,
            readiness_interval_ms: 2_000,
            control_plane_timeout_ms: 5_000,
            key_refresh_interval_ms: 300_000,
            key_refetch_min_interval_ms: 1_000,
            runs_per_user_per_minute_max: 120,
            rate_limited_users_max: 100_000,
            runs_per_tenant_per_minute_max: 3_000,
            rate_limited_tenants_max: 10_000,
            run_results_max: 100_000,
            outbox_events_max: 100_000,
            outbox_batch_max: 500,
            outbox_dead_letters_max: 10_000,
            list_page_max: 1_000,
            fault_injection: false,
            test_drop_reports: 0,
            drills_url: String::new(),
            pool_override_ms_max: 3_600_000,
            fault_window_ms_max: 3_600_000,
            pool_policy: actors::pool::Policy::Predictive,
            pool_tick_ms: 1_000,
            pool_observed_half_life_ms: 30_000,
            pool_reactive_horizon_ms: 10_000,
            pool_surplus_grace_ms: 60_000,
            pool_warm_containers_max: 64,
            pool_warm_memory_mb_max: 16_384,
            pool_plan_refresh_ms: 60_000,
            control_plane_service_key: String::new(),
            outbox_retry_max_ms: 30_000,
            submission_confirm_wait_ms: 3_000,
        }
    }
}

/// Shortest `edge.pool_tick_ms`: pool actors deciding more often than this
/// would only load the engine with target changes.
pub const POOL_TICK_MS_MIN: u64 = 10;

/// How far above the gossip port the actor transport listens when
/// `edge.actor_listen` is empty.
pub const ACTOR_PORT_OFFSET: u16 = 100;

impl EdgeConfig {
    /// Where the actor transport binds: `actor_listen`, or when that is empty
    /// the gossip address's IP with its port + [`ACTOR_PORT_OFFSET`] (a free
    /// port when gossip's is 0), so the dev cluster's edges never collide.
    ///
    /// # Errors
    /// [`ConfigError`] naming `edge.actor_listen` (or `edge.gossip_listen`)
    /// when the address does not parse or the derived port is out of range.
    pub fn actor_addr(&self) -> Result<std::net::SocketAddr, ConfigError> {
        if !self.actor_listen.is_empty() {
            return self.actor_listen.parse().map_err(|_| {
                ConfigError::invalid(
                    "edge.actor_listen",
                    format!("{:?} is not an ip:port address", self.actor_listen),
                )
            });
        }
        let gossip: std::net::SocketAddr = self.gossip_listen.parse().map_err(|_| {
            ConfigError::invalid(
                "edge.gossip_listen",
                format!("{:?} is not an ip:port address", self.gossip_listen),
            )
        })?;
        let port = match gossip.port() {
            0 => 0,
            port => port.checked_add(ACTOR_PORT_OFFSET).ok_or_else(|| {
                ConfigError::invalid(
                    "edge.actor_listen",
                    "empty, and gossip_listen's port + 100 is past 65535; set it",
                )
            })?,
        };
        Ok(std::net::SocketAddr::new(gossip.ip(), port))
    }
}

/// SWIM timing presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwimPreset {
    /// A regional LAN.
    Lan,
    /// Links between regions.
    Wan,
}

/// The local dev cluster (`[dev]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Control-plane port; edges take the following ones. 0 picks free ports.
    pub base_port: u16,
    /// Regions to start one edge node for.
    pub regions: Vec<String>,
    /// How long a child may take to start serving and become ready.
    pub child_ready_timeout_ms: u64,
    /// How long a child gets to stop after SIGTERM before SIGKILL.
    pub child_stop_timeout_ms: u64,
    /// How long after a child dies it is started again; doubled after
    /// each death that follows a short life, up to
    /// `restart_backoff_max_ms`. 0 never restarts a child.
    pub restart_backoff_initial_ms: u64,
    /// The longest wait before starting a dead child again; a child that
    /// lived at least this long starts again after the initial wait.
    pub restart_backoff_max_ms: u64,
    /// Whether `lyceum chaos run` may kill and pause this cluster's
    /// processes: the supervisor then serves its control API on loopback
    /// (address and key in `cluster.json`). A dev cluster is for trying
    /// things, so this is on; nothing else offers the API.
    pub chaos: bool,
    /// Longest window a drill may keep a process killed or paused; every
    /// such fault carries its deadline here, so a runner that dies
    /// mid-drill leaves nothing down or stopped for longer than that.
    pub chaos_fault_ms_max: u64,
    /// The drill catalogue the operator console lists and starts drills
    /// from (with `dev.chaos`); relative paths are from the directory
    /// `lyceum dev` was started in.
    pub drills_dir: PathBuf,
}

/// How many edge nodes `lyceum dev` may start at most.
pub const DEV_REGIONS_MAX: usize = 16;

impl Default for DevConfig {
    fn default() -> Self {
        Self {
            base_port: 7400,
            regions: vec!["eu-west".into(), "us-east".into(), "ap-south".into()],
            child_ready_timeout_ms: 60_000,
            child_stop_timeout_ms: 10_000,
            restart_backoff_initial_ms: 1_000,
            restart_backoff_max_ms: 30_000,
            chaos: true,
            chaos_fault_ms_max: 3_600_000,
            drills_dir: PathBuf::from("chaos/drills"),
        }
    }
}

impl Config {
    /// Loads defaults, the config file, the environment and the flags of
    /// `cli`, then validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending key and why.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        Self::load_from(cli.config.as_deref(), std::env::vars(), flag_overrides(cli))
    }

    /// Loads from explicit sources, for tests: `env` is a list of variables
    /// (only `LYCEUM_*` ones are read) and `overrides` a nested JSON object.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending key and why.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: Value,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Named::new("environment", env_value(env)))
            .merge(Named::new("command-line flags", overrides));
        let mut config: Config = figment.extract().map_err(from_figment)?;
        config.validate()?;
        config.control_plane.data_dir = config.data_dir.join("control-plane");
        Ok(config)
    }

    /// Checks ranges and relations that types cannot express.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "must not be empty"));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            return Err(ConfigError::invalid("log_filter", err.to_string()));
        }
        let http = &self.http;
        for (key, value) in [
            ("http.request_body_bytes_max", http.request_body_bytes_max),
            ("http.request_timeout_ms", http.request_timeout_ms),
            (
                "http.requests_in_flight_max",
                u64::from(http.requests_in_flight_max),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        // Tokio's semaphore caps permits; stay far below the 20,000 open files
        // a process may hold so sockets never run the process out of them.
        if http.requests_in_flight_max > 16_384 {
            return Err(ConfigError::invalid(
                "http.requests_in_flight_max",
                "must be at most 16384 (a process may hold 20000 open files)",
            ));
        }
        check_addr("control_plane.listen", &self.control_plane.listen)?;
        self.control_plane.validate().map_err(|err| match err {
            control_plane::ControlPlaneError::Config { key, reason } => {
                ConfigError::invalid(&key, reason)
            }
            other => ConfigError::invalid("control_plane", other.to_string()),
        })?;
        let edge = &self.edge;
        gossip::Region::new(&edge.region)
            .map_err(|err| ConfigError::invalid("edge.region", err.to_string()))?;
        check_addr("edge.listen", &edge.listen)?;
        if !edge.node_id.is_empty() {
            gossip::NodeId::new(&edge.node_id)
                .map_err(|err| ConfigError::invalid("edge.node_id", err.to_string()))?;
        }
        check_url("edge.control_plane_url", &edge.control_plane_url)?;
        for peer in &edge.join {
            check_addr("edge.join", peer)?;
        }
        check_addr("edge.gossip_listen", &edge.gossip_listen)?;
        edge.actor_addr()?;
        let tls_given = [&edge.tls_ca_cert, &edge.tls_cert, &edge.tls_key]
            .iter()
            .filter(|path| !path.is_empty())
            .count();
        if tls_given != 0 && tls_given != 3 {
            return Err(ConfigError::invalid(
                "edge.tls_ca_cert",
                "give all of tls_ca_cert, tls_cert and tls_key, or none (dev CA)",
            ));
        }
        for (key, value) in [
            ("edge.docker_ping_timeout_ms", edge.docker_ping_timeout_ms),
            ("edge.readiness_interval_ms", edge.readiness_interval_ms),
            (
                "edge.control_plane_timeout_ms",
                edge.control_plane_timeout_ms,
            ),
            ("edge.key_refresh_interval_ms", edge.key_refresh_interval_ms),
            (
                "edge.key_refetch_min_interval_ms",
                edge.key_refetch_min_interval_ms,
            ),
            (
                "dev.child_ready_timeout_ms",
                self.dev.child_ready_timeout_ms,
            ),
            ("dev.child_stop_timeout_ms", self.dev.child_stop_timeout_ms),
            ("dev.chaos_fault_ms_max", self.dev.chaos_fault_ms_max),
            (
                "dev.restart_backoff_max_ms",
                self.dev.restart_backoff_max_ms,
            ),
            (
                "edge.runs_per_user_per_minute_max",
                u64::from(edge.runs_per_user_per_minute_max),
            ),
            (
                "edge.rate_limited_users_max",
                u64::from(edge.rate_limited_users_max),
            ),
            (
                "edge.runs_per_tenant_per_minute_max",
                u64::from(edge.runs_per_tenant_per_minute_max),
            ),
            (
                "edge.rate_limited_tenants_max",
                u64::from(edge.rate_limited_tenants_max),
            ),
            ("edge.run_results_max", u64::from(edge.run_results_max)),
            ("edge.outbox_events_max", u64::from(edge.outbox_events_max)),
            ("edge.outbox_batch_max", u64::from(edge.outbox_batch_max)),
            (
                "edge.outbox_dead_letters_max",
                u64::from(edge.outbox_dead_letters_max),
            ),
            ("edge.list_page_max", u64::from(edge.list_page_max)),
            ("edge.outbox_retry_max_ms", edge.outbox_retry_max_ms),
            ("edge.pool_override_ms_max", edge.pool_override_ms_max),
            ("edge.fault_window_ms_max", edge.fault_window_ms_max),
            ("edge.pool_tick_ms", edge.pool_tick_ms),
            (
                "edge.pool_observed_half_life_ms",
                edge.pool_observed_half_life_ms,
            ),
            ("edge.pool_plan_refresh_ms", edge.pool_plan_refresh_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        self.live
            .validate()
            .map_err(|(key, reason)| ConfigError::invalid(key, reason))?;
        self.sandbox
            .validate()
            .map_err(|(key, reason)| ConfigError::invalid(&format!("sandbox.{key}"), reason))?;
        self.media
            .validate()
            .map_err(|err| ConfigError::invalid(&format!("media.{}", err.key), err.problem))?;
        let regions = &self.dev.regions;
        if regions.is_empty() || regions.len() > DEV_REGIONS_MAX {
            return Err(ConfigError::invalid(
                "dev.regions",
                format!("must list 1 to {DEV_REGIONS_MAX} regions"),
            ));
        }
        for (i, region) in regions.iter().enumerate() {
            gossip::Region::new(region)
                .map_err(|err| ConfigError::invalid("dev.regions", format!("{region:?}: {err}")))?;
            if regions[..i].contains(region) {
                return Err(ConfigError::invalid(
                    "dev.regions",
                    format!("{region:?} is listed twice"),
                ));
            }
        }
        let drills_url_ok = edge.drills_url.is_empty()
            || edge.drills_url.starts_with("http://")
            || edge.drills_url.starts_with("https://");
        if !drills_url_ok {
            return Err(ConfigError::invalid(
                "edge.drills_url",
                "must be an http:// or https:// URL, or empty",
            ));
        }
        if edge.pool_tick_ms < POOL_TICK_MS_MIN {
            return Err(ConfigError::invalid(
                "edge.pool_tick_ms",
                format!("must be at least {POOL_TICK_MS_MIN}"),
            ));
        }
        if edge.test_drop_reports > 0 && !cfg!(debug_assertions) {
            return Err(ConfigError::invalid(
                "edge.test_drop_reports",
                "is a test switch of debug builds; a release build takes only 0",
            ));
        }
        if self.dev.restart_backoff_initial_ms > self.dev.restart_backoff_max_ms {
            return Err(ConfigError::invalid(
                "dev.restart_backoff_initial_ms",
                "must not exceed dev.restart_backoff_max_ms",
            ));
        }
        // HTTP ports from base_port, gossip ports from base_port + 100.
        let ports_needed = u16::try_from(regions.len())
            .unwrap_or(u16::MAX)
            .saturating_add(100);
        if self.dev.base_port != 0 && self.dev.base_port.checked_add(ports_needed).is_none() {
            return Err(ConfigError::invalid(
                "dev.base_port",
                "leaves no room for one port per region",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `lyceum config`.
    ///
    /// # Errors
    /// [`ConfigError::Print`] if serialization fails (a bug).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|err| ConfigError::Print(err.to_string()))
    }
}

fn check_addr(key: &str, value: &str) -> Result<(), ConfigError> {
    value
        .parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not an ip:port address")))
}

fn check_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} must start with http:// or https://"),
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::invalid(key, format!("{value:?} has no host")));
    }
    Ok(())
}

/// A layer of settings with a name that errors can point at.
struct Named {
    name: &'static str,
    value: Value,
}

impl Named {
    fn new(name: &'static str, value: Value) -> Self {
        Self { name, value }
    }
}

impl figment::Provider for Named {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name)
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::defaults(&self.value).data()
    }
}

/// Reads `LYCEUM_*` variables from `vars`, skipping `LYCEUM_CONFIG` (a flag's
/// variable) and `LYCEUM_TEST_*` (test-suite settings).
fn env_value(vars: impl IntoIterator<Item = (String, String)>) -> Value {
    // figment's Env provider reads the process environment only; tests pass
    // their own, so build the nested value here with the same rules.
    let mut root = Map::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        if key == "config" || key.starts_with("test_") || key.is_empty() {
            continue;
        }
        let parsed = parse_env_value(&value);
        let parts: Vec<&str> = key.split(ENV_SEPARATOR).collect();
        insert_path(&mut root, &parts, parsed);
    }
    Value::Object(root)
}

/// Environment values are TOML-ish: numbers, booleans and `[a, b]` arrays are
/// typed; anything else is a string.
fn parse_env_value(text: &str) -> Value {
    let wrapped = format!("v = {text}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(table) => table
            .get("v")
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_else(|| Value::String(text.to_owned())),
        Err(_) => Value::String(text.to_owned()),
    }
}

fn insert_path(root: &mut Map<String, Value>, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            root.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = root
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(map) = entry {
                insert_path(map, rest, value);
            }
        }
    }
}

/// The flags that were given, as a nested object that overrides other sources.
fn flag_overrides(cli: &Cli) -> Value {
    let mut root = Map::new();
    if let Some(dir) = &cli.data_dir {
        root.insert("data_dir".into(), json!(dir));
    }
    if let Some(format) = cli.log_format {
        let name = match format {
            LogFormatArg::Human => "human",
            LogFormatArg::Json => "json",
        };
        root.insert("log_format".into(), json!(name));
    }
    if let Some(filter) = &cli.log_filter {
        root.insert("log_filter".into(), json!(filter));
    }
    match &cli.command {
        Command::Dev(args) => {
            if let Some(port) = args.base_port {
                insert_path(&mut root, &["dev", "base_port"], json!(port));
            }
        }
        Command::ControlPlane(args) => {
            if let Some(listen) = &args.listen {
                insert_path(&mut root, &["control_plane", "listen"], json!(listen));
            }
            if let Some(url) = &args.database_url {
                insert_path(&mut root, &["control_plane", "database_url"], json!(url));
            }
        }
        Command::Edge(args) => {
            if let Some(region) = &args.region {
                insert_path(&mut root, &["edge", "region"], json!(region));
            }
            if let Some(listen) = &args.listen {
                insert_path(&mut root, &["edge", "listen"], json!(listen));
            }
            if !args.join.is_empty() {
                insert_path(&mut root, &["edge", "join"], json!(args.join));
            }
            if let Some(url) = &args.control_plane {
                insert_path(&mut root, &["edge", "control_plane_url"], json!(url));
            }
            if let Some(id) = &args.node_id {
                insert_path(&mut root, &["edge", "node_id"], json!(id));
            }
            if let Some(addr) = &args.gossip_listen {
                insert_path(&mut root, &["edge", "gossip_listen"], json!(addr));
            }
        }
        Command::Config
        | Command::SandboxAgent
        | Command::Run(_)
        | Command::Route(_)
        | Command::Load(_)
        | Command::Chaos(_)
        | Command::LoadWorker => {}
    }
    Value::Object(root)
}

/// Turns figment's error into ours, naming the key and where its value came
/// from.
fn from_figment(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut key: Vec<String> = err.path.clone();
    let reason = match &err.kind {
        Kind::UnknownField(field, expected) => {
            if key.last() != Some(field) {
                key.push(field.clone());
            }
            let known = expected.join(", ");
            format!("unknown key; known keys here: {known}")
        }
        Kind::InvalidType(actual, expected) => {
            format!("expected {expected}, found {actual}")
        }
        other => other.to_string(),
    };
    let origin = err
        .metadata
        .as_ref()
        .map(|meta| match &meta.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            _ => format!(" (from {})", meta.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        return ConfigError::Syntax { origin, reason };
    }
    ConfigError::Invalid {
        key: key.join("."),
        origin,
        reason,
    }
}
