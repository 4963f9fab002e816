//! The sandbox-pool actor of one language on one node. It joins
//! `pool:<region>:<language>`, decides its pool's target every tick
//! ([`super::policy`]) within the node's budget ([`super::budget`]), sets it
//! through [`WarmPool`] and answers its status. When the target falls
//! (other than by an operator), the warm surplus is kept for
//! `surplus_grace` so that runs use it up; only what is still idle then is
//! destroyed, and counted as waste. Its messages stay on this
//! node (they are not serialisable): other nodes see its group, and the
//! edge's routes and plan follower talk to it here.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::budget::Budget;
use super::plan::PoolPlan;
use super::policy::{decide, Inputs, Policy, PoolSettings, Rate, Source};
use crate::groups::{join_group, pool_group};
use crate::system::ActorsError;

/// One language's warm pool, as the actor drives it.
pub trait WarmPool: Send + Sync + 'static {
    /// Makes the pool warm to `target`; answers the target it took.
    fn set_target(&self, target: u32) -> impl Future<Output = u32> + Send;
    /// Runs that took a container from the pool (hot or cold) since start.
    fn runs(&self) -> u64;
    /// Warm containers ready now.
    fn warm(&self) -> u32;
}

/// Wall-clock milliseconds: the plan is read by the minute of the day,
/// while ticks run on tokio's clock (which tests pause).
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The pool actors' gauges, per language (the edge's region is the
/// process's).
#[derive(Clone)]
pub struct PoolMetrics {
    planned: IntGaugeVec,
    planned_runs: GaugeVec,
    observed: GaugeVec,
    wanted: IntGaugeVec,
}

impl PoolMetrics {
    /// Registers the gauges (named in full, `lyceum_sandbox_pool_*`).
    ///
    /// # Errors
    /// When a name is taken (a bug).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let planned = IntGaugeVec::new(
            Opts::new(
                "lyceum_sandbox_pool_planned_containers",
                "The timetable plan's warm target for this minute, per language",
            ),
            &["language"],
        )?;
        let planned_runs = GaugeVec::new(
            Opts::new(
                "lyceum_sandbox_pool_planned_runs_per_minute",
                "Runs the timetable plans for this minute, per language (the forecast)",
            ),
            &["language"],
        )?;
        let observed = GaugeVec::new(
            Opts::new(
                "lyceum_sandbox_pool_observed_runs_per_minute",
                "Runs per minute this node observes (smoothed), per language",
            ),
            &["language"],
        )?;
        let wanted = IntGaugeVec::new(
            Opts::new(
                "lyceum_sandbox_pool_wanted_containers",
                "The warm target the pool actor wants before the node's budget, by language and who set it",
            ),
            &["language", "source"],
        )?;
        registry.register(Box::new(planned.clone()))?;
        registry.register(Box::new(planned_runs.clone()))?;
        registry.register(Box::new(observed.clone()))?;
        registry.register(Box::new(wanted.clone()))?;
        Ok(Self {
            planned,
            planned_runs,
            observed,
            wanted,
        })
    }
}

/// What a pool actor starts with.
pub struct PoolArgs<P> {
    /// The pool it drives.
    pub pool: P,
    /// The language.
    pub language: String,
    /// The node's region (for the group's name).
    pub region: gossip::Region,
    /// The settings.
    pub settings: PoolSettings,
    /// The node's budget, shared with the other languages' actors.
    pub budget: Arc<Budget>,
    /// Memory one warm container of this language counts against the
    /// budget, MB.
    pub container_memory_mb: u32,
    /// The plan the node kept, if any.
    pub plan: Option<Arc<PoolPlan>>,
    /// The wall clock.
    pub clock: WallClock,
    /// The gauges.
    pub metrics: PoolMetrics,
}

/// An operator's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Override {
    target: u32,
    /// Wall-clock end, if temporary.
    until_ms: Option<u64>,
    /// The override it replaced, which comes back when a temporary one
    /// ends.
    previous: Option<(u32, Option<u64>)>,
}

