//! Live classes through the real router on both engines: tickets name the
//! right class role and verify as tickets only (never as access tokens, and
//! the reverse), with the published key set as an edge would; attendance
//! reports are recorded once, compared canonically, validated, and become
//! each learner's live-classroom progress.

use axum::http::Method;
use control_plane::identity;
use control_plane::tokens::{self, LiveTicketClaims, Role, TokenVerifier};
use control_plane::ControlPlaneError;
use serde_json::{json, Value};

use crate::auth_api;
use crate::content::{code, course, lesson, live_classroom, open, tenant};
use crate::databases::ENGINES;
use crate::enrollments::{member, published};

const KEY: &str = "edge-service-key-for-tests";

fn unix_now() -> u64 {
    u64::try_from(control_plane::clock::unix_ms() / 1000).expect("clock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_name_the_class_role_and_verify_only_as_tickets() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.live_ticket_ttl_seconds = 5_400;
        })
        .await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let class = published(
            &api,
            &t.instructor,
            &module,
            "live_classroom",
            live_classroom(),
        )
        .await;
        let a_lesson = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let (bob, bob_token) = member(&cp, &t.id, "bob@acme.test", Role::Learner).await;
        let tickets = "/api/v1/live/tickets";
        let ask = |token: &str, class: &str| {
            let (api, token, body) = (&api, token.to_owned(), json!({"class_id": class}));
            async move { api.send(Method::POST, tickets, &token, &body).await }
        };
        // The edge's view: a verifier built from the published key set.
        let (_, jwks) = api
            .call(Method::GET, "/.well-known/jwks.json", None, None)
            .await;
        let edge = TokenVerifier::new(&serde_json::from_value(jwks).expect("jwks")).expect("keys");

        // Not enrolled: 403 not_enrolled; enrolled: a learner's ticket.
        assert_eq!(
            code(&ask(&t.learner, &class).await),
            (403, "not_enrolled".into())
        );
        api.ok(
            Method::POST,
            &format!("/api/v1/courses/{course_id}/enrollments"),
            &t.learner,
            Some(&json!({})),
            201,
        )
        .await;
        let before = unix_now();
        let (status, answer) = ask(&t.learner, &class).await;
        assert_eq!(status, 200, "{engine:?}: {answer}");
        assert_eq!(
            (
                &answer["class_id"],
                &answer["class_role"],
                &answer["region"]
            ),
            (&json!(class), &json!("learner"), &json!("eu-west"))
        );
        let ticket = answer["ticket"].as_str().expect("ticket");
        let claims: LiveTicketClaims = edge.verify_live_ticket(ticket).expect("a ticket");
        assert_eq!(
            claims,
            LiveTicketClaims {
                iss: tokens::ISSUER.into(),
                aud: tokens::LIVE_AUDIENCE.into(),
                sub: t.learner_id.clone(),
                tid: t.id.clone(),
                cls: class.clone(),
                crole: tokens::ClassRole::Learner,
                name: "Learner".into(),
                reg: Some("eu-west".into()),
                iat: claims.iat,
                exp: claims.iat + 5_400,
            }
        );
        assert!(claims.iat >= before && claims.iat <= unix_now());
        // Classmates see the ticket's name: the display name, never an
        // email address (neither the account's nor the access token's).
        no_email_in(ticket);
        assert_eq!(answer["expires_at"], json!(claims.exp * 1000));
        assert_eq!(claims.crole.as_str(), "learner");

        // Instructors of the tenant get an instructor's ticket, enrolled or
        // not; a dropped learner gets none.
        let ines = identity::ensure_member(
            cp.db(),
            &t.id,
            "ines@acme.test",
            "Ines Instructor",
            "a-long-password",
            Role::Instructor,
        )
        .await
        .expect("instructor");
        let ines_token = tokens::issue(
            cp.keys(),
            &ines.user_id,
            &t.id,
            Role::Instructor,
            "ines@acme.test",
            600,
        )
        .expect("token");
        let (_, answer) = ask(&ines_token, &class).await;
        let ines_ticket = answer["ticket"].as_str().expect("ticket");
        let claims = edge.verify_live_ticket(ines_ticket).expect("ticket");
        assert_eq!(
            (
                answer["class_role"].as_str(),
                claims.crole,
                claims.name.as_str()
            ),
            (
                Some("instructor"),
                tokens::ClassRole::Instructor,
                "Ines Instructor"
            )
        );
        no_email_in(ines_ticket);
        // A token whose user is not (or no longer) a member of the tenant
        // gets no ticket: there is no one to name.
        assert_eq!(
            code(&ask(&t.instructor, &class).await),
            (403, "not_enrolled".into()),
            "{engine:?}"
        );
        api.ok(
            Method::POST,
            &format!("/api/v1/courses/{course_id}/enrollments"),
            &t.instructor,
            Some(&json!({"user_id": bob})),
            201,
        )
        .await;
        assert_eq!(ask(&bob_token, &class).await.0, 200);
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/api/v1/courses/{course_id}/enrollments/{bob}"),
                Some(&bob_token),
                None,
            )
            .await;
        assert_eq!(status, 204);
        assert_eq!(
            code(&ask(&bob_token, &class).await),
            (403, "not_enrolled".into())
        );

        // Not a class: unknown, another kind, another tenant's, unpublished.
        let other = tenant(&cp, "other").await;
        let draft = api
            .ok(
                Method::POST,
                &format!("/api/v1/modules/{module}/units"),
                &t.instructor,
                Some(&json!({"kind": "live_classroom", "title": "d", "body": live_classroom()})),
                201,
            )
            .await;
        let draft = draft["id"].as_str().expect("id");
        let long = "x".repeat(500);
        for (token, class, expected) in [
            (&t.learner, "no-such-class", (404, "not_found")),
            (&t.learner, a_lesson.as_str(), (404, "not_found")),
            (&other.instructor, class.as_str(), (404, "not_found")),
            (&other.learner, class.as_str(), (404, "not_found")),
            (&t.instructor, draft, (404, "not_published")),
            (&t.learner, long.as_str(), (404, "not_found")),
        ] {
            let answer = ask(token, class).await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()), "{class}");
        }
        for body in [
            "{}",
            r#"{"class_id": 7}"#,
            r#"{"class_id": "x", "more": 1}"#,
            "{",
        ] {
            let answer = api
                .call(Method::POST, tickets, Some(&t.learner), Some(body))
                .await;
            assert_eq!(code(&answer), (400, "bad_request".into()), "{body}");
        }
        assert_eq!(
            api.call(Method::POST, tickets, None, Some("{}")).await.0,
            401
        );

        // A ticket is not an access token, nor the reverse.
        let answer = api
            .call(Method::GET, "/api/v1/me", Some(ticket), None)
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".into()));
        assert!(matches!(
            edge.verify(ticket),
            Err(ControlPlaneError::BadToken(_))
        ));
        assert!(matches!(
            edge.verify_live_ticket(&t.learner),
            Err(ControlPlaneError::BadToken(_))
        ));
        let tampered = format!("{}x", &ticket[..ticket.len() - 1]);
        assert!(edge.verify_live_ticket(&tampered).is_err());

        // Expired, another audience, another issuer: refused; a key the
        // edge has not seen is UnknownKey (so it refetches).
        let set = cp.keys().snapshot();
        let sign = |edit: &dyn Fn(&mut Value)| {
            let mut claims = serde_json::to_value(edge.verify_live_ticket(ticket).expect("ticket"))
                .expect("claims");
            edit(&mut claims);
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
            header.kid = Some(set.signing_kid().to_owned());
            jsonwebtoken::encode(&header, &claims, set.signing_key()).expect("sign")
        };
        let now = unix_now();
        for (what, forged) in [
            ("expired", sign(&|c| c["exp"] = json!(now - 60))),
            ("audience", sign(&|c| c["aud"] = json!("lyceum-other"))),
            ("issuer", sign(&|c| c["iss"] = json!("someone-else"))),
            ("role", sign(&|c| c["crole"] = json!("operator"))),
            (
                "no audience",
                sign(&|c| {
                    c.as_object_mut().expect("object").remove("aud");
                }),
            ),
        ] {
            assert!(
                matches!(
                    edge.verify_live_ticket(&forged),
                    Err(ControlPlaneError::BadToken(_))
                ),
                "{what}"
            );
        }
        assert!(edge.verify_live_ticket(&sign(&|_| {})).is_ok());
        let kid = cp.keys().rotate(cp.db()).await.expect("rotate");
        let (_, answer) = ask(&t.learner, &class).await;
        match edge.verify_live_ticket(answer["ticket"].as_str().expect("ticket")) {
            Err(ControlPlaneError::UnknownKey(unknown)) => assert_eq!(unknown, kid),
            other => panic!("{other:?}"),
        }
        db.cleanup(vec![cp]).await;
    }
}

