//! The outbox of domain events and the analytics projection on both
//! engines: each kind is written with its change, and a change that fails
//! (an injected database fault) leaves no event, nor an event that fails
//! any change; the cursor API pages in id order without gaps while writers
//! run concurrently, and never skips an event whose writer committed late;
//! the projection survives a failed round and a restart without losing or
//! double-counting anything.

use axum::http::Method;
use control_plane::analytics::{self, Fault};
use control_plane::billing::{self, subscriptions, DevProvider, DAY_MS};
use control_plane::events::{self, EventKind, NewEvent};
use control_plane::ledger::{self, BalanceLimit, Limits, NewAccount, NewTransfer};
use control_plane::tokens::Role;
use control_plane::{ControlPlane, DbKind};
use serde_json::{json, Value};

use crate::auth_api;
use crate::content::{code, course, lesson, open, tenant, Api};
use crate::databases::{Engine, TestDb, ENGINES};
use crate::enrollments::{member, published};

const KEY: &str = "edge-service-key-for-tests";

/// Makes every `when` (`INSERT`, `UPDATE`) on `table` fail, until
/// [`heal`]: a database fault in the middle of a change.
async fn inject_fault(cp: &ControlPlane, table: &str, when: &str) {
    let pool = cp.db().pool();
    match cp.db().kind() {
        DbKind::Sqlite => {
            sqlx::query(&format!(
                "CREATE TRIGGER injected_fault BEFORE {when} ON {table} \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            ))
            .execute(pool)
            .await
            .expect("trigger");
        }
        DbKind::Postgres => {
            sqlx::query(
                "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected fault'; END $$ LANGUAGE plpgsql",
            )
            .execute(pool)
            .await
            .expect("function");
            sqlx::query(&format!(
                "CREATE TRIGGER injected_fault BEFORE {when} ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION injected_fault()"
            ))
            .execute(pool)
            .await
            .expect("trigger");
        }
    }
}

async fn heal(cp: &ControlPlane, table: &str) {
    let sql = match cp.db().kind() {
        DbKind::Sqlite => "DROP TRIGGER injected_fault".to_owned(),
        DbKind::Postgres => format!("DROP TRIGGER injected_fault ON {table}"),
    };
    sqlx::query(&sql)
        .execute(cp.db().pool())
        .await
        .expect("drop trigger");
}

async fn all_events(cp: &ControlPlane) -> Vec<events::Event> {
    events::publish(cp.db(), 100_000).await.expect("publish");
    events::read(cp.db().pool(), 0, 100_000)
        .await
        .expect("events")
}

async fn count(cp: &ControlPlane, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(cp.db().pool())
        .await
        .expect("count")
}

fn account(code: &str) -> NewAccount {
    NewAccount {
        code: code.to_owned(),
        currency: "EUR".to_owned(),
        balance_limit: BalanceLimit::None,
        metadata: None,
    }
}

fn transfer(id: &str, debit: &str, credit: &str) -> NewTransfer {
    NewTransfer {
        id: id.to_owned(),
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount: 5,
        currency: "EUR".to_owned(),
        pending: false,
        timeout_ms: None,
        metadata: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_written_with_their_change_or_not_at_all() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.billing_clock_interval_ms = 0;
            c.edge_service_key = KEY.to_owned();
        })
        .await;
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let unit = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let now = cp.clock().now_ms();
        let limits = Limits::from_config(cp.config());

        // A failing event write fails its change: no enrollment, no money.
        inject_fault(&cp, "domain_events", "INSERT").await;
        let enroll = format!("/api/v1/courses/{course_id}/enrollments");
        let answer = api
            .send(Method::POST, &enroll, &t.learner, &json!({}))
            .await;
        assert_eq!(code(&answer), (503, "unavailable".into()), "{engine:?}");
        let a = ledger::create_account(cp.db(), &t.id, &account("a"), &limits, now)
            .await
            .expect("account");
        let b = ledger::create_account(cp.db(), &t.id, &account("b"), &limits, now)
            .await
            .expect("account");
        let failed =
            ledger::create_transfer(cp.db(), &t.id, &transfer("t-1", &a.id, &b.id), &limits, now)
                .await;
        assert!(failed.is_err(), "{engine:?}");
        heal(&cp, "domain_events").await;
        assert_eq!(count(&cp, "SELECT COUNT(*) FROM enrollments").await, 0);
        assert_eq!(count(&cp, "SELECT COUNT(*) FROM ledger_transfers").await, 0);
        let a_now = ledger::get_account(cp.db(), &t.id, &a.id).await.expect("a");
        assert_eq!(a_now.debits_posted, 0);
        assert!(all_events(&cp).await.is_empty());

        // A change failing after its event was written leaves no event:
        // the lesson's completion writes `unit_completed`, then fails
        // completing the enrollment.
        api.ok(Method::POST, &enroll, &t.learner, Some(&json!({})), 201)
            .await;
        inject_fault(&cp, "enrollments", "UPDATE").await;
        let read = format!("/api/v1/units/{unit}/progress");
        let answer = api
            .send(
                Method::PUT,
                &read,
                &t.learner,
                &json!({"seconds_on_page": 9, "scroll_depth": 1.0}),
            )
            .await;
        assert_eq!(code(&answer), (503, "unavailable".into()), "{engine:?}");
        heal(&cp, "enrollments").await;
        let kinds: Vec<String> = all_events(&cp).await.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["enrolled"], "{engine:?}");
        assert_eq!(count(&cp, "SELECT COUNT(*) FROM unit_progress").await, 0);
        assert_eq!(count(&cp, "SELECT COUNT(*) FROM unit_results").await, 0);

        // Each kind with its change.
        api.ok(
            Method::PUT,
            &read,
            &t.learner,
            Some(&json!({"seconds_on_page": 9, "scroll_depth": 1.0})),
            200,
        )
        .await;
        let edge = auth_api::Api::new(&cp);
        let report = json!({"type": "submission", "submission_id": "s-1", "user_id": t.learner_id,
            "tenant_id": t.id, "language": "python", "status": "accepted", "region": "eu-west",
            "finished_at": "2026-11-23T18:00:00Z", "unit_id": unit});
        assert_eq!(
            edge.post("/api/v1/submissions", Some(KEY), report).await.0,
            201
        );
        ledger::create_transfers(
            cp.db(),
            &t.id,
            &[transfer("t-1", &a.id, &b.id), transfer("t-2", &b.id, &a.id)],
            &limits,
            now,
        )
        .await
        .expect("transfers");
        let mut hold = transfer("h-1", &a.id, &b.id);
        hold.pending = true;
        ledger::create_transfer(cp.db(), &t.id, &hold, &limits, now)
            .await
            .expect("hold");
        ledger::post_pending(cp.db(), &t.id, "h-1", &Default::default(), &limits, now)
            .await
            .expect("post");
        let provider = DevProvider::new("tok_decline".to_owned());
        subscriptions::subscribe(
            &cp,
            &provider,
            &t.id,
            &subscriptions::NewSubscription {
                plan_id: "per_seat".into(),
                quantity: 2,
                payment_token: "tok_ok".into(),
            },
            cp.clock().now_ms(),
        )
        .await
        .expect("subscribe");
        cp.clock().advance(15 * DAY_MS);
        billing::advance(&cp, &provider, cp.clock().now_ms())
            .await
            .expect("billing clock");
        let got: Vec<(String, String)> = all_events(&cp)
            .await
            .into_iter()
            .map(|e| (e.kind, e.aggregate_id))
            .collect();
        let invoice: String = sqlx::query_scalar("SELECT id FROM billing_invoices")
            .fetch_one(cp.db().pool())
            .await
            .expect("invoice");
        let want: Vec<(String, String)> = [
            ("enrolled", course_id.as_str()),
            ("unit_completed", unit.as_str()),
            ("enrollment_completed", course_id.as_str()),
            ("submission_recorded", "s-1"),
            ("transfer_posted", "t-1"),
            ("transfer_posted", "t-2"),
            ("transfer_posted", "h-1.post"),
            ("transfer_posted", invoice.as_str()),
            ("invoice_paid", invoice.as_str()),
        ]
        .into_iter()
        .map(|(k, a)| (k.to_owned(), a.to_owned()))
        .collect();
        assert_eq!(got, want, "{engine:?}");
        assert!(got.iter().all(|(kind, _)| EventKind::parse(kind).is_some()));
        db.cleanup(vec![cp]).await;
    }
}

