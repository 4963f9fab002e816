//! Reports: the summary computed from a run, the JSON round trip, and the
//! HTML page, which holds the timeline and escapes whatever a drill says.

use chaos::checker::{Counts, Verdict, Violation};
use chaos::cluster::Privilege;
use chaos::drill::{Drill, Probe};
use chaos::report::{
    Aborted, FaultEvent, ProbeSeries, Report, Sample, SteadyBreach, TimelineEntry,
    BREACHES_LISTED_MAX, SAMPLES_PER_PROBE_MAX,
};

use crate::{dev_cluster, BASE};

const HOSTILE: &str = "<script>alert('x')</script>";

fn drill(name: &str) -> Drill {
    let text = BASE.replace(
        "title = \"test drill\"",
        "title = \"kill <b>edge</b> & \\\"friends\\\"\"",
    );
    let faults = "\n[[fault]]\nkind = \"kill\"\ntarget = \"edge\"\nregion = \"eu-west\"\nstart_s = 10\nduration_s = 20\n";
    Drill::parse(
        name,
        &format!("{text}{faults}"),
        &dev_cluster(Privilege::Root),
    )
    .expect("drill")
}

fn timeline() -> Vec<TimelineEntry> {
    vec![
        TimelineEntry {
            at_ms: 10_000,
            fault: 1,
            label: "kill -9 edge eu-west".to_owned(),
            event: FaultEvent::Applied,
            detail: Some("pid 4242".to_owned()),
        },
        TimelineEntry {
            at_ms: 30_000,
            fault: 1,
            label: "kill -9 edge eu-west".to_owned(),
            event: FaultEvent::Healed,
            detail: Some(HOSTILE.to_owned()),
        },
    ]
}

fn probes() -> Vec<ProbeSeries> {
    let latency = |t: u64| {
        if (10..=30).contains(&t) {
            2_000.0 + t as f64
        } else {
            300.0
        }
    };
    let ready = |t: u64| if (10..=35).contains(&t) { 0.75 } else { 1.0 };
    vec![
        ProbeSeries {
            probe: Probe::RunLatencyP99Ms,
            threshold: 800.0,
            samples: (0..70)
                .map(|t| Sample {
                    at_ms: t * 1000,
                    value: latency(t),
                })
                .collect(),
        },
        ProbeSeries {
            probe: Probe::ReadinessRatio,
            threshold: 1.0,
            samples: (0..70)
                .map(|t| Sample {
                    at_ms: t * 1000,
                    value: ready(t),
                })
                .collect(),
        },
        ProbeSeries {
            probe: Probe::ClassDeliveryRatio,
            threshold: 0.99,
            samples: Vec::new(),
        },
    ]
}

fn verdict() -> Verdict {
    Verdict {
        violations: vec![Violation::RunLost {
            kind: chaos::checker::AckKind::Run,
            run_id: HOSTILE.to_owned(),
        }],
        omitted: 0,
        counts: Counts {
            runs_acknowledged: 120,
            runs_lost: 1,
            events_duplicated: 2,
            recovery_ms: Some(4_200),
            ..Counts::default()
        },
    }
}

#[test]
fn the_summary_says_what_happened_during_the_faults() {
    let report = Report::new(
        &drill("d"),
        "2026-12-07T12:00:00Z".into(),
        timeline(),
        probes(),
        None,
        verdict(),
    );
    let s = &report.summary;
    assert!(!s.hypothesis_held);
    assert_eq!((s.lost, s.duplicated, s.recovery_ms), (1, 2, Some(4_200)));
    let worst: Vec<(Probe, Option<f64>)> =
        s.during_fault.iter().map(|d| (d.probe, d.worst)).collect();
    assert_eq!(
        worst,
        vec![
            (Probe::RunLatencyP99Ms, Some(2_030.0)),
            (Probe::ReadinessRatio, Some(0.75)),
            (Probe::ClassDeliveryRatio, None),
        ]
    );
    let clean = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        probes(),
        None,
        Verdict::default(),
    );
    assert!(clean.summary.hypothesis_held);
    let aborted = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        probes(),
        Some(Aborted {
            at_ms: 20_000,
            reason: "readiness_ratio below 0.5".into(),
        }),
        Verdict::default(),
    );
    assert!(
        !aborted.summary.hypothesis_held,
        "an aborted drill never holds"
    );
}

#[test]
fn samples_are_kept_up_to_the_limit_newest_last() {
    let mut many = probes();
    many[0].samples = (0..=SAMPLES_PER_PROBE_MAX as u64)
        .map(|t| Sample {
            at_ms: t,
            value: 1.0,
        })
        .collect();
    let report = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        many,
        None,
        Verdict::default(),
    );
    let kept = &report.probes[0].samples;
    assert_eq!(kept.len(), SAMPLES_PER_PROBE_MAX);
    assert_eq!(kept.first().map(|s| s.at_ms), Some(1));
}

#[test]
fn the_json_round_trips() {
    let report = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        probes(),
        None,
        verdict(),
    );
    let json = report.to_json().expect("json");
    let back: Report = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, report);
}

