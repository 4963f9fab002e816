//! Courses, modules and units through the real router on both engines:
//! every unit kind round-trips through drafts and published versions,
//! learners never see hidden tests or answer keys, tenants are isolated on
//! every endpoint, roles are checked, bad input gets a clear 4xx with a
//! code, and each content limit is tested at its edge.

use axum::http::Method;
use control_plane::content::{UnitBody, UnitKind};
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use serde_json::{json, Value};

use crate::databases::{Engine, TestDb, ENGINES};

/// The router, called in process with raw string bodies (so malformed JSON
/// can be sent too).
pub(crate) struct Api {
    router: axum::Router,
}

impl Api {
    pub(crate) fn new(cp: &ControlPlane) -> Self {
        Self {
            router: control_plane::http::router(cp.clone()),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let answer = crate::router::call(
            &self.router,
            method,
            path,
            token,
            &[],
            body.map(str::to_owned),
        )
        .await;
        (answer.status, answer.body)
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Value) {
        self.call(method, path, Some(token), Some(&body.to_string()))
            .await
    }

    /// Sends and insists on `status`, answering the body.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let text = body.map(Value::to_string);
        let answer = self
            .call(method.clone(), path, Some(token), text.as_deref())
            .await;
        assert_eq!(answer.0, status, "{method} {path}: {}", answer.1);
        answer.1
    }
}

/// (method, path, body, status for A's learner, statuses for B's learner
/// and B's instructor).
type IsolationCase = (Method, String, Option<Value>, u16, (u16, u16));

