//! Submission records through the real router on both engines: edges
//! report with the service key, a retried report is recorded once even
//! when many retries race, a report with the same id and other contents is
//! refused, and learners see only their own.

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
