//! Billing on both engines: the billing clock through trial, renewal,
//! failed payment, past due and cancellation; invoice totals against their
//! lines; ledger balances against paid invoices; idempotency keys (same and
//! different body, concurrent retries); Stripe webhook signatures (good,
//! bad, expired); tenant isolation and bad input through the real router.

use axum::http::Method;
use control_plane::billing::{self, stripe, Charge, DevProvider, StripeProvider, DAY_MS};
use control_plane::identity;
use control_plane::ledger;
use control_plane::tokens::{self, Role};
use control_plane::ControlPlane;
use serde_json::{json, Value};

use crate::databases::{Engine, TestDb, ENGINES};

const SECRET: &str = "whsec_test_secret_for_billing";
const SUBS: &str = "/api/v1/billing/subscriptions";

async fn open(engine: Engine) -> (TestDb, ControlPlane) {
    let mut db = TestDb::new(engine).await;
    db.config.ledger_expiry_sweep_interval_ms = 0;
    db.config.billing_clock_interval_ms = 0;
    db.config.billing_stripe_webhook_secret = SECRET.to_owned();
    let cp = db.open().await;
    (db, cp)
}

async fn tenant(cp: &ControlPlane, slug: &str) -> String {
    identity::ensure_tenant(cp.db(), slug, slug)
        .await
        .expect("tenant")
}

fn token(cp: &ControlPlane, tenant: &str, role: Role) -> String {
    tokens::issue(
        cp.keys(),
        &format!("user-{tenant}-{}", role.as_str()),
        tenant,
        role,
        "x@y.test",
        3600 * 24 * 400,
    )
    .expect("token")
}

/// The real router, with any headers.
#[derive(Clone)]
struct Api(axum::Router);

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, Value, bool) {
        let answer = crate::router::call(&self.0, method, path, token, headers, body).await;
        let replayed = answer.headers.contains_key("idempotent-replayed");
        (answer.status, answer.body, replayed)
    }

    async fn subscribe(&self, token: &str, key: &str, body: Value) -> (u16, Value, bool) {
        self.call(
            Method::POST,
            SUBS,
            Some(token),
            &[("idempotency-key", key)],
            Some(body.to_string()),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let (status, body, _) = self.call(Method::GET, path, Some(token), &[], None).await;
        (status, body)
    }
}

fn code(answer: &(u16, Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["error"]["code"].as_str().unwrap_or("-").to_owned(),
    )
}

fn dev() -> DevProvider {
    DevProvider::new("tok_decline")
}

async fn invoices(api: &Api, token: &str) -> Vec<Value> {
    let (status, page) = api.get(token, "/api/v1/billing/invoices?limit=100").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().expect("items").clone()
}

/// Every invoice's total is the sum of its lines' amounts, and each line's
/// amount is quantity times unit amount.
fn check_totals(invoices: &[Value]) {
    for invoice in invoices {
        let lines = invoice["lines"].as_array().expect("lines");
        assert!(!lines.is_empty(), "{invoice}");
        let mut sum = 0;
        for line in lines {
            assert_eq!(
                line["amount"].as_i64(),
                Some(
                    line["quantity"].as_i64().expect("q")
                        * line["unit_amount"].as_i64().expect("u")
                )
            );
            sum += line["amount"].as_i64().expect("amount");
        }
        assert_eq!(invoice["total"].as_i64(), Some(sum), "{invoice}");
    }
}

