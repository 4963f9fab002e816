//! The live classroom's two contracts with edge nodes.
//!
//! *Tickets.* A member asks `POST /api/v1/live/tickets` for a class (the id
//! of a published `live_classroom` unit of their tenant). Instructors of
//! the tenant get `class_role` "instructor", learners enrolled in the
//! unit's course "learner", anyone else 403 `not_enrolled`. The ticket is
//! a JWT signed with the access-token keys for the audience `lyceum-live`
//! ([`crate::tokens::LiveTicketClaims`]); the edge verifies it offline with
//! the published key set, so joining a class never waits on the control
//! plane. Its `name`, which the edge shows to the whole class (roster,
//! presence, chat), is the holder's display name, never their email.
//!
//! *Attendance.* When a class ends, the edge that homed it reports who was
//! there (`POST /api/v1/live/attendance`, with the edge service key, from
//! its outbox until taken). The report is idempotent by class: the first
//! is recorded (201), the same report again answers the same (200), and a
//! different report for the same class is refused (409
//! `idempotency_mismatch`), compared on a canonical form (fields in a fixed
//! order, attendees sorted by user id). Recording it writes the attendance
//! rows, each learner's live-classroom progress ([`super::progress`]) and
//! an `attendance_recorded` event, in one transaction.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::error::LearningError;
use super::model::check_id;
use super::progress::{self, AttendanceFacts};
use crate::content::body::{rfc3339_unix_ms, UnitBody};
use crate::content::UnitKind;
use crate::db::Db;
use crate::events::{self, EventKind, NewEvent};
use crate::service::ControlPlane;
use crate::tokens::{self, Claims, ClassRole, Role, TicketFor};

/// Most attendees in one report; a class holds at most this many people.
pub const ATTENDEES_MAX: usize = 10_000;

/// Longest class (and presence) an attendance report may describe: two
/// days, twice the longest scheduled class.
pub const CLASS_SECONDS_MAX: u64 = 2 * 24 * 3600;

/// Largest attendance report body, in bytes: [`ATTENDEES_MAX`] attendees
/// of about 300 bytes each. The route sets it as its own body limit, which
/// replaces `http.request_body_bytes_max` (1 MiB by default, about 3,500
/// attendees) for this route only, so a full class's report is never
/// refused for its size.
pub const ATTENDANCE_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Attendance rows per multi-row insert: 7 parameters each (and two
/// shared).
const ROWS_PER_STATEMENT: usize = 1_000;

const _: () = assert!(ROWS_PER_STATEMENT * 7 + 2 < 32_766);

/// Body of `POST /api/v1/live/tickets`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The id of a published `live_classroom` unit of the caller's tenant.
    pub class_id: String,
}

/// Answer of `POST /api/v1/live/tickets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    /// The JWT to present to an edge (`lyceum-live` audience).
    pub ticket: String,
    /// The class.
    pub class_id: String,
    /// The holder's part in it.
    pub class_role: ClassRole,
    /// Region whose edge should host the class, if the unit names one.
    pub region: Option<String>,
    /// When the ticket expires, unix **milliseconds** (as every time in
    /// this API; the JWT's `exp` is in seconds).
    pub expires_at: i64,
}

/// One attendee in an attendance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    /// User id.
    pub user_id: String,
    /// Their part in the class.
    pub class_role: ClassRole,
    /// First joined, RFC 3339.
    pub joined_at: String,
    /// Last left (the end of class if still connected), RFC 3339.
    pub left_at: String,
    /// Seconds connected in all, at most [`CLASS_SECONDS_MAX`].
    pub seconds_present: u64,
    /// Submissions made in class.
    pub submissions: u32,
    /// Of which accepted (at most `submissions`).
    pub accepted: u32,
}

/// Body of `POST /api/v1/live/attendance`, from the edge that homed the
/// class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceReport {
    /// The class (its unit's id).
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The class's ownership epoch on the edges.
    pub epoch: u64,
    /// When the class started, RFC 3339.
    pub started_at: String,
    /// When it ended, RFC 3339.
    pub ended_at: String,
    /// Everyone who came, at most [`ATTENDEES_MAX`], each once.
    pub attendees: Vec<Attendee>,
}

/// Answer of `POST /api/v1/live/attendance` (201 first, 200 after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttendanceRecorded {
    /// The class.
    pub class_id: String,
    /// Attendees recorded.
    pub recorded: u64,
}

