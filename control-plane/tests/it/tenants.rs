//! The operators' list of every tenant (`GET /api/v1/tenants`) through the
//! real router on both engines: only operators reach it, it pages by id up
//! to `tenants_page_size_max`, counts memberships and shows the tenant's
//! live subscription (none, or its plan and status).

use axum::http::Method;
use control_plane::seed;
use control_plane::ControlPlaneConfig;
use serde_json::{json, Value};

use crate::auth_api::{code, Api};
use crate::databases::{TestDb, ENGINES};

const TENANTS: &str = "/api/v1/tenants";

#[tokio::test]
async fn operators_page_through_every_tenant_with_members_and_plan() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.billing_clock_interval_ms = 0;
        db.config.tenants_page_size_max = 2;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let dev = seed::seed_dev(&cp).await.expect("seed");

        // Two organisations; alpha gets a learner too and subscribes.
        let mut admins = Vec::new();
        for slug in ["alpha", "beta"] {
            let (status, pair) = api
                .post(
                    "/api/v1/auth/sign-up",
                    None,
                    json!({"email": format!("admin@{slug}.test"), "password": "correct horse",
                           "display_name": "Admin", "organisation": {"slug": slug, "name": format!("Org {slug}")}}),
                )
                .await;
            assert_eq!(status, 201, "{engine:?}: {pair}");
            admins.push(pair["access_token"].as_str().expect("token").to_owned());
        }
        let (status, _) = api
            .post(
                "/api/v1/auth/sign-up",
                None,
                json!({"email": "lea@alpha.test", "password": "correct horse",
                       "display_name": "Lea", "tenant": "alpha"}),
            )
            .await;
        assert_eq!(status, 201);
        let subscribed = crate::router::call(
            &control_plane::http::router(cp.clone()),
            Method::POST,
            "/api/v1/billing/subscriptions",
            Some(&admins[0]),
            &[("idempotency-key", "alpha-1")],
            Some(
                json!({"plan_id": "per_seat", "quantity": 2, "payment_token": "tok_visa"})
                    .to_string(),
            ),
        )
        .await;
        assert_eq!(subscribed.status, 201, "{engine:?}: {}", subscribed.body);

        // Only operators.
        for token in [&dev.learner, &dev.instructor, &admins[0]] {
            let token = token.as_str();
            let answer = api.call(Method::GET, TENANTS, Some(token), None).await;
            assert_eq!(code(&answer), (403, "forbidden".into()), "{engine:?}");
        }
        let answer = api.call(Method::GET, TENANTS, None, None).await;
        assert_eq!(answer.0, 401, "{engine:?}");

        // The page limit at its edge: 2 is the max here, 0 and 3 are refused.
        for bad in ["?limit=0", "?limit=3", "?limit=x", "?tenant=dev"] {
            let answer = api
                .call(
                    Method::GET,
                    &format!("{TENANTS}{bad}"),
                    Some(&dev.operator),
                    None,
                )
                .await;
            assert_eq!(
                code(&answer),
                (400, "bad_request".into()),
                "{engine:?} {bad}"
            );
        }

        // Without a limit a page holds the max; pages follow next_after to
        // the end, in id order, each tenant once.
        let mut seen: Vec<Value> = Vec::new();
        let mut path = TENANTS.to_owned();
        let mut pages = 0;
        loop {
            let (status, page) = api
                .call(Method::GET, &path, Some(&dev.operator), None)
                .await;
            assert_eq!(status, 200, "{engine:?}: {page}");
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 2);
            seen.extend(items.iter().cloned());
            pages += 1;
            match page["next_after"].as_str() {
                Some(after) => path = format!("{TENANTS}?limit=2&after={after}"),
                None => break,
            }
        }
        // 3 tenants in pages of 2: a full page, then the last one.
        assert_eq!((seen.len(), pages), (3, 2), "{engine:?}: {seen:?}");
        let ids: Vec<&str> = seen.iter().filter_map(|t| t["id"].as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "{engine:?}: id order");
        let by_slug = |slug: &str| {
            seen.iter()
                .find(|t| t["slug"] == slug)
                .unwrap_or_else(|| panic!("{engine:?}: no tenant {slug} in {seen:?}"))
                .clone()
        };
        let dev_tenant = by_slug("dev");
        assert_eq!(dev_tenant["name"], "Lyceum dev");
        assert_eq!(dev_tenant["members"], 3, "learner, instructor, operator");
        // The demo subscribes the dev tenant.
        assert_eq!(dev_tenant["plan_id"], control_plane::demo::DEMO_PLAN);
        assert!(dev_tenant["subscription_status"].is_string());
        let alpha = by_slug("alpha");
        assert_eq!(
            (&alpha["name"], &alpha["members"], &alpha["plan_id"]),
            (&json!("Org alpha"), &json!(2), &json!("per_seat"))
        );
        // per_seat has a 14-day trial.
        assert_eq!(alpha["subscription_status"], "trialing");
        let beta = by_slug("beta");
        assert_eq!(
            (&beta["members"], &beta["subscription_status"]),
            (&json!(1), &Value::Null)
        );
        assert!(beta["created_at"].as_i64().is_some_and(|t| t > 0));
        db.cleanup(vec![cp]).await;
    }
}

#[test]
fn the_tenant_page_size_is_checked_at_its_edge() {
    assert_eq!(ControlPlaneConfig::default().tenants_page_size_max, 1_000);
    let mut config = ControlPlaneConfig {
        tenants_page_size_max: 1,
        ..ControlPlaneConfig::default()
    };
    assert!(config.validate().is_ok());
    config.tenants_page_size_max = 0;
    assert_eq!(
        config
            .validate()
            .err()
            .map(|err| err.to_string())
            .as_deref(),
        Some("invalid setting control_plane.tenants_page_size_max: must be at least 1")
    );
}