/// Paid invoices and the tenant's ledger agree: one transfer per paid
/// invoice (same id, same amount), revenue equal to their sum, and the
/// ledger's own audit sound.
async fn check_ledger(cp: &ControlPlane, tenant: &str, invoices: &[Value]) {
    let paid: Vec<&Value> = invoices.iter().filter(|i| i["status"] == "paid").collect();
    let mut sum = 0;
    for invoice in &paid {
        let id = invoice["id"].as_str().expect("id");
        let transfer = ledger::get_transfer(cp.db(), tenant, id)
            .await
            .expect("a paid invoice has its transfer");
        assert_eq!(Some(transfer.amount), invoice["total"].as_i64());
        sum += transfer.amount;
    }
    for invoice in invoices.iter().filter(|i| i["status"] != "paid") {
        let id = invoice["id"].as_str().expect("id");
        assert!(ledger::get_transfer(cp.db(), tenant, id).await.is_err());
    }
    let accounts = ledger::list_accounts(cp.db(), tenant, None, 100)
        .await
        .expect("accounts");
    let revenue = accounts
        .iter()
        .find(|a| a.code == "billing:revenue:EUR")
        .map_or(0, |a| a.credits_posted - a.debits_posted);
    assert_eq!(revenue, sum);
    let transfers = ledger::list_transfers(cp.db(), tenant, None, 1000)
        .await
        .expect("transfers");
    assert_eq!(transfers.len(), paid.len());
    assert!(ledger::audit(cp.db(), tenant)
        .await
        .expect("audit")
        .is_sound());
}

