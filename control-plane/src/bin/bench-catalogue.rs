//! `bench-catalogue`: catalogue (`GET /api/v1/courses`) and course-page
//! (`GET /api/v1/courses/{id}`) read latency p50/p99 through the control
//! plane's HTTP router (auth, routing, serialisation; requests are handed to
//! the router in process, without a socket), at a baseline rate and at a
//! burst of ten times that, with the stale-while-revalidate cache on and
//! off side by side in one run over the same database.
//!
//! ```text
//! bench-catalogue [--seconds 3] [--rate 200] [--courses 200] [--database-url postgres://...]
//! ```
//! The load is open-loop: a request is started every `1/rate` seconds
//! whether or not earlier ones finished (so queueing under the burst
//! shows), and latency is counted from when it was handed to the router
//! until its body was read. The URL defaults to
//! `LYCEUM_TEST_DATABASE_URL`; a scratch database is created and dropped.

use std::str::FromStr as _;

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{bail, Context as _};
use axum::body::Body;
use axum::http::Request;
use control_plane::content::courses::{self, NewCourse};
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use sqlx::ConnectOptions as _;
use tower::ServiceExt as _;

struct Options {
    seconds: f64,
    rate: f64,
    courses: usize,
    database_url: String,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 3.0,
        rate: 200.0,
        courses: 200,
        database_url: std::env::var("LYCEUM_TEST_DATABASE_URL").unwrap_or_default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "--rate" => options.rate = value()?.parse().context("--rate")?,
            "--courses" => options.courses = value()?.parse().context("--courses")?,
            "--database-url" => options.database_url = value()?,
            "--help" | "-h" => {
                println!(
                    "bench-catalogue [--seconds 3] [--rate 200] [--courses 200] [--database-url postgres://...]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !options.database_url.starts_with("postgres") {
        bail!("give a PostgreSQL server with --database-url or LYCEUM_TEST_DATABASE_URL");
    }
    if options.seconds <= 0.0 || options.rate <= 0.0 || options.courses == 0 {
        bail!("--seconds, --rate and --courses must be positive");
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
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
    let result = run(&options, &format!("{base}/{name}")).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    result
}

async fn open(url: &str, cache: bool) -> anyhow::Result<ControlPlane> {
    let mut config = ControlPlaneConfig {
        database_url: url.to_owned(),
        db_connections_max: 16,
        ledger_expiry_sweep_interval_ms: 0,
        billing_clock_interval_ms: 0,
        analytics_interval_ms: 0,
        data_dir: std::env::temp_dir(),
        ..ControlPlaneConfig::default()
    };
    if !cache {
        config.content_cache_entries_max = 0;
    }
    Ok(ControlPlane::open(config).await?)
}

async fn run(options: &Options, url: &str) -> anyhow::Result<()> {
    let cached = open(url, true).await?;
    let uncached = open(url, false).await?;
    let tenant = identity::ensure_tenant(cached.db(), "bench", "Bench").await?;
    let mut ids = Vec::new();
    for i in 0..options.courses {
        let course = courses::create_course(
            cached.db(),
            &tenant,
            "bench-author",
            &NewCourse {
                title: format!("Course {i}"),
                summary: "A course of the catalogue benchmark. ".repeat(8),
            },
            0,
        )
        .await?;
        ids.push(course.id);
    }
    let ids = Arc::new(ids);
    println!(
        "catalogue and course-page reads through the HTTP router on PostgreSQL, {} courses, {} s per cell, open loop",
        options.courses, options.seconds
    );
    println!();
    println!("| cache | rate (requests/s) | requests | p50 ms | p99 ms | max ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for rate in [options.rate, options.rate * 10.0] {
        for (label, cp) in [("off", &uncached), ("on", &cached)] {
            let token = tokens::issue(
                cp.keys(),
                "bench-learner",
                &tenant,
                Role::Learner,
                "learner@bench.test",
                3_600,
            )?;
            let router = control_plane::http::router(cp.clone());
            let cell = load(router, &token, &ids, rate, options.seconds).await?;
            println!(
                "| {label} | {rate:.0} | {} | {:.2} | {:.2} | {:.2} | {} |",
                cell.latencies.len(),
                percentile(&cell.latencies, 0.50),
                percentile(&cell.latencies, 0.99),
                percentile(&cell.latencies, 1.0),
                cell.errors
            );
        }
    }
    cached.db().close().await;
    uncached.db().close().await;
    Ok(())
}

struct Cell {
    latencies: Vec<f64>,
    errors: u64,
}

/// Starts one request every `1/rate` s for `seconds`: even ones read a
/// catalogue page, odd ones a course page (spread over every course).
async fn load(
    router: axum::Router,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Cell> {
    let total = (rate * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        let path = if n % 2 == 0 {
            "/api/v1/courses?limit=50".to_owned()
        } else {
            format!("/api/v1/courses/{}", ids[(n / 2 * 7919) % ids.len()])
        };
        let request = Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())?;
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let response = router.oneshot(request).await;
            let ok = match response {
                Ok(response) => {
                    let ok = response.status().is_success();
                    // Read the body: the cost of an answer includes it.
                    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
                    ok
                }
                Err(_) => false,
            };
            (sent.elapsed().as_secs_f64() * 1_000.0, ok)
        }));
    }
    let mut cell = Cell {
        latencies: Vec::with_capacity(total),
        errors: 0,
    };
    for task in tasks {
        let (ms, ok) = task.await?;
        cell.latencies.push(ms);
        if !ok {
            cell.errors += 1;
        }
    }
    cell.latencies.sort_by(f64::total_cmp);
    Ok(cell)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
