//! The demo course `--seed-dev` adds: seeded once however often the seed
//! runs, one published unit of each kind, a path whose frontier starts at
//! the lesson, hidden tests kept from learners, and the tenant on a plan in
//! its trial; on both engines.

use axum::http::Method;
use serde_json::Value;

use crate::auth_api::{code, Api};
use crate::databases::{TestDb, ENGINES};

const KEY: &str = "edge-service-key-for-demo-tests";

#[tokio::test]
async fn the_demo_course_is_seeded_once_and_its_path_starts_at_the_lesson() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.edge_service_key = KEY.to_owned();
        let cp = db.open().await;
        let api = Api::new(&cp);
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");
        control_plane::seed::seed_dev(&cp)
            .await
            .expect("seeding again is harmless");

        let (status, courses) = api
            .call(Method::GET, "/api/v1/courses", Some(&tokens.learner), None)
            .await;
        assert_eq!(status, 200, "{engine:?}: {courses}");
        let titles: Vec<&str> = courses["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["title"].as_str().expect("title"))
            .collect();
        assert_eq!(
            titles,
            [control_plane::demo::DEMO_COURSE_TITLE],
            "{engine:?}: seeded once"
        );

        let (status, frontier) = api
            .call(
                Method::GET,
                "/api/v1/paths/frontier",
                Some(&tokens.learner),
                None,
            )
            .await;
        assert_eq!(status, 200, "{engine:?}: {frontier}");
        let open: Vec<(&str, &str)> = frontier["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|u| {
                (
                    u["kind"].as_str().expect("kind"),
                    u["title"].as_str().expect("title"),
                )
            })
            .collect();
        assert_eq!(
            open,
            [("lesson", "Printing and input")],
            "{engine:?}: only the lesson is open at first"
        );

        // Every kind is there and published; learners never see hidden tests.
        let course_id = courses["items"][0]["id"].as_str().expect("id");
        let (_, modules) = api
            .call(
                Method::GET,
                &format!("/api/v1/courses/{course_id}/modules"),
                Some(&tokens.learner),
                None,
            )
            .await;
        let module_id = modules["items"][0]["id"].as_str().expect("module id");
        let (status, units) = api
            .call(
                Method::GET,
                &format!("/api/v1/modules/{module_id}/units"),
                Some(&tokens.learner),
                None,
            )
            .await;
        assert_eq!(status, 200, "{engine:?}: {units}");
        let units = units["items"].as_array().expect("items").clone();
        let kinds: Vec<&str> = units
            .iter()
            .map(|u| u["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(kinds, ["lesson", "quiz", "assignment", "live_classroom"]);
        for unit in &units {
            let id = unit["id"].as_str().expect("id");
            let (status, seen): (u16, Value) = api
                .call(
                    Method::GET,
                    &format!("/api/v1/units/{id}"),
                    Some(&tokens.learner),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{engine:?}: {seen}");
            let text = seen.to_string();
            assert!(
                !text.contains("hidden_tests") && !text.contains("negative"),
                "{engine:?}: hidden tests reached a learner: {text}"
            );
        }
        let tenant = cp
            .keys()
            .snapshot()
            .verifier()
            .verify(&tokens.instructor)
            .expect("token")
            .tid;

        // The edge that grades reads the assignment whole, with the service
        // key and the learner's tenant; nobody else can.
        let assignment = units
            .iter()
            .find(|u| u["kind"] == "assignment")
            .and_then(|u| u["id"].as_str())
            .expect("assignment");
        let grading = format!("/api/v1/grading/units/{assignment}?tenant_id={tenant}");
        let (status, whole) = api.call(Method::GET, &grading, Some(KEY), None).await;
        assert_eq!(status, 200, "{engine:?}: {whole}");
        assert_eq!(whole["version"], 1, "{engine:?}");
        assert!(
            whole["body"]["hidden_tests"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{engine:?}: the grader gets the hidden tests: {whole}"
        );
        for token in [
            tokens.learner.as_str(),
            tokens.operator.as_str(),
            "wrong-key",
        ] {
            let answer = api.call(Method::GET, &grading, Some(token), None).await;
            assert_eq!(code(&answer), (401, "unauthenticated".into()), "{engine:?}");
        }
        let elsewhere = format!("/api/v1/grading/units/{assignment}?tenant_id=another-tenant");
        let answer = api.call(Method::GET, &elsewhere, Some(KEY), None).await;
        assert_eq!(code(&answer).0, 404, "{engine:?}: {}", answer.1);
        let untenanted = format!("/api/v1/grading/units/{assignment}");
        let answer = api.call(Method::GET, &untenanted, Some(KEY), None).await;
        assert_eq!(code(&answer), (400, "bad_request".into()), "{engine:?}");

        // The tenant is on the per-seat plan, in its trial.
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT plan_id, status, quantity FROM billing_subscriptions WHERE tenant_id = $1",
        )
        .bind(&tenant)
        .fetch_all(cp.db().pool())
        .await
        .expect("subscriptions");
        assert_eq!(
            rows,
            [("per_seat".to_owned(), "trialing".to_owned(), 25)],
            "{engine:?}"
        );
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}
