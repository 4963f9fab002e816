//! Timetable imports through the real router on both engines, with real
//! files under `tests/fixtures/timetables/`: a school's iCalendar export
//! (TZID, RRULE with UNTIL and COUNT, EXDATE, RDATE, a UTC event, an
//! all-day event), a CSV with a recurrence and an exception, and the bad
//! inputs of issue 20 (100,000 occurrences, a rule without an end, an
//! unknown time zone or region, the wrong delimiter, not UTF-8, a billion
//! learners). Now is the control plane's clock, moved to 2031-08-25.

use axum::body::Body;
use axum::http::{Method, Request};
use control_plane::{ControlPlane, ControlPlaneConfig};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::content::{course, open, tenant, Api, Tenant};
use crate::databases::{Engine, ENGINES};

/// 2031-08-25T00:00:00Z, a week before the fixtures' term starts. The
/// clock is moved forward to it and runs on from there, so checks near it
/// leave room for the seconds a test takes.
const NOW_MS: i64 = 1_945_382_400_000;

const ICS: &str = "text/calendar";
const CSV: &str = "text/csv";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timetables")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Sends a raw body with its media type; answers status and JSON.
async fn send(
    router: &axum::Router,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some((media, bytes)) => {
            request = request.header("content-type", media);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

struct Setup {
    db: crate::databases::TestDb,
    cp: ControlPlane,
    api: Api,
    router: axum::Router,
    t: Tenant,
}

async fn setup(engine: Engine, edit: impl FnOnce(&mut ControlPlaneConfig)) -> Setup {
    let (db, cp, api) = open(engine, edit).await;
    cp.clock().advance_to(NOW_MS);
    let t = tenant(&cp, "school").await;
    let router = control_plane::http::router(cp.clone());
    Setup {
        db,
        cp,
        api,
        router,
        t,
    }
}

impl Setup {
    async fn import(&self, query: &str, media: &str, bytes: Vec<u8>) -> (u16, Value) {
        send(
            &self.router,
            Method::POST,
            &format!("/api/v1/timetables{query}"),
            &self.t.instructor,
            Some((media, bytes)),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        send(&self.router, Method::GET, path, &self.t.instructor, None).await
    }

    async fn done(self) {
        self.db.cleanup(vec![self.cp]).await;
    }
}

/// (uid, change, occurrences) of each event of an import's answer.
fn events(report: &Value) -> Vec<(String, String, u64)> {
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().expect("uid").to_owned(),
                e["change"].as_str().expect("change").to_owned(),
                e["occurrences"].as_u64().expect("occurrences"),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    rows.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), *c))
        .collect()
}

/// (uid, starts_at, local_starts_at) of a window of occurrences.
fn starts(answer: &Value) -> Vec<(String, String, String)> {
    answer["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .map(|o| {
            (
                o["uid"].as_str().expect("uid").to_owned(),
                o["starts_at"].as_str().expect("starts_at").to_owned(),
                o["local_starts_at"].as_str().expect("local").to_owned(),
            )
        })
        .collect()
}

/// (code, line, component, property) of each problem.
/// A problem as the tests compare it: code, line, component, property.
type Found = (String, Option<u64>, Option<String>, Option<String>);

