//! Enrollments and cohorts through the real router on both engines:
//! learners enroll themselves in published courses only, instructors enroll
//! others (into cohorts), enrolling twice (even racing) makes one
//! enrollment, dropping and re-enrolling, roles, paging and bad input.

use axum::http::Method;
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane};
use serde_json::{json, Value};

use crate::content::{code, course, lesson, open, tenant, Api};
use crate::databases::ENGINES;

/// Creates and publishes a unit; answers its id.
pub(crate) async fn published(
    api: &Api,
    token: &str,
    module: &str,
    kind: &str,
    body: Value,
) -> String {
    let unit = api
        .ok(
            Method::POST,
            &format!("/api/v1/modules/{module}/units"),
            token,
            Some(&json!({"kind": kind, "title": kind, "body": body})),
            201,
        )
        .await;
    let id = unit["id"].as_str().expect("id").to_owned();
    api.ok(
        Method::POST,
        &format!("/api/v1/units/{id}/publish"),
        token,
        None,
        201,
    )
    .await;
    id
}

/// A real member of `tenant` with `role`: (user id, token).
pub(crate) async fn member(
    cp: &ControlPlane,
    tenant: &str,
    email: &str,
    role: Role,
) -> (String, String) {
    let member = identity::ensure_member(cp.db(), tenant, email, "Member", "a-long-password", role)
        .await
        .expect("member");
    let token =
        tokens::issue(cp.keys(), &member.user_id, tenant, role, email, 3600).expect("token");
    (member.user_id, token)
}

