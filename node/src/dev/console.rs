//! The operator console's drill API, served by the supervisor beside its
//! control API (`/v1/chaos/...`, contract in `docs/design/chaos.md`): the
//! catalogue, past reports, the drill running now, and starting or aborting
//! one. It lives in the supervisor because only a `lyceum dev` cluster with
//! `dev.chaos` offers drills: production has no supervisor, so a browser
//! can never start a drill there.
//!
//! Callers are operators of the platform, so they present the control
//! plane's own access token, verified against its published key set. The
//! key set is fetched once the control plane is up and then kept (refetched
//! only for an unknown key), so the console keeps working while a drill has
//! the control plane down. A drill runs as its own process, `lyceum chaos
//! run`, exactly as from a terminal; the console reads the live status it
//! writes (`chaos::live`) and the reports it leaves, so a drill started
//! from a terminal shows here too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chaos::catalogue;
use chaos::cluster::Cluster;
use chaos::live::{LiveState, LiveStatus};
use chaos::report::Report;
use control_plane::tokens::{Jwks, Role, TokenVerifier};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::chaos::faults::unsupported;
use crate::chaos::outcome::{drill_lock, read_cluster};
use crate::cluster_file::ClusterFile;

/// Most past runs `GET /v1/chaos/runs` lists, newest first.
pub const CONSOLE_RUNS_MAX: usize = 50;

/// Largest report file the console reads.
pub const REPORT_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// Largest request body: the only body is `{"drill": name}`.
pub const CONSOLE_BODY_BYTES_MAX: usize = 1024;

/// How long a start waits for the new runner to write its live status
/// before answering; a runner that exits first is reported as failed.
pub const RUNNER_START_WAIT: Duration = Duration::from_secs(15);

/// Shortest gap between key-set fetches for tokens naming unknown keys.
const KEY_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a key-set fetch may take.
const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a console call was refused; each has a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// No bearer token.
    #[error("an operator's access token is needed (Authorization: Bearer)")]
    NoToken,
    /// A token that does not verify.
    #[error("{0}")]
    BadToken(String),
    /// A valid token of someone who is not an operator.
    #[error("only operators may see and start chaos drills")]
    NotOperator,
    /// The control plane's key set is not fetched yet.
    #[error("the supervisor has not loaded the control plane's token keys yet; try again")]
    KeysNotLoaded,
    /// `cluster.json` cannot be read.
    #[error("{0}")]
    ClusterUnreadable(String),
    /// The catalogue folder cannot be listed.
    #[error("{message} (dev.drills_dir)")]
    Catalogue {
        /// The catalogue's own error code.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
    /// No drill of that name.
    #[error("no drill {0:?} in the catalogue")]
    UnknownDrill(String),
    /// The drill does not validate here, or the runner cannot do it.
    #[error("the drill cannot run on this cluster")]
    Refused(Vec<String>),
    /// A drill runs already.
    #[error("another drill runs against this cluster; one at a time")]
    DrillRunning,
    /// An abort with nothing to abort.
    #[error("no drill runs against this cluster")]
    NoDrillRunning,
    /// No report of that id.
    #[error("no report {0:?}")]
    UnknownRun(String),
    /// A body that is not `{"drill": name}`.
    #[error("{0}")]
    BadRequest(String),
    /// The live file cannot be read.
    #[error("{message}")]
    Live {
        /// The live file's own error code.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A report file cannot be read.
    #[error("{0}")]
    ReportUnreadable(String),
    /// The runner did not start.
    #[error("{0}")]
    RunnerFailed(String),
    /// The runner could not be interrupted.
    #[error("{0}")]
    SignalFailed(String),
}

impl ConsoleError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NoToken | Self::BadToken(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotOperator => (StatusCode::FORBIDDEN, "forbidden"),
            Self::KeysNotLoaded => (StatusCode::SERVICE_UNAVAILABLE, "keys_not_loaded"),
            Self::ClusterUnreadable(_) => (StatusCode::SERVICE_UNAVAILABLE, "cluster_unreadable"),
            Self::Catalogue { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::UnknownDrill(_) => (StatusCode::NOT_FOUND, "unknown_drill"),
            Self::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "drill_refused"),
            Self::DrillRunning => (StatusCode::CONFLICT, "drill_running"),
            Self::NoDrillRunning => (StatusCode::CONFLICT, "no_drill_running"),
            Self::UnknownRun(_) => (StatusCode::NOT_FOUND, "unknown_run"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Live { code, .. } => (StatusCode::INTERNAL_SERVER_ERROR, code),
            Self::ReportUnreadable(_) => (StatusCode::INTERNAL_SERVER_ERROR, "report_unreadable"),
            Self::RunnerFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "runner_failed"),
            Self::SignalFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "signal_failed"),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        if let Self::Refused(problems) = self {
            body["error"]["problems"] = serde_json::json!(problems);
        }
        (status, Json(body)).into_response()
    }
}