fn problems(value: &Value) -> Vec<Found> {
    value
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["code"].as_str().expect("code").to_owned(),
                p["line"].as_u64(),
                p["component"].as_str().map(str::to_owned),
                p["property"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn note_codes(report: &Value) -> Vec<String> {
    report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n["code"].as_str().expect("code").to_owned())
        .collect()
}

const MONDAYS: &str = "nsi-monday-2031@lycee-hugo.example";
const TP: &str = "nsi-tp-2031@lycee-hugo.example";
const BAC: &str = "bac-blanc-2031@lycee-hugo.example";

#[tokio::test]
async fn a_school_calendar_imports_expands_and_reads_back() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (status, report) = s.import("", ICS, fixture("school.ics")).await;
        assert_eq!(status, 201, "{engine:?}: {report}");
        assert_eq!(report["name"], "Terminale NSI 2031-2032");
        assert_eq!(report["format"], "icalendar");
        // Mondays from 1 Sept until 20 Oct (8) less the EXDATE, plus the
        // RDATE; four TPs (COUNT); one UTC exam; the holiday is skipped.
        assert_eq!(
            events(&report),
            owned(&[
                (MONDAYS, "created", 8),
                (TP, "created", 4),
                (BAC, "created", 1)
            ])
        );
        assert_eq!(report["occurrences"], 13);
        assert_eq!(report["capped"], false);
        assert_eq!(note_codes(&report), ["all_day_skipped"]);
        assert_eq!(report["events"][1]["languages"], json!(["c", "python"]));
        assert_eq!(report["events"][1]["duration_minutes"], 90);
        // The clock moved to NOW_MS and runs on from there.
        assert!(
            report["expanded_from"]
                .as_str()
                .is_some_and(|t| t.starts_with("2031-08-25T00:0")),
            "{report}"
        );
        let id = report["timetable_id"].as_str().expect("id").to_owned();

        let week = s
            .get(&format!(
                "/api/v1/timetables/{id}/occurrences?from=2031-09-01T00:00:00Z&to=2031-09-08T00:00:00Z"
            ))
            .await;
        assert_eq!(week.0, 200, "{}", week.1);
        let row =
            |uid: &str, utc: &str, local: &str| (uid.to_owned(), utc.to_owned(), local.to_owned());
        assert_eq!(
            starts(&week.1),
            [
                row(MONDAYS, "2031-09-01T07:00:00Z", "2031-09-01T09:00:00+02:00"),
                row(MONDAYS, "2031-09-03T12:00:00Z", "2031-09-03T14:00:00+02:00"),
                row(TP, "2031-09-04T12:00:00Z", "2031-09-04T14:00:00+02:00"),
            ]
        );
        let first = &week.1["occurrences"][0];
        assert_eq!(first["time_zone"], "Europe/Paris");
        assert_eq!(first["ends_at"], "2031-09-01T09:00:00Z");
        assert_eq!(first["region"], "eu-west");
        assert_eq!(first["learners"], 32);
        // The EXDATE: no class on 15 September.
        let excluded = s
            .get(&format!(
                "/api/v1/timetables/{id}/occurrences?from=2031-09-15T00:00:00Z&to=2031-09-16T00:00:00Z"
            ))
            .await;
        assert_eq!(starts(&excluded.1), []);
        // The UTC exam keeps its UTC time.
        let exam = s
            .get(&format!(
                "/api/v1/timetables/{id}/occurrences?from=2031-10-08T00:00:00Z&to=2031-10-09T00:00:00Z"
            ))
            .await;
        assert_eq!(
            starts(&exam.1),
            [row(
                BAC,
                "2031-10-08T06:00:00Z",
                "2031-10-08T06:00:00+00:00"
            )]
        );

        // Importing the same file again changes nothing.
        let (status, again) = s.import("", ICS, fixture("school.ics")).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["timetable_id"], id.as_str());
        assert_eq!(
            events(&again),
            owned(&[
                (MONDAYS, "unchanged", 8),
                (TP, "unchanged", 4),
                (BAC, "unchanged", 1)
            ])
        );
        let list = s.get("/api/v1/timetables").await;
        assert_eq!(list.0, 200, "{}", list.1);
        let items = list.1["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["events"], 3);
        assert_eq!(items[0]["occurrences"], 13);
        s.done().await;
    }
}

#[tokio::test]
async fn a_changed_event_replaces_its_occurrences_and_a_missing_one_goes() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (status, first) = s.import("", ICS, fixture("school.ics")).await;
        assert_eq!(status, 201, "{first}");
        let id = first["timetable_id"].as_str().expect("id").to_owned();
        let text = String::from_utf8(fixture("school.ics")).expect("utf-8");
        // The TP moves to 16:00 and runs twice; the exam is gone.
        let changed = text
            .replace(
                "DTSTART;TZID=Europe/Paris:20310904T140000",
                "DTSTART;TZID=Europe/Paris:20310904T160000",
            )
            .replace("FREQ=WEEKLY;COUNT=4", "FREQ=WEEKLY;COUNT=2");
        let start = changed.find("BEGIN:VEVENT\r\nUID:bac-blanc").expect("exam");
        let end = start + changed[start..].find("END:VEVENT\r\n").expect("end") + 12;
        let changed = format!("{}{}", &changed[..start], &changed[end..]);
        let (status, second) = s.import("", ICS, changed.into_bytes()).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["timetable_id"], id.as_str());
        assert_eq!(
            events(&second),
            owned(&[(MONDAYS, "unchanged", 8), (TP, "updated", 2)])
        );
        assert_eq!(second["removed"], json!([BAC]));
        let all = s
            .get(&format!(
                "/api/v1/timetables/{id}/occurrences?from=2031-09-04T00:00:00Z&to=2031-12-31T00:00:00Z"
            ))
            .await;
        let tp: Vec<String> = starts(&all.1)
            .into_iter()
            .filter(|(uid, _, _)| uid == TP || uid == BAC)
            .map(|(_, utc, _)| utc)
            .collect();
        assert_eq!(tp, ["2031-09-04T14:00:00Z", "2031-09-11T14:00:00Z"]);
        let list = s.get("/api/v1/timetables").await;
        assert_eq!(list.1["items"][0]["occurrences"], 10);
        s.done().await;
    }
}

