//! Learning paths on both engines: cycles refused and named (self, direct,
//! long, and two writers racing to close one), the per-unit edge limit at
//! its edge, score conditions through the HTTP API, and the frontier of a
//! generated graph of 1,000 units compared against a reference computed
//! here (seeded; set `LYCEUM_SEED` to replay a failure).

use std::collections::{BTreeSet, HashSet};

use axum::http::Method;
use control_plane::content::courses::{self, NewCourse, NewModule};
use control_plane::content::paths::{self, Condition, NewPrerequisite, NewResult};
use control_plane::content::units::{self, NewUnit};
use control_plane::content::{ContentError, Limits, UnitKind};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use crate::content::{code, course, lesson, open, tenant, Api};
use crate::databases::{Engine, ENGINES};

const T0: i64 = 1_000_000;

/// Creates `n` published lessons in `module`; answers their ids.
async fn lessons(api: &Api, token: &str, module: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let unit = api
            .ok(
                Method::POST,
                &format!("/api/v1/modules/{module}/units"),
                token,
                Some(&json!({"kind": "lesson", "title": format!("u{i}"), "body": lesson()})),
                201,
            )
            .await;
        let id = unit["id"].as_str().expect("id").to_owned();
        api.ok(
            Method::POST,
            &format!("/api/v1/units/{id}/publish"),
            token,
            None,
            201,
        )
        .await;
        ids.push(id);
    }
    ids
}

async fn require(
    api: &Api,
    token: &str,
    unit: &str,
    prerequisite: &str,
    min: Option<i64>,
) -> (u16, Value) {
    let body = match min {
        Some(min) => json!({"prerequisite_id": prerequisite, "condition": {"min_score": min}}),
        None => json!({"prerequisite_id": prerequisite}),
    };
    api.send(
        Method::POST,
        &format!("/api/v1/units/{unit}/prerequisites"),
        token,
        &body,
    )
    .await
}

fn frontier_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["unit_id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn cycles_are_refused_and_named() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |c| c.path_edges_per_unit_max = 3).await;
        let t = tenant(&cp, "acme").await;
        let (_, module) = course(&api, &t.instructor, "Paths").await;
        // A second course: paths cross courses of one tenant.
        let (_, other_module) = course(&api, &t.instructor, "Other").await;
        let mut u = lessons(&api, &t.instructor, &module, 8).await;
        u.extend(lessons(&api, &t.instructor, &other_module, 2).await);
        // A chain: u[i+1] requires u[i].
        for i in 0..9 {
            let answer = require(&api, &t.instructor, &u[i + 1], &u[i], None).await;
            assert_eq!(answer.0, 201, "{engine:?}: {}", answer.1);
        }
        let cycle = |ids: &[&String]| {
            ids.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" -> ")
        };
        // Self, direct and long cycles.
        let cases = [
            (&u[3], &u[3], cycle(&[&u[3], &u[3]])),
            (&u[0], &u[1], cycle(&[&u[0], &u[1], &u[0]])),
            (&u[4], &u[9], {
                let mut ids = vec![&u[4]];
                ids.extend(u[4..=9].iter().rev());
                cycle(&ids)
            }),
            (&u[0], &u[9], {
                let mut ids = vec![&u[0]];
                ids.extend(u.iter().rev());
                cycle(&ids)
            }),
        ];
        for (unit, prerequisite, named) in cases {
            let answer = require(&api, &t.instructor, unit, prerequisite, None).await;
            assert_eq!(
                code(&answer),
                (409, "cycle".into()),
                "{engine:?}: {}",
                answer.1
            );
            let message = answer.1["error"]["message"].as_str().unwrap_or("");
            assert!(
                message.contains(&named),
                "{engine:?}: {message} should name {named}"
            );
        }
        // A duplicate edge, and the edge limit: 3 prerequisites fine, a 4th not.
        let duplicate = require(&api, &t.instructor, &u[1], &u[0], Some(50)).await;
        assert_eq!(
            code(&duplicate),
            (409, "conflict".into()),
            "{}",
            duplicate.1
        );
        for p in [&u[0], &u[2]] {
            let answer = require(&api, &t.instructor, &u[9], p, None).await;
            assert_eq!(answer.0, 201, "{}", answer.1);
        }
        let fourth = require(&api, &t.instructor, &u[9], &u[3], None).await;
        assert_eq!(code(&fourth), (409, "conflict".into()), "{}", fourth.1);
        assert!(fourth.1["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("path_edges_per_unit_max"));
        let listed = api
            .ok(
                Method::GET,
                &format!("/api/v1/units/{}/prerequisites", u[9]),
                &t.learner,
                None,
                200,
            )
            .await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(3));
        // Removing an edge makes room, and lets the reverse edge in.
        api.ok(
            Method::DELETE,
            &format!("/api/v1/units/{}/prerequisites/{}", u[1], u[0]),
            &t.instructor,
            None,
            204,
        )
        .await;
        let reverse = require(&api, &t.instructor, &u[0], &u[1], None).await;
        assert_eq!(reverse.0, 201, "{}", reverse.1);
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_cannot_close_a_cycle_together() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let (_, module) = course(&api, &t.instructor, "Race").await;
        let u = lessons(&api, &t.instructor, &module, 40).await;
        let limits = Limits::from_config(cp.config());
        for pair in u.chunks(2) {
            let (a, b) = (pair[0].clone(), pair[1].clone());
            let mut racers = tokio::task::JoinSet::new();
            for (unit, prerequisite) in [(a.clone(), b.clone()), (b, a)] {
                let (cp, tenant) = (cp.clone(), t.id.clone());
                racers.spawn(async move {
                    let request = NewPrerequisite {
                        prerequisite_id: prerequisite,
                        condition: None,
                    };
                    paths::add_prerequisite(cp.db(), &tenant, &unit, &request, &limits, T0).await
                });
            }
            let mut outcomes = Vec::new();
            while let Some(result) = racers.join_next().await {
                outcomes.push(match result.expect("task") {
                    Ok(_) => "added".to_owned(),
                    Err(err) => err.code().as_str().to_owned(),
                });
            }
            outcomes.sort();
            assert_eq!(outcomes, ["added", "cycle"], "{engine:?}");
        }
        db.cleanup(vec![cp]).await;
    }
}

