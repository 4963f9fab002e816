//! A stale-while-revalidate cache in front of the catalogue
//! (`GET /api/v1/courses`) and course-page (`GET /api/v1/courses/{id}`)
//! reads, holding each answer's serialised JSON body.
//!
//! * **Fresh** for `content_cache_fresh_ms` after it was loaded: served
//!   from memory.
//! * **Stale** for `content_cache_stale_ms` more: still served at once, and
//!   the first reader to see it stale starts one background refresh.
//! * **Expired** after that, or absent: the reader loads it; readers of the
//!   same key that arrive meanwhile wait for that one load instead of
//!   asking the database too (one load or refresh in flight per key, so a
//!   burst on a cold key is one query, not a thundering herd).
//!
//! Keys are `(tenant, resource)`, so one tenant's answer can never be
//! served to another. Every content write in this process (course, module,
//! unit, draft edit, publish) invalidates its tenant's entries and bumps
//! the tenant's generation; a load that started before the write does not
//! store its (possibly older) answer. Writes in another control-plane
//! process are seen within the fresh window plus the stale window at most.
//! At most `content_cache_entries_max` entries are kept; a full cache drops
//! the oldest-loaded entry first. `content_cache_entries_max = 0` turns the
//! cache off (every read goes to the database).
//!
//! Failed loads (404, database errors) are never cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Bytes;
use tokio::sync::oneshot;

/// `(tenant, resource)`: the tenant is part of every key.
type Key = (String, String);

pub(super) struct Entry {
    body: Bytes,
    loaded_at: Instant,
    generation: u64,
}

#[derive(Default)]
pub(super) struct State {
    entries: HashMap<Key, Entry>,
    /// Keys with a load or refresh in flight, and the readers waiting for
    /// it (a stale refresh has none).
    in_flight: HashMap<Key, Vec<oneshot::Sender<Option<Bytes>>>>,
    /// Per tenant, bumped by every invalidation.
    generations: HashMap<String, u64>,
}

/// The cache; cheap to clone (one shared state).
#[derive(Clone)]
pub struct SwrCache {
    state: Arc<Mutex<State>>,
    fresh: Duration,
    stale: Duration,
    entries_max: usize,
}

impl std::fmt::Debug for SwrCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwrCache")
            .field("fresh", &self.fresh)
            .field("stale", &self.stale)
            .field("entries_max", &self.entries_max)
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
pub(super) enum Found {
    Fresh(Bytes),
    /// Stale: serve it; `refresh` says this reader starts the refresh.
    Stale {
        body: Bytes,
        refresh: bool,
    },
    /// Someone is loading it: wait.
    Wait(oneshot::Receiver<Option<Bytes>>),
    /// Nobody is: load it (this reader is now the one in flight).
    Load,
}

