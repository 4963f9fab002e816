//! The checker: did the platform keep every promise it made during the
//! drill? A pure function of two records. `Acknowledged` is what the
//! workload was told (runs answered, submissions acknowledged, the class
//! events each client received, ledger transfers accepted); `Platform` is
//! what the platform holds after healing and settling (submissions recorded
//! per run id, the class logs, ledger balances and audit, when each process
//! was ready again). The verdict lists every violation with the ids
//! involved, so a failed drill says what was lost, not only that something
//! was.
//!
//! The rules (also in `docs/design/chaos.md`):
//! * every acknowledged run and submission is recorded at the control plane
//!   exactly once (by run id);
//! * every client's class events run gap-free and duplicate-free from its
//!   join to its leave (or the class's last event), across resumes and
//!   failovers, leaving out only the events the class log says were not for
//!   that client;
//! * the ledger's audit passes, every accepted transfer is in its journal,
//!   no transfer the workload did not send is, and every balance equals the
//!   balance before plus the replay of the accepted transfers (and of the
//!   unanswered ones that the journal holds);
//! * every process is ready again within the recovery bound of the last
//!   heal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Most violations listed in one verdict; the rest are counted in
/// `Verdict::omitted`. The counts in `Verdict::counts` are always complete.
pub const VIOLATIONS_LISTED_MAX: usize = 1000;

/// What produced a submission record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckKind {
    /// A code run (`POST /api/v1/runs`).
    Run,
    /// A graded submission (`POST /api/v1/units/{id}/submissions`).
    Submission,
}

/// A run or submission the platform answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedRun {
    /// The run id the answer carried.
    pub run_id: String,
    /// Run or graded submission.
    pub kind: AckKind,
    /// When it was answered, in milliseconds from the start of the workload.
    pub at_ms: u64,
}

/// Why a client joined again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeReason {
    /// The class moved (close 4011): a failover.
    Failover,
    /// Any other lost connection.
    Reconnect,
}

/// One thing a client saw, in the order it saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientStep {
    /// A fresh join, answered by a snapshot at this seq.
    Join {
        /// The snapshot's seq: events after it are owed.
        snapshot_seq: u64,
    },
    /// A class event.
    Event {
        /// Its seq.
        seq: u64,
    },
    /// A join with `last_seq` after a lost connection.
    Resume {
        /// Why.
        reason: ResumeReason,
        /// Set when the answer was a snapshot (a resume from further back
        /// than the replay buffer) rather than the missed events.
        snapshot_seq: Option<u64>,
    },
    /// The client left the class; nothing is owed until it joins again.
    Leave,
}

/// Everything one client saw of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLog {
    /// The client (a learner's user id, or the workload's name for it).
    pub client: String,
    /// The class.
    pub class_id: String,
    /// What it saw, in order.
    pub steps: Vec<ClientStep>,
}

/// A ledger transfer the workload sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id (the workload picks it; the ledger is idempotent by id).
    pub id: String,
    /// The account debited.
    pub debit: String,
    /// The account credited.
    pub credit: String,
    /// Minor units, positive.
    pub amount: i64,
}

/// What the workload was told during the drill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// Runs and submissions answered.
    pub runs: Vec<AckedRun>,
    /// Class events, per client.
    pub clients: Vec<ClientLog>,
    /// Transfers accepted (201 or the idempotent 200).
    pub transfers: Vec<Transfer>,
    /// Transfers sent without an answer (timed out, connection lost): either
    /// outcome is allowed, and the ledger says which.
    pub transfers_unanswered: Vec<Transfer>,
}

/// One class as the platform holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLog {
    /// The class.
    pub class_id: String,
    /// The seq of its last event.
    pub last_seq: u64,
    /// Per client, the seqs that were not meant for it (another breakout
    /// group's chat, another learner's submission).
    pub hidden: BTreeMap<String, BTreeSet<u64>>,
}

/// Posted totals of one ledger account, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Posted debits.
    pub debits_posted: i128,
    /// Posted credits.
    pub credits_posted: i128,
}

/// The ledger as the platform holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Balances of the workload's accounts before the drill.
    pub before: BTreeMap<String, Balance>,
    /// Balances of the same accounts afterwards.
    pub after: BTreeMap<String, Balance>,
    /// Ids of every transfer in the journal on the workload's accounts since
    /// the drill started.
    pub recorded: BTreeSet<String>,
    /// What `GET /api/v1/ledger/audit` reported wrong; empty when it passed.
    pub audit_problems: Vec<String>,
}