#[tokio::test]
async fn score_conditions_unlock_units_and_roles_pick_whose_frontier() {
    for engine in ENGINES {
        let (db, cp, api) = open(engine, |_| {}).await;
        let t = tenant(&cp, "acme").await;
        let (_, module) = course(&api, &t.instructor, "Scores").await;
        let u = lessons(&api, &t.instructor, &module, 3).await;
        // u1 requires u0 with 70; u2 requires u1.
        assert_eq!(
            require(&api, &t.instructor, &u[1], &u[0], Some(70)).await.0,
            201
        );
        assert_eq!(
            require(&api, &t.instructor, &u[2], &u[1], None).await.0,
            201
        );
        let mine = "/api/v1/paths/frontier";
        let theirs = format!("/api/v1/paths/frontier?user_id={}", t.learner_id);
        let record = |unit: &str, score: Value| {
            let path = format!("/api/v1/units/{unit}/results/{}", t.learner_id);
            let api = &api;
            let token = t.instructor.clone();
            async move {
                api.ok(
                    Method::PUT,
                    &path,
                    &token,
                    Some(&json!({"score": score})),
                    200,
                )
                .await
            }
        };
        let check = |expected: Vec<&String>| {
            let api = &api;
            let (learner, instructor) = (t.learner.clone(), t.instructor.clone());
            let theirs = theirs.clone();
            let want: Vec<String> = expected.into_iter().cloned().collect();
            async move {
                let page = api.ok(Method::GET, mine, &learner, None, 200).await;
                assert_eq!(frontier_ids(&page), want, "{engine:?} learner");
                let page = api.ok(Method::GET, &theirs, &instructor, None, 200).await;
                assert_eq!(frontier_ids(&page), want, "{engine:?} instructor");
                page
            }
        };
        let page = check(vec![&u[0]]).await;
        assert_eq!(
            (&page["items"][0]["version"], &page["items"][0]["kind"]),
            (&json!(1), &json!("lesson"))
        );
        record(&u[0], json!(69)).await;
        check(vec![]).await;
        record(&u[0], json!(70)).await;
        check(vec![&u[1]]).await;
        // Done without a score: fine where no score is asked.
        record(&u[1], Value::Null).await;
        check(vec![&u[2]]).await;
        // A lower score on u0 locks u1 again, and with it u2, transitively.
        record(&u[0], json!(10)).await;
        check(vec![]).await;
        // Learners may read only their own.
        let (status, _) = api
            .get(&format!("{mine}?user_id=someone-else"), &t.learner)
            .await;
        assert_eq!(status, 403);
        db.cleanup(vec![cp]).await;
    }
}

