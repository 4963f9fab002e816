//! Graded submissions against a real dev cluster: a learner's files run on
//! an edge against the unit's visible and hidden tests, the hidden ones
//! never come back, the control plane counts the submission for the unit's
//! version before the answer returns, and the path opens what follows.
//! A quiz's code question is graded the same way and its submission is the
//! question's answer.

use serde_json::{json, Value};

use crate::live_class::{post, start_cluster};
use crate::support::{client, get_json};

/// The learner's progress entry for `unit` in `course`.
async fn progress_of(cp: &str, token: &str, course: &str, unit: &str) -> Value {
    let (status, progress) = get_json(
        &format!("{cp}/api/v1/me/progress?course_id={course}"),
        Some(token),
    )
    .await
    .expect("progress");
    assert_eq!(status, 200, "{progress}");
    progress["units"]
        .as_array()
        .or_else(|| progress["items"].as_array())
        .expect("units")
        .iter()
        .find(|u| u["unit_id"] == unit)
        .cloned()
        .unwrap_or_else(|| panic!("no progress for {unit}: {progress}"))
}

/// Units open to the learner now.
async fn frontier(cp: &str, token: &str) -> Vec<String> {
    let (status, page) = get_json(&format!("{cp}/api/v1/paths/frontier"), Some(token))
        .await
        .expect("frontier");
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["unit_id"].as_str().expect("unit_id").to_owned())
        .collect()
}

fn main_py(code: &str) -> Value {
    json!({"files": [{"name": "main.py", "content": code}]})
}

