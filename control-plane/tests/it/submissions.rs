//! Submission records through the real router on both engines: edges
//! report with the service key, a retried report is recorded once even
//! when many retries race, a report with the same id and other contents is
//! refused, one naming a user outside its tenant is refused, and learners
//! see only their own. Batches answer each report as the single route
//! would (and leave the same progress and events), hold 1 to
//! `submissions_batch_max` reports within their own body limit, and record
//! nothing when the store fails half way.

use axum::http::Method;
use serde_json::{json, Value};

use crate::auth_api::{code, Api};
use crate::databases::{TestDb, ENGINES};

const KEY: &str = "edge-service-key-for-tests";

fn report(id: &str, tenant: &str, user: &str, status: &str) -> Value {
    json!({"type": "submission", "submission_id": id, "user_id": user, "tenant_id": tenant,
           "language": "python", "status": status, "region": "eu-west",
           "finished_at": "2026-11-23T18:00:00Z"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_recorded_once_and_read_back_by_their_owner() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.edge_service_key = KEY.to_owned();
        let cp = db.open().await;
        let api = std::sync::Arc::new(Api::new(&cp));
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");
        let claims = |token: &str| {
            cp.keys()
                .snapshot()
                .verifier()
                .verify(token)
                .expect("dev token")
        };
        let learner = claims(&tokens.learner);
        let (tenant, user) = (learner.tid.clone(), learner.sub.clone());
        let path = "/api/v1/submissions";
        let id = "01a20000-0000-7000-8000-000000000001";
        let first = report(id, &tenant, &user, "accepted");

        // Only the service key may report.
        for token in [
            None,
            Some("wrong-key-wrong-key"),
            Some(tokens.operator.as_str()),
        ] {
            let answer = api.post(path, token, first.clone()).await;
            assert_eq!(code(&answer), (401, "unauthenticated".into()), "{engine:?}");
        }

        // Many retries of one report race: exactly one creates the row.
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (api, body) = (api.clone(), first.clone());
            racers.spawn(async move { api.post(path, Some(KEY), body).await });
        }
        let mut created = 0;
        while let Some(answer) = racers.join_next().await {
            let (status, body) = answer.expect("task");
            assert!(
                status == 201 || status == 200,
                "{engine:?}: {status} {body}"
            );
            created += usize::from(status == 201);
            assert_eq!(body["id"], id);
        }
        assert_eq!(
            created, 1,
            "{engine:?}: one retry creates, the rest find it"
        );
        let (status, again) = api.post(path, Some(KEY), first.clone()).await;
        assert_eq!((status, again["status"].as_str()), (200, Some("accepted")));

        // Same id, other contents: refused, the record unchanged.
        let forged = report(id, &tenant, &user, "wrong_answer");
        let answer = api.post(path, Some(KEY), forged).await;
        assert_eq!(
            code(&answer),
            (409, "idempotency_conflict".into()),
            "{engine:?}"
        );

        // Bad reports get clear 4xx.
        let unknown_tenant = report("x-1", "no-such-tenant", &user, "accepted");
        let answer = api.post(path, Some(KEY), unknown_tenant).await;
        assert_eq!(code(&answer), (400, "bad_request".into()));
        for bad in [
            json!({}),
            json!({"type": "submission"}),
            report("", &tenant, &user, "accepted"),
            report(&"x".repeat(129), &tenant, &user, "accepted"),
            json!(["not", "an", "object"]),
        ] {
            let answer = api.post(path, Some(KEY), bad.clone()).await;
            assert_eq!(answer.0, 400, "{engine:?}: {bad} -> {answer:?}");
        }
        let mut wrong_kind = first.clone();
        wrong_kind["type"] = json!("payment");
        assert_eq!(api.post(path, Some(KEY), wrong_kind).await.0, 400);

        // A second user's submission; learners see their own only.
        let instructor = claims(&tokens.instructor);
        let other_id = "01a20000-0000-7000-8000-000000000002";
        let (status, _) = api
            .post(
                path,
                Some(KEY),
                report(other_id, &tenant, &instructor.sub, "wrong_answer"),
            )
            .await;
        assert_eq!(status, 201);
        let ids = |page: &Value| -> Vec<String> {
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned())
                .collect()
        };
        let (status, mine) = api
            .call(Method::GET, path, Some(&tokens.learner), None)
            .await;
        assert_eq!(
            (status, ids(&mine)),
            (200, vec![id.to_owned()]),
            "{engine:?}"
        );
        let (status, all) = api
            .call(Method::GET, path, Some(&tokens.instructor), None)
            .await;
        assert_eq!(
            (status, ids(&all)),
            (200, vec![id.to_owned(), other_id.to_owned()])
        );
        let (_, page) = api
            .call(
                Method::GET,
                &format!("{path}?limit=1"),
                Some(&tokens.instructor),
                None,
            )
            .await;
        assert_eq!(
            (ids(&page), page["next_after"].as_str()),
            (vec![id.to_owned()], Some(id))
        );
        let (_, rest) = api
            .call(
                Method::GET,
                &format!("{path}?limit=1&after={id}"),
                Some(&tokens.instructor),
                None,
            )
            .await;
        assert_eq!(ids(&rest), vec![other_id.to_owned()]);
        let snoop = format!("{path}?user_id={}", instructor.sub);
        let answer = api
            .call(Method::GET, &snoop, Some(&tokens.learner), None)
            .await;
        assert_eq!(code(&answer), (403, "forbidden".into()));
        for bad in ["limit=0", "limit=1001", "limit=x", "colour=red"] {
            let answer = api
                .call(
                    Method::GET,
                    &format!("{path}?{bad}"),
                    Some(&tokens.instructor),
                    None,
                )
                .await;
            assert_eq!(code(&answer), (400, "bad_request".into()), "{bad}");
        }
        // Another tenant sees none of it.
        let (status, pair) = api
            .post(
                "/api/v1/auth/sign-up",
                None,
                json!({"email": "eve@example.test",
                  "password": "eve's password", "display_name": "Eve",
                  "organisation": {"slug": "eve-org", "name": "Eve Org"}}),
            )
            .await;
        assert_eq!(status, 201, "{pair}");
        let (status, theirs) = api
            .call(Method::GET, path, pair["access_token"].as_str(), None)
            .await;
        assert_eq!((status, ids(&theirs)), (200, Vec::<String>::new()));
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_naming_someone_outside_the_tenant_are_refused() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.edge_service_key = KEY.to_owned();
        db.config.analytics_interval_ms = 0;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");
        let learner = cp
            .keys()
            .snapshot()
            .verifier()
            .verify(&tokens.learner)
            .expect("dev token");
        let tenant = learner.tid.clone();
        // A real user, but a member of another tenant only.
        let (status, pair) = api
            .post(
                "/api/v1/auth/sign-up",
                None,
                json!({"email": "eve@example.test",
                  "password": "eve's password", "display_name": "Eve",
                  "organisation": {"slug": "eve-org", "name": "Eve Org"}}),
            )
            .await;
        assert_eq!(status, 201, "{pair}");
        let (_, eve) = api
            .call(
                Method::GET,
                "/api/v1/me",
                pair["access_token"].as_str(),
                None,
            )
            .await;
        let eve_id = eve["user_id"].as_str().expect("user id").to_owned();
        let path = "/api/v1/submissions";
        for (id, user, what) in [
            ("s-nobody", "no-such-user", "a user id that does not exist"),
            ("s-eve", eve_id.as_str(), "a user of another tenant"),
        ] {
            let answer = api
                .post(path, Some(KEY), report(id, &tenant, user, "accepted"))
                .await;
            assert_eq!(
                code(&answer),
                (400, "unknown_member".into()),
                "{engine:?}: {what}: {answer:?}"
            );
            // A retry is refused the same way: nothing was stored.
            let answer = api
                .post(path, Some(KEY), report(id, &tenant, user, "accepted"))
                .await;
            assert_eq!(code(&answer), (400, "unknown_member".into()), "{what}");
        }
        // Eve's own tenant takes her report.
        let answer = api
            .post(
                path,
                Some(KEY),
                report(
                    "s-eve-home",
                    eve["tenant_id"].as_str().expect("tenant"),
                    &eve_id,
                    "accepted",
                ),
            )
            .await;
        assert_eq!(answer.0, 201, "{engine:?}: {answer:?}");
        // Nothing shows in the tenant's lists, and no event was written.
        let (status, all) = api
            .call(Method::GET, path, Some(&tokens.instructor), None)
            .await;
        assert_eq!((status, &all["items"]), (200, &json!([])), "{engine:?}");
        let (_, events) = api
            .call(Method::GET, "/api/v1/events?limit=1000", Some(KEY), None)
            .await;
        let recorded: Vec<&Value> = events["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["kind"] == "submission_recorded")
            .map(|e| &e["aggregate_id"])
            .collect();
        assert_eq!(recorded, vec![&json!("s-eve-home")], "{engine:?}");
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}

const PATH: &str = "/api/v1/submissions";
const BATCH: &str = "/api/v1/submissions/batch";

/// One batch answer as `(submission_id, outcome, error code or "")`.
fn outcomes(answer: &(u16, Value)) -> Vec<(String, String, String)> {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {}", answer.1))
        .iter()
        .map(|r| {
            let outcome = r["outcome"].as_str().expect("outcome").to_owned();
            // `error` is there exactly for a refusal.
            assert_eq!(r.get("error").is_some(), outcome == "refused", "{r}");
            (
                r["submission_id"]
                    .as_str()
                    .expect("submission_id")
                    .to_owned(),
                outcome,
                r["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn result(id: &str, outcome: &str, code: &str) -> (String, String, String) {
    (id.to_owned(), outcome.to_owned(), code.to_owned())
}

/// Events about `user`, their ids and times taken out, so two users'
/// histories compare equal when the same things happened to both.
fn history(events: &Value, user: &str, prefix: &str) -> Vec<Value> {
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["payload"]["user_id"] == json!(user))
        .map(|e| {
            let text = json!({"kind": e["kind"], "aggregate_id": e["aggregate_id"],
                              "payload": e["payload"]})
            .to_string()
            .replace(user, "USER")
            .replace(&format!("\"{prefix}-"), "\"ID-");
            serde_json::from_str(&text).expect("json")
        })
        .collect()
}

/// A learner's progress in a course with the completion times taken out.
async fn progress_of(api: &crate::content::Api, token: &str, course: &str) -> Value {
    let mut page = api
        .ok(
            Method::GET,
            &format!("/api/v1/me/progress?course_id={course}"),
            token,
            None,
            200,
        )
        .await;
    for unit in page["items"].as_array_mut().expect("items") {
        unit["completed_at"] = json!(unit["completed_at"].is_number());
    }
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_records_each_report_as_the_single_route_would() {
    use crate::content::{assignment, course, open, tenant};
    use crate::enrollments::{member, published};
    use control_plane::tokens::Role;
    for engine in ENGINES {
        let (db, cp, content) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.edge_service_key = KEY.to_owned();
        })
        .await;
        let api = Api::new(&cp);
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&content, &t.instructor, "C").await;
        let task = published(&content, &t.instructor, &module, "assignment", assignment()).await;
        // Ann reports one at a time, Bob in a batch: the same runs.
        let (ann, ann_token) = (t.learner_id.clone(), t.learner.clone());
        let (bob, bob_token) = member(&cp, &t.id, "bob@acme.test", Role::Learner).await;
        for token in [&ann_token, &bob_token] {
            content
                .ok(
                    Method::POST,
                    &format!("/api/v1/courses/{course_id}/enrollments"),
                    token,
                    Some(&json!({})),
                    201,
                )
                .await;
        }
        let runs = |prefix: &str, user: &str| -> Vec<Value> {
            let on_task = |mut r: Value, passed: u32| {
                r["unit_id"] = json!(task);
                r["unit_version"] = json!(1);
                r["tests_passed"] = json!(passed);
                r["tests_total"] = json!(3);
                r
            };
            let mut unknown_unit = report(&format!("{prefix}-7"), &t.id, user, "accepted");
            unknown_unit["unit_id"] = json!("no-such-unit");
            let mut other_contents = report(&format!("{prefix}-1"), &t.id, user, "accepted");
            other_contents["unit_id"] = json!(task);
            vec![
                on_task(
                    report(&format!("{prefix}-1"), &t.id, user, "wrong_answer"),
                    1,
                ),
                on_task(report(&format!("{prefix}-2"), &t.id, user, "accepted"), 3),
                report(&format!("{prefix}-3"), &t.id, user, ""),
                report(&format!("{prefix}-4"), &t.id, user, "accepted"),
                report(&format!("{prefix}-5"), &t.id, "no-such-user", "accepted"),
                on_task(
                    report(&format!("{prefix}-1"), &t.id, user, "wrong_answer"),
                    1,
                ),
                other_contents,
                unknown_unit,
                json!({"type": "submission", "submission_id": format!("{prefix}-9")}),
                json!(7),
            ]
        };
        let expected = |p: &str| {
            vec![
                result(&format!("{p}-1"), "created", ""),
                result(&format!("{p}-2"), "created", ""),
                result(&format!("{p}-3"), "refused", "bad_request"),
                result(&format!("{p}-4"), "created", ""),
                result(&format!("{p}-5"), "refused", "unknown_member"),
                result(&format!("{p}-1"), "existing", ""),
                result(&format!("{p}-1"), "refused", "idempotency_conflict"),
                result(&format!("{p}-7"), "refused", "bad_request"),
                result(&format!("{p}-9"), "refused", "bad_request"),
                result("", "refused", "bad_request"),
            ]
        };
        // One at a time: 201 for created, 200 for existing, the refusals'
        // own status and code.
        let mut single = Vec::new();
        for r in runs("sa", &ann) {
            let (status, body) = api.post(PATH, Some(KEY), r.clone()).await;
            let outcome = match status {
                201 => "created",
                200 => "existing",
                400 | 409 => "refused",
                other => panic!("{engine:?}: {other} {body}"),
            };
            let id = r["submission_id"].as_str().unwrap_or("").to_owned();
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            single.push((id, outcome.to_owned(), code));
        }
        assert_eq!(single, expected("sa"), "{engine:?}: the single route");
        // The batch: one result per item, in order, the same outcomes.
        let body = json!({"submissions": runs("sb", &bob)});
        let answer = api.post(BATCH, Some(KEY), body.clone()).await;
        assert_eq!(outcomes(&answer), expected("sb"), "{engine:?}: the batch");
        let refused = &answer.1["results"][2]["error"];
        assert!(
            refused["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{refused}"
        );
        // Progress and events come out the same.
        let (ann_progress, bob_progress) = (
            progress_of(&content, &ann_token, &course_id).await,
            progress_of(&content, &bob_token, &course_id).await,
        );
        assert_eq!(ann_progress, bob_progress, "{engine:?}");
        assert_eq!(
            (
                &bob_progress["completed_units"],
                &bob_progress["enrollment_status"]
            ),
            (&json!(1), &json!("completed")),
            "{engine:?}: {bob_progress}"
        );
        let (_, events) = api
            .call(Method::GET, "/api/v1/events?limit=1000", Some(KEY), None)
            .await;
        let bob_history = history(&events, &bob, "sb");
        assert_eq!(history(&events, &ann, "sa"), bob_history, "{engine:?}");
        let kinds: Vec<&str> = bob_history
            .iter()
            .map(|e| e["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(
            kinds,
            [
                "enrolled",
                "submission_recorded",
                "submission_recorded",
                "unit_completed",
                "enrollment_completed",
                "submission_recorded"
            ],
            "{engine:?}"
        );

        // The whole batch again (a retry after a lost answer): what was
        // stored is `existing`, the refusals stand, nothing is doubled.
        let again = api.post(BATCH, Some(KEY), body.clone()).await;
        let mut retried = expected("sb");
        for r in &mut retried {
            if r.1 == "created" {
                r.1 = "existing".into();
            }
        }
        assert_eq!(outcomes(&again), retried, "{engine:?}");
        assert_eq!(
            progress_of(&content, &bob_token, &course_id).await,
            bob_progress
        );
        let (_, events_again) = api
            .call(Method::GET, "/api/v1/events?limit=1000", Some(KEY), None)
            .await;
        assert_eq!(events_again["items"], events["items"], "{engine:?}");

        // Only the service key may send a batch; a refused request records
        // nothing.
        let fresh = json!({"submissions": [report("c-1", &t.id, &bob, "accepted")]});
        for token in [None, Some("wrong-key-wrong-key"), Some(t.operator.as_str())] {
            let answer = api.post(BATCH, token, fresh.clone()).await;
            assert_eq!(code(&answer), (401, "unauthenticated".into()), "{engine:?}");
        }
        let (_, listed) = api
            .call(
                Method::GET,
                &format!("{PATH}?user_id={bob}"),
                Some(&t.instructor),
                None,
            )
            .await;
        let ids: Vec<&Value> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| &s["id"])
            .collect();
        assert_eq!(
            ids,
            [&json!("sb-1"), &json!("sb-2"), &json!("sb-4")],
            "{engine:?}"
        );
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holds_one_to_submissions_batch_max_reports() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.edge_service_key = KEY.to_owned();
        db.config.analytics_interval_ms = 0;
        let max = control_plane::config::SUBMISSIONS_BATCH_MAX_DEFAULT;
        assert_eq!(db.config.submissions_batch_max, max);
        let cp = db.open().await;
        let api = Api::new(&cp);
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");
        let learner = cp
            .keys()
            .snapshot()
            .verifier()
            .verify(&tokens.learner)
            .expect("dev token");
        let (tenant, user) = (learner.tid.clone(), learner.sub.clone());
        let batch = |prefix: &str, n: u32| {
            let items: Vec<Value> = (0..n)
                .map(|i| report(&format!("{prefix}-{i:04}"), &tenant, &user, "accepted"))
                .collect();
            json!({ "submissions": items })
        };
        let count = |answer: &(u16, Value)| answer.1["results"].as_array().map_or(0, Vec::len);

        // 0 and max + 1: refused whole, with the limit in the message,
        // nothing recorded.
        for n in [0, max + 1] {
            let answer = api.post(BATCH, Some(KEY), batch("over", n)).await;
            assert_eq!(code(&answer), (400, "batch_size".into()), "{engine:?}: {n}");
            let message = answer.1["error"]["message"].as_str().expect("message");
            assert!(
                message.contains(&max.to_string())
                    && message.contains("control_plane.submissions_batch_max"),
                "{message}"
            );
        }
        // 1 and max: every report recorded.
        for (prefix, n) in [("one", 1), ("max", max)] {
            let answer = api.post(BATCH, Some(KEY), batch(prefix, n)).await;
            let results = outcomes(&answer);
            assert_eq!(results.len(), usize::try_from(n).expect("n"), "{engine:?}");
            assert!(
                results.iter().all(|(_, o, _)| o == "created"),
                "{engine:?}: {results:?}"
            );
            assert_eq!(results[0].0, format!("{prefix}-0000"));
        }
        // The wire types an edge builds and reads round-trip.
        {
            use control_plane::submissions::{
                BatchOutcome, BatchResult, BatchResults, SubmissionBatch,
            };
            let typed = SubmissionBatch {
                submissions: vec![serde_json::from_value(report(
                    "typed-1", &tenant, &user, "accepted",
                ))
                .expect("report")],
            };
            let body = serde_json::to_value(&typed).expect("json");
            let (status, answer) = api.post(BATCH, Some(KEY), body).await;
            assert_eq!(status, 200, "{answer}");
            let answer: BatchResults = serde_json::from_value(answer).expect("typed answer");
            assert_eq!(
                answer.results,
                vec![BatchResult {
                    submission_id: "typed-1".into(),
                    outcome: BatchOutcome::Created,
                    error: None,
                }]
            );
        }
        let (_, page) = api
            .call(
                Method::GET,
                &format!("{PATH}?limit=1000"),
                Some(&tokens.instructor),
                None,
            )
            .await;
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(usize::try_from(max + 2).expect("n")),
            "{engine:?}: nothing from the refused batches"
        );

        // Not a batch at all: 400 bad_request.
        for bad in [
            json!({}),
            json!({"submissions": {}}),
            json!({"submissions": [], "more": 1}),
            json!([report("x", &tenant, &user, "accepted")]),
        ] {
            let answer = api.post(BATCH, Some(KEY), bad.clone()).await;
            assert_eq!(
                code(&answer),
                (400, "bad_request".into()),
                "{engine:?}: {bad}"
            );
        }

        // A full batch of the largest reports fits the route's body limit:
        // every text field at its longest, each byte escaped (6 bytes).
        let long = "\u{1}".repeat(control_plane::submissions::FIELD_BYTES_MAX);
        let big = json!({"type": "submission", "submission_id": long, "user_id": long,
            "tenant_id": long, "language": long, "status": long, "region": long,
            "finished_at": long, "unit_id": long, "unit_version": i64::MIN,
            "question_id": long, "tests_passed": u32::MAX, "tests_total": u32::MAX});
        let items: Vec<Value> = (0..max).map(|_| big.clone()).collect();
        let text = json!({ "submissions": items }).to_string();
        let limit = control_plane::submissions::batch_body_bytes_max(max);
        assert!(text.len() <= limit, "{} > {limit}", text.len());
        assert!(
            text.len() > 1024 * 1024,
            "larger than the default body limit"
        );
        let raw = crate::content::Api::new(&cp);
        let answer = raw.call(Method::POST, BATCH, Some(KEY), Some(&text)).await;
        assert_eq!(answer.0, 200, "{engine:?}: {}", answer.1);
        assert_eq!(count(&answer), usize::try_from(max).expect("n"));
        // At the limit exactly (padded with spaces) it is read; one byte
        // more is 413.
        let one = json!({"submissions": [report("pad-1", &tenant, &user, "accepted")]}).to_string();
        let padded = |len: usize| format!("{}{}", one, " ".repeat(len - one.len()));
        let answer = raw
            .call(Method::POST, BATCH, Some(KEY), Some(&padded(limit)))
            .await;
        assert_eq!(outcomes(&answer), vec![result("pad-1", "created", "")]);
        let answer = raw
            .call(Method::POST, BATCH, Some(KEY), Some(&padded(limit + 1)))
            .await;
        assert_eq!(
            code(&answer),
            (413, "payload_too_large".into()),
            "{engine:?}"
        );
        drop((api, raw));
        db.cleanup(vec![cp]).await;
    }
}

#[test]
fn submissions_batch_max_is_checked() {
    use control_plane::config::SUBMISSIONS_BATCH_MAX_LIMIT;
    use control_plane::ControlPlaneConfig;
    for (value, expected) in [
        (0, Some("must be 1 to 2000")),
        (1, None),
        (SUBMISSIONS_BATCH_MAX_LIMIT, None),
        (SUBMISSIONS_BATCH_MAX_LIMIT + 1, Some("must be 1 to 2000")),
    ] {
        let config = ControlPlaneConfig {
            submissions_batch_max: value,
            ..ControlPlaneConfig::default()
        };
        let got = config.validate().err().map(|err| err.to_string());
        let expected = expected
            .map(|reason| format!("invalid setting control_plane.submissions_batch_max: {reason}"));
        assert_eq!(got, expected, "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_records_nothing_and_its_retry_records_each_once() {
    use crate::databases::Engine;
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.edge_service_key = KEY.to_owned();
        db.config.analytics_interval_ms = 0;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");
        let learner = cp
            .keys()
            .snapshot()
            .verifier()
            .verify(&tokens.learner)
            .expect("dev token");
        let (tenant, user) = (learner.tid.clone(), learner.sub.clone());
        // The store fails on the third report's insert, as a database that
        // goes away in the middle of a batch would.
        let fault: &[&str] = match engine {
            Engine::Sqlite => &["CREATE TRIGGER boom BEFORE INSERT ON submissions \
                 WHEN NEW.id = 'f-3' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
            Engine::Postgres => &[
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN \
                 IF NEW.id = 'f-3' THEN RAISE EXCEPTION 'injected fault'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER boom BEFORE INSERT ON submissions \
                 FOR EACH ROW EXECUTE FUNCTION boom()",
            ],
        };
        for sql in fault {
            sqlx::query(sql)
                .execute(cp.db().pool())
                .await
                .expect("inject the fault");
        }
        let batch = json!({"submissions": (1..=4)
            .map(|i| report(&format!("f-{i}"), &tenant, &user, "accepted"))
            .collect::<Vec<_>>()});
        let answer = api.post(BATCH, Some(KEY), batch.clone()).await;
        assert_eq!(code(&answer), (503, "unavailable".into()), "{engine:?}");
        // Nothing of it is visible: no row, no event.
        let (_, page) = api
            .call(Method::GET, PATH, Some(&tokens.instructor), None)
            .await;
        assert_eq!(page["items"], json!([]), "{engine:?}");
        let (_, events) = api
            .call(Method::GET, "/api/v1/events?limit=1000", Some(KEY), None)
            .await;
        assert!(
            !events["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|e| e["kind"] == "submission_recorded"),
            "{engine:?}: {events}"
        );
        // The store is back: the retry records each report once, and a
        // retry of that (its answer lost) finds them all.
        let heal = match engine {
            Engine::Sqlite => "DROP TRIGGER boom",
            Engine::Postgres => "DROP TRIGGER boom ON submissions",
        };
        sqlx::query(heal)
            .execute(cp.db().pool())
            .await
            .expect("heal");
        let ids = |outcome: &str| {
            (1..=4)
                .map(|i| result(&format!("f-{i}"), outcome, ""))
                .collect::<Vec<_>>()
        };
        let answer = api.post(BATCH, Some(KEY), batch.clone()).await;
        assert_eq!(outcomes(&answer), ids("created"), "{engine:?}");
        let answer = api.post(BATCH, Some(KEY), batch).await;
        assert_eq!(outcomes(&answer), ids("existing"), "{engine:?}");
        let (_, events) = api
            .call(Method::GET, "/api/v1/events?limit=1000", Some(KEY), None)
            .await;
        let recorded = events["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["kind"] == "submission_recorded")
            .count();
        assert_eq!(recorded, 4, "{engine:?}");
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}
