//! The deterministic simulation (`gossip::sim`): many foca members with the
//! production presets, no sockets, virtual time. These tests check what the
//! issue asks of the LAN preset with 100 members: the same seed gives the same
//! report, the cluster converges, a killed member is seen down by everyone
//! within the preset's documented detection time (plus a stated margin), and
//! that 10 % loss costs no false positive. Failures print the seed so a run
//! can be replayed. Simulated time only: the whole file is a few million
//! events.

use gossip::sim::{self, SimSettings};

/// Seed of every test here; print it on failure to replay a run.
const SEED: u64 = 0x4c79_6365;
/// Members in the simulated cluster (the issue asks for 100 or more).
const MEMBERS: usize = 100;
/// Margin on the documented detection time. `expected_detection_ms` counts
/// one period of waiting for a probe of the dead member; the wait has a tail
/// of several periods (simulated p99: 2.9 s against the documented 2.1 s).
const DETECTION_MARGIN_MS: u64 = 1_500;
/// Simulated minutes of the false-positive test (the bench runs longer).
const STABILITY_MINUTES: u64 = 3;
#[test]
fn same_seed_same_report() {
    let settings = SimSettings::lan(MEMBERS, SEED).with_loss_percent(10);
    let first = sim::stability(&settings, 20_000).expect("simulation");
    let second = sim::stability(&settings, 20_000).expect("simulation");
    assert_eq!(first, second, "seed {SEED}");
    let other = sim::stability(
        &SimSettings::lan(MEMBERS, SEED + 1).with_loss_percent(10),
        20_000,
    )
    .expect("simulation");
    assert_ne!(first.counters, other.counters, "another seed, another run");
}

#[test]
fn hundred_members_converge() {
    let settings = SimSettings::lan(MEMBERS, SEED);
    let report = sim::convergence(&settings, 120_000).expect("simulation");
    eprintln!("lan convergence: {report:?}");
    let converged = report.converged_ms.expect("converged within 120 s");
    // Most members know everyone within seconds of the join's gossip; the
    // last pairs meet when one probes the other, and a probe round visits
    // every member once (foca has no push-pull state sync).
    let round_ms = MEMBERS as u64 * settings.swim.probe_period_ms;
    assert!(
        converged <= round_ms + settings.swim.announce_period_ms,
        "seed {SEED}: converged after {converged} ms"
    );
    let median = report.member_p50_ms.expect("members converged");
    assert!(
        median <= 5_000,
        "seed {SEED}: median member after {median} ms"
    );
}

#[test]
fn lan_detects_a_dead_member_within_the_documented_time() {
    let settings = SimSettings::lan(MEMBERS, SEED);
    let bound_ms = settings.swim.expected_detection_ms() + DETECTION_MARGIN_MS;
    let report = sim::detection(&settings, 4 * bound_ms).expect("simulation");
    eprintln!("lan detection: {report:?}");
    assert!(report.converged_ms.is_some(), "seed {SEED}: {report:?}");
    assert_eq!(report.detected, report.observers, "seed {SEED}: {report:?}");
    let max = report.max_ms.expect("detected");
    assert!(
        max <= bound_ms,
        "seed {SEED}: last member saw it down after {max} ms, bound {bound_ms} ms"
    );
    assert_eq!(
        report.counters.wrongly_declared, 0,
        "seed {SEED}: {report:?}"
    );
}

#[test]
fn lan_has_no_false_positive_at_ten_percent_loss() {
    let settings = SimSettings::lan(MEMBERS, SEED).with_loss_percent(10);
    let report = sim::stability(&settings, STABILITY_MINUTES * 60_000).expect("simulation");
    eprintln!(
        "lan 10% loss: {report:?}, {:.0} bytes/node/s, {:.0} false positives/h",
        report.bytes_per_node_per_second(),
        report.false_positives_per_hour()
    );
    assert!(report.converged_ms.is_some(), "seed {SEED}: {report:?}");
    assert!(
        report.counters.wrongly_declared == 0,
        "seed {SEED}: {report:?}"
    );
    // With production's filter, a member renews its identity only when it
    // really was declared down, never after a refuted suspicion.
    assert!(
        report.counters.rejoins <= report.counters.wrongly_declared,
        "seed {SEED}: {report:?}"
    );
}

/// foca 2.0.0 as is: refuted suspicions still end in `TurnUndead` and a new
/// generation. This pins the behaviour the production filter exists for; if
/// a foca upgrade fixes it, this fails and the filter can go.
#[test]
fn foca_renews_after_refuted_suspicions_without_the_filter() {
    let mut settings = SimSettings::lan(MEMBERS, SEED).with_loss_percent(10);
    settings.drop_refuted_turn_undead = false;
    let report = sim::stability(&settings, 30_000).expect("simulation");
    assert!(
        report.counters.rejoins > report.counters.wrongly_declared,
        "seed {SEED}: {report:?}"
    );
}
