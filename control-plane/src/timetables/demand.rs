//! What the forecast reads from the database: the sessions overlapping a
//! window (occurrences with their events' region, languages, learners and
//! course), the per-course run rates learned from past sessions and the
//! runs recorded in them, and the recent runs per region and language for
//! the observed rate. The arithmetic is in [`super::forecast`]; this file
//! only reads, with every read bounded.
//!
//! A learned rate counts the runs recorded (`submissions.recorded_at`) in
//! the session's tenant, region and language while the session ran,
//! divided by its learner-minutes: runs of the same tenant outside the
//! class but in its window count too, which errs on the side of warming.

use std::collections::BTreeMap;

use sqlx::Row as _;

use super::error::TimetableError;
use super::forecast::{self, Capacity, Forecast, LearnedRates, Params, Session, Shape, MINUTE_MS};
use crate::config::ControlPlaneConfig;
use crate::db::Db;

/// Fewest learner-minutes a course and language needs before its learned
/// rate replaces the default: less is noise.
pub const LEARNED_LEARNER_MINUTES_MIN: f64 = 60.0;

/// Observed counts are read over this many half-lives; older runs weigh
/// less than 2 %.
const OBSERVED_HALF_LIVES: i64 = 6;

/// The forecast's settings from the configuration.
pub fn params(config: &ControlPlaneConfig) -> Params {
    Params {
        shape: Shape {
            burst_minutes: config.forecast_burst_minutes,
            burst_runs_per_learner_minute: f64::from(config.forecast_burst_runs_per_learner_hour)
                / 60.0,
            default_runs_per_learner_minute: f64::from(
                config.forecast_default_runs_per_learner_hour,
            ) / 60.0,
        },
        capacity: Capacity {
            creations_per_second: f64::from(config.forecast_container_creations_per_minute) / 60.0,
            container_start_ms: u64::from(config.forecast_container_start_ms),
            target_max: config.forecast_warm_target_max,
        },
        half_life_minutes: f64::from(config.forecast_observed_half_life_minutes),
    }
}

/// Who is asking: one tenant's sessions and runs, or the whole fleet's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// An instructor: her tenant only.
    Tenant(&'a str),
    /// An operator: every tenant.
    Fleet,
}

impl Scope<'_> {
    fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(t) => Some(t),
            Scope::Fleet => None,
        }
    }
}

/// A session with its tenant, for learning.
struct PastSession {
    tenant_id: String,
    session: Session,
}

/// Which sessions to read.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    scope: Scope<'a>,
    region: Option<&'a str>,
    /// Overlapping `[from_ms, to_ms)`.
    from_ms: i64,
    to_ms: i64,
    /// Only sessions of events with a course.
    course_only: bool,
    /// The newest first (else the oldest first).
    newest_first: bool,
    /// At most this many.
    max: u32,
}

/// The sessions `wanted` names, and whether there were more: the
/// imported timetables' occurrences and the scheduled live classes, in one
/// order.
async fn sessions(db: &Db, wanted: Wanted<'_>) -> Result<(Vec<PastSession>, bool), TimetableError> {
    let (mut found, capped_imported) = imported_sessions(db, wanted).await?;
    let (classes, capped_classes) = live_class_sessions(db, wanted).await?;
    found.extend(classes);
    found.sort_by_key(|p| p.session.starts_at_ms);
    if wanted.newest_first {
        found.reverse();
    }
    let max = wanted.max as usize;
    let capped = capped_imported || capped_classes || found.len() > max;
    found.truncate(max);
    Ok((found, capped))
}

