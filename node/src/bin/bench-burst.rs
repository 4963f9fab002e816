//! The burst replay: timetabled classes start in the same minute in every
//! region of a real `lyceum dev` cluster (real Docker, three edges on this
//! machine), each learner runs code as the class starts and then now and
//! then, and the warm pools meet it under each policy in turn, side by side
//! in one run: `fixed` (the pool as before timetables), `reactive` (the
//! observed rate only) and `predictive` (the timetable's plan and the
//! observed rate).
//!
//! For each policy a fresh cluster is started, the classes are imported as
//! a timetable `--lead-minutes` ahead, and the replay runs open loop (a slow
//! answer never slows the arrivals). It prints per policy: cold starts in
//! the burst and in all, run latency p50/p99 in the burst and in all,
//! warm-container-minutes held (sampled every second over the replay, from
//! the import to the end) and the share of warm-container time wasted
//! (containers destroyed unused, the pools drained at the end).
//!
//! Usage: `bench-burst [--learners 100] [--regions eu-west,us-east,ap-south]
//! [--policies fixed,reactive,predictive] [--class-minutes 4]
//! [--burst-spread-s 60] [--think-s 120] [--lead-minutes 2]
//! [--creations-per-minute 60] [--pool-target 2] [--seed 7]`. Needs the
//! Docker engine and runtimes (`scripts/services.sh docker runtimes`) and
//! the `lyceum` binary built next to this one; `scripts/bench-burst` builds
//! both in release and runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Command-line settings.
#[derive(Debug, Parser)]
#[command(about = "Timetabled bursts against the three warm-pool policies")]
struct Args {
    /// Learners per class (one class per region).
    #[arg(long, default_value_t = 100)]
    learners: u32,
    /// Regions of the cluster, one class each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eu-west,us-east,ap-south"
    )]
    regions: Vec<String>,
    /// Policies to replay, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fixed,reactive,predictive"
    )]
    policies: Vec<String>,
    /// How long each class lasts (the replay's length), in minutes.
    #[arg(long, default_value_t = 4)]
    class_minutes: u32,
    /// Every learner's first run comes within this many seconds of the
    /// class's start.
    #[arg(long, default_value_t = 60)]
    burst_spread_s: u32,
    /// Mean seconds between a learner's later runs (exponential).
    #[arg(long, default_value_t = 120)]
    think_s: u32,
    /// Minutes between the import of the timetable and the classes' start
    /// (at least the warm-up lead the forecast needs).
    #[arg(long, default_value_t = 2)]
    lead_minutes: u32,
    /// `forecast_container_creations_per_minute` of the control plane: what
    /// one edge's share of this machine's engine creates per minute under
    /// load.
    #[arg(long, default_value_t = 60)]
    creations_per_minute: u32,
    /// `sandbox.pool_target`: the fixed policy's pool, and every policy's
    /// floor.
    #[arg(long, default_value_t = 2)]
    pool_target: u32,
    /// Seed of the learners' timings (the same for every policy).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// One run as the replay saw it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds after the classes' start.
    at_s: f64,
    latency_ms: f64,
    hot: bool,
    ok: bool,
}

