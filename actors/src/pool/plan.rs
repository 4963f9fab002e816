//! The pool plan as an edge keeps it: the control plane's planned warm
//! targets for one region, per language and minute (the JSON of
//! `GET /api/v1/sandbox/plan`). An edge stores the last one it fetched and
//! reads it by minute, so it goes on warming ahead of timetabled classes
//! while the control plane is away; past the plan's last minute it plans
//! nothing.

use serde::{Deserialize, Serialize};

/// Milliseconds in a minute, the plan's step.
pub const MINUTE_MS: u64 = 60_000;

/// One region's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolPlan {
    /// The region it was made for.
    pub region: String,
    /// When the control plane made it (RFC 3339).
    pub generated_at: String,
    /// Its first minute (RFC 3339, UTC).
    pub from: String,
    /// Minutes it covers.
    pub minutes: u32,
    /// Languages with a planned demand; others plan nothing.
    pub languages: Vec<LanguagePlan>,
    /// The control plane read fewer sessions than overlapped the window.
    #[serde(default)]
    pub capped: bool,
}

/// One language of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguagePlan {
    /// The language id.
    pub language: String,
    /// The planned warm target of each minute from the plan's start.
    pub targets: Vec<u32>,
    /// The planned runs of each minute.
    #[serde(default)]
    pub runs: Vec<f64>,
}

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// `from` is not an RFC 3339 time.
    #[error("the plan's from {0:?} is not an RFC 3339 time")]
    BadStart(String),
    /// A language's series is longer than the plan.
    #[error("the plan of {language} has {len} minutes, more than its {minutes}")]
    TooLong {
        /// The language.
        language: String,
        /// Its series' length.
        len: usize,
        /// The plan's minutes.
        minutes: u32,
    },
}

impl PoolPlan {
    /// The plan's first minute in unix milliseconds, checking that it reads
    /// as a plan at all.
    ///
    /// # Errors
    /// [`PlanError`] for a start that is no time, or a series longer than
    /// the plan says.
    pub fn start_ms(&self) -> Result<u64, PlanError> {
        for l in &self.languages {
            if l.targets.len() > self.minutes as usize {
                return Err(PlanError::TooLong {
                    language: l.language.clone(),
                    len: l.targets.len(),
                    minutes: self.minutes,
                });
            }
        }
        let at = chrono::DateTime::parse_from_rfc3339(&self.from)
            .map_err(|_| PlanError::BadStart(self.from.clone()))?;
        u64::try_from(at.timestamp_millis()).map_err(|_| PlanError::BadStart(self.from.clone()))
    }

    /// The planned (target, runs) of `language` at `now_ms`: `None` when
    /// the plan does not cover that minute (before its start, past its
    /// end) or the language plans nothing then.
    pub fn at(&self, language: &str, now_ms: u64) -> Option<(u32, f64)> {
        let start = self.start_ms().ok()?;
        let minute = usize::try_from(now_ms.checked_sub(start)? / MINUTE_MS).ok()?;
        if minute >= self.minutes as usize {
            return None;
        }
        let series = self.languages.iter().find(|l| l.language == language)?;
        let target = *series.targets.get(minute)?;
        let runs = series.runs.get(minute).copied().unwrap_or(0.0);
        Some((target, runs))
    }

    /// The unix milliseconds at which the plan ends.
    pub fn end_ms(&self) -> Option<u64> {
        Some(self.start_ms().ok()? + u64::from(self.minutes) * MINUTE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> PoolPlan {
        PoolPlan {
            region: "eu-west".into(),
            generated_at: "2031-09-01T08:57:30Z".into(),
            from: "2031-09-01T08:57:00Z".into(),
            minutes: 4,
            languages: vec![LanguagePlan {
                language: "python".into(),
                targets: vec![0, 20, 20, 2],
                runs: vec![0.0, 0.0, 100.0, 20.0],
            }],
            capped: false,
        }
    }

    #[test]
    fn a_plan_is_read_by_minute_and_says_nothing_outside_itself() {
        let p = plan();
        let start = p.start_ms().expect("start");
        assert_eq!(start, 1_946_019_420_000);
        assert_eq!(p.at("python", start), Some((0, 0.0)));
        assert_eq!(p.at("python", start + 59_999), Some((0, 0.0)));
        assert_eq!(p.at("python", start + 60_000), Some((20, 0.0)));
        assert_eq!(p.at("python", start + 2 * 60_000 + 1), Some((20, 100.0)));
        assert_eq!(p.at("python", start + 4 * 60_000), None, "past its end");
        assert_eq!(p.at("python", start - 1), None, "before its start");
        assert_eq!(p.at("java", start + 60_000), None, "a language not planned");
        assert_eq!(p.end_ms(), Some(start + 240_000));
    }

    #[test]
    fn a_damaged_plan_is_refused_not_misread() {
        let mut bad = plan();
        bad.from = "soon".into();
        assert_eq!(bad.start_ms(), Err(PlanError::BadStart("soon".into())));
        assert_eq!(bad.at("python", 1_946_019_480_000), None);
        let mut long = plan();
        long.minutes = 2;
        assert!(matches!(long.start_ms(), Err(PlanError::TooLong { .. })));
    }
}