impl SwrCache {
    /// A cache of at most `entries_max` answers (0: off), fresh for
    /// `fresh_ms` and then stale for `stale_ms`.
    pub fn new(entries_max: usize, fresh_ms: u64, stale_ms: u64) -> Self {
        Self {
            state: Arc::default(),
            fresh: Duration::from_millis(fresh_ms),
            stale: Duration::from_millis(stale_ms),
            entries_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic
        // elsewhere does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many answers are held now (for tests and the bench).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every answer of `tenant` and makes loads in flight for it not
    /// store theirs: called after each content write of the tenant.
    pub fn invalidate(&self, tenant: &str) {
        if self.entries_max == 0 {
            return;
        }
        let mut state = self.lock();
        *state.generations.entry(tenant.to_owned()).or_default() += 1;
        state.entries.retain(|(t, _), _| t != tenant);
    }

    /// The body for `(tenant, resource)`, from memory when fresh or stale,
    /// otherwise from `load` (run at most once per key at a time). A stale
    /// hit answers at once and refreshes in the background.
    ///
    /// # Errors
    /// What `load` fails with, for the reader that ran it; nothing failed is
    /// cached, and a reader that waited on a failed load runs its own.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        tenant: &str,
        resource: &str,
        load: F,
    ) -> Result<Bytes, E>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: Send + 'static,
    {
        if self.entries_max == 0 {
            return load().await;
        }
        let key: Key = (tenant.to_owned(), resource.to_owned());
        match self.find(&key) {
            Found::Fresh(body) => Ok(body),
            Found::Stale { body, refresh } => {
                if refresh {
                    let cache = self.clone();
                    let generation = self.generation(tenant);
                    tokio::spawn(async move {
                        let loaded = load().await.ok();
                        cache.finish(&key, generation, loaded);
                    });
                }
                Ok(body)
            }
            Found::Wait(answer) => match answer.await {
                Ok(Some(body)) => Ok(body),
                // The load failed (or its reader went away): load alone.
                _ => load().await,
            },
            Found::Load => {
                let generation = self.generation(tenant);
                let guard = InFlight {
                    cache: self,
                    key: Some(key),
                };
                let loaded = load().await;
                guard.finish(generation, loaded.as_ref().ok().cloned());
                loaded
            }
        }
    }

    fn generation(&self, tenant: &str) -> u64 {
        self.lock().generations.get(tenant).copied().unwrap_or(0)
    }

    fn find(&self, key: &Key) -> Found {
        let mut state = self.lock();
        let now = Instant::now();
        let generation = state.generations.get(&key.0).copied().unwrap_or(0);
        if let Some(entry) = state.entries.get(key) {
            let age = now.saturating_duration_since(entry.loaded_at);
            if entry.generation == generation && age < self.fresh {
                return Found::Fresh(entry.body.clone());
            }
            if entry.generation == generation && age < self.fresh + self.stale {
                let body = entry.body.clone();
                let refresh = !state.in_flight.contains_key(key);
                if refresh {
                    state.in_flight.insert(key.clone(), Vec::new());
                }
                return Found::Stale { body, refresh };
            }
        }
        if let Some(waiting) = state.in_flight.get_mut(key) {
            let (tell, answer) = oneshot::channel();
            waiting.push(tell);
            return Found::Wait(answer);
        }
        state.in_flight.insert(key.clone(), Vec::new());
        Found::Load
    }

    /// Ends the load in flight for `key`: stores `loaded` unless the tenant
    /// was invalidated since `generation`, and answers the waiters.
    fn finish(&self, key: &Key, generation: u64, loaded: Option<Bytes>) {
        let mut state = self.lock();
        let waiting = state.in_flight.remove(key).unwrap_or_default();
        let current = state.generations.get(&key.0).copied().unwrap_or(0);
        if let Some(body) = &loaded {
            if current == generation {
                if state.entries.len() >= self.entries_max && !state.entries.contains_key(key) {
                    let oldest = state
                        .entries
                        .iter()
                        .min_by_key(|(_, e)| e.loaded_at)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        state.entries.remove(&oldest);
                    }
                }
                state.entries.insert(
                    key.clone(),
                    Entry {
                        body: body.clone(),
                        loaded_at: Instant::now(),
                        generation,
                    },
                );
            }
        }
        drop(state);
        for tell in waiting {
            let _ = tell.send(loaded.clone());
        }
    }
}

/// Clears a key's in-flight mark even when the loading reader is cancelled
/// (its waiters then load on their own).
pub(super) struct InFlight<'a> {
    cache: &'a SwrCache,
    key: Option<Key>,
}

impl InFlight<'_> {
    fn finish(mut self, generation: u64, loaded: Option<Bytes>) {
        if let Some(key) = self.key.take() {
            self.cache.finish(&key, generation, loaded);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut state = self.cache.lock();
            let waiting = state.in_flight.remove(&key).unwrap_or_default();
            drop(state);
            for tell in waiting {
                let _ = tell.send(None);
            }
        }
    }
}
