//! Bad requests are refused before any container is touched.

use sandbox::run::{SourceFile, TestCase};
use sandbox::SandboxError;

use crate::support::{request, sandbox};

fn bad_name(name: &str) -> String {
    format!(
        "BadFileName: bad file name {name:?}: a file name is 1 to 255 bytes, \
         with no '/', '\\' or NUL, and does not start with '.'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_with_a_reason() {
    let _machine = crate::support::machine_shared().await;
    let sb = sandbox(&["python"], |c| {
        c.pool_target = 0;
        c.source_bytes_max = 1_000;
    })
    .await;
    let check = |req: sandbox::RunRequest, expected: &str| {
        let got = sb.validate(&req).map(|_| ()).map_err(|err| match err {
            SandboxError::Rejected { refusal, message } => format!("{refusal:?}: {message}"),
            other => format!("not a rejection: {other}"),
        });
        assert_eq!(got, Err(expected.to_owned()));
    };
    check(
        request("cobol", "x"),
        "UnknownLanguage: unknown language \"cobol\"",
    );
    let mut two = request("python", "x");
    two.files.push(SourceFile {
        name: "../escape.py".into(),
        content: String::new(),
    });
    check(two, &bad_name("../escape.py"));
    let mut hidden = request("python", "x");
    hidden.files.push(SourceFile {
        name: ".bashrc".into(),
        content: String::new(),
    });
    check(hidden, &bad_name(".bashrc"));
    // The entry file's name is replaced by the language's, but a name
    // given for it must still be a plain one.
    for name in [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b.py",
        "..",
        "a\\b.py",
    ] {
        let mut entry = request("python", "x");
        entry.files[0].name = name.into();
        check(entry, &bad_name(name));
    }
    let mut unnamed = request("python", "x");
    unnamed.files[0].name = String::new();
    assert!(
        sb.validate(&unnamed).is_ok(),
        "an unnamed entry file runs as main"
    );
    let mut twice = request("python", "x");
    twice.files.push(SourceFile {
        name: "main.py".into(),
        content: String::new(),
    });
    check(
        twice,
        "BadFileName: file name \"main.py\" is used twice (the entry file is \"main.py\")",
    );
    let mut none = request("python", "x");
    none.files.clear();
    check(none, "BadRequest: files must hold at least the entry file");
    // At the byte limit it passes, one over it does not.
    let at_limit = request("python", &"#".repeat(1_000));
    assert!(sb.validate(&at_limit).is_ok());
    check(
        request("python", &"#".repeat(1_001)),
        "BadRequest: files and inputs are limited to 1000 bytes (sandbox.source_bytes_max)",
    );
    let mut zero = request("python", "x");
    zero.limits.wall_ms = Some(0);
    check(
        zero,
        "BadRequest: limits.wall_ms must be 1 to 10000 (sandbox.wall_ms_max)",
    );
    let mut long = request("python", "x");
    long.limits.wall_ms = Some(10_001);
    check(
        long,
        "BadRequest: limits.wall_ms must be 1 to 10000 (sandbox.wall_ms_max)",
    );
    let mut big = request("python", "x");
    big.limits.memory_mb = Some(100_000);
    check(
        big,
        "BadRequest: limits.memory_mb must be 16 to 256 (sandbox.memory_mb)",
    );
    let mut nan = request("python", "x");
    nan.tests.push(TestCase {
        name: "t".into(),
        stdin: String::new(),
        expected_stdout: String::new(),
        compare: sandbox::compare::Compare::Float,
        tolerance: Some(f64::NAN),
    });
    check(
        nan,
        "BadRequest: test \"t\": tolerance must be a finite number >= 0",
    );
    sb.shutdown().await;
}
