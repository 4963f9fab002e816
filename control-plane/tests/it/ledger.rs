//! The ledger on both engines: transfers and limits, idempotency, batches,
//! two-phase transfers with a test clock, limits at their edges, the HTTP
//! API (roles, tenant isolation, bad input), property tests against a model,
//! and a concurrent stress test on PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method;
use control_plane::ledger::{
    self, Account, BalanceLimit, LedgerError, Limits, NewAccount, NewTransfer, Resolve,
    TransferKind,
};
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::databases::{Engine, TestDb, ENGINES};

/// A fixed clock for the library-level tests: the ledger never reads the
/// wall clock itself.
const T0: i64 = 1_000_000;

async fn open(
    engine: Engine,
    edit: impl FnOnce(&mut ControlPlaneConfig),
) -> (TestDb, ControlPlane) {
    let mut db = TestDb::new(engine).await;
    // Tests drive expiry with their own clock.
    db.config.ledger_expiry_sweep_interval_ms = 0;
    edit(&mut db.config);
    let cp = db.open().await;
    (db, cp)
}

async fn tenant(cp: &ControlPlane, slug: &str) -> String {
    identity::ensure_tenant(cp.db(), slug, slug)
        .await
        .expect("tenant")
}

async fn account(
    cp: &ControlPlane,
    tenant: &str,
    code: &str,
    currency: &str,
    limit: BalanceLimit,
) -> Account {
    ledger::create_account(
        cp.db(),
        tenant,
        &NewAccount {
            code: code.into(),
            currency: currency.into(),
            balance_limit: limit,
            metadata: None,
        },
        &Limits::from_config(cp.config()),
        T0,
    )
    .await
    .expect("account")
}

fn transfer(id: &str, debit: &Account, credit: &Account, amount: i64) -> NewTransfer {
    NewTransfer {
        id: id.into(),
        debit_account_id: debit.id.clone(),
        credit_account_id: credit.id.clone(),
        amount,
        currency: "EUR".into(),
        pending: false,
        timeout_ms: None,
        metadata: None,
    }
}

fn pending(id: &str, debit: &Account, credit: &Account, amount: i64, timeout: i64) -> NewTransfer {
    NewTransfer {
        pending: true,
        timeout_ms: Some(timeout),
        ..transfer(id, debit, credit, amount)
    }
}

/// `created`, `existing` or the error's stable code.
fn outcome<T>(result: &Result<T, LedgerError>, created: impl Fn(&T) -> bool) -> String {
    match result {
        Ok(value) if created(value) => "created".into(),
        Ok(_) => "existing".into(),
        Err(err) => err.code().as_str().into(),
    }
}

/// [debits_pending, debits_posted, credits_pending, credits_posted]
async fn totals(cp: &ControlPlane, tenant: &str, account: &Account) -> [i64; 4] {
    let a = ledger::get_account(cp.db(), tenant, &account.id)
        .await
        .expect("account");
    [
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    ]
}

async fn assert_sound(cp: &ControlPlane, tenant: &str) -> ledger::Audit {
    let audit = ledger::audit(cp.db(), tenant).await.expect("audit");
    assert!(audit.is_sound(), "{audit:?}");
    audit
}