#[tokio::test]
async fn a_csv_with_a_recurrence_and_an_exception_imports_idempotently() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (status, report) = s
            .import("?name=Evening%20classes", CSV, fixture("classes.csv"))
            .await;
        assert_eq!(status, 201, "{engine:?}: {report}");
        assert_eq!(report["name"], "Evening classes");
        let rows = events(&report);
        // Six Tuesdays less the exception; the workshop once.
        assert_eq!(rows[0], ("java-evening".into(), "created".into(), 5));
        assert!(rows[1].0.starts_with("csv-"), "{rows:?}");
        assert_eq!(rows[1].2, 1);
        assert_eq!(report["events"][0]["place"], json!(null));
        assert_eq!(report["events"][0]["line"], 2);
        assert_eq!(
            report["events"][1]["languages"],
            json!(["javascript", "python"])
        );
        assert_eq!(report["events"][1]["duration_minutes"], 90);
        let id = report["timetable_id"].as_str().expect("id").to_owned();
        let window = s
            .get(&format!(
                "/api/v1/timetables/{id}/occurrences?from=2031-09-01T00:00:00Z&to=2031-09-24T00:00:00Z"
            ))
            .await;
        let row =
            |uid: &str, utc: &str, local: &str| (uid.to_owned(), utc.to_owned(), local.to_owned());
        assert_eq!(
            starts(&window.1),
            [
                row(
                    "java-evening",
                    "2031-09-02T22:30:00Z",
                    "2031-09-02T18:30:00-04:00"
                ),
                row(
                    &rows[1].0,
                    "2031-09-05T04:30:00Z",
                    "2031-09-05T10:00:00+05:30"
                ),
                row(
                    "java-evening",
                    "2031-09-09T22:30:00Z",
                    "2031-09-09T18:30:00-04:00"
                ),
                row(
                    "java-evening",
                    "2031-09-23T22:30:00Z",
                    "2031-09-23T18:30:00-04:00"
                ),
            ]
        );
        let (status, again) = s.import("", CSV, fixture("classes.csv")).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["timetable_id"], id.as_str());
        let unchanged: Vec<String> = events(&again).into_iter().map(|e| e.1).collect();
        assert_eq!(unchanged, ["unchanged", "unchanged"]);
        assert_eq!(events(&again)[1].0, rows[1].0);
        s.done().await;
    }
}

/// (fixture or inline body, media type, expected problems).
type BadFile = (
    &'static str,
    Vec<u8>,
    &'static str,
    Vec<(
        &'static str,
        Option<u64>,
        Option<&'static str>,
        Option<&'static str>,
    )>,
);

#[tokio::test]
async fn bad_files_are_refused_with_each_problem_named() {
    let cases: Vec<BadFile> = vec![
        (
            "unknown-zone.ics",
            fixture("unknown-zone.ics"),
            ICS,
            vec![("unknown_time_zone", None, Some("VEVENT #1 (UID mars-class)"), Some("DTSTART"))],
        ),
        (
            "billion-learners.ics",
            fixture("billion-learners.ics"),
            ICS,
            vec![("too_many_learners", None, Some("VEVENT #1 (UID stadium)"), Some("X-LYCEUM-LEARNERS"))],
        ),
        (
            "unknown-region.csv",
            fixture("unknown-region.csv"),
            CSV,
            vec![("unknown_region", Some(2), None, Some("region"))],
        ),
        (
            "semicolons.csv",
            fixture("semicolons.csv"),
            CSV,
            vec![("bad_delimiter", Some(1), None, None)],
        ),
        (
            "latin1.csv",
            fixture("latin1.csv"),
            CSV,
            vec![("bad_encoding", Some(2), None, Some("title"))],
        ),
        (
            "mixed.csv",
            fixture("mixed.csv"),
            CSV,
            vec![
                ("unknown_time_zone", Some(3), None, Some("time_zone")),
                ("bad_date", Some(5), None, Some("end")),
            ],
        ),
        (
            "not a calendar",
            b"hello, this is not iCalendar".to_vec(),
            ICS,
            vec![("bad_calendar", None, None, None)],
        ),
        (
            "latin-1 calendar",
            b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:Fran\xe7ais\r\nEND:VCALENDAR\r\n".to_vec(),
            ICS,
            vec![("bad_encoding", Some(2), None, None)],
        ),
        (
            "no uid",
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nDTSTART:20310901T090000Z\r\nDURATION:PT1H\r\nX-LYCEUM-REGION:eu-west\r\nX-LYCEUM-LANGUAGES:python\r\nX-LYCEUM-LEARNERS:3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".to_vec(),
            ICS,
            vec![("missing_field", None, Some("VEVENT #1"), Some("UID"))],
        ),
        (
            "bad rrule",
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:r\r\nDTSTART:20310901T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=FORTNIGHTLY\r\nX-LYCEUM-REGION:eu-west\r\nX-LYCEUM-LANGUAGES:python\r\nX-LYCEUM-LEARNERS:3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".to_vec(),
            ICS,
            vec![("bad_recurrence", None, Some("VEVENT #1 (UID r)"), Some("RRULE"))],
        ),
        (
            "no region anywhere",
            b"title,start,duration,time_zone,languages,learners\nx,2031-09-01 09:00,60,UTC,python,3\n".to_vec(),
            CSV,
            vec![("missing_field", Some(2), None, Some("region"))],
        ),
    ];
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        for (name, bytes, media, expected) in &cases {
            let (status, answer) = s.import("", media, bytes.clone()).await;
            assert_eq!(status, 422, "{engine:?} {name}: {answer}");
            assert_eq!(answer["error"]["code"], "timetable_invalid", "{name}");
            let expected: Vec<_> = expected
                .iter()
                .map(|(code, line, component, property)| {
                    (
                        (*code).to_owned(),
                        *line,
                        component.map(str::to_owned),
                        property.map(str::to_owned),
                    )
                })
                .collect();
            assert_eq!(
                problems(&answer["error"]["problems"]),
                expected,
                "{engine:?} {name}: {answer}"
            );
        }
        // Nothing of any of them was imported.
        let list = s.get("/api/v1/timetables").await;
        assert_eq!(list.1["items"], json!([]));
        s.done().await;
    }
}

