//! The typed bodies of the four unit kinds, their validation, and the
//! learner view. Bodies travel and are stored as JSON, but every write goes
//! through these types first (unknown fields refused), so what is stored is
//! always something the kind understands. The learner view is built from
//! the types too: it drops hidden tests and answer keys, which must never
//! reach a learner's browser.

use serde::{Deserialize, Serialize};

use super::error::ContentError;
use super::model::Limits;

/// Longest language id (`python`, `c++`, `typescript`).
pub const LANGUAGE_BYTES_MAX: usize = 32;
/// Longest question id, cohort or region.
pub const NAME_BYTES_MAX: usize = 64;
/// Largest wall-clock limit an assignment may ask for; edges still cap it
/// with their own `sandbox.wall_ms_max`.
pub const WALL_MS_MAX: u64 = 60_000;
/// Largest memory limit an assignment may ask for; edges cap it too.
pub const MEMORY_MB_MAX: u32 = 4_096;
/// Longest live class (a day).
pub const DURATION_MINUTES_MAX: u32 = 24 * 60;
/// Most choices of one choice question.
pub const CHOICES_MAX: usize = 32;
/// Most attempts a quiz may allow.
pub const ATTEMPTS_MAX: u32 = 1_000;
/// Longest quiz time limit (a day).
pub const TIME_LIMIT_S_MAX: u32 = 24 * 3600;

/// What a unit is; fixed when the unit is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// Markdown with runnable code snippets.
    Lesson,
    /// Questions with answer keys and settings.
    Quiz,
    /// A programming task graded by visible and hidden tests.
    Assignment,
    /// A scheduled live class for a cohort.
    LiveClassroom,
}

impl UnitKind {
    /// Every kind, in a stable order.
    pub const ALL: [UnitKind; 4] = [
        Self::Lesson,
        Self::Quiz,
        Self::Assignment,
        Self::LiveClassroom,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lesson => "lesson",
            Self::Quiz => "quiz",
            Self::Assignment => "assignment",
            Self::LiveClassroom => "live_classroom",
        }
    }

    /// Parses the stored form.
    ///
    /// # Errors
    /// [`ContentError::Corrupt`]: stored kinds are checked by the schema.
    pub fn parse(text: &str) -> Result<Self, ContentError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ContentError::Corrupt(format!("unit kind {text:?}")))
    }
}

/// A lesson: Markdown text and code snippets the learner can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    /// The lesson text.
    pub markdown: String,
    /// Runnable snippets, referred to from the text by position.
    #[serde(default)]
    pub snippets: Vec<Snippet>,
}

/// A runnable code snippet of a lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snippet {
    /// Sandbox language id.
    pub language: String,
    /// Source code.
    pub code: String,
}

/// A quiz: questions and how they are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiz {
    /// 1 to `content_quiz_questions_max` questions.
    pub questions: Vec<Question>,
    /// Shuffling, attempts and time.
    #[serde(default)]
    pub settings: QuizSettings,
}

/// How a quiz is served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizSettings {
    /// Serve questions (and choices) in a random order per attempt.
    #[serde(default)]
    pub shuffle: bool,
    /// Attempts allowed, 1 to [`ATTEMPTS_MAX`]; absent means unlimited.
    #[serde(default)]
    pub attempts_max: Option<u32>,
    /// Seconds per attempt, 1 to [`TIME_LIMIT_S_MAX`]; absent means none.
    #[serde(default)]
    pub time_limit_s: Option<u32>,
}

/// One quiz question. Answer keys are optional in the type only so that the
/// learner view can drop them; a write without them is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Question {
    /// Exactly one right choice.
    SingleChoice {
        /// Stable id within the quiz (answers refer to it, shuffling or not).
        id: String,
        /// The question text (Markdown).
        prompt: String,
        /// 2 to [`CHOICES_MAX`] choices.
        choices: Vec<String>,
        /// Index of the right choice (answer key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<u32>,
    },
    /// Any non-empty set of right choices.
    MultipleChoice {
        /// Stable id within the quiz.
        id: String,
        /// The question text (Markdown).
        prompt: String,
        /// 2 to [`CHOICES_MAX`] choices.
        choices: Vec<String>,
        /// Indexes of the right choices, no duplicates (answer key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answers: Option<Vec<u32>>,
    },
    /// A typed answer compared against accepted ones.
    ShortAnswer {
        /// Stable id within the quiz.
        id: String,
        /// The question text (Markdown).
        prompt: String,
        /// Accepted answers, at least one (answer key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accepted: Option<Vec<String>>,
        /// Compare case-sensitively.
        #[serde(default)]
        case_sensitive: bool,
    },
    /// Code run in the sandbox against tests.
    Code {
        /// Stable id within the quiz.
        id: String,
        /// The question text (Markdown).
        prompt: String,
        /// Sandbox language id.
        language: String,
        /// Code the editor starts with.
        #[serde(default)]
        starter: String,
        /// Tests the learner sees.
        #[serde(default)]
        tests: Vec<TestCase>,
        /// Tests the learner never sees; at least one test in all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hidden_tests: Vec<TestCase>,
    },
}

