//! Readiness: a process is ready when every named check passes. Checks are
//! registered up front as failing ("not checked yet"), so a process never
//! claims readiness before it has looked. `/readyz` reports each check and,
//! when not ready, the first reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The shared set of readiness checks of one process.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, Result<(), String>>>>,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessReport {
    /// True when every check passes.
    pub ready: bool,
    /// The first failing check and why, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each check: `ok` or the reason it fails.
    pub checks: BTreeMap<&'static str, String>,
}

impl Readiness {
    /// Adds a check that fails until it is first set.
    pub fn register(&self, name: &'static str) {
        self.lock()
            .entry(name)
            .or_insert_with(|| Err("not checked yet".to_owned()));
    }

    /// Records the latest outcome of a check.
    pub fn set(&self, name: &'static str, outcome: Result<(), String>) {
        let mut checks = self.lock();
        let previous = checks.insert(name, outcome.clone());
        if previous.as_ref() != Some(&outcome) {
            match &outcome {
                Ok(()) => tracing::info!(check = name, "readiness check passes"),
                Err(reason) => tracing::warn!(check = name, reason, "readiness check fails"),
            }
        }
    }

    /// The current report.
    pub fn report(&self) -> ReadinessReport {
        let checks = self.lock();
        let reason = checks
            .iter()
            .find_map(|(name, outcome)| outcome.as_ref().err().map(|why| format!("{name}: {why}")));
        ReadinessReport {
            ready: reason.is_none(),
            reason,
            checks: checks
                .iter()
                .map(|(name, outcome)| {
                    (
                        *name,
                        outcome
                            .as_ref()
                            .err()
                            .cloned()
                            .unwrap_or_else(|| "ok".to_owned()),
                    )
                })
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Result<(), String>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every update is one insert), so a poisoned lock is still usable.
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_every_check_passes() {
        let readiness = Readiness::default();
        assert!(readiness.report().ready, "no checks means ready");
        readiness.register("database");
        readiness.register("docker");
        let report = readiness.report();
        assert!(!report.ready);
        assert_eq!(report.reason.as_deref(), Some("database: not checked yet"));
        readiness.set("database", Ok(()));
        readiness.set("docker", Err("engine unreachable".into()));
        assert_eq!(
            readiness.report().reason.as_deref(),
            Some("docker: engine unreachable")
        );
        readiness.set("docker", Ok(()));
        let report = readiness.report();
        assert!(report.ready);
        assert_eq!(report.checks.get("docker").map(String::as_str), Some("ok"));
    }
}
