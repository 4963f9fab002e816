//! The grading route: `POST /api/v1/units/{id}/submissions` on an edge.
//!
//! A learner's Run (`POST /api/v1/runs`) checks their code against the
//! tests they can see. A *submission* is the run that counts: the edge
//! fetches the unit's latest published version, hidden tests included,
//! from the control plane with the service key
//! (`GET /api/v1/grading/units/{id}?tenant_id=`), runs the learner's files
//! against the visible and the hidden tests together, and records the run
//! like any other (result, submission event in the outbox) naming the unit
//! and the version it was graded against, so the control plane counts it
//! for the learner's progress and unlocks what follows on their path.
//!
//! The hidden tests never reach the browser: the answer, and the stored
//! run that `GET /api/v1/runs/{id}` reads back, carry only their verdicts,
//! under the names `hidden 1`, `hidden 2`, …, without their output; the
//! run's own output is dropped too when it came from a hidden test.
//!
//! The answer waits, up to `edge.submission_confirm_wait_ms`, for the
//! outbox to hand the submission to the control plane, and says whether it
//! did (`recorded`): a learner who reloads their path right after sees the
//! unit unlocked. When the control plane is slow the submission is still
//! kept and reported later; nothing is lost, only the progress lags.
//!
//! A quiz's code question is submitted the same way with `question_id`;
//! the quiz attempt then names the submission's id as that question's
//! answer.
//!
//! The unit is read as the control plane's own typed body
//! (`control_plane::content::body`), so a unit this edge cannot read is a
//! 502, never a silent default.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_plane::content::body::{self as unit_body, Question, UnitBody, UnitKind};
use control_plane::http::extract::ErrorBody;
use control_plane::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use crate::edge::extract::Caller;
use crate::edge::http::{json_rejection, run_error};
use crate::edge::runs::{Runner, UnitRef};
use crate::edge::state::{EdgeState, Grading};
use crate::server::error_response;

/// Longest unit or question id accepted before asking the control plane.
pub const ID_BYTES_MAX: usize = 128;

/// Body of `POST /api/v1/units/{id}/submissions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionRequest {
    /// The learner's files; the first is the entry point.
    pub files: Vec<sandbox::run::SourceFile>,
    /// For a quiz: the id of the code question answered. Absent for an
    /// assignment.
    #[serde(default)]
    pub question_id: Option<String>,
}

/// The parts of a published unit the grader needs, from the control
/// plane's `Unit` JSON (its other fields are not ours to check). The body
/// is read as the kind's typed body once the kind is known to be graded.
#[derive(Debug, Deserialize)]
struct GradingUnit {
    kind: UnitKind,
    version: Option<i64>,
    body: serde_json::Value,
}

/// One test case as the control plane stores it.
type UnitTest = unit_body::TestCase;

/// What a unit asks of a submission: language, tests in the order they
/// run (visible first), how many are hidden, and the limits.
#[derive(Debug)]
struct Task {
    language: String,
    visible: Vec<UnitTest>,
    hidden: Vec<UnitTest>,
    limits: sandbox::run::RequestLimits,
}

/// An answer other than a graded run: status, stable code, message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        error_response(self.status, self.code, &self.message)
    }
}

