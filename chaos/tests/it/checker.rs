//! The checker on recorded data: a clean drill holds, and every kind of
//! loss or doubling, planted on purpose, is caught with its ids.

use std::collections::{BTreeMap, BTreeSet};

use chaos::checker::{
    check as check_platform, AckKind, AckedRun, Acknowledged, Balance, ClassLog, ClientLog,
    ClientStep, Ledger, Platform, ProcessReady, ResumeReason, Transfer, Verdict,
    VIOLATIONS_LISTED_MAX,
};
use expect_test::{expect, Expect};

const BOUND_MS: u64 = 10_000;

fn render(verdict: &Verdict) -> String {
    let mut out = format!("held: {}\n{:?}\n", verdict.held(), verdict.counts);
    for v in &verdict.violations {
        out.push_str(&format!("- {v}\n"));
    }
    if verdict.omitted > 0 {
        out.push_str(&format!("omitted: {}\n", verdict.omitted));
    }
    out
}

/// Runs the checker on a clean drill changed by `break_it`, and compares.
fn check(break_it: impl FnOnce(&mut Acknowledged, &mut Platform), expected: Expect) {
    let (mut acked, mut platform) = clean();
    break_it(&mut acked, &mut platform);
    expected.assert_eq(&render(&check_platform(&acked, &platform, BOUND_MS)));
}

fn run(id: &str, kind: AckKind) -> AckedRun {
    AckedRun {
        run_id: id.to_owned(),
        kind,
        at_ms: 1_000,
    }
}

fn transfer(id: &str, debit: &str, credit: &str, amount: i64) -> Transfer {
    Transfer {
        id: id.to_owned(),
        debit: debit.to_owned(),
        credit: credit.to_owned(),
        amount,
    }
}

fn events(seqs: impl IntoIterator<Item = u64>) -> impl Iterator<Item = ClientStep> {
    seqs.into_iter().map(|seq| ClientStep::Event { seq })
}

fn balance(debits: i128, credits: i128) -> Balance {
    Balance {
        debits_posted: debits,
        credits_posted: credits,
    }
}

/// A drill where every promise held: two runs and a submission recorded
/// once; ada sees class c1 from its snapshot at 3 to its last event 12
/// across a failover (seq 7 was not for her); bob joins, leaves, joins again
/// with a snapshot; one transfer accepted and one unanswered that the
/// ledger did make; every process ready within the bound.
fn clean() -> (Acknowledged, Platform) {
    let acked = Acknowledged {
        runs: vec![
            run("r1", AckKind::Run),
            run("r2", AckKind::Run),
            run("s1", AckKind::Submission),
        ],
        clients: vec![
            ClientLog {
                client: "ada".to_owned(),
                class_id: "c1".to_owned(),
                steps: std::iter::once(ClientStep::Join { snapshot_seq: 3 })
                    .chain(events([4, 5, 6]))
                    .chain([ClientStep::Resume {
                        reason: ResumeReason::Failover,
                        snapshot_seq: None,
                    }])
                    .chain(events([8, 9, 10, 11, 12]))
                    .collect(),
            },
            ClientLog {
                client: "bob".to_owned(),
                class_id: "c1".to_owned(),
                steps: std::iter::once(ClientStep::Join { snapshot_seq: 0 })
                    .chain(events([1, 2]))
                    .chain([ClientStep::Leave, ClientStep::Join { snapshot_seq: 9 }])
                    .chain(events([10]))
                    .chain([ClientStep::Resume {
                        reason: ResumeReason::Reconnect,
                        snapshot_seq: Some(11),
                    }])
                    .chain(events([12]))
                    .collect(),
            },
        ],
        transfers: vec![transfer("t1", "learner", "tenant", 500)],
        transfers_unanswered: vec![
            transfer("t2", "learner", "tenant", 100),
            transfer("t3", "learner", "tenant", 7),
        ],
    };
    let platform = Platform {
        submissions_recorded: BTreeMap::from([
            ("r1".to_owned(), 1),
            ("r2".to_owned(), 1),
            ("s1".to_owned(), 1),
            ("not-acknowledged".to_owned(), 1),
        ]),
        classes: vec![ClassLog {
            class_id: "c1".to_owned(),
            last_seq: 12,
            hidden: BTreeMap::from([("ada".to_owned(), BTreeSet::from([7]))]),
        }],
        ledger: Ledger {
            before: BTreeMap::from([
                ("learner".to_owned(), balance(1_000, 5_000)),
                ("tenant".to_owned(), balance(0, 0)),
            ]),
            after: BTreeMap::from([
                ("learner".to_owned(), balance(1_600, 5_000)),
                ("tenant".to_owned(), balance(0, 600)),
            ]),
            recorded: BTreeSet::from(["t1".to_owned(), "t2".to_owned()]),
            audit_problems: Vec::new(),
        },
        healed_at_ms: 50_000,
        readiness: vec![
            ProcessReady {
                process: "control-plane".to_owned(),
                ready_at_ms: Some(50_000),
            },
            ProcessReady {
                process: "edge-eu-west".to_owned(),
                ready_at_ms: Some(58_500),
            },
        ],
    };
    (acked, platform)
}

