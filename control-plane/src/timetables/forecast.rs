//! The forecast's arithmetic, pure: from timetable sessions, learned run
//! rates and the recent observed rate to expected runs per minute and a
//! warm-pool target per region and language. No clock, no SQL: the store
//! reads the inputs, tests give them by hand.
//!
//! The model, in words (the design note has the reasons):
//! - A session of `learners` in `k` languages plans, per language,
//!   `learners / k × burst_runs_per_learner_minute` runs in each of its
//!   first `burst_minutes` (everyone runs code as the class starts), then
//!   `learners / k × rate` per minute until it ends, where `rate` is what
//!   the platform learned for the session's course and language, or the
//!   default.
//! - The expected rate of a minute is the larger of the planned runs and
//!   the observed rate (an exponentially weighted rate of recent runs),
//!   so unplanned demand is met and a planned class is not counted twice.
//! - The warm target of a minute covers the runs that arrive faster than
//!   the engine refills a pool during the busiest minute ahead within the
//!   lead time (the time the engine needs to fill that target), plus the
//!   runs that arrive while one container starts.

use std::collections::BTreeMap;

use serde::Serialize;

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;

/// One occurrence of a timetable event, as the forecast needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Start, unix ms (UTC).
    pub starts_at_ms: i64,
    /// End, unix ms, after the start.
    pub ends_at_ms: i64,
    /// Its region.
    pub region: String,
    /// Its languages (at least one).
    pub languages: Vec<String>,
    /// Expected learners.
    pub learners: u64,
    /// Its course, when known (for the learned rate).
    pub course_id: Option<String>,
}

/// How a session's demand is shaped over its length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Minutes of burst at the start.
    pub burst_minutes: u32,
    /// Runs per learner per minute during the burst.
    pub burst_runs_per_learner_minute: f64,
    /// Runs per learner per minute after the burst, when nothing was
    /// learned for the course and language.
    pub default_runs_per_learner_minute: f64,
}

/// What the sandbox engine can do, for the warm target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Containers one edge's engine creates per second.
    pub creations_per_second: f64,
    /// How long one container takes to start, in milliseconds.
    pub container_start_ms: u64,
    /// Largest warm target the forecast asks of one language's pool.
    pub target_max: u32,
}

/// Learned runs per learner-minute, by course and language.
pub type LearnedRates = BTreeMap<(String, String), f64>;

/// One minute of a series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MinuteForecast {
    /// The minute's start (RFC 3339, UTC).
    pub at: String,
    /// Runs the timetable plans in this minute.
    pub planned_runs: f64,
    /// Runs expected: the larger of the planned runs and the observed rate.
    pub expected_runs: f64,
    /// Warm containers the pool should hold at this minute's start.
    pub warm_target: u32,
    /// The warm target of the planned runs alone: what the control plane
    /// sends edges ([`PoolPlan`]), which add their own observed rate.
    pub planned_target: u32,
    /// Runs recorded in this minute, for minutes up to now (the current
    /// one so far); `null` for minutes still ahead.
    pub actual_runs: Option<u64>,
}

/// One region and language over the window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Series {
    /// The region.
    pub region: String,
    /// The language id.
    pub language: String,
    /// Runs per minute seen lately (exponentially weighted).
    pub observed_runs_per_minute: f64,
    /// Every minute of the window.
    pub minutes: Vec<MinuteForecast>,
}

/// The answer of `GET /api/v1/forecast`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    /// The window's first minute (RFC 3339, UTC).
    pub from: String,
    /// The window's end, exclusive.
    pub to: String,
    /// One series per region and language with planned or observed runs,
    /// by region then language.
    pub series: Vec<Series>,
    /// More sessions overlapped the window than `forecast_sessions_max`;
    /// the later ones were not read.
    pub capped: bool,
}

