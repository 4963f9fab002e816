//! `lyceum run FILE`: the sandbox from the command line, on the real engine.

use crate::support::lyceum;

#[test]
fn lyceum_run_reports_verdicts_and_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("double.py");
    std::fs::write(&file, "print(int(input()) * 2)\n").expect("write");
    std::fs::write(dir.path().join("in.txt"), "21\n").expect("write");
    std::fs::write(
        dir.path().join("tests.json"),
        r#"[{"name": "ok", "stdin": "4", "expected_stdout": "8"},
            {"name": "off", "stdin": "5", "expected_stdout": "11"}]"#,
    )
    .expect("write");
    let run = |args: &[&str]| {
        let output = lyceum()
            .args(["--log-filter", "warn", "run"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run lyceum");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["double.py", "--stdin", "in.txt"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("accepted:"), "{stdout}");
    assert!(stdout.contains("\n42\n"), "{stdout}");

    let (code, stdout, stderr) = run(&["double.py", "--tests", "tests.json", "--json"]);
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(result["status"], "wrong_answer");
    assert_eq!(result["tests"][0]["status"], "accepted");
    assert_eq!(result["tests"][1]["status"], "wrong_answer");

    std::fs::write(dir.path().join("prog.xyz"), "x").expect("write");
    let (code, _, stderr) = run(&["prog.xyz"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("pass --lang"), "{stderr}");
}