/// Reads every event through the API in pages of `limit` until `want`
/// have been seen; checks ids are dense and increasing.
async fn drain(api: &Api, token: &str, want: usize, limit: u32) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    let mut after = 0_i64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "saw {} of {want}",
            seen.len()
        );
        let page = api
            .ok(
                Method::GET,
                &format!("/api/v1/events?after={after}&limit={limit}"),
                token,
                None,
                200,
            )
            .await;
        let items = page["items"].as_array().expect("items").clone();
        assert!(items.len() <= usize::try_from(limit).expect("limit"));
        for item in &items {
            let id = item["id"].as_i64().expect("id");
            assert_eq!(id, after + 1, "ids are dense and in order");
            after = id;
        }
        assert_eq!(page["next_after"], json!(after));
        if items.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        seen.extend(items);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_pages_without_gaps_under_concurrent_writers() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| {
            c.analytics_interval_ms = 0;
            c.edge_service_key = KEY.to_owned();
            c.events_page_size_max = 50;
        })
        .await;
        let t = tenant(&cp, "acme").await;
        let api = std::sync::Arc::new(api);
        let limits = Limits::from_config(cp.config());
        const WRITERS: usize = 6;
        const EACH: usize = 20;
        // Two accounts per writer, so writers share no lock and commit in
        // any order.
        let mut accounts = Vec::new();
        for i in 0..2 * WRITERS {
            let made =
                ledger::create_account(cp.db(), &t.id, &account(&format!("acc-{i}")), &limits, 0)
                    .await
                    .expect("account");
            accounts.push(made.id);
        }
        // Writers post transfers on their own accounts while a reader pages.
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let (cp, tenant, debit, credit) = (
                cp.clone(),
                t.id.clone(),
                accounts[2 * w].clone(),
                accounts[2 * w + 1].clone(),
            );
            writers.spawn(async move {
                let limits = Limits::from_config(cp.config());
                for i in 0..EACH {
                    ledger::create_transfer(
                        cp.db(),
                        &tenant,
                        &transfer(&format!("w{w}-{i}"), &debit, &credit),
                        &limits,
                        0,
                    )
                    .await
                    .expect("transfer");
                }
            });
        }
        let reader = {
            let (api, token) = (api.clone(), t.operator.clone());
            tokio::spawn(async move { drain(&api, &token, WRITERS * EACH, 7).await })
        };
        while let Some(done) = writers.join_next().await {
            done.expect("writer");
        }
        let seen = reader.await.expect("reader");
        let mut ids: Vec<&str> = seen
            .iter()
            .map(|e| e["aggregate_id"].as_str().expect("aggregate"))
            .collect();
        ids.sort_unstable();
        let mut want: Vec<String> = (0..WRITERS)
            .flat_map(|w| (0..EACH).map(move |i| format!("w{w}-{i}")))
            .collect();
        want.sort_unstable();
        assert_eq!(ids, want, "{engine:?}: every event once");

        // The edge service key reads too; others do not; bad queries 400.
        let edge = auth_api::Api::new(&cp);
        let (status, page) = edge
            .call(Method::GET, "/api/v1/events?after=118", Some(KEY), None)
            .await;
        assert_eq!(
            (status, page["items"].as_array().map(Vec::len)),
            (200, Some(2))
        );
        let (_, page) = edge
            .call(Method::GET, "/api/v1/events?after=120", Some(KEY), None)
            .await;
        assert_eq!(page, json!({"items": [], "next_after": 120}));
        for (token, expected) in [
            (Some(t.learner.as_str()), (403, "forbidden")),
            (Some(t.instructor.as_str()), (403, "forbidden")),
            (Some("not-the-key-not-the-key"), (401, "unauthenticated")),
            (None, (401, "unauthenticated")),
        ] {
            let answer = edge.call(Method::GET, "/api/v1/events", token, None).await;
            assert_eq!(code(&answer), (expected.0, expected.1.into()));
        }
        for bad in ["after=-1", "after=x", "limit=0", "limit=51", "colour=red"] {
            let answer = edge
                .call(
                    Method::GET,
                    &format!("/api/v1/events?{bad}"),
                    Some(KEY),
                    None,
                )
                .await;
            assert_eq!(code(&answer), (400, "bad_request".into()), "{bad}");
        }
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}

