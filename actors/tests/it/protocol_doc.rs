//! The live protocol's docs say what the code does. `docs/live-protocol.md`
//! lists exactly the codes a live error frame or close can carry: the
//! variants of `LiveErrorCode`, which every refusal is made with, so the doc
//! cannot promise a code the code never sends or miss one it does. (That
//! `docs/live-protocol.schema.json` is the schema the frame types derive is
//! checked in `node`, which adds the edge's `media` frames to this crate's.)

use std::collections::BTreeSet;

use actors::live::protocol::LiveErrorCode;

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
        C::UnknownUser => 24,
    }
}

#[test]
fn each_live_code_is_listed_once_and_reads_the_same_on_the_wire() {
    assert_eq!(LiveErrorCode::ALL.len(), 25);
    for (i, code) in LiveErrorCode::ALL.iter().enumerate() {
        assert_eq!(position(*code), i, "{code:?}");
        assert_eq!(
            serde_json::to_value(code).expect("json"),
            serde_json::json!(code.as_str())
        );
    }
}