/// One test case, in the sandbox's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Name shown in results.
    pub name: String,
    /// Standard input.
    #[serde(default)]
    pub stdin: String,
    /// What standard output must be.
    pub expected_stdout: String,
    /// How to compare; the sandbox's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
}

/// How program output is compared with the expected output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// Ignoring leading and trailing whitespace.
    Trimmed,
    /// Whitespace-separated tokens.
    Tokens,
    /// Numbers within a tolerance.
    Float,
}

/// An assignment: a programming task graded by tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Sandbox language id.
    pub language: String,
    /// Files the learner starts from; the first is the entry point.
    #[serde(default)]
    pub starter_files: Vec<StarterFile>,
    /// Tests the learner sees and can run.
    #[serde(default)]
    pub visible_tests: Vec<TestCase>,
    /// Tests only the grader runs; never in the learner view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_tests: Vec<TestCase>,
    /// Run limits; the edge's defaults when absent.
    #[serde(default)]
    pub limits: RunLimits,
    /// The author's own solution, kept with the draft so the builder can
    /// run it against every test before publishing; never in the learner
    /// view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_solution: Vec<StarterFile>,
}

/// A file of an assignment's starting point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StarterFile {
    /// File name: no path separators, not `.` or `..`.
    pub name: String,
    /// Contents.
    pub content: String,
}

/// Run limits an assignment asks for; edges cap them with their own maxima.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Wall-clock limit per run, 1 to [`WALL_MS_MAX`].
    #[serde(default)]
    pub wall_ms: Option<u64>,
    /// Memory limit, 1 to [`MEMORY_MB_MAX`].
    #[serde(default)]
    pub memory_mb: Option<u32>,
}

/// A live class: when, for whom, and where it is hosted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveClassroom {
    /// When and how long.
    pub schedule: Schedule,
    /// The cohort invited.
    pub cohort: String,
    /// Region whose edge hosts the class: a-z, 0-9 and `-`.
    pub region: String,
}

/// When a live class takes place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Start, RFC 3339 (`2026-12-01T17:00:00Z`).
    pub starts_at: String,
    /// Length, 1 to [`DURATION_MINUTES_MAX`] minutes.
    pub duration_minutes: u32,
}

/// The body of a unit, one variant per kind. Serialised untagged: the kind
/// travels next to the body, not inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UnitBody {
    /// See [`Lesson`].
    Lesson(Lesson),
    /// See [`Quiz`].
    Quiz(Quiz),
    /// See [`Assignment`].
    Assignment(Assignment),
    /// See [`LiveClassroom`].
    LiveClassroom(LiveClassroom),
}

fn invalid(message: impl Into<String>) -> ContentError {
    ContentError::Invalid(message.into())
}

