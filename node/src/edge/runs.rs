//! The run service: what happens around a sandbox run on an edge, whichever
//! way it arrived (`POST /api/v1/runs`, a graded submission, a live class's
//! submission). It checks the run budget (the outbox must have room for the
//! report, and the user and the tenant must have runs left), and records a
//! finished run (result, submission report, abuse event) before anyone is
//! told its verdict.
//!
//! *Architecture Invariant*: no HTTP here. The service takes who runs
//! ([`Runner`]: user and tenant, not a token) and answers with [`RunError`];
//! the HTTP routes map that to status codes and `control_plane::ErrorCode`s
//! (`edge::http`), the live gateway to `LiveErrorCode`s (`edge::live::submit`).

use std::sync::Arc;

use control_plane::submissions::SubmissionReport;
use serde_json::json;

use crate::rate_limit::{RateLimiter, Refusal};
use crate::store::runs::{AbuseEvent, RunRecord, RunStore};
use crate::store::{now_rfc3339, StoreError};

/// Who a run is for: what the budget and the records need, taken from a
/// verified access token or a verified live-class ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runner<'a> {
    /// The user who runs.
    pub(crate) user_id: &'a str,
    /// Their tenant (organisation).
    pub(crate) tenant_id: &'a str,
}

/// The unit a run counts for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitRef<'a> {
    /// Unit id.
    pub(crate) id: &'a str,
    /// The published version graded against, when known.
    pub(crate) version: Option<i64>,
    /// The quiz code question answered, for a quiz submission: the control
    /// plane lets a quiz attempt cite the submission for that question only.
    pub(crate) question: Option<&'a str>,
}