/// (method, path, raw body, expected status and code).
type BadInput = (Method, String, Option<String>, (u16, &'static str));

pub(crate) fn code(answer: &(u16, Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["error"]["code"].as_str().unwrap_or("-").to_owned(),
    )
}

pub(crate) async fn open(
    engine: Engine,
    edit: impl FnOnce(&mut ControlPlaneConfig),
) -> (TestDb, ControlPlane, Api) {
    let mut db = TestDb::new(engine).await;
    db.config.ledger_expiry_sweep_interval_ms = 0;
    edit(&mut db.config);
    let cp = db.open().await;
    let api = Api {
        router: control_plane::http::router(cp.clone()),
    };
    (db, cp, api)
}

/// A tenant and a token per role in it; the learner is a real member (so
/// results can be recorded for them), the others need not be.
pub(crate) struct Tenant {
    pub id: String,
    pub learner_id: String,
    pub learner: String,
    pub instructor: String,
    pub operator: String,
}

pub(crate) async fn tenant(cp: &ControlPlane, slug: &str) -> Tenant {
    let id = identity::ensure_tenant(cp.db(), slug, slug)
        .await
        .expect("tenant");
    let member = identity::ensure_member(
        cp.db(),
        &id,
        &format!("learner@{slug}.test"),
        "Learner",
        "a-long-password",
        Role::Learner,
    )
    .await
    .expect("learner");
    let token = |user: &str, role: Role| {
        tokens::issue(cp.keys(), user, &id, role, "x@y.test", 600).expect("token")
    };
    Tenant {
        learner: token(&member.user_id, Role::Learner),
        instructor: token(&format!("instructor-{slug}"), Role::Instructor),
        operator: token(&format!("operator-{slug}"), Role::Operator),
        learner_id: member.user_id,
        id,
    }
}

/// Creates a course with one module; answers (course id, module id).
pub(crate) async fn course(api: &Api, token: &str, title: &str) -> (String, String) {
    let course = api
        .ok(
            Method::POST,
            "/api/v1/courses",
            token,
            Some(&json!({"title": title, "summary": "about it"})),
            201,
        )
        .await;
    let course_id = course["id"].as_str().expect("id").to_owned();
    let module = api
        .ok(
            Method::POST,
            &format!("/api/v1/courses/{course_id}/modules"),
            token,
            Some(&json!({"title": "Module 1"})),
            201,
        )
        .await;
    (course_id, module["id"].as_str().expect("id").to_owned())
}

pub(crate) fn lesson() -> Value {
    json!({"markdown": "# Loops\nRun the snippet.", "snippets": [{"language": "python", "code": "for i in range(3): print(i)"}]})
}

pub(crate) fn quiz() -> Value {
    json!({
        "questions": [
            {"type": "single_choice", "id": "q1", "prompt": "2 + 2?", "choices": ["3", "4"], "answer": 1},
            {"type": "multiple_choice", "id": "q2", "prompt": "Primes?", "choices": ["2", "4", "5"], "answers": [0, 2]},
            {"type": "short_answer", "id": "q3", "prompt": "Capital of France?", "accepted": ["Paris"]},
            {"type": "code", "id": "q4", "prompt": "Print hi", "language": "python",
             "tests": [{"name": "visible", "expected_stdout": "hi\n"}],
             "hidden_tests": [{"name": "HIDDEN-q4", "stdin": "HIDDEN-stdin", "expected_stdout": "HIDDEN-out"}]}
        ],
        "settings": {"shuffle": true, "attempts_max": 3, "time_limit_s": 600}
    })
}

pub(crate) fn assignment() -> Value {
    json!({
        "language": "python",
        "starter_files": [{"name": "main.py", "content": "print()"}],
        "visible_tests": [{"name": "one", "stdin": "1", "expected_stdout": "1\n"}],
        "hidden_tests": [{"name": "HIDDEN-a", "stdin": "HIDDEN-in", "expected_stdout": "HIDDEN-out", "compare": "trimmed"}],
        "limits": {"wall_ms": 2000, "memory_mb": 128},
        "reference_solution": [{"name": "main.py", "content": "print('HIDDEN-reference')"}]
    })
}

pub(crate) fn live_classroom() -> Value {
    json!({"schedule": {"starts_at": "2026-12-01T17:00:00Z", "duration_minutes": 60}, "cohort": "spring-2027", "region": "eu-west"})
}

/// The body as the server stores it (defaults filled in), and as a learner
/// sees it.
fn normalised(kind: UnitKind, body: &Value) -> (Value, Value) {
    let parsed = UnitBody::parse(kind, body.clone()).expect("sample body");
    (
        parsed.to_json().expect("json"),
        parsed.learner_view().to_json().expect("json"),
    )
}

/// Answer keys a learner must never get.
fn assert_no_secrets(what: &str, value: &Value) {
    let text = value.to_string();
    assert!(
        !text.contains("HIDDEN"),
        "{what} leaks hidden tests: {text}"
    );
    for key in [
        "\"answer\"",
        "\"answers\"",
        "\"accepted\"",
        "hidden_tests",
        "reference_solution",
    ] {
        assert!(!text.contains(key), "{what} leaks {key}: {text}");
    }
}

#[tokio::test]
async fn every_unit_kind_round_trips_through_drafts_and_versions() {
    for engine in ENGINES {
        let (db, _cp, api) = open(engine, |_| {}).await;
        let t = tenant(&_cp, "acme").await;
        let (course_id, module_id) = course(&api, &t.instructor, "Python").await;
        let samples = [
            (UnitKind::Lesson, lesson()),
            (UnitKind::Quiz, quiz()),
            (UnitKind::Assignment, assignment()),
            (UnitKind::LiveClassroom, live_classroom()),
        ];
        let units_path = format!("/api/v1/modules/{module_id}/units");
        for (kind, body) in samples {
            let what = format!("{engine:?} {}", kind.as_str());
            let (stored, learner_body) = normalised(kind, &body);
            let created = api
                .ok(
                    Method::POST,
                    &units_path,
                    &t.instructor,
                    Some(&json!({"kind": kind, "title": "First", "body": body})),
                    201,
                )
                .await;
            let id = created["id"].as_str().expect("id").to_owned();
            let unit = format!("/api/v1/units/{id}");
            assert_eq!(
                (
                    &created["view"],
                    &created["version"],
                    &created["published_version"]
                ),
                (&json!("draft"), &Value::Null, &Value::Null),
                "{what}"
            );
            assert_eq!(created["body"], stored, "{what}");
            assert_eq!(created["course_id"], json!(course_id));

            // Not published yet: learners get nothing, authors the draft.
            assert_eq!(
                code(&api.get(&unit, &t.learner).await),
                (404, "not_published".into()),
                "{what}"
            );
            let draft = api
                .ok(
                    Method::GET,
                    &format!("{unit}?view=draft"),
                    &t.instructor,
                    None,
                    200,
                )
                .await;
            assert_eq!(draft["body"], stored, "{what}");

            // Version 1.
            let published = api
                .ok(
                    Method::POST,
                    &format!("{unit}/publish"),
                    &t.instructor,
                    None,
                    201,
                )
                .await;
            assert_eq!(
                (&published["created"], &published["unit"]["version"]),
                (&json!(true), &json!(1)),
                "{what}"
            );
            let seen = api.ok(Method::GET, &unit, &t.learner, None, 200).await;
            assert_eq!(
                (&seen["view"], &seen["version"], &seen["title"]),
                (&json!("learner"), &json!(1), &json!("First")),
                "{what}"
            );
            assert_eq!(seen["body"], learner_body, "{what}");
            assert_no_secrets(&what, &seen);
            let full = api
                .ok(
                    Method::GET,
                    &format!("{unit}?view=published"),
                    &t.instructor,
                    None,
                    200,
                )
                .await;
            assert_eq!(full["body"], stored, "{what}: authors see everything");

            // A new draft does not reach learners until it is published.
            let mut edited = stored.clone();
            match kind {
                UnitKind::Lesson => edited["markdown"] = json!("# Loops, revised"),
                UnitKind::Quiz => edited["settings"]["attempts_max"] = json!(5),
                UnitKind::Assignment => edited["limits"]["wall_ms"] = json!(3000),
                UnitKind::LiveClassroom => edited["cohort"] = json!("autumn-2027"),
            }
            let (edited_stored, edited_learner) = normalised(kind, &edited);
            let put = api
                .ok(
                    Method::PUT,
                    &unit,
                    &t.instructor,
                    Some(&json!({"title": "Second", "body": edited})),
                    200,
                )
                .await;
            assert_eq!(
                (&put["body"], &put["published_version"]),
                (&edited_stored, &json!(1))
            );
            let seen = api.ok(Method::GET, &unit, &t.learner, None, 200).await;
            assert_eq!(
                (&seen["version"], &seen["title"], &seen["body"]),
                (&json!(1), &json!("First"), &learner_body),
                "{what}: learners still see version 1"
            );
            let published = api
                .ok(
                    Method::POST,
                    &format!("{unit}/publish"),
                    &t.operator,
                    None,
                    201,
                )
                .await;
            assert_eq!(published["unit"]["version"], json!(2), "{what}");
            // Publishing an unchanged draft makes no new version.
            let again = api
                .ok(
                    Method::POST,
                    &format!("{unit}/publish"),
                    &t.instructor,
                    None,
                    200,
                )
                .await;
            assert_eq!(
                (&again["created"], &again["unit"]["version"]),
                (&json!(false), &json!(2))
            );
            let seen = api.ok(Method::GET, &unit, &t.learner, None, 200).await;
            assert_eq!(
                (&seen["version"], &seen["title"], &seen["body"]),
                (&json!(2), &json!("Second"), &edited_learner),
                "{what}"
            );
            assert_no_secrets(&what, &seen);
            if kind == UnitKind::Assignment {
                assert_eq!(seen["body"]["visible_tests"][0]["name"], "one");
                assert_eq!(full["body"]["hidden_tests"][0]["name"], "HIDDEN-a");
            }
            if kind == UnitKind::Quiz {
                assert_eq!(seen["body"]["questions"][3]["tests"][0]["name"], "visible");
                assert_eq!(seen["body"]["questions"][0]["choices"], json!(["3", "4"]));
            }
        }

        // A draft-only unit is listed for authors, not for learners.
        api.ok(
            Method::POST,
            &units_path,
            &t.instructor,
            Some(&json!({"kind": "lesson", "title": "Unpublished", "body": lesson()})),
            201,
        )
        .await;
        let for_author = api
            .ok(Method::GET, &units_path, &t.instructor, None, 200)
            .await;
        let for_learner = api
            .ok(Method::GET, &units_path, &t.learner, None, 200)
            .await;
        let titles = |page: &Value| -> Vec<String> {
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|u| u["title"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(
            titles(&for_author),
            ["Second", "Second", "Second", "Second", "Unpublished"]
        );
        assert_eq!(titles(&for_learner), ["Second"; 4]);
        assert_no_secrets("unit list", &for_learner);

        // Courses and modules page in creation order.
        for i in 2..=5 {
            course(&api, &t.instructor, &format!("Course {i}")).await;
        }
        let mut seen = Vec::new();
        let mut next = "/api/v1/courses?limit=2".to_owned();
        loop {
            let page = api.ok(Method::GET, &next, &t.learner, None, 200).await;
            seen.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|c| c["title"].as_str().unwrap_or("").to_owned()),
            );
            match page["next_after"].as_str() {
                Some(after) => next = format!("/api/v1/courses?limit=2&after={after}"),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["Python", "Course 2", "Course 3", "Course 4", "Course 5"]
        );
        let modules = api
            .ok(
                Method::GET,
                &format!("/api/v1/courses/{course_id}/modules"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(modules["items"][0]["id"], json!(module_id));
        let one = api
            .ok(
                Method::GET,
                &format!("/api/v1/courses/{course_id}"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(one["title"], "Python");
        db.cleanup(vec![_cp]).await;
    }
}

#[tokio::test]
async fn tenants_are_isolated_and_roles_checked_on_every_endpoint() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |_| {}).await;
        let a = tenant(&cp, "tenant-a").await;
        let b = tenant(&cp, "tenant-b").await;
        let (course_id, module_id) = course(&api, &a.instructor, "A's course").await;
        let mut units = Vec::new();
        for title in ["one", "two"] {
            let unit = api
                .ok(
                    Method::POST,
                    &format!("/api/v1/modules/{module_id}/units"),
                    &a.instructor,
                    Some(&json!({"kind": "assignment", "title": title, "body": assignment()})),
                    201,
                )
                .await;
            let id = unit["id"].as_str().expect("id").to_owned();
            api.ok(
                Method::POST,
                &format!("/api/v1/units/{id}/publish"),
                &a.instructor,
                None,
                201,
            )
            .await;
            units.push(id);
        }
        let (u1, u2) = (&units[0], &units[1]);
        api.ok(
            Method::POST,
            &format!("/api/v1/units/{u2}/prerequisites"),
            &a.instructor,
            Some(&json!({"prerequisite_id": u1})),
            201,
        )
        .await;
        let learner_a = a.learner_id.clone();
        // One published unit of the other kinds, for the learning routes.
        let mut learning = Vec::new();
        for (kind, body) in [
            ("lesson", lesson()),
            ("quiz", quiz()),
            ("live_classroom", live_classroom()),
        ] {
            let unit = api
                .ok(
                    Method::POST,
                    &format!("/api/v1/modules/{module_id}/units"),
                    &a.instructor,
                    Some(&json!({"kind": kind, "title": kind, "body": body})),
                    201,
                )
                .await;
            let id = unit["id"].as_str().expect("id").to_owned();
            api.ok(
                Method::POST,
                &format!("/api/v1/units/{id}/publish"),
                &a.instructor,
                None,
                201,
            )
            .await;
            learning.push(id);
        }
        let (a_lesson, a_quiz, a_live) = (&learning[0], &learning[1], &learning[2]);

        // (method, path, body, what A's learner gets, what B's learner and
        // B's instructor get). Reads are open to A's learner; writes are not.
        let unit_body = json!({"kind": "lesson", "title": "x", "body": lesson()});
        let cases: Vec<IsolationCase> = vec![
            (
                Method::GET,
                format!("/api/v1/courses/{course_id}"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/courses/{course_id}/modules"),
                Some(json!({"title": "m"})),
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/courses/{course_id}/modules"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/modules/{module_id}/units"),
                Some(unit_body.clone()),
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/modules/{module_id}/units"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/units/{u1}"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/units/{u1}?view=draft"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/units/{u1}?view=published"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u1}"),
                Some(json!({"body": assignment()})),
                403,
                (403, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u1}/publish"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u1}/prerequisites"),
                Some(json!({"prerequisite_id": u2})),
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/units/{u2}/prerequisites"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::DELETE,
                format!("/api/v1/units/{u2}/prerequisites/{u1}"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u1}/results/{learner_a}"),
                Some(json!({"score": 90})),
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/paths/frontier?user_id={learner_a}"),
                None,
                200,
                (403, 404),
            ),
            // Learning: A's learner enrolls first, and drops last.
            (
                Method::POST,
                format!("/api/v1/courses/{course_id}/enrollments"),
                Some(json!({})),
                201,
                (404, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/courses/{course_id}/enrollments"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/courses/{course_id}/cohorts"),
                Some(json!({"name": "spring"})),
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/courses/{course_id}/cohorts"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{a_lesson}/progress"),
                Some(json!({"seconds_on_page": 5, "scroll_depth": 0.2})),
                200,
                (404, 404),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{a_quiz}/attempts"),
                Some(json!({"answers": {}})),
                201,
                (404, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/me/progress?course_id={course_id}"),
                None,
                200,
                (404, 404),
            ),
            (
                Method::POST,
                "/api/v1/live/tickets".to_owned(),
                Some(json!({"class_id": a_live})),
                200,
                (404, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/live/{a_live}/attendance"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::GET,
                format!("/api/v1/courses/{course_id}/stats"),
                None,
                403,
                (403, 404),
            ),
            (
                Method::DELETE,
                format!("/api/v1/courses/{course_id}/enrollments/{learner_a}"),
                None,
                204,
                (403, 404),
            ),
        ];
        for (method, path, body, for_learner_a, (for_learner_b, for_instructor_b)) in cases {
            let text = body.as_ref().map(Value::to_string);
            for (who, token, expected) in [
                ("A's learner", &a.learner, for_learner_a),
                ("B's learner", &b.learner, for_learner_b),
                ("B's instructor", &b.instructor, for_instructor_b),
            ] {
                let (status, answer) = api
                    .call(method.clone(), &path, Some(token), text.as_deref())
                    .await;
                assert_eq!(
                    status, expected,
                    "{engine:?} {who} {method} {path}: {answer}"
                );
                if status >= 400 {
                    // Never data: only an error object.
                    assert!(
                        answer["error"]["code"].is_string()
                            && answer.as_object().map(|o| o.len()) == Some(1),
                        "{who} {method} {path}: {answer}"
                    );
                }
            }
            let (status, _) = api.call(method.clone(), &path, None, text.as_deref()).await;
            assert_eq!(status, 401, "{method} {path} without a token");
        }
        // B's lists are empty, not A's.
        let (_, listed) = api.get("/api/v1/courses", &b.instructor).await;
        assert_eq!(listed["items"], json!([]));
        let (_, frontier) = api.get("/api/v1/paths/frontier", &b.learner).await;
        assert_eq!(frontier["items"], json!([]));
        let (_, enrolled) = api.get("/api/v1/me/enrollments", &b.learner).await;
        assert_eq!(enrolled["items"], json!([]));
        let (_, enrolled) = api.get("/api/v1/me/enrollments", &a.learner).await;
        assert_eq!(enrolled["items"][0]["status"], "dropped");
        // A's unit cannot be made a prerequisite of B's, nor the reverse.
        let (_, b_module) = course(&api, &b.instructor, "B's course").await;
        let b_unit = api
            .ok(
                Method::POST,
                &format!("/api/v1/modules/{b_module}/units"),
                &b.instructor,
                Some(&unit_body),
                201,
            )
            .await;
        let b_unit = b_unit["id"].as_str().expect("id");
        let cross = api
            .send(
                Method::POST,
                &format!("/api/v1/units/{b_unit}/prerequisites"),
                &b.instructor,
                &json!({"prerequisite_id": u1}),
            )
            .await;
        assert_eq!(code(&cross), (404, "not_found".into()), "{}", cross.1);
        // Operators act fleet-wide: B's operator reads and edits A's unit.
        let seen = api
            .ok(
                Method::GET,
                &format!("/api/v1/units/{u1}?view=published"),
                &b.operator,
                None,
                200,
            )
            .await;
        assert_eq!(seen["body"]["hidden_tests"][0]["name"], "HIDDEN-a");
        api.ok(
            Method::PUT,
            &format!("/api/v1/units/{u1}"),
            &b.operator,
            Some(&json!({"title": "fixed by ops", "body": assignment()})),
            200,
        )
        .await;
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_never_a_500() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module_id) = course(&api, &t.instructor, "C").await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let unit = api
                .ok(
                    Method::POST,
                    &format!("/api/v1/modules/{module_id}/units"),
                    &t.instructor,
                    Some(&json!({"kind": "quiz", "title": "Q", "body": quiz()})),
                    201,
                )
                .await;
            ids.push(unit["id"].as_str().expect("id").to_owned());
        }
        let (u, u2) = (&ids[0], &ids[1]);
        let learner = &t.learner_id;
        let units = format!("/api/v1/modules/{module_id}/units");
        let unit_with =
            |kind: &str, body: Value| json!({"kind": kind, "title": "T", "body": body}).to_string();
        // Sets (or adds) the field at `pointer`.
        let with = |base: Value, pointer: &str, value: Value| {
            let mut base = base;
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            match base.pointer_mut(parent).expect("parent") {
                Value::Object(object) => {
                    object.insert(key.to_owned(), value);
                }
                Value::Array(array) => array[key.parse::<usize>().expect("index")] = value,
                other => panic!("cannot set {pointer} in {other}"),
            }
            base
        };
        let huge = format!(r#"{{"title": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
        let cases: Vec<BadInput> = vec![
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some("{not json".into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some(r#"{"title": 5}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some(r#"{"title": "x", "extra": 1}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some(r#"{"title": "  "}"#.into()),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some(format!(r#"{{"title": "{}"}}"#, "x".repeat(201))),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                Some(huge),
                (413, "payload_too_large"),
            ),
            (
                Method::POST,
                "/api/v1/courses".into(),
                None,
                (415, "unsupported_media_type"),
            ),
            (
                Method::GET,
                "/api/v1/courses?limit=0".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/courses?limit=ten".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/courses?colour=blue".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/courses/nope".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::POST,
                "/api/v1/courses/nope/modules".into(),
                Some(r#"{"title": "m"}"#.into()),
                (404, "not_found"),
            ),
            (
                Method::POST,
                format!("/api/v1/courses/{course_id}/modules"),
                Some(r#"{"title": []}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/courses/nope/modules".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::POST,
                "/api/v1/modules/nope/units".into(),
                Some(unit_with("lesson", lesson())),
                (404, "not_found"),
            ),
            (
                Method::GET,
                "/api/v1/modules/nope/units".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("video", lesson())),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(r#"{"kind": "lesson", "title": "T"}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("lesson", json!({"markdown": 5}))),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("lesson", json!("text"))),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "lesson",
                    with(lesson(), "/snippets/0/language", json!("Python 3")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("lesson", json!({"markdown": "x", "video": "y"}))),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("quiz", lesson())),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with("quiz", json!({"questions": []}))),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/0/answer", json!(2)),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/0/answer", json!(-1)),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/0/type", json!("essay")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/1/answers", json!([0, 0])),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/2/hint", json!("it is in France")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/1/id", json!("q1")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/questions/2/accepted", json!([])),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/settings/attempts_max", json!(0)),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "quiz",
                    with(quiz(), "/settings/time_limit_s", json!("soon")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "assignment",
                    with(
                        with(assignment(), "/visible_tests", json!([])),
                        "/hidden_tests",
                        json!([]),
                    ),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "assignment",
                    with(
                        assignment(),
                        "/starter_files/0/name",
                        json!("../etc/passwd"),
                    ),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "assignment",
                    with(assignment(), "/limits/wall_ms", json!(600_000)),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "assignment",
                    with(assignment(), "/hidden_tests/0/compare", json!("fuzzy")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "assignment",
                    with(
                        assignment(),
                        "/reference_solution/0/name",
                        json!("../main.py"),
                    ),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "live_classroom",
                    with(
                        live_classroom(),
                        "/schedule/starts_at",
                        json!("tomorrow at five"),
                    ),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "live_classroom",
                    with(live_classroom(), "/schedule/duration_minutes", json!(0)),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                units.clone(),
                Some(unit_with(
                    "live_classroom",
                    with(live_classroom(), "/region", json!("EU West")),
                )),
                (422, "validation_failed"),
            ),
            (
                Method::PUT,
                "/api/v1/units/nope".into(),
                Some(json!({"body": quiz()}).to_string()),
                (404, "not_found"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}"),
                Some("[]".into()),
                (400, "bad_request"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}"),
                Some(json!({"body": lesson()}).to_string()),
                (422, "validation_failed"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}"),
                Some(json!({"kind": "lesson", "body": lesson()}).to_string()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                "/api/v1/units/nope/publish".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::GET,
                "/api/v1/units/nope".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::GET,
                format!("/api/v1/units/{u}?view=secret"),
                None,
                (400, "bad_request"),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u}/prerequisites"),
                Some(r#"{"prerequisite_id": "nope"}"#.into()),
                (404, "not_found"),
            ),
            (
                Method::POST,
                "/api/v1/units/nope/prerequisites".into(),
                Some(json!({"prerequisite_id": u2}).to_string()),
                (404, "not_found"),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u}/prerequisites"),
                Some(r#"{"prerequisite_id": 5}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u}/prerequisites"),
                Some(json!({"prerequisite_id": u2, "condition": {"min_score": 101}}).to_string()),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u}/prerequisites"),
                Some(json!({"prerequisite_id": u2, "condition": {"min_score": "70"}}).to_string()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                format!("/api/v1/units/{u}/prerequisites"),
                Some(json!({"prerequisite_id": u2, "condition": {"max_score": 70}}).to_string()),
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/units/nope/prerequisites".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::DELETE,
                format!("/api/v1/units/{u}/prerequisites/nope"),
                None,
                (404, "not_found"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}/results/nope"),
                Some(r#"{"score": 50}"#.into()),
                (404, "not_found"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/nope/results/{learner}"),
                Some(r#"{"score": 50}"#.into()),
                (404, "not_found"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}/results/{learner}"),
                Some(r#"{"score": 101}"#.into()),
                (422, "validation_failed"),
            ),
            (
                Method::PUT,
                format!("/api/v1/units/{u}/results/{learner}"),
                Some(r#"{"score": "high"}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/paths/frontier".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/paths/frontier?user_id=nope".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::GET,
                format!("/api/v1/paths/frontier?user_id={learner}&limit=0"),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                format!("/api/v1/paths/frontier?user_id={learner}&limit=1001"),
                None,
                (400, "bad_request"),
            ),
        ];
        for (method, path, body, expected) in cases {
            let answer = api
                .call(method.clone(), &path, Some(&t.instructor), body.as_deref())
                .await;
            let shown: String = body.unwrap_or_default().chars().take(200).collect();
            assert_eq!(
                code(&answer),
                (expected.0, expected.1.to_owned()),
                "{engine:?} {method} {path} {shown}: {}",
                answer.1
            );
        }
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn content_limits_are_enforced_at_their_edges() {
    let (db, cp, api) = open(Engine::Sqlite, |c| {
        c.content_page_size_max = 3;
        c.content_unit_body_bytes_max = 2_000;
        c.content_quiz_questions_max = 2;
        c.content_assignment_tests_max = 2;
    })
    .await;
    let t = tenant(&cp, "acme").await;
    let (_, module_id) = course(&api, &t.instructor, "C").await;
    let units = format!("/api/v1/modules/{module_id}/units");
    let post = |kind: &'static str, body: Value| {
        let api = &api;
        let units = &units;
        let token = &t.instructor;
        async move {
            code(
                &api.send(
                    Method::POST,
                    units,
                    token,
                    &json!({"kind": kind, "title": "T", "body": body}),
                )
                .await,
            )
        }
    };
    let created = (201, "-".to_owned());

    // Body bytes: exactly the max is fine, one more is not (serialised).
    let base = json!({"markdown": ""}).to_string().len();
    let at = |n: usize| json!({"markdown": "m".repeat(n - base)});
    assert_eq!(at(2_000).to_string().len(), 2_000);
    assert_eq!(post("lesson", at(2_000)).await, created);
    assert_eq!(
        post("lesson", at(2_001)).await,
        (413, "payload_too_large".into())
    );

    // Questions per quiz.
    let question = |i: usize| json!({"type": "short_answer", "id": format!("q{i}"), "prompt": "?", "accepted": ["a"]});
    let quiz_of = |n: usize| json!({"questions": (0..n).map(question).collect::<Vec<_>>()});
    assert_eq!(post("quiz", quiz_of(2)).await, created);
    assert_eq!(
        post("quiz", quiz_of(3)).await,
        (422, "validation_failed".into())
    );

    // Tests per assignment, visible and hidden together, and per code
    // question.
    let test = |i: usize| json!({"name": format!("t{i}"), "expected_stdout": ""});
    let tests = |n: usize| (0..n).map(test).collect::<Vec<_>>();
    let assignment_of = |visible: usize, hidden: usize| json!({"language": "c", "visible_tests": tests(visible), "hidden_tests": tests(hidden)});
    assert_eq!(post("assignment", assignment_of(1, 1)).await, created);
    assert_eq!(post("assignment", assignment_of(0, 2)).await, created);
    assert_eq!(
        post("assignment", assignment_of(2, 1)).await,
        (422, "validation_failed".into())
    );
    let code_question = |n: usize| json!({"questions": [{"type": "code", "id": "c", "prompt": "?", "language": "c", "hidden_tests": tests(n)}]});
    assert_eq!(post("quiz", code_question(2)).await, created);
    assert_eq!(
        post("quiz", code_question(3)).await,
        (422, "validation_failed".into())
    );

    // Page size: 3 is fine, 4 is not; no limit clamps to the max.
    let (status, page) = api.get(&format!("{units}?limit=3"), &t.instructor).await;
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    assert!(page["next_after"].is_string());
    let (status, page) = api.get(&units, &t.instructor).await;
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    assert_eq!(
        code(&api.get(&format!("{units}?limit=4"), &t.instructor).await),
        (400, "bad_request".into())
    );
    db.cleanup(vec![cp]).await;

    fn check(edit: impl Fn(&mut ControlPlaneConfig), expected: Option<&str>) {
        let mut config = ControlPlaneConfig::default();
        edit(&mut config);
        let got = config.validate().err().map(|err| err.to_string());
        assert_eq!(got.as_deref(), expected);
    }
    for key in [
        "content_page_size_max",
        "content_quiz_questions_max",
        "content_assignment_tests_max",
        "path_edges_per_unit_max",
    ] {
        let set = |c: &mut ControlPlaneConfig, v: u32| match key {
            "content_page_size_max" => c.content_page_size_max = v,
            "content_quiz_questions_max" => c.content_quiz_questions_max = v,
            "content_assignment_tests_max" => c.content_assignment_tests_max = v,
            _ => c.path_edges_per_unit_max = v,
        };
        check(|c| set(c, 1), None);
        let message = format!("invalid setting control_plane.{key}: must be at least 1");
        check(|c| set(c, 0), Some(&message));
    }
    check(|c| c.content_unit_body_bytes_max = 1_048_576, None);
    check(|c| c.content_unit_body_bytes_max = 2, None);
    for bad in [1, 1_048_577] {
        check(
            |c| c.content_unit_body_bytes_max = bad,
            Some("invalid setting control_plane.content_unit_body_bytes_max: must be 2 to 1048576"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_make_one_version() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let (_, module_id) = course(&api, &t.instructor, "C").await;
        let unit = api
            .ok(
                Method::POST,
                &format!("/api/v1/modules/{module_id}/units"),
                &t.instructor,
                Some(&json!({"kind": "lesson", "title": "L", "body": lesson()})),
                201,
            )
            .await;
        let id = unit["id"].as_str().expect("id").to_owned();
        let api = std::sync::Arc::new(api);
        for round in 1..=3_i64 {
            let body = json!({"markdown": format!("round {round}")});
            api.ok(
                Method::PUT,
                &format!("/api/v1/units/{id}"),
                &t.instructor,
                Some(&json!({"body": body})),
                200,
            )
            .await;
            let mut racers = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let (api, token, path) = (
                    api.clone(),
                    t.instructor.clone(),
                    format!("/api/v1/units/{id}/publish"),
                );
                racers
                    .spawn(async move { api.call(Method::POST, &path, Some(&token), None).await });
            }
            let mut created = 0;
            while let Some(answer) = racers.join_next().await {
                let (status, answer) = answer.expect("task");
                assert!(
                    status == 201 || status == 200,
                    "{engine:?}: {status} {answer}"
                );
                assert_eq!(answer["unit"]["version"], json!(round), "{engine:?}");
                created += usize::from(status == 201);
            }
            assert_eq!(created, 1, "{engine:?}: one publish makes version {round}");
        }
        let seen = api
            .ok(
                Method::GET,
                &format!("/api/v1/units/{id}"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(
            (&seen["version"], &seen["body"]["markdown"]),
            (&json!(3), &json!("round 3"))
        );
        db.cleanup(vec![cp]).await;
    }
}