/// A stored attendance report, as instructors read it (a page of its
/// attendees).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassAttendance {
    /// The class.
    pub class_id: String,
    /// Its course.
    pub course_id: String,
    /// Ownership epoch the report came from.
    pub epoch: i64,
    /// RFC 3339, as reported.
    pub started_at: String,
    /// RFC 3339, as reported.
    pub ended_at: String,
    /// Attendees in all.
    pub attendees: i64,
    /// When the control plane recorded it, unix ms.
    pub recorded_at: i64,
    /// A page of attendees in user id order.
    pub items: Vec<Attendee>,
    /// The `after` of the next page; absent on the last.
    pub next_after: Option<String>,
}

/// Signs a ticket for the caller to join `class_id`.
///
/// # Errors
/// [`LearningError::NotFound`] for a class that is not a `live_classroom`
/// unit of the caller's tenant, [`LearningError::NotPublished`] for one
/// never published, [`LearningError::NotEnrolled`] for a caller who is
/// neither an instructor of the tenant nor enrolled in its course (nor,
/// any more, a member of the tenant).
pub async fn issue_ticket(
    cp: &ControlPlane,
    caller: &Claims,
    class_id: &str,
) -> Result<Ticket, LearningError> {
    if check_id("class_id", class_id).is_err() {
        return Err(LearningError::not_found("class", class_id));
    }
    let tenant = caller.tid.as_str();
    let mut conn = cp.db().pool().acquire().await?;
    let info = match progress::published_unit(&mut conn, tenant, class_id).await {
        Err(LearningError::NotFound { .. }) => {
            return Err(LearningError::not_found("class", class_id))
        }
        other => other?,
    };
    if info.kind != UnitKind::LiveClassroom {
        return Err(LearningError::not_found("class", class_id));
    }
    let class_role = if caller.role == Role::Instructor {
        ClassRole::Instructor
    } else {
        let enrollment =
            super::enrollments::get(&mut *conn, tenant, &info.course_id, &caller.sub).await?;
        match enrollment {
            Some(e) if e.status != super::enrollments::EnrollmentStatus::Dropped => {
                ClassRole::Learner
            }
            _ => {
                return Err(LearningError::NotEnrolled(format!(
                    "enroll in course {} to join this class",
                    info.course_id
                )))
            }
        }
    };
    // The name classmates see: the display name, looked up here (the
    // access token carries only the email, which is nobody else's
    // business). A token whose user is no longer a member of the tenant
    // is neither an instructor of it nor enrolled.
    let name: Option<String> = sqlx::query_scalar(
        "SELECT u.display_name FROM users u JOIN memberships m ON m.user_id = u.id \
         WHERE m.tenant_id = $1 AND u.id = $2",
    )
    .bind(tenant)
    .bind(&caller.sub)
    .fetch_optional(&mut *conn)
    .await?;
    let name = name.ok_or_else(|| {
        LearningError::NotEnrolled(format!(
            "user {} is not a member of this tenant",
            caller.sub
        ))
    })?;
    drop(conn);
    let body: serde_json::Value = serde_json::from_str(&info.body)
        .map_err(|err| LearningError::Corrupt(format!("class {class_id} body: {err}")))?;
    let region = match UnitBody::parse(UnitKind::LiveClassroom, body) {
        Ok(UnitBody::LiveClassroom(class)) => Some(class.region).filter(|r| !r.is_empty()),
        Ok(_) => None,
        Err(err) => return Err(LearningError::Corrupt(format!("class {class_id}: {err}"))),
    };
    let (ticket, claims) = tokens::issue_live_ticket(
        cp.keys(),
        &TicketFor {
            user_id: &caller.sub,
            tenant_id: tenant,
            class_id,
            class_role,
            name: &name,
            region: region.as_deref(),
        },
        cp.config().live_ticket_ttl_seconds,
    )
    .map_err(|err| LearningError::Crypto(err.to_string()))?;
    Ok(Ticket {
        ticket,
        class_id: class_id.to_owned(),
        class_role,
        region,
        expires_at: i64::try_from(claims.exp)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    })
}

fn time(field: &str, text: &str) -> Result<i64, LearningError> {
    rfc3339_unix_ms(text).ok_or_else(|| {
        LearningError::Invalid(format!(
            "{field} {:?} is not an RFC 3339 date-time such as 2026-12-01T17:00:00Z",
            text.chars().take(64).collect::<String>()
        ))
    })
}

/// A checked report: its times in unix ms and its canonical form.
struct Checked {
    started_ms: i64,
    ended_ms: i64,
    canonical: String,
}

