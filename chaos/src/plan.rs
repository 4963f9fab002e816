//! A drill as the ordered actions a runner executes: start the workload,
//! apply and heal each fault at its time, stop the workload, settle, check.
//! The runner of a live cluster only executes steps; every decision about
//! order and about what to heal lives here, where it is tested without a
//! cluster. The one promise: a drill never leaves a fault behind. Every
//! applied fault has a heal in the plan, and `Progress::abort` returns the
//! heal of every fault applied and not yet healed, newest first, whenever
//! the drill stops early. `AbortWatch` decides when it must.

use crate::drill::{AbortCondition, Drill, Limit, Probe};

/// What a runner does at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Heal the fault of this id (heals come first among steps at one time,
    /// so a fault may start exactly when another on the same thing ends).
    Heal(u32),
    /// Start the workload and the probes.
    StartWorkload,
    /// Apply the fault of this id.
    Apply(u32),
    /// Stop the workload; probes go on.
    StopWorkload,
    /// Read the platform's state and run the checker.
    Check,
}

/// One action at a time from the start of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// When, in milliseconds from the start of the workload.
    pub at_ms: u64,
    /// What.
    pub action: Action,
}

/// Every step of a drill, in the order to execute them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    steps: Vec<Step>,
    settle_ms: u64,
}

impl Plan {
    /// The plan of a validated drill.
    pub fn new(drill: &Drill) -> Self {
        let mut steps = vec![
            Step {
                at_ms: 0,
                action: Action::StartWorkload,
            },
            Step {
                at_ms: drill.duration_ms(),
                action: Action::StopWorkload,
            },
            Step {
                at_ms: drill.duration_ms() + drill.settle_ms(),
                action: Action::Check,
            },
        ];
        for fault in drill.faults() {
            steps.push(Step {
                at_ms: fault.start_ms,
                action: Action::Apply(fault.id),
            });
            steps.push(Step {
                at_ms: fault.end_ms(),
                action: Action::Heal(fault.id),
            });
        }
        steps.sort_by_key(|s| (s.at_ms, s.action));
        Self {
            steps,
            settle_ms: drill.settle_ms(),
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// A fresh execution of the plan.
    pub fn start(&self) -> Progress<'_> {
        Progress {
            plan: self,
            next: 0,
            active: Vec::new(),
            workload: WorkloadState::NotStarted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkloadState {
    NotStarted,
    Running,
    Stopped,
}

/// Where an execution of a plan stands: which steps were issued, which
/// faults are applied and not yet healed.
#[derive(Debug)]
pub struct Progress<'a> {
    plan: &'a Plan,
    next: usize,
    /// Applied and not healed, in the order they were applied.
    active: Vec<u32>,
    workload: WorkloadState,
}

impl Progress<'_> {
    /// The steps due at `now_ms` that were not issued yet, in order. They
    /// count as issued once returned: a runner that fails to apply a fault
    /// still heals it (heals are idempotent, and faults carry a deadline).
    pub fn due(&mut self, now_ms: u64) -> Vec<Step> {
        let mut out = Vec::new();
        while let Some(step) = self.plan.steps.get(self.next) {
            if step.at_ms > now_ms {
                break;
            }
            self.next += 1;
            self.issued(step.action);
            out.push(*step);
        }
        out
    }

    fn issued(&mut self, action: Action) {
        match action {
            Action::Apply(id) => self.active.push(id),
            Action::Heal(id) => self.active.retain(|a| *a != id),
            Action::StartWorkload => self.workload = WorkloadState::Running,
            Action::StopWorkload => self.workload = WorkloadState::Stopped,
            Action::Check => {}
        }
    }

    /// Stops the drill early at `now_ms`: heals every applied fault, newest
    /// first, stops the workload if it runs, and checks after the settle
    /// time. Nothing of the plan is issued afterwards; a second call returns
    /// nothing more than what is still owed (normally nothing).
    pub fn abort(&mut self, now_ms: u64) -> Vec<Step> {
        let mut out: Vec<Step> = self
            .active
            .iter()
            .rev()
            .map(|id| Step {
                at_ms: now_ms,
                action: Action::Heal(*id),
            })
            .collect();
        self.active.clear();
        if self.workload == WorkloadState::Running {
            out.push(Step {
                at_ms: now_ms,
                action: Action::StopWorkload,
            });
            self.workload = WorkloadState::Stopped;
        }
        let checked = self.plan.steps[..self.next]
            .iter()
            .any(|s| s.action == Action::Check);
        if !checked && self.next < self.plan.steps.len() {
            out.push(Step {
                at_ms: now_ms + self.plan.settle_ms,
                action: Action::Check,
            });
        }
        self.next = self.plan.steps.len();
        out
    }

    /// The faults applied and not yet healed, in the order applied.
    pub fn active(&self) -> &[u32] {
        &self.active
    }

    /// Whether every step was issued.
    pub fn is_done(&self) -> bool {
        self.next == self.plan.steps.len()
    }
}

/// Why a drill must stop: which condition broke, since when, on what value.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortTrip {
    /// The index of the condition in the drill's `[[abort]]` list.
    pub condition: usize,
    /// The probe.
    pub probe: Probe,
    /// The hard limit it broke.
    pub limit: Limit,
    /// The sample that tripped it.
    pub value: f64,
    /// When the limit was first broken in this stretch.
    pub since_ms: u64,
    /// When it tripped.
    pub at_ms: u64,
}

impl AbortTrip {
    /// Why the drill stopped, in words, for the timeline and the report.
    pub fn reason(&self) -> String {
        let (side, limit) = match self.limit {
            Limit::Above(v) => ("above", v),
            Limit::Below(v) => ("below", v),
        };
        format!(
            "{} {side} {limit} since {} ms (it was {} at {} ms)",
            self.probe.as_str(),
            self.since_ms,
            self.value,
            self.at_ms
        )
    }
}

/// Watches probe samples against a drill's abort conditions.
#[derive(Debug, Clone)]
pub struct AbortWatch {
    conditions: Vec<AbortCondition>,
    /// Per condition: since when its limit has been broken without a break.
    broken_since: Vec<Option<u64>>,
}

impl AbortWatch {
    /// A watch over the drill's conditions, none broken yet.
    pub fn new(drill: &Drill) -> Self {
        Self {
            conditions: drill.aborts().to_vec(),
            broken_since: vec![None; drill.aborts().len()],
        }
    }

    /// Takes one sample (in time order) and says whether the drill must
    /// abort: a condition's limit broken by every sample of its probe for at
    /// least its `for_ms`.
    pub fn observe(&mut self, probe: Probe, at_ms: u64, value: f64) -> Option<AbortTrip> {
        let mut trip = None;
        for (i, condition) in self.conditions.iter().enumerate() {
            if condition.probe != probe {
                continue;
            }
            if !condition.broken_by(value) {
                self.broken_since[i] = None;
                continue;
            }
            let since = *self.broken_since[i].get_or_insert(at_ms);
            if trip.is_none() && at_ms.saturating_sub(since) >= condition.for_ms {
                trip = Some(AbortTrip {
                    condition: i,
                    probe,
                    limit: condition.limit,
                    value,
                    since_ms: since,
                    at_ms,
                });
            }
        }
        trip
    }
}
