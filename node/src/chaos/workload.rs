//! The load a drill runs, and the record of what the platform told it. The
//! workload signs up its own learners (so what the checker later reads at
//! the control plane is the drill's alone), then sends code runs and graded
//! submissions open loop at the drill's rates, round-robin over the
//! learners and over the edges of the drill's regions. A learner whose edge
//! does not answer carries on through the next region's edge, as the web
//! app would. Every run's answer feeds the run-latency probe (graded
//! submissions wait for the control plane by design, so they do not); every run id the
//! platform acknowledged goes into `Acknowledged` for the checker. Ledger
//! transfers (`ledger`) share the same in-flight bound and counters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use chaos::checker::{AckKind, AckedRun, Balance};
use chaos::drill::Workload;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::record::{open_loop, Learner, Observed, REQUEST_TIMEOUT};
use crate::api_client::{get_json, post_json};

/// Learners signed up at once while preparing.
const SIGN_UPS_AT_ONCE: usize = 4;

/// How often the learners' access tokens are renewed: well inside their
/// 15-minute life, so a drill of an hour keeps its learners signed in.
const RENEW_EVERY: Duration = Duration::from_secs(600);

/// Wait before renewing again after a failure (the control plane may be
/// the fault).
const RENEW_RETRY: Duration = Duration::from_secs(15);

/// What the workload needs from the cluster.
pub(super) struct Setup {
    /// Its learners.
    pub(super) learners: Vec<Learner>,
    /// The assignment unit graded submissions go to, when there are any.
    pub(super) assignment: Option<String>,
    /// Base URLs of the edges of the drill's regions, in its order.
    pub(super) edges: Vec<String>,
    /// The drill's ledger accounts and their balances before, when it
    /// sends transfers.
    pub(super) ledger: Option<(Arc<super::ledger::Accounts>, BTreeMap<String, Balance>)>,
    /// Where ledger transfers go.
    pub(super) ledger_target: super::ledger::Target,
    /// The live classes and who sits where, when the drill has any.
    pub(super) classes: Option<Arc<super::classes::Classes>>,
}

/// Learners to sign up: enough that no learner needs more than one run a
/// second (the edges' per-user budget is two), at most the drill's count.
pub(super) fn learners_needed(workload: &Workload) -> usize {
    let rate = workload.runs_per_second + workload.submissions_per_second;
    let wanted = rate.ceil().max(0.0) as usize + 1;
    wanted.clamp(1, usize::try_from(workload.learners).unwrap_or(usize::MAX))
}

/// Signs up the learners, enrols them in the demo course and finds its
/// assignment when the drill submits graded work.
pub(super) async fn prepare(
    http: &reqwest::Client,
    cp: &str,
    tokens: &control_plane::seed::DevTokens,
    workload: &Workload,
    edges: Vec<String>,
) -> anyhow::Result<Setup> {
    let instructor = &tokens.instructor;
    let ledger_target = super::ledger::Target {
        http: http.clone(),
        cp: cp.to_owned(),
        operator: tokens.operator.clone(),
    };
    let ledger = if workload.ledger_transfers_per_second > 0.0 {
        let accounts = super::ledger::prepare(http, cp, &tokens.operator).await?;
        let before = super::ledger::balances(http, cp, &tokens.operator, &accounts).await?;
        Some((Arc::new(accounts), before))
    } else {
        None
    };
    // Every learner sits in a class when there are classes; otherwise only
    // as many as the rates need.
    let count = if workload.classes > 0 {
        usize::try_from(workload.learners).unwrap_or(usize::MAX)
    } else {
        learners_needed(workload)
    };
    let assignment = if workload.submissions_per_second > 0.0 {
        Some(find_assignment(http, cp, instructor).await?)
    } else {
        None
    };
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let tag = &tag[tag.len() - 8..];
    let mut learners = Vec::with_capacity(count);
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(SIGN_UPS_AT_ONCE) {
        let batch = chunk.iter().map(|i| {
            sign_up(
                http,
                cp,
                format!("drill-{tag}-{i}@chaos.test"),
                format!("Drill learner {i}"),
            )
        });
        for learner in futures_util::future::join_all(batch).await {
            learners.push(learner?);
        }
        if count > SIGN_UPS_AT_ONCE * 4 && learners.len() % (SIGN_UPS_AT_ONCE * 4) == 0 {
            eprintln!(
                "lyceum chaos: {}/{count} learners signed up",
                learners.len()
            );
        }
    }
    if let Some((course, _)) = &assignment {
        for learner in &learners {
            post_json(
                http,
                &format!("{cp}/api/v1/courses/{course}/enrollments"),
                Some(&learner.token()),
                &json!({}),
            )
            .await?;
        }
    }
    let classes = if workload.classes > 0 {
        Some(Arc::new(
            super::classes::prepare(
                http,
                cp,
                instructor,
                workload.classes,
                &workload.regions,
                &edges,
                &learners,
            )
            .await?,
        ))
    } else {
        None
    };
    eprintln!(
        "lyceum chaos: {} learner(s) signed up{}",
        learners.len(),
        if assignment.is_some() {
            " and enrolled in the demo course"
        } else {
            ""
        }
    );
    Ok(Setup {
        learners,
        assignment: assignment.map(|(_, unit)| unit),
        edges,
        ledger,
        ledger_target,
        classes,
    })
}