#[tokio::test]
async fn big_and_endless_calendars_are_capped_and_explained() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        // 100,000 occurrences: cut at the default 20,000, and said so.
        let (status, report) = s.import("", ICS, fixture("many-occurrences.ics")).await;
        assert_eq!(status, 201, "{engine:?}: {report}");
        assert_eq!(report["capped"], true);
        assert_eq!(report["occurrences"], 20_000);
        assert_eq!(note_codes(&report), ["occurrences_capped"]);
        // No end: every day up to the horizon (120 days from 25 August,
        // 22 December), and said so.
        let (status, report) = s.import("", ICS, fixture("no-end.ics")).await;
        assert_eq!(status, 201, "{report}");
        assert_eq!(report["capped"], false);
        assert_eq!(events(&report)[0].2, 30 + 31 + 30 + 22);
        assert_eq!(note_codes(&report), ["no_end"]);
        let at = |key: &str| {
            chrono::DateTime::parse_from_rfc3339(report[key].as_str().expect(key))
                .expect("rfc 3339")
                .timestamp_millis()
        };
        assert_eq!(at("expanded_to") - at("expanded_from"), 120 * 86_400_000);
        s.done().await;
    }
}

/// A calendar of `events` events, each `FREQ=DAILY;COUNT=count` with
/// `learners`.
fn calendar(events: u32, count: u32, learners: u64) -> Vec<u8> {
    let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n");
    for i in 0..events {
        text.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:e{i}\r\nSUMMARY:e{i}\r\nDTSTART:20310901T09{i:02}00Z\r\n\
             DURATION:PT30M\r\nRRULE:FREQ=DAILY;COUNT={count}\r\nX-LYCEUM-REGION:eu-west\r\n\
             X-LYCEUM-LANGUAGES:python\r\nX-LYCEUM-LEARNERS:{learners}\r\nEND:VEVENT\r\n"
        ));
    }
    text.push_str("END:VCALENDAR\r\n");
    text.into_bytes()
}