/// What one policy's replay measured.
#[derive(Debug, Default)]
struct Outcome {
    policy: String,
    samples: Vec<Sample>,
    warm_container_seconds: f64,
    used_warm_seconds: f64,
    wasted_warm_seconds: f64,
    peak_target: u64,
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() as f64 - 1.0)).round();
    values[rank as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for policy in &args.policies {
        if !["fixed", "reactive", "predictive"].contains(&policy.as_str()) {
            bail!("--policies: {policy:?} is not one of fixed, reactive, predictive");
        }
    }
    if args.learners == 0 || args.regions.is_empty() || args.class_minutes == 0 {
        bail!("--learners, --regions and --class-minutes must not be empty or 0");
    }
    let exe = std::env::current_exe()?.with_file_name("lyceum");
    if !exe.exists() {
        bail!("build lyceum first: cargo build -p node --bin lyceum");
    }
    println!(
        "burst replay: {} classes of {} learners ({}), first runs within {} s, then one every {} s on average, {} minutes; timetable {} minutes ahead; forecast_container_creations_per_minute {}; sandbox.pool_target {}",
        args.regions.len(),
        args.learners,
        args.regions.join(", "),
        args.burst_spread_s,
        args.think_s,
        args.class_minutes,
        args.lead_minutes,
        args.creations_per_minute,
        args.pool_target,
    );
    let mut outcomes = Vec::new();
    for policy in &args.policies {
        println!("\n== {policy} ==");
        let data = std::env::temp_dir().join(format!(
            "lyceum-bench-burst-{}-{policy}",
            std::process::id()
        ));
        let mut dev = start_dev(&exe, &data, &args, policy)?;
        let result = replay(&data, &args, policy).await;
        let _ = Command::new("kill").arg(dev.id().to_string()).status();
        let _ = dev.wait();
        let _ = std::fs::remove_dir_all(&data);
        let outcome = result?;
        print_outcome(&outcome, &args);
        outcomes.push(outcome);
    }
    println!("\n== side by side ==");
    println!(
        "| policy | cold starts in the burst | cold starts in all | run p50 / p99 in the burst | run p50 / p99 in all | failed runs | warm-container-minutes held | wasted |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for o in &outcomes {
        let burst: Vec<&Sample> = o.samples.iter().filter(|s| in_burst(s, &args)).collect();
        let cold_burst = burst.iter().filter(|s| !s.hot).count();
        let cold_all = o.samples.iter().filter(|s| !s.hot).count();
        let failed = o.samples.iter().filter(|s| !s.ok).count();
        let lat = |v: &[&Sample]| v.iter().map(|s| s.latency_ms).collect::<Vec<_>>();
        let all: Vec<&Sample> = o.samples.iter().collect();
        println!(
            "| {} | {cold_burst} of {} | {cold_all} of {} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {failed} | {:.1} | {:.0} % |",
            o.policy,
            burst.len(),
            o.samples.len(),
            percentile(lat(&burst), 50.0),
            percentile(lat(&burst), 99.0),
            percentile(lat(&all), 50.0),
            percentile(lat(&all), 99.0),
            o.warm_container_seconds / 60.0,
            wasted_share(o) * 100.0,
        );
    }
    Ok(())
}

/// The burst: from the classes' start until every first run has come, and
/// ten seconds more.
fn in_burst(s: &Sample, args: &Args) -> bool {
    s.at_s < f64::from(args.burst_spread_s) + 10.0
}

fn wasted_share(o: &Outcome) -> f64 {
    let total = o.used_warm_seconds + o.wasted_warm_seconds;
    if total > 0.0 {
        o.wasted_warm_seconds / total
    } else {
        0.0
    }
}

fn print_outcome(o: &Outcome, args: &Args) {
    let burst: Vec<f64> = o
        .samples
        .iter()
        .filter(|s| in_burst(s, args))
        .map(|s| s.latency_ms)
        .collect();
    println!(
        "{}: {} runs ({} cold, {} failed); burst: {} runs, p50 {:.0} ms, p99 {:.0} ms; peak target {}; {:.1} warm-container-minutes held, {:.0} % of warm time wasted",
        o.policy,
        o.samples.len(),
        o.samples.iter().filter(|s| !s.hot).count(),
        o.samples.iter().filter(|s| !s.ok).count(),
        burst.len(),
        percentile(burst.clone(), 50.0),
        percentile(burst, 99.0),
        o.peak_target,
        o.warm_container_seconds / 60.0,
        wasted_share(o) * 100.0,
    );
}