async fn sign_up(
    http: &reqwest::Client,
    cp: &str,
    email: String,
    name: String,
) -> anyhow::Result<Learner> {
    let body = post_json(
        http,
        &format!("{cp}/api/v1/auth/sign-up"),
        None,
        &json!({"email": email, "password": "chaos drill learner", "display_name": name, "tenant": "dev"}),
    )
    .await?;
    let token = body["access_token"]
        .as_str()
        .context("sign-up answered without an access token")?
        .to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .context("sign-up answered without a refresh token")?
        .to_owned();
    let user_id = subject(&token).context("the access token has no subject")?;
    Ok(Learner::new(user_id, token, refresh))
}

/// The `sub` claim of a JWT, read without verifying it: the runner only
/// needs to know whose submissions to look up later.
fn subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// The dev seed's demo course and its assignment unit.
async fn find_assignment(
    http: &reqwest::Client,
    cp: &str,
    instructor: &str,
) -> anyhow::Result<(String, String)> {
    let items = |v: Value| -> Vec<Value> {
        v["items"]
            .as_array()
            .or_else(|| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let courses = get_json(http, &format!("{cp}/api/v1/courses"), Some(instructor)).await?;
    let course = items(courses)
        .into_iter()
        .find(|c| c["title"] == control_plane::demo::DEMO_COURSE_TITLE)
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .with_context(|| {
            format!(
                "graded submissions go to the demo course {:?}, which the dev tenant lacks",
                control_plane::demo::DEMO_COURSE_TITLE
            )
        })?;
    let modules = get_json(
        http,
        &format!("{cp}/api/v1/courses/{course}/modules"),
        Some(instructor),
    )
    .await?;
    for module in items(modules) {
        let Some(module) = module["id"].as_str() else {
            continue;
        };
        let units = get_json(
            http,
            &format!("{cp}/api/v1/modules/{module}/units"),
            Some(instructor),
        )
        .await?;
        if let Some(unit) = items(units)
            .into_iter()
            .find(|u| u["kind"] == "assignment")
            .and_then(|u| u["id"].as_str().map(str::to_owned))
        {
            return Ok((course, unit));
        }
    }
    bail!("the demo course has no assignment unit for graded submissions")
}

/// A running workload: stop it, then wait for what is in flight.
pub(super) struct Running {
    stop: watch::Sender<bool>,
    generators: Vec<tokio::task::JoinHandle<()>>,
    observed: Arc<Observed>,
    classes: Option<super::classes::Running>,
}

impl Running {
    /// Starts sending at the drill's rates; times count from `start`.
    pub(super) fn start(
        http: reqwest::Client,
        setup: Arc<Setup>,
        workload: &Workload,
        start: Instant,
        observed: Arc<Observed>,
        in_class: Arc<super::classes::Observed>,
    ) -> Self {
        let classes = setup
            .classes
            .as_ref()
            .map(|classes| super::classes::Running::start(classes, in_class, start));
        let (stop, stopped) = watch::channel(false);
        let mut generators = Vec::new();
        for (kind, rate) in [
            (AckKind::Run, workload.runs_per_second),
            (AckKind::Submission, workload.submissions_per_second),
        ] {
            if rate <= 0.0 {
                continue;
            }
            generators.push(tokio::spawn(generate(
                Generator {
                    http: http.clone(),
                    setup: setup.clone(),
                    observed: observed.clone(),
                    kind,
                    start,
                },
                rate,
                stopped.clone(),
            )));
        }
        generators.push(tokio::spawn(renew(
            http.clone(),
            setup.clone(),
            stopped.clone(),
        )));
        if let Some((accounts, _)) = &setup.ledger {
            if workload.ledger_transfers_per_second > 0.0 {
                generators.push(tokio::spawn(super::ledger::generate(
                    setup.ledger_target.clone(),
                    accounts.clone(),
                    workload.ledger_transfers_per_second,
                    observed.clone(),
                    stopped.clone(),
                )));
            }
        }
        Self {
            stop,
            generators,
            observed,
            classes,
        }
    }

    /// Sends nothing more (class clients stay, to receive what is late).
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(classes) = &self.classes {
            classes.stop();
        }
    }

    /// Waits (at most [`REQUEST_TIMEOUT`] and a little) for the requests in
    /// flight to be answered or to fail; class clients leave. Their logs.
    pub(super) async fn finish(self) -> Vec<chaos::checker::ClientLog> {
        self.stop();
        let logs = match self.classes {
            Some(classes) => classes.finish().await,
            None => Vec::new(),
        };
        for generator in self.generators {
            let _ = generator.await;
        }
        let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(5);
        while self.observed.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        logs
    }
}

/// Renews every learner's tokens every [`RENEW_EVERY`] until told to stop.
async fn renew(http: reqwest::Client, setup: Arc<Setup>, mut stopped: watch::Receiver<bool>) {
    let cp = setup.ledger_target.cp.clone();
    let mut wait = RENEW_EVERY;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        wait = RENEW_EVERY;
        for learner in &setup.learners {
            let body = json!({"refresh_token": learner.refresh_token()});
            match post_json(&http, &format!("{cp}/api/v1/auth/refresh"), None, &body).await {
                Ok(pair) => {
                    if let (Some(access), Some(refresh)) = (
                        pair["access_token"].as_str(),
                        pair["refresh_token"].as_str(),
                    ) {
                        learner.renewed(access.to_owned(), refresh.to_owned());
                    }
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "cannot renew a drill learner's token; trying again"
                    );
                    wait = RENEW_RETRY;
                }
            }
        }
    }
}