/// When one process was ready again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReady {
    /// The process (`control-plane`, `edge-eu-west`, ...).
    pub process: String,
    /// The first time at or after the last heal from which its `/readyz`
    /// answered 200, in milliseconds from the start of the workload; absent
    /// when it never was before the checker ran.
    pub ready_at_ms: Option<u64>,
}

/// What the platform holds after healing and settling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Submission records at the control plane: run id -> how many.
    pub submissions_recorded: BTreeMap<String, u32>,
    /// The workload's classes.
    pub classes: Vec<ClassLog>,
    /// The ledger.
    pub ledger: Ledger,
    /// When the last fault was healed, in milliseconds from the start.
    pub healed_at_ms: u64,
    /// Every process of the cluster.
    pub readiness: Vec<ProcessReady>,
}

/// Inclusive range of seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// First seq.
    pub first: u64,
    /// Last seq.
    pub last: u64,
}

impl SeqRange {
    /// How many seqs, saturating at `u64::MAX` for the one range that
    /// would not fit.
    fn len(self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One broken promise, with the ids involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Violation {
    /// An acknowledged run or submission has no record.
    RunLost {
        /// Run or submission.
        kind: AckKind,
        /// The run id.
        run_id: String,
    },
    /// An acknowledged run or submission is recorded more than once.
    RunDuplicated {
        /// Run or submission.
        kind: AckKind,
        /// The run id.
        run_id: String,
        /// How many records.
        count: u32,
    },
    /// Two answers carried the same run id.
    RunIdReused {
        /// The run id.
        run_id: String,
    },
    /// A client never received events it was owed.
    EventsMissing {
        /// The client.
        client: String,
        /// The class.
        class_id: String,
        /// The seqs missing.
        seqs: Vec<SeqRange>,
    },
    /// A client received an event twice, or out of order.
    EventDuplicated {
        /// The client.
        client: String,
        /// The class.
        class_id: String,
        /// The seq received again.
        seq: u64,
    },
    /// A client received an event while not in the class, or one past the
    /// class's last event.
    EventUnexpected {
        /// The client.
        client: String,
        /// The class.
        class_id: String,
        /// The seq.
        seq: u64,
    },
    /// A snapshot took a client back to before what it had seen.
    SnapshotBehind {
        /// The client.
        client: String,
        /// The class.
        class_id: String,
        /// The snapshot's seq.
        snapshot_seq: u64,
        /// The last seq the client had.
        seen_seq: u64,
    },
    /// A client's class is not among the platform's classes.
    ClassUnknown {
        /// The client.
        client: String,
        /// The class.
        class_id: String,
    },
    /// An accepted transfer is not in the journal.
    TransferLost {
        /// The transfer id.
        id: String,
    },
    /// The journal holds a transfer the workload never sent.
    TransferUnexpected {
        /// The transfer id.
        id: String,
    },
    /// Two accepted transfers with one id but different bodies.
    TransferIdReused {
        /// The transfer id.
        id: String,
    },
    /// An account's balance is not the replay of the transfers.
    BalanceMismatch {
        /// The account.
        account: String,
        /// Before plus the replay.
        expected: Balance,
        /// What the ledger holds (absent: the account is gone).
        actual: Option<Balance>,
    },
    /// The ledger's own audit failed.
    AuditFailed {
        /// What it reported.
        problems: Vec<String>,
    },
    /// A process never became ready again.
    NotReady {
        /// The process.
        process: String,
    },
    /// A process became ready again, but later than the recovery bound.
    RecoveredLate {
        /// The process.
        process: String,
        /// How long after the last heal.
        recovery_ms: u64,
        /// The bound.
        bound_ms: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |k: &AckKind| match k {
            AckKind::Run => "run",
            AckKind::Submission => "submission",
        };
        match self {
            Self::RunLost { kind: k, run_id } => {
                write!(f, "acknowledged {} {run_id} is not recorded", kind(k))
            }
            Self::RunDuplicated { kind: k, run_id, count } => {
                write!(f, "acknowledged {} {run_id} is recorded {count} times", kind(k))
            }
            Self::RunIdReused { run_id } => write!(f, "two answers carried run id {run_id}"),
            Self::EventsMissing { client, class_id, seqs } => {
                let seqs: Vec<String> = seqs.iter().map(ToString::to_string).collect();
                write!(f, "client {client} in class {class_id} missed seqs {}", seqs.join(", "))
            }
            Self::EventDuplicated { client, class_id, seq } => {
                write!(f, "client {client} in class {class_id} received seq {seq} again or out of order")
            }
            Self::EventUnexpected { client, class_id, seq } => {
                write!(f, "client {client} in class {class_id} received seq {seq} outside its session or past the class's last event")
            }
            Self::SnapshotBehind { client, class_id, snapshot_seq, seen_seq } => write!(
                f,
                "client {client} in class {class_id} got a snapshot at seq {snapshot_seq} after seeing seq {seen_seq}"
            ),
            Self::ClassUnknown { client, class_id } => {
                write!(f, "client {client} saw class {class_id}, which the platform does not hold")
            }
            Self::TransferLost { id } => write!(f, "accepted transfer {id} is not in the journal"),
            Self::TransferUnexpected { id } => {
                write!(f, "the journal holds transfer {id}, which the workload never sent")
            }
            Self::TransferIdReused { id } => {
                write!(f, "two accepted transfers share id {id} with different bodies")
            }
            Self::BalanceMismatch { account, expected, actual } => match actual {
                Some(actual) => write!(
                    f,
                    "account {account} holds debits {} credits {}, the replay gives debits {} credits {}",
                    actual.debits_posted, actual.credits_posted, expected.debits_posted, expected.credits_posted
                ),
                None => write!(f, "account {account} is missing after the drill"),
            },
            Self::AuditFailed { problems } => {
                write!(f, "the ledger audit failed: {}", problems.join("; "))
            }
            Self::NotReady { process } => write!(f, "{process} was not ready again"),
            Self::RecoveredLate { process, recovery_ms, bound_ms } => write!(
                f,
                "{process} was ready again {recovery_ms} ms after the last heal, over the bound of {bound_ms} ms"
            ),
        }
    }
}

/// Complete counts, whatever the number of violations listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Runs and submissions acknowledged (distinct run ids).
    pub runs_acknowledged: u64,
    /// Of which without a record.
    pub runs_lost: u64,
    /// Of which recorded more than once.
    pub runs_duplicated: u64,
    /// Class events received over all clients.
    pub events_received: u64,
    /// Events owed and never received.
    pub events_missing: u64,
    /// Events received twice or out of order.
    pub events_duplicated: u64,
    /// Resumes after a failover, over all clients.
    pub failovers: u64,
    /// Transfers accepted.
    pub transfers_accepted: u64,
    /// Accepted transfers not in the journal.
    pub transfers_lost: u64,
    /// Accounts whose balance is not the replay.
    pub balance_mismatches: u64,
    /// Processes not ready again, or late.
    pub processes_unrecovered: u64,
    /// The longest time from the last heal to a process being ready, in
    /// milliseconds (absent when some process never was).
    pub recovery_ms: Option<u64>,
}

impl Counts {
    /// Everything acknowledged and lost: runs, events, transfers.
    pub fn lost(&self) -> u64 {
        self.runs_lost + self.events_missing + self.transfers_lost
    }