/// The answer of `GET /api/v1/sandbox/plan`: one region's planned warm
/// targets, minute by minute from `from`, for its edges to follow. Only
/// the timetable's part: an edge adds the rate it observes itself, and
/// keeps the plan, so it goes on warming ahead of classes while the
/// control plane is away.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PoolPlan {
    /// The region.
    pub region: String,
    /// When the control plane made the plan (RFC 3339, UTC).
    pub generated_at: String,
    /// The first minute (RFC 3339, UTC); `targets[i]` holds from `from`
    /// plus `i` minutes.
    pub from: String,
    /// Minutes the plan covers (`forecast_plan_minutes`).
    pub minutes: u32,
    /// Languages with a planned demand in the window; a language not
    /// listed plans nothing.
    pub languages: Vec<LanguagePlan>,
    /// More sessions overlapped the window than `forecast_sessions_max`.
    pub capped: bool,
}

/// One language of a [`PoolPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LanguagePlan {
    /// The language id.
    pub language: String,
    /// The planned warm target of each minute.
    pub targets: Vec<u32>,
    /// The planned runs of each minute.
    pub runs: Vec<f64>,
}

impl PoolPlan {
    /// The plan of `region` from a forecast of it: its planned targets,
    /// languages that plan nothing left out.
    pub fn from_forecast(
        region: &str,
        forecast: Forecast,
        minutes: u32,
        generated_at: String,
    ) -> Self {
        let languages = forecast
            .series
            .into_iter()
            .filter(|s| s.region == region)
            .filter(|s| s.minutes.iter().any(|m| m.planned_target > 0))
            .map(|s| LanguagePlan {
                language: s.language,
                targets: s.minutes.iter().map(|m| m.planned_target).collect(),
                runs: s.minutes.iter().map(|m| m.planned_runs).collect(),
            })
            .collect();
        Self {
            region: region.to_owned(),
            generated_at,
            from: forecast.from,
            minutes,
            languages,
            capped: forecast.capped,
        }
    }
}

/// The forecast's settings, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// How sessions are shaped.
    pub shape: Shape,
    /// What the engine can do.
    pub capacity: Capacity,
    /// Half-life of the observed rate's weights, minutes.
    pub half_life_minutes: f64,
}

/// A region's and language's series over `[from_minute, from_minute +
/// minutes)`: planned runs (computed over a longer span, `planned`,
/// so that targets see bursts just past the window), the observed rate and
/// the targets.
pub fn series(
    region: &str,
    language: &str,
    planned: &[f64],
    observed: f64,
    capacity: &Capacity,
    from_minute: i64,
    minutes: usize,
) -> Series {
    let expected: Vec<f64> = planned.iter().map(|p| p.max(observed)).collect();
    let targets = warm_targets(&expected, capacity);
    let planned_targets = warm_targets(planned, capacity);
    Series {
        region: region.to_owned(),
        language: language.to_owned(),
        observed_runs_per_minute: observed,
        minutes: (0..minutes.min(planned.len()))
            .map(|i| MinuteForecast {
                at: super::model::rfc3339_utc(
                    (from_minute + i64::try_from(i).unwrap_or(0)) * MINUTE_MS,
                ),
                planned_runs: planned[i],
                expected_runs: expected[i],
                warm_target: targets[i],
                planned_target: planned_targets[i],
                actual_runs: None,
            })
            .collect(),
    }
}

/// Sets the runs recorded (`counts`: minute, runs) beside each minute of
/// `series` up to `now_minute`; minutes after it stay `None`.
pub fn set_actual(series: &mut Series, counts: &[(i64, u64)], from_minute: i64, now_minute: i64) {
    let by_minute: BTreeMap<i64, u64> = counts.iter().copied().collect();
    for (i, minute) in series.minutes.iter_mut().enumerate() {
        let at = from_minute + i64::try_from(i).unwrap_or(i64::MAX);
        if at <= now_minute {
            minute.actual_runs = Some(by_minute.get(&at).copied().unwrap_or(0));
        }
    }
}

/// Minutes past a window that its targets look at: the longest lead any
/// target can need.
pub fn lookahead_minutes(capacity: &Capacity) -> usize {
    let per_minute = capacity.creations_per_second * 60.0;
    if per_minute <= 0.0 {
        return 0;
    }
    (f64::from(capacity.target_max) / per_minute).ceil() as usize + 1
}