#[derive(Clone)]
struct Generator {
    http: reqwest::Client,
    setup: Arc<Setup>,
    observed: Arc<Observed>,
    kind: AckKind,
    start: Instant,
}

async fn generate(generator: Generator, rate: f64, stopped: watch::Receiver<bool>) {
    let observed = generator.observed.clone();
    open_loop(rate, observed, stopped, |n| {
        let task = generator.clone();
        async move { task.one(n).await }
    })
    .await;
}

impl Generator {
    /// Sends the `n`th request and records what came of it.
    async fn one(&self, n: usize) {
        let setup = &self.setup;
        let learner = &setup.learners[n % setup.learners.len()];
        let sent = Instant::now();
        let (path, status_ok, body) = match self.kind {
            AckKind::Run => (
                "/api/v1/runs".to_owned(),
                200,
                json!({"language": "python", "files": [{"name": "main.py", "content": format!("print({n})")}]}),
            ),
            AckKind::Submission => (
                format!(
                    "/api/v1/units/{}/submissions",
                    setup.assignment.as_deref().unwrap_or_default()
                ),
                201,
                json!({"files": [{"name": "main.py", "content": format!("print({n})")}]}),
            ),
        };
        // The learner's own edge first, then the next region's if it is
        // unreachable.
        let mut outcome = Err("no edge".to_owned());
        for attempt in 0..setup.edges.len().min(2) {
            let edge = &setup.edges[(n + attempt) % setup.edges.len()];
            let url = format!("{}{path}", edge.trim_end_matches('/'));
            let answer = self
                .http
                .post(&url)
                .bearer_auth(learner.token())
                .json(&body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    outcome = if status == status_ok {
                        body["id"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{url}: {status} without a run id"))
                    } else {
                        let code = body["error"]["code"].as_str().unwrap_or("no code");
                        Err(format!("{url}: {status} {code}"))
                    };
                    break;
                }
                Err(err) if err.is_connect() => {
                    outcome = Err(format!("{url}: cannot connect"));
                }
                Err(err) => {
                    outcome = Err(format!("{url}: {err}"));
                    break;
                }
            }
        }
        let took = sent.elapsed();
        let observed = &self.observed;
        // The probe is code-run latency: a graded submission waits for the
        // control plane's record by design (`edge.submission_confirm_wait_ms`).
        if self.kind == AckKind::Run {
            if let Ok(mut window) = observed.latency.lock() {
                window.record(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
            }
        }
        match outcome {
            Ok(run_id) => {
                observed.ok.fetch_add(1, Ordering::Relaxed);
                let at_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
                if let Ok(mut acked) = observed.acked.lock() {
                    acked.push(AckedRun {
                        run_id,
                        kind: self.kind,
                        at_ms,
                    });
                }
            }
            Err(why) => {
                observed.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = observed.last_failure.lock() {
                    *last = Some(why);
                }
            }
        }
    }
}