/// What a pool actor understands.
pub enum PoolMessage {
    /// Decide again (sent by the actor's own interval).
    Tick,
    /// A new plan for the node.
    Plan(Arc<PoolPlan>),
    /// An operator's target, for good or for `for_ms`; answers the status
    /// after it, and the target a temporary one goes back to.
    Override {
        /// The target.
        target: u32,
        /// How long it lasts; `None` until cleared.
        for_ms: Option<u64>,
        /// The status after it and the target it restores to, if temporary.
        reply: RpcReplyPort<(PoolStatus, Option<u32>)>,
    },
    /// Clears an operator's target; answers the status after it.
    ClearOverride(RpcReplyPort<PoolStatus>),
    /// Answers the status.
    Status(RpcReplyPort<PoolStatus>),
}

impl ractor::Message for PoolMessage {}

/// A pool actor's view of its pool's target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    /// The language.
    pub language: String,
    /// The node's policy.
    pub policy: Policy,
    /// What the pool warms to now (after the budget).
    pub target: u32,
    /// What the actor wants before the budget.
    pub wanted: u32,
    /// Who set what it wants.
    pub source: Source,
    /// The budget granted less than wanted.
    pub budget_capped: bool,
    /// Warm containers kept above what is wanted while the surplus grace
    /// lasts (`edge.pool_surplus_grace_ms`).
    pub surplus_held: u32,
    /// The plan's target for this minute (`None`: no plan covers it).
    pub planned: Option<u32>,
    /// The runs the plan expects this minute.
    pub planned_runs_per_minute: Option<f64>,
    /// Runs per minute observed here (smoothed).
    pub observed_runs_per_minute: f64,
    /// An operator's target, if one holds.
    pub operator_target: Option<u32>,
    /// When it ends (unix ms), if temporary.
    pub operator_until_ms: Option<u64>,
    /// The last minute (unix ms, exclusive) the node's plan covers.
    pub plan_ends_ms: Option<u64>,
}

/// The actor (its state is [`PoolState`]).
pub struct PoolActor<P>(PhantomData<fn() -> P>);

impl<P> Default for PoolActor<P> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// A pool actor's state.
pub struct PoolState<P> {
    args: PoolArgs<P>,
    rate: Rate,
    runs_seen: u64,
    last_tick: tokio::time::Instant,
    operator: Option<Override>,
    last: Option<PoolStatus>,
    /// Since when the pool has held more than the actor wants.
    surplus_since: Option<tokio::time::Instant>,
}

impl<P: WarmPool> PoolState<P> {
    /// Decides and sets the target now.
    async fn decide(&mut self) -> PoolStatus {
        let now = self.args.clock.as_ref()();
        if let Some(o) = self.operator {
            if o.until_ms.is_some_and(|until| now >= until) {
                self.operator = o.previous.map(|(target, until_ms)| Override {
                    target,
                    until_ms,
                    previous: None,
                });
                tracing::info!(
                    language = self.args.language,
                    "an operator's temporary pool target ended"
                );
            }
        }
        let planned = self
            .args
            .plan
            .as_ref()
            .and_then(|p| p.at(&self.args.language, now));
        let settings = &self.args.settings;
        let (wanted, source) = decide(
            settings,
            &Inputs {
                planned: planned.map(|(t, _)| t),
                observed_per_second: self.rate.per_second(),
                overridden: self.operator.map(|o| o.target),
            },
        );
        // A target that falls (not an operator's) keeps the warm surplus
        // for the grace: runs use it up instead of it being destroyed, and
        // only what is still idle after it is waste.
        let warm = self.args.pool.warm();
        let ask = if source != Source::Operator && warm > wanted {
            let since = *self
                .surplus_since
                .get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() < settings.surplus_grace {
                warm
            } else {
                wanted
            }
        } else {
            self.surplus_since = None;
            wanted
        };
        let granted =
            self.args
                .budget
                .grant(&self.args.language, ask, self.args.container_memory_mb);
        let target = self.args.pool.set_target(granted).await;
        let language = self.args.language.as_str();
        let m = &self.args.metrics;
        m.planned
            .with_label_values(&[language])
            .set(i64::from(planned.map_or(0, |(t, _)| t)));
        m.planned_runs
            .with_label_values(&[language])
            .set(planned.map_or(0.0, |(_, r)| r));
        m.observed
            .with_label_values(&[language])
            .set(self.rate.per_second() * 60.0);
        for s in [
            Source::Operator,
            Source::Plan,
            Source::Observed,
            Source::Base,
        ] {
            let value = if s == source { i64::from(wanted) } else { 0 };
            m.wanted
                .with_label_values(&[language, s.as_str()])
                .set(value);
        }
        let status = PoolStatus {
            language: self.args.language.clone(),
            policy: settings.policy,
            target,
            wanted,
            source,
            budget_capped: granted < wanted,
            surplus_held: ask.saturating_sub(wanted).min(granted),
            planned: planned.map(|(t, _)| t),
            planned_runs_per_minute: planned.map(|(_, r)| r),
            observed_runs_per_minute: self.rate.per_second() * 60.0,
            operator_target: self.operator.map(|o| o.target),
            operator_until_ms: self.operator.and_then(|o| o.until_ms),
            plan_ends_ms: self.args.plan.as_ref().and_then(|p| p.end_ms()),
        };
        self.last = Some(status.clone());
        status
    }