fn user_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["user_id"].as_str().expect("user_id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_are_idempotent_scoped_and_paged() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| c.analytics_interval_ms = 0).await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let enrollments = format!("/api/v1/courses/{course_id}/enrollments");

        // Nothing published yet: learners cannot enroll; unknown is 404.
        let answer = api
            .send(Method::POST, &enrollments, &t.learner, &json!({}))
            .await;
        assert_eq!(code(&answer), (404, "not_published".into()), "{engine:?}");
        let answer = api
            .send(
                Method::POST,
                "/api/v1/courses/nope/enrollments",
                &t.learner,
                &json!({}),
            )
            .await;
        assert_eq!(code(&answer), (404, "not_found".into()));
        published(&api, &t.instructor, &module, "lesson", lesson()).await;

        // First time 201, then 200 with the same enrollment.
        let first = api
            .ok(
                Method::POST,
                &enrollments,
                &t.learner,
                Some(&json!({})),
                201,
            )
            .await;
        assert_eq!(
            (&first["user_id"], &first["status"], &first["cohort_id"]),
            (&json!(t.learner_id), &json!("active"), &Value::Null)
        );
        let again = api
            .ok(
                Method::POST,
                &enrollments,
                &t.learner,
                Some(&json!({})),
                200,
            )
            .await;
        assert_eq!(again, first);

        // Learners enroll themselves only.
        for body in [json!({"user_id": "someone"}), json!({"cohort_id": "c"})] {
            let answer = api
                .send(Method::POST, &enrollments, &t.learner, &body)
                .await;
            assert_eq!(code(&answer), (403, "forbidden".into()), "{body}");
        }

        // Cohorts: instructors create and list them; names are unique.
        let cohorts = format!("/api/v1/courses/{course_id}/cohorts");
        let spring = api
            .ok(
                Method::POST,
                &cohorts,
                &t.instructor,
                Some(&json!({"name": " spring "})),
                201,
            )
            .await;
        assert_eq!(spring["name"], "spring");
        let spring_id = spring["id"].as_str().expect("id").to_owned();
        for (body, expected) in [
            (json!({"name": "spring"}), (409, "conflict")),
            (json!({"name": "  "}), (422, "validation_failed")),
            (json!({"name": "x".repeat(101)}), (422, "validation_failed")),
            (json!({"title": "x"}), (400, "bad_request")),
        ] {
            let answer = api.send(Method::POST, &cohorts, &t.instructor, &body).await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()), "{body}");
        }
        api.ok(
            Method::POST,
            &cohorts,
            &t.instructor,
            Some(&json!({"name": "autumn"})),
            201,
        )
        .await;
        let page = api
            .ok(
                Method::GET,
                &format!("{cohorts}?limit=1"),
                &t.instructor,
                None,
                200,
            )
            .await;
        assert_eq!(
            (
                page["items"][0]["name"].as_str(),
                page["next_after"].as_str()
            ),
            (Some("spring"), Some(spring_id.as_str()))
        );

        // An instructor enrolls others, racing: one enrollment, one 201.
        let mut others = Vec::new();
        for i in 0..3 {
            others.push(member(&cp, &t.id, &format!("l{i}@acme.test"), Role::Learner).await);
        }
        let api = std::sync::Arc::new(api);
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (api, path, token) = (api.clone(), enrollments.clone(), t.instructor.clone());
            let body = json!({"user_id": others[0].0, "cohort_id": spring_id});
            racers.spawn(async move { api.send(Method::POST, &path, &token, &body).await });
        }
        let mut created = 0;
        while let Some(answer) = racers.join_next().await {
            let (status, body) = answer.expect("task");
            assert!(
                status == 201 || status == 200,
                "{engine:?}: {status} {body}"
            );
            assert_eq!(body["cohort_id"], json!(spring_id));
            created += usize::from(status == 201);
        }
        assert_eq!(created, 1, "{engine:?}");
        api.ok(
            Method::POST,
            &enrollments,
            &t.instructor,
            Some(&json!({"user_id": others[1].0})),
            201,
        )
        .await;
        for (body, expected) in [
            (json!({"user_id": "nobody"}), (404, "not_found")),
            (
                json!({"user_id": others[2].0, "cohort_id": "nope"}),
                (404, "not_found"),
            ),
            (json!({"user_id": ""}), (422, "validation_failed")),
            (json!({"user": "x"}), (400, "bad_request")),
        ] {
            let answer = api
                .send(Method::POST, &enrollments, &t.instructor, &body)
                .await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()), "{body}");
        }
        let answer = api
            .call(Method::POST, &enrollments, Some(&t.instructor), Some("{"))
            .await;
        assert_eq!(code(&answer), (400, "bad_request".into()));

        // Paged in user id order; a cohort's only.
        let mut everyone = vec![
            t.learner_id.clone(),
            others[0].0.clone(),
            others[1].0.clone(),
        ];
        everyone.sort();
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = api
                .ok(
                    Method::GET,
                    &format!("{enrollments}?limit=2&after={after}"),
                    &t.instructor,
                    None,
                    200,
                )
                .await;
            seen.extend(user_ids(&page));
            match page["next_after"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, everyone, "{engine:?}");
        let page = api
            .ok(
                Method::GET,
                &format!("{enrollments}?cohort_id={spring_id}"),
                &t.instructor,
                None,
                200,
            )
            .await;
        assert_eq!(user_ids(&page), vec![others[0].0.clone()]);
        for bad in ["limit=0", "limit=1001", "colour=red"] {
            let answer = api
                .get(&format!("{enrollments}?{bad}"), &t.instructor)
                .await;
            assert_eq!(code(&answer), (400, "bad_request".into()), "{bad}");
        }
        let answer = api.get(&enrollments, &t.learner).await;
        assert_eq!(code(&answer), (403, "forbidden".into()));

        // The learner's own list; dropping, again, and re-enrolling.
        let mine = api
            .ok(Method::GET, "/api/v1/me/enrollments", &t.learner, None, 200)
            .await;
        assert_eq!(mine["items"][0]["course_id"], json!(course_id));
        let own = format!("{enrollments}/{}", t.learner_id);
        for _ in 0..2 {
            let (status, _) = api.call(Method::DELETE, &own, Some(&t.learner), None).await;
            assert_eq!(status, 204, "{engine:?}");
        }
        let mine = api
            .ok(Method::GET, "/api/v1/me/enrollments", &t.learner, None, 200)
            .await;
        assert_eq!(mine["items"][0]["status"], "dropped");
        assert!(mine["items"][0]["dropped_at"].is_i64());
        let theirs = format!("{enrollments}/{}", others[1].0);
        let answer = api
            .call(Method::DELETE, &theirs, Some(&t.learner), None)
            .await;
        assert_eq!(code(&answer), (403, "forbidden".into()));
        let answer = api
            .call(
                Method::DELETE,
                &format!("{enrollments}/{}", others[2].0),
                Some(&t.instructor),
                None,
            )
            .await;
        assert_eq!(code(&answer), (404, "not_found".into()));
        let back = api
            .ok(
                Method::POST,
                &enrollments,
                &t.learner,
                Some(&json!({})),
                200,
            )
            .await;
        assert_eq!(
            (&back["status"], &back["enrolled_at"], &back["dropped_at"]),
            (&json!("active"), &first["enrolled_at"], &Value::Null)
        );

        // The events: three first enrollments, a drop, a re-enrollment.
        control_plane::events::publish(cp.db(), 1_000)
            .await
            .expect("publish");
        let events = control_plane::events::read(cp.db().pool(), 0, 100)
            .await
            .expect("events");
        let kinds: Vec<(&str, bool)> = events
            .iter()
            .map(|e| {
                (
                    e.kind.as_str(),
                    e.payload["reactivated"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("enrolled", false),
                ("enrolled", false),
                ("enrolled", false),
                ("enrollment_dropped", false),
                ("enrolled", true)
            ],
            "{engine:?}"
        );
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}
