//! `bench-submissions`: how fast an edge's backlog of submission reports
//! drains into the control plane, one report per request
//! (`POST /api/v1/submissions`) against batches
//! (`POST /api/v1/submissions/batch`), side by side on two fresh databases
//! of the same shape. Requests go through the control plane's HTTP router
//! in process (auth, JSON, routing; no socket), one after another, as an
//! edge's outbox publisher sends them.
//!
//! ```text
//! bench-submissions [--reports 2000] [--batch 500] [--learners 20] [--database-url postgres://...]
//! ```
//! Without `--database-url` each side gets its own SQLite file in a
//! scratch directory under the system's temporary one (removed after); with one, a scratch PostgreSQL database each
//! (created and dropped). Half the reports name an assignment of the
//! course every learner is enrolled in (so they write progress, and the
//! first accepted one completes the unit and the course), half name no
//! unit.

use std::str::FromStr as _;
use tokio::time::Instant;

use anyhow::{bail, ensure, Context as _};
use axum::body::Body;
use axum::http::{Method, Request};
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use serde_json::{json, Value};
use sqlx::ConnectOptions as _;
use tower::ServiceExt as _;

/// The edge service key both sides are opened with.
const KEY: &str = "bench-submissions-service-key";

struct Options {
    reports: usize,
    batch: usize,
    learners: usize,
    database_url: String,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        reports: 2_000,
        batch: 500,
        learners: 20,
        database_url: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--reports" => options.reports = value()?.parse().context("--reports")?,
            "--batch" => options.batch = value()?.parse().context("--batch")?,
            "--learners" => options.learners = value()?.parse().context("--learners")?,
            "--database-url" => options.database_url = value()?,
            "--help" | "-h" => {
                println!(
                    "bench-submissions [--reports 2000] [--batch 500] [--learners 20] \
                     [--database-url postgres://...]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let limit = usize::try_from(control_plane::config::SUBMISSIONS_BATCH_MAX_LIMIT)?;
    ensure!(
        options.reports > 0 && options.learners > 0,
        "--reports and --learners must be positive"
    );
    ensure!(
        (1..=limit).contains(&options.batch),
        "--batch must be 1 to {limit}"
    );
    ensure!(
        options.database_url.is_empty() || options.database_url.starts_with("postgres"),
        "--database-url must be a PostgreSQL URL (SQLite is the default)"
    );
    Ok(options)
}

/// Where one side's database lives, and how to get rid of it.
enum Scratch {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Scratch {
    async fn new(options: &Options) -> anyhow::Result<(Self, ControlPlaneConfig)> {
        let mut config = ControlPlaneConfig {
            edge_service_key: KEY.to_owned(),
            ledger_expiry_sweep_interval_ms: 0,
            billing_clock_interval_ms: 0,
            analytics_interval_ms: 0,
            submissions_batch_max: u32::try_from(options.batch)?,
            ..ControlPlaneConfig::default()
        };
        if options.database_url.is_empty() {
            let dir = std::env::temp_dir().join(format!(
                "lyceum-bench-submissions-{}",
                uuid::Uuid::new_v4().simple()
            ));
            config.data_dir = dir.join("control-plane");
            return Ok((Self::Sqlite(dir), config));
        }
        let name = format!("lyceum_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnectOptions::from_str(&options.database_url)?
            .connect()
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = options
            .database_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .context("url with a database name")?;
        config.database_url = format!("{base}/{name}");
        config.data_dir = std::env::temp_dir();
        let scratch = Self::Postgres {
            admin_url: options.database_url.clone(),
            name,
        };
        Ok((scratch, config))
    }

    async fn drop_it(self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(dir) => std::fs::remove_dir_all(&dir)
                .with_context(|| format!("remove {}", dir.display()))?,
            Self::Postgres { admin_url, name } => {
                let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)?
                    .connect()
                    .await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Sends one JSON request to the router; answers the status and body.
async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A tenant with a published course of one assignment, and `learners`
/// members enrolled in it; answers the reports an edge would send.
async fn prepare(cp: &ControlPlane, options: &Options) -> anyhow::Result<Vec<Value>> {
    let router = control_plane::http::router(cp.clone());
    let tenant = identity::ensure_tenant(cp.db(), "bench", "Bench").await?;
    let author = tokens::issue(
        cp.keys(),
        "bench-author",
        &tenant,
        Role::Instructor,
        "author@bench.test",
        3_600,
    )?;
    let post = |path: String, body: Value| {
        let (router, author) = (&router, &author);
        async move {
            let (status, answer) = call(router, Method::POST, &path, author, Some(&body)).await?;
            ensure!(status == 201, "POST {path}: {status} {answer}");
            Ok(answer)
        }
    };
    let course = post(
        "/api/v1/courses".into(),
        json!({"title": "Bench", "summary": "reports"}),
    )
    .await?;
    let course = course["id"].as_str().context("course id")?.to_owned();
    let module = post(
        format!("/api/v1/courses/{course}/modules"),
        json!({"title": "M"}),
    )
    .await?;
    let module = module["id"].as_str().context("module id")?.to_owned();
    let unit = post(
        format!("/api/v1/modules/{module}/units"),
        json!({"kind": "assignment", "title": "Task", "body": {
            "language": "python",
            "starter_files": [{"name": "main.py", "content": "print()"}],
            "visible_tests": [{"name": "one", "stdin": "1", "expected_stdout": "1\n"}],
            "hidden_tests": [],
            "limits": {"wall_ms": 2000, "memory_mb": 128}}}),
    )
    .await?;
    let unit = unit["id"].as_str().context("unit id")?.to_owned();
    post(format!("/api/v1/units/{unit}/publish"), json!({})).await?;
    let mut learners = Vec::with_capacity(options.learners);
    for i in 0..options.learners {
        let email = format!("learner-{i}@bench.test");
        let member = identity::ensure_member(
            cp.db(),
            &tenant,
            &email,
            &format!("Learner {i}"),
            "a-long-password",
            Role::Learner,
        )
        .await?;
        let token = tokens::issue(
            cp.keys(),
            &member.user_id,
            &tenant,
            Role::Learner,
            &email,
            3_600,
        )?;
        let (status, answer) = call(
            &router,
            Method::POST,
            &format!("/api/v1/courses/{course}/enrollments"),
            &token,
            Some(&json!({})),
        )
        .await?;
        ensure!(status == 201, "enroll: {status} {answer}");
        learners.push(member.user_id);
    }
    Ok((0..options.reports)
        .map(|i| {
            let mut report = json!({"type": "submission",
                "submission_id": uuid::Uuid::now_v7().to_string(),
                "user_id": learners[i % learners.len()], "tenant_id": tenant,
                "language": "python",
                "status": if i % 3 == 0 { "accepted" } else { "wrong_answer" },
                "region": "eu-west", "finished_at": "2026-11-23T18:00:00Z"});
            if i % 2 == 0 {
                report["unit_id"] = json!(unit);
                report["unit_version"] = json!(1);
                report["tests_passed"] = json!(u32::from(i % 3 == 0));
                report["tests_total"] = json!(1);
            }
            report
        })
        .collect())
}

/// Sends every report, `batch` at a time (0: one per request to the
/// single route); answers the seconds it took.
async fn drain(cp: &ControlPlane, reports: &[Value], batch: usize) -> anyhow::Result<f64> {
    let router = control_plane::http::router(cp.clone());
    let started = Instant::now();
    if batch == 0 {
        for report in reports {
            let (status, answer) = call(
                &router,
                Method::POST,
                "/api/v1/submissions",
                KEY,
                Some(report),
            )
            .await?;
            ensure!(status == 201, "report: {status} {answer}");
        }
    } else {
        for chunk in reports.chunks(batch) {
            let body = json!({ "submissions": chunk });
            let (status, answer) = call(
                &router,
                Method::POST,
                "/api/v1/submissions/batch",
                KEY,
                Some(&body),
            )
            .await?;
            ensure!(status == 200, "batch: {status} {answer}");
            let results = answer["results"].as_array().context("results")?;
            ensure!(
                results.len() == chunk.len() && results.iter().all(|r| r["outcome"] == "created"),
                "batch: {answer}"
            );
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let engine = if options.database_url.is_empty() {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!(
        "{} submission reports ({} learners, half on an assignment) through the HTTP router \
         on {engine}, one request after another",
        options.reports, options.learners
    );
    println!();
    println!("| mode | requests | seconds | reports/s |");
    println!("| --- | ---: | ---: | ---: |");
    for batch in [0, options.batch] {
        let (scratch, config) = Scratch::new(&options).await?;
        let cp = ControlPlane::open(config).await?;
        let result = async {
            let reports = prepare(&cp, &options).await?;
            let seconds = drain(&cp, &reports, batch).await?;
            let (mode, requests) = if batch == 0 {
                ("one per request".to_owned(), reports.len())
            } else {
                (format!("batches of {batch}"), reports.len().div_ceil(batch))
            };
            println!(
                "| {mode} | {requests} | {seconds:.2} | {:.0} |",
                reports.len() as f64 / seconds
            );
            anyhow::Ok(())
        }
        .await;
        cp.db().close().await;
        scratch.drop_it().await?;
        result?;
    }
    Ok(())
}
