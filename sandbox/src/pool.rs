//! Warm pools, one per language. A refill task per language keeps `target`
//! containers created, started and attached, so the hot path only pops one.
//! A container is never reused: after its one job it is destroyed and the
//! refill task warms a replacement. The target can change at any time (the
//! edge's pool actors set it from the timetable's plan, the observed rate
//! and operators); the refill task grows or shrinks the pool to it. When a
//! pool is empty a run pays a cold start.
//!
//! Every container's fate is counted: warmed, used (a hot start) or
//! destroyed unused (waste, when a target falls or the node stops), with
//! the seconds it was held warm, so a warming policy can be judged by the
//! cold starts it avoided and the warm-container time it wasted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{CounterVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use crate::container::{self, AgentCommand, ContainerLimits, WarmContainer};
use crate::engine::{DockerEngine, Refusal, SandboxError};
use crate::languages::Language;

/// Upper bound on the warm target of one language: a guard against a
/// runaway number, not the node's budget (the edge's pool actors keep that,
/// across languages, in `edge.pool_warm_containers_max`).
pub const POOL_TARGET_MAX: u32 = 512;
/// Pause after a failed warm-up before the refill task tries again.
const REFILL_BACKOFF: Duration = Duration::from_millis(1_000);

/// A warm container and when it became ready.
struct Warm {
    container: WarmContainer,
    since: Instant,
}

struct LanguagePool {
    language: &'static Language,
    warm: Mutex<VecDeque<Warm>>,
    /// The queue's length, kept beside it so readers need no lock.
    ready: AtomicUsize,
    target: AtomicU32,
    wake: Notify,
    counts: Counts,
}

/// Counters of one language's pool since the node started.
#[derive(Default)]
struct Counts {
    hot: AtomicU64,
    cold: AtomicU64,
    warmed: AtomicU64,
    wasted: AtomicU64,
    used_ms: AtomicU64,
    wasted_ms: AtomicU64,
}