/// Published live-class units whose schedule overlaps the window, as
/// sessions: their cohort's active enrollments (by the cohort's id or
/// name in the course) are the learners, the course's units the
/// languages. Classes with no learners or no languages plan nothing and
/// are left out.
async fn live_class_sessions(
    db: &Db,
    wanted: Wanted<'_>,
) -> Result<(Vec<PastSession>, bool), TimetableError> {
    let mut sql = String::from(
        "SELECT tenant_id, course_id, cohort, region, starts_at, ends_at \
         FROM live_class_schedules WHERE starts_at < $1 AND ends_at > $2",
    );
    let mut next = 3;
    if wanted.scope.tenant().is_some() {
        sql.push_str(&format!(" AND tenant_id = ${next}"));
        next += 1;
    }
    if wanted.region.is_some() {
        sql.push_str(&format!(" AND region = ${next}"));
        next += 1;
    }
    sql.push_str(if wanted.newest_first {
        " ORDER BY starts_at DESC, tenant_id, unit_id"
    } else {
        " ORDER BY starts_at, tenant_id, unit_id"
    });
    sql.push_str(&format!(" LIMIT ${next}"));
    let mut query = sqlx::query(&sql).bind(wanted.to_ms).bind(wanted.from_ms);
    if let Some(tenant) = wanted.scope.tenant() {
        query = query.bind(tenant.to_owned());
    }
    if let Some(region) = wanted.region {
        query = query.bind(region.to_owned());
    }
    let max = wanted.max as usize;
    let rows = query
        .bind(i64::from(wanted.max) + 1)
        .fetch_all(db.pool())
        .await?;
    let capped = rows.len() > max;
    let mut languages_of_course: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut learners_of_cohort: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for row in rows.iter().take(max) {
        let tenant: String = row.try_get("tenant_id")?;
        let course: String = row.try_get("course_id")?;
        let cohort: String = row.try_get("cohort")?;
        let key = (tenant.clone(), course.clone());
        if !languages_of_course.contains_key(&key) {
            let languages = course_languages(db, &tenant, &course).await?;
            languages_of_course.insert(key.clone(), languages);
        }
        let languages = languages_of_course[&key].clone();
        // A weekly class repeats its cohort: count its enrollments once.
        let cohort_key = (tenant.clone(), course.clone(), cohort);
        let learners = match learners_of_cohort.get(&cohort_key) {
            Some(learners) => *learners,
            None => {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM enrollments e JOIN cohorts c \
                     ON c.tenant_id = e.tenant_id AND c.id = e.cohort_id \
                     WHERE e.tenant_id = $1 AND c.course_id = $2 AND (c.id = $3 OR c.name = $3) \
                     AND e.status = 'active'",
                )
                .bind(&cohort_key.0)
                .bind(&cohort_key.1)
                .bind(&cohort_key.2)
                .fetch_one(db.pool())
                .await?;
                let learners = u64::try_from(count).unwrap_or(0);
                learners_of_cohort.insert(cohort_key, learners);
                learners
            }
        };
        if learners == 0 || languages.is_empty() {
            continue;
        }
        out.push(PastSession {
            tenant_id: tenant,
            session: Session {
                starts_at_ms: row.try_get("starts_at")?,
                ends_at_ms: row.try_get("ends_at")?,
                region: row.try_get("region")?,
                languages,
                learners,
                course_id: Some(course),
            },
        });
    }
    Ok((out, capped))
}

/// The languages a course's units use (their drafts, as an import
/// resolves them).
async fn course_languages(
    db: &Db,
    tenant: &str,
    course: &str,
) -> Result<Vec<String>, TimetableError> {
    let rows =
        sqlx::query("SELECT kind, draft_body FROM units WHERE tenant_id = $1 AND course_id = $2")
            .bind(tenant)
            .bind(course)
            .fetch_all(db.pool())
            .await?;
    let mut units = Vec::new();
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let body: String = row.try_get("draft_body")?;
        let Ok(kind) = crate::content::body::UnitKind::parse(&kind) else {
            continue;
        };
        if let Some(unit) = serde_json::from_str(&body)
            .ok()
            .and_then(|value| crate::content::body::UnitBody::parse(kind, value).ok())
        {
            units.push(unit);
        }
    }
    Ok(super::store::languages_of(&units).into_iter().collect())
}

/// The imported timetables' occurrences `wanted` names, and whether there
/// were more.
async fn imported_sessions(
    db: &Db,
    wanted: Wanted<'_>,
) -> Result<(Vec<PastSession>, bool), TimetableError> {
    let Wanted {
        scope,
        region,
        from_ms,
        to_ms,
        course_only,
        newest_first,
        max,
    } = wanted;
    let mut sql = String::from(
        "SELECT o.tenant_id, o.starts_at, o.ends_at, e.region, e.languages, e.learners, e.course_id \
         FROM timetable_occurrences o JOIN timetable_events e \
         ON e.tenant_id = o.tenant_id AND e.uid = o.uid \
         WHERE o.starts_at < $1 AND o.ends_at > $2",
    );
    let mut next = 3;
    if scope.tenant().is_some() {
        sql.push_str(&format!(" AND o.tenant_id = ${next}"));
        next += 1;
    }
    if region.is_some() {
        sql.push_str(&format!(" AND e.region = ${next}"));
        next += 1;
    }
    if course_only {
        sql.push_str(" AND e.course_id IS NOT NULL");
    }
    sql.push_str(if newest_first {
        " ORDER BY o.starts_at DESC, o.tenant_id, o.uid"
    } else {
        " ORDER BY o.starts_at, o.tenant_id, o.uid"
    });
    sql.push_str(&format!(" LIMIT ${next}"));
    let mut query = sqlx::query(&sql).bind(to_ms).bind(from_ms);
    if let Some(tenant) = scope.tenant() {
        query = query.bind(tenant.to_owned());
    }
    if let Some(region) = region {
        query = query.bind(region.to_owned());
    }
    let rows = query.bind(i64::from(max) + 1).fetch_all(db.pool()).await?;
    let capped = rows.len() > max as usize;
    let mut out = Vec::with_capacity(rows.len().min(max as usize));
    for row in rows.iter().take(max as usize) {
        let languages: String = row.try_get("languages")?;
        let learners: i64 = row.try_get("learners")?;
        out.push(PastSession {
            tenant_id: row.try_get("tenant_id")?,
            session: Session {
                starts_at_ms: row.try_get("starts_at")?,
                ends_at_ms: row.try_get("ends_at")?,
                region: row.try_get("region")?,
                languages: languages
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                learners: u64::try_from(learners).unwrap_or(0),
                course_id: row.try_get("course_id")?,
            },
        });
    }
    Ok((out, capped))
}