/// The generated graph: unit `i` may only require units before it, so it is
/// a DAG by construction and index order is a topological order.
struct Graph {
    published: Vec<bool>,
    /// (unit, prerequisite, min_score)
    edges: Vec<(usize, usize, Option<i64>)>,
    /// Done units and their scores.
    results: Vec<Option<Option<i64>>>,
}

fn generate(rng: &mut StdRng, n: usize) -> Graph {
    let published = (0..n).map(|_| rng.gen_bool(0.95)).collect();
    let mut edges = Vec::new();
    for unit in 1..n {
        let window: Vec<usize> = (unit.saturating_sub(80)..unit).collect();
        let k = rng.gen_range(0..=3).min(window.len());
        for &prerequisite in window.choose_multiple(rng, k) {
            let min = rng.gen_bool(0.3).then(|| rng.gen_range(40..=90));
            edges.push((unit, prerequisite, min));
        }
    }
    let mut results = vec![None; n];
    for (i, result) in results.iter_mut().enumerate() {
        // Most learners move roughly front to back: early units are done
        // more often, so the frontier is neither empty nor everything.
        let p = if i < n / 2 { 0.7 } else { 0.3 };
        if rng.gen_bool(p) {
            *result = Some(rng.gen_bool(0.85).then(|| rng.gen_range(0..=100)));
        }
    }
    Graph {
        published,
        edges,
        results,
    }
}

/// The frontier by definition: published, not done, and not locked, where a
/// unit is locked when a prerequisite is not done, is done below the edge's
/// score, or is locked itself.
fn reference_frontier(g: &Graph) -> BTreeSet<usize> {
    let n = g.published.len();
    let mut locked = vec![false; n];
    let mut by_unit = vec![Vec::new(); n];
    for &(unit, prerequisite, min) in &g.edges {
        by_unit[unit].push((prerequisite, min));
    }
    for unit in 0..n {
        locked[unit] = by_unit[unit].iter().any(|&(p, min)| {
            let satisfied = match (g.results[p], min) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(score), Some(min)) => score.is_some_and(|s| s >= min),
            };
            !satisfied || locked[p]
        });
    }
    (0..n)
        .filter(|&i| g.published[i] && g.results[i].is_none() && !locked[i])
        .collect()
}

