//! Grading a quiz attempt against the published version's answer keys,
//! on the control plane (the keys never leave it). Choice and short-answer
//! questions are compared here; a code question is answered with the id of
//! a submission the learner made against this quiz unit for that very
//! question, and counts as right when that submission was accepted (the
//! edge ran it against that question's tests; one accepted answer cannot
//! stand for another question). Every question weighs the same; the score is the share right,
//! rounded down, 0 to 100.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::LearningError;
use crate::content::body::{Question, Quiz};

/// Longest short answer accepted, in bytes.
pub const SHORT_ANSWER_BYTES_MAX: usize = 1_000;

/// Body of `POST /api/v1/units/{id}/attempts`: an answer per question id.
/// A question left out counts as wrong.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuizAnswers {
    /// Question id → answer: a choice index (single choice), a list of
    /// indexes (multiple choice), a text (short answer) or
    /// `{"submission_id": "..."}` (code).
    pub answers: BTreeMap<String, serde_json::Value>,
}

/// How an attempt scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graded {
    /// Questions answered right.
    pub correct: u32,
    /// Questions in the quiz.
    pub total: u32,
    /// `correct * 100 / total`, rounded down.
    pub score: i64,
}

fn question_id(question: &Question) -> &str {
    match question {
        Question::SingleChoice { id, .. }
        | Question::MultipleChoice { id, .. }
        | Question::ShortAnswer { id, .. }
        | Question::Code { id, .. } => id,
    }
}

fn code_answer(field: &str, answer: &serde_json::Value) -> Result<String, LearningError> {
    answer
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("submission_id"))
        .and_then(serde_json::Value::as_str)
        .filter(|id| super::model::check_id(field, id).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            LearningError::Invalid(format!(
                "{field} must be {{\"submission_id\": \"...\"}} for a code question"
            ))
        })
}

/// A code question's answer: the submission it cites.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeAnswer {
    /// The code question answered.
    pub question_id: String,
    /// The submission cited, to be looked up for that question.
    pub submission_id: String,
}

/// Checks that every answer names a question of `quiz` and has its
/// question's shape, and returns the code answers (to be looked up before
/// [`grade`]).
///
/// # Errors
/// [`LearningError::Invalid`] naming the answer.
pub fn check(quiz: &Quiz, answers: &QuizAnswers) -> Result<Vec<CodeAnswer>, LearningError> {
    let questions: BTreeMap<&str, &Question> =
        quiz.questions.iter().map(|q| (question_id(q), q)).collect();
    let mut submissions = Vec::new();
    for (id, answer) in &answers.answers {
        let field = format!("answers.{}", id.chars().take(64).collect::<String>());
        let question = questions.get(id.as_str()).ok_or_else(|| {
            LearningError::Invalid(format!("{field}: the quiz has no such question"))
        })?;
        let ok = match question {
            Question::SingleChoice { .. } => answer.as_u64().is_some(),
            Question::MultipleChoice { choices, .. } => answer.as_array().is_some_and(|a| {
                a.len() <= choices.len() && a.iter().all(|v| v.as_u64().is_some())
            }),
            Question::ShortAnswer { .. } => answer
                .as_str()
                .is_some_and(|text| text.len() <= SHORT_ANSWER_BYTES_MAX),
            Question::Code { .. } => {
                submissions.push(CodeAnswer {
                    question_id: id.clone(),
                    submission_id: code_answer(&field, answer)?,
                });
                true
            }
        };
        if !ok {
            return Err(LearningError::Invalid(format!(
                "{field} has the wrong shape: a choice index, a list of indexes, a text of at \
                 most {SHORT_ANSWER_BYTES_MAX} bytes or {{\"submission_id\"}}, by question type"
            )));
        }
    }
    Ok(submissions)
}

/// Grades checked answers; `accepted` holds the code answers whose
/// submission (of this learner, against this quiz, for that question) was
/// accepted.
pub fn grade(quiz: &Quiz, answers: &QuizAnswers, accepted: &HashSet<CodeAnswer>) -> Graded {
    let mut correct = 0_u32;
    for question in &quiz.questions {
        let Some(answer) = answers.answers.get(question_id(question)) else {
            continue;
        };
        let right = match question {
            Question::SingleChoice { answer: key, .. } => {
                key.is_some_and(|key| answer.as_u64() == Some(u64::from(key)))
            }
            Question::MultipleChoice { answers: key, .. } => {
                let given: HashSet<u64> = answer
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                    .unwrap_or_default();
                key.as_ref().is_some_and(|key| {
                    let want: HashSet<u64> = key.iter().map(|&k| u64::from(k)).collect();
                    given == want
                })
            }
            Question::ShortAnswer {
                accepted: key,
                case_sensitive,
                ..
            } => {
                let given = answer.as_str().unwrap_or_default().trim();
                key.as_ref().is_some_and(|key| {
                    key.iter().any(|want| {
                        if *case_sensitive {
                            want.trim() == given
                        } else {
                            want.trim().to_lowercase() == given.to_lowercase()
                        }
                    })
                })
            }
            Question::Code { id: question, .. } => answer
                .get("submission_id")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|id| {
                    accepted.contains(&CodeAnswer {
                        question_id: question.clone(),
                        submission_id: id.to_owned(),
                    })
                }),
        };
        correct += u32::from(right);
    }
    let total = u32::try_from(quiz.questions.len()).unwrap_or(u32::MAX);
    let score = if total == 0 {
        0
    } else {
        i64::from(correct) * 100 / i64::from(total)
    };
    Graded {
        correct,
        total,
        score,
    }
}

