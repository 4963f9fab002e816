//! Plans: the ordered steps of a drill, and the promise that every applied
//! fault is healed, at the end of its window or on abort.

use chaos::cluster::Privilege;
use chaos::drill::{Drill, Probe};
use chaos::plan::{AbortWatch, Action, Plan, Step};
use expect_test::expect;
use proptest::prelude::*;

use crate::{dev_cluster, BASE};

fn drill() -> Drill {
    let faults = r#"
[[abort]]
probe = "readiness_ratio"
below = 0.5
for_s = 3

[[fault]]
kind = "kill"
target = "edge"
region = "eu-west"
start_s = 10
duration_s = 20

[[fault]]
kind = "partition"
from = ["us-east"]
to = ["ap-south"]
start_s = 20
duration_s = 30

[[fault]]
kind = "pause"
target = "edge"
region = "eu-west"
start_s = 30
duration_s = 10
"#;
    Drill::parse(
        "plan",
        &format!("{BASE}{faults}"),
        &dev_cluster(Privilege::Root),
    )
    .expect("drill")
}

fn render(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| format!("{} ms {:?}\n", s.at_ms, s.action))
        .collect()
}

#[test]
fn a_plan_heals_before_it_applies_at_one_time() {
    expect![[r#"
        0 ms StartWorkload
        10000 ms Apply(1)
        20000 ms Apply(2)
        30000 ms Heal(1)
        30000 ms Apply(3)
        40000 ms Heal(3)
        50000 ms Heal(2)
        60000 ms StopWorkload
        70000 ms Check
    "#]]
    .assert_eq(&render(Plan::new(&drill()).steps()));
}

#[test]
fn abort_heals_what_is_applied_newest_first_then_checks() {
    let drill = drill();
    let plan = Plan::new(&drill);
    let mut progress = plan.start();
    assert_eq!(progress.due(25_000).len(), 3);
    assert_eq!(progress.active(), [1, 2]);
    expect![[r#"
         25000 ms Heal(2)
         25000 ms Heal(1)
         25000 ms StopWorkload
         35000 ms Check
    "#]]
    .assert_eq(&render(&progress.abort(25_000)));
    assert!(progress.active().is_empty());
    assert!(progress.is_done());
    assert!(
        progress.abort(26_000).is_empty(),
        "a second abort owes nothing"
    );
    assert!(
        progress.due(100_000).is_empty(),
        "nothing runs after an abort"
    );
}

#[test]
fn abort_after_the_check_owes_nothing() {
    let drill = drill();
    let plan = Plan::new(&drill);
    let mut progress = plan.start();
    assert_eq!(progress.due(u64::MAX).len(), plan.steps().len());
    assert!(progress.abort(80_000).is_empty());
}

proptest! {
    /// Whenever the drill aborts, every fault applied so far is healed
    /// exactly once after it was applied, and the checker still runs.
    #[test]
    fn every_applied_fault_is_healed_whenever_the_drill_aborts(
        ticks in proptest::collection::vec(0u64..75_000, 0..8),
        abort_at in 0u64..75_000,
    ) {
        let drill = drill();
        let plan = Plan::new(&drill);
        let mut progress = plan.start();
        let mut issued = Vec::new();
        let mut ticks = ticks;
        ticks.sort_unstable();
        for t in ticks.into_iter().filter(|t| *t <= abort_at) {
            issued.extend(progress.due(t));
        }
        issued.extend(progress.due(abort_at));
        issued.extend(progress.abort(abort_at));
        for fault in drill.faults() {
            let applied = issued.iter().position(|s| s.action == Action::Apply(fault.id));
            let heals: Vec<usize> = issued
                .iter()
                .enumerate()
                .filter(|(_, s)| s.action == Action::Heal(fault.id))
                .map(|(i, _)| i)
                .collect();
            match applied {
                Some(a) => prop_assert!(heals.len() == 1 && heals[0] > a, "fault {} heals {heals:?}", fault.id),
                None => prop_assert!(heals.is_empty()),
            }
        }
        prop_assert_eq!(issued.iter().filter(|s| s.action == Action::Check).count(), 1);
        prop_assert!(progress.active().is_empty());
    }
}

#[test]
fn an_abort_condition_trips_after_its_duration_and_resets_on_a_good_sample() {
    let drill = drill();
    let mut watch = AbortWatch::new(&drill);
    // for_s = 3: broken at 1 s, 2 s, 3 s is 2 s of breakage; at 4 s, 3 s.
    assert_eq!(watch.observe(Probe::ReadinessRatio, 1_000, 0.25), None);
    assert_eq!(watch.observe(Probe::ReadinessRatio, 3_000, 0.25), None);
    // Another probe does not count.
    assert_eq!(watch.observe(Probe::RunLatencyP99Ms, 3_500, 1e9), None);
    let trip = watch
        .observe(Probe::ReadinessRatio, 4_000, 0.25)
        .expect("trips at 3 s of breakage");
    assert_eq!(
        (trip.condition, trip.since_ms, trip.at_ms),
        (0, 1_000, 4_000)
    );
    assert_eq!(
        trip.reason(),
        "readiness_ratio below 0.5 since 1000 ms (it was 0.25 at 4000 ms)"
    );
    // A good sample (0.5 is not below 0.5) resets it.
    assert_eq!(watch.observe(Probe::ReadinessRatio, 5_000, 0.5), None);
    assert_eq!(watch.observe(Probe::ReadinessRatio, 6_000, 0.0), None);
    assert_eq!(watch.observe(Probe::ReadinessRatio, 8_999, 0.0), None);
    assert!(watch.observe(Probe::ReadinessRatio, 9_000, 0.0).is_some());
}