/// The runs each session plans in each minute of `[from_minute,
/// from_minute + minutes)`, per language, for one region.
pub fn planned(
    sessions: &[Session],
    learned: &LearnedRates,
    shape: &Shape,
    region: &str,
    from_minute: i64,
    minutes: usize,
) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let Ok(span) = i64::try_from(minutes) else {
        return out;
    };
    for session in sessions.iter().filter(|s| s.region == region) {
        if session.languages.is_empty() || session.ends_at_ms <= session.starts_at_ms {
            continue;
        }
        let share = session.learners as f64 / session.languages.len() as f64;
        let first = session.starts_at_ms.div_euclid(MINUTE_MS);
        // The minute holding the end is the last one with demand.
        let last = (session.ends_at_ms - 1).div_euclid(MINUTE_MS);
        for language in &session.languages {
            let steady = session
                .course_id
                .as_ref()
                .and_then(|c| learned.get(&(c.clone(), language.clone())))
                .copied()
                .unwrap_or(shape.default_runs_per_learner_minute);
            let series = out
                .entry(language.clone())
                .or_insert_with(|| vec![0.0; minutes]);
            let lo = first.max(from_minute);
            let hi = last.min(from_minute + span - 1);
            for minute in lo..=hi {
                let into = minute - first;
                let rate = if into < i64::from(shape.burst_minutes) {
                    shape.burst_runs_per_learner_minute
                } else {
                    steady
                };
                let index = usize::try_from(minute - from_minute).unwrap_or(usize::MAX);
                if let Some(slot) = series.get_mut(index) {
                    *slot += share * rate;
                }
            }
        }
    }
    out
}

/// Runs per minute from per-minute counts, each weighted by its age
/// (`0.5^(age / half_life)`), normalised so that a constant rate reads as
/// itself. `counts` are (minute, runs) of whole minutes before `now_minute`.
pub fn observed_rate(counts: &[(i64, u64)], now_minute: i64, half_life_minutes: f64) -> f64 {
    if counts.is_empty() || half_life_minutes <= 0.0 || !half_life_minutes.is_finite() {
        return 0.0;
    }
    let weight = |minute: i64| {
        let age = (now_minute - 1 - minute).max(0) as f64;
        0.5_f64.powf(age / half_life_minutes)
    };
    let oldest = counts.iter().map(|(m, _)| *m).min().unwrap_or(now_minute);
    let total_weight: f64 = (oldest..now_minute).map(weight).sum();
    if total_weight <= 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|(m, _)| *m < now_minute)
        .map(|(m, n)| weight(*m) * *n as f64)
        .sum::<f64>()
        / total_weight
}