/// The task of `unit` for `question_id`, or the error to answer with.
fn task(unit: &GradingUnit, question_id: Option<&str>) -> Result<Task, Refusal> {
    let bad =
        |code: ErrorCode, message: String| Refusal::new(StatusCode::BAD_REQUEST, code, message);
    match (unit.kind, question_id) {
        (UnitKind::Assignment, None) => match typed_body(unit)? {
            UnitBody::Assignment(assignment) => Ok(Task {
                language: assignment.language,
                visible: assignment.visible_tests,
                hidden: assignment.hidden_tests,
                limits: sandbox::run::RequestLimits {
                    wall_ms: assignment.limits.wall_ms,
                    memory_mb: assignment.limits.memory_mb,
                },
            }),
            other => Err(corrupt(format!(
                "an assignment with a {:?} body",
                other.kind()
            ))),
        },
        (UnitKind::Assignment, Some(_)) => Err(bad(
            ErrorCode::BadRequest,
            "question_id is only for quiz code questions".into(),
        )),
        (UnitKind::Quiz, None) => Err(bad(
            ErrorCode::BadRequest,
            "a quiz submission names its code question (question_id)".into(),
        )),
        (UnitKind::Quiz, Some(question)) => {
            let quiz = match typed_body(unit)? {
                UnitBody::Quiz(quiz) => quiz,
                other => return Err(corrupt(format!("a quiz with a {:?} body", other.kind()))),
            };
            let found = quiz
                .questions
                .into_iter()
                .find(|q| question_id_of(q) == question)
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        format!("the quiz has no question {question:?}"),
                    )
                })?;
            match found {
                Question::Code {
                    language,
                    tests,
                    hidden_tests,
                    ..
                } => Ok(Task {
                    language,
                    visible: tests,
                    hidden: hidden_tests,
                    limits: sandbox::run::RequestLimits::default(),
                }),
                _ => Err(bad(
                    ErrorCode::NotGradable,
                    format!("question {question:?} is not a code question"),
                )),
            }
        }
        (kind, _) => Err(bad(
            ErrorCode::NotGradable,
            format!(
                "a {} unit takes no submissions; only assignments and quiz code questions",
                kind.as_str()
            ),
        )),
    }
}

/// The refusal when the control plane sent a unit this edge cannot read.
fn corrupt(why: String) -> Refusal {
    tracing::error!(
        reason = why,
        "the control plane sent a unit we cannot grade"
    );
    Refusal::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::BadGateway,
        "the control plane sent a unit this edge cannot read",
    )
}

/// The unit's body as its kind's type.
fn typed_body(unit: &GradingUnit) -> Result<UnitBody, Refusal> {
    UnitBody::parse(unit.kind, unit.body.clone()).map_err(|err| corrupt(err.to_string()))
}

/// The id of any quiz question.
fn question_id_of(question: &Question) -> &str {
    match question {
        Question::SingleChoice { id, .. }
        | Question::MultipleChoice { id, .. }
        | Question::ShortAnswer { id, .. }
        | Question::Code { id, .. } => id,
    }
}

/// The sandbox's comparison for the control plane's; the sandbox's
/// default when the test names none.
fn compare(compare: Option<unit_body::Compare>) -> sandbox::compare::Compare {
    match compare {
        None => sandbox::compare::Compare::default(),
        Some(unit_body::Compare::Exact) => sandbox::compare::Compare::Exact,
        Some(unit_body::Compare::Trimmed) => sandbox::compare::Compare::Trimmed,
        Some(unit_body::Compare::Tokens) => sandbox::compare::Compare::Tokens,
        Some(unit_body::Compare::Float) => sandbox::compare::Compare::Float,
    }
}

/// Whether `id` can name a unit or question at all (checked before it
/// goes into a URL).
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the unit whole from the control plane.
async fn fetch_unit(grading: &Grading, tenant: &str, unit: &str) -> Result<GradingUnit, Refusal> {
    let unavailable = |why: String| {
        tracing::warn!(reason = why, unit, "cannot read a unit to grade");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the unit could not be read from the control plane to grade this; try again",
        )
    };
    if grading.service_key.is_empty() {
        return Err(unavailable(
            "edge.control_plane_service_key is empty".into(),
        ));
    }
    grading.link.check().await.map_err(unavailable)?;
    let mut url = reqwest::Url::parse(&grading.control_plane_url)
        .map_err(|err| unavailable(format!("edge.control_plane_url: {err}")))?;
    url.path_segments_mut()
        .map_err(|()| unavailable("edge.control_plane_url cannot take a path".into()))?
        .pop_if_empty()
        .extend(["api", "v1", "grading", "units", unit]);
    url.query_pairs_mut().append_pair("tenant_id", tenant);
    let answer = grading
        .client
        .get(url)
        .bearer_auth(&grading.service_key)
        .send()
        .await
        .map_err(|err| unavailable(err.to_string()))?;
    let status = answer.status();
    if status.is_success() {
        return answer
            .json::<GradingUnit>()
            .await
            .map_err(|err| unavailable(format!("unit body: {err}")));
    }
    // An answer that is not our error body (a proxy's page, a newer code)
    // still has its status.
    let (code, message) = match answer.json::<ErrorBody<'static>>().await {
        Ok(body) => (Some(body.error.code), body.error.message.into_owned()),
        Err(_) => (None, String::new()),
    };
    match status.as_u16() {
        // The unit is not there for this learner, or not published yet:
        // the control plane's words are the learner's answer.
        404 | 409 => Err(Refusal::new(
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::NOT_FOUND),
            code.unwrap_or(if status.as_u16() == 404 {
                ErrorCode::NotFound
            } else {
                ErrorCode::Conflict
            }),
            message,
        )),
        _ => Err(unavailable(format!(
            "HTTP {status}: {}: {message}",
            code.map_or("unknown", ErrorCode::as_str)
        ))),
    }
}