    /// What the actor would want at `now` with `overridden` as the
    /// operator's target.
    fn wanted_with(&self, overridden: Option<u32>, now: u64) -> u32 {
        let planned = self
            .args
            .plan
            .as_ref()
            .and_then(|p| p.at(&self.args.language, now));
        decide(
            &self.args.settings,
            &Inputs {
                planned: planned.map(|(t, _)| t),
                observed_per_second: self.rate.per_second(),
                overridden,
            },
        )
        .0
    }

    /// Takes the runs since the last tick into the observed rate.
    fn observe(&mut self) {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last_tick);
        let runs = self.args.pool.runs();
        let new = runs.saturating_sub(self.runs_seen);
        self.runs_seen = runs;
        self.last_tick = now;
        self.rate
            .observe(new, elapsed, self.args.settings.observed_half_life);
    }
}

impl<P: WarmPool> Actor for PoolActor<P> {
    type Msg = PoolMessage;
    type State = PoolState<P>;
    type Arguments = PoolArgs<P>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PoolArgs<P>,
    ) -> Result<Self::State, ActorProcessingErr> {
        join_group(&pool_group(&args.region, &args.language), myself.get_cell());
        let tick = args.settings.tick.max(Duration::from_millis(10));
        myself.send_interval(tick, || PoolMessage::Tick);
        let runs_seen = args.pool.runs();
        let mut state = PoolState {
            args,
            rate: Rate::default(),
            runs_seen,
            last_tick: tokio::time::Instant::now(),
            operator: None,
            last: None,
            surplus_since: None,
        };
        state.decide().await;
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PoolMessage::Tick => {
                state.observe();
                state.decide().await;
            }
            PoolMessage::Plan(plan) => {
                state.args.plan = Some(plan);
                state.decide().await;
            }
            PoolMessage::Override {
                target,
                for_ms,
                reply,
            } => {
                let now = state.args.clock.as_ref()();
                let previous = state.operator.map(|o| (o.target, o.until_ms));
                // What holds when a temporary target ends: the override it
                // replaced, or what the actor would want without one.
                let restores_to = for_ms.map(|_| state.wanted_with(previous.map(|p| p.0), now));
                state.operator = Some(Override {
                    target,
                    until_ms: for_ms.map(|ms| now.saturating_add(ms)),
                    previous: if for_ms.is_some() { previous } else { None },
                });
                let status = state.decide().await;
                let _gone = reply.send((status, restores_to));
            }
            PoolMessage::ClearOverride(reply) => {
                state.operator = None;
                let status = state.decide().await;
                let _gone = reply.send(status);
            }
            PoolMessage::Status(reply) => {
                let status = match &state.last {
                    Some(s) => s.clone(),
                    None => state.decide().await,
                };
                let _gone = reply.send(status);
            }
        }
        Ok(())
    }
}

/// A running pool actor, for the node's routes and plan follower: calls
/// with a timeout, so a stuck actor is an error and not a hung request.
#[derive(Clone)]
pub struct PoolHandle(ActorRef<PoolMessage>);

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

impl PoolHandle {
    /// The actor's status.
    ///
    /// # Errors
    /// [`ActorsError::Call`] when it does not answer within `timeout`.
    pub async fn status(&self, timeout: Duration) -> Result<PoolStatus, ActorsError> {
        ractor::call_t!(self.0, PoolMessage::Status, millis(timeout))
            .map_err(|err| ActorsError::Call(err.to_string()))
    }

