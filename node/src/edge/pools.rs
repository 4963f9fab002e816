//! The edge's sandbox-pool actors and the plan they follow: [`PoolControl`]
//! starts one actor per language once the sandbox is up, keeps the node's
//! budget, fetches the region's plan from the control plane every
//! `edge.pool_plan_refresh_ms` (`GET /api/v1/sandbox/plan`, service key,
//! through the control-plane link), keeps it in sled and hands it to the
//! actors. The decisions are `actors::pool`'s; this file only connects the
//! actors to the sandbox, the store and the control plane. A leaf of the
//! edge: the state names it, the routes and the wiring use it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actors::pool::budget::BudgetView;
use actors::pool::{
    start_pool_actor, Budget, PoolArgs, PoolHandle, PoolMetrics, PoolPlan, PoolSettings,
    PoolStatus, WarmPool,
};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;

use crate::control_plane_link::ControlPlaneLink;
use crate::shutdown::Shutdown;

/// How long a route waits for a pool actor's answer.
const ACTOR_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One language's pool of the sandbox, as its actor drives it.
struct SandboxPool {
    sandbox: sandbox::Sandbox,
    language: &'static str,
}

impl WarmPool for SandboxPool {
    async fn set_target(&self, target: u32) -> u32 {
        self.sandbox
            .pools()
            .set_target(self.language, target)
            .await
            .unwrap_or(0)
    }

    fn runs(&self) -> u64 {
        self.sandbox
            .pools()
            .stats(self.language)
            .map_or(0, |s| s.hot + s.cold)
    }

    fn warm(&self) -> u32 {
        self.sandbox
            .pools()
            .stats(self.language)
            .map_or(0, |s| u32::try_from(s.warm).unwrap_or(u32::MAX))
    }
}

/// Where the plan stands, for the pool route.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PlanView {
    /// When the control plane made the plan in use.
    pub(crate) generated_at: Option<String>,
    /// Its first minute.
    pub(crate) from: Option<String>,
    /// Minutes it covers.
    pub(crate) minutes: Option<u32>,
    /// When this edge last fetched a plan.
    pub(crate) fetched_at: Option<String>,
    /// Why the last fetch failed, if it did.
    pub(crate) last_error: Option<String>,
}

/// Why a pool request could not be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// The sandbox (and so the actors) has not started yet.
    #[error("the sandbox is still starting")]
    Starting,
    /// No pool for this language.
    #[error("no pool for {0}")]
    UnknownLanguage(String),
    /// The actor did not answer.
    #[error("the pool actor of {0} did not answer: {1}")]
    Actor(String, String),
}

/// What the edge's pool routes and its plan follower share.
pub(crate) struct PoolControl {
    settings: PoolSettings,
    budget: Arc<Budget>,
    store: sled::Db,
    actors: tokio::sync::OnceCell<BTreeMap<String, PoolHandle>>,
    plan: Mutex<(Option<Arc<PoolPlan>>, PlanView)>,
    fetches: IntCounterVec,
}