/// The sandbox request for `files` against `task`.
fn run_request(task: &Task, files: Vec<sandbox::run::SourceFile>) -> sandbox::RunRequest {
    let case = |test: &UnitTest| sandbox::run::TestCase {
        name: test.name.clone(),
        stdin: test.stdin.clone(),
        expected_stdout: test.expected_stdout.clone(),
        compare: compare(test.compare),
        tolerance: None,
    };
    sandbox::RunRequest {
        language: task.language.clone(),
        files,
        stdin: String::new(),
        tests: task.visible.iter().chain(&task.hidden).map(case).collect(),
        limits: task.limits.clone(),
    }
}

/// Hides what the hidden tests are: their names and their output. The
/// run's own output is the first failing test's (else the first's); it goes
/// too when that test is hidden.
fn redact(result: &mut sandbox::RunResult, visible: usize) {
    let shown_from = result
        .tests
        .iter()
        .position(|t| t.status != sandbox::Verdict::Accepted)
        .unwrap_or(0);
    if shown_from >= visible && !result.tests.is_empty() {
        result.stdout.clear();
        result.stderr.clear();
    }
    for (n, test) in result.tests.iter_mut().skip(visible).enumerate() {
        test.name = format!("hidden {}", n + 1);
        test.stdout.clear();
    }
}