#[test]
fn a_clean_drill_holds() {
    check(
        |_, _| {},
        expect![[r#"
            held: true
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
        "#]],
    );
}

#[test]
fn a_dropped_submission_is_caught() {
    // What a test-only switch that drops one acknowledged submission on the
    // floor leaves behind.
    check(
        |_, platform| {
            platform.submissions_recorded.remove("s1");
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 1, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - acknowledged submission s1 is not recorded
        "#]],
    );
}

#[test]
fn a_run_recorded_twice_or_an_id_answered_twice_is_caught() {
    check(
        |acked, platform| {
            platform.submissions_recorded.insert("r2".to_owned(), 2);
            acked.runs.push(run("r1", AckKind::Run));
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 1, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - acknowledged run r2 is recorded 2 times
            - two answers carried run id r1
        "#]],
    );
}

#[test]
fn gaps_and_duplicates_in_a_clients_events_are_caught() {
    check(
        |acked, _| {
            // ada: the failover replays 6 again, then skips 8 and 9.
            acked.clients[0].steps = std::iter::once(ClientStep::Join { snapshot_seq: 3 })
                .chain(events([4, 5, 6]))
                .chain([ClientStep::Resume {
                    reason: ResumeReason::Failover,
                    snapshot_seq: None,
                }])
                .chain(events([6, 10, 11, 12]))
                .collect();
            // bob: stops receiving after 10, and gets an event while out.
            acked.clients[1].steps = std::iter::once(ClientStep::Join { snapshot_seq: 0 })
                .chain(events([1, 2]))
                .chain([ClientStep::Leave])
                .chain(events([5]))
                .chain([ClientStep::Join { snapshot_seq: 9 }])
                .chain(events([10]))
                .collect();
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 11, events_missing: 4, events_duplicated: 1, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - client ada in class c1 received seq 6 again or out of order
            - client ada in class c1 missed seqs 8-9
            - client bob in class c1 received seq 5 outside its session or past the class's last event
            - client bob in class c1 missed seqs 11-12
        "#]],
    );
}

#[test]
fn snapshots_going_back_and_unknown_classes_are_caught() {
    check(
        |acked, _| {
            acked.clients[1].steps = std::iter::once(ClientStep::Join { snapshot_seq: 0 })
                .chain(events([1, 2, 3, 4, 5]))
                .chain([ClientStep::Resume {
                    reason: ResumeReason::Reconnect,
                    snapshot_seq: Some(2),
                }])
                .chain(events(6..=12))
                .collect();
            acked.clients.push(ClientLog {
                client: "eve".to_owned(),
                class_id: "c9".to_owned(),
                steps: Vec::new(),
            });
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 20, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - client bob in class c1 got a snapshot at seq 2 after seeing seq 5
            - client eve saw class c9, which the platform does not hold
        "#]],
    );
}

#[test]
fn a_seq_far_ahead_is_reported_as_ranges_without_walking_them() {
    check(
        |acked, platform| {
            platform.classes[0].last_seq = u64::MAX - 1;
            platform.classes[0]
                .hidden
                .insert("bob".to_owned(), BTreeSet::from([20, 21]));
            acked.clients.truncate(1);
            acked.clients[0].steps = vec![ClientStep::Join { snapshot_seq: 3 }];
            acked.clients.push(ClientLog {
                client: "bob".to_owned(),
                class_id: "c1".to_owned(),
                steps: std::iter::once(ClientStep::Join { snapshot_seq: 10 })
                    .chain(events([u64::MAX - 1]))
                    .collect(),
            });
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 1, events_missing: 18446744073709551615, events_duplicated: 0, failovers: 0, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - client ada in class c1 missed seqs 4-6, 8-18446744073709551614
            - client bob in class c1 missed seqs 11-19, 22-18446744073709551613
        "#]],
    );
}

#[test]
fn ledger_balances_must_equal_the_replay_of_accepted_transfers() {
    check(
        |acked, platform| {
            // t4 accepted but not in the journal; t9 in the journal, never
            // sent; the tenant's credits short by 1; the audit complains.
            acked
                .transfers
                .push(transfer("t4", "learner", "tenant", 50));
            platform.ledger.recorded.insert("t9".to_owned());
            platform
                .ledger
                .after
                .insert("tenant".to_owned(), balance(0, 599));
            platform.ledger.audit_problems =
                vec!["account tenant: totals differ from the journal".to_owned()];
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 2, transfers_lost: 1, balance_mismatches: 2, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - the ledger audit failed: account tenant: totals differ from the journal
            - accepted transfer t4 is not in the journal
            - the journal holds transfer t9, which the workload never sent
            - account learner holds debits 1600 credits 5000, the replay gives debits 1650 credits 5000
            - account tenant holds debits 0 credits 599, the replay gives debits 0 credits 650
        "#]],
    );
}

#[test]
fn a_reused_transfer_id_and_a_vanished_account_are_caught() {
    check(
        |acked, platform| {
            acked
                .transfers
                .push(transfer("t1", "learner", "tenant", 501));
            platform.ledger.after.remove("tenant");
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 1, processes_unrecovered: 0, recovery_ms: Some(8500) }
            - two accepted transfers share id t1 with different bodies
            - account tenant is missing after the drill
        "#]],
    );
}

#[test]
fn processes_must_be_ready_within_the_recovery_bound() {
    // Ready exactly at the bound holds; a millisecond later does not.
    check(
        |_, platform| platform.readiness[1].ready_at_ms = Some(50_000 + BOUND_MS),
        expect![[r#"
            held: true
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 0, recovery_ms: Some(10000) }
        "#]],
    );
    check(
        |_, platform| {
            platform.readiness[1].ready_at_ms = Some(50_001 + BOUND_MS);
            platform.readiness.push(ProcessReady {
                process: "edge-ap-south".to_owned(),
                ready_at_ms: None,
            });
        },
        expect![[r#"
            held: false
            Counts { runs_acknowledged: 3, runs_lost: 0, runs_duplicated: 0, events_received: 12, events_missing: 0, events_duplicated: 0, failovers: 1, transfers_accepted: 1, transfers_lost: 0, balance_mismatches: 0, processes_unrecovered: 2, recovery_ms: None }
            - edge-eu-west was ready again 10001 ms after the last heal, over the bound of 10000 ms
            - edge-ap-south was not ready again
        "#]],
    );
}

#[test]
fn violations_are_listed_up_to_the_limit_and_counted_beyond() {
    let lost = |n: usize| {
        let (mut acked, platform) = clean();
        acked.runs = (0..n)
            .map(|i| run(&format!("x{i}"), AckKind::Run))
            .collect();
        check_platform(&acked, &platform, BOUND_MS)
    };
    let at = lost(VIOLATIONS_LISTED_MAX);
    assert_eq!(
        (at.violations.len(), at.omitted),
        (VIOLATIONS_LISTED_MAX, 0)
    );
    let over = lost(VIOLATIONS_LISTED_MAX + 1);
    assert_eq!(
        (over.violations.len(), over.omitted),
        (VIOLATIONS_LISTED_MAX, 1)
    );
    assert_eq!(over.counts.runs_lost, VIOLATIONS_LISTED_MAX as u64 + 1);
    assert!(!over.held());
}

#[test]
fn the_checkers_inputs_round_trip_through_json() {
    let (acked, platform) = clean();
    let json = serde_json::to_string(&(&acked, &platform)).expect("encode");
    let back: (Acknowledged, Platform) = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, (acked, platform));
}