#[tokio::test]
async fn transfers_move_money_within_limits() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let alice = account(
            &cp,
            &t,
            "alice",
            "EUR",
            BalanceLimit::DebitsMustNotExceedCredits,
        )
        .await;
        let bob = account(
            &cp,
            &t,
            "bob",
            "EUR",
            BalanceLimit::DebitsMustNotExceedCredits,
        )
        .await;
        let cash = account(
            &cp,
            &t,
            "cash",
            "EUR",
            BalanceLimit::CreditsMustNotExceedDebits,
        )
        .await;
        let dollars = account(&cp, &t, "dollars", "USD", BalanceLimit::None).await;
        let limits = Limits::from_config(cp.config());
        let ghost = Account {
            id: "no-such-account".into(),
            ..world.clone()
        };
        let cases: Vec<(NewTransfer, &str)> = vec![
            (transfer("fund", &world, &alice, 100), "created"),
            (transfer("a1", &alice, &bob, 60), "created"),
            // Exactly the rest of alice's credits: allowed; one more: not.
            (transfer("a2", &alice, &bob, 40), "created"),
            (transfer("a3", &alice, &bob, 1), "insufficient_funds"),
            (transfer("c1", &world, &cash, 1), "insufficient_funds"),
            (transfer("c2", &cash, &world, 5), "created"),
            (transfer("c3", &world, &cash, 5), "created"),
            (transfer("x1", &world, &dollars, 5), "currency_mismatch"),
            (transfer("x2", &world, &ghost, 5), "not_found"),
            (transfer("x3", &world, &world, 5), "bad_request"),
            (transfer("x4", &world, &bob, 0), "bad_request"),
            (transfer("x5", &world, &bob, -3), "bad_request"),
            (transfer("bad id", &world, &bob, 3), "bad_request"),
            (transfer("x6", &world, &bob, i64::MAX - 200), "created"),
            // Balances stay in range: an overflow is refused, not wrapped.
            (transfer("x7", &world, &bob, 101), "conflict"),
            (
                NewTransfer {
                    timeout_ms: Some(5),
                    ..transfer("x8", &world, &bob, 1)
                },
                "bad_request",
            ),
        ];
        for (request, expected) in cases {
            let got = ledger::create_transfer(cp.db(), &t, &request, &limits, T0).await;
            assert_eq!(
                outcome(&got, |r| r.created),
                expected,
                "{engine:?} {}: {got:?}",
                request.id
            );
        }
        assert_eq!(totals(&cp, &t, &alice).await, [0, 100, 0, 100]);
        assert_eq!(totals(&cp, &t, &bob).await, [0, 0, 0, i64::MAX - 100]);
        let audit = assert_sound(&cp, &t).await;
        assert_eq!((audit.accounts, audit.transfers), (5, 6));

        // Codes are unique per tenant; another tenant may reuse one.
        let again = ledger::create_account(
            cp.db(),
            &t,
            &NewAccount {
                code: "alice".into(),
                currency: "EUR".into(),
                balance_limit: BalanceLimit::None,
                metadata: None,
            },
            &limits,
            T0,
        )
        .await;
        assert_eq!(outcome(&again, |_| true), "conflict");
        let other = tenant(&cp, "other").await;
        account(&cp, &other, "alice", "EUR", BalanceLimit::None).await;
        // Another tenant's accounts are unknown here.
        let got = ledger::create_transfer(
            cp.db(),
            &other,
            &transfer("steal", &alice, &bob, 1),
            &limits,
            T0,
        )
        .await;
        assert_eq!(outcome(&got, |r| r.created), "not_found");
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn an_id_used_twice_gives_the_first_result_and_never_a_second_transfer() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let alice = account(&cp, &t, "alice", "EUR", BalanceLimit::None).await;
        let limits = Limits::from_config(cp.config());
        let first =
            ledger::create_transfer(cp.db(), &t, &transfer("t1", &world, &alice, 7), &limits, T0)
                .await
                .expect("first");
        assert!(first.created);
        // A retry later (another clock reading) answers the stored row.
        let retry = ledger::create_transfer(
            cp.db(),
            &t,
            &transfer("t1", &world, &alice, 7),
            &limits,
            T0 + 50,
        )
        .await
        .expect("retry");
        assert!(!retry.created);
        assert_eq!(retry.transfer, first.transfer);
        for changed in [
            transfer("t1", &world, &alice, 8),
            transfer("t1", &alice, &world, 7),
            NewTransfer {
                metadata: Some(json!({"note": "x"})),
                ..transfer("t1", &world, &alice, 7)
            },
            NewTransfer {
                pending: true,
                ..transfer("t1", &world, &alice, 7)
            },
        ] {
            let got = ledger::create_transfer(cp.db(), &t, &changed, &limits, T0).await;
            assert_eq!(
                outcome(&got, |r| r.created),
                "idempotency_conflict",
                "{changed:?}"
            );
        }
        // In a batch, a stored id is answered, not applied again.
        let batch = ledger::create_transfers(
            cp.db(),
            &t,
            &[
                transfer("t1", &world, &alice, 7),
                transfer("t2", &world, &alice, 1),
            ],
            &limits,
            T0,
        )
        .await
        .expect("batch");
        assert_eq!(
            batch.iter().map(|r| r.created).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(totals(&cp, &t, &alice).await, [0, 0, 0, 8]);
        assert_eq!(assert_sound(&cp, &t).await.transfers, 2);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn batches_are_all_or_nothing_and_bounded() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |c| c.ledger_batch_transfers_max = 4).await;
        let t = tenant(&cp, "acme").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let alice = account(
            &cp,
            &t,
            "alice",
            "EUR",
            BalanceLimit::DebitsMustNotExceedCredits,
        )
        .await;
        let bob = account(
            &cp,
            &t,
            "bob",
            "EUR",
            BalanceLimit::DebitsMustNotExceedCredits,
        )
        .await;
        let limits = Limits::from_config(cp.config());

        // A later transfer may spend what an earlier one of the batch brought.
        let chain = [
            transfer("b1", &world, &alice, 10),
            transfer("b2", &alice, &bob, 10),
            transfer("b3", &bob, &alice, 4),
            transfer("b4", &alice, &bob, 4),
        ];
        let done = ledger::create_transfers(cp.db(), &t, &chain, &limits, T0).await;
        assert_eq!(
            done.map(|r| r.len()).ok(),
            Some(4),
            "{engine:?}: at the batch max"
        );

        // The third fails: nothing of the batch is written.
        let failing = [
            transfer("f1", &world, &alice, 5),
            transfer("f2", &alice, &bob, 5),
            transfer("f3", &alice, &bob, 1),
        ];
        let err = ledger::create_transfers(cp.db(), &t, &failing, &limits, T0)
            .await
            .expect_err("insufficient");
        assert!(
            matches!(&err, LedgerError::InBatch { index: 2, id, .. } if id == "f3"),
            "{err}"
        );
        assert_eq!(err.code().as_str(), "insufficient_funds");
        assert_eq!(totals(&cp, &t, &alice).await, [0, 14, 0, 14]);

        let too_many: Vec<_> = (0..5)
            .map(|i| transfer(&format!("m{i}"), &world, &bob, 1))
            .collect();
        for (batch, expected) in [
            (&too_many[..], "bad_request"),
            (&too_many[..0], "bad_request"),
            (
                &[
                    transfer("d", &world, &bob, 1),
                    transfer("d", &world, &bob, 1),
                ][..],
                "bad_request",
            ),
        ] {
            let got = ledger::create_transfers(cp.db(), &t, batch, &limits, T0).await;
            assert_eq!(outcome(&got, |_| true), expected);
        }
        assert_eq!(assert_sound(&cp, &t).await.transfers, 4);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn pending_transfers_post_void_and_expire_on_the_clock_passed_in() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let alice = account(
            &cp,
            &t,
            "alice",
            "EUR",
            BalanceLimit::DebitsMustNotExceedCredits,
        )
        .await;
        let seats = account(&cp, &t, "seats", "EUR", BalanceLimit::None).await;
        let limits = Limits::from_config(cp.config());
        let create = |request: NewTransfer, now: i64| {
            let cp = cp.clone();
            let t = t.clone();
            async move { ledger::create_transfer(cp.db(), &t, &request, &limits, now).await }
        };
        create(transfer("fund", &world, &alice, 100), T0)
            .await
            .expect("fund");

        // Holds reserve against the available balance.
        create(pending("h1", &alice, &seats, 60, 1_000), T0)
            .await
            .expect("h1");
        let over = create(pending("h2", &alice, &seats, 41, 1_000), T0).await;
        assert_eq!(outcome(&over, |r| r.created), "insufficient_funds");
        create(pending("h2", &alice, &seats, 40, 1_000), T0)
            .await
            .expect("h2");
        assert_eq!(totals(&cp, &t, &alice).await, [100, 0, 0, 100]);

        // Post part of h1: 50 posted, 10 released.
        let post = |id: &str, resolve: Resolve, now: i64| {
            let cp = cp.clone();
            let (t, id) = (t.clone(), id.to_owned());
            async move { ledger::post_pending(cp.db(), &t, &id, &resolve, &limits, now).await }
        };
        let void = |id: &str, resolve: Resolve, now: i64| {
            let cp = cp.clone();
            let (t, id) = (t.clone(), id.to_owned());
            async move { ledger::void_pending(cp.db(), &t, &id, &resolve, &limits, now).await }
        };
        let part = Resolve {
            amount: Some(50),
            ..Resolve::default()
        };
        let posted = post("h1", part.clone(), T0 + 10).await.expect("post");
        assert_eq!(
            (
                posted.transfer.kind,
                posted.transfer.id.as_str(),
                posted.transfer.amount
            ),
            (TransferKind::PostPending, "h1.post", 50)
        );
        assert_eq!(totals(&cp, &t, &alice).await, [40, 50, 0, 100]);
        // A retried post answers the first; a different amount conflicts.
        let again = post("h1", part.clone(), T0 + 20).await.expect("retry");
        assert_eq!((again.created, again.transfer), (false, posted.transfer));
        let cases = [
            (
                post("h1", Resolve::default(), T0).await,
                "idempotency_conflict",
            ),
            (void("h1", Resolve::default(), T0).await, "pending_closed"),
            (post("fund", Resolve::default(), T0).await, "conflict"),
            (post("nope", Resolve::default(), T0).await, "not_found"),
            (
                post(
                    "h2",
                    Resolve {
                        amount: Some(41),
                        ..Resolve::default()
                    },
                    T0,
                )
                .await,
                "bad_request",
            ),
            (
                post(
                    "h2",
                    Resolve {
                        amount: Some(0),
                        ..Resolve::default()
                    },
                    T0,
                )
                .await,
                "bad_request",
            ),
            (
                void(
                    "h2",
                    Resolve {
                        amount: Some(1),
                        ..Resolve::default()
                    },
                    T0,
                )
                .await,
                "bad_request",
            ),
        ];
        for (i, (got, expected)) in cases.iter().enumerate() {
            assert_eq!(
                outcome(got, |r| r.created),
                *expected,
                "{engine:?} case {i}: {got:?}"
            );
        }

        // Void h2 with its own id.
        let voided = void(
            "h2",
            Resolve {
                id: Some("release-h2".into()),
                ..Resolve::default()
            },
            T0,
        )
        .await
        .expect("void");
        assert_eq!(voided.transfer.kind, TransferKind::VoidPending);
        assert_eq!(totals(&cp, &t, &alice).await, [0, 50, 0, 100]);

        // h3 times out at T0 + 1000: a post at that instant is too late, the
        // hold is released, and stays so.
        create(pending("h3", &alice, &seats, 30, 1_000), T0)
            .await
            .expect("h3");
        let in_time = post("h3", Resolve::default(), T0 + 999).await;
        assert_eq!(outcome(&in_time, |r| r.created), "created", "{in_time:?}");
        create(pending("h4", &alice, &seats, 20, 1_000), T0)
            .await
            .expect("h4");
        let late = post("h4", Resolve::default(), T0 + 1_000).await;
        assert_eq!(outcome(&late, |r| r.created), "pending_expired");
        let late_again = void("h4", Resolve::default(), T0 + 2_000).await;
        assert_eq!(outcome(&late_again, |r| r.created), "pending_expired");
        assert_eq!(totals(&cp, &t, &alice).await, [0, 80, 0, 100]);

        // The sweep expires what nobody closed, only once it is due.
        create(pending("h5", &alice, &seats, 5, 1_000), T0 + 5_000)
            .await
            .expect("h5");
        create(pending("h6", &alice, &seats, 5, 2_000), T0 + 5_000)
            .await
            .expect("h6");
        assert_eq!(
            ledger::expire_due(cp.db(), T0 + 5_999, 10)
                .await
                .expect("sweep"),
            0
        );
        assert_eq!(
            ledger::expire_due(cp.db(), T0 + 6_000, 10)
                .await
                .expect("sweep"),
            1
        );
        assert_eq!(totals(&cp, &t, &alice).await, [5, 80, 0, 100]);
        assert_eq!(
            ledger::expire_due(cp.db(), T0 + 9_000, 1)
                .await
                .expect("sweep"),
            1
        );
        assert_eq!(
            ledger::expire_due(cp.db(), T0 + 9_000, 1)
                .await
                .expect("sweep"),
            0
        );
        assert_eq!(totals(&cp, &t, &alice).await, [0, 80, 0, 100]);
        let expired = ledger::get_transfer(cp.db(), &t, "h5.expire")
            .await
            .expect("row");
        assert_eq!(expired.kind, TransferKind::ExpirePending);
        assert_sound(&cp, &t).await;
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn ledger_limits_are_enforced_at_their_edges() {
    let (db, cp) = open(Engine::Sqlite, |c| {
        c.ledger_id_bytes_max = 8;
        c.ledger_metadata_bytes_max = 12;
        c.ledger_pending_timeout_ms_max = 100;
        c.ledger_page_size_max = 3;
    })
    .await;
    let t = tenant(&cp, "acme").await;
    let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
    let bob = account(&cp, &t, "bob", "EUR", BalanceLimit::None).await;
    let limits = Limits::from_config(cp.config());
    let cases = [
        (transfer("12345678", &world, &bob, 1), "created"),
        (transfer("123456789", &world, &bob, 1), "bad_request"),
        (
            NewTransfer {
                metadata: Some(json!({"a": "1234"})), // 12 bytes serialised
                ..transfer("meta1", &world, &bob, 1)
            },
            "created",
        ),
        (
            NewTransfer {
                metadata: Some(json!({"a": "12345"})),
                ..transfer("meta2", &world, &bob, 1)
            },
            "bad_request",
        ),
        (pending("p100", &world, &bob, 1, 100), "created"),
        (pending("p101", &world, &bob, 1, 101), "bad_request"),
        (pending("p0", &world, &bob, 1, 0), "bad_request"),
    ];
    for (request, expected) in cases {
        let got = ledger::create_transfer(cp.db(), &t, &request, &limits, T0).await;
        assert_eq!(outcome(&got, |r| r.created), expected, "{}", request.id);
    }
    assert_eq!(
        limits.page_size(None).ok(),
        Some(3),
        "default clamps to the max"
    );
    assert_eq!(limits.page_size(Some(3)).ok(), Some(3));
    assert!(limits.page_size(Some(4)).is_err());
    assert!(limits.page_size(Some(0)).is_err());
    // Paging walks the journal in id order without gaps.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ledger::list_transfers(cp.db(), &t, after.as_deref(), 2)
            .await
            .expect("page");
        seen.extend(page.iter().map(|t| t.id.clone()));
        if page.len() < 2 {
            break;
        }
        after = page.last().map(|t| t.id.clone());
    }
    assert_eq!(seen, ["12345678", "meta1", "p100"]);
    db.cleanup(vec![cp]).await;

    fn check(edit: impl Fn(&mut ControlPlaneConfig), expected: Option<&str>) {
        let mut config = ControlPlaneConfig::default();
        edit(&mut config);
        let got = config.validate().err().map(|err| err.to_string());
        assert_eq!(got.as_deref(), expected);
    }
    check(|c| c.ledger_batch_transfers_max = 8_000, None);
    check(
        |c| c.ledger_batch_transfers_max = 8_001,
        Some("invalid setting control_plane.ledger_batch_transfers_max: must be at most 8000 (SQLite binds at most 32766 parameters)"),
    );
    check(
        |c| c.ledger_batch_transfers_max = 0,
        Some("invalid setting control_plane.ledger_batch_transfers_max: must be at least 1"),
    );
    check(|c| c.ledger_page_size_max = 1, None);
    check(
        |c| c.ledger_page_size_max = 0,
        Some("invalid setting control_plane.ledger_page_size_max: must be at least 1"),
    );
    check(|c| c.ledger_metadata_bytes_max = 2, None);
    check(
        |c| c.ledger_metadata_bytes_max = 1,
        Some("invalid setting control_plane.ledger_metadata_bytes_max: must be at least 2"),
    );
    check(|c| c.ledger_id_bytes_max = 1_024, None);
    check(
        |c| c.ledger_id_bytes_max = 1_025,
        Some("invalid setting control_plane.ledger_id_bytes_max: must be 1 to 1024"),
    );
    check(
        |c| c.ledger_pending_timeout_ms_max = 0,
        Some("invalid setting control_plane.ledger_pending_timeout_ms_max: must be at least 1 and fit in a signed 64-bit integer"),
    );
    check(|c| c.ledger_expiry_sweep_interval_ms = 0, None);
    check(|c| c.ledger_group_commit_queue_max = 1, None);
    check(
        |c| c.ledger_group_commit_queue_max = 0,
        Some("invalid setting control_plane.ledger_group_commit_queue_max: must be at least 1"),
    );
    check(|c| c.ledger_group_commit_transfers_max = 8_000, None);
    check(|c| c.ledger_group_commit_transfers_max = 1, None);
    check(
        |c| c.ledger_group_commit_transfers_max = 8_001,
        Some("invalid setting control_plane.ledger_group_commit_transfers_max: must be 1 to 8000 (SQLite binds at most 32766 parameters)"),
    );
    check(|c| c.ledger_group_commit_writers = 64, None);
    check(
        |c| c.ledger_group_commit_writers = 65,
        Some("invalid setting control_plane.ledger_group_commit_writers: must be 1 to 64"),
    );
    check(
        |c| c.ledger_group_commit_writers = 0,
        Some("invalid setting control_plane.ledger_group_commit_writers: must be 1 to 64"),
    );
    check(
        |c| c.ledger_expiry_sweep_batch_max = 0,
        Some("invalid setting control_plane.ledger_expiry_sweep_batch_max: must be at least 1"),
    );
}