impl UnitBody {
    /// Parses and validates a body sent for a unit of `kind`: size first
    /// (`content_unit_body_bytes_max`, serialised), then the kind's type,
    /// then its rules.
    ///
    /// # Errors
    /// [`ContentError::BodyTooLarge`], or [`ContentError::Invalid`] saying
    /// which field is wrong.
    pub fn from_request(
        kind: UnitKind,
        body: serde_json::Value,
        limits: &Limits,
    ) -> Result<Self, ContentError> {
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| invalid(format!("body: {err}")))?
            .len();
        if bytes > usize::try_from(limits.unit_body_bytes_max).unwrap_or(usize::MAX) {
            return Err(ContentError::BodyTooLarge {
                bytes,
                max: limits.unit_body_bytes_max,
            });
        }
        let parsed = Self::parse(kind, body)
            .map_err(|err| invalid(format!("body of a {}: {err}", kind.as_str())))?;
        parsed.validate(limits)?;
        Ok(parsed)
    }

    /// Parses a body as `kind` without the rules (for stored bodies, which
    /// were checked when written).
    ///
    /// # Errors
    /// The serde error, which names the field.
    pub fn parse(kind: UnitKind, body: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            UnitKind::Lesson => Self::Lesson(serde_json::from_value(body)?),
            UnitKind::Quiz => Self::Quiz(serde_json::from_value(body)?),
            UnitKind::Assignment => Self::Assignment(serde_json::from_value(body)?),
            UnitKind::LiveClassroom => Self::LiveClassroom(serde_json::from_value(body)?),
        })
    }

    /// The kind of this body.
    pub fn kind(&self) -> UnitKind {
        match self {
            Self::Lesson(_) => UnitKind::Lesson,
            Self::Quiz(_) => UnitKind::Quiz,
            Self::Assignment(_) => UnitKind::Assignment,
            Self::LiveClassroom(_) => UnitKind::LiveClassroom,
        }
    }

    /// Checks the rules of the kind.
    ///
    /// # Errors
    /// [`ContentError::Invalid`] naming the first field at fault.
    pub fn validate(&self, limits: &Limits) -> Result<(), ContentError> {
        match self {
            Self::Lesson(lesson) => {
                for (i, snippet) in lesson.snippets.iter().enumerate() {
                    check_language(&format!("snippets[{i}].language"), &snippet.language)?;
                }
                Ok(())
            }
            Self::Quiz(quiz) => validate_quiz(quiz, limits),
            Self::Assignment(assignment) => validate_assignment(assignment, limits),
            Self::LiveClassroom(class) => {
                check_rfc3339("schedule.starts_at", &class.schedule.starts_at)?;
                let minutes = class.schedule.duration_minutes;
                if !(1..=DURATION_MINUTES_MAX).contains(&minutes) {
                    return Err(invalid(format!(
                        "schedule.duration_minutes must be 1 to {DURATION_MINUTES_MAX}, not {minutes}"
                    )));
                }
                check_name("cohort", &class.cohort)?;
                let region_ok = !class.region.is_empty()
                    && class.region.len() <= NAME_BYTES_MAX
                    && class
                        .region
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !region_ok {
                    return Err(invalid(format!(
                        "region {:?} must be 1 to {NAME_BYTES_MAX} bytes of a-z, 0-9 and '-'",
                        class.region
                    )));
                }
                Ok(())
            }
        }
    }

    /// What a learner may see: the same body without hidden tests and
    /// answer keys.
    #[must_use]
    pub fn learner_view(&self) -> Self {
        match self {
            Self::Lesson(_) | Self::LiveClassroom(_) => self.clone(),
            Self::Quiz(quiz) => {
                let questions = quiz
                    .questions
                    .iter()
                    .map(|question| {
                        let mut question = question.clone();
                        match &mut question {
                            Question::SingleChoice { answer, .. } => *answer = None,
                            Question::MultipleChoice { answers, .. } => *answers = None,
                            Question::ShortAnswer { accepted, .. } => *accepted = None,
                            Question::Code { hidden_tests, .. } => hidden_tests.clear(),
                        }
                        question
                    })
                    .collect();
                Self::Quiz(Quiz {
                    questions,
                    settings: quiz.settings.clone(),
                })
            }
            Self::Assignment(assignment) => Self::Assignment(Assignment {
                hidden_tests: Vec::new(),
                reference_solution: Vec::new(),
                ..assignment.clone()
            }),
        }
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`ContentError::Corrupt`] if it cannot be serialised (it always can).
    pub fn to_json(&self) -> Result<serde_json::Value, ContentError> {
        serde_json::to_value(self).map_err(|err| ContentError::Corrupt(format!("body: {err}")))
    }
}

fn check_language(field: &str, language: &str) -> Result<(), ContentError> {
    let ok = !language.is_empty()
        && language.len() <= LANGUAGE_BYTES_MAX
        && language
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+#-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {language:?} must be 1 to {LANGUAGE_BYTES_MAX} bytes of a-z, 0-9 and +#-_."
        )))
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ContentError> {
    if name.trim().is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(invalid(format!(
            "{field} must be 1 to {NAME_BYTES_MAX} bytes, not blank"
        )));
    }
    Ok(())
}