#[test]
fn the_html_page_holds_the_timeline_and_escapes_everything() {
    let report = Report::new(
        &drill(HOSTILE),
        "2026-12-07T12:00:00Z".into(),
        timeline(),
        probes(),
        Some(Aborted {
            at_ms: 20_000,
            reason: "<i>too slow</i>".into(),
        }),
        verdict(),
    );
    let html = report.to_html().expect("html");
    // The timeline, the summary and one chart per probe.
    assert!(html.contains("<table id=\"timeline\">"));
    assert!(html.contains(
        "<td>10.0 s</td><td>1</td><td>kill -9 edge eu-west</td><td>applied</td><td>pid 4242</td>"
    ));
    assert!(html.contains("<td>30.0 s</td><td>1</td><td>kill -9 edge eu-west</td><td>healed</td>"));
    assert!(html.contains("<th>recovery time</th><td>4.2 s</td>"));
    assert!(html.contains("<th>run_latency_p99_ms during faults (worst)</th><td>2030 ms</td>"));
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(html.contains("<polyline points=\"56.0,"));
    // Nothing the drill, the runner or the platform said becomes markup.
    assert!(!html.contains("<script"), "a hostile name became markup");
    assert!(!html.contains("<b>edge"));
    assert!(!html.contains("<i>too slow"));
    assert!(
        html.contains("aborted at 20.0 s: &#60;i&#62;too slow")
            || html.contains("aborted at 20.0 s: &lt;i&gt;too slow")
    );
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    // Self-contained: no external resource, no script.
    for needle in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
}

#[test]
fn reports_are_written_under_a_safe_file_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = Report::new(
        &drill("../../etc/x"),
        "2026-12-07T12:00:00Z".into(),
        timeline(),
        probes(),
        None,
        verdict(),
    );
    let (json, html) = report.write(dir.path()).expect("write");
    assert_eq!(json.parent(), Some(dir.path()));
    assert_eq!(
        json.file_name().and_then(|n| n.to_str()),
        Some("______etc_x-2026-12-07T12_00_00Z.json")
    );
    assert!(html.exists());
    let back: Report =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("read")).expect("decode");
    assert_eq!(back, report);
}

#[test]
fn the_steady_state_must_hold_outside_the_faults_and_their_recovery() {
    // The fault runs from 10 s to 30 s and the recovery bound is 10 s, so
    // a bad sample at 40 s is excused and one at 40.001 s is not.
    let with_sample = |at_ms: u64| {
        let mut probes = probes();
        probes[0].samples.push(Sample {
            at_ms,
            value: 900.0,
        });
        probes[0].samples.sort_by_key(|s| s.at_ms);
        Report::new(
            &drill("d"),
            "t".into(),
            timeline(),
            probes,
            None,
            Verdict::default(),
        )
    };
    let excused = with_sample(40_000);
    assert!(excused.summary.hypothesis_held);
    assert!(excused.summary.steady_state_breaches.is_empty());
    let broken = with_sample(40_001);
    assert!(!broken.summary.hypothesis_held);
    assert_eq!(
        broken.summary.steady_state_breaches,
        vec![SteadyBreach {
            probe: Probe::RunLatencyP99Ms,
            at_ms: 40_001,
            value: 900.0,
            threshold: 800.0,
        }]
    );
    let html = broken.to_html().expect("html");
    assert!(html.contains(
        "<li>run_latency_p99_ms was 900 ms at 40.0 s, outside its steady state (800 ms) with no fault to excuse it</li>"
    ));

    // Listed up to the limit, counted beyond.
    let mut many = probes();
    many[1].samples = (0..=BREACHES_LISTED_MAX as u64)
        .map(|i| Sample {
            at_ms: 100_000 + i,
            value: 0.0,
        })
        .collect();
    let report = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        many,
        None,
        Verdict::default(),
    );
    assert_eq!(
        report.summary.steady_state_breaches.len(),
        BREACHES_LISTED_MAX
    );
    assert_eq!(report.summary.steady_state_breaches_omitted, 1);
}

#[test]
fn the_readme_table_has_one_row_per_run() {
    let recovered = Verdict {
        counts: Counts {
            recovery_ms: Some(1_500),
            ..Counts::default()
        },
        ..Verdict::default()
    };
    let held = Report::new(
        &drill("edge-paused"),
        "t".into(),
        timeline(),
        probes(),
        None,
        recovered,
    );
    let hostile = Report::new(
        &drill("a|b\nc"),
        "t".into(),
        timeline(),
        probes(),
        None,
        verdict(),
    );
    expect_test::expect![[r#"
        | drill | hypothesis | recovery | run p99 during faults | class delivery during faults | readiness during faults | lost | duplicated |
        | --- | --- | --- | --- | --- | --- | --- | --- |
        | edge-paused | held | 1.5 s | 2030 ms | - | 75.0 % | 0 | 0 |
        | a\|b c | did not hold | 4.2 s | 2030 ms | - | 75.0 % | 1 | 2 |
    "#]].assert_eq(&chaos::report::markdown_table(&[held, hostile]));
}

#[test]
fn samples_that_are_not_numbers_are_dropped_so_the_json_reads_back() {
    let mut odd = probes();
    odd[0].samples = vec![
        Sample {
            at_ms: 0,
            value: f64::NAN,
        },
        Sample {
            at_ms: 1,
            value: 5.0,
        },
        Sample {
            at_ms: 2,
            value: f64::INFINITY,
        },
    ];
    let report = Report::new(
        &drill("d"),
        "t".into(),
        timeline(),
        odd,
        None,
        Verdict::default(),
    );
    assert_eq!(
        report.probes[0].samples,
        vec![Sample {
            at_ms: 1,
            value: 5.0
        }]
    );
    let back: Report = serde_json::from_str(&report.to_json().expect("json")).expect("decode");
    assert_eq!(back, report);
}