#[tokio::test]
async fn the_clock_moves_subscriptions_through_trial_renewal_past_due_and_cancel() {
    for engine in ENGINES {
        let (db, cp) = open(engine).await;
        let api = Api(control_plane::http::router(cp.clone()));
        let a = tenant(&cp, "tenant-a").await;
        let admin = token(&cp, &a, Role::Instructor);
        let now = || cp.clock().now_ms();

        let (status, sub, _) = api
            .subscribe(
                &admin,
                "k1",
                json!({"plan_id": "per_seat", "quantity": 3, "payment_token": "tok_visa"}),
            )
            .await;
        assert_eq!(status, 201, "{engine:?}: {sub}");
        assert_eq!(sub["status"], "trialing");
        let id = sub["id"].as_str().expect("id").to_owned();
        let path = format!("{SUBS}/{id}");
        assert_eq!(
            sub["trial_end"].as_i64().expect("trial end") - sub["created_at"].as_i64().expect("c"),
            14 * DAY_MS
        );

        // Nothing is due during the trial.
        assert_eq!(
            billing::advance(&cp, &dev(), now())
                .await
                .expect("advance")
                .invoices,
            0
        );
        cp.clock().advance(13 * DAY_MS);
        billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert!(invoices(&api, &admin).await.is_empty(), "{engine:?}");

        // Trial end: the first invoice, paid, and the subscription active.
        cp.clock().advance(DAY_MS);
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!((step.invoices, step.paid), (1, 1), "{engine:?}");
        let (_, sub) = api.get(&admin, &path).await;
        assert_eq!(sub["status"], "active", "{engine:?}: {sub}");
        let list = invoices(&api, &admin).await;
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0]["status"].as_str(), list[0]["total"].as_i64()),
            (Some("paid"), Some(3 * 1200))
        );
        // Advancing again over the same instant bills nothing new.
        assert_eq!(
            billing::advance(&cp, &dev(), now())
                .await
                .expect("advance")
                .invoices,
            0
        );

        // Renewal.
        cp.clock().advance(30 * DAY_MS);
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!((step.invoices, step.paid), (1, 1), "{engine:?}");

        // The card starts failing: past due, retried on each step.
        let (status, _, _) = api
            .call(
                Method::PUT,
                &format!("{path}/payment-method"),
                Some(&admin),
                &[],
                Some(json!({"payment_token": "tok_decline"}).to_string()),
            )
            .await;
        assert_eq!(status, 200);
        cp.clock().advance(30 * DAY_MS);
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!((step.invoices, step.failed), (1, 1), "{engine:?}");
        let (_, sub) = api.get(&admin, &path).await;
        assert_eq!(sub["status"], "past_due", "{engine:?}");
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!((step.invoices, step.failed), (0, 1), "{engine:?}");
        let list = invoices(&api, &admin).await;
        let open: Vec<_> = list.iter().filter(|i| i["status"] == "open").collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["attempts"], 2);

        // A working card: the retry collects and the subscription is active.
        api.call(
            Method::PUT,
            &format!("{path}/payment-method"),
            Some(&admin),
            &[],
            Some(json!({"payment_token": "tok_mastercard"}).to_string()),
        )
        .await;
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!(step.paid, 1, "{engine:?}");
        assert_eq!(api.get(&admin, &path).await.1["status"], "active");

        // Cancel: kept until the period ends, then canceled, never billed again.
        let (status, sub, _) = api
            .call(
                Method::POST,
                &format!("{path}/cancel"),
                Some(&admin),
                &[],
                None,
            )
            .await;
        assert_eq!(
            (status, sub["cancel_at_period_end"].as_bool()),
            (200, Some(true))
        );
        assert_eq!(sub["status"], "active");
        cp.clock().advance(30 * DAY_MS);
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!((step.invoices, step.canceled), (0, 1), "{engine:?}");
        assert_eq!(api.get(&admin, &path).await.1["status"], "canceled");
        cp.clock().advance(90 * DAY_MS);
        assert_eq!(
            billing::advance(&cp, &dev(), now())
                .await
                .expect("advance")
                .invoices,
            0
        );

        let list = invoices(&api, &admin).await;
        assert_eq!(list.len(), 3);
        assert!(list.iter().all(|i| i["status"] == "paid"), "{list:?}");
        check_totals(&list);
        check_ledger(&cp, &a, &list).await;

        // Another tenant whose card never works: past due at trial end,
        // canceled when the period runs out, its invoice uncollectible.
        let b = tenant(&cp, "tenant-b").await;
        let admin_b = token(&cp, &b, Role::Operator);
        let (status, sub_b, _) = api
            .subscribe(
                &admin_b,
                "k1",
                json!({"plan_id": "per_learner", "quantity": 7, "payment_token": "tok_decline"}),
            )
            .await;
        assert_eq!(status, 201, "{sub_b}");
        cp.clock().advance(14 * DAY_MS);
        billing::advance(&cp, &dev(), now()).await.expect("advance");
        let path_b = format!("{SUBS}/{}", sub_b["id"].as_str().expect("id"));
        assert_eq!(api.get(&admin_b, &path_b).await.1["status"], "past_due");
        cp.clock().advance(30 * DAY_MS);
        let step = billing::advance(&cp, &dev(), now()).await.expect("advance");
        assert_eq!(step.canceled, 1);
        assert_eq!(api.get(&admin_b, &path_b).await.1["status"], "canceled");
        let list_b = invoices(&api, &admin_b).await;
        assert_eq!(list_b.len(), 1);
        assert_eq!(
            (list_b[0]["status"].as_str(), list_b[0]["total"].as_i64()),
            (Some("uncollectible"), Some(7 * 400))
        );
        check_totals(&list_b);
        check_ledger(&cp, &b, &list_b).await;

        // A canceled tenant may subscribe again; the free plan is never invoiced.
        let (status, free, _) = api
            .subscribe(
                &admin,
                "k2",
                json!({"plan_id": "free", "payment_token": "none"}),
            )
            .await;
        assert_eq!(
            (status, free["status"].as_str()),
            (201, Some("active")),
            "{free}"
        );
        cp.clock().advance(95 * DAY_MS);
        assert_eq!(
            billing::advance(&cp, &dev(), now())
                .await
                .expect("advance")
                .invoices,
            0
        );
        let (_, free) = api
            .get(
                &admin,
                &format!("{SUBS}/{}", free["id"].as_str().expect("id")),
            )
            .await;
        assert_eq!(free["status"], "active");
        assert!(free["current_period_end"].as_i64().expect("end") > now());
        assert_eq!(invoices(&api, &admin).await.len(), 3);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_compare_the_body_and_survive_concurrent_retries() {
    for engine in ENGINES {
        let (db, cp) = open(engine).await;
        let api = Api(control_plane::http::router(cp.clone()));
        let a = tenant(&cp, "tenant-a").await;
        let admin = token(&cp, &a, Role::Instructor);
        let body = json!({"plan_id": "per_seat", "quantity": 2, "payment_token": "tok_visa"});

        // Many retries of one request race: all get the same subscription.
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (api, admin, body) = (api.clone(), admin.clone(), body.clone());
            racers.spawn(async move { api.subscribe(&admin, "same-key", body).await });
        }
        let mut ids = std::collections::BTreeSet::new();
        while let Some(answer) = racers.join_next().await {
            let (status, sub, _) = answer.expect("task");
            assert_eq!(status, 201, "{engine:?}: {sub}");
            ids.insert(sub["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(ids.len(), 1, "{engine:?}: {ids:?}");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM billing_subscriptions")
            .fetch_one(cp.db().pool())
            .await
            .expect("count");
        assert_eq!(count, 1);

        // Same key, same body (keys reordered): the first answer, replayed.
        let reordered = json!({"payment_token": "tok_visa", "quantity": 2, "plan_id": "per_seat"});
        let (status, sub, replayed) = api.subscribe(&admin, "same-key", reordered).await;
        assert_eq!((status, replayed), (201, true));
        assert!(ids.contains(sub["id"].as_str().expect("id")));

        // Same key, different body: refused.
        let other = json!({"plan_id": "per_seat", "quantity": 3, "payment_token": "tok_visa"});
        let (status, err, _) = api.subscribe(&admin, "same-key", other.clone()).await;
        assert_eq!(code(&(status, err)), (409, "idempotency_conflict".into()));

        // Another key while a subscription is live: a conflict, stored
        // under that key and replayed as such.
        let (status, err, replayed) = api.subscribe(&admin, "second-key", other.clone()).await;
        assert_eq!(
            (code(&(status, err)), replayed),
            ((409, "conflict".into()), false)
        );
        let (status, err, replayed) = api.subscribe(&admin, "second-key", other).await;
        assert_eq!(
            (code(&(status, err)), replayed),
            ((409, "conflict".into()), true)
        );

        // Keys are per tenant: another tenant's same key is its own.
        let b = tenant(&cp, "tenant-b").await;
        let admin_b = token(&cp, &b, Role::Instructor);
        let (status, sub_b, replayed) = api.subscribe(&admin_b, "same-key", body.clone()).await;
        assert_eq!((status, replayed), (201, false));
        assert!(!ids.contains(sub_b["id"].as_str().expect("id")));

        // No key, or a bad one: 400.
        let (status, err, _) = api
            .call(
                Method::POST,
                SUBS,
                Some(&admin),
                &[],
                Some(body.to_string()),
            )
            .await;
        assert_eq!(code(&(status, err)), (400, "bad_request".into()));
        let long = "k".repeat(300);
        let (status, err, _) = api.subscribe(&admin, &long, body).await;
        assert_eq!(code(&(status, err)), (400, "bad_request".into()));
        db.cleanup(vec![cp]).await;
    }
}

/// Method, path, body and the expected status and code of a bad request.
type BadCase = (Method, String, Option<String>, (u16, &'static str));

fn event(id: &str, kind: &str, invoice: &str) -> String {
    json!({"id": id, "object": "event", "type": kind,
           "data": {"object": {"id": format!("pi_{id}"), "object": "payment_intent",
                               "metadata": {"invoice_id": invoice}}}})
    .to_string()
}

#[tokio::test]
async fn stripe_requests_are_built_and_webhooks_are_verified() {
    // The request a payment would send; nothing sends it.
    let charge = Charge {
        invoice_id: "inv-1".into(),
        tenant_id: "t 1".into(),
        amount: 3600,
        currency: "EUR".into(),
        payment_token: "pm_card_visa".into(),
        idempotency_key: "inv-1:1".into(),
    };
    let request = StripeProvider::new("sk_test_x").build_payment_intent(&charge);
    assert_eq!(
        (request.method, request.url),
        ("POST", stripe::PAYMENT_INTENTS_URL)
    );
    assert!(request
        .headers
        .contains(&("Idempotency-Key", "inv-1:1".to_owned())));
    assert!(request
        .headers
        .contains(&("Authorization", "Bearer sk_test_x".to_owned())));
    assert_eq!(
        request.body,
        "amount=3600&currency=eur&payment_method=pm_card_visa&confirm=true&off_session=true\
         &metadata%5Binvoice_id%5D=inv-1&metadata%5Btenant_id%5D=t%201"
    );

    for engine in ENGINES {
        let (db, cp) = open(engine).await;
        let api = Api(control_plane::http::router(cp.clone()));
        let a = tenant(&cp, "tenant-a").await;
        let admin = token(&cp, &a, Role::Instructor);
        let now = || cp.clock().now_ms();
        let (status, sub, _) = api
            .subscribe(
                &admin,
                "k",
                json!({"plan_id": "per_seat", "quantity": 1, "payment_token": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, 201);
        let path = format!("{SUBS}/{}", sub["id"].as_str().expect("id"));

        // With Stripe the charge is pending until its webhook arrives.
        cp.clock().advance(14 * DAY_MS);
        let stripe = StripeProvider::new("sk_test_x");
        let step = billing::advance(&cp, &stripe, now())
            .await
            .expect("advance");
        assert_eq!((step.invoices, step.pending), (1, 1), "{engine:?}");
        let list = invoices(&api, &admin).await;
        assert_eq!(list[0]["status"], "open");
        let invoice = list[0]["id"].as_str().expect("id").to_owned();

        let hook = |payload: String, header: Option<String>| {
            let api = api.clone();
            async move {
                let headers: Vec<(&str, &str)> = header
                    .as_deref()
                    .map(|h| vec![("stripe-signature", h)])
                    .unwrap_or_default();
                let (status, body, _) = api
                    .call(
                        Method::POST,
                        "/api/v1/billing/webhooks/stripe",
                        None,
                        &headers,
                        Some(payload),
                    )
                    .await;
                (status, body)
            }
        };
        let secs = now() / 1000;
        let paid = event("evt_1", "payment_intent.succeeded", &invoice);

        // Refused: no header, a wrong secret, a tampered body, an old or
        // future timestamp, garbage.
        let refusals = [
            (paid.clone(), None),
            (
                paid.clone(),
                Some(stripe::sign_webhook(paid.as_bytes(), "whsec_wrong", secs)),
            ),
            (
                paid.replace("evt_1", "evt_2"),
                Some(stripe::sign_webhook(paid.as_bytes(), SECRET, secs)),
            ),
            (
                paid.clone(),
                Some(stripe::sign_webhook(paid.as_bytes(), SECRET, secs - 301)),
            ),
            (
                paid.clone(),
                Some(stripe::sign_webhook(paid.as_bytes(), SECRET, secs + 301)),
            ),
            (paid.clone(), Some("t=abc,v1=zz".to_owned())),
            (paid.clone(), Some(format!("t={secs}"))),
        ];
        for (payload, header) in refusals {
            let answer = hook(payload, header.clone()).await;
            assert_eq!(
                code(&answer),
                (400, "bad_signature".into()),
                "{engine:?}: {header:?}"
            );
        }
        assert_eq!(invoices(&api, &admin).await[0]["status"], "open");

        // Accepted: settles the invoice into the ledger, once, however often
        // it is delivered; a second v1 (a rolled secret) may be present.
        let good = stripe::sign_webhook(paid.as_bytes(), SECRET, secs - 299);
        let header = format!("{good},v1=00ff");
        for _ in 0..3 {
            let (status, body) = hook(paid.clone(), Some(header.clone())).await;
            assert_eq!(
                (status, body["action"].as_str()),
                (200, Some("settled")),
                "{engine:?}: {body}"
            );
        }
        let list = invoices(&api, &admin).await;
        assert_eq!(list[0]["status"], "paid");
        check_ledger(&cp, &a, &list).await;
        assert_eq!(api.get(&admin, &path).await.1["status"], "active");

        // A failed payment on the next renewal makes it past due; a later
        // success makes it active again.
        cp.clock().advance(30 * DAY_MS);
        billing::advance(&cp, &stripe, now())
            .await
            .expect("advance");
        let list = invoices(&api, &admin).await;
        let next = list
            .iter()
            .find(|i| i["status"] == "open")
            .expect("open invoice");
        let next = next["id"].as_str().expect("id").to_owned();
        let secs = now() / 1000;
        let failed = event("evt_3", "payment_intent.payment_failed", &next);
        let (status, body) = hook(
            failed.clone(),
            Some(stripe::sign_webhook(failed.as_bytes(), SECRET, secs)),
        )
        .await;
        assert_eq!((status, body["action"].as_str()), (200, Some("past_due")));
        assert_eq!(api.get(&admin, &path).await.1["status"], "past_due");
        let ok = event("evt_4", "payment_intent.succeeded", &next);
        let (status, _) = hook(
            ok.clone(),
            Some(stripe::sign_webhook(ok.as_bytes(), SECRET, secs)),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(api.get(&admin, &path).await.1["status"], "active");
        check_ledger(&cp, &a, &invoices(&api, &admin).await).await;

        // Signed events about nothing we know are acknowledged and ignored;
        // a signed body that is not an event is a 400.
        let other = event("evt_5", "customer.created", "no-such-invoice");
        let (status, body) = hook(
            other.clone(),
            Some(stripe::sign_webhook(other.as_bytes(), SECRET, secs)),
        )
        .await;
        assert_eq!((status, body["action"].as_str()), (200, Some("ignored")));
        let junk = "[1, 2".to_owned();
        let answer = hook(
            junk.clone(),
            Some(stripe::sign_webhook(junk.as_bytes(), SECRET, secs)),
        )
        .await;
        assert_eq!(code(&answer), (400, "bad_request".into()));
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn billing_is_tenant_scoped_role_checked_and_refuses_bad_input() {
    for engine in ENGINES {
        let (db, cp) = open(engine).await;
        let api = Api(control_plane::http::router(cp.clone()));
        let a = tenant(&cp, "tenant-a").await;
        let b = tenant(&cp, "tenant-b").await;
        let admin = token(&cp, &a, Role::Instructor);
        let learner = token(&cp, &a, Role::Learner);
        let other = token(&cp, &b, Role::Instructor);
        let (status, sub, _) = api
            .subscribe(
                &admin,
                "k",
                json!({"plan_id": "per_seat", "quantity": 1, "payment_token": "tok_visa"}),
            )
            .await;
        assert_eq!(status, 201);
        cp.clock().advance(14 * DAY_MS);
        billing::advance(&cp, &dev(), cp.clock().now_ms())
            .await
            .expect("advance");
        let sub_path = format!("{SUBS}/{}", sub["id"].as_str().expect("id"));
        let invoice = invoices(&api, &admin).await[0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let invoice_path = format!("/api/v1/billing/invoices/{invoice}");

        let (status, plans) = api.get(&admin, "/api/v1/billing/plans").await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = plans["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        assert_eq!(ids, ["free", "per_learner", "per_seat"]);

        // Another tenant sees nothing of A's.
        assert_eq!(
            code(&api.get(&other, &sub_path).await),
            (404, "not_found".into())
        );
        assert_eq!(
            code(&api.get(&other, &invoice_path).await),
            (404, "not_found".into())
        );
        assert!(invoices(&api, &other).await.is_empty());
        let (status, _, _) = api
            .call(
                Method::POST,
                &format!("{sub_path}/cancel"),
                Some(&other),
                &[],
                None,
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(
            api.get(&admin, &sub_path).await.1["cancel_at_period_end"],
            false
        );
        assert_eq!(api.get(&admin, &invoice_path).await.0, 200);

        // Learners and strangers: 403 and 401 on every route.
        for path in [
            "/api/v1/billing/plans",
            "/api/v1/billing/invoices",
            sub_path.as_str(),
            invoice_path.as_str(),
        ] {
            assert_eq!(
                code(&api.get(&learner, path).await),
                (403, "forbidden".into()),
                "{path}"
            );
            let (status, body, _) = api.call(Method::GET, path, None, &[], None).await;
            assert_eq!(
                code(&(status, body)),
                (401, "unauthenticated".into()),
                "{path}"
            );
        }
        let (status, _, _) = api
            .subscribe(
                &learner,
                "x",
                json!({"plan_id": "free", "payment_token": "t"}),
            )
            .await;
        assert_eq!(status, 403);

        // Bad input: a clear 4xx with a code, never a 500.
        let cases: Vec<BadCase> = vec![
            (
                Method::POST,
                SUBS.into(),
                Some("{not json".into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(r#"{"plan_id": 5, "payment_token": "t"}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(r#"{"plan_id": "free", "payment_token": "t", "x": 1}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(r#"{"plan_id": "gold", "payment_token": "t"}"#.into()),
                (422, "validation_failed"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(r#"{"plan_id": "per_seat", "quantity": 0, "payment_token": "t"}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(
                    r#"{"plan_id": "per_seat", "quantity": 99999999999, "payment_token": "t"}"#
                        .into(),
                ),
                (400, "bad_request"),
            ),
            (
                Method::POST,
                SUBS.into(),
                Some(r#"{"plan_id": "per_seat", "payment_token": "a b"}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::PUT,
                format!("{sub_path}/payment-method"),
                Some(r#"{"payment_token": ""}"#.into()),
                (400, "bad_request"),
            ),
            (
                Method::PUT,
                format!("{SUBS}/nope/payment-method"),
                Some(r#"{"payment_token": "tok"}"#.into()),
                (404, "not_found"),
            ),
            (
                Method::GET,
                format!("{SUBS}/nope"),
                None,
                (404, "not_found"),
            ),
            (
                Method::POST,
                format!("{SUBS}/nope/cancel"),
                None,
                (404, "not_found"),
            ),
            (
                Method::GET,
                "/api/v1/billing/invoices/nope".into(),
                None,
                (404, "not_found"),
            ),
            (
                Method::GET,
                "/api/v1/billing/invoices?limit=0".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/billing/invoices?limit=abc".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/billing/invoices?limit=1000000".into(),
                None,
                (400, "bad_request"),
            ),
            (
                Method::GET,
                "/api/v1/billing/invoices?colour=red".into(),
                None,
                (400, "bad_request"),
            ),
        ];
        for (index, (method, path, body, expected)) in cases.into_iter().enumerate() {
            let (status, answer, _) = api
                .call(
                    method,
                    &path,
                    Some(&admin),
                    &[("idempotency-key", &format!("bad-{index}"))],
                    body,
                )
                .await;
            assert_eq!(
                code(&(status, answer)),
                (expected.0, expected.1.to_owned()),
                "{engine:?} case {index}: {path}"
            );
        }
        // Pagination walks every invoice once.
        cp.clock().advance(60 * DAY_MS);
        billing::advance(&cp, &dev(), cp.clock().now_ms())
            .await
            .expect("advance");
        let (_, first) = api.get(&admin, "/api/v1/billing/invoices?limit=2").await;
        let after = first["next_after"].as_str().expect("a next page");
        let (_, second) = api
            .get(
                &admin,
                &format!("/api/v1/billing/invoices?limit=2&after={after}"),
            )
            .await;
        assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
        assert!(second["next_after"].is_null());
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn an_unconfigured_webhook_secret_refuses_every_event() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cp = db.open().await;
    let api = Api(control_plane::http::router(cp.clone()));
    let payload = event("evt_1", "payment_intent.succeeded", "x");
    let header = stripe::sign_webhook(payload.as_bytes(), "", cp.clock().now_ms() / 1000);
    let (status, body, _) = api
        .call(
            Method::POST,
            "/api/v1/billing/webhooks/stripe",
            None,
            &[("stripe-signature", &header)],
            Some(payload),
        )
        .await;
    assert_eq!(code(&(status, body)), (400, "bad_signature".into()));
    db.cleanup(vec![cp]).await;
}