/// Decodes a ticket's claims as any holder can (no key needed) and checks
/// that no value in them is an email address.
fn no_email_in(ticket: &str) {
    use base64::Engine as _;
    let payload = ticket.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    let object = claims.as_object().expect("claims object");
    assert!(object.contains_key("name"), "{claims}");
    for (key, value) in object {
        assert!(
            !value.to_string().contains('@'),
            "the ticket's {key} carries an email address: {claims}"
        );
    }
}

fn attendee(user: &str, role: &str, seconds: u64, submissions: u32, accepted: u32) -> Value {
    json!({"user_id": user, "class_role": role, "joined_at": "2026-12-01T17:00:00Z",
           "left_at": "2026-12-01T18:00:00+00:00", "seconds_present": seconds,
           "submissions": submissions, "accepted": accepted})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendance_is_recorded_once_and_becomes_progress() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.edge_service_key = KEY.to_owned();
        })
        .await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let class = published(
            &api,
            &t.instructor,
            &module,
            "live_classroom",
            live_classroom(),
        )
        .await;
        let a_lesson = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let (bob, bob_token) = member(&cp, &t.id, "bob@acme.test", Role::Learner).await;
        for user in [&t.learner_id, &bob] {
            api.ok(
                Method::POST,
                &format!("/api/v1/courses/{course_id}/enrollments"),
                &t.instructor,
                Some(&json!({"user_id": user})),
                201,
            )
            .await;
        }
        let path = "/api/v1/live/attendance";
        let report = |attendees: Vec<Value>| {
            json!({"class_id": class, "tenant_id": t.id, "epoch": 3,
                   "started_at": "2026-12-01T17:00:00Z", "ended_at": "2026-12-01T18:00:00Z",
                   "attendees": attendees})
        };
        // Ada (the learner) stays 50 minutes, Bob 10; the instructor's id
        // need not be a member.
        let people = vec![
            attendee(&t.learner_id, "learner", 3_000, 4, 3),
            attendee(&bob, "learner", 600, 0, 0),
            attendee("instructor-acme", "instructor", 3_600, 0, 0),
        ];
        let first = report(people.clone());
        let edge = auth_api::Api::new(&cp);
        let edge = std::sync::Arc::new(edge);

        // Only the service key.
        for token in [
            None,
            Some("wrong-key-wrong-key"),
            Some(t.instructor.as_str()),
        ] {
            let answer = edge.post(path, token, first.clone()).await;
            assert_eq!(code(&answer), (401, "unauthenticated".into()), "{engine:?}");
        }
        // Before any report, instructors read 404.
        let read = format!("/api/v1/live/{class}/attendance");
        assert_eq!(
            code(&api.get(&read, &t.instructor).await),
            (404, "not_found".into())
        );

        // Racing resends: one 201, the rest 200, the same answer.
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (edge, body) = (edge.clone(), first.clone());
            racers.spawn(async move { edge.post(path, Some(KEY), body).await });
        }
        let mut created = 0;
        while let Some(answer) = racers.join_next().await {
            let (status, body) = answer.expect("task");
            assert!(
                status == 201 || status == 200,
                "{engine:?}: {status} {body}"
            );
            assert_eq!(body, json!({"class_id": class, "recorded": 3}));
            created += usize::from(status == 201);
        }
        assert_eq!(created, 1, "{engine:?}");
        // The same people in another order is the same report.
        let mut reordered = people.clone();
        reordered.reverse();
        let (status, body) = edge.post(path, Some(KEY), report(reordered)).await;
        assert_eq!(
            (status, body),
            (200, json!({"class_id": class, "recorded": 3}))
        );
        // Another report for the class: 409, the first stands.
        let mut changed = people.clone();
        changed[1] = attendee(&bob, "learner", 3_600, 0, 0);
        let answer = edge.post(path, Some(KEY), report(changed)).await;
        assert_eq!(
            code(&answer),
            (409, "idempotency_mismatch".into()),
            "{engine:?}"
        );
        let mut other_epoch = first.clone();
        other_epoch["epoch"] = json!(4);
        let answer = edge.post(path, Some(KEY), other_epoch).await;
        assert_eq!(code(&answer), (409, "idempotency_mismatch".into()));

        // Bad reports: exact codes, nothing recorded.
        let other = tenant(&cp, "other").await;
        let too_many: Vec<Value> = (0..=control_plane::learning::live::ATTENDEES_MAX)
            .map(|i| attendee(&format!("u{i}"), "learner", 1, 0, 0))
            .collect();
        let with = |field: &str, value: Value| {
            let mut body = report(vec![attendee("u1", "learner", 1, 0, 0)]);
            body[field] = value;
            body
        };
        let with_attendee = |field: &str, value: Value| {
            let mut one = attendee("u1", "learner", 1, 0, 0);
            one[field] = value;
            report(vec![one])
        };
        let cases: Vec<(&str, Value, (u16, &str))> = vec![
            ("too many", report(too_many), (422, "validation_failed")),
            (
                "ends first",
                with("ended_at", json!("2026-12-01T16:00:00Z")),
                (422, "validation_failed"),
            ),
            (
                "three days",
                with("ended_at", json!("2026-12-04T17:00:00Z")),
                (422, "validation_failed"),
            ),
            (
                "bad time",
                with("started_at", json!("yesterday")),
                (422, "validation_failed"),
            ),
            (
                "epoch",
                with("epoch", json!(u64::MAX)),
                (422, "validation_failed"),
            ),
            ("epoch type", with("epoch", json!(-1)), (400, "bad_request")),
            (
                "other tenant",
                with("tenant_id", json!(other.id)),
                (404, "not_found"),
            ),
            (
                "no tenant",
                with("tenant_id", json!("nope")),
                (404, "not_found"),
            ),
            (
                "not a class",
                with("class_id", json!(a_lesson)),
                (404, "not_found"),
            ),
            (
                "empty class",
                with("class_id", json!("")),
                (422, "validation_failed"),
            ),
            (
                "unknown field",
                with("colour", json!("red")),
                (400, "bad_request"),
            ),
            (
                "accepted",
                with_attendee("accepted", json!(2)),
                (422, "validation_failed"),
            ),
            (
                "left first",
                with_attendee("left_at", json!("2026-12-01T16:00:00Z")),
                (422, "validation_failed"),
            ),
            (
                "seconds",
                with_attendee("seconds_present", json!(3 * 86_400)),
                (422, "validation_failed"),
            ),
            (
                "role",
                with_attendee("class_role", json!("operator")),
                (400, "bad_request"),
            ),
            (
                "user",
                with_attendee("user_id", json!("")),
                (422, "validation_failed"),
            ),
            (
                "twice",
                report(vec![
                    attendee("u1", "learner", 1, 0, 0),
                    attendee("u1", "learner", 2, 0, 0),
                ]),
                (422, "validation_failed"),
            ),
        ];
        for (what, body, expected) in cases {
            let answer = edge.post(path, Some(KEY), body).await;
            assert_eq!(
                code(&answer),
                (expected.0, expected.1.into()),
                "{engine:?} {what}"
            );
        }
        // The route's own body limit, at its edge.
        let router = control_plane::http::router(cp.clone());
        let max = control_plane::learning::live::ATTENDANCE_BODY_BYTES_MAX;
        for (size, expected) in [
            (max, (400, "bad_request")),
            (max + 1, (413, "payload_too_large")),
        ] {
            let answer = crate::router::call(
                &router,
                Method::POST,
                path,
                Some(KEY),
                &[],
                Some(" ".repeat(size)),
            )
            .await;
            let got = (
                answer.status,
                answer.body["error"]["code"].as_str().unwrap_or("-"),
            );
            assert_eq!(got, expected, "{engine:?} {size} bytes");
        }
        let mut missing = first.clone();
        missing.as_object_mut().expect("object").remove("attendees");
        assert_eq!(code(&edge.post(path, Some(KEY), missing).await).0, 400);

        // Ada attended (50 of 60 minutes), Bob did not (10): progress and
        // the frontier agree.
        let progress = |token: &str| {
            let (api, token, class) = (&api, token.to_owned(), class.clone());
            let path = format!("/api/v1/me/progress?course_id={course_id}");
            async move {
                let page = api.ok(Method::GET, &path, &token, None, 200).await;
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .find(|u| u["unit_id"] == json!(class))
                    .cloned()
                    .expect("the class")
            }
        };
        let ada = progress(&t.learner).await;
        assert_eq!(
            (&ada["completed"], &ada["score"], &ada["progress"]),
            (
                &json!(true),
                &json!(75),
                &json!({"kind": "live_classroom", "seconds_present": 3000, "submissions": 4, "accepted": 3})
            ),
            "{engine:?}"
        );
        let bobs = progress(&bob_token).await;
        assert_eq!(
            (&bobs["completed"], &bobs["progress"]["seconds_present"]),
            (&json!(false), &json!(600))
        );
        let frontier = api
            .ok(Method::GET, "/api/v1/paths/frontier", &t.learner, None, 200)
            .await;
        assert!(frontier["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|u| u["unit_id"] != json!(class)));

        // Instructors read it back, paged by user id.
        let all = api.ok(Method::GET, &read, &t.instructor, None, 200).await;
        assert_eq!(
            (&all["epoch"], &all["attendees"], &all["started_at"]),
            (&json!(3), &json!(3), &json!("2026-12-01T17:00:00Z"))
        );
        let mut ids: Vec<String> =
            [t.learner_id.clone(), bob.clone(), "instructor-acme".into()].into();
        ids.sort();
        let page = api
            .ok(
                Method::GET,
                &format!("{read}?limit=2"),
                &t.instructor,
                None,
                200,
            )
            .await;
        let next = page["next_after"].as_str().expect("next").to_owned();
        assert_eq!(next, ids[1]);
        let rest = api
            .ok(
                Method::GET,
                &format!("{read}?limit=2&after={next}"),
                &t.instructor,
                None,
                200,
            )
            .await;
        assert_eq!(rest["items"][0]["user_id"], json!(ids[2]));
        assert_eq!(rest["next_after"], Value::Null);
        assert_eq!(
            code(&api.get(&read, &t.learner).await),
            (403, "forbidden".into())
        );
        assert_eq!(
            code(&api.get(&read, &other.instructor).await),
            (404, "not_found".into())
        );
        db.cleanup(vec![cp]).await;
    }
}