/// The warm target of every minute of `expected` (runs per minute): what
/// the busiest minute within the lead time ahead needs, so the pool is
/// full before a burst.
pub fn warm_targets(expected: &[f64], capacity: &Capacity) -> Vec<u32> {
    let refill_per_minute = capacity.creations_per_second.max(0.0) * 60.0;
    let start_minutes = capacity.container_start_ms as f64 / 60_000.0;
    let need = |runs: f64| -> u32 {
        if runs <= 0.0 || !runs.is_finite() {
            return 0;
        }
        // Runs that come faster than the engine refills, over the minute,
        // plus those arriving while one container starts.
        let deficit = (runs - refill_per_minute).max(0.0);
        let in_start = runs * start_minutes;
        let target = (deficit + in_start).ceil().max(1.0);
        if target >= f64::from(capacity.target_max) {
            capacity.target_max
        } else {
            // In range: below target_max, at least 1.
            target as u32
        }
    };
    let needs: Vec<u32> = expected.iter().map(|r| need(*r)).collect();
    // Filling `target` takes target / rate seconds; look that far ahead
    // (at least the minute itself).
    let lead = |target: u32| -> usize {
        if refill_per_minute <= 0.0 {
            return 0;
        }
        (f64::from(target) / refill_per_minute).ceil() as usize
    };
    let max_lead = needs.iter().map(|n| lead(*n)).max().unwrap_or(0);
    (0..needs.len())
        .map(|i| {
            needs[i..needs.len().min(i + max_lead + 1)]
                .iter()
                .enumerate()
                .filter(|(ahead, n)| *ahead <= lead(**n))
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        burst_minutes: 2,
        burst_runs_per_learner_minute: 1.0,
        default_runs_per_learner_minute: 0.2,
    };
    const CAPACITY: Capacity = Capacity {
        creations_per_second: 1.0,
        container_start_ms: 1200,
        target_max: 500,
    };

    fn session(start_minute: i64, minutes: i64, learners: u64, languages: &[&str]) -> Session {
        Session {
            starts_at_ms: start_minute * MINUTE_MS,
            ends_at_ms: (start_minute + minutes) * MINUTE_MS,
            region: "eu-west".to_owned(),
            languages: languages.iter().map(|l| (*l).to_owned()).collect(),
            learners,
            course_id: Some("c1".to_owned()),
        }
    }

    #[test]
    fn a_session_bursts_then_runs_at_its_steady_rate_split_by_language() {
        let s = session(10, 5, 300, &["python", "sql"]);
        let plan = planned(&[s], &LearnedRates::new(), &SHAPE, "eu-west", 9, 8);
        // 150 learners per language: 150 a minute for two minutes, then 30.
        assert_eq!(
            plan["python"],
            vec![0.0, 150.0, 150.0, 30.0, 30.0, 30.0, 0.0, 0.0]
        );
        assert_eq!(plan["python"], plan["sql"]);
        let other = planned(
            &[session(10, 5, 300, &["python"])],
            &LearnedRates::new(),
            &SHAPE,
            "us-east",
            9,
            8,
        );
        assert!(other.is_empty(), "another region plans nothing here");
    }

    #[test]
    fn a_learned_rate_replaces_the_default_and_windows_clip() {
        let mut learned = LearnedRates::new();
        learned.insert(("c1".to_owned(), "python".to_owned()), 0.5);
        let plan = planned(
            &[session(10, 5, 100, &["python"])],
            &learned,
            &SHAPE,
            "eu-west",
            13,
            4,
        );
        // Minutes 13 and 14 are after the burst; 15 and 16 after the end.
        assert_eq!(plan["python"], vec![50.0, 50.0, 0.0, 0.0]);
        assert!(planned(&[], &learned, &SHAPE, "eu-west", 0, 0).is_empty());
    }

    #[test]
    fn the_observed_rate_reads_a_constant_rate_as_itself_and_forgets_the_old() {
        let constant: Vec<(i64, u64)> = (0..30).map(|m| (m, 12)).collect();
        let rate = observed_rate(&constant, 30, 5.0);
        assert!((rate - 12.0).abs() < 1e-9, "{rate}");
        let old_burst = [(0, 600)];
        let rate = observed_rate(&old_burst, 60, 5.0);
        assert!(
            rate < 0.05,
            "a burst an hour ago is nearly forgotten: {rate}"
        );
        assert_eq!(observed_rate(&[], 10, 5.0), 0.0);
        assert_eq!(observed_rate(&constant, 30, 0.0), 0.0);
    }

    #[test]
    fn targets_rise_ahead_of_a_burst_by_the_time_the_engine_needs_to_fill_them() {
        // 60 refills a minute; a burst of 240 runs in minute 5.
        let mut expected = vec![0.0; 8];
        expected[5] = 240.0;
        let targets = warm_targets(&expected, &CAPACITY);
        // Need: 180 over the refill plus 240 × 0.02 starting = 185 (ceil).
        assert_eq!(targets[5], 185);
        // 185 containers take four minutes at 60 a minute: warm from minute 1.
        assert_eq!(targets, vec![0, 185, 185, 185, 185, 185, 0, 0]);
    }

    #[test]
    fn targets_stay_within_their_limit_and_handle_nothing() {
        let capped = warm_targets(&[1e12], &CAPACITY);
        assert_eq!(capped, vec![500]);
        assert_eq!(warm_targets(&[], &CAPACITY), Vec::<u32>::new());
        assert_eq!(
            warm_targets(&[0.0, f64::NAN, -3.0], &CAPACITY),
            vec![0, 0, 0]
        );
        // A trickle needs one warm container, not zero.
        assert_eq!(warm_targets(&[0.5], &CAPACITY), vec![1]);
        let no_engine = Capacity {
            creations_per_second: 0.0,
            ..CAPACITY
        };
        assert_eq!(warm_targets(&[10.0], &no_engine), vec![11]);
    }
}
