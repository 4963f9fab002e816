//! The demo content `lyceum dev` seeds into the dev tenant, so that the
//! platform shows something real the moment it starts: one course, "Python
//! from zero", with one unit of each kind (lesson, quiz, assignment, live
//! classroom), all published, linked by a small learning path (the quiz
//! needs the lesson, the assignment needs 70 on the quiz, the class needs
//! the assignment), and a subscription of the tenant to the per-seat plan
//! (in its trial). The tenant's catalogue is public, so the course shows
//! at `/catalogue/dev` too. Only seeded with `--seed-dev`, and only once: a
//! tenant that already has the course is left alone.

use serde_json::json;

use crate::content::courses::{self, NewCourse, NewModule};
use crate::content::paths::{self, Condition, NewPrerequisite};
use crate::content::units::{self, NewUnit};
use crate::content::{Limits, UnitKind};
use crate::error::ControlPlaneError;
use crate::service::ControlPlane;

/// Title of the demo course; its presence means the demo is seeded.
pub const DEMO_COURSE_TITLE: &str = "Python from zero";

/// The plan the demo tenant subscribes to, and for how many seats.
pub const DEMO_PLAN: &str = "per_seat";
/// Seats of the demo subscription.
pub const DEMO_SEATS: i64 = 25;

/// What the demo seed made (or found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// The course's id.
    pub course_id: String,
    /// Unit ids in path order: lesson, quiz, assignment, live classroom.
    pub unit_ids: Vec<String>,
    /// Whether this call created it (false: it was there).
    pub created: bool,
}

/// The four units: kind, title, body.
fn units() -> [(UnitKind, &'static str, serde_json::Value); 4] {
    [
        (
            UnitKind::Lesson,
            "Printing and input",
            json!({
                "markdown": "# Printing and input\n\n`print` writes a line; `input()` reads one.\nRun the snippet, then change it.",
                "snippets": [{"language": "python", "code": "name = input()\nprint('hello,', name)"}],
            }),
        ),
        (
            UnitKind::Quiz,
            "Check yourself",
            json!({
                "questions": [
                    {"type": "single_choice", "id": "q1", "prompt": "What does print(2 + 3) show?",
                     "choices": ["23", "5", "2 + 3"], "answer": 1},
                    {"type": "multiple_choice", "id": "q2", "prompt": "Which are Python keywords?",
                     "choices": ["def", "print", "return", "input"], "answers": [0, 2]},
                    {"type": "short_answer", "id": "q3", "prompt": "Which function reads a line?",
                     "accepted": ["input", "input()"]},
                    {"type": "code", "id": "q4", "prompt": "Print the sum of two numbers on one line.",
                     "language": "python", "starter": "a, b = map(int, input().split())\n",
                     "tests": [{"name": "small", "stdin": "2 3", "expected_stdout": "5", "compare": "trimmed"}],
                     "hidden_tests": [{"name": "negative", "stdin": "-4 1", "expected_stdout": "-3", "compare": "trimmed"}]},
                ],
                "settings": {"shuffle": true, "attempts_max": 3, "time_limit_s": 600},
            }),
        ),
        (
            UnitKind::Assignment,
            "Double it",
            json!({
                "language": "python",
                "starter_files": [{"name": "main.py", "content": "n = int(input())\n# print twice n\n"}],
                "visible_tests": [{"name": "twenty-one", "stdin": "21", "expected_stdout": "42", "compare": "trimmed"}],
                "hidden_tests": [{"name": "zero", "stdin": "0", "expected_stdout": "0", "compare": "trimmed"},
                                 {"name": "negative", "stdin": "-5", "expected_stdout": "-10", "compare": "trimmed"}],
                "limits": {"wall_ms": 2000, "memory_mb": 128},
                "reference_solution": [{"name": "main.py", "content": "print(int(input()) * 2)\n"}],
            }),
        ),
        (
            UnitKind::LiveClassroom,
            "Live: questions and answers",
            json!({
                "schedule": {"starts_at": "2026-12-01T17:00:00Z", "duration_minutes": 60},
                "cohort": "demo-cohort",
                "region": "eu-west",
            }),
        ),
    ]
}

/// Seeds the demo course into `tenant`, authored by `author`, unless it is
/// there already.
///
/// # Errors
/// Database errors, or a demo body the content rules refuse (a bug).
pub async fn seed_demo(
    cp: &ControlPlane,
    tenant: &str,
    author: &str,
) -> Result<Demo, ControlPlaneError> {
    let db = cp.db();
    let limits = Limits::from_config(cp.config());
    let now = cp.clock().now_ms();
    let existing = courses::list_courses(db, tenant, None, limits.page_size_max)
        .await?
        .into_iter()
        .find(|c| c.title == DEMO_COURSE_TITLE);
    if let Some(course) = existing {
        return Ok(Demo {
            course_id: course.id,
            unit_ids: Vec::new(),
            created: false,
        });
    }
    let course = courses::create_course(
        db,
        tenant,
        author,
        &NewCourse {
            title: DEMO_COURSE_TITLE.to_owned(),
            summary: "Your first steps: print, input, a quiz, an assignment and a live class."
                .to_owned(),
        },
        now,
    )
    .await?;
    let module = courses::create_module(
        db,
        tenant,
        &course.id,
        &NewModule {
            title: "Week 1".to_owned(),
        },
        now,
    )
    .await?;
    let mut unit_ids = Vec::new();
    for (kind, title, body) in units() {
        let unit = units::create_unit(
            db,
            tenant,
            &module.id,
            NewUnit {
                kind,
                title: title.to_owned(),
                body,
            },
            &limits,
            now,
        )
        .await?;
        units::publish(db, tenant, &unit.id, author, now).await?;
        unit_ids.push(unit.id);
    }
    let conditions = [None, Some(70), None];
    for (pair, min_score) in unit_ids.windows(2).zip(conditions) {
        paths::add_prerequisite(
            db,
            tenant,
            &pair[1],
            &NewPrerequisite {
                prerequisite_id: pair[0].clone(),
                condition: min_score.map(|score| Condition {
                    min_score: Some(score),
                }),
            },
            &limits,
            now,
        )
        .await?;
    }
    // A subscription in its trial, paid (later) through the built-in
    // provider; a tenant that already has one keeps it.
    let provider = crate::billing::DevProvider::new(cp.config().billing_dev_decline_token.clone());
    let subscribed = crate::billing::subscriptions::subscribe(
        cp,
        &provider,
        tenant,
        &crate::billing::subscriptions::NewSubscription {
            plan_id: DEMO_PLAN.to_owned(),
            quantity: DEMO_SEATS,
            payment_token: "tok_demo".to_owned(),
        },
        now,
    )
    .await;
    match subscribed {
        Ok(_) | Err(crate::billing::BillingError::AlreadySubscribed) => {}
        Err(err) => return Err(err.into()),
    }
    crate::catalogue::set_public(cp.db(), tenant, true).await?;
    cp.content_cache().invalidate(tenant);
    Ok(Demo {
        course_id: course.id,
        unit_ids,
        created: true,
    })
}