/// Runs per learner-minute per course and language, from the sessions
/// that ended in the learning window.
async fn learned(
    db: &Db,
    scope: Scope<'_>,
    config: &ControlPlaneConfig,
    now_ms: i64,
) -> Result<LearnedRates, TimetableError> {
    let mut rates = LearnedRates::new();
    if config.forecast_learning_days == 0 {
        return Ok(rates);
    }
    let from = now_ms - i64::from(config.forecast_learning_days) * 86_400_000;
    let (past, _) = sessions(
        db,
        Wanted {
            scope,
            region: None,
            from_ms: from,
            to_ms: now_ms,
            course_only: true,
            newest_first: true,
            max: config.forecast_learning_sessions_max,
        },
    )
    .await?;
    // (course, language) -> (runs, learner-minutes)
    let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for past in past.iter().filter(|p| p.session.ends_at_ms <= now_ms) {
        let s = &past.session;
        let Some(course) = &s.course_id else { continue };
        if s.languages.is_empty() {
            continue;
        }
        let rows = sqlx::query(
            "SELECT language, COUNT(*) AS runs FROM submissions \
             WHERE tenant_id = $1 AND region = $2 AND recorded_at >= $3 AND recorded_at < $4 \
             GROUP BY language",
        )
        .bind(&past.tenant_id)
        .bind(&s.region)
        .bind(s.starts_at_ms)
        .bind(s.ends_at_ms)
        .fetch_all(db.pool())
        .await?;
        let mut runs: BTreeMap<String, i64> = BTreeMap::new();
        for row in &rows {
            runs.insert(row.try_get("language")?, row.try_get("runs")?);
        }
        let minutes = (s.ends_at_ms - s.starts_at_ms) as f64 / MINUTE_MS as f64;
        let share = s.learners as f64 / s.languages.len() as f64;
        for language in &s.languages {
            let entry = sums.entry((course.clone(), language.clone())).or_default();
            entry.0 += runs.get(language).copied().unwrap_or(0) as f64;
            entry.1 += share * minutes;
        }
    }
    for (key, (runs, learner_minutes)) in sums {
        if learner_minutes >= LEARNED_LEARNER_MINUTES_MIN {
            rates.insert(key, runs / learner_minutes);
        }
    }
    Ok(rates)
}

/// Runs per whole minute before `now_minute`, per region and language:
/// the observed rate's input.
async fn observed(
    db: &Db,
    scope: Scope<'_>,
    region: Option<&str>,
    half_life_minutes: u32,
    now_minute: i64,
) -> Result<BTreeMap<(String, String), Vec<(i64, u64)>>, TimetableError> {
    let from = (now_minute - OBSERVED_HALF_LIVES * i64::from(half_life_minutes)) * MINUTE_MS;
    runs_per_minute(db, scope, region, from, now_minute * MINUTE_MS).await
}