    /// An operator's target, for good or `for_ms`: the status after it
    /// and, if temporary, the target it goes back to.
    ///
    /// # Errors
    /// [`ActorsError::Call`] when it does not answer within `timeout`.
    pub async fn set_override(
        &self,
        target: u32,
        for_ms: Option<u64>,
        timeout: Duration,
    ) -> Result<(PoolStatus, Option<u32>), ActorsError> {
        ractor::call_t!(
            self.0,
            |reply| PoolMessage::Override {
                target,
                for_ms,
                reply
            },
            millis(timeout)
        )
        .map_err(|err| ActorsError::Call(err.to_string()))
    }

    /// Clears an operator's target: the status after it.
    ///
    /// # Errors
    /// [`ActorsError::Call`] when it does not answer within `timeout`.
    pub async fn clear_override(&self, timeout: Duration) -> Result<PoolStatus, ActorsError> {
        ractor::call_t!(self.0, PoolMessage::ClearOverride, millis(timeout))
            .map_err(|err| ActorsError::Call(err.to_string()))
    }

    /// Hands the actor a new plan.
    pub fn plan(&self, plan: Arc<PoolPlan>) {
        // An actor that stopped is gone with the node.
        let _gone = self.0.cast(PoolMessage::Plan(plan));
    }

    /// Stops the actor (it leaves its group).
    pub fn stop(&self) {
        self.0.stop(None);
    }
}