/// What the console needs of the supervisor.
pub(crate) struct Console {
    /// The cluster's data dir (`cluster.json`, `chaos/`).
    data_dir: PathBuf,
    /// `dev.drills_dir`.
    drills_dir: PathBuf,
    /// The `lyceum` executable and the global flags its children get.
    exe: PathBuf,
    global_args: Vec<String>,
    http: reqwest::Client,
    /// The control plane's base URL, once it serves.
    control_plane_url: RwLock<Option<String>>,
    /// Its key set, once fetched.
    verifier: RwLock<Option<Arc<TokenVerifier>>>,
    /// When the key set was last fetched (for the refetch interval).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Held while a start is checked and its runner spawned, so two starts
    /// cannot both pass the "nothing runs" check.
    starting: tokio::sync::Mutex<()>,
}

impl Console {
    /// A console for the cluster in `data_dir`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub(crate) fn new(
        data_dir: PathBuf,
        drills_dir: PathBuf,
        exe: PathBuf,
        global_args: Vec<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            data_dir,
            drills_dir,
            exe,
            global_args,
            http: reqwest::Client::builder()
                .timeout(KEY_FETCH_TIMEOUT)
                .build()?,
            control_plane_url: RwLock::new(None),
            verifier: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    /// Names the control plane whose tokens are accepted, and fetches its
    /// key set.
    pub(crate) async fn set_control_plane(&self, url: &str) {
        *self
            .control_plane_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(url.trim_end_matches('/').to_owned());
        self.refetch(true).await;
    }

    fn chaos_dir(&self) -> PathBuf {
        self.data_dir.join("chaos")
    }

    fn current(&self) -> Option<Arc<TokenVerifier>> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the key set unless one was fetched within the refetch
    /// interval (`force` ignores it).
    async fn refetch(&self, force: bool) {
        let mut last = self.last_fetch.lock().await;
        if !force && last.is_some_and(|at| at.elapsed() < KEY_REFETCH_MIN_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let Some(url) = self
            .control_plane_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let fetched = async {
            let response = self
                .http
                .get(format!("{url}/.well-known/jwks.json"))
                .send()
                .await
                .map_err(|err| err.to_string())?;
            if !response.status().is_success() {
                return Err(format!("answered {}", response.status()));
            }
            let jwks: Jwks = response.json().await.map_err(|err| err.to_string())?;
            TokenVerifier::new(&jwks).map_err(|err| err.to_string())
        }
        .await;
        match fetched {
            Ok(verifier) => {
                *self
                    .verifier
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(verifier));
            }
            Err(err) => {
                tracing::warn!(error = %err, "the console could not fetch the control plane's key set");
            }
        }
    }

    /// Lets an operator in, or says why not.
    async fn operator(&self, headers: &HeaderMap) -> Result<(), ConsoleError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .ok_or(ConsoleError::NoToken)?;
        if self.current().is_none() {
            self.refetch(false).await;
        }
        let verifier = self.current().ok_or(ConsoleError::KeysNotLoaded)?;
        let claims = match verifier.verify(token) {
            Err(control_plane::ControlPlaneError::UnknownKey(_)) => {
                self.refetch(false).await;
                let verifier = self.current().unwrap_or(verifier);
                verifier.verify(token)
            }
            other => other,
        }
        .map_err(|err| ConsoleError::BadToken(err.to_string()))?;
        if claims.role != Role::Operator {
            return Err(ConsoleError::NotOperator);
        }
        Ok(())
    }

    /// The cluster as `cluster.json` says, for validating drills.
    fn cluster(&self) -> Result<(ClusterFile, Cluster), ConsoleError> {
        read_cluster(&self.data_dir.join("cluster.json"))
            .map_err(|err| ConsoleError::ClusterUnreadable(format!("{err:#}")))
    }

    /// The catalogue, each drill with what keeps it from running here.
    fn catalogue(&self) -> Result<Vec<(PathBuf, DrillView)>, ConsoleError> {
        let (file, cluster) = self.cluster()?;
        let entries =
            catalogue::list(&self.drills_dir, &cluster).map_err(|err| ConsoleError::Catalogue {
                code: err.as_str(),
                message: err.to_string(),
            })?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let name = entry
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let view = match &entry.drill {
                    Ok(drill) => {
                        let problems = unsupported(drill, &file);
                        DrillView {
                            name,
                            title: drill.title().to_owned(),
                            hypothesis: drill.hypothesis().to_owned(),
                            duration_ms: drill.duration_ms(),
                            settle_ms: drill.settle_ms(),
                            faults: drill
                                .faults()
                                .iter()
                                .map(|f| FaultView {
                                    id: f.id,
                                    kind: f.kind().to_owned(),
                                    label: f.label(),
                                    start_ms: f.start_ms,
                                    duration_ms: f.duration_ms,
                                })
                                .collect(),
                            runnable: problems.is_empty(),
                            problems,
                        }
                    }
                    Err(errors) => DrillView {
                        name,
                        title: String::new(),
                        hypothesis: String::new(),
                        duration_ms: 0,
                        settle_ms: 0,
                        faults: Vec::new(),
                        runnable: false,
                        problems: errors.0.iter().map(ToString::to_string).collect(),
                    },
                };
                (entry.path, view)
            })
            .collect())
    }

    /// The live status, `died` when it claims a runner that no longer
    /// holds the drill lock.
    fn live(&self) -> Result<Option<LiveStatus>, ConsoleError> {
        let chaos_dir = self.chaos_dir();
        let status =
            LiveStatus::read(&LiveStatus::path(&chaos_dir)).map_err(|err| ConsoleError::Live {
                code: err.as_str(),
                message: err.to_string(),
            })?;
        Ok(status.map(|mut status| {
            if status.state.is_active() && !self.drill_running() {
                status.state = LiveState::Died;
            }
            status
        }))
    }

    /// Whether a runner holds the drill lock now.
    fn drill_running(&self) -> bool {
        // Taking the lock for a moment is the only way to ask; a runner
        // starting in that moment is refused as if another drill ran.
        matches!(drill_lock(&self.chaos_dir()), Ok(None))
    }

    fn reports_dir(&self) -> PathBuf {
        self.chaos_dir().join("reports")
    }
}