/// Why a run was not started, not run or not recorded. Expected refusals
/// (a spent budget, a bad request) are apart from failures (the sandbox or
/// the store failed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The submission outbox is full: nothing may be run that could not be
    /// reported.
    #[error(
        "this edge holds {pending} submission reports the control plane has not taken yet \
         (edge.outbox_events_max); run again shortly or on another region"
    )]
    OutboxFull {
        /// Reports waiting in the outbox.
        pending: usize,
    },
    /// The user's or the tenant's run budget is spent for now.
    #[error("{what}; retry in {retry_after_s} s ({setting})")]
    RateLimited {
        /// Whose budget, in words.
        what: &'static str,
        /// The setting that bounds it.
        setting: &'static str,
        /// Whole seconds until a run is allowed again.
        retry_after_s: u64,
    },
    /// The limiter tracks as many users or tenants as it may.
    #[error("this edge is tracking too many {tracked}; retry shortly")]
    TooManyTracked {
        /// What is tracked, with its setting.
        tracked: &'static str,
    },
    /// The sandbox has not started yet.
    #[error("the sandbox is still starting; see /readyz")]
    SandboxStarting,
    /// The sandbox refused the request (language, file names, shape).
    #[error("{message}")]
    Refused {
        /// Why, as the sandbox classifies it.
        refusal: sandbox::Refusal,
        /// The sandbox's words, for the client.
        message: String,
    },
    /// The sandbox failed to run it.
    #[error("the sandbox could not run this; try again")]
    SandboxFailed(#[source] sandbox::SandboxError),
    /// The run finished but its record could not be written: an answer we
    /// cannot keep must not be given.
    #[error("the run finished but could not be recorded; run it again")]
    NotRecorded(#[source] StoreError),
}

impl From<sandbox::SandboxError> for RunError {
    fn from(err: sandbox::SandboxError) -> Self {
        match err {
            sandbox::SandboxError::Rejected { refusal, message } => {
                Self::Refused { refusal, message }
            }
            other => Self::SandboxFailed(other),
        }
    }
}

/// The run service of one edge; cheap to clone.
#[derive(Clone)]
pub(crate) struct RunService {
    /// This edge's region, named in every result and report.
    pub(crate) region: String,
    /// Results, submission reports and abuse events.
    pub(crate) store: Arc<RunStore>,
    /// Set once the image is built and the pools are warming.
    pub(crate) sandbox: Arc<tokio::sync::OnceCell<sandbox::Sandbox>>,
    /// Per-user budget of code runs.
    pub(crate) user_limiter: Arc<RateLimiter>,
    /// Per-tenant budget of code runs.
    pub(crate) tenant_limiter: Arc<RateLimiter>,
    /// Reports still to drop on purpose (`edge.test_drop_reports`, debug
    /// builds only): how the chaos checker's test makes a real loss.
    pub(crate) drop_reports: Arc<std::sync::atomic::AtomicU32>,
}

impl RunService {
    /// Whether the test switch wants this run's report dropped (and counts
    /// it off).
    fn drop_this_report(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.drop_reports
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The sandbox, once it has started.
    ///
    /// # Errors
    /// [`RunError::SandboxStarting`] before that.
    pub(crate) fn sandbox(&self) -> Result<sandbox::Sandbox, RunError> {
        self.sandbox.get().cloned().ok_or(RunError::SandboxStarting)
    }

    /// Takes one run from `who`'s budget: refused when the outbox is full,
    /// then when the user's, then the tenant's budget is spent.
    ///
    /// # Errors
    /// [`RunError::OutboxFull`], [`RunError::RateLimited`] or
    /// [`RunError::TooManyTracked`].
    pub(crate) fn take_budget(&self, who: Runner<'_>) -> Result<(), RunError> {
        if self.store.outbox_full() {
            return Err(RunError::OutboxFull {
                pending: self.store.outbox().len(),
            });
        }
        let now = tokio::time::Instant::now();
        let checks = [
            (
                &self.user_limiter,
                who.user_id,
                "too many runs",
                "edge.runs_per_user_per_minute_max",
                "users (edge.rate_limited_users_max)",
            ),
            (
                &self.tenant_limiter,
                who.tenant_id,
                "too many runs from your organisation",
                "edge.runs_per_tenant_per_minute_max",
                "tenants (edge.rate_limited_tenants_max)",
            ),
        ];
        for (limiter, key, what, setting, tracked) in checks {
            match limiter.check(key, now) {
                Ok(()) => {}
                Err(Refusal::RetryAfter(wait)) => {
                    return Err(RunError::RateLimited {
                        what,
                        setting,
                        retry_after_s: wait.as_secs().saturating_add(1),
                    });
                }
                Err(Refusal::TooManyKeys) => return Err(RunError::TooManyTracked { tracked }),
            }
        }
        Ok(())
    }

    /// Records a finished run (result, submission report, abuse event) in
    /// the edge's store and returns the body to answer with. `unit` names
    /// the unit the run counts for (a live class's unit, or the unit a
    /// graded submission was made against, with its version).
    ///
    /// # Errors
    /// [`RunError::NotRecorded`] when the store fails: the answer must not
    /// be given. Cancel safety: the record is written in one transaction,
    /// so a cancelled call leaves the run recorded whole or not at all.
    pub(crate) async fn finish(
        &self,
        who: Runner<'_>,
        language: &str,
        result: &sandbox::RunResult,
        unit: Option<UnitRef<'_>>,
    ) -> Result<serde_json::Value, RunError> {
        tracing::info!(
            run_id = result.id,
            user_id = who.user_id,
            tenant_id = who.tenant_id,
            language,
            status = result.status.as_str(),
            hot = result.hot,
            "code run"
        );
        let mut body = serde_json::to_value(result).map_err(|err| {
            RunError::NotRecorded(StoreError::Corrupt {
                key: "runs",
                reason: err.to_string(),
            })
        })?;
        if let serde_json::Value::Object(map) = &mut body {
            map.insert("region".into(), json!(self.region));
            if let Some(unit) = &unit {
                map.insert("unit_id".into(), json!(unit.id));
                if let Some(version) = unit.version {
                    map.insert("unit_version".into(), json!(version));
                }
            }
        }
        let finished_at = now_rfc3339();
        let record = RunRecord {
            id: result.id.clone(),
            user_id: who.user_id.to_owned(),
            tenant_id: who.tenant_id.to_owned(),
            language: language.to_owned(),
            finished_at: finished_at.clone(),
            result: body.clone(),
        };
        let event = SubmissionReport {
            kind: "submission".into(),
            submission_id: result.id.clone(),
            user_id: who.user_id.to_owned(),
            tenant_id: who.tenant_id.to_owned(),
            language: language.to_owned(),
            status: result.status.as_str().to_owned(),
            region: self.region.clone(),
            finished_at: finished_at.clone(),
            unit_id: unit.as_ref().map(|u| u.id.to_owned()),
            unit_version: unit.as_ref().and_then(|u| u.version),
            question_id: unit.as_ref().and_then(|u| u.question.map(str::to_owned)),
            tests_passed: (!result.tests.is_empty()).then(|| tests_passed(result)),
            tests_total: (!result.tests.is_empty())
                .then(|| u32::try_from(result.tests.len()).unwrap_or(u32::MAX)),
        };
        if let Some(kind) = result.abuse {
            tracing::warn!(
                run_id = result.id,
                user_id = who.user_id,
                tenant_id = who.tenant_id,
                language,
                abuse = kind.as_str(),
                "abuse monitor ended a run"
            );
            let abuse = AbuseEvent {
                id: uuid::Uuid::now_v7().to_string(),
                run_id: result.id.clone(),
                user_id: who.user_id.to_owned(),
                tenant_id: who.tenant_id.to_owned(),
                language: language.to_owned(),
                kind: kind.as_str().to_owned(),
                at: finished_at,
            };
            if let Err(err) = self.store.record_abuse(&abuse) {
                tracing::error!(error = %err, "cannot record an abuse event");
            }
        }
        if self.drop_this_report() {
            tracing::warn!(
                run_id = result.id,
                "edge.test_drop_reports: this run is answered, its report dropped on purpose"
            );
            return Ok(body);
        }
        if let Err(err) = self.store.record(&record, &event).await {
            tracing::error!(error = %err, run_id = result.id, "cannot record a run");
            return Err(RunError::NotRecorded(err));
        }
        Ok(body)
    }
}

/// Test cases a run passed.
pub(crate) fn tests_passed(result: &sandbox::RunResult) -> u32 {
    u32::try_from(
        result
            .tests
            .iter()
            .filter(|t| t.status == sandbox::Verdict::Accepted)
            .count(),
    )
    .unwrap_or(u32::MAX)
}