/// Runs recorded per minute in `[from, to)` (unix ms), per region and
/// language.
async fn runs_per_minute(
    db: &Db,
    scope: Scope<'_>,
    region: Option<&str>,
    from: i64,
    to: i64,
) -> Result<BTreeMap<(String, String), Vec<(i64, u64)>>, TimetableError> {
    let mut sql = String::from(
        "SELECT region, language, recorded_at / 60000 AS minute, COUNT(*) AS runs \
         FROM submissions WHERE recorded_at >= $1 AND recorded_at < $2",
    );
    let mut next = 3;
    if scope.tenant().is_some() {
        sql.push_str(&format!(" AND tenant_id = ${next}"));
        next += 1;
    }
    if region.is_some() {
        sql.push_str(&format!(" AND region = ${next}"));
    }
    sql.push_str(" GROUP BY region, language, recorded_at / 60000");
    let mut query = sqlx::query(&sql).bind(from).bind(to);
    if let Some(tenant) = scope.tenant() {
        query = query.bind(tenant.to_owned());
    }
    if let Some(region) = region {
        query = query.bind(region.to_owned());
    }
    let mut out: BTreeMap<(String, String), Vec<(i64, u64)>> = BTreeMap::new();
    for row in query.fetch_all(db.pool()).await? {
        let runs: i64 = row.try_get("runs")?;
        out.entry((row.try_get("region")?, row.try_get("language")?))
            .or_default()
            .push((row.try_get("minute")?, u64::try_from(runs).unwrap_or(0)));
    }
    Ok(out)
}

/// The forecast for `[from_ms, to_ms)` (whole minutes; `from_ms` is
/// rounded down), for one region or all of them.
///
/// # Errors
/// [`TimetableError::BadRequest`] for a window that is empty or longer
/// than `forecast_window_minutes_max`; database errors.
pub async fn forecast(
    db: &Db,
    config: &ControlPlaneConfig,
    scope: Scope<'_>,
    region: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<Forecast, TimetableError> {
    let from_minute = from_ms.div_euclid(MINUTE_MS);
    let to_minute = (to_ms + MINUTE_MS - 1).div_euclid(MINUTE_MS);
    let minutes = to_minute - from_minute;
    if minutes <= 0 {
        return Err(TimetableError::BadRequest("to must be after from".into()));
    }
    if minutes > i64::from(config.forecast_window_minutes_max) {
        return Err(TimetableError::BadRequest(format!(
            "the window is {minutes} minutes; at most {} (forecast_window_minutes_max)",
            config.forecast_window_minutes_max
        )));
    }
    let minutes = usize::try_from(minutes).unwrap_or(0);
    let params = params(config);
    let span = minutes + forecast::lookahead_minutes(&params.capacity);
    let span_end = (from_minute + i64::try_from(span).unwrap_or(0)) * MINUTE_MS;
    let (found, capped) = sessions(
        db,
        Wanted {
            scope,
            region,
            from_ms: from_minute * MINUTE_MS,
            to_ms: span_end,
            course_only: false,
            newest_first: false,
            max: config.forecast_sessions_max,
        },
    )
    .await?;
    let sessions: Vec<Session> = found.into_iter().map(|p| p.session).collect();
    let learned = learned(db, scope, config, now_ms).await?;
    let now_minute = now_ms.div_euclid(MINUTE_MS);
    let observed_counts = observed(
        db,
        scope,
        region,
        config.forecast_observed_half_life_minutes,
        now_minute,
    )
    .await?;

    // What actually ran in the window's past minutes (the current one so
    // far), to set beside the forecast.
    let actual_end = ((now_minute + 1) * MINUTE_MS).min(to_minute * MINUTE_MS);
    let actual = if actual_end > from_minute * MINUTE_MS {
        runs_per_minute(db, scope, region, from_minute * MINUTE_MS, actual_end).await?
    } else {
        BTreeMap::new()
    };
    let mut regions: Vec<String> = sessions.iter().map(|s| s.region.clone()).collect();
    regions.extend(observed_counts.keys().map(|(r, _)| r.clone()));
    regions.extend(actual.keys().map(|(r, _)| r.clone()));
    regions.sort();
    regions.dedup();
    let mut series = Vec::new();
    for r in &regions {
        let mut plan = forecast::planned(&sessions, &learned, &params.shape, r, from_minute, span);
        for (region_seen, language) in observed_counts.keys().chain(actual.keys()) {
            if region_seen == r {
                plan.entry(language.clone())
                    .or_insert_with(|| vec![0.0; span]);
            }
        }
        for (language, planned) in plan {
            let rate = observed_counts
                .get(&(r.clone(), language.clone()))
                .map_or(0.0, |counts| {
                    forecast::observed_rate(counts, now_minute, params.half_life_minutes)
                });
            let mut item = forecast::series(
                r,
                &language,
                &planned,
                rate,
                &params.capacity,
                from_minute,
                minutes,
            );
            forecast::set_actual(
                &mut item,
                actual
                    .get(&(r.clone(), language.clone()))
                    .map_or(&[], Vec::as_slice),
                from_minute,
                now_minute,
            );
            series.push(item);
        }
    }
    Ok(Forecast {
        from: super::model::rfc3339_utc(from_minute * MINUTE_MS),
        to: super::model::rfc3339_utc(to_minute * MINUTE_MS),
        series,
        capped,
    })
}