/// A drill of the catalogue as the console lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillView {
    /// The file's stem.
    pub name: String,
    /// Its title (empty when it does not validate).
    pub title: String,
    /// Its hypothesis.
    pub hypothesis: String,
    /// How long its workload runs.
    pub duration_ms: u64,
    /// How long it settles before the check.
    pub settle_ms: u64,
    /// Its faults and their windows.
    pub faults: Vec<FaultView>,
    /// Whether it can be started here.
    pub runnable: bool,
    /// Why not: refusals with their lines, or what this runner cannot do.
    pub problems: Vec<String>,
}

/// One fault of a listed drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultView {
    /// Its id in the drill.
    pub id: u32,
    /// Its kind, as in drill files.
    pub kind: String,
    /// In words.
    pub label: String,
    /// When it starts.
    pub start_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
}

/// One past run as the console lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// The report's file stem.
    pub id: String,
    /// The drill.
    pub drill: String,
    /// Its title.
    pub title: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Whether the hypothesis held.
    pub hypothesis_held: bool,
    /// Whether it was aborted.
    pub aborted: bool,
    /// Acknowledged things lost.
    pub lost: u64,
    /// Acknowledged things doubled.
    pub duplicated: u64,
    /// Recovery after the last heal, when known.
    pub recovery_ms: Option<u64>,
}

/// Body of `POST /v1/chaos/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The drill's name in the catalogue.
    pub drill: String,
}

/// The console's routes, behind `cors` (browsers call them from the app's
/// origin).
pub(crate) fn router(console: Arc<Console>, cors: web::Cors) -> Router {
    Router::new()
        .route("/v1/chaos/drills", get(drills))
        .route("/v1/chaos/runs", get(runs).post(start))
        .route("/v1/chaos/runs/{id}", get(run_json))
        .route("/v1/chaos/runs/{id}/html", get(run_html))
        .route("/v1/chaos/live", get(live))
        .route("/v1/chaos/live/abort", post(abort))
        .layer(axum::extract::DefaultBodyLimit::max(CONSOLE_BODY_BYTES_MAX))
        .layer(cors.layer())
        .with_state(console)
}

