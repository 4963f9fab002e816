//! A learner's submission in a live class: checked against the class (role,
//! size, assignment, language), started on this node's sandbox through the
//! run service, and reported to the class when it finishes. The run
//! service's refusals become the protocol's [`LiveErrorCode`]s here; no HTTP
//! answer is built and no access token is made up: the service is given the
//! ticket's user and tenant.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use actors::live::{
    classroom::Input,
    hub::LiveNode,
    protocol::{self, ClassRole, LiveErrorCode},
};

use crate::edge::live::ticket::Ticket;
use crate::edge::runs::{tests_passed, RunError, RunService, Runner, UnitRef};

/// The code and message a live client gets for a run the service refused.
pub(crate) fn live_error(err: &RunError) -> (LiveErrorCode, String) {
    match err {
        RunError::SandboxStarting => (
            LiveErrorCode::SandboxUnavailable,
            "the sandbox is still starting".into(),
        ),
        RunError::OutboxFull { .. } => (
            LiveErrorCode::OutboxFull,
            "this edge cannot report more submissions until the control plane takes its backlog; try again shortly".into(),
        ),
        RunError::RateLimited { .. } | RunError::TooManyTracked { .. } => (
            LiveErrorCode::RateLimited,
            "too many runs; wait a moment".into(),
        ),
        RunError::Refused {
            refusal: sandbox::Refusal::UnknownLanguage,
            message,
        } => (LiveErrorCode::UnknownLanguage, message.clone()),
        RunError::Refused { message, .. } => (LiveErrorCode::BadMessage, message.clone()),
        RunError::SandboxFailed(_) | RunError::NotRecorded(_) => {
            (LiveErrorCode::SandboxUnavailable, err.to_string())
        }
    }
}

/// What one session's submission needs: the class's node, the run
/// service, the session and who it is.
pub(crate) struct Submitter<'a> {
    /// This node's live side, to reach the class.
    pub(crate) node: &'a Arc<LiveNode>,
    /// Budgets and records of runs.
    pub(crate) runs: &'a RunService,
    /// The ticket the session joined with.
    pub(crate) ticket: &'a Ticket,
    /// The session's id in the registry.
    pub(crate) session_id: u64,
    /// True while a submission of this session runs.
    pub(crate) running: &'a Arc<AtomicBool>,
}

impl Submitter<'_> {
    /// Starts a learner's submission on this node's sandbox; the class
    /// hears `SubmissionStarted` now and `SubmissionFinished` when it ends.
    ///
    /// # Errors
    /// The code and message of the error frame to answer with.
    pub(crate) fn submit(
        &self,
        assignment_id: &str,
        source: String,
    ) -> Result<(), (LiveErrorCode, String)> {
        let who = &self.ticket.who;
        if who.role != ClassRole::Learner {
            return Err((LiveErrorCode::Forbidden, "only learners submit".into()));
        }
        if source.len() > protocol::SOURCE_BYTES_MAX {
            return Err((
                LiveErrorCode::MessageTooLarge,
                format!(
                    "a submission has at most {} bytes",
                    protocol::SOURCE_BYTES_MAX
                ),
            ));
        }
        let (assignment, ended) = self
            .node
            .registry()
            .assignment(&self.ticket.class_id, assignment_id);
        if ended {
            return Err((LiveErrorCode::ClassEnded, "the class has ended".into()));
        }
        let assignment = assignment.ok_or_else(|| {
            (
                LiveErrorCode::UnknownAssignment,
                format!("no assignment {assignment_id:?} in this class"),
            )
        })?;
        let Some(language) = sandbox::languages::find(&assignment.spec.language) else {
            return Err((
                LiveErrorCode::UnknownLanguage,
                format!("{:?} is not a sandbox language", assignment.spec.language),
            ));
        };
        let sandbox = self.runs.sandbox().map_err(|err| live_error(&err))?;
        let runner = Runner {
            user_id: &who.user_id,
            tenant_id: &self.ticket.tenant_id,
        };
        self.runs
            .take_budget(runner)
            .map_err(|err| live_error(&err))?;
        if self.running.swap(true, Ordering::AcqRel) {
            return Err((
                LiveErrorCode::SubmissionInProgress,
                "your previous submission is still running".into(),
            ));
        }
        let request = sandbox::RunRequest {
            language: language.id.to_owned(),
            files: vec![sandbox::run::SourceFile {
                name: language.file_name.to_owned(),
                content: source,
            }],
            stdin: String::new(),
            tests: assignment
                .spec
                .tests
                .iter()
                .map(|test| sandbox::run::TestCase {
                    name: test.name.clone(),
                    stdin: test.stdin.clone(),
                    expected_stdout: test.expected_stdout.clone(),
                    compare: sandbox::compare::Compare::Trimmed,
                    tolerance: None,
                })
                .collect(),
            limits: sandbox::run::RequestLimits::default(),
        };
        let node = self.node.clone();
        let runs = self.runs.clone();
        let class_id = self.ticket.class_id.clone();
        let tenant_id = self.ticket.tenant_id.clone();
        let session_id = self.session_id;
        let who = who.clone();
        let running = self.running.clone();
        let assignment_id = assignment_id.to_owned();
        let _sent = node.send(
            &class_id,
            session_id,
            &who,
            Input::SubmissionStarted {
                assignment_id: assignment_id.clone(),
            },
        );
        tokio::spawn(async move {
            let outcome = sandbox.run(&request).await;
            let finished = match outcome {
                Ok(result) => {
                    let runner = Runner {
                        user_id: &who.user_id,
                        tenant_id: &tenant_id,
                    };
                    let unit = UnitRef {
                        id: &class_id,
                        version: None,
                        question: None,
                    };
                    let recorded = runs
                        .finish(runner, &request.language, &result, Some(unit))
                        .await;
                    if recorded.is_err() {
                        tracing::error!(
                            run_id = result.id,
                            "a live submission ran but was not recorded"
                        );
                    }
                    let total = u32::try_from(result.tests.len()).unwrap_or(u32::MAX);
                    Input::SubmissionFinished {
                        assignment_id,
                        run_id: result.id.clone(),
                        verdict: result.status.as_str().to_owned(),
                        passed: tests_passed(&result),
                        total,
                        region: runs.region.clone(),
                    }
                }
                Err(err) => Input::SubmissionFinished {
                    assignment_id,
                    run_id: String::new(),
                    verdict: "internal_error".into(),
                    passed: 0,
                    total: 0,
                    region: format!("{}: {err}", runs.region),
                },
            };
            running.store(false, Ordering::Release);
            let _sent = node.send(&class_id, session_id, &who, finished);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_refusals_become_live_codes() {
        let check = |err: RunError, code: LiveErrorCode| assert_eq!(live_error(&err).0, code);
        check(RunError::SandboxStarting, LiveErrorCode::SandboxUnavailable);
        check(
            RunError::OutboxFull { pending: 1 },
            LiveErrorCode::OutboxFull,
        );
        check(
            RunError::RateLimited {
                what: "too many runs",
                setting: "edge.runs_per_user_per_minute_max",
                retry_after_s: 1,
            },
            LiveErrorCode::RateLimited,
        );
        check(
            RunError::TooManyTracked { tracked: "users" },
            LiveErrorCode::RateLimited,
        );
        check(
            sandbox::SandboxError::rejected(sandbox::Refusal::UnknownLanguage, "no").into(),
            LiveErrorCode::UnknownLanguage,
        );
    }
}