fn check_report(report: &AttendanceReport) -> Result<Checked, LearningError> {
    check_id("class_id", &report.class_id)?;
    check_id("tenant_id", &report.tenant_id)?;
    if i64::try_from(report.epoch).is_err() {
        return Err(LearningError::Invalid(format!(
            "epoch must be at most {}",
            i64::MAX
        )));
    }
    let started_ms = time("started_at", &report.started_at)?;
    let ended_ms = time("ended_at", &report.ended_at)?;
    let length = ended_ms.checked_sub(started_ms).unwrap_or(-1);
    let max_ms = i64::try_from(CLASS_SECONDS_MAX * 1000).unwrap_or(i64::MAX);
    if !(0..=max_ms).contains(&length) {
        return Err(LearningError::Invalid(format!(
            "ended_at must be after started_at, by at most {CLASS_SECONDS_MAX} seconds"
        )));
    }
    if report.attendees.len() > ATTENDEES_MAX {
        return Err(LearningError::Invalid(format!(
            "a report holds at most {ATTENDEES_MAX} attendees, not {}",
            report.attendees.len()
        )));
    }
    let mut seen = HashSet::with_capacity(report.attendees.len());
    for (i, a) in report.attendees.iter().enumerate() {
        let field = |name: &str| format!("attendees[{i}].{name}");
        check_id(&field("user_id"), &a.user_id)?;
        if !seen.insert(a.user_id.as_str()) {
            return Err(LearningError::Invalid(format!(
                "{} is listed twice",
                field("user_id")
            )));
        }
        let joined = time(&field("joined_at"), &a.joined_at)?;
        let left = time(&field("left_at"), &a.left_at)?;
        if left < joined {
            return Err(LearningError::Invalid(format!(
                "{} is before {}",
                field("left_at"),
                field("joined_at")
            )));
        }
        if a.seconds_present > CLASS_SECONDS_MAX {
            return Err(LearningError::Invalid(format!(
                "{} must be at most {CLASS_SECONDS_MAX}",
                field("seconds_present")
            )));
        }
        if a.accepted > a.submissions {
            return Err(LearningError::Invalid(format!(
                "{} must not exceed {}",
                field("accepted"),
                field("submissions")
            )));
        }
    }
    let mut sorted = report.clone();
    sorted.attendees.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    // Field order is the structs', attendees sorted: equal reports give
    // equal text, whatever order the edge listed people in.
    let canonical = serde_json::to_string(&sorted)
        .map_err(|err| LearningError::Corrupt(format!("canonical report: {err}")))?;
    Ok(Checked {
        started_ms,
        ended_ms,
        canonical,
    })
}

/// What [`record_attendance`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The first report of the class (201).
    Created(AttendanceRecorded),
    /// The same report again (200).
    Existing(AttendanceRecorded),
}