/// One language's pool as readers see it: now, and counts since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolStats {
    /// Warm containers ready now.
    pub warm: usize,
    /// What the pool is warming to now.
    pub target: u32,
    /// Runs that took a warm container.
    pub hot: u64,
    /// Runs that found the pool empty and waited for a container.
    pub cold: u64,
    /// Containers warmed into the pool.
    pub warmed: u64,
    /// Warm containers destroyed unused (a target fell, or the node
    /// stopped).
    pub wasted: u64,
    /// Milliseconds that containers later used were held warm.
    pub used_warm_ms: u64,
    /// Milliseconds that containers destroyed unused were held warm.
    pub wasted_warm_ms: u64,
}
/// Metrics of the pools.
#[derive(Clone)]
struct PoolMetrics {
    size: IntGaugeVec,
    target: IntGaugeVec,
    starts: IntCounterVec,
    warm_failures: IntCounterVec,
    warmed: IntCounterVec,
    wasted: IntCounterVec,
    warm_seconds: CounterVec,
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
            warmed: IntCounterVec::new(
                Opts::new(
                    "sandbox_pool_warmed_total",
                    "Containers warmed into the pool, per language",
                ),
                &["language"],
            )?,
            wasted: IntCounterVec::new(
                Opts::new(
                    "sandbox_pool_wasted_total",
                    "Warm containers destroyed unused (a target fell or the node stopped), per language",
                ),
                &["language"],
            )?,
            warm_seconds: CounterVec::new(
                Opts::new(
                    "sandbox_pool_warm_seconds_total",
                    "Seconds containers were held warm, by fate: used (a hot start) or wasted (destroyed unused)",
                ),
                &["language", "fate"],
            )?,
        };
        registry.register(Box::new(metrics.warmed.clone()))?;
        registry.register(Box::new(metrics.wasted.clone()))?;
        registry.register(Box::new(metrics.warm_seconds.clone()))?;
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
                // Every series exists from the start, at zero.
                metrics.warmed.with_label_values(&[lang.id]).reset();
                metrics.wasted.with_label_values(&[lang.id]).reset();
                for fate in ["used", "wasted"] {
                    metrics
                        .warm_seconds
                        .with_label_values(&[lang.id, fate])
                        .reset();
                }
                for kind in ["hot", "cold"] {
                    metrics.starts.with_label_values(&[lang.id, kind]).reset();
                }
                (
                    lang.id,
                    Arc::new(LanguagePool {
                        language: lang,
                        warm: Mutex::new(VecDeque::new()),
                        ready: AtomicUsize::new(0),
                        target: AtomicU32::new(target),
                        wake: Notify::new(),
                        counts: Counts::default(),
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
        let pool = self.pool(language)?;
        let popped = {
            let mut warm = pool.warm.lock().await;
            let popped = warm.pop_front();
            self.note_size(pool, warm.len());
            popped
        };
        pool.wake.notify_one();
        let hot = popped.is_some();
        let container = match popped {
            Some(warm) => {
                let held = warm.since.elapsed();
                pool.counts.hot.fetch_add(1, Ordering::Relaxed);
                pool.counts
                    .used_ms
                    .fetch_add(millis(held), Ordering::Relaxed);
                self.inner
                    .metrics
                    .warm_seconds
                    .with_label_values(&[language, "used"])
                    .inc_by(held.as_secs_f64());
                warm.container
            }
            None => {
                pool.counts.cold.fetch_add(1, Ordering::Relaxed);
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
        let kind = if hot { "hot" } else { "cold" };
        self.inner
            .metrics
            .starts
            .with_label_values(&[language, kind])
            .inc();
        Ok((container, hot))
    }

    /// Changes how many warm containers `language` keeps; returns the target
    /// actually set (capped at [`POOL_TARGET_MAX`]). A lower target
    /// destroys the surplus at once; the refill task grows the pool.
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a language without a pool.
    pub async fn set_target(&self, language: &str, target: u32) -> Result<u32, SandboxError> {
        let pool = self.pool(language)?;
        let target = target.min(POOL_TARGET_MAX);
        if pool.target.swap(target, Ordering::SeqCst) == target {
            return Ok(target);
        }
        self.inner
            .metrics
            .target
            .with_label_values(&[language])
            .set(i64::from(target));
        // Shrink now, so a run right after a lower target sees it; growing
        // is the refill task's job.
        let keep = usize::try_from(target).unwrap_or(usize::MAX);
        let surplus: Vec<Warm> = {
            let mut warm = pool.warm.lock().await;
            let surplus = if warm.len() > keep {
                warm.drain(keep..).collect()
            } else {
                Vec::new()
            };
            self.note_size(pool, warm.len());
            surplus
        };
        for warm in surplus {
            waste(&self.inner, pool, warm).await;
        }
        pool.wake.notify_one();
        Ok(target)
    }

    /// Warm containers ready now and the target, per language, by id.
    pub fn sizes(&self) -> Vec<(&'static str, usize, u32)> {
        let mut out: Vec<_> = self
            .inner
            .pools
            .iter()
            .map(|(id, pool)| {
                (
                    *id,
                    pool.ready.load(Ordering::SeqCst),
                    pool.target.load(Ordering::SeqCst),
                )
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// One language's pool now and its counts since start.
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a language without a pool.
    pub fn stats(&self, language: &str) -> Result<PoolStats, SandboxError> {
        let pool = self.pool(language)?;
        let c = &pool.counts;
        Ok(PoolStats {
            warm: pool.ready.load(Ordering::SeqCst),
            target: pool.target.load(Ordering::SeqCst),
            hot: c.hot.load(Ordering::Relaxed),
            cold: c.cold.load(Ordering::Relaxed),
            warmed: c.warmed.load(Ordering::Relaxed),
            wasted: c.wasted.load(Ordering::Relaxed),
            used_warm_ms: c.used_ms.load(Ordering::Relaxed),
            wasted_warm_ms: c.wasted_ms.load(Ordering::Relaxed),
        })
    }

    /// Memory one warm container of `language` is allowed (the container
    /// limit plus the language's headroom), in MB: what a warm container
    /// counts against the node's memory budget.
    ///
    /// # Errors
    /// [`SandboxError::Rejected`] for a language without a pool.
    pub fn container_memory_mb(&self, language: &str) -> Result<u32, SandboxError> {
        let pool = self.pool(language)?;
        Ok(self
            .inner
            .limits
            .memory_mb
            .saturating_add(pool.language.memory_headroom_mb))
    }

    /// The ids of the languages with a pool, sorted.
    pub fn languages(&self) -> Vec<&'static str> {
        let mut ids: Vec<_> = self.inner.pools.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn pool(&self, language: &str) -> Result<&Arc<LanguagePool>, SandboxError> {
        self.inner.pools.get(language).ok_or_else(|| {
            SandboxError::rejected(Refusal::UnknownLanguage, format!("no pool for {language}"))
        })
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
            let drained: Vec<Warm> = {
                let mut warm = pool.warm.lock().await;
                let drained = warm.drain(..).collect();
                self.note_size(pool, 0);
                drained
            };
            for warm in drained {
                waste(&self.inner, pool, warm).await;
            }
            pool.wake.notify_one();
        }
    }

    fn note_size(&self, pool: &LanguagePool, len: usize) {
        note_size(&self.inner, pool, len);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Records the queue's length (under its lock, so the two agree).
fn note_size(inner: &Inner, pool: &LanguagePool, len: usize) {
    pool.ready.store(len, Ordering::SeqCst);
    inner
        .metrics
        .size
        .with_label_values(&[pool.language.id])
        .set(i64::try_from(len).unwrap_or(i64::MAX));
}

/// Destroys a warm container nobody used, and counts it as waste.
async fn waste(inner: &Inner, pool: &LanguagePool, warm: Warm) {
    let held = warm.since.elapsed();
    pool.counts.wasted.fetch_add(1, Ordering::Relaxed);
    pool.counts
        .wasted_ms
        .fetch_add(millis(held), Ordering::Relaxed);
    inner
        .metrics
        .wasted
        .with_label_values(&[pool.language.id])
        .inc();
    inner
        .metrics
        .warm_seconds
        .with_label_values(&[pool.language.id, "wasted"])
        .inc_by(held.as_secs_f64());
    container::destroy(&inner.engine, &warm.container.id).await;
}

/// Keeps one language's pool at its target: warms one container at a time
/// (so a burst of refills cannot swamp the engine), and destroys the
/// newest surplus ones when the target falls (the oldest are kept, to be
/// used first).
async fn refill(inner: Arc<Inner>, pool: Arc<LanguagePool>) {
    let mut stopped = inner.stopped.subscribe();
    loop {
        if *stopped.borrow() {
            return;
        }
        let want = usize::try_from(pool.target.load(Ordering::SeqCst)).unwrap_or(0);
        let surplus: Vec<Warm> = {
            let mut warm = pool.warm.lock().await;
            let surplus: Vec<Warm> = if warm.len() > want {
                warm.drain(want..).collect()
            } else {
                Vec::new()
            };
            note_size(&inner, &pool, warm.len());
            surplus
        };
        for warm in surplus {
            waste(&inner, &pool, warm).await;
        }
        let have = pool.ready.load(Ordering::SeqCst);
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
                    pool.counts.warmed.fetch_add(1, Ordering::Relaxed);
                    inner
                        .metrics
                        .warmed
                        .with_label_values(&[pool.language.id])
                        .inc();
                    let warm = Warm {
                        container,
                        since: Instant::now(),
                    };
                    if *stopped.borrow() {
                        waste(&inner, &pool, warm).await;
                        return;
                    }
                    let mut queue = pool.warm.lock().await;
                    queue.push_back(warm);
                    note_size(&inner, &pool, queue.len());
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
