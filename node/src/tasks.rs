//! The long-lived background tasks of a process, supervised. A task that
//! should run until shutdown (an outbox publisher, a readiness watcher, the
//! gossip follower) is started with [`Tasks::spawn`]; if it panics, or ends
//! before shutdown, the `tasks` readiness check goes red naming it and
//! `lyceum_process_task_failures_total{task}` counts it, so a dead
//! publisher can never go unnoticed while the process looks healthy.
//! Nothing restarts it: a task that died once may die again the same way,
//! and a red process is taken out of routing and restarted by its
//! supervisor (`lyceum dev`, or the operator's).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounterVec, Opts, Registry};

use crate::readiness::Readiness;
use crate::shutdown::Shutdown;

/// The readiness check the supervisor keeps.
pub const READINESS_CHECK: &str = "tasks";

/// Starts and watches a process's long-lived tasks.
#[derive(Clone)]
pub struct Tasks {
    readiness: Readiness,
    shutdown: Shutdown,
    failures: IntCounterVec,
    /// What went wrong so far, in order, for the readiness reason.
    dead: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

impl Tasks {
    /// A supervisor whose readiness check passes until a task dies.
    ///
    /// # Errors
    /// When the failure counter cannot be registered.
    pub fn new(
        registry: &Registry,
        readiness: Readiness,
        shutdown: Shutdown,
    ) -> Result<Self, prometheus::Error> {
        let failures = IntCounterVec::new(
            Opts::new(
                "process_task_failures_total",
                "Long-lived background tasks that panicked or ended before shutdown, by task",
            ),
            &["task"],
        )?;
        registry.register(Box::new(failures.clone()))?;
        readiness.register(READINESS_CHECK);
        readiness.set(READINESS_CHECK, Ok(()));
        Ok(Self {
            readiness,
            shutdown,
            failures,
            dead: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Runs `task` until it ends; it should run until shutdown.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let this = self.clone();
        tokio::spawn(async move {
            let why = match handle.await {
                Ok(()) if this.shutdown.is_triggered() => return,
                Ok(()) => "ended before shutdown".to_owned(),
                Err(err) if err.is_panic() => {
                    let payload = err.into_panic();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    format!("panicked: {message}")
                }
                Err(err) => format!("was cancelled: {err}"),
            };
            tracing::error!(
                task = name,
                reason = why,
                "a background task died; the process is not ready"
            );
            this.failures.with_label_values(&[name]).inc();
            let reason = {
                let mut dead = this.dead.lock().unwrap_or_else(PoisonError::into_inner);
                dead.push(format!("{name} {why}"));
                dead.join("; ")
            };
            this.readiness.set(READINESS_CHECK, Err(reason));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_turns_readiness_red_and_is_counted() {
        let registry = Registry::new();
        let readiness = Readiness::default();
        let (stop, shutdown) = Shutdown::manual();
        let tasks = Tasks::new(&registry, readiness.clone(), shutdown).expect("tasks");
        tasks.spawn("steady", std::future::pending());
        settle().await;
        assert!(readiness.report().ready, "a running task is fine");

        tasks.spawn("publisher", async { panic!("queue gone") });
        settle().await;
        let report = readiness.report();
        assert_eq!(
            report.reason.as_deref(),
            Some("tasks: publisher panicked: queue gone")
        );
        tasks.spawn("watcher", async {});
        settle().await;
        assert_eq!(
            readiness.report().reason.as_deref(),
            Some("tasks: publisher panicked: queue gone; watcher ended before shutdown")
        );
        assert_eq!(tasks.failures.with_label_values(&["publisher"]).get(), 1);

        // After shutdown, tasks may end: that is no failure.
        stop.send(true).expect("stop");
        tasks.spawn("closer", async {});
        settle().await;
        assert_eq!(tasks.failures.with_label_values(&["closer"]).get(), 0);
    }
}
