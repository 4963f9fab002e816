//! Progress and completion per unit kind through the real router on both
//! engines: lessons by time and scroll depth, quizzes by graded attempts
//! (a code question by an accepted submission), assignments by the
//! submissions edges report, the learner's course progress, the frontier
//! reading the same completions, the enrollment completed with the last
//! unit (even when the last two complete at once), and instructors'
//! results going the same way.

use axum::http::Method;
use control_plane::tokens::Role;
use serde_json::{json, Value};

use crate::auth_api;
use crate::content::{assignment, code, course, lesson, open, tenant, Api};
use crate::databases::ENGINES;
use crate::enrollments::{member, published};

const KEY: &str = "edge-service-key-for-tests";

fn quiz() -> Value {
    json!({"questions": [
        {"type": "single_choice", "id": "q1", "prompt": "2 + 2?", "choices": ["3", "4"], "answer": 1},
        {"type": "short_answer", "id": "q2", "prompt": "Capital of France?", "accepted": ["Paris"]},
        {"type": "code", "id": "q3", "prompt": "Print hi", "language": "python",
         "tests": [{"name": "t", "expected_stdout": "hi"}]}
    ], "settings": {"attempts_max": 2}})
}

fn submission(id: &str, tenant: &str, user: &str, status: &str, extra: Value) -> Value {
    let mut report = json!({"type": "submission", "submission_id": id, "user_id": user,
        "tenant_id": tenant, "language": "python", "status": status, "region": "eu-west",
        "finished_at": "2026-11-23T18:00:00Z"});
    for (key, value) in extra.as_object().expect("object") {
        report[key] = value.clone();
    }
    report
}

fn frontier_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["unit_id"].as_str().expect("id").to_owned())
        .collect()
}

