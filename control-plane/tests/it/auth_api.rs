//! The auth API through the real router (in process, no mocks): sign-up,
//! sign-in, refresh rotation and reuse detection, sign-out, password change,
//! key rotation and role checks, on both engines.

use axum::http::Method;
use control_plane::seed;
use serde_json::{json, Value};

use crate::databases::{TestDb, ENGINES};

/// The real router, called in process (shared with other suites).
pub(crate) struct Api {
    router: axum::Router,
}

impl Api {
    pub(crate) fn new(cp: &control_plane::ControlPlane) -> Self {
        Self {
            router: control_plane::http::router(cp.clone()),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let answer = crate::router::call(
            &self.router,
            method,
            path,
            token,
            &[],
            body.map(|value| value.to_string()),
        )
        .await;
        (answer.status, answer.body)
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }
}

pub(crate) fn code(answer: &(u16, Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["error"]["code"].as_str().unwrap_or("-").to_owned(),
    )
}

#[tokio::test]
async fn sign_up_creates_or_joins_tenants_and_refuses_bad_input() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let up = "/api/v1/auth/sign-up";

        let (status, pair) = api
            .post(up, None, json!({"email": "Ada@Example.test", "password": "correct horse", "display_name": "Ada",
                                   "organisation": {"slug": "ada-academy", "name": "Ada Academy"}}))
            .await;
        assert_eq!(status, 201, "{engine:?}: {pair}");
        let (_, me) = api
            .call(
                Method::GET,
                "/api/v1/me",
                pair["access_token"].as_str(),
                None,
            )
            .await;
        assert_eq!(
            (me["role"].as_str(), me["email"].as_str()),
            (Some("instructor"), Some("ada@example.test"))
        );

        let (status, pair) = api
            .post(up, None, json!({"email": "bob@example.test", "password": "another pass", "display_name": "Bob", "tenant": "ada-academy"}))
            .await;
        assert_eq!(status, 201, "{pair}");
        let (_, bob) = api
            .call(
                Method::GET,
                "/api/v1/me",
                pair["access_token"].as_str(),
                None,
            )
            .await;
        assert_eq!(bob["role"], "learner");
        assert_eq!(bob["tenant_id"], me["tenant_id"]);