#[cfg(test)]
mod tests {
    use crate::learning::quiz::*;
    use serde_json::json;

    fn quiz() -> Quiz {
        serde_json::from_value(json!({"questions": [
            {"type": "single_choice", "id": "q1", "prompt": "?", "choices": ["a", "b"], "answer": 1},
            {"type": "multiple_choice", "id": "q2", "prompt": "?", "choices": ["a", "b", "c"], "answers": [0, 2]},
            {"type": "short_answer", "id": "q3", "prompt": "?", "accepted": ["Paris"]},
            {"type": "code", "id": "q4", "prompt": "?", "language": "python",
             "tests": [{"name": "t", "expected_stdout": "x"}]}
        ]}))
        .expect("quiz")
    }

    fn check_grade(answers: serde_json::Value, accepted: &[&str], expected: (u32, i64)) {
        let answers: QuizAnswers =
            serde_json::from_value(json!({ "answers": answers })).expect("answers");
        let quiz = quiz();
        check(&quiz, &answers).expect("well formed");
        let accepted = accepted
            .iter()
            .map(|s| CodeAnswer {
                question_id: "q4".into(),
                submission_id: (*s).to_owned(),
            })
            .collect();
        let graded = grade(&quiz, &answers, &accepted);
        assert_eq!((graded.correct, graded.score), expected, "{answers:?}");
        assert_eq!(graded.total, 4);
    }

    #[test]
    fn attempts_are_graded_against_the_keys() {
        check_grade(json!({}), &[], (0, 0));
        check_grade(
            json!({"q1": 1, "q2": [2, 0], "q3": " paris ", "q4": {"submission_id": "s1"}}),
            &["s1"],
            (4, 100),
        );
        check_grade(
            json!({"q1": 0, "q2": [0], "q3": "Lyon", "q4": {"submission_id": "s2"}}),
            &["s1"],
            (0, 0),
        );
        check_grade(json!({"q1": 1, "q3": "PARIS"}), &[], (2, 50));
        check_grade(json!({"q2": [0, 1, 2]}), &[], (0, 0));
    }

    /// One accepted submission answers the question it was graded for,
    /// not every code question of the quiz.
    #[test]
    fn a_submission_answers_only_its_own_question() {
        let quiz: Quiz = serde_json::from_value(json!({"questions": [
            {"type": "code", "id": "easy", "prompt": "?", "language": "python",
             "tests": [{"name": "t", "expected_stdout": "x"}]},
            {"type": "code", "id": "hard", "prompt": "?", "language": "python",
             "tests": [{"name": "t", "expected_stdout": "y"}]}
        ]}))
        .expect("quiz");
        let answers: QuizAnswers = serde_json::from_value(json!({"answers": {
            "easy": {"submission_id": "s1"}, "hard": {"submission_id": "s1"}
        }}))
        .expect("answers");
        let cited = check(&quiz, &answers).expect("well formed");
        assert_eq!(cited.len(), 2);
        let accepted: HashSet<CodeAnswer> = [CodeAnswer {
            question_id: "easy".into(),
            submission_id: "s1".into(),
        }]
        .into();
        let graded = grade(&quiz, &answers, &accepted);
        assert_eq!((graded.correct, graded.total, graded.score), (1, 2, 50));
    }

    #[test]
    fn malformed_answers_are_refused() {
        let quiz = quiz();
        for bad in [
            json!({"nope": 1}),
            json!({"q1": "b"}),
            json!({"q1": -1}),
            json!({"q2": 0}),
            json!({"q2": [0, 1, 2, 0]}),
            json!({"q3": 3}),
            json!({"q3": "x".repeat(SHORT_ANSWER_BYTES_MAX + 1)}),
            json!({"q4": "s1"}),
            json!({"q4": {"submission_id": ""}}),
            json!({"q4": {"submission_id": "s1", "more": 1}}),
        ] {
            let answers: QuizAnswers =
                serde_json::from_value(json!({ "answers": bad })).expect("answers");
            assert!(
                matches!(check(&quiz, &answers), Err(LearningError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