/// Starts the pool actor of `args.language`, in its group.
///
/// # Errors
/// [`ActorsError`] when the actor cannot start.
pub async fn start_pool_actor<P: WarmPool>(args: PoolArgs<P>) -> Result<PoolHandle, ActorsError> {
    let (actor, _handle) = Actor::spawn(None, PoolActor::<P>::default(), args)
        .await
        .map_err(|err| ActorsError::Spawn(err.to_string()))?;
    Ok(PoolHandle(actor))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use super::*;
    use crate::pool::plan::LanguagePlan;

    /// A pool that only remembers its target and counts runs the test
    /// reports: the actor's decisions, without Docker (the edge's tests
    /// drive real pools).
    #[derive(Clone, Default)]
    struct Counted {
        target: Arc<AtomicU32>,
        runs: Arc<AtomicU64>,
    }

    impl WarmPool for Counted {
        async fn set_target(&self, target: u32) -> u32 {
            self.target.store(target, Ordering::SeqCst);
            target
        }
        fn runs(&self) -> u64 {
            self.runs.load(Ordering::SeqCst)
        }
        /// Full at once: as if every target were warmed in no time.
        fn warm(&self) -> u32 {
            self.target.load(Ordering::SeqCst)
        }
    }

    /// 2031-09-01T09:00:00Z.
    const NINE: u64 = 1_946_019_600_000;

    fn clock() -> WallClock {
        let start = tokio::time::Instant::now();
        Arc::new(move || NINE + u64::try_from(start.elapsed().as_millis()).unwrap_or(0))
    }

    fn plan(targets: Vec<u32>) -> Arc<PoolPlan> {
        Arc::new(PoolPlan {
            region: "eu-west".into(),
            generated_at: "2031-09-01T08:59:00Z".into(),
            from: "2031-09-01T09:00:00Z".into(),
            minutes: u32::try_from(targets.len()).expect("short"),
            languages: vec![LanguagePlan {
                language: "python".into(),
                runs: targets.iter().map(|t| f64::from(*t) * 10.0).collect(),
                targets,
            }],
            capped: false,
        })
    }

    async fn start(
        policy: Policy,
        budget: Budget,
        plan: Option<Arc<PoolPlan>>,
    ) -> (PoolHandle, Counted) {
        let pool = Counted::default();
        let args = PoolArgs {
            pool: pool.clone(),
            language: "python".into(),
            region: gossip::Region::new("eu-west").expect("region"),
            settings: PoolSettings {
                policy,
                base_target: 1,
                tick: Duration::from_secs(1),
                observed_half_life: Duration::from_secs(10),
                reactive_horizon: Duration::from_secs(5),
                surplus_grace: Duration::from_secs(30),
            },
            budget: Arc::new(budget),
            container_memory_mb: 300,
            plan,
            clock: clock(),
            metrics: PoolMetrics::register(&Registry::new()).expect("metrics"),
        };
        (start_pool_actor(args).await.expect("start"), pool)
    }

    const WAIT: Duration = Duration::from_secs(5);

    async fn status(actor: &PoolHandle) -> PoolStatus {
        actor.status(WAIT).await.expect("status")
    }

    /// Lets the actor's ticks run `secs` seconds of paused time.
    async fn pass(secs: u64) {
        for _ in 0..secs {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_plan_raises_the_pool_on_its_minute_and_ends_with_it() {
        let (actor, pool) = start(
            Policy::Predictive,
            Budget::new(100, 100_000),
            Some(plan(vec![0, 6, 6, 0])),
        )
        .await;
        let first = status(&actor).await;
        assert_eq!((first.target, first.source), (1, Source::Base), "{first:?}");
        assert_eq!(first.planned, Some(0));
        pass(61).await;
        let during = status(&actor).await;
        assert_eq!(
            (during.target, during.source),
            (6, Source::Plan),
            "{during:?}"
        );
        assert_eq!(during.planned_runs_per_minute, Some(60.0));
        assert_eq!(pool.target.load(Ordering::SeqCst), 6);
        pass(180).await;
        let after = status(&actor).await;
        assert_eq!(
            (after.target, after.planned),
            (1, None),
            "past the plan: {after:?}"
        );
        actor.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn an_operator_wins_until_cleared_or_its_time_ends() {
        let (actor, pool) = start(
            Policy::Predictive,
            Budget::new(100, 100_000),
            Some(plan(vec![4; 10])),
        )
        .await;
        assert_eq!(status(&actor).await.target, 4);
        let (held, restores) = actor
            .set_override(0, Some(30_000), WAIT)
            .await
            .expect("override");
        assert_eq!(
            (held.target, held.source, restores),
            (0, Source::Operator, Some(4))
        );
        assert_eq!(pool.target.load(Ordering::SeqCst), 0);
        pass(20).await;
        assert_eq!(status(&actor).await.target, 0, "still held");
        pass(11).await;
        let back = status(&actor).await;
        assert_eq!(
            (back.target, back.source, back.operator_target),
            (4, Source::Plan, None)
        );
        // For good, until cleared.
        let (kept, restores) = actor.set_override(9, None, WAIT).await.expect("override");
        assert_eq!((kept.target, restores), (9, None));
        pass(120).await;
        assert_eq!(status(&actor).await.target, 9);
        // A temporary one on top goes back to it.
        let (_, restores) = actor
            .set_override(2, Some(1_000), WAIT)
            .await
            .expect("override");
        assert_eq!(restores, Some(9));
        pass(2).await;
        assert_eq!(status(&actor).await.target, 9);
        let cleared = actor.clear_override(WAIT).await.expect("clear");
        // The operator's surplus is kept for the grace, then given up.
        assert_eq!(
            (
                cleared.target,
                cleared.wanted,
                cleared.source,
                cleared.surplus_held
            ),
            (9, 4, Source::Plan, 5)
        );
        pass(31).await;
        let after = status(&actor).await;
        assert_eq!((after.target, after.surplus_held), (4, 0), "{after:?}");
        actor.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn the_observed_rate_and_the_budget_shape_the_target() {
        // Reactive: 4 runs a second for a minute, with a 10 s half-life
        // and a 5 s horizon: about 20 containers.
        let (actor, pool) = start(Policy::Reactive, Budget::new(100, 100_000), None).await;
        for _ in 0..60 {
            pool.runs.fetch_add(4, Ordering::SeqCst);
            pass(1).await;
        }
        let busy = status(&actor).await;
        assert_eq!(busy.source, Source::Observed, "{busy:?}");
        assert!((19..=21).contains(&busy.target), "{busy:?}");
        // The plan is not read under `reactive`.
        actor.plan(plan(vec![50; 10]));
        pass(1).await;
        assert!(status(&actor).await.target < 50);
        actor.stop();

        // The budget: 3 containers of 300 MB at most.
        let (capped, pool) = start(
            Policy::Predictive,
            Budget::new(3, 100_000),
            Some(plan(vec![8; 10])),
        )
        .await;
        let s = status(&capped).await;
        assert_eq!((s.target, s.wanted, s.budget_capped), (3, 8, true), "{s:?}");
        assert_eq!(pool.target.load(Ordering::SeqCst), 3);
        capped.stop();
    }
}
