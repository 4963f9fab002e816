//! What a language's pool warms to, pure: from the policy, the node's base
//! target, the plan's target for this minute, the rate this node observes
//! and an operator's override. The budget (across languages) is applied
//! after, by [`super::budget`].
//!
//! - An operator's override wins over everything while it lasts.
//! - `fixed` keeps the base target (`sandbox.pool_target`): the pool as it
//!   was before timetables.
//! - `reactive` warms for the rate observed: runs per second, smoothed
//!   with a half-life, times the horizon (how long the pool must cover
//!   runs while it refills), never below the base.
//! - `predictive` (the default) also takes the plan's target of this
//!   minute, which the control plane already raised ahead of a burst by
//!   the engine's fill time: the larger of the three wins.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a node decides its warm targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The base target only.
    Fixed,
    /// The base target or the observed rate.
    Reactive,
    /// The base target, the observed rate or the timetable's plan.
    #[default]
    Predictive,
}

/// Who set the target a pool warms to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An operator (`PUT /api/v1/sandbox/pools/{language}`).
    Operator,
    /// The timetable's plan.
    Plan,
    /// The rate this node observed.
    Observed,
    /// The node's base target.
    Base,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Operator => "operator",
            Source::Plan => "plan",
            Source::Observed => "observed",
            Source::Base => "base",
        }
    }
}

/// The pool actors' settings (the edge's `pool_*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    /// How targets are decided.
    pub policy: Policy,
    /// Warm containers every language keeps at least.
    pub base_target: u32,
    /// How often each actor decides again.
    pub tick: Duration,
    /// Half-life of the observed rate's smoothing.
    pub observed_half_life: Duration,
    /// How many seconds of the observed rate the pool holds.
    pub reactive_horizon: Duration,
    /// How long a warm surplus is kept after the target falls (runs use it
    /// up) before what is left is destroyed.
    pub surplus_grace: Duration,
}

/// A smoothed rate of events per second: each tick's rate weighs in by
/// `1 - 0.5^(elapsed / half_life)`, so a step in demand is half seen after
/// one half-life, whatever the tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    /// Takes `events` seen over `elapsed`.
    pub fn observe(&mut self, events: u64, elapsed: Duration, half_life: Duration) {
        let dt = elapsed.as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        let h = half_life.as_secs_f64().max(f64::MIN_POSITIVE);
        let weight = 1.0 - 0.5_f64.powf(dt / h);
        let now = events as f64 / dt;
        self.per_second += weight * (now - self.per_second);
    }

    /// Events per second now.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }
}

/// What the decision reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// The plan's target for this minute, if a plan covers it.
    pub planned: Option<u32>,
    /// Runs per second observed here.
    pub observed_per_second: f64,
    /// An operator's target, while it lasts.
    pub overridden: Option<u32>,
}

/// A target and who set it.
pub fn decide(settings: &PoolSettings, inputs: &Inputs) -> (u32, Source) {
    if let Some(target) = inputs.overridden {
        return (target, Source::Operator);
    }
    let mut best = (settings.base_target, Source::Base);
    if settings.policy == Policy::Fixed {
        return best;
    }
    let reactive = reactive_target(inputs.observed_per_second, settings.reactive_horizon);
    if reactive > best.0 {
        best = (reactive, Source::Observed);
    }
    if settings.policy == Policy::Predictive {
        if let Some(planned) = inputs.planned {
            // A tie goes to the plan: it is what the timetable asked for.
            if planned >= best.0 && planned > 0 {
                best = (planned, Source::Plan);
            }
        }
    }
    best
}

/// Containers to hold for `per_second` runs over `horizon`, rounded up.
pub fn reactive_target(per_second: f64, horizon: Duration) -> u32 {
    let want = (per_second * horizon.as_secs_f64()).ceil();
    if !want.is_finite() || want <= 0.0 {
        0
    } else if want >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and whole.
        want as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: Policy) -> PoolSettings {
        PoolSettings {
            policy,
            base_target: 2,
            tick: Duration::from_secs(1),
            observed_half_life: Duration::from_secs(30),
            reactive_horizon: Duration::from_secs(10),
            surplus_grace: Duration::from_secs(60),
        }
    }

    #[test]
    fn each_policy_takes_what_it_may_and_an_operator_wins() {
        let busy = Inputs {
            planned: Some(40),
            observed_per_second: 1.5,
            overridden: None,
        };
        assert_eq!(decide(&settings(Policy::Fixed), &busy), (2, Source::Base));
        assert_eq!(
            decide(&settings(Policy::Reactive), &busy),
            (15, Source::Observed)
        );
        assert_eq!(
            decide(&settings(Policy::Predictive), &busy),
            (40, Source::Plan)
        );
        let quiet_plan = Inputs {
            planned: Some(3),
            ..busy
        };
        assert_eq!(
            decide(&settings(Policy::Predictive), &quiet_plan),
            (15, Source::Observed),
            "demand above the plan is still met"
        );
        let idle = Inputs {
            planned: Some(0),
            observed_per_second: 0.0,
            overridden: None,
        };
        assert_eq!(
            decide(&settings(Policy::Predictive), &idle),
            (2, Source::Base)
        );
        for policy in [Policy::Fixed, Policy::Reactive, Policy::Predictive] {
            let held = Inputs {
                overridden: Some(0),
                ..busy
            };
            assert_eq!(decide(&settings(policy), &held), (0, Source::Operator));
        }
    }

    #[test]
    fn the_rate_follows_a_step_by_its_half_life() {
        let half = Duration::from_secs(30);
        let mut rate = Rate::default();
        // 2 runs a second for 30 one-second ticks: half-way there.
        for _ in 0..30 {
            rate.observe(2, Duration::from_secs(1), half);
        }
        assert!((rate.per_second() - 1.0).abs() < 1e-9, "{rate:?}");
        // The same in one 30-second tick.
        let mut once = Rate::default();
        once.observe(60, Duration::from_secs(30), half);
        assert!((once.per_second() - 1.0).abs() < 1e-9, "{once:?}");
        // Nothing elapsed changes nothing.
        once.observe(5, Duration::ZERO, half);
        assert!((once.per_second() - 1.0).abs() < 1e-9);
        assert_eq!(reactive_target(1.01, Duration::from_secs(10)), 11);
        assert_eq!(reactive_target(0.0, Duration::from_secs(10)), 0);
        assert_eq!(reactive_target(f64::NAN, Duration::from_secs(10)), 0);
        assert_eq!(reactive_target(1e300, Duration::from_secs(10)), u32::MAX);
    }
}