fn start_dev(
    exe: &Path,
    data: &Path,
    args: &Args,
    policy: &str,
) -> anyhow::Result<std::process::Child> {
    let steady_per_hour = 3_600 / args.think_s.max(1);
    Command::new(exe)
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(data)
        .env("LYCEUM_DEV__REGIONS", serde_json::to_string(&args.regions)?)
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]")
        .env("LYCEUM_SANDBOX__POOL_TARGET", args.pool_target.to_string())
        .env("LYCEUM_EDGE__POOL_POLICY", policy)
        .env("LYCEUM_EDGE__POOL_PLAN_REFRESH_MS", "5000")
        .env("LYCEUM_EDGE__RUNS_PER_USER_PER_MINUTE_MAX", "1000000")
        .env("LYCEUM_EDGE__RUNS_PER_TENANT_PER_MINUTE_MAX", "1000000")
        // The timetable's shape as the replay makes it: one run per learner
        // in the first minute, then one every think_s.
        .env("LYCEUM_CONTROL_PLANE__FORECAST_BURST_MINUTES", "1")
        .env(
            "LYCEUM_CONTROL_PLANE__FORECAST_BURST_RUNS_PER_LEARNER_HOUR",
            "60",
        )
        .env(
            "LYCEUM_CONTROL_PLANE__FORECAST_DEFAULT_RUNS_PER_LEARNER_HOUR",
            steady_per_hour.to_string(),
        )
        .env(
            "LYCEUM_CONTROL_PLANE__FORECAST_CONTAINER_CREATIONS_PER_MINUTE",
            args.creations_per_minute.to_string(),
        )
        .env("LYCEUM_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start lyceum dev")
}

/// What a started cluster offers the replay.
struct Cluster {
    control_plane: String,
    edges: Vec<(String, String)>,
    learner: String,
    instructor: String,
    operator: String,
}