#[tokio::test]
async fn each_limit_holds_at_its_edge() {
    let s = setup(Engine::Sqlite, |c| {
        c.timetable_events_per_file_max = 2;
        c.timetable_occurrences_per_file_max = 10;
        c.timetable_learners_per_event_max = 100;
        c.timetable_horizon_days = 30;
        c.timetable_body_bytes_max = 2_000;
    })
    .await;
    let dry = "?dry_run=true";
    // Events per file.
    let (status, report) = s.import(dry, ICS, calendar(2, 1, 1)).await;
    assert_eq!(
        (status, report["problems"].clone()),
        (200, json!([])),
        "{report}"
    );
    let (_, report) = s.import(dry, ICS, calendar(3, 1, 1)).await;
    assert_eq!(
        problems(&report["problems"]),
        [(
            "too_many_events".to_owned(),
            None,
            Some("VEVENT #3 (UID e2)".to_owned()),
            None
        )]
    );
    // Occurrences per file: 10 fit, the 11th is cut.
    let (_, report) = s.import(dry, ICS, calendar(1, 10, 1)).await;
    assert_eq!(
        (report["occurrences"].clone(), report["capped"].clone()),
        (json!(10), json!(false))
    );
    let (_, report) = s.import(dry, ICS, calendar(1, 11, 1)).await;
    assert_eq!(
        (report["occurrences"].clone(), report["capped"].clone()),
        (json!(10), json!(true))
    );
    // Learners per event.
    let (_, report) = s.import(dry, ICS, calendar(1, 1, 100)).await;
    assert_eq!(report["events"][0]["learners"], 100, "{report}");
    let (_, report) = s.import(dry, ICS, calendar(1, 1, 101)).await;
    assert_eq!(report["problems"][0]["code"], "too_many_learners");
    // Horizon: 30 days from 25 August is 24 September 00:00 UTC.
    let (_, report) = s.import(dry, ICS, calendar(1, 60, 1)).await;
    assert_eq!(report["occurrences"], 10);
    let mut text = String::from_utf8(calendar(1, 60, 1)).expect("utf-8");
    text = text.replace("DTSTART:20310901T090000Z", "DTSTART:20310920T090000Z");
    let (_, report) = s.import(dry, ICS, text.into_bytes()).await;
    assert_eq!(report["occurrences"], 4, "20 to 23 September: {report}");
    // Body bytes.
    let pad = |n: usize| {
        let mut body = calendar(1, 1, 1);
        let at = body.len() - "END:VCALENDAR\r\n".len();
        let filler = format!("X-PAD:{}\r\n", "a".repeat(n - 8));
        body.splice(at..at, filler.into_bytes());
        body
    };
    let base = calendar(1, 1, 1).len();
    let (status, report) = s.import(dry, ICS, pad(2_000 - base)).await;
    assert_eq!(status, 200, "{report}");
    let (status, report) = s.import(dry, ICS, pad(2_001 - base)).await;
    assert_eq!(
        (status, report["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    s.done().await;
}

#[tokio::test]
async fn dry_runs_write_nothing_and_partial_imports_take_the_valid_part() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (status, report) = s.import("?dry_run=true", CSV, fixture("mixed.csv")).await;
        assert_eq!(status, 200, "{engine:?}: {report}");
        assert_eq!(report["dry_run"], true);
        assert_eq!(report["timetable_id"], Value::Null);
        assert_eq!(
            events(&report),
            owned(&[("good-1", "created", 1), ("good-2", "created", 1)])
        );
        assert_eq!(report["problems"].as_array().map(Vec::len), Some(2));
        assert_eq!(s.get("/api/v1/timetables").await.1["items"], json!([]));

        let (status, report) = s.import("?partial=true", CSV, fixture("mixed.csv")).await;
        assert_eq!(status, 201, "{report}");
        assert_eq!(report["events"].as_array().map(Vec::len), Some(2));
        assert_eq!(report["problems"][0]["line"], 3);
        let list = s.get("/api/v1/timetables").await;
        assert_eq!(list.1["items"][0]["events"], 2);
        // A dry run of a known file names its timetable and writes nothing.
        let (status, report) = s
            .import("?dry_run=true&partial=true", CSV, fixture("mixed.csv"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(report["timetable_id"], list.1["items"][0]["id"]);
        assert_eq!(events(&report)[0].1, "unchanged");
        s.done().await;
    }
}

#[tokio::test]
async fn defaults_come_from_the_course_its_cohort_and_live_class() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (course_id, module) = course(&s.api, &s.t.instructor, "Algorithms").await;
        let unit = |kind: &str, body: Value| json!({"kind": kind, "title": kind, "body": body});
        let mut live_unit = String::new();
        for body in [
            unit("assignment", crate::content::assignment()),
            unit(
                "lesson",
                json!({"markdown": "x", "snippets": [{"language": "rust", "code": "fn main() {}"}]}),
            ),
            unit(
                "live_classroom",
                json!({"schedule": {"starts_at": "2031-09-01T07:00:00Z", "duration_minutes": 60}, "cohort": "spring", "region": "us-east"}),
            ),
        ] {
            let created = s
                .api
                .ok(
                    Method::POST,
                    &format!("/api/v1/modules/{module}/units"),
                    &s.t.instructor,
                    Some(&body),
                    201,
                )
                .await;
            if body["kind"] == "live_classroom" {
                live_unit = created["id"].as_str().expect("id").to_owned();
            }
        }
        let cohort = s
            .api
            .ok(
                Method::POST,
                &format!("/api/v1/courses/{course_id}/cohorts"),
                &s.t.instructor,
                Some(&json!({"name": "spring"})),
                201,
            )
            .await;
        s.api
            .ok(
                Method::POST,
                &format!("/api/v1/courses/{course_id}/enrollments"),
                &s.t.instructor,
                Some(&json!({"user_id": s.t.learner_id, "cohort_id": cohort["id"]})),
                201,
            )
            .await;
        // The live class itself is a session without an import once it is
        // published: its cohort's one learner, the course's two languages.
        let window =
            "/api/v1/forecast?region=us-east&from=2031-09-01T06:59:00Z&to=2031-09-01T07:02:00Z";
        let (_, before) = s.get(window).await;
        assert_eq!(
            before["series"],
            json!([]),
            "a draft plans nothing: {before}"
        );
        s.api
            .ok(
                Method::POST,
                &format!("/api/v1/units/{live_unit}/publish"),
                &s.t.instructor,
                None,
                201,
            )
            .await;
        let (status, after) = s.get(window).await;
        assert_eq!(status, 200, "{after}");
        let languages: Vec<&str> = after["series"]
            .as_array()
            .expect("series")
            .iter()
            .filter_map(|x| x["language"].as_str())
            .collect();
        assert_eq!(languages, ["python", "rust"], "{after}");
        // Another tenant's instructor sees none of this tenant's classes.
        let other = tenant(&s.cp, "other-school").await;
        let (status, theirs) = send(&s.router, Method::GET, window, &other.instructor, None).await;
        assert_eq!((status, &theirs["series"]), (200, &json!([])), "{theirs}");
        // Half a learner per language, one run a minute in the burst.
        assert_eq!(
            minutes(&json!({"series": [after["series"][0].clone()]}))
                .iter()
                .map(|m| m.0)
                .collect::<Vec<_>>(),
            [0.0, 0.5, 0.5],
            "{after}"
        );
        let csv = format!(
            "uid,title,start,duration,time_zone,course,cohort\n\
             spring-1,Spring class,2031-09-01 09:00,60,Europe/Paris,{course_id},spring\n"
        );
        let (status, report) = s.import("", CSV, csv.into_bytes()).await;
        assert_eq!(status, 201, "{engine:?}: {report}");
        let event = &report["events"][0];
        assert_eq!(event["region"], "us-east");
        assert_eq!(event["languages"], json!(["python", "rust"]));
        assert_eq!(event["learners"], 1);
        assert_eq!(event["cohort_id"], cohort["id"]);

        // An unknown course is named.
        let csv =
            b"title,start,duration,time_zone,course\nx,2031-09-01 09:00,60,UTC,no-such-course\n";
        let (status, report) = s.import("", CSV, csv.to_vec()).await;
        assert_eq!(status, 422);
        assert_eq!(
            problems(&report["error"]["problems"]),
            [(
                "not_found".to_owned(),
                Some(2),
                None,
                Some("course".to_owned())
            )]
        );
        s.done().await;
    }
}

#[tokio::test]
async fn roles_tenants_media_types_and_delete() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (status, report) = s.import("", ICS, fixture("school.ics")).await;
        assert_eq!(status, 201, "{report}");
        let id = report["timetable_id"].as_str().expect("id").to_owned();
        let occurrences = format!("/api/v1/timetables/{id}/occurrences");
        let one = format!("/api/v1/timetables/{id}");
        // Learners may do none of it.
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v1/timetables",
                Some((ICS, fixture("school.ics"))),
            ),
            (Method::GET, "/api/v1/timetables", None),
            (Method::GET, occurrences.as_str(), None),
            (Method::DELETE, one.as_str(), None),
        ] {
            let answer = send(&s.router, method.clone(), path, &s.t.learner, body).await;
            assert_eq!(
                (answer.0, answer.1["error"]["code"].clone()),
                (403, json!("forbidden")),
                "{method} {path}"
            );
        }
        // Operators of the tenant may.
        let answer = send(&s.router, Method::GET, &occurrences, &s.t.operator, None).await;
        assert_eq!(answer.0, 200, "{}", answer.1);
        // Another tenant's instructor does not see it.
        let other = tenant(&s.cp, "other-school").await;
        for (method, path) in [
            (Method::GET, occurrences.as_str()),
            (Method::DELETE, one.as_str()),
        ] {
            let answer = send(&s.router, method, path, &other.instructor, None).await;
            assert_eq!(answer.0, 404, "{}", answer.1);
        }
        let answer = send(
            &s.router,
            Method::GET,
            "/api/v1/timetables",
            &other.instructor,
            None,
        )
        .await;
        assert_eq!(answer.1["items"], json!([]));
        // Only the two media types.
        let answer = s.import("", "application/json", b"{}".to_vec()).await;
        assert_eq!(
            (answer.0, answer.1["error"]["code"].clone()),
            (415, json!("unsupported_media_type"))
        );
        // A bad window.
        let answer = s.get(&format!("{occurrences}?from=yesterday")).await;
        assert_eq!(answer.0, 400, "{}", answer.1);
        let answer = s
            .get(&format!(
                "{occurrences}?from=2031-09-02T00:00:00Z&to=2031-09-01T00:00:00Z"
            ))
            .await;
        assert_eq!(answer.0, 400, "{}", answer.1);
        // Delete: gone, with its events (a new import is a new timetable).
        let answer = send(&s.router, Method::DELETE, &one, &s.t.instructor, None).await;
        assert_eq!(answer.0, 204, "{}", answer.1);
        assert_eq!(s.get(&occurrences).await.0, 404);
        assert_eq!(s.get("/api/v1/timetables").await.1["items"], json!([]));
        let answer = send(&s.router, Method::DELETE, &one, &s.t.instructor, None).await;
        assert_eq!(answer.0, 404);
        let (status, report) = s.import("", ICS, fixture("school.ics")).await;
        assert_eq!(status, 201, "{report}");
        assert_ne!(report["timetable_id"], id.as_str());
        // Each change wrote its domain event; dry runs and refusals none.
        let kinds: Vec<String> =
            sqlx::query_scalar("SELECT kind FROM domain_events WHERE tenant_id = $1 ORDER BY seq")
                .bind(&s.t.id)
                .fetch_all(s.cp.db().pool())
                .await
                .expect("events");
        assert_eq!(
            kinds,
            [
                "timetable_imported",
                "timetable_deleted",
                "timetable_imported"
            ]
        );
        s.done().await;
    }
}