async fn frontier_on_a_generated_graph(engine: Engine) {
    const N: usize = 1_000;
    let seed: u64 = std::env::var("LYCEUM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("frontier graph seed {seed} (LYCEUM_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let graph = generate(&mut rng, N);
    // The graph takes thousands of small transactions to build; on SQLite
    // keep the file on tmpfs where there is one, so the test measures the
    // queries and not the shared disk's fsync latency.
    let shm = std::path::Path::new("/dev/shm");
    let tmpfs = if engine == Engine::Sqlite && shm.is_dir() {
        Some(tempfile::tempdir_in(shm).expect("tmpfs dir"))
    } else {
        None
    };
    let (db, cp, api) = open(engine, |c| {
        if let Some(dir) = &tmpfs {
            c.data_dir = dir.path().join("control-plane");
        }
    })
    .await;
    let t = tenant(&cp, "acme").await;
    let limits = Limits::from_config(cp.config());
    let db_ = cp.db();
    // Four courses: paths cross them.
    let mut modules = Vec::new();
    for c in 0..4 {
        let course = courses::create_course(
            db_,
            &t.id,
            "author",
            &NewCourse {
                title: format!("Course {c}"),
                summary: String::new(),
            },
            T0,
        )
        .await
        .expect("course");
        let module =
            courses::create_module(db_, &t.id, &course.id, &NewModule { title: "M".into() }, T0)
                .await
                .expect("module");
        modules.push(module.id);
    }
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let module = &modules[rng.gen_range(0..modules.len())];
        let unit = units::create_unit(
            db_,
            &t.id,
            module,
            NewUnit {
                kind: UnitKind::Lesson,
                title: format!("u{i}"),
                body: json!({"markdown": format!("unit {i}")}),
            },
            &limits,
            T0,
        )
        .await
        .expect("unit");
        if graph.published[i] {
            units::publish(db_, &t.id, &unit.id, "author", T0)
                .await
                .expect("publish");
        }
        ids.push(unit.id);
    }
    // Edges in a random order: each is checked against those already in.
    let mut order: Vec<usize> = (0..graph.edges.len()).collect();
    order.shuffle(&mut rng);
    for e in order {
        let (unit, prerequisite, min) = graph.edges[e];
        let request = NewPrerequisite {
            prerequisite_id: ids[prerequisite].clone(),
            condition: min.map(|m| Condition { min_score: Some(m) }),
        };
        paths::add_prerequisite(db_, &t.id, &ids[unit], &request, &limits, T0)
            .await
            .unwrap_or_else(|err| panic!("seed {seed}: edge {unit} <- {prerequisite}: {err}"));
    }
    for (i, result) in graph.results.iter().enumerate() {
        if let Some(score) = result {
            paths::record_result(
                db_,
                &t.id,
                &ids[i],
                &t.learner_id,
                &NewResult { score: *score },
                T0,
            )
            .await
            .expect("result");
        }
    }
    // Back edges from a unit to one of its ancestors close a cycle.
    let mut ancestors: Vec<HashSet<usize>> = vec![HashSet::new(); N];
    for &(unit, prerequisite, _) in &{
        let mut sorted = graph.edges.clone();
        sorted.sort_unstable();
        sorted
    } {
        let inherited: Vec<usize> = ancestors[prerequisite].iter().copied().collect();
        ancestors[unit].insert(prerequisite);
        ancestors[unit].extend(inherited);
    }
    let mut tried = 0;
    while tried < 10 {
        let unit = rng.gen_range(0..N);
        let Some(&ancestor) = ancestors[unit].iter().min() else {
            continue;
        };
        tried += 1;
        let request = NewPrerequisite {
            prerequisite_id: ids[unit].clone(),
            condition: None,
        };
        match paths::add_prerequisite(db_, &t.id, &ids[ancestor], &request, &limits, T0).await {
            Err(ContentError::Cycle(message)) => {
                assert!(
                    message.contains(&ids[unit]) && message.contains(&ids[ancestor]),
                    "{message}"
                );
            }
            other => panic!("seed {seed}: {ancestor} <- {unit} should close a cycle: {other:?}"),
        }
    }

    let expected: BTreeSet<String> = reference_frontier(&graph)
        .into_iter()
        .map(|i| ids[i].clone())
        .collect();
    assert!(
        expected.len() > 10 && expected.len() < N / 2,
        "seed {seed}: a frontier of {} says little",
        expected.len()
    );
    // Through the API, a page of 97 at a time, as the learner.
    let mut got = Vec::new();
    let mut next = "/api/v1/paths/frontier?limit=97".to_owned();
    loop {
        let page = api.ok(Method::GET, &next, &t.learner, None, 200).await;
        got.extend(frontier_ids(&page));
        match page["next_after"].as_str() {
            Some(after) => next = format!("/api/v1/paths/frontier?limit=97&after={after}"),
            None => break,
        }
    }
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "seed {seed}: pages overlap");
    let index = |id: &String| ids.iter().position(|x| x == id).unwrap_or(usize::MAX);
    let missing: Vec<usize> = expected.difference(&got_set).map(index).collect();
    let extra: Vec<usize> = got_set.difference(&expected).map(index).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{engine:?} seed {seed}: frontier differs; missing {missing:?}, extra {extra:?}"
    );
    // And once more in one call, as the instructor.
    let all = paths::frontier(db_, &t.id, &t.learner_id, None, 1_000)
        .await
        .expect("frontier");
    assert_eq!(all.len(), expected.len());
    db.cleanup(vec![cp]).await;
}

#[tokio::test]
async fn frontier_matches_a_reference_on_1000_units_on_sqlite() {
    frontier_on_a_generated_graph(Engine::Sqlite).await;
}

#[tokio::test]
async fn frontier_matches_a_reference_on_1000_units_on_postgres() {
    frontier_on_a_generated_graph(Engine::Postgres).await;
}