    /// Everything acknowledged and doubled: runs, events.
    pub fn duplicated(&self) -> u64 {
        self.runs_duplicated + self.events_duplicated
    }
}

/// The checker's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every violation, up to [`VIOLATIONS_LISTED_MAX`], in rule order.
    pub violations: Vec<Violation>,
    /// Violations found beyond the listed ones.
    pub omitted: u64,
    /// The counts.
    pub counts: Counts,
}

impl Verdict {
    /// Whether every promise held.
    pub fn held(&self) -> bool {
        self.violations.is_empty() && self.omitted == 0
    }

    fn push(&mut self, violation: Violation) {
        if self.violations.len() < VIOLATIONS_LISTED_MAX {
            self.violations.push(violation);
        } else {
            self.omitted += 1;
        }
    }
}

/// Checks the platform against what the workload was told.
pub fn check(acked: &Acknowledged, platform: &Platform, recovery_bound_ms: u64) -> Verdict {
    let mut verdict = Verdict::default();
    check_runs(acked, platform, &mut verdict);
    check_events(acked, platform, &mut verdict);
    check_ledger(acked, platform, &mut verdict);
    check_readiness(platform, recovery_bound_ms, &mut verdict);
    verdict
}

fn check_runs(acked: &Acknowledged, platform: &Platform, verdict: &mut Verdict) {
    let mut seen = BTreeSet::new();
    for run in &acked.runs {
        if !seen.insert(run.run_id.as_str()) {
            verdict.push(Violation::RunIdReused {
                run_id: run.run_id.clone(),
            });
            continue;
        }
        verdict.counts.runs_acknowledged += 1;
        match platform
            .submissions_recorded
            .get(&run.run_id)
            .copied()
            .unwrap_or(0)
        {
            0 => {
                verdict.counts.runs_lost += 1;
                verdict.push(Violation::RunLost {
                    kind: run.kind,
                    run_id: run.run_id.clone(),
                });
            }
            1 => {}
            count => {
                verdict.counts.runs_duplicated += 1;
                verdict.push(Violation::RunDuplicated {
                    kind: run.kind,
                    run_id: run.run_id.clone(),
                    count,
                });
            }
        }
    }
}