fn check_tests_count(field: &str, count: usize, limits: &Limits) -> Result<(), ContentError> {
    let max = usize::try_from(limits.assignment_tests_max).unwrap_or(usize::MAX);
    if count == 0 {
        return Err(invalid(format!("{field}: at least one test is needed")));
    }
    if count > max {
        return Err(invalid(format!(
            "{field}: {count} tests, more than {max} (control_plane.content_assignment_tests_max)"
        )));
    }
    Ok(())
}

fn check_tests(field: &str, tests: &[TestCase]) -> Result<(), ContentError> {
    for (i, test) in tests.iter().enumerate() {
        check_name(&format!("{field}[{i}].name"), &test.name)?;
    }
    Ok(())
}

fn check_choices(field: &str, choices: &[String]) -> Result<(), ContentError> {
    if !(2..=CHOICES_MAX).contains(&choices.len()) {
        return Err(invalid(format!(
            "{field}.choices: 2 to {CHOICES_MAX} choices are needed, not {}",
            choices.len()
        )));
    }
    if choices.iter().any(|c| c.trim().is_empty()) {
        return Err(invalid(format!("{field}.choices: a choice is blank")));
    }
    Ok(())
}

fn check_choice_index(field: &str, index: u32, choices: &[String]) -> Result<(), ContentError> {
    if usize::try_from(index).map_or(true, |i| i >= choices.len()) {
        return Err(invalid(format!(
            "{field}: choice {index} is out of range ({} choices)",
            choices.len()
        )));
    }
    Ok(())
}

fn validate_quiz(quiz: &Quiz, limits: &Limits) -> Result<(), ContentError> {
    let max = usize::try_from(limits.quiz_questions_max).unwrap_or(usize::MAX);
    let count = quiz.questions.len();
    if count == 0 || count > max {
        return Err(invalid(format!(
            "questions: 1 to {max} questions are allowed, not {count} (control_plane.content_quiz_questions_max)"
        )));
    }
    if let Some(attempts) = quiz.settings.attempts_max {
        if !(1..=ATTEMPTS_MAX).contains(&attempts) {
            return Err(invalid(format!(
                "settings.attempts_max must be 1 to {ATTEMPTS_MAX}, not {attempts}"
            )));
        }
    }
    if let Some(seconds) = quiz.settings.time_limit_s {
        if !(1..=TIME_LIMIT_S_MAX).contains(&seconds) {
            return Err(invalid(format!(
                "settings.time_limit_s must be 1 to {TIME_LIMIT_S_MAX}, not {seconds}"
            )));
        }
    }
    let mut ids = std::collections::HashSet::new();
    for (i, question) in quiz.questions.iter().enumerate() {
        let field = format!("questions[{i}]");
        let (id, prompt) = match question {
            Question::SingleChoice { id, prompt, .. }
            | Question::MultipleChoice { id, prompt, .. }
            | Question::ShortAnswer { id, prompt, .. }
            | Question::Code { id, prompt, .. } => (id, prompt),
        };
        check_name(&format!("{field}.id"), id)?;
        if !ids.insert(id.as_str()) {
            return Err(invalid(format!("{field}.id {id:?} is used twice")));
        }
        if prompt.trim().is_empty() {
            return Err(invalid(format!("{field}.prompt must not be blank")));
        }
        match question {
            Question::SingleChoice {
                choices, answer, ..
            } => {
                check_choices(&field, choices)?;
                let answer = answer.ok_or_else(|| invalid(format!("{field}.answer is missing")))?;
                check_choice_index(&format!("{field}.answer"), answer, choices)?;
            }
            Question::MultipleChoice {
                choices, answers, ..
            } => {
                check_choices(&field, choices)?;
                let answers = answers
                    .as_ref()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| invalid(format!("{field}.answers: at least one is needed")))?;
                let mut seen = std::collections::HashSet::new();
                for &answer in answers {
                    check_choice_index(&format!("{field}.answers"), answer, choices)?;
                    if !seen.insert(answer) {
                        return Err(invalid(format!(
                            "{field}.answers: choice {answer} is listed twice"
                        )));
                    }
                }
            }
            Question::ShortAnswer { accepted, .. } => {
                let accepted = accepted
                    .as_ref()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| invalid(format!("{field}.accepted: at least one is needed")))?;
                if accepted.iter().any(|a| a.trim().is_empty()) {
                    return Err(invalid(format!("{field}.accepted: an answer is blank")));
                }
            }
            Question::Code {
                language,
                tests,
                hidden_tests,
                ..
            } => {
                check_language(&format!("{field}.language"), language)?;
                check_tests_count(&field, tests.len() + hidden_tests.len(), limits)?;
                check_tests(&format!("{field}.tests"), tests)?;
                check_tests(&format!("{field}.hidden_tests"), hidden_tests)?;
            }
        }
    }
    Ok(())
}

