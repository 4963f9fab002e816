//! The node's capacity budget for warm containers, shared by its pool
//! actors: at most `containers_max` warm containers and `memory_mb_max` of
//! their memory limits across every language, so a big forecast (or an
//! operator's typo) cannot exhaust the node. Running containers are not
//! counted: they are bounded by the run budget, not by warming.
//!
//! Each actor tells the budget what it wants and gets a grant. When the
//! wants do not fit, they are filled one container at a time, round the
//! languages in name order, so each language gets an equal share of what
//! is left and a small want is met in full before a big one grows.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// What one language asks of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    containers: u32,
    memory_mb: u32,
}

/// A node's warm-container budget.
#[derive(Debug)]
pub struct Budget {
    containers_max: u32,
    memory_mb_max: u64,
    wants: Mutex<BTreeMap<String, Want>>,
}

/// What the budget holds now: its limits and what it has granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BudgetView {
    /// `edge.pool_warm_containers_max`.
    pub containers_max: u32,
    /// `edge.pool_warm_memory_mb_max`.
    pub memory_mb_max: u64,
    /// Warm containers granted across languages.
    pub containers: u32,
    /// Their memory limits, in MB.
    pub memory_mb: u64,
}

impl Budget {
    /// A budget of `containers_max` warm containers holding at most
    /// `memory_mb_max` of memory limits.
    pub fn new(containers_max: u32, memory_mb_max: u64) -> Self {
        Self {
            containers_max,
            memory_mb_max,
            wants: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records that `language` wants `containers`, each allowed
    /// `memory_mb`, and answers how many it may warm.
    pub fn grant(&self, language: &str, containers: u32, memory_mb: u32) -> u32 {
        let mut wants = self.wants.lock().unwrap_or_else(PoisonError::into_inner);
        wants.insert(
            language.to_owned(),
            Want {
                containers,
                memory_mb,
            },
        );
        let grants = self.fill(&wants);
        let granted = grants.get(language).copied().unwrap_or(0);
        debug_assert!(granted <= containers, "a grant never exceeds the want");
        granted
    }

    /// The limits and what the current wants are granted.
    pub fn view(&self) -> BudgetView {
        let wants = self.wants.lock().unwrap_or_else(PoisonError::into_inner);
        let grants = self.fill(&wants);
        let containers = grants.values().sum();
        let memory_mb = grants
            .iter()
            .map(|(l, n)| u64::from(*n) * u64::from(wants[l].memory_mb))
            .sum();
        BudgetView {
            containers_max: self.containers_max,
            memory_mb_max: self.memory_mb_max,
            containers,
            memory_mb,
        }
    }

    /// Grants for every want: one container at a time round the languages
    /// until each want is met or nothing more fits.
    fn fill(&self, wants: &BTreeMap<String, Want>) -> BTreeMap<String, u32> {
        let mut grants: BTreeMap<String, u32> = wants.keys().map(|l| (l.clone(), 0)).collect();
        let fits_whole = wants.values().map(|w| u64::from(w.containers)).sum::<u64>()
            <= u64::from(self.containers_max)
            && wants
                .values()
                .map(|w| u64::from(w.containers) * u64::from(w.memory_mb))
                .sum::<u64>()
                <= self.memory_mb_max;
        if fits_whole {
            for (l, w) in wants {
                grants.insert(l.clone(), w.containers);
            }
            return grants;
        }
        let mut count: u32 = 0;
        let mut memory: u64 = 0;
        loop {
            let mut grew = false;
            for (l, w) in wants {
                let g = grants.get_mut(l).expect("every want has a grant");
                if *g >= w.containers {
                    continue;
                }
                if count < self.containers_max
                    && memory + u64::from(w.memory_mb) <= self.memory_mb_max
                {
                    *g += 1;
                    count += 1;
                    memory += u64::from(w.memory_mb);
                    grew = true;
                }
            }
            if !grew {
                return grants;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_that_fit_are_granted_whole() {
        let b = Budget::new(10, 10_000);
        assert_eq!(b.grant("python", 4, 300), 4);
        assert_eq!(b.grant("java", 6, 500), 6);
        assert_eq!(
            b.view(),
            BudgetView {
                containers_max: 10,
                memory_mb_max: 10_000,
                containers: 10,
                memory_mb: 4 * 300 + 6 * 500,
            }
        );
    }

    #[test]
    fn a_big_want_cannot_starve_the_others_or_pass_a_limit() {
        let b = Budget::new(10, 100_000);
        assert_eq!(b.grant("python", 2, 300), 2);
        // Java asks for 200: it gets what is left of the count.
        assert_eq!(b.grant("java", 200, 500), 8);
        // Python's small want is still met in full.
        assert_eq!(b.grant("python", 2, 300), 2);
        // Both big: equal shares.
        assert_eq!(b.grant("python", 100, 300), 5);
        assert_eq!(b.grant("java", 200, 500), 5);
        assert_eq!(b.view().containers, 10);
        // Memory binds first: 2 GB holds four 500 MB containers.
        let m = Budget::new(100, 2_000);
        assert_eq!(m.grant("java", 50, 500), 4);
        assert_eq!(m.grant("python", 1, 300), 1);
        assert_eq!(m.grant("java", 50, 500), 3, "python's one came first");
        assert!(m.view().memory_mb <= 2_000);
        // A zero budget warms nothing.
        let none = Budget::new(0, 0);
        assert_eq!(none.grant("python", 5, 300), 0);
    }
}