/// The seqs in `first..=last` that are not hidden, as ranges. Work is
/// bounded by the hidden seqs in the range, not by its length.
fn owed(first: u64, last: u64, hidden: Option<&BTreeSet<u64>>) -> Vec<SeqRange> {
    if first > last {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut from = first;
    if let Some(hidden) = hidden {
        for &h in hidden.range(first..=last) {
            if h > from {
                out.push(SeqRange {
                    first: from,
                    last: h - 1,
                });
            }
            match h.checked_add(1) {
                Some(next) => from = next,
                None => return out,
            }
        }
    }
    if from <= last {
        out.push(SeqRange { first: from, last });
    }
    out
}

fn check_events(acked: &Acknowledged, platform: &Platform, verdict: &mut Verdict) {
    for log in &acked.clients {
        let Some(class) = platform.classes.iter().find(|c| c.class_id == log.class_id) else {
            verdict.push(Violation::ClassUnknown {
                client: log.client.clone(),
                class_id: log.class_id.clone(),
            });
            continue;
        };
        let hidden = class.hidden.get(&log.client);
        let missing = |verdict: &mut Verdict, seqs: Vec<SeqRange>| {
            if seqs.is_empty() {
                return;
            }
            let count = seqs.iter().fold(0u64, |n, r| n.saturating_add(r.len()));
            verdict.counts.events_missing = verdict.counts.events_missing.saturating_add(count);
            verdict.push(Violation::EventsMissing {
                client: log.client.clone(),
                class_id: log.class_id.clone(),
                seqs,
            });
        };
        // The last seq seen while in the class; None when not in it.
        let mut position: Option<u64> = None;
        for step in &log.steps {
            match step {
                ClientStep::Join { snapshot_seq } => {
                    if let Some(seen) = position.filter(|seen| snapshot_seq < seen) {
                        verdict.push(Violation::SnapshotBehind {
                            client: log.client.clone(),
                            class_id: log.class_id.clone(),
                            snapshot_seq: *snapshot_seq,
                            seen_seq: seen,
                        });
                    }
                    position = Some(position.map_or(*snapshot_seq, |p| p.max(*snapshot_seq)));
                }
                ClientStep::Resume {
                    reason,
                    snapshot_seq,
                } => {
                    if *reason == ResumeReason::Failover {
                        verdict.counts.failovers += 1;
                    }
                    if let (Some(seen), Some(snapshot)) = (position, snapshot_seq) {
                        if *snapshot < seen {
                            verdict.push(Violation::SnapshotBehind {
                                client: log.client.clone(),
                                class_id: log.class_id.clone(),
                                snapshot_seq: *snapshot,
                                seen_seq: seen,
                            });
                        }
                        position = Some(seen.max(*snapshot));
                    }
                }
                ClientStep::Leave => position = None,
                ClientStep::Event { seq } => {
                    verdict.counts.events_received += 1;
                    let seq = *seq;
                    match position {
                        None => verdict.push(Violation::EventUnexpected {
                            client: log.client.clone(),
                            class_id: log.class_id.clone(),
                            seq,
                        }),
                        Some(_) if seq > class.last_seq => {
                            verdict.push(Violation::EventUnexpected {
                                client: log.client.clone(),
                                class_id: log.class_id.clone(),
                                seq,
                            })
                        }
                        Some(seen) if seq <= seen => {
                            verdict.counts.events_duplicated += 1;
                            verdict.push(Violation::EventDuplicated {
                                client: log.client.clone(),
                                class_id: log.class_id.clone(),
                                seq,
                            });
                        }
                        Some(seen) => {
                            missing(verdict, owed(seen + 1, seq - 1, hidden));
                            position = Some(seq);
                        }
                    }
                }
            }
        }
        // Still in the class at the end: owed everything to its last event.
        if let Some(first) = position.and_then(|seen| seen.checked_add(1)) {
            missing(verdict, owed(first, class.last_seq, hidden));
        }
    }
}

fn check_ledger(acked: &Acknowledged, platform: &Platform, verdict: &mut Verdict) {
    let ledger = &platform.ledger;
    if !ledger.audit_problems.is_empty() {
        verdict.push(Violation::AuditFailed {
            problems: ledger.audit_problems.clone(),
        });
    }
    let mut accepted: BTreeMap<&str, &Transfer> = BTreeMap::new();
    for transfer in &acked.transfers {
        match accepted.get(transfer.id.as_str()) {
            Some(first) if *first != transfer => verdict.push(Violation::TransferIdReused {
                id: transfer.id.clone(),
            }),
            Some(_) => {}
            None => {
                accepted.insert(&transfer.id, transfer);
            }
        }
    }
    verdict.counts.transfers_accepted = accepted.len() as u64;
    for id in accepted.keys() {
        if !ledger.recorded.contains(*id) {
            verdict.counts.transfers_lost += 1;
            verdict.push(Violation::TransferLost {
                id: (*id).to_owned(),
            });
        }
    }
    let unanswered: BTreeMap<&str, &Transfer> = acked
        .transfers_unanswered
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    for id in &ledger.recorded {
        if !accepted.contains_key(id.as_str()) && !unanswered.contains_key(id.as_str()) {
            verdict.push(Violation::TransferUnexpected { id: id.clone() });
        }
    }
    // Replay: before, plus every accepted transfer, plus every unanswered
    // one the journal holds.
    let mut expected: BTreeMap<&str, Balance> = ledger
        .before
        .iter()
        .map(|(account, balance)| (account.as_str(), *balance))
        .collect();
    let replayed = accepted.values().chain(
        unanswered
            .iter()
            .filter(|(id, _)| !accepted.contains_key(*id) && ledger.recorded.contains(**id))
            .map(|(_, t)| t),
    );
    for transfer in replayed {
        // Saturating: a total this large is a mismatch anyway, never a panic.
        let amount = i128::from(transfer.amount);
        let debit = expected.entry(&transfer.debit).or_default();
        debit.debits_posted = debit.debits_posted.saturating_add(amount);
        let credit = expected.entry(&transfer.credit).or_default();
        credit.credits_posted = credit.credits_posted.saturating_add(amount);
    }
    for account in ledger.after.keys() {
        expected.entry(account).or_default();
    }
    for (account, expected) in expected {
        let actual = ledger.after.get(account).copied();
        if actual != Some(expected) {
            verdict.counts.balance_mismatches += 1;
            verdict.push(Violation::BalanceMismatch {
                account: account.to_owned(),
                expected,
                actual,
            });
        }
    }
}

fn check_readiness(platform: &Platform, bound_ms: u64, verdict: &mut Verdict) {
    let mut longest = Some(0);
    for process in &platform.readiness {
        match process.ready_at_ms {
            None => {
                longest = None;
                verdict.counts.processes_unrecovered += 1;
                verdict.push(Violation::NotReady {
                    process: process.process.clone(),
                });
            }
            Some(at) => {
                let recovery_ms = at.saturating_sub(platform.healed_at_ms);
                longest = longest.map(|l: u64| l.max(recovery_ms));
                if recovery_ms > bound_ms {
                    verdict.counts.processes_unrecovered += 1;
                    verdict.push(Violation::RecoveredLate {
                        process: process.process.clone(),
                        recovery_ms,
                        bound_ms,
                    });
                }
            }
        }
    }
    verdict.counts.recovery_ms = longest;
}
