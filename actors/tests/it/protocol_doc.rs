//! The live protocol's docs say what the code does. `docs/live-protocol.md`
//! lists exactly the codes a live error frame or close can carry: the
//! variants of `LiveErrorCode`, which every refusal is made with, so the doc
//! cannot promise a code the code never sends or miss one it does. And
//! `docs/live-protocol.schema.json` is exactly the schema the frame types
//! derive, so it cannot drift from them.

use std::collections::BTreeSet;

use actors::live::protocol::{self, LiveErrorCode};

/// The committed schema is the derived one. After changing a frame type,
/// rewrite it with `UPDATE_EXPECT=1 cargo test -p actors --test it
/// protocol_doc` (the variable expect-test uses elsewhere) and commit the
/// file with the change. A failure names the first line that differs
/// rather than printing both 1,500-line documents.
#[test]
fn the_committed_schema_is_the_one_the_types_derive() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/live-protocol.schema.json");
    let derived = protocol::schema_document();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &derived).expect("write docs/live-protocol.schema.json");
    }
    let committed = std::fs::read_to_string(&path).expect("docs/live-protocol.schema.json");
    if committed == derived {
        return;
    }
    let (was, now): (Vec<&str>, Vec<&str>) =
        (committed.lines().collect(), derived.lines().collect());
    let difference = (0..was.len().max(now.len()))
        .find(|&i| was.get(i) != now.get(i))
        .map_or_else(
            || "only the line endings differ".to_owned(),
            |i| {
                let end = "<end of file>";
                format!(
                    "line {}: committed {:?}, derived {:?}",
                    i + 1,
                    was.get(i).unwrap_or(&end),
                    now.get(i).unwrap_or(&end)
                )
            },
        );
    panic!(
        "docs/live-protocol.schema.json is not the schema the protocol types derive ({difference}); \
         rewrite it with `UPDATE_EXPECT=1 cargo test -p actors --test it protocol_doc` \
         and commit it"
    );
}

/// The backticked codes of the "Errors and closes" section's tables: the
/// first column of the error codes, the reason column of the closes.
fn documented_codes(doc: &str) -> BTreeSet<String> {
    let section = doc
        .split("\n## ")
        .find(|part| part.starts_with("Errors and closes"))
        .expect("an Errors and closes section");
    let mut codes = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // A close row starts with a number: its codes are in the reason.
        let cell = if cells[1].chars().all(|c| c.is_ascii_digit()) {
            cells[2]
        } else {
            cells[1]
        };
        for piece in cell.split('`').skip(1).step_by(2) {
            if piece.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !piece.is_empty() {
                codes.insert(piece.to_owned());
            }
        }
    }
    codes
}

#[test]
fn the_protocol_doc_lists_exactly_the_live_error_codes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/live-protocol.md");
    let doc = std::fs::read_to_string(&path).expect("docs/live-protocol.md");
    let documented = documented_codes(&doc);
    let produced: BTreeSet<String> = LiveErrorCode::ALL
        .iter()
        .map(|code| code.as_str().to_owned())
        .collect();
    assert_eq!(
        documented.difference(&produced).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented but never sent"
    );
    assert_eq!(
        produced.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "sent but not documented"
    );
}

/// Where a code sits in `LiveErrorCode::ALL`; a new variant does not
/// compile here until it is placed, so `ALL` (and with it the doc check
/// above) cannot miss one.
fn position(code: LiveErrorCode) -> usize {
    use LiveErrorCode as C;
    match code {
        C::BadMessage => 0,
        C::UnknownType => 1,
        C::MessageTooLarge => 2,
        C::RateLimited => 3,
        C::NotEnrolled => 4,
        C::Forbidden => 5,
        C::UnknownAssignment => 6,
        C::UnknownLanguage => 7,
        C::SubmissionInProgress => 8,
        C::SandboxUnavailable => 9,
        C::OutboxFull => 10,
        C::BadGroup => 11,
        C::TooManyAssignments => 12,
        C::ClassEnded => 13,
        C::AlreadyJoined => 14,
        C::JoinRequired => 15,
        C::Unauthenticated => 16,
        C::JoinTimeout => 17,
        C::SlowConsumer => 18,
        C::ClassMoved => 19,
        C::TooManySessions => 20,
        C::ClassUnavailable => 21,
        C::TooManyClasses => 22,
        C::ClassFull => 23,
    }
}

#[test]
fn each_live_code_is_listed_once_and_reads_the_same_on_the_wire() {
    assert_eq!(LiveErrorCode::ALL.len(), 24);
    for (i, code) in LiveErrorCode::ALL.iter().enumerate() {
        assert_eq!(position(*code), i, "{code:?}");
        assert_eq!(
            serde_json::to_value(code).expect("json"),
            serde_json::json!(code.as_str())
        );
    }
}