        let cases = [
            (
                json!({"email": "ADA@example.test", "password": "0123456789", "display_name": "X", "tenant": "ada-academy"}),
                (409, "conflict"),
            ),
            (
                json!({"email": "c@example.test", "password": "0123456789", "display_name": "C", "organisation": {"slug": "ada-academy", "name": "Again"}}),
                (409, "conflict"),
            ),
            (
                json!({"email": "c@example.test", "password": "0123456789", "display_name": "C", "tenant": "no-such-tenant"}),
                (404, "not_found"),
            ),
            (
                json!({"email": "c@example.test", "password": "0123456789", "display_name": "C"}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "c@example.test", "password": "012345678", "display_name": "C", "tenant": "ada-academy"}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "not-an-email", "password": "0123456789", "display_name": "C", "tenant": "ada-academy"}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "c@example.test", "password": "0123456789", "display_name": " ", "tenant": "ada-academy"}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "c@example.test", "password": "0123456789", "display_name": "C", "organisation": {"slug": "Bad Slug", "name": "B"}}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "c@example.test", "password": 12, "display_name": "C", "tenant": "ada-academy"}),
                (400, "bad_request"),
            ),
            (
                json!({"email": "c@example.test", "password": "x".repeat(1025), "display_name": "C", "tenant": "ada-academy"}),
                (400, "bad_request"),
            ),
        ];
        for (body, expected) in cases {
            let answer = api.post(up, None, body.clone()).await;
            assert_eq!(
                code(&answer),
                (expected.0, expected.1.to_owned()),
                "{engine:?}: {body}"
            );
        }
        // At the password minimum exactly, sign-up works.
        let answer = api
            .post(up, None, json!({"email": "c@example.test", "password": "0123456789", "display_name": "C", "tenant": "ada-academy"}))
            .await;
        assert_eq!(answer.0, 201, "{}", answer.1);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_ends_the_session() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        seed::seed_dev(&cp).await.expect("seed");
        let api = Api::new(&cp);
        let (status, first) = api
            .post(
                "/api/v1/auth/sign-in",
                None,
                json!({"email": "LEARNER@dev.lyceum.test", "password": "lyceum-dev-learner"}),
            )
            .await;
        assert_eq!(status, 200, "{first}");
        let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();

        let (status, second) = api
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": r1}))
            .await;
        assert_eq!(status, 200, "{engine:?}: {second}");
        let r2 = second["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        assert_ne!(r1, r2);
        let (status, _) = api
            .call(
                Method::GET,
                "/api/v1/me",
                second["access_token"].as_str(),
                None,
            )
            .await;
        assert_eq!(status, 200);

        // Using r1 again is reuse: refused, and r2 dies with it.
        let answer = api
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": r1}))
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        let answer = api
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": r2}))
            .await;
        assert_eq!(
            code(&answer),
            (401, "unauthenticated".to_owned()),
            "{engine:?}: the family must be revoked"
        );

        // Sign-out ends a session; twice is harmless.
        let (_, third) = api
            .post(
                "/api/v1/auth/sign-in",
                None,
                json!({"email": "learner@dev.lyceum.test", "password": "lyceum-dev-learner"}),
            )
            .await;
        let r3 = third["refresh_token"].as_str().expect("refresh").to_owned();
        for _ in 0..2 {
            let (status, _) = api
                .post("/api/v1/auth/sign-out", None, json!({"refresh_token": r3}))
                .await;
            assert_eq!(status, 204);
        }
        let answer = api
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": r3}))
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        let answer = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": "made-up"}),
            )
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn password_change_checks_the_old_one_and_ends_other_sessions() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        seed::seed_dev(&cp).await.expect("seed");
        let api = Api::new(&cp);
        let sign_in = |password: &'static str| {
            api.post(
                "/api/v1/auth/sign-in",
                None,
                json!({"email": "instructor@dev.lyceum.test", "password": password}),
            )
        };
        let (_, session) = sign_in("lyceum-dev-instructor").await;
        let token = session["access_token"].as_str().expect("token");
        // The same user signed in elsewhere: another session, refreshed
        // once, so its family has a spent and a live token.
        let (_, elsewhere) = sign_in("lyceum-dev-instructor").await;
        let (status, elsewhere) = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": elsewhere["refresh_token"]}),
            )
            .await;
        assert_eq!(status, 200, "{engine:?}: {elsewhere}");
        let path = "/api/v1/auth/password";

        let answer = api
            .post(
                path,
                Some(token),
                json!({"current_password": "wrong", "new_password": "a brand new one"}),
            )
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        let answer = api
            .post(
                path,
                Some(token),
                json!({"current_password": "lyceum-dev-instructor", "new_password": "short"}),
            )
            .await;
        assert_eq!(code(&answer), (400, "bad_request".to_owned()));
        let answer = api.post(path, None, json!({"current_password": "lyceum-dev-instructor", "new_password": "a brand new one"})).await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        let (status, body) = api.post(path, Some(token), json!({"current_password": "lyceum-dev-instructor", "new_password": "a brand new one"})).await;
        assert_eq!(status, 204, "{engine:?}: {body}");

        assert_eq!(
            code(&sign_in("lyceum-dev-instructor").await),
            (401, "unauthenticated".to_owned())
        );
        assert_eq!(sign_in("a brand new one").await.0, 200);
        // The caller's own session goes on: its refresh token refreshes,
        // and so does the one that refresh hands out.
        let (status, kept) = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await;
        assert_eq!(
            status, 200,
            "{engine:?}: the caller's session goes on: {kept}"
        );
        let (status, kept) = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": kept["refresh_token"]}),
            )
            .await;
        assert_eq!(status, 200, "{engine:?}: {kept}");
        // Every other session ends.
        let answer = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": elsewhere["refresh_token"]}),
            )
            .await;
        assert_eq!(
            code(&answer),
            (401, "unauthenticated".to_owned()),
            "{engine:?}: other sessions end"
        );
        // A token that names no session (the dev tokens `lyceum dev`
        // hands out) cannot tell which one is the caller's: every session
        // ends, the caller's too.
        let tokens = seed::seed_dev(&cp).await.expect("seed");
        let (_, learner) = api
            .post(
                "/api/v1/auth/sign-in",
                None,
                json!({"email": "learner@dev.lyceum.test", "password": "lyceum-dev-learner"}),
            )
            .await;
        let (status, body) = api
            .post(
                path,
                Some(&tokens.learner),
                json!({"current_password": "lyceum-dev-learner", "new_password": "a brand new one"}),
            )
            .await;
        assert_eq!(status, 204, "{engine:?}: {body}");
        let answer = api
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refresh_token": learner["refresh_token"]}),
            )
            .await;
        assert_eq!(code(&answer), (401, "unauthenticated".to_owned()));
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn operators_rotate_and_retire_keys_and_others_may_not() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        let tokens = seed::seed_dev(&cp).await.expect("seed");
        let api = Api::new(&cp);
        let rotate = "/api/v1/auth/keys/rotate";
        assert_eq!(
            code(&api.post(rotate, Some(&tokens.learner), json!({})).await),
            (403, "forbidden".to_owned())
        );
        assert_eq!(
            code(&api.post(rotate, Some(&tokens.instructor), json!({})).await),
            (403, "forbidden".to_owned())
        );
        assert_eq!(
            code(&api.call(Method::POST, rotate, None, None).await),
            (401, "unauthenticated".to_owned())
        );

        let old_kid = cp.keys().snapshot().signing_kid().to_owned();
        let (status, rotated) = api
            .call(Method::POST, rotate, Some(&tokens.operator), None)
            .await;
        assert_eq!(status, 200, "{engine:?}: {rotated}");
        let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
        assert_ne!(new_kid, old_kid);
        assert_eq!(
            cp.keys().snapshot().signing_kid(),
            new_kid,
            "the new key signs"
        );
        let (_, jwks) = api
            .call(Method::GET, "/.well-known/jwks.json", None, None)
            .await;
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));

        // Tokens signed with the old key still verify until it is retired.
        assert_eq!(
            api.call(Method::GET, "/api/v1/me", Some(&tokens.learner), None)
                .await
                .0,
            200
        );
        let retire_new = format!("/api/v1/auth/keys/{new_kid}");
        assert_eq!(
            code(
                &api.call(Method::DELETE, &retire_new, Some(&tokens.operator), None)
                    .await
            ),
            (409, "conflict".to_owned())
        );
        let retire_old = format!("/api/v1/auth/keys/{old_kid}");
        assert_eq!(
            code(
                &api.call(Method::DELETE, &retire_old, Some(&tokens.learner), None)
                    .await
            ),
            (403, "forbidden".to_owned())
        );
        // The operator's own token was signed by the old key: sign in afresh.
        let (_, fresh) = api
            .post(
                "/api/v1/auth/sign-in",
                None,
                json!({"email": "operator@dev.lyceum.test", "password": "lyceum-dev-operator"}),
            )
            .await;
        let operator = fresh["access_token"].as_str().expect("token");
        assert_eq!(
            api.call(Method::DELETE, &retire_old, Some(operator), None)
                .await
                .0,
            204
        );
        assert_eq!(
            code(
                &api.call(Method::DELETE, &retire_old, Some(operator), None)
                    .await
            ),
            (404, "not_found".to_owned())
        );
        assert_eq!(
            code(
                &api.call(Method::GET, "/api/v1/me", Some(&tokens.learner), None)
                    .await
            ),
            (401, "unauthenticated".to_owned())
        );
        assert_eq!(
            api.call(Method::GET, "/api/v1/me", Some(operator), None)
                .await
                .0,
            200
        );
        db.cleanup(vec![cp]).await;
    }
}