/// On PostgreSQL a writer can draw its sequence number, stall, and commit
/// after a later writer: the reader must still see it, after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_published_late_never_skipped() {
    let (db, cp, _api) = open(Engine::Postgres, |c| c.analytics_interval_ms = 0).await;
    let event = |aggregate: &str| NewEvent {
        kind: EventKind::Enrolled,
        tenant_id: "t".into(),
        aggregate_id: aggregate.into(),
        payload: json!({}),
    };
    let mut slow = cp.db().pool().begin().await.expect("begin");
    events::append(&mut slow, &[event("early-seq")], 1)
        .await
        .expect("append");
    let mut fast = cp.db().pool().begin().await.expect("begin");
    events::append(&mut fast, &[event("late-seq")], 2)
        .await
        .expect("append");
    fast.commit().await.expect("commit");
    assert_eq!(events::publish(cp.db(), 100).await.expect("publish"), 1);
    let first = events::read(cp.db().pool(), 0, 100).await.expect("read");
    assert_eq!(
        first
            .iter()
            .map(|e| (e.id, e.aggregate_id.as_str()))
            .collect::<Vec<_>>(),
        [(1, "late-seq")]
    );
    slow.commit().await.expect("commit");
    assert_eq!(events::publish(cp.db(), 100).await.expect("publish"), 1);
    let next = events::read(cp.db().pool(), 1, 100).await.expect("read");
    assert_eq!(
        next.iter()
            .map(|e| (e.id, e.aggregate_id.as_str()))
            .collect::<Vec<_>>(),
        [(2, "early-seq")]
    );
    db.cleanup(vec![cp]).await;
}