/// `POST /api/v1/units/{id}/submissions`: grades the learner's files
/// against the unit's visible and hidden tests and records the submission.
pub(crate) async fn submit(
    State(state): State<EdgeState>,
    Path(unit_id): Path<String>,
    Caller(claims): Caller,
    body: Result<Json<SubmissionRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(&rejection),
    };
    if !plausible_id(&unit_id) {
        return error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such unit");
    }
    if let Some(question) = &request.question_id {
        if !plausible_id(question) {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &format!("question_id must be 1 to {ID_BYTES_MAX} letters, digits, - or _"),
            );
        }
    }
    let runner = Runner {
        user_id: &claims.sub,
        tenant_id: &claims.tid,
    };
    if let Err(err) = state.runs.take_budget(runner) {
        return run_error(&err);
    }
    let sandbox = match state.runs.sandbox() {
        Ok(sandbox) => sandbox,
        Err(err) => return run_error(&err),
    };
    let unit = match fetch_unit(&state.grading, &claims.tid, &unit_id).await {
        Ok(unit) => unit,
        Err(refusal) => return refusal.into_response(),
    };
    let task = match task(&unit, request.question_id.as_deref()) {
        Ok(task) => task,
        Err(refusal) => return refusal.into_response(),
    };
    let run = run_request(&task, request.files);
    let mut result = match sandbox.run(&run).await {
        Ok(result) => result,
        Err(err) => return run_error(&err.into()),
    };
    redact(&mut result, task.visible.len());
    let unit_ref = UnitRef {
        id: &unit_id,
        version: unit.version,
        question: request.question_id.as_deref(),
    };
    let mut body = match state
        .runs
        .finish(runner, &run.language, &result, Some(unit_ref))
        .await
    {
        Ok(body) => body,
        Err(err) => return run_error(&err),
    };
    let recorded = state
        .run_store
        .outbox()
        .taken(result.id.as_bytes(), state.grading.confirm_wait)
        .await;
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("hidden_tests".into(), json!(task.hidden.len()));
        if let Some(question) = &request.question_id {
            map.insert("question_id".into(), json!(question));
        }
        map.insert("recorded".into(), json!(recorded));
    }
    (StatusCode::CREATED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(statuses: &[sandbox::Verdict]) -> sandbox::RunResult {
        let mut result: sandbox::RunResult = serde_json::from_value(json!({
            "id": "r", "status": "accepted", "limit": null, "exit_code": 0, "signal": null,
            "stdout": "TOP-OUT", "stderr": "TOP-ERR", "compile_output": "", "time_ms": 1.0,
            "cpu_ms": 1.0, "memory_kb": null, "abuse": null, "hot": true, "tests": [],
            "stages_ms": {"validate": 0.0, "schedule": 0.0, "execute": 0.0, "capture": 0.0}
        }))
        .expect("result");
        result.tests = statuses
            .iter()
            .enumerate()
            .map(|(i, &status)| sandbox::run::TestResult {
                name: format!("SECRET-{i}"),
                status,
                stdout: format!("OUT-{i}"),
                time_ms: 1.0,
            })
            .collect();
        result
    }

    #[test]
    fn hidden_tests_keep_only_their_verdicts() {
        use sandbox::Verdict::{Accepted, WrongAnswer};
        // A visible test failed first: its output is the learner's to see.
        let mut visible_failed = result(&[Accepted, WrongAnswer, WrongAnswer]);
        redact(&mut visible_failed, 2);
        assert_eq!(visible_failed.stdout, "TOP-OUT");
        assert_eq!(visible_failed.tests[1].stdout, "OUT-1");
        assert_eq!(visible_failed.tests[2].name, "hidden 1");
        assert_eq!(visible_failed.tests[2].status, WrongAnswer);
        assert_eq!(visible_failed.tests[2].stdout, "");
        // A hidden test failed first: the run's output was its output.
        let mut hidden_failed = result(&[Accepted, WrongAnswer]);
        redact(&mut hidden_failed, 1);
        assert_eq!(
            (hidden_failed.stdout.as_str(), hidden_failed.stderr.as_str()),
            ("", "")
        );
        // No visible tests at all: nothing of the first run shows.
        let mut only_hidden = result(&[Accepted, Accepted]);
        redact(&mut only_hidden, 0);
        assert_eq!(only_hidden.stdout, "");
        let text = serde_json::to_string(&only_hidden).expect("json");
        assert!(!text.contains("SECRET") && !text.contains("OUT-"), "{text}");
    }

    #[test]
    fn only_assignments_and_code_questions_are_graded() {
        let unit = |kind: UnitKind, body: serde_json::Value| GradingUnit {
            kind,
            version: Some(1),
            body,
        };
        let case = json!({"name": "t", "stdin": "1", "expected_stdout": "2"});
        let assignment = unit(
            UnitKind::Assignment,
            json!({"language": "python", "visible_tests": [case], "hidden_tests": [case, case],
                   "limits": {"wall_ms": 2000}}),
        );
        let graded = task(&assignment, None).expect("assignment");
        assert_eq!((graded.visible.len(), graded.hidden.len()), (1, 2));
        assert_eq!(graded.limits.wall_ms, Some(2000));
        let status = |r: Result<Task, Refusal>| r.map(|_| ()).expect_err("refused").status;
        assert_eq!(status(task(&assignment, Some("q1"))), 400);
        let quiz = unit(
            UnitKind::Quiz,
            json!({"questions": [
                {"type": "single_choice", "id": "q1", "prompt": "?", "choices": ["a", "b"], "answer": 0},
                {"type": "code", "id": "q2", "prompt": "?", "language": "python", "tests": [case],
                 "hidden_tests": [case]}]}),
        );
        let code = task(&quiz, Some("q2")).expect("code question");
        assert_eq!((code.language.as_str(), code.hidden.len()), ("python", 1));
        assert_eq!(status(task(&quiz, Some("q1"))), 400);
        assert_eq!(status(task(&quiz, Some("q9"))), 404);
        assert_eq!(status(task(&quiz, None)), 400);
        assert_eq!(status(task(&unit(UnitKind::Lesson, json!({})), None)), 400);
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        assert!(plausible_id("019a-unit_1"));
        for bad in ["", "../x", "a/b", "a?b", &"x".repeat(ID_BYTES_MAX + 1)] {
            assert!(!plausible_id(bad), "{bad:?}");
        }
    }
}