async fn drills(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    console.operator(&headers).await?;
    let list = console.catalogue()?;
    Ok(Json(serde_json::json!({
        "drills": list.into_iter().map(|(_, view)| view).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn runs(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    console.operator(&headers).await?;
    let dir = console.reports_dir();
    let runs = tokio::task::spawn_blocking(move || list_runs(&dir))
        .await
        .unwrap_or_default();
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

/// The newest reports in `dir`, newest first; unreadable ones are logged
/// and left out.
fn list_runs(dir: &Path) -> Vec<RunSummary> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = read
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, e.path()))
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    files
        .into_iter()
        .take(CONSOLE_RUNS_MAX)
        .filter_map(|(_, path)| match read_report(&path) {
            Ok(report) => Some(RunSummary {
                id: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                drill: report.drill.clone(),
                title: report.title.clone(),
                started_at: report.started_at.clone(),
                hypothesis_held: report.summary.hypothesis_held,
                aborted: report.aborted.is_some(),
                lost: report.summary.lost,
                duplicated: report.summary.duplicated,
                recovery_ms: report.summary.recovery_ms,
            }),
            Err(why) => {
                tracing::warn!(path = %path.display(), why, "a report the console cannot read");
                None
            }
        })
        .collect()
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > REPORT_BYTES_MAX {
        return Err(format!("{len} bytes, more than {REPORT_BYTES_MAX}"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

fn read_report(path: &Path) -> Result<Report, String> {
    serde_json::from_slice(&read_bounded(path)?).map_err(|e| e.to_string())
}

/// A report's file, by id; only ids a runner could have written are
/// looked up, so an id never leaves the reports folder.
fn report_file(console: &Console, id: &str, extension: &str) -> Result<PathBuf, ConsoleError> {
    let valid = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let path = console.reports_dir().join(format!("{id}.{extension}"));
    if !valid || !path.is_file() {
        return Err(ConsoleError::UnknownRun(id.to_owned()));
    }
    Ok(path)
}

async fn run_json(
    State(console): State<Arc<Console>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    serve_report(&console, &id, &headers, "json", "application/json").await
}

async fn run_html(
    State(console): State<Arc<Console>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    serve_report(&console, &id, &headers, "html", "text/html; charset=utf-8").await
}

async fn serve_report(
    console: &Console,
    id: &str,
    headers: &HeaderMap,
    extension: &str,
    content_type: &'static str,
) -> Result<Response, ConsoleError> {
    console.operator(headers).await?;
    let path = report_file(console, id, extension)?;
    let bytes = read_bounded(&path)
        .map_err(|why| ConsoleError::ReportUnreadable(format!("{}: {why}", path.display())))?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn live(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    console.operator(&headers).await?;
    Ok(match console.live()? {
        Some(status) => Json(status).into_response(),
        None => Json(serde_json::json!({"state": "idle"})).into_response(),
    })
}

async fn start(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<Response, ConsoleError> {
    console.operator(&headers).await?;
    let Json(body) = body.map_err(|rejection| ConsoleError::BadRequest(rejection.body_text()))?;
    let _starting = console.starting.lock().await;
    let (path, view) = console
        .catalogue()?
        .into_iter()
        .find(|(_, v)| v.name == body.drill)
        .ok_or_else(|| ConsoleError::UnknownDrill(body.drill.clone()))?;
    if !view.runnable {
        return Err(ConsoleError::Refused(view.problems));
    }
    if console.drill_running() {
        return Err(ConsoleError::DrillRunning);
    }
    let mut command = tokio::process::Command::new(&console.exe);
    command
        .args(&console.global_args)
        .arg("chaos")
        .arg("run")
        .arg(&path)
        .arg("--cluster")
        .arg(console.data_dir.join("cluster.json"))
        .stdin(std::process::Stdio::null())
        // Its live timeline goes where the supervisor's own output goes.
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .process_group(0);
    let mut child = command.spawn().map_err(|err| {
        ConsoleError::RunnerFailed(format!("cannot start `lyceum chaos run`: {err}"))
    })?;
    let pid = child.id().unwrap_or(0);
    eprintln!(
        "lyceum dev: the console started drill {} (pid {pid})",
        view.name
    );
    let deadline = Instant::now() + RUNNER_START_WAIT;
    loop {
        if let Ok(Some(status)) = console.live() {
            if status.pid == pid {
                // Reaped in the background; the runner ends on its own.
                tokio::spawn(async move { child.wait().await });
                return Ok((StatusCode::ACCEPTED, Json(status)).into_response());
            }
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(ConsoleError::RunnerFailed(format!(
                "`lyceum chaos run` exited ({exit}) before it started the drill; its output is in lyceum dev's"
            )));
        }
        if Instant::now() >= deadline {
            tokio::spawn(async move { child.wait().await });
            return Err(ConsoleError::RunnerFailed(format!(
                "`lyceum chaos run` (pid {pid}) wrote no status within {} s",
                RUNNER_START_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn abort(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    console.operator(&headers).await?;
    let status = console
        .live()?
        .filter(|status| status.state.is_active())
        .ok_or(ConsoleError::NoDrillRunning)?;
    // The runner treats SIGINT as the operator's Ctrl-C: it heals every
    // fault, settles, checks and writes its report.
    let pid = i32::try_from(status.pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or(ConsoleError::NoDrillRunning)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .map_err(|err| {
        ConsoleError::SignalFailed(format!("cannot interrupt the runner (pid {pid}): {err}"))
    })?;
    eprintln!("lyceum dev: the console aborted drill {}", status.drill);
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}