async fn stats(api: &Api, token: &str, course: &str) -> Value {
    let mut page = api
        .ok(
            Method::GET,
            &format!("/api/v1/courses/{course}/stats"),
            token,
            None,
            200,
        )
        .await;
    page.as_object_mut().expect("object").remove("as_of_event");
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_catches_up_after_a_restart_without_double_counting() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        db.config.analytics_interval_ms = 0;
        db.config.ledger_expiry_sweep_interval_ms = 0;
        db.config.billing_clock_interval_ms = 0;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let t = tenant(&cp, "acme").await;
        let (course_id, module) = course(&api, &t.instructor, "C").await;
        let unit = published(&api, &t.instructor, &module, "lesson", lesson()).await;
        let enroll = format!("/api/v1/courses/{course_id}/enrollments");
        let mut learners = Vec::new();
        for i in 0..3 {
            learners.push(member(&cp, &t.id, &format!("l{i}@acme.test"), Role::Learner).await);
        }
        for (_, token) in &learners {
            api.ok(Method::POST, &enroll, token, Some(&json!({})), 201)
                .await;
        }
        // One completes the course (one unit), one drops and comes back.
        api.ok(
            Method::PUT,
            &format!("/api/v1/units/{unit}/progress"),
            &learners[0].1,
            Some(&json!({"seconds_on_page": 3, "scroll_depth": 0.95})),
            200,
        )
        .await;
        let leave = format!("{enroll}/{}", learners[1].0);
        assert_eq!(
            api.call(Method::DELETE, &leave, Some(&learners[1].1), None)
                .await
                .0,
            204
        );
        api.ok(Method::POST, &enroll, &learners[1].1, Some(&json!({})), 200)
            .await;
        let expected = json!({"course_id": course_id, "enrollments": 3, "completions": 1,
                              "drops": 1, "units_completed": 1, "submissions": 0});
        let zero = json!({"course_id": course_id, "enrollments": 0, "completions": 0,
                          "drops": 0, "units_completed": 0, "submissions": 0});
        let (batch, publish) = (2, 1_000);

        // A round that fails before its commit changes nothing.
        let failed =
            analytics::catch_up_once(cp.db(), batch, publish, Fault::FailBeforeCommit).await;
        assert!(failed.is_err(), "{engine:?}");
        assert_eq!(
            stats(&api, &t.instructor, &course_id).await,
            zero,
            "{engine:?}"
        );
        // Part of the way, then a restart (a new control plane on the same
        // database), then the rest: every event counted once.
        assert_eq!(
            analytics::catch_up_once(cp.db(), batch, publish, Fault::None)
                .await
                .expect("round"),
            2
        );
        drop(api);
        cp.db().close().await;
        drop(cp);
        let cp = db.open().await;
        let api = Api::new(&cp);
        let applied = analytics::catch_up(cp.db(), batch, publish)
            .await
            .expect("catch up");
        assert_eq!(applied, 5, "{engine:?}: seven events, two applied before");
        assert_eq!(
            stats(&api, &t.instructor, &course_id).await,
            expected,
            "{engine:?}"
        );
        assert_eq!(
            analytics::catch_up(cp.db(), batch, publish)
                .await
                .expect("again"),
            0
        );
        assert_eq!(stats(&api, &t.instructor, &course_id).await, expected);
        let full = api
            .ok(
                Method::GET,
                &format!("/api/v1/courses/{course_id}/stats"),
                &t.instructor,
                None,
                200,
            )
            .await;
        assert_eq!(full["as_of_event"], json!(7));
        assert_eq!(
            code(
                &api.get(&format!("/api/v1/courses/{course_id}/stats"), &t.learner)
                    .await
            ),
            (403, "forbidden".into())
        );
        assert_eq!(
            code(&api.get("/api/v1/courses/nope/stats", &t.instructor).await),
            (404, "not_found".into())
        );
        drop(api);
        cp.db().close().await;
        drop(cp);

        // The background task keeps it up to date on its own.
        db.config.analytics_interval_ms = 20;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let (_, token) = member(&cp, &t.id, "late@acme.test", Role::Learner).await;
        api.ok(Method::POST, &enroll, &token, Some(&json!({})), 201)
            .await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = stats(&api, &t.instructor, &course_id).await;
            if now["enrollments"] == json!(4) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{engine:?}: {now}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(api);
        db.cleanup(vec![cp]).await;
    }
}