/// File names of a file list: no path separators, no `.`/`..`, no repeats.
fn check_files(field: &str, files: &[StarterFile]) -> Result<(), ContentError> {
    let mut names = std::collections::HashSet::new();
    for (i, file) in files.iter().enumerate() {
        let name = file.name.as_str();
        let ok = !name.is_empty()
            && name.len() <= NAME_BYTES_MAX
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\', '\0']);
        if !ok {
            return Err(invalid(format!(
                "{field}[{i}].name {name:?} must be 1 to {NAME_BYTES_MAX} bytes with no path separators"
            )));
        }
        if !names.insert(name) {
            return Err(invalid(format!("{field}[{i}].name {name:?} is used twice")));
        }
    }
    Ok(())
}

fn validate_assignment(assignment: &Assignment, limits: &Limits) -> Result<(), ContentError> {
    check_language("language", &assignment.language)?;
    check_files("starter_files", &assignment.starter_files)?;
    check_files("reference_solution", &assignment.reference_solution)?;
    check_tests_count(
        "tests",
        assignment.visible_tests.len() + assignment.hidden_tests.len(),
        limits,
    )?;
    check_tests("visible_tests", &assignment.visible_tests)?;
    check_tests("hidden_tests", &assignment.hidden_tests)?;
    if let Some(wall_ms) = assignment.limits.wall_ms {
        if !(1..=WALL_MS_MAX).contains(&wall_ms) {
            return Err(invalid(format!(
                "limits.wall_ms must be 1 to {WALL_MS_MAX}, not {wall_ms}"
            )));
        }
    }
    if let Some(memory_mb) = assignment.limits.memory_mb {
        if !(1..=MEMORY_MB_MAX).contains(&memory_mb) {
            return Err(invalid(format!(
                "limits.memory_mb must be 1 to {MEMORY_MB_MAX}, not {memory_mb}"
            )));
        }
    }
    Ok(())
}

/// Checks an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`),
/// with real calendar days; leap seconds (`:60`) are accepted as RFC 3339
/// allows.
///
/// # Errors
/// [`ContentError::Invalid`] naming the field.
pub fn check_rfc3339(field: &str, text: &str) -> Result<(), ContentError> {
    if rfc3339_unix_ms(text).is_some() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {text:?} is not an RFC 3339 date-time such as 2026-12-01T17:00:00Z"
        )))
    }
}

/// The unix milliseconds of an RFC 3339 date-time (as [`check_rfc3339`]
/// accepts it; a leap second counts as the next second), or `None`.
pub fn rfc3339_unix_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0_i64;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && sep(i + 3, b":") => {
            let (oh, om) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use crate::content::body::rfc3339_unix_ms as parse_rfc3339;

    #[test]
    fn rfc3339_dates_convert_to_unix_ms() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-12-01T17:00:00Z", 1_796_144_400_000),
            ("2026-12-01T18:30:00.25+01:30", 1_796_144_400_250),
            ("2000-02-29T00:00:00.123456-00:30", 951_784_200_123),
            ("1969-12-31T23:59:59.9Z", -100),
        ] {
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn rfc3339_dates_are_checked() {
        for ok in [
            "2026-12-01T17:00:00Z",
            "2024-02-29T00:00:00.123+05:30",
            "2026-06-30t23:59:60-00:00",
        ] {
            assert!(parse_rfc3339(ok).is_some(), "{ok}");
        }
        for bad in [
            "2026-12-01",
            "2026-12-01T17:00:00",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T17:00:00.Z",
            "2026-12-01T17:00:00+0530",
            "2026-12-01T17:00:00Zjunk",
            "2026-12-01T17:00:00+24:00",
            "२०२६-12-01T17:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }
}