#[tokio::test]
async fn the_sweep_expires_holds_on_the_control_planes_clock() {
    let (db, cp) = open(Engine::Sqlite, |c| c.ledger_expiry_sweep_interval_ms = 20).await;
    let t = tenant(&cp, "acme").await;
    let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
    let bob = account(&cp, &t, "bob", "EUR", BalanceLimit::None).await;
    let limits = Limits::from_config(cp.config());
    let now = cp.clock().now_ms();
    ledger::create_transfer(
        cp.db(),
        &t,
        &pending("h", &world, &bob, 9, 60_000),
        &limits,
        now,
    )
    .await
    .expect("hold");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(totals(&cp, &t, &bob).await, [0, 0, 9, 0], "not due yet");
    cp.clock().advance(60_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while totals(&cp, &t, &bob).await != [0, 0, 0, 0] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep did not expire the hold"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    db.cleanup(vec![cp]).await;
}

struct Api {
    router: axum::Router,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let answer = crate::router::call(
            &self.router,
            method,
            path,
            token,
            &[],
            body.map(str::to_owned),
        )
        .await;
        (answer.status, answer.body)
    }
}

/// Status and error code a request should get.
type Expected = (u16, &'static str);

fn code(answer: &(u16, Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["error"]["code"].as_str().unwrap_or("-").to_owned(),
    )
}

fn token(cp: &ControlPlane, tenant: &str, role: Role) -> String {
    tokens::issue(
        cp.keys(),
        &format!("user-{tenant}-{}", role.as_str()),
        tenant,
        role,
        "x@y.test",
        600,
    )
    .expect("token")
}

#[tokio::test]
async fn the_http_api_checks_roles_tenants_and_input() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |c| c.ledger_batch_transfers_max = 3).await;
        let api = Api {
            router: control_plane::http::router(cp.clone()),
        };
        let a = tenant(&cp, "tenant-a").await;
        let b = tenant(&cp, "tenant-b").await;
        let (instructor, operator) = (
            token(&cp, &a, Role::Instructor),
            token(&cp, &a, Role::Operator),
        );
        let learner = token(&cp, &a, Role::Learner);
        let other = token(&cp, &b, Role::Instructor);
        let accounts = "/api/v1/ledger/accounts";
        let transfers = "/api/v1/ledger/transfers";

        assert_eq!(
            code(&api.call(Method::GET, accounts, None, None).await),
            (401, "unauthenticated".into())
        );
        assert_eq!(
            code(&api.call(Method::GET, accounts, Some(&learner), None).await),
            (403, "forbidden".into())
        );
        let mut ids = HashMap::new();
        for (who, code_, limit) in [
            (&instructor, "world", "none"),
            (&operator, "alice", "debits_must_not_exceed_credits"),
            (&instructor, "bob", "debits_must_not_exceed_credits"),
        ] {
            let body = json!({"code": code_, "currency": "EUR", "balance_limit": limit, "metadata": {"owner": code_}});
            let (status, created) = api
                .call(Method::POST, accounts, Some(who), Some(&body.to_string()))
                .await;
            assert_eq!(status, 201, "{engine:?}: {created}");
            ids.insert(code_, created["id"].as_str().expect("id").to_owned());
        }
        let (world, alice, bob) = (&ids["world"], &ids["alice"], &ids["bob"]);

        // Single, retried, pending, batch, post and void.
        let fund = json!({"id": "fund", "debit_account_id": world, "credit_account_id": alice, "amount": 100, "currency": "EUR"}).to_string();
        assert_eq!(
            api.call(Method::POST, transfers, Some(&instructor), Some(&fund))
                .await
                .0,
            201
        );
        let (status, again) = api
            .call(Method::POST, transfers, Some(&instructor), Some(&fund))
            .await;
        assert_eq!((status, again["id"].as_str()), (200, Some("fund")));
        let hold = json!({"id": "hold", "debit_account_id": alice, "credit_account_id": bob, "amount": 30, "currency": "EUR", "pending": true, "timeout_ms": 60000}).to_string();
        assert_eq!(
            api.call(Method::POST, transfers, Some(&instructor), Some(&hold))
                .await
                .0,
            201
        );
        let batch = json!({"transfers": [
            {"id": "b1", "debit_account_id": alice, "credit_account_id": bob, "amount": 70, "currency": "EUR"},
            {"id": "b2", "debit_account_id": bob, "credit_account_id": alice, "amount": 5, "currency": "EUR"},
        ]}).to_string();
        let (status, answer) = api
            .call(
                Method::POST,
                &format!("{transfers}/batch"),
                Some(&operator),
                Some(&batch),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["results"][1]["created"], true);
        let (status, posted) = api
            .call(
                Method::POST,
                &format!("{transfers}/hold/post"),
                Some(&instructor),
                Some(r#"{"amount": 10}"#),
            )
            .await;
        assert_eq!(
            (status, posted["kind"].as_str()),
            (201, Some("post_pending")),
            "{posted}"
        );
        assert_eq!(
            code(
                &api.call(
                    Method::POST,
                    &format!("{transfers}/hold/void"),
                    Some(&instructor),
                    None
                )
                .await
            ),
            (409, "pending_closed".into())
        );
        let (status, alice_now) = api
            .call(
                Method::GET,
                &format!("{accounts}/{alice}"),
                Some(&instructor),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (
                alice_now["debits_posted"].as_i64(),
                alice_now["credits_posted"].as_i64(),
                alice_now["debits_pending"].as_i64()
            ),
            (Some(80), Some(105), Some(0)),
            "{alice_now}"
        );
        let (status, audit) = api
            .call(Method::GET, "/api/v1/ledger/audit", Some(&operator), None)
            .await;
        assert_eq!(
            (status, audit["mismatches"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{audit}"
        );

        // Paging: 5 journal rows, 2 at a time.
        let mut seen = Vec::new();
        let mut next = format!("{transfers}?limit=2");
        loop {
            let (status, page) = api.call(Method::GET, &next, Some(&instructor), None).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|t| t["id"].as_str().unwrap_or("").to_owned()),
            );
            match page["next_after"].as_str() {
                Some(after) => next = format!("{transfers}?limit=2&after={after}"),
                None => break,
            }
        }
        assert_eq!(seen, ["b1", "b2", "fund", "hold", "hold.post"]);

        // Tenant B sees none of it, and cannot move A's money.
        let (_, listed) = api.call(Method::GET, accounts, Some(&other), None).await;
        assert_eq!(listed["items"], json!([]));
        let (_, listed) = api.call(Method::GET, transfers, Some(&other), None).await;
        assert_eq!(listed["items"], json!([]));
        for path in [format!("{accounts}/{alice}"), format!("{transfers}/fund")] {
            assert_eq!(
                code(&api.call(Method::GET, &path, Some(&other), None).await),
                (404, "not_found".into()),
                "{path}"
            );
        }
        assert_eq!(
            code(
                &api.call(Method::POST, transfers, Some(&other), Some(&fund))
                    .await
            ),
            (404, "not_found".into())
        );
        assert_eq!(
            code(
                &api.call(
                    Method::POST,
                    &format!("{transfers}/hold/void"),
                    Some(&other),
                    None
                )
                .await
            ),
            (404, "not_found".into())
        );

        // Bad input: a clear 4xx with a code, never a 500.
        let t = |amount: Value| {
            json!({"id": "z", "debit_account_id": world, "credit_account_id": bob, "amount": amount, "currency": "EUR"}).to_string()
        };
        let four: String = (0..4).map(|i| format!(r#"{{"id": "q{i}", "debit_account_id": "{world}", "credit_account_id": "{bob}", "amount": 1, "currency": "EUR"}}"#)).collect::<Vec<_>>().join(",");
        let cases: Vec<(Method, String, Option<String>, Expected)> = vec![
            (Method::POST, transfers.into(), Some("{not json".into()), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(t(json!(0))), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(t(json!(-5))), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(t(json!("5"))), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(t(json!(1.5))), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(t(json!(u64::MAX))), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(json!({"id": "z"}).to_string()), (400, "bad_request")),
            (Method::POST, transfers.into(), Some(json!({"id": "z", "debit_account_id": world, "credit_account_id": "nope", "amount": 1, "currency": "EUR"}).to_string()), (404, "not_found")),
            (Method::POST, transfers.into(), Some(json!({"id": "z", "debit_account_id": world, "credit_account_id": bob, "amount": 1, "currency": "USD"}).to_string()), (422, "currency_mismatch")),
            (Method::POST, transfers.into(), Some(json!({"id": "z", "debit_account_id": alice, "credit_account_id": bob, "amount": 1000, "currency": "EUR"}).to_string()), (409, "insufficient_funds")),
            (Method::POST, transfers.into(), Some(json!({"id": "fund", "debit_account_id": world, "credit_account_id": alice, "amount": 101, "currency": "EUR"}).to_string()), (409, "idempotency_conflict")),
            (Method::POST, transfers.into(), Some(t(json!(1)).replace("\"z\"", "\"z\", \"extra\": 1")), (400, "bad_request")),
            (Method::POST, format!("{transfers}/batch"), Some(format!(r#"{{"transfers": [{four}]}}"#)), (400, "bad_request")),
            (Method::POST, format!("{transfers}/batch"), Some(r#"{"transfers": []}"#.into()), (400, "bad_request")),
            (Method::POST, format!("{transfers}/batch"), Some(r#"{"transfers": {}}"#.into()), (400, "bad_request")),
            (Method::POST, format!("{transfers}/nope/post"), None, (404, "not_found")),
            (Method::POST, format!("{transfers}/fund/post"), None, (409, "conflict")),
            (Method::POST, format!("{transfers}/hold/post"), Some("[1]".into()), (400, "bad_request")),
            (Method::POST, accounts.into(), Some(json!({"code": "c", "currency": "eur"}).to_string()), (400, "bad_request")),
            (Method::POST, accounts.into(), Some(json!({"code": "world", "currency": "EUR"}).to_string()), (409, "conflict")),
            (Method::POST, accounts.into(), Some(json!({"code": "c", "currency": "EUR", "balance_limit": "sometimes"}).to_string()), (400, "bad_request")),
            (Method::GET, format!("{accounts}/nope"), None, (404, "not_found")),
            (Method::GET, format!("{accounts}?limit=0"), None, (400, "bad_request")),
            (Method::GET, format!("{accounts}?limit=1001"), None, (400, "bad_request")),
            (Method::GET, format!("{accounts}?limit=ten"), None, (400, "bad_request")),
            (Method::GET, format!("{transfers}?limit=-1"), None, (400, "bad_request")),
        ];
        for (method, path, body, expected) in cases {
            let answer = api
                .call(method.clone(), &path, Some(&instructor), body.as_deref())
                .await;
            assert_eq!(
                code(&answer),
                (expected.0, expected.1.to_owned()),
                "{engine:?} {method} {path} {body:?}: {}",
                answer.1
            );
        }
        let (status, page) = api
            .call(
                Method::GET,
                &format!("{accounts}?limit=1000"),
                Some(&instructor),
                None,
            )
            .await;
        assert_eq!(
            (status, page["items"].as_array().map(Vec::len)),
            (200, Some(3)),
            "at the page max"
        );
        db.cleanup(vec![cp]).await;
    }
}

// ---------------------------------------------------------------------------
// Property tests: random operations against the real store and a model.

/// Accounts of every case: (code, currency, limit).
const SPECS: [(&str, &str, BalanceLimit); 5] = [
    ("world", "EUR", BalanceLimit::None),
    ("a", "EUR", BalanceLimit::DebitsMustNotExceedCredits),
    ("b", "EUR", BalanceLimit::DebitsMustNotExceedCredits),
    ("cash", "EUR", BalanceLimit::CreditsMustNotExceedDebits),
    ("usd", "USD", BalanceLimit::None),
];

#[derive(Debug, Clone, PartialEq)]
struct Move {
    id: u8,
    debit: usize,
    credit: usize,
    amount: i64,
    pending: bool,
}

#[derive(Debug, Clone)]
enum Op {
    One(Move),
    Batch(Vec<Move>),
    Post(u8, Option<i64>),
    Void(u8),
}

fn a_move() -> impl Strategy<Value = Move> {
    (
        0..24_u8,
        0..5_usize,
        0..5_usize,
        prop_oneof![9 => 1..300_i64, 1 => -1..=0_i64],
        any::<bool>(),
    )
        .prop_map(|(id, debit, credit, amount, pending)| Move {
            id,
            debit,
            credit,
            amount,
            pending,
        })
}

fn an_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => a_move().prop_map(Op::One),
        2 => prop::collection::vec(a_move(), 1..5).prop_map(Op::Batch),
        2 => (0..24_u8, prop::option::of(1..300_i64)).prop_map(|(id, amount)| Op::Post(id, amount)),
        1 => (0..24_u8).prop_map(Op::Void),
    ]
}

/// What the model knows about a stored row.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    New(Move),
    Close {
        kind: &'static str,
        pending: u8,
        amount: i64,
    },
}

#[derive(Debug, Clone, Default)]
struct Model {
    totals: [[i64; 4]; 5],
    rows: HashMap<String, Row>,
    closed: HashMap<u8, &'static str>,
}

impl Model {
    fn validate(m: &Move) -> Option<&'static str> {
        (m.debit == m.credit || m.amount <= 0).then_some("bad_request")
    }

    /// Applies a move that passed validation; `Err(code)` leaves `self` as is.
    fn apply(&mut self, m: &Move) -> Result<&'static str, &'static str> {
        let id = format!("t{}", m.id);
        if let Some(row) = self.rows.get(&id) {
            return if row == &Row::New(m.clone()) {
                Ok("existing")
            } else {
                Err("idempotency_conflict")
            };
        }
        if SPECS[m.debit].1 != "EUR" || SPECS[m.credit].1 != "EUR" {
            return Err("currency_mismatch");
        }
        let (d, c) = (self.totals[m.debit], self.totals[m.credit]);
        if SPECS[m.debit].2 == BalanceLimit::DebitsMustNotExceedCredits
            && m.amount > d[3] - d[1] - d[0]
        {
            return Err("insufficient_funds");
        }
        if SPECS[m.credit].2 == BalanceLimit::CreditsMustNotExceedDebits
            && m.amount > c[1] - c[3] - c[2]
        {
            return Err("insufficient_funds");
        }
        let (dcol, ccol) = if m.pending { (0, 2) } else { (1, 3) };
        self.totals[m.debit][dcol] += m.amount;
        self.totals[m.credit][ccol] += m.amount;
        self.rows.insert(id, Row::New(m.clone()));
        Ok("created")
    }

    fn batch(&mut self, moves: &[Move]) -> String {
        let mut seen = std::collections::HashSet::new();
        for m in moves {
            if let Some(code) = Self::validate(m) {
                return code.into();
            }
            if !seen.insert(m.id) {
                return "bad_request".into();
            }
        }
        let mut next = self.clone();
        let mut created = false;
        for m in moves {
            match next.apply(m) {
                Ok(what) => created |= what == "created",
                Err(code) => return code.into(),
            }
        }
        *self = next;
        if created { "created" } else { "existing" }.into()
    }

    fn close(&mut self, pending: u8, kind: &'static str, amount: Option<i64>) -> String {
        let Some(Row::New(hold)) = self.rows.get(&format!("t{pending}")).cloned() else {
            return if self.rows.contains_key(&format!("t{pending}")) {
                "conflict"
            } else {
                "not_found"
            }
            .into();
        };
        if !hold.pending {
            return "conflict".into();
        }
        let amount = amount.unwrap_or(hold.amount);
        let suffix = if kind == "post_pending" {
            "post"
        } else {
            "void"
        };
        let id = format!("t{pending}.{suffix}");
        if let Some(row) = self.rows.get(&id) {
            return if row
                == &(Row::Close {
                    kind,
                    pending,
                    amount,
                }) {
                "existing"
            } else {
                "idempotency_conflict"
            }
            .into();
        }
        if amount > hold.amount {
            return "bad_request".into();
        }
        if self.closed.contains_key(&pending) {
            return "pending_closed".into();
        }
        self.totals[hold.debit][0] -= hold.amount;
        self.totals[hold.credit][2] -= hold.amount;
        if kind == "post_pending" {
            self.totals[hold.debit][1] += amount;
            self.totals[hold.credit][3] += amount;
        }
        self.closed.insert(pending, kind);
        self.rows.insert(
            id,
            Row::Close {
                kind,
                pending,
                amount,
            },
        );
        "created".into()
    }
}

async fn run_case(cp: &ControlPlane, case: usize, ops: &[Op]) -> Result<(), String> {
    let t = tenant(
        cp,
        &format!("prop-{case}-{}", uuid::Uuid::new_v4().simple()),
    )
    .await;
    let mut accounts = Vec::new();
    for (code, currency, limit) in SPECS {
        accounts.push(account(cp, &t, code, currency, limit).await);
    }
    let limits = Limits::from_config(cp.config());
    let to_new = |m: &Move| NewTransfer {
        pending: m.pending,
        ..transfer(
            &format!("t{}", m.id),
            &accounts[m.debit],
            &accounts[m.credit],
            m.amount,
        )
    };
    let mut model = Model::default();
    let mut first_results: HashMap<String, ledger::Transfer> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let (expected, got, recorded) = match op {
            Op::One(m) => {
                let expected = match Model::validate(m) {
                    Some(code) => code.to_owned(),
                    None => match model.apply(m) {
                        Ok(what) | Err(what) => what.to_owned(),
                    },
                };
                let got = ledger::create_transfer(cp.db(), &t, &to_new(m), &limits, T0).await;
                (
                    expected,
                    outcome(&got, |r| r.created),
                    got.map(|r| vec![r]).unwrap_or_default(),
                )
            }
            Op::Batch(moves) => {
                let expected = model.batch(moves);
                let requests: Vec<_> = moves.iter().map(to_new).collect();
                let got = ledger::create_transfers(cp.db(), &t, &requests, &limits, T0).await;
                let outcome = outcome(&got, |rs| rs.iter().any(|r| r.created));
                (expected, outcome, got.unwrap_or_default())
            }
            Op::Post(p, amount) => {
                let expected = model.close(*p, "post_pending", *amount);
                let resolve = Resolve {
                    amount: *amount,
                    ..Resolve::default()
                };
                let got =
                    ledger::post_pending(cp.db(), &t, &format!("t{p}"), &resolve, &limits, T0)
                        .await;
                (
                    expected,
                    outcome(&got, |r| r.created),
                    got.map(|r| vec![r]).unwrap_or_default(),
                )
            }
            Op::Void(p) => {
                let expected = model.close(*p, "void_pending", None);
                let got = ledger::void_pending(
                    cp.db(),
                    &t,
                    &format!("t{p}"),
                    &Resolve::default(),
                    &limits,
                    T0,
                )
                .await;
                (
                    expected,
                    outcome(&got, |r| r.created),
                    got.map(|r| vec![r]).unwrap_or_default(),
                )
            }
        };
        if expected != got {
            return Err(format!(
                "step {step} {op:?}: model says {expected}, ledger says {got}"
            ));
        }
        // An id used twice gives the first result.
        for r in recorded {
            match first_results.get(&r.transfer.id) {
                Some(first) if *first != r.transfer => {
                    return Err(format!(
                        "step {step}: {} changed from {first:?} to {:?}",
                        r.transfer.id, r.transfer
                    ))
                }
                Some(_) if r.created => {
                    return Err(format!("step {step}: {} created twice", r.transfer.id))
                }
                _ => {
                    first_results.insert(r.transfer.id.clone(), r.transfer);
                }
            }
        }
    }
    for (i, account) in accounts.iter().enumerate() {
        let stored = totals(cp, &t, account).await;
        if stored != model.totals[i] {
            return Err(format!(
                "account {}: stored {stored:?}, model {:?}",
                SPECS[i].0, model.totals[i]
            ));
        }
    }
    let audit = ledger::audit(cp.db(), &t)
        .await
        .map_err(|e| e.to_string())?;
    if !audit.is_sound() || audit.transfers != model.rows.len() {
        return Err(format!("audit {audit:?}, model rows {}", model.rows.len()));
    }
    // Every journal row is balanced: one debit, one other credit, amount > 0.
    let journal = ledger::list_transfers(cp.db(), &t, None, 1_000)
        .await
        .map_err(|e| e.to_string())?;
    if journal.len() != model.rows.len()
        || journal
            .iter()
            .any(|r| r.amount <= 0 || r.debit_account_id == r.credit_account_id)
    {
        return Err(format!("journal {journal:?}"));
    }
    Ok(())
}

fn property_test(engine: Engine, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (db, cp) = runtime.block_on(open(engine, |_| {}));
    let config = proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&prop::collection::vec(an_op(), 1..40), |ops| {
        let case = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime
            .block_on(run_case(&cp, case, &ops))
            .map_err(proptest::test_runner::TestCaseError::fail)
    });
    runtime.block_on(db.cleanup(vec![cp]));
    if let Err(err) = result {
        panic!("{engine:?}: {err}");
    }
}

#[test]
fn property_the_ledger_matches_its_model_on_sqlite() {
    property_test(Engine::Sqlite, 64);
}

#[test]
fn property_the_ledger_matches_its_model_on_postgres() {
    property_test(Engine::Postgres, 32);
}

// ---------------------------------------------------------------------------
// Concurrency.

/// Many tasks move money between a few hot accounts that may not go
/// negative, with single transfers, batches and holds; at the end no money
/// was made or lost, no account is negative, and the replay matches.
async fn stress(engine: Engine, tasks: usize, ops_per_task: usize) {
    let (db, cp) = open(engine, |c| c.db_connections_max = 16).await;
    let t = tenant(&cp, "stress").await;
    let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
    let mut hot = Vec::new();
    for i in 0..5 {
        hot.push(
            account(
                &cp,
                &t,
                &format!("hot{i}"),
                "EUR",
                BalanceLimit::DebitsMustNotExceedCredits,
            )
            .await,
        );
    }
    let limits = Limits::from_config(cp.config());
    let fund: Vec<_> = hot
        .iter()
        .enumerate()
        .map(|(i, a)| transfer(&format!("fund{i}"), &world, a, 1_000))
        .collect();
    ledger::create_transfers(cp.db(), &t, &fund, &limits, T0)
        .await
        .expect("fund");
    let hot = Arc::new(hot);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (cp, t, hot) = (cp.clone(), t.clone(), hot.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = proptest::test_runner::TestRng::deterministic_rng(
                proptest::test_runner::RngAlgorithm::ChaCha,
            );
            for _ in 0..task {
                rng.next_u32();
            }
            let mut ok = 0_usize;
            let mut refused = 0_usize;
            for op in 0..ops_per_task {
                let from = (rng.next_u32() as usize) % hot.len();
                let to = (from + 1 + (rng.next_u32() as usize) % (hot.len() - 1)) % hot.len();
                let amount = 1 + i64::from(rng.next_u32() % 400);
                let id = format!("s{task}-{op}");
                let result = match op % 4 {
                    0 | 1 => ledger::create_transfer(
                        cp.db(),
                        &t,
                        &transfer(&id, &hot[from], &hot[to], amount),
                        &limits,
                        T0,
                    )
                    .await
                    .map(|_| ()),
                    2 => {
                        let back = (to + 1) % hot.len();
                        let batch = [
                            transfer(&format!("{id}a"), &hot[from], &hot[to], amount),
                            transfer(&format!("{id}b"), &hot[to], &hot[back], amount / 2 + 1),
                        ];
                        ledger::create_transfers(cp.db(), &t, &batch, &limits, T0)
                            .await
                            .map(|_| ())
                    }
                    _ => match ledger::create_transfer(
                        cp.db(),
                        &t,
                        &pending(&id, &hot[from], &hot[to], amount, 60_000),
                        &limits,
                        T0,
                    )
                    .await
                    {
                        Ok(_) if amount % 2 == 0 => {
                            ledger::post_pending(cp.db(), &t, &id, &Resolve::default(), &limits, T0)
                                .await
                                .map(|_| ())
                        }
                        Ok(_) => {
                            ledger::void_pending(cp.db(), &t, &id, &Resolve::default(), &limits, T0)
                                .await
                                .map(|_| ())
                        }
                        Err(err) => Err(err),
                    },
                };
                match result {
                    Ok(()) => ok += 1,
                    Err(err) if err.code().as_str() == "insufficient_funds" => refused += 1,
                    Err(err) => panic!("{engine:?} task {task} op {op}: unexpected error {err}"),
                }
            }
            (ok, refused)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for handle in handles {
        let (o, r) = handle.await.expect("task");
        ok += o;
        refused += r;
    }
    assert!(
        ok > tasks,
        "{engine:?}: only {ok} of {} operations went through",
        tasks * ops_per_task
    );
    let audit = assert_sound(&cp, &t).await;
    let mut total = 0;
    for account in hot.iter() {
        let [dpe, dp, cpe, cp_] = totals(&cp, &t, account).await;
        assert_eq!((dpe, cpe), (0, 0), "every hold was closed");
        assert!(cp_ - dp >= 0, "{} is overdrawn: {dp} > {cp_}", account.code);
        total += cp_ - dp;
    }
    assert_eq!(total, 5_000, "money was made or lost");
    eprintln!(
        "{engine:?} stress: {ok} done, {refused} refused for funds, {} journal rows",
        audit.transfers
    );
    db.cleanup(vec![cp]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_on_hot_accounts_on_postgres() {
    stress(Engine::Postgres, 32, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_on_hot_accounts_on_sqlite() {
    stress(Engine::Sqlite, 8, 30).await;
}

/// Single transfers through the group commit (what `POST
/// /api/v1/ledger/transfers` uses), many at once on a few hot accounts: no
/// update is lost, no account is overdrawn, a refused transfer fails alone,
/// and an id repeated within one group or across groups is written once.
async fn group_commit(engine: Engine, tasks: usize, ops_per_task: usize) {
    let (db, cp) = open(engine, |c| c.db_connections_max = 8).await;
    let t = tenant(&cp, "group").await;
    let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
    let mut hot = Vec::new();
    for i in 0..4 {
        let code = format!("hot{i}");
        hot.push(
            account(
                &cp,
                &t,
                &code,
                "EUR",
                BalanceLimit::DebitsMustNotExceedCredits,
            )
            .await,
        );
    }
    let limits = Limits::from_config(cp.config());
    let fund: Vec<_> = hot
        .iter()
        .enumerate()
        .map(|(i, a)| transfer(&format!("fund{i}"), &world, a, 1_000))
        .collect();
    ledger::create_transfers(cp.db(), &t, &fund, &limits, T0)
        .await
        .expect("fund");
    let hot = Arc::new(hot);

    // Random moves, each task with its own ids, plus a hopeless overdraft
    // next to them every few moves: it fails alone.
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (cp, t, hot) = (cp.clone(), t.clone(), hot.clone());
        handles.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0_usize, 0_usize);
            for op in 0..ops_per_task {
                let from = (task + op) % hot.len();
                let to = (from + 1 + op % (hot.len() - 1)) % hot.len();
                let amount = if op % 5 == 4 {
                    1_000_000
                } else {
                    1 + i64::try_from((task * 31 + op * 17) % 300).expect("small")
                };
                let id = format!("g{task}-{op}");
                match cp
                    .ledger_writer()
                    .create_transfer(&t, transfer(&id, &hot[from], &hot[to], amount), T0)
                    .await
                {
                    Ok(recorded) => {
                        assert!(recorded.created, "{id} is new");
                        ok += 1;
                    }
                    Err(err) if err.code().as_str() == "insufficient_funds" => refused += 1,
                    Err(err) => panic!("{engine:?} {id}: unexpected error {err}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for handle in handles {
        let (o, r) = handle.await.expect("task");
        ok += o;
        refused += r;
    }
    assert!(
        refused >= tasks * (ops_per_task / 5),
        "every overdraft was refused"
    );
    assert!(
        ok >= tasks * ops_per_task / 2,
        "{engine:?}: only {ok} went through"
    );
    let audit = assert_sound(&cp, &t).await;
    assert_eq!(audit.transfers, 4 + ok, "one journal row per success");
    let mut total = 0;
    for account in hot.iter() {
        let [_, dp, _, cp_] = totals(&cp, &t, account).await;
        assert!(cp_ >= dp, "{} is overdrawn: {dp} > {cp_}", account.code);
        total += cp_ - dp;
    }
    assert_eq!(total, 4_000, "money was made or lost");

    // One id sent by many at once (some in one group, some in later ones):
    // written once, every other answer is the stored row.
    let same = transfer("same-id", &hot[0], &hot[1], 7);
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (cp, t, same) = (cp.clone(), t.clone(), same.clone());
        handles.push(tokio::spawn(async move {
            cp.ledger_writer().create_transfer(&t, same, T0).await
        }));
    }
    let mut created = 0;
    for handle in handles {
        let recorded = handle.await.expect("task").expect("same id");
        assert_eq!(recorded.transfer.amount, 7);
        created += usize::from(recorded.created);
    }
    assert_eq!(created, 1, "{engine:?}: the id was written {created} times");
    // Across groups: the same body answers the row, another body conflicts,
    // and a neighbour in flight at the same time is unaffected.
    let other = transfer("same-id", &hot[0], &hot[1], 8);
    let neighbour = transfer("neighbour", &hot[2], &hot[3], 5);
    let writer = cp.ledger_writer();
    let (again, conflict, next) = tokio::join!(
        writer.create_transfer(&t, same.clone(), T0),
        writer.create_transfer(&t, other, T0),
        writer.create_transfer(&t, neighbour, T0),
    );
    assert!(!again.expect("same body").created);
    assert_eq!(
        outcome(&conflict, |r: &ledger::Recorded| r.created),
        "idempotency_conflict"
    );
    assert!(next.expect("neighbour").created);
    // Bad input fails alone too, before it reaches the database.
    let bad = transfer("bad/id", &hot[0], &hot[1], 1);
    assert_eq!(
        outcome(
            &writer.create_transfer(&t, bad, T0).await,
            |r: &ledger::Recorded| r.created
        ),
        "bad_request"
    );
    // Another tenant cannot move this tenant's money through a shared group.
    let intruder = tenant(&cp, "intruder").await;
    let theft = transfer("theft", &hot[0], &hot[1], 1);
    assert_eq!(
        outcome(
            &writer.create_transfer(&intruder, theft, T0).await,
            |r: &ledger::Recorded| r.created
        ),
        "not_found"
    );
    let audit = assert_sound(&cp, &t).await;
    assert_eq!(audit.transfers, 4 + ok + 2);
    db.cleanup(vec![cp]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_on_hot_accounts_on_postgres() {
    group_commit(Engine::Postgres, 32, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_on_hot_accounts_on_sqlite() {
    group_commit(Engine::Sqlite, 8, 20).await;
}

/// `ledger_group_commit_queue_max` at its edge: with the writer held up (by
/// another transaction holding SQLite's write lock), the one it took plus
/// `queue_max` more wait, and the next is refused at once with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_group_commit_queue_answers_busy() {
    let (db, cp) = open(Engine::Sqlite, |c| {
        c.ledger_group_commit_queue_max = 1;
        c.db_connections_max = 4;
    })
    .await;
    let t = tenant(&cp, "busy").await;
    let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
    let shop = account(&cp, &t, "shop", "EUR", BalanceLimit::None).await;
    let blocker = cp.db().begin_write().await.expect("write lock");
    let writer = cp.ledger_writer().clone();
    let first = {
        let (writer, t, tr) = (writer.clone(), t.clone(), transfer("q1", &world, &shop, 1));
        tokio::spawn(async move { writer.create_transfer(&t, tr, T0).await })
    };
    // Wait until the writer has taken the first (the queue is empty again).
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if writer.queued() == 0 {
            break;
        }
    }
    assert_eq!(writer.queued(), 0, "the writer took the first transfer");
    let second = {
        let (writer, t, tr) = (writer.clone(), t.clone(), transfer("q2", &world, &shop, 1));
        tokio::spawn(async move { writer.create_transfer(&t, tr, T0).await })
    };
    for _ in 0..200 {
        if writer.queued() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let third = writer
        .create_transfer(&t, transfer("q3", &world, &shop, 1), T0)
        .await;
    match &third {
        Err(err @ LedgerError::Busy(1)) => assert_eq!(err.code().as_str(), "unavailable"),
        other => panic!("expected busy, got {other:?}"),
    }
    blocker.rollback().await.expect("release");
    assert!(first.await.expect("task").expect("q1").created);
    assert!(second.await.expect("task").expect("q2").created);
    let audit = assert_sound(&cp, &t).await;
    assert_eq!(audit.transfers, 2);
    db.cleanup(vec![cp]).await;
}

/// Holds up the group-commit writer: a transaction that holds the tenant's
/// account rows (PostgreSQL) or the single write lock (SQLite), so that
/// whatever is queued meanwhile is written as one later group.
async fn hold_accounts(cp: &ControlPlane, tenant: &str) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut blocker = cp.db().begin_write().await.expect("write lock");
    sqlx::query(&format!(
        "SELECT id FROM ledger_accounts WHERE tenant_id = $1{}",
        cp.db().lock_clause()
    ))
    .bind(tenant)
    .fetch_all(&mut *blocker)
    .await
    .expect("lock accounts");
    blocker
}

/// Batches through the group commit: several in one group, each all or
/// nothing on its own, next to single transfers; a batch that repeats an
/// id of an earlier request in the group sees it committed (same body: the
/// stored row, another body: a conflict that fails that batch only).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_in_one_group_stand_or_fall_alone() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |c| c.db_connections_max = 4).await;
        let t = tenant(&cp, "batches").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let limit = BalanceLimit::DebitsMustNotExceedCredits;
        let a = account(&cp, &t, "a", "EUR", limit).await;
        let b = account(&cp, &t, "b", "EUR", limit).await;
        let writer = cp.ledger_writer().clone();
        writer
            .create_transfers(&t, vec![transfer("fund-a", &world, &a, 100)], T0)
            .await
            .expect("fund");

        let blocker = hold_accounts(&cp, &t).await;
        // Each request is in the queue before the next is sent, so they
        // keep this order.
        let wait_queued = |n: usize| {
            let writer = writer.clone();
            async move {
                for _ in 0..500 {
                    if writer.queued() == n {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                panic!("{engine:?}: {} queued, not {n}", writer.queued());
            }
        };
        let send = |transfers: Vec<NewTransfer>| {
            let (writer, t) = (writer.clone(), t.clone());
            tokio::spawn(async move { writer.create_transfers(&t, transfers, T0).await })
        };
        // Taken first and held up by the blocker; the rest queue behind it.
        let first = send(vec![transfer("first", &a, &b, 10)]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        wait_queued(0).await;
        let good = send(vec![
            transfer("good-1", &a, &b, 20),
            transfer("good-2", &b, &a, 5),
        ]);
        wait_queued(1).await;
        // Its first transfer is fine alone, its second overdraws: neither.
        let short = send(vec![
            transfer("short-1", &a, &b, 1),
            transfer("short-2", &b, &world, 1_000),
        ]);
        wait_queued(2).await;
        let single = {
            let (writer, t, tr) = (writer.clone(), t.clone(), transfer("single", &a, &b, 3));
            tokio::spawn(async move { writer.create_transfer(&t, tr, T0).await })
        };
        wait_queued(3).await;
        let repeat = send(vec![
            transfer("good-1", &a, &b, 20),
            transfer("after-repeat", &b, &a, 1),
        ]);
        wait_queued(4).await;
        let conflict = send(vec![
            transfer("before-conflict", &a, &b, 1),
            transfer("single", &a, &b, 4),
        ]);
        wait_queued(5).await;
        let twice = send(vec![
            transfer("twice", &a, &b, 1),
            transfer("twice", &a, &b, 1),
        ]);
        wait_queued(6).await;
        blocker.rollback().await.expect("release");

        assert!(first.await.expect("task").expect("first")[0].created);
        let good = good.await.expect("task").expect("good");
        assert!(good.iter().all(|r| r.created), "{engine:?}: {good:?}");
        match short.await.expect("task") {
            Err(LedgerError::InBatch { index, id, source }) => {
                assert_eq!((index, id.as_str()), (1, "short-2"));
                assert_eq!(source.code().as_str(), "insufficient_funds");
            }
            other => panic!("{engine:?}: short batch gave {other:?}"),
        }
        assert!(single.await.expect("task").expect("single").created);
        let repeat = repeat.await.expect("task").expect("repeat");
        assert_eq!(
            repeat.iter().map(|r| r.created).collect::<Vec<_>>(),
            [false, true],
            "{engine:?}: the repeated id answers the stored row"
        );
        match conflict.await.expect("task") {
            Err(LedgerError::InBatch { index, source, .. }) => {
                assert_eq!(index, 1);
                assert_eq!(source.code().as_str(), "idempotency_conflict");
            }
            other => panic!("{engine:?}: conflicting batch gave {other:?}"),
        }
        assert_eq!(
            outcome(&twice.await.expect("task"), |r: &Vec<ledger::Recorded>| r
                .iter()
                .any(|r| r.created)),
            "bad_request"
        );
        for id in ["short-1", "short-2", "before-conflict", "twice"] {
            assert_eq!(
                outcome(&ledger::get_transfer(cp.db(), &t, id).await, |_| true),
                "not_found",
                "{engine:?}: {id} of a failed batch was written"
            );
        }
        // fund 100, first 10, good 20 - 5, single 3, after-repeat -1.
        assert_eq!(totals(&cp, &t, &a).await, [0, 33, 0, 106]);
        assert_eq!(totals(&cp, &t, &b).await, [0, 6, 0, 33]);
        let audit = assert_sound(&cp, &t).await;
        assert_eq!(audit.transfers, 6);
        db.cleanup(vec![cp]).await;
    }
}

/// A group whose first attempt meets an id already in the journal (the
/// writer tries without looking ids up first): the attempt is rolled back
/// whole and redone with the lookup, so the repeat answers the stored row,
/// its fresh neighbours in the same round are written once, and the
/// rolled-back attempt leaves no journal row and no event behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_in_a_group_of_fresh_transfers_answers_the_stored_row() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |c| c.db_connections_max = 4).await;
        let t = tenant(&cp, "repeats").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let a = account(&cp, &t, "a", "EUR", BalanceLimit::None).await;
        let writer = cp.ledger_writer().clone();
        let stored = writer
            .create_transfer(&t, transfer("x", &world, &a, 7), T0)
            .await
            .expect("first");
        assert!(stored.created);

        let blocker = hold_accounts(&cp, &t).await;
        let send = |id: &str, amount: i64| {
            let (writer, t, tr) = (writer.clone(), t.clone(), transfer(id, &world, &a, amount));
            tokio::spawn(async move { writer.create_transfer(&t, tr, T0).await })
        };
        // The first is taken and held up; the next three queue behind it
        // and go in one group, one round (their ids are distinct).
        let head = send("head", 1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let fresh_1 = send("y1", 2);
        let repeat = send("x", 7);
        let fresh_2 = send("y2", 3);
        for _ in 0..500 {
            if writer.queued() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(writer.queued(), 3, "{engine:?}: the three did not queue");
        blocker.rollback().await.expect("release");

        assert!(head.await.expect("task").expect("head").created);
        assert!(fresh_1.await.expect("task").expect("y1").created);
        let repeat = repeat.await.expect("task").expect("repeat");
        assert!(!repeat.created, "{engine:?}: x was written twice");
        assert_eq!(repeat.transfer, stored.transfer);
        assert!(fresh_2.await.expect("task").expect("y2").created);
        // And once more now that the writer has seen a repeat (it looks
        // the ids up first this time).
        let again = writer
            .create_transfer(&t, transfer("x", &world, &a, 7), T0)
            .await
            .expect("again");
        assert!(!again.created);

        assert_eq!(totals(&cp, &t, &a).await, [0, 0, 0, 13]);
        let audit = assert_sound(&cp, &t).await;
        assert_eq!(audit.transfers, 4, "{engine:?}: x, head, y1, y2");
        let events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM domain_events WHERE tenant_id = $1 AND kind = 'transfer_posted'",
        )
        .bind(&t)
        .fetch_one(cp.db().pool())
        .await
        .expect("events");
        assert_eq!(events, 4, "{engine:?}: one event per journal row");
        db.cleanup(vec![cp]).await;
    }
}

/// A repeat that its accounts could no longer pay for again (the money
/// has since been spent) answers the stored row through the group commit,
/// not "insufficient funds", though the writer's first attempt does not
/// look ids up; a batch that repeats it beside a transfer that really
/// overdraws still fails on that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_its_accounts_cannot_pay_again_answers_the_stored_row() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |c| c.db_connections_max = 4).await;
        let t = tenant(&cp, "spent").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let limit = BalanceLimit::DebitsMustNotExceedCredits;
        let a = account(&cp, &t, "a", "EUR", limit).await;
        let b = account(&cp, &t, "b", "EUR", limit).await;
        let writer = cp.ledger_writer().clone();
        writer
            .create_transfer(&t, transfer("fund", &world, &a, 10), T0)
            .await
            .expect("fund");
        let spend = transfer("spend", &a, &b, 10);
        let first = writer
            .create_transfer(&t, spend.clone(), T0)
            .await
            .expect("spend");
        assert!(first.created);
        // a is empty now; the retry must still answer the stored row.
        let again = writer
            .create_transfer(&t, spend.clone(), T0)
            .await
            .expect("the retry answers the stored row");
        assert!(!again.created, "{engine:?}");
        assert_eq!(again.transfer, first.transfer);
        let batch = writer
            .create_transfers(&t, vec![spend.clone(), transfer("more", &a, &b, 1)], T0)
            .await;
        match batch {
            Err(LedgerError::InBatch { index, source, .. }) => {
                assert_eq!(index, 1, "{engine:?}");
                assert_eq!(source.code().as_str(), "insufficient_funds");
            }
            other => panic!("{engine:?}: the overdrawing batch gave {other:?}"),
        }
        assert_eq!(totals(&cp, &t, &a).await, [0, 10, 0, 10]);
        let audit = assert_sound(&cp, &t).await;
        assert_eq!(audit.transfers, 2);
        db.cleanup(vec![cp]).await;
    }
}

/// The audit reports a journal row that names an account the tenant does
/// not have: SQLite's foreign key refuses such a row outright; PostgreSQL
/// leaves that to the write path (migration 0010), and the audit catches a
/// row written around it.
#[tokio::test]
async fn the_audit_reports_a_journal_row_naming_an_unknown_account() {
    for engine in ENGINES {
        let (db, cp) = open(engine, |_| {}).await;
        let t = tenant(&cp, "orphans").await;
        let world = account(&cp, &t, "world", "EUR", BalanceLimit::None).await;
        let inserted = sqlx::query(
            "INSERT INTO ledger_transfers (tenant_id, id, kind, debit_account_id, \
             credit_account_id, amount, currency, metadata, created_at) \
             VALUES ($1, 'orphan', 'posted', $2, 'no-such-account', 5, 'EUR', '{}', 0)",
        )
        .bind(&t)
        .bind(&world.id)
        .execute(cp.db().pool())
        .await;
        match engine {
            Engine::Sqlite => assert!(inserted.is_err(), "SQLite's foreign key refuses it"),
            Engine::Postgres => {
                inserted.expect("written around the ledger");
                let audit = ledger::audit(cp.db(), &t).await.expect("audit");
                assert!(!audit.is_sound());
                let ids: Vec<&str> = audit.mismatches.iter().map(|m| m.0.as_str()).collect();
                assert_eq!(ids, [world.id.as_str(), "no-such-account"], "{audit:?}");
                assert_eq!(audit.mismatches[1].1, [0; 4]);
                assert_eq!(audit.mismatches[1].2, [0, 0, 0, 5]);
            }
        }
        db.cleanup(vec![cp]).await;
    }
}