impl PoolControl {
    /// The control with the plan kept in `store`, if any.
    ///
    /// # Errors
    /// When the metrics cannot be registered.
    pub(crate) fn new(
        settings: PoolSettings,
        budget: Budget,
        store: sled::Db,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let fetches = IntCounterVec::new(
            Opts::new(
                "edge_pool_plan_fetches_total",
                "Fetches of the region's pool plan from the control plane, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(fetches.clone()))?;
        let kept = match crate::store::pool_plan::load(&store) {
            Ok(plan) => plan.map(Arc::new),
            Err(err) => {
                tracing::warn!(error = %err, "the kept pool plan cannot be read; waiting for a new one");
                None
            }
        };
        let view = kept.as_deref().map(view_of).unwrap_or_default();
        Ok(Self {
            settings,
            budget: Arc::new(budget),
            store,
            actors: tokio::sync::OnceCell::new(),
            plan: Mutex::new((kept, view)),
            fetches,
        })
    }

    /// Starts an actor for every language of `sandbox`, with the plan in
    /// hand.
    ///
    /// # Errors
    /// When an actor or the metrics cannot start.
    pub(crate) async fn start_actors(
        &self,
        sandbox: &sandbox::Sandbox,
        region: &gossip::Region,
        registry: &Registry,
    ) -> anyhow::Result<()> {
        let metrics = PoolMetrics::register(registry)?;
        let plan = self.current_plan();
        let mut actors = BTreeMap::new();
        for language in sandbox.pools().languages() {
            let args = PoolArgs {
                pool: SandboxPool {
                    sandbox: sandbox.clone(),
                    language,
                },
                language: language.to_owned(),
                region: region.clone(),
                settings: self.settings,
                budget: self.budget.clone(),
                container_memory_mb: sandbox.pools().container_memory_mb(language)?,
                plan: plan.clone(),
                clock: Arc::new(actors::live::now_ms),
                metrics: metrics.clone(),
            };
            actors.insert(language.to_owned(), start_pool_actor(args).await?);
        }
        if self.actors.set(actors).is_err() {
            anyhow::bail!("the pool actors started twice");
        }
        // A plan fetched while they started.
        if let Some(now) = self.current_plan() {
            if !plan.as_ref().is_some_and(|had| Arc::ptr_eq(had, &now)) {
                self.broadcast(&now);
            }
        }
        Ok(())
    }

    /// Stops every actor.
    pub(crate) fn stop(&self) {
        if let Some(actors) = self.actors.get() {
            for actor in actors.values() {
                actor.stop();
            }
        }
    }

    fn current_plan(&self) -> Option<Arc<PoolPlan>> {
        self.plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    fn broadcast(&self, plan: &Arc<PoolPlan>) {
        if let Some(actors) = self.actors.get() {
            for actor in actors.values() {
                actor.plan(plan.clone());
            }
        }
    }

    /// Takes a fetched plan: keeps it in sled, then hands it to the actors.
    async fn take_plan(&self, plan: PoolPlan) {
        if let Err(err) = crate::store::pool_plan::save(&self.store, &plan).await {
            tracing::warn!(error = %err, "cannot keep the pool plan; following it in memory");
        }
        let plan = Arc::new(plan);
        {
            let mut guard = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
            let fetched_at = Some(crate::store::now_rfc3339());
            guard.1 = PlanView {
                fetched_at,
                ..view_of(&plan)
            };
            guard.0 = Some(plan.clone());
        }
        self.broadcast(&plan);
    }

    fn fetch_failed(&self, why: String) {
        self.plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .last_error = Some(why);
    }

    /// The plan's standing.
    pub(crate) fn plan_view(&self) -> PlanView {
        self.plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// The node's budget now.
    pub(crate) fn budget_view(&self) -> BudgetView {
        self.budget.view()
    }

    /// The node's policy.
    pub(crate) fn policy(&self) -> actors::pool::Policy {
        self.settings.policy
    }

    fn actor(&self, language: &str) -> Result<&PoolHandle, PoolError> {
        self.actors
            .get()
            .ok_or(PoolError::Starting)?
            .get(language)
            .ok_or_else(|| PoolError::UnknownLanguage(language.to_owned()))
    }

    /// Every language's actor status, by language.
    ///
    /// # Errors
    /// [`PoolError`] before the actors start or when one does not answer.
    pub(crate) async fn statuses(&self) -> Result<Vec<PoolStatus>, PoolError> {
        let actors = self.actors.get().ok_or(PoolError::Starting)?;
        let mut out = Vec::new();
        for (language, actor) in actors {
            out.push(
                actor
                    .status(ACTOR_CALL_TIMEOUT)
                    .await
                    .map_err(|err| PoolError::Actor(language.clone(), err.to_string()))?,
            );
        }
        Ok(out)
    }

    /// An operator's target for `language`, for good or `for_ms`: the
    /// status after it and, if temporary, the target it goes back to.
    ///
    /// # Errors
    /// [`PoolError`].
    pub(crate) async fn set_override(
        &self,
        language: &str,
        target: u32,
        for_ms: Option<u64>,
    ) -> Result<(PoolStatus, Option<u32>), PoolError> {
        let actor = self.actor(language)?;
        actor
            .set_override(target, for_ms, ACTOR_CALL_TIMEOUT)
            .await
            .map_err(|err| PoolError::Actor(language.to_owned(), err.to_string()))
    }

    /// Clears an operator's target for `language`; the status after it.
    ///
    /// # Errors
    /// [`PoolError`].
    pub(crate) async fn clear_override(&self, language: &str) -> Result<PoolStatus, PoolError> {
        let actor = self.actor(language)?;
        actor
            .clear_override(ACTOR_CALL_TIMEOUT)
            .await
            .map_err(|err| PoolError::Actor(language.to_owned(), err.to_string()))
    }
}

fn view_of(plan: &PoolPlan) -> PlanView {
    PlanView {
        generated_at: Some(plan.generated_at.clone()),
        from: Some(plan.from.clone()),
        minutes: Some(plan.minutes),
        fetched_at: None,
        last_error: None,
    }
}

/// Where and how the plan is fetched.
pub(crate) struct PlanSource {
    /// Client with `edge.control_plane_timeout_ms`.
    pub(crate) client: reqwest::Client,
    /// The control plane's base URL.
    pub(crate) control_plane_url: String,
    /// `edge.control_plane_service_key`; empty: no fetching.
    pub(crate) service_key: String,
    /// This edge's region.
    pub(crate) region: String,
    /// `edge.pool_plan_refresh_ms`.
    pub(crate) every: Duration,
    /// The link fault injection may cut.
    pub(crate) link: ControlPlaneLink,
}

impl PlanSource {
    async fn fetch(&self) -> Result<PoolPlan, String> {
        self.link.check().await?;
        let url = format!(
            "{}/api/v1/sandbox/plan?region={}",
            self.control_plane_url.trim_end_matches('/'),
            self.region
        );
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.service_key)
            .send()
            .await
            .map_err(|err| format!("GET {url}: {err}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|err| format!("GET {url}: {err}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {body}"));
        }
        let plan: PoolPlan =
            serde_json::from_str(&body).map_err(|err| format!("GET {url}: not a plan: {err}"))?;
        plan.start_ms().map_err(|err| format!("GET {url}: {err}"))?;
        if plan.region != self.region {
            return Err(format!(
                "GET {url}: a plan for {}, not {}",
                plan.region, self.region
            ));
        }
        Ok(plan)
    }
}

/// Fetches the region's plan now and every `source.every`, until shutdown.
/// A failed fetch keeps the plan in hand (and the one in sled).
pub(crate) async fn follow_plan(control: Arc<PoolControl>, source: PlanSource, shutdown: Shutdown) {
    if source.service_key.is_empty() {
        tracing::warn!(
            "no edge.control_plane_service_key: the pool plan is not fetched; pools follow the observed rate"
        );
        control.fetch_failed("no edge.control_plane_service_key".into());
        shutdown.wait().await;
        return;
    }
    loop {
        match source.fetch().await {
            Ok(plan) => {
                control.fetches.with_label_values(&["ok"]).inc();
                control.take_plan(plan).await;
            }
            Err(err) => {
                control.fetches.with_label_values(&["failed"]).inc();
                tracing::debug!(error = %err, "pool plan fetch failed; following the plan in hand");
                control.fetch_failed(err);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(source.every) => {}
            () = shutdown.clone().wait() => return,
        }
    }
}
