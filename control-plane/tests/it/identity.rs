//! Migrations, keys, dev seeding, sign-in and tenant scoping, on both engines.

use control_plane::seed::{self, dev_email, dev_password};
use control_plane::tokens::{Role, TokenVerifier};
use control_plane::{identity, ControlPlaneConfig, ControlPlaneError, DbKind, ErrorCode};

use crate::databases::{Engine, TestDb, ENGINES};

#[tokio::test]
async fn migrations_and_keys_survive_reopening() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let first = db.open().await;
        let expected_kind = match engine {
            Engine::Sqlite => DbKind::Sqlite,
            Engine::Postgres => DbKind::Postgres,
        };
        assert_eq!(first.db().kind(), expected_kind);
        first.db().ping().await.expect("ping");
        // Reopening runs the migrations again (a no-op) and must keep the key.
        let second = db.open().await;
        assert_eq!(
            first.keys().snapshot().signing_kid(),
            second.keys().snapshot().signing_kid(),
            "{engine:?}: the signing key must persist"
        );
        assert_eq!(second.keys().snapshot().jwks().keys.len(), 1);
        db.cleanup(vec![first, second]).await;
    }
}

#[tokio::test]
async fn dev_seed_is_idempotent_and_its_tokens_verify() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        let first = seed::seed_dev(&cp).await.expect("seed");
        let learner_before = identity::find_member_by_email(cp.db(), &dev_email(Role::Learner))
            .await
            .expect("lookup")
            .expect("learner exists");
        seed::seed_dev(&cp).await.expect("seed again");
        let learner_after = identity::find_member_by_email(cp.db(), &dev_email(Role::Learner))
            .await
            .expect("lookup")
            .expect("learner exists");
        assert_eq!(learner_before, learner_after, "{engine:?}: seeding twice");

        let verifier = TokenVerifier::new(cp.keys().snapshot().jwks()).expect("verifier");
        for (role, token) in [
            (Role::Learner, &first.learner),
            (Role::Instructor, &first.instructor),
            (Role::Operator, &first.operator),
        ] {
            let claims = verifier.verify(token).expect("dev token verifies");
            assert_eq!(claims.role, role);
            assert_eq!(claims.email, dev_email(role));
            assert_eq!(
                claims.exp - claims.iat,
                cp.config().dev_token_ttl_seconds,
                "dev tokens live dev_token_ttl_seconds"
            );
        }
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn sign_in_checks_the_password_and_hides_unknown_emails() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        seed::seed_dev(&cp).await.expect("seed");
        let email = dev_email(Role::Instructor);
        let member = identity::authenticate(cp.db(), &email, &dev_password(Role::Instructor))
            .await
            .expect("right password");
        assert_eq!(member.role, Role::Instructor);
        for (email, password) in [
            (email.as_str(), "wrong"),
            ("nobody@dev.lyceum.test", "lyceum-dev-learner"),
        ] {
            let err = identity::authenticate(cp.db(), email, password)
                .await
                .expect_err("must fail");
            assert!(matches!(err, ControlPlaneError::BadCredentials), "{err}");
            assert_eq!(err.code(), ErrorCode::Unauthenticated);
        }
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn members_are_scoped_by_tenant() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let cp = db.open().await;
        let a = identity::ensure_tenant(cp.db(), "tenant-a", "A")
            .await
            .expect("a");
        let b = identity::ensure_tenant(cp.db(), "tenant-b", "B")
            .await
            .expect("b");
        assert_ne!(a, b);
        let again = identity::ensure_tenant(cp.db(), "tenant-a", "A")
            .await
            .expect("a again");
        assert_eq!(a, again, "ensure_tenant is idempotent");
        let alice = identity::ensure_member(
            cp.db(),
            &a,
            "alice@a.test",
            "Alice",
            "pw-alice",
            Role::Learner,
        )
        .await
        .expect("alice");
        let found = identity::member_in_tenant(cp.db(), &a, &alice.user_id)
            .await
            .expect("query");
        assert_eq!(found.as_ref(), Some(&alice));
        let leaked = identity::member_in_tenant(cp.db(), &b, &alice.user_id)
            .await
            .expect("query");
        assert_eq!(
            leaked, None,
            "{engine:?}: tenant B must not see tenant A's member"
        );
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cp = db.open().await;
    let tokens = seed::seed_dev(&cp).await.expect("seed");
    let other_db = TestDb::new(Engine::Sqlite).await;
    let other = other_db.open().await;
    let verifier = TokenVerifier::new(cp.keys().snapshot().jwks()).expect("verifier");

    // Flip one character in the middle of the signature (the last one may
    // only carry padding bits).
    let signature_start = tokens.learner.rfind('.').expect("three parts") + 1;
    let middle = signature_start + (tokens.learner.len() - signature_start) / 2;
    let mut tampered = tokens.learner.clone().into_bytes();
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let foreign = seed::seed_dev(&other).await.expect("seed other").learner;
    for (what, token) in [
        ("tampered signature", tampered.as_str()),
        ("key from another control plane", foreign.as_str()),
        ("not a token", "abc"),
    ] {
        let err = verifier.verify(token).expect_err(what);
        assert_eq!(err.code(), ErrorCode::Unauthenticated, "{what}: {err}");
    }
    db.cleanup(vec![cp]).await;
    other_db.cleanup(vec![other]).await;
}

#[test]
fn config_limits_are_checked_at_their_edges() {
    fn check(edit: impl Fn(&mut ControlPlaneConfig), expected: Option<&str>) {
        let mut config = ControlPlaneConfig::default();
        edit(&mut config);
        let got = config.validate().err().map(|err| err.to_string());
        assert_eq!(got.as_deref(), expected);
    }
    check(|_| {}, None);
    check(|c| c.db_connections_max = 1, None);
    check(
        |c| c.db_connections_max = 0,
        Some("invalid setting control_plane.db_connections_max: must be at least 1"),
    );
    check(|c| c.credential_bytes_max = 64, None);
    check(
        |c| c.credential_bytes_max = 63,
        Some("invalid setting control_plane.credential_bytes_max: must be at least 64"),
    );
    check(|c| c.database_url = "postgres://u:p@h/db".into(), None);
    check(
        |c| c.database_url = "mysql://h/db".into(),
        Some("invalid setting control_plane.database_url: must start with sqlite:, postgres:// or postgresql://"),
    );
}