#[test]
fn learning_and_outbox_settings_are_checked_at_their_edges() {
    use control_plane::ControlPlaneConfig;
    fn check(edit: impl Fn(&mut ControlPlaneConfig), expected: Option<&str>) {
        let mut config = ControlPlaneConfig::default();
        edit(&mut config);
        let got = config.validate().err().map(|err| err.to_string());
        assert_eq!(got.as_deref(), expected);
    }
    assert_eq!(ControlPlaneConfig::default().live_ticket_ttl_seconds, 7_200);
    for ok in [1, 86_400] {
        check(|c| c.live_ticket_ttl_seconds = ok, None);
    }
    for bad in [0, 86_401] {
        check(
            |c| c.live_ticket_ttl_seconds = bad,
            Some("invalid setting control_plane.live_ticket_ttl_seconds: must be 1 to 86400"),
        );
    }
    for key in [
        "events_page_size_max",
        "events_publish_batch_max",
        "analytics_batch_max",
    ] {
        let set = |c: &mut ControlPlaneConfig, v: u32| match key {
            "events_page_size_max" => c.events_page_size_max = v,
            "events_publish_batch_max" => c.events_publish_batch_max = v,
            _ => c.analytics_batch_max = v,
        };
        check(|c| set(c, 1), None);
        let message = format!("invalid setting control_plane.{key}: must be at least 1");
        check(|c| set(c, 0), Some(&message));
    }
    check(|c| c.analytics_interval_ms = 0, None);
}