/// Records an attendance report once; see the module docs.
///
/// # Errors
/// [`LearningError::Invalid`] for a malformed report,
/// [`LearningError::NotFound`] for a class that is not a published
/// `live_classroom` unit of `tenant_id`,
/// [`LearningError::IdempotencyMismatch`] for another report of a class
/// recorded before. Cancel safety: one transaction.
pub async fn record_attendance(
    db: &Db,
    report: &AttendanceReport,
    now_ms: i64,
) -> Result<Recorded, LearningError> {
    let checked = check_report(report)?;
    let tenant = report.tenant_id.as_str();
    let class = report.class_id.as_str();
    let mut tx = db.begin_write().await?;
    let info = match progress::published_unit(&mut tx, tenant, class).await {
        Err(LearningError::NotFound { .. }) => {
            return Err(LearningError::not_found("class", class))
        }
        other => other?,
    };
    if info.kind != UnitKind::LiveClassroom {
        return Err(LearningError::not_found("class", class));
    }
    let count = u64::try_from(report.attendees.len()).unwrap_or(u64::MAX);
    let answer = AttendanceRecorded {
        class_id: class.to_owned(),
        recorded: count,
    };
    let inserted = sqlx::query(
        "INSERT INTO live_reports (class_id, tenant_id, course_id, epoch, started_at, ended_at, \
         started_at_ms, ended_at_ms, attendees, body, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (class_id) DO NOTHING",
    )
    .bind(class)
    .bind(tenant)
    .bind(&info.course_id)
    .bind(i64::try_from(report.epoch).unwrap_or(i64::MAX))
    .bind(&report.started_at)
    .bind(&report.ended_at)
    .bind(checked.started_ms)
    .bind(checked.ended_ms)
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .bind(&checked.canonical)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        let (body, attendees): (String, i64) =
            sqlx::query_as("SELECT body, attendees FROM live_reports WHERE class_id = $1")
                .bind(class)
                .fetch_one(&mut *tx)
                .await?;
        if body != checked.canonical {
            return Err(LearningError::IdempotencyMismatch(format!(
                "class {class} was reported before with another body; the first report stands"
            )));
        }
        return Ok(Recorded::Existing(AttendanceRecorded {
            class_id: class.to_owned(),
            recorded: u64::try_from(attendees).unwrap_or_default(),
        }));
    }
    for chunk in report.attendees.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 3 + i * 7;
                format!(
                    "($1, $2, ${n}, ${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO live_attendance (tenant_id, class_id, user_id, class_role, joined_at, \
             left_at, seconds_present, submissions, accepted) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(tenant).bind(class);
        for a in chunk {
            query = query
                .bind(a.user_id.as_str())
                .bind(a.class_role.as_str())
                .bind(a.joined_at.as_str())
                .bind(a.left_at.as_str())
                .bind(i64::try_from(a.seconds_present).unwrap_or(i64::MAX))
                .bind(i64::from(a.submissions))
                .bind(i64::from(a.accepted));
        }
        query.execute(&mut *tx).await?;
    }
    let class_seconds = (checked.ended_ms - checked.started_ms) / 1000;
    for a in report
        .attendees
        .iter()
        .filter(|a| a.class_role == ClassRole::Learner)
    {
        let facts = AttendanceFacts {
            tenant,
            user: &a.user_id,
            unit: class,
            course: &info.course_id,
            seconds_present: i64::try_from(a.seconds_present).unwrap_or(i64::MAX),
            class_seconds,
            submissions: i64::from(a.submissions),
            accepted: i64::from(a.accepted),
        };
        progress::record_attendance(db, &mut tx, &facts, now_ms).await?;
    }
    events::append(
        &mut tx,
        &[NewEvent {
            kind: EventKind::AttendanceRecorded,
            tenant_id: tenant.to_owned(),
            aggregate_id: class.to_owned(),
            payload: serde_json::json!({
                "class_id": class,
                "course_id": info.course_id,
                "epoch": report.epoch,
                "attendees": count,
                "learners": report.attendees.iter()
                    .filter(|a| a.class_role == ClassRole::Learner).count(),
            }),
        }],
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded::Created(answer))
}

/// A class's recorded attendance with a page of attendees after the user
/// id `after`.
///
/// # Errors
/// [`LearningError::NotFound`] when the class is not the tenant's or has
/// no report yet.
pub async fn attendance(
    db: &Db,
    tenant: &str,
    class: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<ClassAttendance, LearningError> {
    let row = sqlx::query(
        "SELECT course_id, epoch, started_at, ended_at, attendees, recorded_at FROM live_reports \
         WHERE tenant_id = $1 AND class_id = $2",
    )
    .bind(tenant)
    .bind(class)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| LearningError::not_found("attendance of class", class))?;
    let rows = sqlx::query(
        "SELECT user_id, class_role, joined_at, left_at, seconds_present, submissions, accepted \
         FROM live_attendance WHERE tenant_id = $1 AND class_id = $2 AND user_id > $3 \
         ORDER BY user_id LIMIT $4",
    )
    .bind(tenant)
    .bind(class)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let role: String = r.try_get("class_role")?;
        let number = |name: &str| -> Result<i64, LearningError> { Ok(r.try_get(name)?) };
        items.push(Attendee {
            user_id: r.try_get("user_id")?,
            class_role: if role == "instructor" {
                ClassRole::Instructor
            } else {
                ClassRole::Learner
            },
            joined_at: r.try_get("joined_at")?,
            left_at: r.try_get("left_at")?,
            seconds_present: u64::try_from(number("seconds_present")?).unwrap_or_default(),
            submissions: u32::try_from(number("submissions")?).unwrap_or_default(),
            accepted: u32::try_from(number("accepted")?).unwrap_or_default(),
        });
    }
    let full = items.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if full {
        items.last().map(|a| a.user_id.clone())
    } else {
        None
    };
    Ok(ClassAttendance {
        class_id: class.to_owned(),
        course_id: row.try_get("course_id")?,
        epoch: row.try_get("epoch")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        attendees: row.try_get("attendees")?,
        recorded_at: row.try_get("recorded_at")?,
        items,
        next_after,
    })
}
