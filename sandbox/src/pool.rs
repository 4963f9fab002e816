//! Warm pools, one per language. A refill task per language keeps `target`
//! containers created, started and attached, so the hot path only pops one.
//! A container is never reused: after its one job it is destroyed and the
//! refill task warms a replacement. The target can change at run time (the
//! timetable work drives it); when a pool is empty a run pays a cold start,
//! which the metrics count.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::{Mutex, Notify};

use crate::container::{self, AgentCommand, ContainerLimits, WarmContainer};
use crate::engine::{DockerEngine, Refusal, SandboxError};
use crate::languages::Language;

/// Upper bound on the warm target of one language.
pub const POOL_TARGET_MAX: u32 = 64;
/// Pause after a failed warm-up before the refill task tries again.
const REFILL_BACKOFF: Duration = Duration::from_millis(1_000);

struct LanguagePool {
    language: &'static Language,
    warm: Mutex<VecDeque<WarmContainer>>,
    target: AtomicU32,
    wake: Notify,
}

/// Metrics of the pools.
#[derive(Clone)]
struct PoolMetrics {
    size: IntGaugeVec,
    target: IntGaugeVec,
    starts: IntCounterVec,
    warm_failures: IntCounterVec,
}

/// All warm pools of one edge node.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
}

struct Inner {
    engine: DockerEngine,
    image: String,
    agent: AgentCommand,
    limits: ContainerLimits,
    pools: HashMap<&'static str, Arc<LanguagePool>>,
    metrics: PoolMetrics,
    stopped: tokio::sync::watch::Sender<bool>,
    refills: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Pools {
    /// Starts a refill task per language with `target` warm containers each.
    ///
    /// # Errors
    /// Only when the metrics cannot be registered (a bug).
    pub fn start(
        engine: DockerEngine,
        image: String,
        agent: AgentCommand,
        limits: ContainerLimits,
        languages: &[&'static Language],
        target: u32,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let metrics = PoolMetrics {
            size: IntGaugeVec::new(
                Opts::new(
                    "sandbox_pool_containers",
                    "Warm containers ready, per language",
                ),
                &["language"],
            )?,
            target: IntGaugeVec::new(
                Opts::new(
                    "sandbox_pool_target_containers",
                    "Warm containers wanted, per language",
                ),
                &["language"],
            )?,
            starts: IntCounterVec::new(
                Opts::new(
                    "sandbox_starts_total",
                    "Runs by how their container was had: hot (from the pool) or cold (pool empty)",
                ),
                &["language", "kind"],
            )?,
            warm_failures: IntCounterVec::new(
                Opts::new(
                    "sandbox_warm_failures_total",
                    "Containers that failed to warm up",
                ),
                &["language"],
            )?,
        };
        registry.register(Box::new(metrics.size.clone()))?;
        registry.register(Box::new(metrics.target.clone()))?;
        registry.register(Box::new(metrics.starts.clone()))?;
        registry.register(Box::new(metrics.warm_failures.clone()))?;
        let target = target.min(POOL_TARGET_MAX);
        let pools = languages
            .iter()
            .map(|lang| {
                metrics
                    .target
                    .with_label_values(&[lang.id])
                    .set(i64::from(target));
                metrics.size.with_label_values(&[lang.id]).set(0);
                (
                    lang.id,
                    Arc::new(LanguagePool {
                        language: lang,
                        warm: Mutex::new(VecDeque::new()),
                        target: AtomicU32::new(target),
                        wake: Notify::new(),
                    }),
                )
            })
            .collect();
        let (stopped, _) = tokio::sync::watch::channel(false);
        let pools = Self {
            inner: Arc::new(Inner {
                engine,
                image,
                agent,
                limits,
                pools,
                metrics,
                stopped,
                refills: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let handles: Vec<_> = pools
            .inner
            .pools
            .values()
            .map(|pool| tokio::spawn(refill(pools.inner.clone(), pool.clone())))
            .collect();
        *pools
            .inner
            .refills
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = handles;
        Ok(pools)
    }

    /// A container for one run of `language`: warm if the pool has one,
    /// else created now (a cold start).
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a language without a pool, or the
    /// engine's error on a failed cold start.
    pub async fn take(&self, language: &str) -> Result<(WarmContainer, bool), SandboxError> {
        let pool = self.inner.pools.get(language).ok_or_else(|| {
            SandboxError::rejected(Refusal::UnknownLanguage, format!("no pool for {language}"))
        })?;
        let popped = pool.warm.lock().await.pop_front();
        pool.wake.notify_one();
        let hot = popped.is_some();
        let container = match popped {
            Some(container) => container,
            None => {
                container::warm(
                    &self.inner.engine,
                    &self.inner.image,
                    &self.inner.agent,
                    &self.inner.limits,
                    pool.language.memory_headroom_mb,
                )
                .await?
            }
        };
        self.update_size(pool).await;
        let kind = if hot { "hot" } else { "cold" };
        self.inner
            .metrics
            .starts
            .with_label_values(&[language, kind])
            .inc();
        Ok((container, hot))
    }

    /// Changes how many warm containers `language` keeps; returns the target
    /// actually set (capped at [`POOL_TARGET_MAX`]).
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a language without a pool.
    pub async fn set_target(&self, language: &str, target: u32) -> Result<u32, SandboxError> {
        let pool = self.inner.pools.get(language).ok_or_else(|| {
            SandboxError::rejected(Refusal::UnknownLanguage, format!("no pool for {language}"))
        })?;
        let target = target.min(POOL_TARGET_MAX);
        pool.target.store(target, Ordering::SeqCst);
        self.inner
            .metrics
            .target
            .with_label_values(&[language])
            .set(i64::from(target));
        // Shrink now; growing is the refill task's job.
        let surplus: Vec<WarmContainer> = {
            let mut warm = pool.warm.lock().await;
            let keep = usize::try_from(target).unwrap_or(usize::MAX);
            if warm.len() > keep {
                warm.drain(keep..).collect()
            } else {
                Vec::new()
            }
        };
        for container in surplus {
            container::destroy(&self.inner.engine, &container.id).await;
        }
        self.update_size(pool).await;
        pool.wake.notify_one();
        Ok(target)
    }

    /// Warm containers ready now, per language.
    pub async fn sizes(&self) -> Vec<(&'static str, usize, u32)> {
        let mut out = Vec::new();
        for (id, pool) in &self.inner.pools {
            out.push((
                *id,
                pool.warm.lock().await.len(),
                pool.target.load(Ordering::SeqCst),
            ));
        }
        out.sort_unstable();
        out
    }

    /// Stops refilling (waiting for warm-ups under way) and destroys every
    /// warm container.
    pub async fn shutdown(&self) {
        // send_replace: the value must change even before any refill task has
        // subscribed, or a task starting later would wait forever.
        self.inner.stopped.send_replace(true);
        let handles = std::mem::take(
            &mut *self
                .inner
                .refills
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for handle in handles {
            let _ = handle.await;
        }
        for pool in self.inner.pools.values() {
            let drained: Vec<WarmContainer> = pool.warm.lock().await.drain(..).collect();
            for container in drained {
                container::destroy(&self.inner.engine, &container.id).await;
            }
            pool.wake.notify_one();
        }
    }

    async fn update_size(&self, pool: &LanguagePool) {
        let len = pool.warm.lock().await.len();
        self.inner
            .metrics
            .size
            .with_label_values(&[pool.language.id])
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }
}

/// Keeps one language's pool at its target, one container at a time (so a
/// burst of refills cannot swamp the engine).
async fn refill(inner: Arc<Inner>, pool: Arc<LanguagePool>) {
    let mut stopped = inner.stopped.subscribe();
    loop {
        if *stopped.borrow() {
            return;
        }
        let have = pool.warm.lock().await.len();
        let want = usize::try_from(pool.target.load(Ordering::SeqCst)).unwrap_or(0);
        if have < want {
            match container::warm(
                &inner.engine,
                &inner.image,
                &inner.agent,
                &inner.limits,
                pool.language.memory_headroom_mb,
            )
            .await
            {
                Ok(container) => {
                    if *stopped.borrow() {
                        container::destroy(&inner.engine, &container.id).await;
                        return;
                    }
                    let len = {
                        let mut warm = pool.warm.lock().await;
                        warm.push_back(container);
                        warm.len()
                    };
                    inner
                        .metrics
                        .size
                        .with_label_values(&[pool.language.id])
                        .set(i64::try_from(len).unwrap_or(i64::MAX));
                }
                Err(err) => {
                    inner
                        .metrics
                        .warm_failures
                        .with_label_values(&[pool.language.id])
                        .inc();
                    tracing::warn!(language = pool.language.id, error = %err, "cannot warm a sandbox container");
                    tokio::select! {
                        () = tokio::time::sleep(REFILL_BACKOFF) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
            continue;
        }
        tokio::select! {
            () = pool.wake.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}
