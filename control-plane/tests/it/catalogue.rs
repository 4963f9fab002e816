//! The public catalogue through the real router on both engines: the demo
//! tenant's courses as HTML with no token, only published units, text
//! escaped, nothing of a private tenant, and the setting only authors may
//! change (which takes effect at once, past the page cache).

use axum::http::Method;
use serde_json::json;

use crate::auth_api::{code, Api};
use crate::databases::{TestDb, ENGINES};
use crate::router::{call, Answer};

async fn page(cp: &control_plane::ControlPlane, path: &str) -> Answer {
    call(
        &control_plane::http::router(cp.clone()),
        Method::GET,
        path,
        None,
        &[],
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_catalogue_pages_show_published_courses_to_anyone() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let tokens = control_plane::seed::seed_dev(&cp).await.expect("seed");

        // The demo tenant's catalogue is public: HTML, cacheable, no token.
        let index = page(&cp, "/catalogue/dev").await;
        assert_eq!(index.status, 200, "{engine:?}: {}", index.text);
        assert_eq!(
            index.headers["content-type"], "text/html; charset=utf-8",
            "{engine:?}"
        );
        assert_eq!(index.headers["cache-control"], "public, max-age=60");
        assert!(index.text.contains("Python from zero"), "{}", index.text);
        assert!(
            index.text.contains("<link rel=\"canonical\""),
            "{}",
            index.text
        );
        let course_id = {
            let (_, courses) = api
                .call(Method::GET, "/api/v1/courses", Some(&tokens.learner), None)
                .await;
            courses["items"][0]["id"].as_str().expect("id").to_owned()
        };
        let course = page(&cp, &format!("/catalogue/dev/courses/{course_id}")).await;
        assert_eq!(course.status, 200, "{engine:?}: {}", course.text);
        for kind in ["Lesson", "Quiz", "Assignment", "Live class"] {
            assert!(
                course.text.contains(kind),
                "{engine:?}: {kind}: {}",
                course.text
            );
        }
        for secret in ["hidden_tests", "negative", "reference_solution", "* 2"] {
            assert!(
                !course.text.contains(secret),
                "{engine:?}: {secret} leaked: {}",
                course.text
            );
        }

        // A course with only a draft is not in the catalogue; text is escaped.
        let (status, draft_course) = api
            .post(
                "/api/v1/courses",
                Some(&tokens.instructor),
                json!({"title": "<script>alert(1)</script> drafts", "summary": "soon"}),
            )
            .await;
        assert_eq!(status, 201, "{draft_course}");
        let draft_id = draft_course["id"].as_str().expect("id");
        let (_, module) = api
            .post(
                &format!("/api/v1/courses/{draft_id}/modules"),
                Some(&tokens.instructor),
                json!({"title": "One"}),
            )
            .await;
        let (status, unit) = api
            .post(
                &format!(
                    "/api/v1/modules/{}/units",
                    module["id"].as_str().expect("module")
                ),
                Some(&tokens.instructor),
                json!({"kind": "lesson", "title": "Soon", "body": {"markdown": "x"}}),
            )
            .await;
        assert_eq!(status, 201, "{unit}");
        let index = page(&cp, "/catalogue/dev").await;
        assert!(!index.text.contains("drafts"), "{engine:?}: {}", index.text);
        let missing = page(&cp, &format!("/catalogue/dev/courses/{draft_id}")).await;
        assert_eq!(missing.status, 404, "{engine:?}");
        let unit_id = unit["id"].as_str().expect("unit");
        let (status, _) = api
            .call(
                Method::POST,
                &format!("/api/v1/units/{unit_id}/publish"),
                Some(&tokens.instructor),
                None,
            )
            .await;
        assert_eq!(status, 201);
        let index = page(&cp, "/catalogue/dev").await;
        assert!(
            index
                .text
                .contains("&#60;script&#62;alert(1)&#60;/script&#62; drafts")
                && !index.text.contains("<script>"),
            "{engine:?}: published now, and escaped: {}",
            index.text
        );

        // Authors switch it; learners may not; private means not found.
        let settings = "/api/v1/catalogue/settings";
        let (status, seen) = api
            .call(Method::GET, settings, Some(&tokens.instructor), None)
            .await;
        assert_eq!(
            (status, seen),
            (200, json!({"public": true, "url": "/catalogue/dev"})),
            "{engine:?}"
        );
        let refused = api
            .call(
                Method::PUT,
                settings,
                Some(&tokens.learner),
                Some(json!({"public": false})),
            )
            .await;
        assert_eq!(code(&refused), (403, "forbidden".into()), "{engine:?}");
        let bad = api
            .call(
                Method::PUT,
                settings,
                Some(&tokens.instructor),
                Some(json!({"public": "yes"})),
            )
            .await;
        assert_eq!(bad.0, 400, "{engine:?}: {}", bad.1);
        let (status, off) = api
            .call(
                Method::PUT,
                settings,
                Some(&tokens.instructor),
                Some(json!({"public": false})),
            )
            .await;
        assert_eq!((status, &off["public"]), (200, &json!(false)), "{engine:?}");
        for path in [
            "/catalogue/dev".to_owned(),
            format!("/catalogue/dev/courses/{course_id}"),
            "/catalogue/no-such-tenant".to_owned(),
        ] {
            let gone = page(&cp, &path).await;
            assert_eq!(gone.status, 404, "{engine:?}: {path}");
            assert!(gone.text.contains("Not found"), "{}", gone.text);
        }
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}
