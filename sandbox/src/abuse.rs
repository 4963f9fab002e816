//! The abuse monitor: watches a running container's CPU and process counts
//! from the host and ends runs whose profile matches sustained abuse, so a
//! miner or a fork bomb costs one run's worth of machine and leaves a trace
//! an operator can act on.
//!
//! Honest exercises are short: they finish in well under a second, or wait
//! on input. Two profiles are not honest:
//! - **CPU saturation**: CPU time growing at (nearly) the container's full
//!   quota, sample after sample, for longer than `cpu_sustained_ms`. The
//!   wall-clock limit alone would allow this for the whole `wall_ms_max`.
//! - **Fork bomb**: the container's process count at its pids limit for
//!   `pids_sustained_ms`: it keeps trying to make more.
//!
//! The monitor runs on the host and reads the kernel's cgroup counters, so
//! the program cannot hide from it or stop it (unlike anything inside).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which abuse profile a run matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbuseKind {
    /// Sustained CPU at the container's quota.
    CpuSaturation,
    /// Sustained process count at the pids limit.
    ForkBomb,
}

impl AbuseKind {
    /// The name used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuSaturation => "cpu_saturation",
            Self::ForkBomb => "fork_bomb",
        }
    }
}

/// Thresholds of the monitor (the `sandbox.abuse_*` settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbuseRules {
    /// How often the counters are read.
    pub sample: Duration,
    /// CPU use, as a share of the container's quota, that counts as
    /// saturated (0.9 = 90 %).
    pub cpu_share: f64,
    /// How long saturation must last to be abuse.
    pub cpu_sustained: Duration,
    /// How long the process count must sit at the limit to be abuse.
    pub pids_sustained: Duration,
    /// The container's CPU quota, in CPUs.
    pub quota_cpus: f64,
}

/// Folds samples into a decision; separate from the clock and the files so
/// the rules can be tested exactly. CPU use is judged over a sliding window
/// of `cpu_sustained`, not sample by sample, so a noisy neighbour that
/// steals a slice now and then neither hides an abuser nor condemns an
/// honest run.
#[derive(Debug, Clone)]
pub struct Detector {
    rules: AbuseRules,
    /// CPU samples (time, counter), oldest first, covering the window.
    window: std::collections::VecDeque<(Duration, u64)>,
    pids_full_since: Option<Duration>,
}

impl Detector {
    /// A detector with no samples yet.
    pub fn new(rules: AbuseRules) -> Self {
        assert!(rules.quota_cpus > 0.0, "a container always has a CPU quota");
        Self {
            rules,
            window: std::collections::VecDeque::new(),
            pids_full_since: None,
        }
    }

    /// Takes one sample: time since the run started, the container's CPU
    /// counter (ns) and its pids (current, limit). Answers the abuse the
    /// run matches, once it matches one.
    pub fn sample(
        &mut self,
        at: Duration,
        cpu_ns: Option<u64>,
        pids: Option<(u64, Option<u64>)>,
    ) -> Option<AbuseKind> {
        if let Some(cpu_ns) = cpu_ns {
            self.window.push_back((at, cpu_ns));
            // Keep the newest sample at or before the window's start.
            let start = at.saturating_sub(self.rules.cpu_sustained);
            while self.window.get(1).is_some_and(|&(then, _)| then <= start) {
                self.window.pop_front();
            }
            if let Some(&(then, cpu_then)) = self.window.front() {
                let span = at.saturating_sub(then);
                if then <= start && span >= self.rules.cpu_sustained && !span.is_zero() {
                    let share = cpu_ns.saturating_sub(cpu_then) as f64
                        / span.as_nanos() as f64
                        / self.rules.quota_cpus;
                    if share >= self.rules.cpu_share {
                        return Some(AbuseKind::CpuSaturation);
                    }
                }
            }
        }
        if let Some((current, Some(max))) = pids {
            if current >= max {
                let since = *self.pids_full_since.get_or_insert(at);
                if at.saturating_sub(since) >= self.rules.pids_sustained {
                    return Some(AbuseKind::ForkBomb);
                }
            } else {
                self.pids_full_since = None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AbuseRules {
        AbuseRules {
            sample: Duration::from_millis(100),
            cpu_share: 0.9,
            cpu_sustained: Duration::from_millis(1_000),
            pids_sustained: Duration::from_millis(300),
            quota_cpus: 1.0,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn cpu_at_quota_is_abuse_only_once_sustained() {
        let mut d = Detector::new(rules());
        for step in 0..=10 {
            // One CPU-ms per wall-ms: the full quota.
            let verdict = d.sample(ms(step * 100), Some(step * 100_000_000), None);
            if step < 10 {
                assert_eq!(verdict, None, "at {step}");
            } else {
                assert_eq!(verdict, Some(AbuseKind::CpuSaturation));
            }
        }
    }

    #[test]
    fn the_share_is_judged_over_the_whole_window() {
        // Busy four samples in five: 80 %, below the 90 % rule, forever.
        let mut d = Detector::new(rules());
        let mut cpu = 0;
        for step in 0..60_u64 {
            if step % 5 != 0 {
                cpu += 100_000_000;
            }
            assert_eq!(d.sample(ms(step * 100), Some(cpu), None), None, "at {step}");
        }
        // Fully busy except one short dip: 95 % over the window is abuse.
        let mut d = Detector::new(rules());
        let mut cpu = 0;
        let mut verdict = None;
        for step in 0..=20_u64 {
            cpu += if step == 5 { 50_000_000 } else { 100_000_000 };
            verdict = verdict.or(d.sample(ms(step * 100), Some(cpu), None));
        }
        assert_eq!(verdict, Some(AbuseKind::CpuSaturation));
    }

    #[test]
    fn half_the_quota_is_not_saturation() {
        let mut rules = rules();
        rules.quota_cpus = 2.0;
        let mut d = Detector::new(rules);
        for step in 0..50_u64 {
            assert_eq!(
                d.sample(ms(step * 100), Some(step * 100_000_000), None),
                None
            );
        }
    }

    #[test]
    fn pids_at_the_limit_for_long_enough_is_a_fork_bomb() {
        let mut d = Detector::new(rules());
        assert_eq!(d.sample(ms(0), None, Some((64, Some(64)))), None);
        assert_eq!(d.sample(ms(100), None, Some((63, Some(64)))), None);
        assert_eq!(d.sample(ms(200), None, Some((64, Some(64)))), None);
        assert_eq!(d.sample(ms(400), None, Some((64, Some(64)))), None);
        assert_eq!(
            d.sample(ms(500), None, Some((64, Some(64)))),
            Some(AbuseKind::ForkBomb)
        );
        // No limit, no fork bomb.
        let mut d = Detector::new(rules());
        assert_eq!(d.sample(ms(0), None, Some((1_000, None))), None);
        assert_eq!(d.sample(ms(900), None, Some((1_000, None))), None);
    }
}