async fn unit_progress(api: &Api, token: &str, course: &str, unit: &str) -> Value {
    let page = api
        .ok(
            Method::GET,
            &format!("/api/v1/me/progress?course_id={course}"),
            token,
            None,
            200,
        )
        .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["unit_id"] == json!(unit))
        .cloned()
        .expect("the unit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_unit_kind_records_progress_and_completes() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.edge_service_key = KEY.to_owned();
        })
        .await;
        let edge = auth_api::Api::new(&cp);
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let a_lesson = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let a_quiz = published(&api, &t.instructor, &module, "quiz", quiz()).await;
        let a_task = published(&api, &t.instructor, &module, "assignment", assignment()).await;
        api.ok(
            Method::POST,
            &format!("/api/v1/units/{a_task}/prerequisites"),
            &t.instructor,
            Some(&json!({"prerequisite_id": a_quiz, "condition": {"min_score": 70}})),
            201,
        )
        .await;
        let read = format!("/api/v1/units/{a_lesson}/progress");
        let attempt = format!("/api/v1/units/{a_quiz}/attempts");

        // Not enrolled: nothing is recorded.
        let answer = api
            .send(
                Method::PUT,
                &read,
                &t.learner,
                &json!({"seconds_on_page": 1, "scroll_depth": 0.1}),
            )
            .await;
        assert_eq!(code(&answer), (403, "not_enrolled".into()), "{engine:?}");
        let answer = api
            .send(Method::POST, &attempt, &t.learner, &json!({"answers": {}}))
            .await;
        assert_eq!(code(&answer), (403, "not_enrolled".into()));
        api.ok(
            Method::POST,
            &format!("/api/v1/courses/{course_id}/enrollments"),
            &t.learner,
            Some(&json!({})),
            201,
        )
        .await;

        // Lesson: seconds add up, the deepest scroll is kept, 0.9 completes.
        let mut last = Value::Null;
        for (seconds, depth, total, deepest, done) in [
            (30, 0.5, 30, 0.5, false),
            (10, 0.3, 40, 0.5, false),
            (5, 0.9, 45, 0.9, true),
            (5, 1.0, 50, 1.0, true),
        ] {
            last = api
                .ok(
                    Method::PUT,
                    &read,
                    &t.learner,
                    Some(&json!({"seconds_on_page": seconds, "scroll_depth": depth})),
                    200,
                )
                .await;
            assert_eq!(
                (&last["progress"], &last["completed"]),
                (
                    &json!({"kind": "lesson", "seconds_on_page": total, "scroll_depth": deepest}),
                    &json!(done)
                ),
                "{engine:?}"
            );
        }
        assert_eq!(
            (&last["score"], &last["version"]),
            (&Value::Null, &json!(1))
        );
        assert!(last["completed_at"].is_i64());
        for (body, expected) in [
            (
                json!({"seconds_on_page": 1, "scroll_depth": 1.5}),
                (422, "validation_failed"),
            ),
            (
                json!({"seconds_on_page": 1, "scroll_depth": -0.1}),
                (422, "validation_failed"),
            ),
            (
                json!({"seconds_on_page": 3601, "scroll_depth": 0.1}),
                (422, "validation_failed"),
            ),
            (
                json!({"seconds_on_page": -1, "scroll_depth": 0.1}),
                (400, "bad_request"),
            ),
            (
                json!({"seconds_on_page": 1, "scroll_depth": "deep"}),
                (400, "bad_request"),
            ),
            (json!({"seconds_on_page": 1}), (400, "bad_request")),
            (
                json!({"seconds_on_page": 1, "scroll_depth": 0.1, "x": 1}),
                (400, "bad_request"),
            ),
        ] {
            let answer = api.send(Method::PUT, &read, &t.learner, &body).await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()), "{body}");
        }
        for (path, expected) in [
            (
                format!("/api/v1/units/{a_quiz}/progress"),
                (422, "validation_failed"),
            ),
            ("/api/v1/units/nope/progress".to_owned(), (404, "not_found")),
        ] {
            let answer = api
                .send(
                    Method::PUT,
                    &path,
                    &t.learner,
                    &json!({"seconds_on_page": 1, "scroll_depth": 0.1}),
                )
                .await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()), "{path}");
        }

        // Quiz: graded here; the best score is the result the path reads.
        // An accepted submission against the quiz that names no question
        // answers none: the first attempt cites one and scores nothing.
        let unbound = "01a30000-0000-7000-8000-0000000000ff";
        let (status, body) = edge
            .post(
                "/api/v1/submissions",
                Some(KEY),
                submission(
                    unbound,
                    &t.id,
                    &t.learner_id,
                    "accepted",
                    json!({"unit_id": a_quiz, "unit_version": 1}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let first = api
            .ok(
                Method::POST,
                &attempt,
                &t.learner,
                Some(
                    &json!({"answers": {"q1": 0, "q2": "Lyon", "q3": {"submission_id": unbound}}}),
                ),
                201,
            )
            .await;
        assert_eq!(
            first,
            json!({"unit_id": a_quiz, "version": 1, "attempt": 1, "correct": 0, "total": 3,
                   "score": 0, "best_score": 0, "attempts_left": 1}),
            "{engine:?}"
        );
        let frontier = api
            .ok(Method::GET, "/api/v1/paths/frontier", &t.learner, None, 200)
            .await;
        assert_eq!(frontier_ids(&frontier), Vec::<String>::new(), "{engine:?}");
        // The code question: an accepted submission against the quiz.
        let sid = "01a30000-0000-7000-8000-000000000001";
        let (status, body) = edge
            .post(
                "/api/v1/submissions",
                Some(KEY),
                submission(
                    sid,
                    &t.id,
                    &t.learner_id,
                    "accepted",
                    json!({"unit_id": a_quiz, "unit_version": 1, "question_id": "q3"}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            (
                &body["unit_id"],
                &body["unit_version"],
                &body["question_id"]
            ),
            (&json!(a_quiz), &json!(1), &json!("q3"))
        );
        let second = api
            .ok(
                Method::POST,
                &attempt,
                &t.learner,
                Some(&json!({"answers": {"q1": 1, "q2": " paris", "q3": {"submission_id": sid}}})),
                201,
            )
            .await;
        assert_eq!(
            (
                &second["score"],
                &second["best_score"],
                &second["attempts_left"]
            ),
            (&json!(100), &json!(100), &json!(0))
        );
        let frontier = api
            .ok(Method::GET, "/api/v1/paths/frontier", &t.learner, None, 200)
            .await;
        assert_eq!(frontier_ids(&frontier), vec![a_task.clone()], "{engine:?}");
        let answer = api
            .send(Method::POST, &attempt, &t.learner, &json!({"answers": {}}))
            .await;
        assert_eq!(code(&answer), (409, "conflict".into()));
        for (path, body, expected) in [
            (
                attempt.clone(),
                json!({"answers": {"nope": 1}}),
                (422, "validation_failed"),
            ),
            (
                attempt.clone(),
                json!({"answers": {"q1": "four"}}),
                (422, "validation_failed"),
            ),
            (attempt.clone(), json!({"answer": {}}), (400, "bad_request")),
            (
                format!("/api/v1/units/{a_lesson}/attempts"),
                json!({"answers": {}}),
                (422, "validation_failed"),
            ),
            (
                "/api/v1/units/nope/attempts".into(),
                json!({"answers": {}}),
                (404, "not_found"),
            ),
        ] {
            let answer = api.send(Method::POST, &path, &t.learner, &body).await;
            assert_eq!(
                code(&answer),
                (expected.0, expected.1.into()),
                "{path} {body}"
            );
        }
        let quiz_progress = unit_progress(&api, &t.learner, &course_id, &a_quiz).await;
        assert_eq!(
            (&quiz_progress["progress"], &quiz_progress["score"]),
            (
                &json!({"kind": "quiz", "attempts": 2, "best_score": 100}),
                &json!(100)
            )
        );

        // Half way: two of three units.
        let page = api
            .ok(
                Method::GET,
                &format!("/api/v1/me/progress?course_id={course_id}"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(
            (
                &page["total_units"],
                &page["completed_units"],
                &page["completion_percent"],
                &page["enrollment_status"]
            ),
            (&json!(3), &json!(2), &json!(66), &json!("active")),
            "{engine:?}"
        );

        // Assignment: from the submissions edges report.
        let bad: Vec<(Value, &str)> = vec![
            (json!({"unit_id": "nope"}), "unknown unit"),
            (
                json!({"unit_id": a_task, "unit_version": 2}),
                "unpublished version",
            ),
            (json!({"unit_id": a_task, "unit_version": 0}), "version 0"),
            (json!({"unit_version": 1}), "version without unit"),
            (json!({"question_id": "q3"}), "question without unit"),
            (
                json!({"unit_id": a_task, "question_id": "q3"}),
                "question on an assignment",
            ),
            (
                json!({"unit_id": a_task, "question_id": ""}),
                "empty question",
            ),
            (
                json!({"unit_id": a_task, "tests_passed": 4, "tests_total": 3}),
                "passed > total",
            ),
            (
                json!({"unit_id": a_task, "tests_passed": 1}),
                "passed alone",
            ),
        ];
        for (extra, what) in bad {
            let report = submission("s-bad", &t.id, &t.learner_id, "accepted", extra);
            let answer = edge.post("/api/v1/submissions", Some(KEY), report).await;
            assert_eq!(code(&answer), (400, "bad_request".into()), "{what}");
        }
        let tests = |passed: u32| json!({"unit_id": a_task, "unit_version": 1, "tests_passed": passed, "tests_total": 3});
        let (status, _) = edge
            .post(
                "/api/v1/submissions",
                Some(KEY),
                submission("s-1", &t.id, &t.learner_id, "wrong_answer", tests(1)),
            )
            .await;
        assert_eq!(status, 201);
        let task = unit_progress(&api, &t.learner, &course_id, &a_task).await;
        assert_eq!(
            (&task["completed"], &task["progress"]),
            (
                &json!(false),
                &json!({"kind": "assignment", "submissions": 1, "accepted": 0, "tests_passed": 1, "tests_total": 3})
            ),
            "{engine:?}"
        );
        // A retried report is not counted twice.
        for _ in 0..2 {
            let (status, _) = edge
                .post(
                    "/api/v1/submissions",
                    Some(KEY),
                    submission("s-2", &t.id, &t.learner_id, "accepted", tests(3)),
                )
                .await;
            assert!(status == 201 || status == 200);
        }
        let task = unit_progress(&api, &t.learner, &course_id, &a_task).await;
        assert_eq!(
            (
                &task["completed"],
                &task["score"],
                &task["progress"]["submissions"],
                &task["progress"]["tests_passed"]
            ),
            (&json!(true), &json!(100), &json!(2), &json!(3)),
            "{engine:?}"
        );

        // Every unit done: the course and the enrollment are complete.
        let page = api
            .ok(
                Method::GET,
                &format!("/api/v1/me/progress?course_id={course_id}&limit=2"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(
            (
                &page["completed_units"],
                &page["completion_percent"],
                &page["enrollment_status"]
            ),
            (&json!(3), &json!(100), &json!("completed"))
        );
        assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
        let next = page["next_after"].as_str().expect("next page");
        let rest = api
            .ok(
                Method::GET,
                &format!("/api/v1/me/progress?course_id={course_id}&limit=2&after={next}"),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(
            (rest["items"].as_array().map(Vec::len), &rest["next_after"]),
            (Some(1), &Value::Null)
        );
        let mine = api
            .ok(Method::GET, "/api/v1/me/enrollments", &t.learner, None, 200)
            .await;
        assert_eq!(mine["items"][0]["status"], "completed");
        assert!(mine["items"][0]["completed_at"].is_i64());
        for (path, expected) in [
            ("/api/v1/me/progress".to_owned(), (400, "bad_request")),
            (
                "/api/v1/me/progress?course_id=nope".to_owned(),
                (404, "not_found"),
            ),
            (
                format!("/api/v1/me/progress?course_id={course_id}&limit=0"),
                (400, "bad_request"),
            ),
        ] {
            assert_eq!(
                code(&api.get(&path, &t.learner).await),
                (expected.0, expected.1.into()),
                "{path}"
            );
        }

        // Instructors' results take the same path: one event per unit, the
        // enrollment completed with the last.
        let (bob, bob_token) = member(&cp, &t.id, "bob@acme.test", Role::Learner).await;
        api.ok(
            Method::POST,
            &format!("/api/v1/courses/{course_id}/enrollments"),
            &bob_token,
            Some(&json!({})),
            201,
        )
        .await;
        for unit in [&a_lesson, &a_quiz, &a_quiz, &a_task] {
            let result = api
                .ok(
                    Method::PUT,
                    &format!("/api/v1/units/{unit}/results/{bob}"),
                    &t.instructor,
                    Some(&json!({"score": 80})),
                    200,
                )
                .await;
            assert_eq!(
                (&result["score"], &result["user_id"]),
                (&json!(80), &json!(bob))
            );
        }
        let bobs = api
            .ok(Method::GET, "/api/v1/me/enrollments", &bob_token, None, 200)
            .await;
        assert_eq!(bobs["items"][0]["status"], "completed", "{engine:?}");

        control_plane::events::publish(cp.db(), 1_000)
            .await
            .expect("publish");
        let events = control_plane::events::read(cp.db().pool(), 0, 1_000)
            .await
            .expect("events");
        let count = |kind: &str, user: &str| {
            events
                .iter()
                .filter(|e| e.kind == kind && e.payload["user_id"] == json!(user))
                .count()
        };
        assert_eq!(
            [
                count("unit_completed", &t.learner_id),
                count("unit_completed", &bob),
                count("enrollment_completed", &t.learner_id),
                count("enrollment_completed", &bob),
                count("submission_recorded", &t.learner_id),
            ],
            // Four submissions: the quiz's unbound one and its bound one,
            // and the assignment's two.
            [3, 3, 1, 1, 4],
            "{engine:?}"
        );
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_two_units_completing_at_once_complete_the_course() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| c.analytics_interval_ms = 0).await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let lessons = [
            published(&api, &t.instructor, &module, "lesson", lesson()).await,
            published(&api, &t.instructor, &module, "lesson", lesson()).await,
        ];
        let api = std::sync::Arc::new(api);
        for i in 0..6 {
            let (_, token) = member(&cp, &t.id, &format!("l{i}@acme.test"), Role::Learner).await;
            api.ok(
                Method::POST,
                &format!("/api/v1/courses/{course_id}/enrollments"),
                &token,
                Some(&json!({})),
                201,
            )
            .await;
            let mut racers = tokio::task::JoinSet::new();
            for unit in &lessons {
                let (api, token) = (api.clone(), token.clone());
                let path = format!("/api/v1/units/{unit}/progress");
                racers.spawn(async move {
                    api.send(
                        Method::PUT,
                        &path,
                        &token,
                        &json!({"seconds_on_page": 60, "scroll_depth": 1.0}),
                    )
                    .await
                });
            }
            while let Some(answer) = racers.join_next().await {
                let (status, body) = answer.expect("task");
                assert_eq!(status, 200, "{engine:?}: {body}");
            }
            let mine = api
                .ok(Method::GET, "/api/v1/me/enrollments", &token, None, 200)
                .await;
            assert_eq!(
                mine["items"][0]["status"], "completed",
                "{engine:?} learner {i}"
            );
        }
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_stats_show_where_learners_stop_and_fail() {
    for engine in ENGINES {
        let (_db, cp, api) = open(engine, |c| c.analytics_interval_ms = 0).await;
        let t = tenant(&cp, "acme").await;
        let other = tenant(&cp, "globex").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let a_lesson = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let a_quiz = published(&api, &t.instructor, &module, "quiz", quiz()).await;
        let stats_url = format!("/api/v1/courses/{course_id}/unit-stats");
        let empty = api
            .ok(Method::GET, &stats_url, &t.instructor, None, 200)
            .await;
        assert_eq!(
            empty["items"].as_array().map(Vec::len),
            Some(2),
            "{engine:?}"
        );
        assert_eq!(empty["items"][0]["unit_id"], json!(a_lesson));
        assert_eq!(empty["items"][1]["learners_started"], json!(0));
        assert_eq!(empty["items"][1]["average_best_score"], Value::Null);

        // Two learners: one gets the choice right (33), one gets nothing (0).
        let (_, second) = member(&cp, &t.id, "second@acme.test", Role::Learner).await;
        for (token, answers) in [(&t.learner, json!({"q1": 1})), (&second, json!({"q1": 0}))] {
            api.ok(
                Method::POST,
                &format!("/api/v1/courses/{course_id}/enrollments"),
                token,
                Some(&json!({})),
                201,
            )
            .await;
            api.ok(
                Method::POST,
                &format!("/api/v1/units/{a_quiz}/attempts"),
                token,
                Some(&json!({ "answers": answers })),
                201,
            )
            .await;
        }
        let page = api
            .ok(Method::GET, &stats_url, &t.instructor, None, 200)
            .await;
        let quiz_row = &page["items"][1];
        assert_eq!(quiz_row["unit_id"], json!(a_quiz), "{engine:?}");
        assert_eq!(quiz_row["kind"], json!("quiz"));
        assert_eq!(quiz_row["learners_started"], json!(2));
        assert_eq!(quiz_row["attempts"], json!(2));
        assert_eq!(quiz_row["average_best_score"], json!(16.5));
        assert_eq!(page["items"][0]["learners_started"], json!(0));

        // Learners may not read it; another tenant's instructor finds nothing.
        assert_eq!(
            code(&api.get(&stats_url, &t.learner).await),
            (403, "forbidden".into())
        );
        assert_eq!(
            code(&api.get(&stats_url, &other.instructor).await),
            (404, "not_found".into())
        );
        assert_eq!(
            code(
                &api.get("/api/v1/courses/nope/unit-stats", &t.instructor)
                    .await
            ),
            (404, "not_found".into())
        );
    }
}