async fn cluster(data: &Path, client: &reqwest::Client) -> anyhow::Result<Cluster> {
    let path: PathBuf = data.join("cluster.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    let file: Value = loop {
        if let Some(v) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v;
        }
        if Instant::now() > deadline {
            bail!("the dev cluster did not start");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = |v: &Value| v.as_str().map(str::to_owned).context("cluster.json");
    let cluster = Cluster {
        control_plane: text(&file["control_plane"]["url"])?,
        edges: file["edges"]
            .as_array()
            .context("edges")?
            .iter()
            .map(|e| Ok((text(&e["region"])?, text(&e["url"])?)))
            .collect::<anyhow::Result<_>>()?,
        learner: text(&file["tokens"]["learner"])?,
        instructor: text(&file["tokens"]["instructor"])?,
        operator: text(&file["tokens"]["operator"])?,
    };
    let mut urls = vec![cluster.control_plane.clone()];
    urls.extend(cluster.edges.iter().map(|(_, u)| u.clone()));
    for url in urls {
        loop {
            let ready = client.get(format!("{url}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{url} did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(cluster)
}

/// The python pool of every edge: (warm, target, used_warm_seconds,
/// wasted_warm_seconds), summed.
async fn pools(
    client: &reqwest::Client,
    edges: &[(String, String)],
    operator: &str,
) -> anyhow::Result<(u64, u64, f64, f64)> {
    let mut sum = (0, 0, 0.0, 0.0);
    for (_, edge) in edges {
        let body: Value = client
            .get(format!("{edge}/api/v1/sandbox/pools"))
            .bearer_auth(operator)
            .send()
            .await?
            .json()
            .await?;
        let python = body["pools"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["language"] == "python"))
            .with_context(|| format!("no python pool on {edge}: {body}"))?;
        sum.0 += python["warm"].as_u64().unwrap_or(0);
        sum.1 += python["target"].as_u64().unwrap_or(0);
        sum.2 += python["used_warm_seconds"].as_f64().unwrap_or(0.0);
        sum.3 += python["wasted_warm_seconds"].as_f64().unwrap_or(0.0);
    }
    Ok(sum)
}

/// When each learner runs, in seconds after the start: the same for every
/// policy (one seed).
fn schedule(args: &Args, region: usize) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ (region as u64) << 32);
    let end = f64::from(args.class_minutes) * 60.0;
    let mut at = Vec::new();
    for _ in 0..args.learners {
        let mut t = rng.gen_range(0.0..f64::from(args.burst_spread_s.max(1)));
        while t < end {
            at.push(t);
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            t += -u.ln() * f64::from(args.think_s.max(1));
        }
    }
    at.sort_by(f64::total_cmp);
    at
}

async fn replay(data: &Path, args: &Args, policy: &str) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()?;
    let cluster = cluster(data, &client).await?;
    // Every pool at its base before the import.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pools(&client, &cluster.edges, &cluster.operator).await?.0
        < u64::from(args.pool_target) * cluster.edges.len() as u64
    {
        if Instant::now() > deadline {
            bail!("the pools did not fill to their base");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The classes start on a minute boundary, lead_minutes after the import.
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)?;
    let start_ms = (now_ms / 60_000 + 1 + u64::from(args.lead_minutes)) * 60_000;
    let fmt = |ms: u64| -> anyhow::Result<String> {
        let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(ms / 1000)?)?;
        Ok(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ))
    };
    let end_ms = start_ms + u64::from(args.class_minutes) * 60_000;
    let mut csv = String::from("uid,title,start,end,time_zone,region,languages,learners\n");
    for region in &args.regions {
        csv.push_str(&format!(
            "burst-{region},Burst {region},{},{},UTC,{region},python,{}\n",
            fmt(start_ms)?,
            fmt(end_ms)?,
            args.learners
        ));
    }
    let answer = client
        .post(format!("{}/api/v1/timetables", cluster.control_plane))
        .bearer_auth(&cluster.instructor)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("timetable import: {}", answer.text().await?);
    }
    let counters_before = pools(&client, &cluster.edges, &cluster.operator).await?;
    let wall_now = || {
        u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0)
    };
    let until_start = Duration::from_millis(start_ms.saturating_sub(wall_now()));
    let started = Instant::now() + until_start;
    println!(
        "timetable imported; classes start in {:.0} s",
        until_start.as_secs_f64()
    );

    // The sampler: warm containers held, every second, from now to the end.
    let stop = Arc::new(tokio::sync::Notify::new());
    let sampler = {
        let client = client.clone();
        let edges = cluster.edges.clone();
        let operator = cluster.operator.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut held = 0.0;
            let mut peak = 0;
            let mut last = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.notified() => return (held, peak),
                }
                if let Ok((warm, target, _, _)) = pools(&client, &edges, &operator).await {
                    let now = Instant::now();
                    held += warm as f64 * now.duration_since(last).as_secs_f64();
                    last = now;
                    peak = peak.max(target);
                }
            }
        })
    };

    // The learners, open loop.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut runs = tokio::task::JoinSet::new();
    for (i, (_, edge)) in cluster.edges.iter().enumerate() {
        for at in schedule(args, i) {
            let (client, edge, token, samples) = (
                client.clone(),
                edge.clone(),
                cluster.learner.clone(),
                samples.clone(),
            );
            runs.spawn(async move {
                tokio::time::sleep_until(started + Duration::from_secs_f64(at)).await;
                let sent = Instant::now();
                let answer = client
                    .post(format!("{edge}/api/v1/runs"))
                    .bearer_auth(&token)
                    .json(&json!({"language": "python",
                                  "files": [{"name": "main.py", "content": "print(sum(range(100)))"}]}))
                    .send()
                    .await;
                let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                let body: Value = match answer {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                samples.lock().await.push(Sample {
                    at_s: sent.duration_since(started).as_secs_f64(),
                    latency_ms,
                    hot: body["hot"] == true,
                    ok: body["status"] == "accepted",
                });
            });
        }
    }
    while let Some(done) = runs.join_next().await {
        done?;
    }
    tokio::time::sleep_until(started + Duration::from_secs(u64::from(args.class_minutes) * 60))
        .await;
    stop.notify_one();
    let (held, peak_target) = sampler.await?;
    // Drain every pool: what is still warm at the end was held for nothing.
    for (_, edge) in &cluster.edges {
        client
            .put(format!("{edge}/api/v1/sandbox/pools/python"))
            .bearer_auth(&cluster.operator)
            .json(&json!({"target": 0}))
            .send()
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now = pools(&client, &cluster.edges, &cluster.operator).await?;
        if now.0 == 0 || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let samples = samples.lock().await.clone();
    Ok(Outcome {
        policy: policy.to_owned(),
        samples,
        warm_container_seconds: held,
        used_warm_seconds: after.2 - counters_before.2,
        wasted_warm_seconds: after.3 - counters_before.3,
        peak_target,
    })
}