/// The edge service key of the plan's test.
const PLAN_KEY: &str = "plan-test-service-key";

/// Records `count` runs of `language` in `region` for the tenant at
/// `at_ms`, as the submission outbox would have.
async fn runs_recorded(s: &Setup, region: &str, language: &str, at_ms: i64, count: u32) {
    for i in 0..count {
        sqlx::query(
            "INSERT INTO submissions (id, tenant_id, user_id, language, status, region, finished_at, recorded_at, body) \
             VALUES ($1, $2, $3, $4, 'accepted', $5, '2031-09-01T09:00:00Z', $6, '{}')",
        )
        .bind(format!("run-{at_ms}-{region}-{language}-{i}"))
        .bind(&s.t.id)
        .bind(&s.t.learner_id)
        .bind(language)
        .bind(region)
        .bind(at_ms)
        .execute(s.cp.db().pool())
        .await
        .expect("insert a run");
    }
}

/// (planned, expected, target) of each minute of a forecast's one series.
fn minutes(answer: &Value) -> Vec<(f64, f64, u64)> {
    answer["series"][0]["minutes"]
        .as_array()
        .expect("minutes")
        .iter()
        .map(|m| {
            (
                m["planned_runs"].as_f64().expect("planned"),
                m["expected_runs"].as_f64().expect("expected"),
                m["warm_target"].as_u64().expect("target"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_timetabled_class_raises_the_forecast_and_its_targets_ahead_of_time() {
    for engine in ENGINES {
        // 60 containers a minute: a burst of 300 runs a minute needs the
        // target cap of 200, which takes four minutes to fill.
        let s = setup(engine, |c| {
            c.forecast_container_creations_per_minute = 60;
            c.forecast_plan_minutes = 10;
            c.edge_service_key = PLAN_KEY.to_owned();
        })
        .await;
        let csv = "title,start,end,time_zone,region,languages,learners\n\
                   Maths,2031-09-01 09:00,2031-09-01 10:00,UTC,eu-west,python,300\n";
        let (status, report) = s.import("", CSV, csv.as_bytes().to_vec()).await;
        assert_eq!(status, 201, "{report}");
        let path =
            "/api/v1/forecast?region=eu-west&from=2031-09-01T08:50:00Z&to=2031-09-01T09:06:00Z";
        let (status, answer) = s.get(path).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["from"], "2031-09-01T08:50:00Z");
        assert_eq!(answer["to"], "2031-09-01T09:06:00Z");
        assert_eq!(answer["capped"], false);
        assert_eq!(
            answer["series"].as_array().map(Vec::len),
            Some(1),
            "{answer}"
        );
        assert_eq!(answer["series"][0]["language"], "python");
        assert_eq!(answer["series"][0]["observed_runs_per_minute"], 0.0);
        let got = minutes(&answer);
        let mut want = vec![(0.0, 0.0, 0); 6];
        // Warming from 08:56, four minutes before the burst.
        want.extend([(0.0, 0.0, 200); 4]);
        // Three minutes of burst (one run per learner), then 12 an hour.
        want.extend([(300.0, 300.0, 200); 3]);
        want.extend([(60.0, 60.0, 2); 3]);
        assert_eq!(got, want, "{answer}");
        // The operator sees the fleet, the same here.
        let (status, fleet) = send(&s.router, Method::GET, path, &s.t.operator, None).await;
        assert_eq!(status, 200);
        assert_eq!(minutes(&fleet), want);
        // Another tenant's instructor sees none of it; a learner nothing.
        let other = tenant(&s.cp, "other-school").await;
        let (status, theirs) = send(&s.router, Method::GET, path, &other.instructor, None).await;
        assert_eq!((status, &theirs["series"]), (200, &json!([])), "{theirs}");
        let (status, body) = send(&s.router, Method::GET, path, &s.t.learner, None).await;
        assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
        // Bad windows and regions.
        for bad in [
            "/api/v1/forecast?region=mars",
            "/api/v1/forecast?from=soon",
            "/api/v1/forecast?from=2031-09-02T00:00:00Z&to=2031-09-01T00:00:00Z",
            "/api/v1/forecast?from=2031-09-01T00:00:00Z&to=2031-09-08T00:01:00Z",
            "/api/v1/forecast?days=3",
        ] {
            let (status, body) = s.get(bad).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
        // The longest window: a week of minutes.
        let (status, week) = s
            .get("/api/v1/forecast?from=2031-09-01T00:00:00Z&to=2031-09-08T00:00:00Z")
            .await;
        assert_eq!(status, 200, "{week}");
        assert_eq!(
            week["series"][0]["minutes"].as_array().map(Vec::len),
            Some(10_080)
        );

        // The edges' plan: from now (08:57:30), ten minutes of planned
        // targets, for edges with the service key only.
        s.cp.clock().advance_to(1_946_019_450_000);
        let plan_path = "/api/v1/sandbox/plan?region=eu-west";
        let (status, plan) = send(&s.router, Method::GET, plan_path, PLAN_KEY, None).await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["region"], "eu-west");
        assert_eq!(plan["from"], "2031-09-01T08:57:00Z");
        assert_eq!(plan["generated_at"], "2031-09-01T08:57:30Z");
        assert_eq!(plan["minutes"], 10);
        assert_eq!(plan["languages"][0]["language"], "python", "{plan}");
        assert_eq!(
            plan["languages"][0]["targets"],
            json!([200, 200, 200, 200, 200, 200, 2, 2, 2, 2]),
            "{plan}"
        );
        assert_eq!(plan["languages"][0]["runs"][3], 300.0);
        let (status, none) = send(
            &s.router,
            Method::GET,
            "/api/v1/sandbox/plan?region=us-east",
            PLAN_KEY,
            None,
        )
        .await;
        assert_eq!((status, &none["languages"]), (200, &json!([])), "{none}");
        for (path, token, want) in [
            (plan_path, s.t.operator.as_str(), 401),
            (plan_path, "wrong-key", 401),
            ("/api/v1/sandbox/plan?region=mars", PLAN_KEY, 400),
            ("/api/v1/sandbox/plan", PLAN_KEY, 400),
        ] {
            let (status, body) = send(&s.router, Method::GET, path, token, None).await;
            assert_eq!(status, want, "{path}: {body}");
        }
        s.done().await;
    }
}

#[tokio::test]
async fn the_forecast_learns_a_course_rate_and_meets_unplanned_demand() {
    for engine in ENGINES {
        let s = setup(engine, |_| {}).await;
        let (course_id, _) = crate::content::course(&s.api, &s.t.instructor, "Algebra").await;
        // Weekly, 100 learners, python only; the first session on
        // 2031-09-01 09:00-10:00.
        let csv = format!(
            "title,start,end,time_zone,region,languages,learners,course,recurrence\n\
             Algebra,2031-09-01 09:00,2031-09-01 10:00,UTC,us-east,python,100,{course_id},FREQ=WEEKLY;COUNT=3\n"
        );
        let (status, report) = s.import("", CSV, csv.into_bytes()).await;
        assert_eq!(status, 201, "{report}");
        // During the first session its learners ran 300 times: 0.05 a
        // learner-minute, not the default 0.2.
        let start = 1_946_019_600_000_i64; // 2031-09-01T09:00:00Z
        for minute in 0..60 {
            runs_recorded(&s, "us-east", "python", start + minute * 60_000, 5).await;
        }
        s.cp.clock().advance_to(start + 86_400_000);
        let next =
            "/api/v1/forecast?region=us-east&from=2031-09-08T09:10:00Z&to=2031-09-08T09:11:00Z";
        let (status, answer) = s.get(next).await;
        assert_eq!(status, 200, "{answer}");
        let got = minutes(&answer);
        assert_eq!(got.len(), 1, "{answer}");
        assert!(
            (got[0].0 - 5.0).abs() < 1e-9,
            "100 learners × 0.05: {answer}"
        );

        // Unplanned demand: 20 runs a minute in eu-west for the last half
        // hour, with nothing on the timetable there.
        let now = s.cp.clock().now_ms() / 60_000 * 60_000;
        for minute in 1..=30 {
            runs_recorded(&s, "eu-west", "java", now - minute * 60_000, 20).await;
        }
        let (status, answer) = s.get("/api/v1/forecast?region=eu-west").await;
        assert_eq!(status, 200, "{answer}");
        let series = &answer["series"][0];
        assert_eq!(series["language"], "java", "{answer}");
        let observed = series["observed_runs_per_minute"].as_f64().expect("rate");
        assert!((15.0..=20.0).contains(&observed), "{answer}");
        let first = minutes(&answer)[0];
        assert_eq!(first.0, 0.0);
        assert!((first.1 - observed).abs() < 1e-9, "{answer}");
        assert!(
            first.2 >= 1,
            "a pool is kept warm for unplanned demand: {answer}"
        );
        assert_eq!(minutes(&answer).len(), 360, "six hours by default");
        assert_eq!(
            series["minutes"][0]["actual_runs"], 0,
            "none yet this minute"
        );
        assert_eq!(series["minutes"][1]["actual_runs"], Value::Null, "ahead");

        // Forecast against actual: the window's past minutes carry the runs
        // recorded in them.
        let from = control_plane::timetables::model::rfc3339_utc(now - 10 * 60_000);
        let to = control_plane::timetables::model::rfc3339_utc(now + 5 * 60_000);
        let (status, answer) = s
            .get(&format!(
                "/api/v1/forecast?region=eu-west&from={from}&to={to}"
            ))
            .await;
        assert_eq!(status, 200, "{answer}");
        let actual: Vec<Value> = answer["series"][0]["minutes"]
            .as_array()
            .expect("minutes")
            .iter()
            .map(|m| m["actual_runs"].clone())
            .collect();
        let mut want = vec![json!(20); 10];
        want.push(json!(0));
        want.extend([Value::Null, Value::Null, Value::Null, Value::Null]);
        assert_eq!(actual, want, "{answer}");
        s.done().await;
    }
}

#[test]
fn each_forecast_setting_holds_at_its_edges() {
    use control_plane::config::FORECAST_LIMITS;
    for (key, default, min, max) in FORECAST_LIMITS {
        let with = |value: u32| -> Result<(), String> {
            let config: ControlPlaneConfig =
                serde_json::from_value(json!({ key: value })).expect("a known key");
            config.validate().map_err(|err| err.to_string())
        };
        assert_eq!(with(default), Ok(()), "{key} default");
        assert_eq!(with(min), Ok(()), "{key} at its minimum");
        assert_eq!(with(max), Ok(()), "{key} at its maximum");
        let refused = with(max + 1).expect_err(key);
        assert!(
            refused.contains(key) && refused.contains(&format!("{min} to {max}")),
            "{refused}"
        );
        if min > 0 {
            assert!(with(min - 1).is_err(), "{key} below its minimum");
        }
    }
}