/// Every name, input and expected output of the unit's hidden tests.
fn secrets(tests: &Value) -> Vec<String> {
    tests
        .as_array()
        .expect("hidden tests")
        .iter()
        .flat_map(|t| {
            ["name", "stdin", "expected_stdout"].map(|k| t[k].as_str().map(str::to_owned))
        })
        .flatten()
        .filter(|s| s.len() > 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_graded_with_hidden_tests_and_open_the_path() {
    let cluster = start_cluster(&[]).await;
    let (course, assignment) = cluster.demo_unit("assignment").await;
    let (_, live) = cluster.demo_unit("live_classroom").await;
    let (_, quiz) = cluster.demo_unit("quiz").await;
    let (_, lesson) = cluster.demo_unit("lesson").await;
    let learner = cluster.learner("grace@graded.test", &course).await;
    let edge = cluster.edge("us-east");
    let submit = |unit: &str| format!("{edge}/api/v1/units/{unit}/submissions");

    // What the learner must never see: the hidden tests, as an author reads them.
    let instructor = cluster.token("instructor");
    let (status, whole) = get_json(
        &format!("{}/api/v1/units/{assignment}?view=published", cluster.cp),
        Some(&instructor),
    )
    .await
    .expect("published view");
    assert_eq!(status, 200, "{whole}");
    let hidden = secrets(&whole["body"]["hidden_tests"]);
    assert!(!hidden.is_empty(), "{whole}");
    let leaks = |what: &str, body: &Value| {
        let text = body.to_string();
        for secret in &hidden {
            assert!(
                !text.contains(&format!("\"{secret}")),
                "{what} leaks hidden test text {secret:?}: {text}"
            );
        }
    };

    // The path: lesson, then quiz (at least 70), then assignment, then the
    // live class. The lesson is read to the end first.
    let read = client()
        .put(format!("{}/api/v1/units/{lesson}/progress", cluster.cp))
        .bearer_auth(&learner)
        .json(&json!({"seconds_on_page": 30, "scroll_depth": 1.0}))
        .send()
        .await
        .expect("lesson progress");
    assert_eq!(read.status().as_u16(), 200);

    // The quiz first (the assignment's prerequisite, at 70): its code
    // question is graded the same way, and its accepted submission is the
    // question's answer.
    let q4 =
        |code: &str| json!({"question_id": "q4", "files": [{"name": "main.py", "content": code}]});
    let (status, code_answer) = post(
        &submit(&quiz),
        &learner,
        &q4("a, b = map(int, input().split())\nprint(a + b)"),
    )
    .await;
    assert_eq!(status, 201, "{code_answer}");
    assert_eq!(
        (
            &code_answer["status"],
            &code_answer["question_id"],
            &code_answer["hidden_tests"]
        ),
        (&json!("accepted"), &json!("q4"), &json!(1)),
        "{code_answer}"
    );
    let (status, attempt) = post(
        &format!("{}/api/v1/units/{quiz}/attempts", cluster.cp),
        &learner,
        &json!({"answers": {"q1": 1, "q2": [0, 2], "q3": "input",
                            "q4": {"submission_id": code_answer["id"]}}}),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {attempt}");
    assert_eq!(attempt["score"], 100, "{attempt}");

    // Passing the visible test only is not enough: a hidden one fails.
    let (status, wrong) = post(
        &submit(&assignment),
        &learner,
        &main_py("n = int(input())\nprint(42 if n == 21 else n)"),
    )
    .await;
    assert_eq!(status, 201, "{wrong}");
    assert_eq!(wrong["status"], "wrong_answer", "{wrong}");
    assert_eq!(wrong["tests"][0]["status"], "accepted", "{wrong}");
    assert_eq!(wrong["tests"][0]["name"], "twenty-one", "{wrong}");
    assert_eq!(wrong["hidden_tests"], 2, "{wrong}");
    assert_eq!(wrong["tests"][2]["name"], "hidden 2", "{wrong}");
    assert_eq!(wrong["tests"][2]["status"], "wrong_answer", "{wrong}");
    assert_eq!(
        (wrong["unit_id"].as_str(), &wrong["unit_version"]),
        (Some(assignment.as_str()), &json!(1)),
        "{wrong}"
    );
    assert_eq!(wrong["recorded"], true, "{wrong}");
    leaks("a failed submission", &wrong);
    let stored_url = format!("{edge}/api/v1/runs/{}", wrong["id"].as_str().expect("id"));
    let (status, stored) = get_json(&stored_url, Some(&learner)).await.expect("run");
    assert_eq!(status, 200, "{stored}");
    leaks("the stored run", &stored);
    let seen = progress_of(&cluster.cp, &learner, &course, &assignment).await;
    assert_eq!(seen["completed"], false, "{seen}");
    assert!(!frontier(&cluster.cp, &learner).await.contains(&live));

    // The right program passes every test; the control plane has counted it
    // by the time the answer comes, and the live class opens.
    let (status, right) = post(
        &submit(&assignment),
        &learner,
        &main_py("print(int(input()) * 2)"),
    )
    .await;
    assert_eq!(status, 201, "{right}");
    assert_eq!(right["status"], "accepted", "{right}");
    assert_eq!(right["recorded"], true, "{right}");
    assert_eq!(right["region"], "us-east", "{right}");
    leaks("an accepted submission", &right);
    let seen = progress_of(&cluster.cp, &learner, &course, &assignment).await;
    assert_eq!(seen["completed"], true, "{seen}");
    assert!(
        frontier(&cluster.cp, &learner).await.contains(&live),
        "the live class opens once the assignment is accepted"
    );
    let (status, mine) = get_json(
        &format!("{}/api/v1/submissions", cluster.cp),
        Some(&learner),
    )
    .await
    .expect("submissions");
    assert_eq!(status, 200, "{mine}");
    let record = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["id"] == right["id"])
        .cloned()
        .expect("the accepted submission is recorded");
    assert_eq!(
        (
            &record["unit_id"],
            &record["unit_version"],
            &record["tests_passed"],
            &record["tests_total"]
        ),
        (&json!(assignment), &json!(1), &json!(3), &json!(3)),
        "{record}"
    );

    // Bad requests get clear errors, and nothing runs.
    let cases: Vec<(String, Option<&str>, Value, u16, &str)> = vec![
        (
            submit(&lesson),
            Some(&learner),
            main_py("print(1)"),
            400,
            "not_gradable",
        ),
        (
            submit(&quiz),
            Some(&learner),
            main_py("print(1)"),
            400,
            "bad_request",
        ),
        (
            submit(&quiz),
            Some(&learner),
            q4("print(1)")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("question_id".into(), json!("q1"));
                    Value::Object(o)
                })
                .expect("object"),
            400,
            "not_gradable",
        ),
        (
            submit(&assignment),
            Some(&learner),
            json!({"question_id": "q4", "files": []}),
            400,
            "bad_request",
        ),
        (
            submit("no-such-unit"),
            Some(&learner),
            main_py("print(1)"),
            404,
            "not_found",
        ),
        (
            submit("bad%20id"),
            Some(&learner),
            main_py("print(1)"),
            404,
            "not_found",
        ),
        (
            submit(&assignment),
            None,
            main_py("print(1)"),
            401,
            "unauthenticated",
        ),
        (
            submit(&assignment),
            Some(&learner),
            json!({"files": "main.py"}),
            400,
            "bad_request",
        ),
    ];
    for (url, token, body, want_status, want_code) in cases {
        let mut request = client().post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("submit");
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{url} {body}"
        );
    }
}
