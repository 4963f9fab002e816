//! Sandbox latency and throughput benchmark, through the whole HTTP path of
//! a real one-edge dev cluster (token check, validation, warm container,
//! agent, verdict), side by side in one run with the floor (the program
//! started bare on the host) and the naive way (`docker run --rm` per run).
//!
//! For each language (a Python hello-world and a C hello-world, compiled in
//! the box) it prints p50/p95/p99 in milliseconds per stage and in total at
//! each concurrency, hot and cold starts apart; then the sustained rate: the
//! highest steady arrival rate (runs per second, open loop) whose p99 stays
//! under the target.
//!
//! Usage: `bench-sandbox [--runs N] [--concurrency 1,8] [--languages python,c]
//! [--sustain-secs S] [--pool-target P]`. Needs the Docker engine and
//! runtimes `scripts/services.sh docker runtimes` installs, and the `lyceum`
//! binary built next to this one.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Command-line settings.
#[derive(Debug, Parser)]
#[command(about = "Sandbox latency and throughput through the HTTP path")]
struct Args {
    /// Runs per language and concurrency.
    #[arg(long, default_value_t = 40)]
    runs: usize,
    /// Concurrencies to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Languages to measure (`python`, `c`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "python,c")]
    languages: Vec<String>,
    /// Seconds per step of the sustained-rate search (0 skips it).
    #[arg(long, default_value_t = 10)]
    sustain_secs: u64,
    /// The p99 the sustained rate must keep, in ms.
    #[arg(long, default_value_t = 500.0)]
    sustain_p99_ms: f64,
    /// Warm containers per language.
    #[arg(long, default_value_t = 8)]
    pool_target: u32,
}

/// One benchmarked program.
struct Program {
    language: &'static str,
    file: &'static str,
    source: &'static str,
    /// The same program bare on the host: a shell command in a temp dir.
    bare: &'static str,
}

const PROGRAMS: &[Program] = &[
    Program {
        language: "python",
        file: "main.py",
        source: "print('hello')",
        bare: "/usr/bin/python3 -c \"print('hello')\"",
    },
    Program {
        language: "c",
        file: "main.c",
        source: "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}",
        bare: "printf '#include <stdio.h>\\nint main(void){puts(\"hello\");return 0;}' > main.c \
               && /usr/bin/gcc -O2 -std=c17 -o main main.c && ./main",
    },
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round();
    sorted[rank as usize]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

fn report(name: &str, samples: Vec<f64>) {
    let samples = sorted(samples);
    println!(
        "{name:<46} n={:<4} p50={:>8.2} p95={:>8.2} p99={:>8.2} ms",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 95.0),
        percentile(&samples, 99.0)
    );
}

/// What one run through HTTP measured.
#[derive(Debug, Clone)]
struct Sample {
    total_ms: f64,
    hot: bool,
    stages: [f64; 4],
}

const STAGES: [&str; 4] = ["validate", "schedule", "execute", "capture"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for language in &args.languages {
        if !PROGRAMS.iter().any(|p| p.language == language) {
            bail!("--languages: {language:?} is not one of python, c");
        }
    }
    if args.runs == 0 || args.concurrency.contains(&0) {
        bail!("--runs and --concurrency must be at least 1");
    }
    let exe = std::env::current_exe()?.with_file_name("lyceum");
    if !exe.exists() {
        bail!("build lyceum first: cargo build -p node --bin lyceum");
    }
    let data = std::env::temp_dir().join(format!("lyceum-bench-{}", std::process::id()));
    let languages = serde_json::to_string(&args.languages)?;
    let mut dev = Command::new(&exe)
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__LANGUAGES", languages)
        .env("LYCEUM_SANDBOX__POOL_TARGET", args.pool_target.to_string())
        // The pools hold --pool-target, not what the observed rate asks:
        // each measurement starts from the same full pool.
        .env("LYCEUM_EDGE__POOL_POLICY", "fixed")
        .env("LYCEUM_EDGE__RUNS_PER_USER_PER_MINUTE_MAX", "1000000")
        .env("LYCEUM_EDGE__RUNS_PER_TENANT_PER_MINUTE_MAX", "1000000")
        .env("LYCEUM_DEV__REGIONS", "[\"eu-west\"]")
        .env("LYCEUM_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start lyceum dev")?;
    let result = bench(&data, &args).await;
    let _ = Command::new("kill").arg(dev.id().to_string()).status();
    let _ = dev.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// The edge's URL and a learner token, once the edge is ready.
async fn cluster(
    data: &std::path::Path,
    client: &reqwest::Client,
) -> anyhow::Result<(String, String)> {
    let cluster_path = data.join("cluster.json");
    let deadline = Instant::now() + Duration::from_secs(180);
    let cluster: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&cluster_path) {
            break serde_json::from_str(&text)?;
        }
        if Instant::now() > deadline {
            bail!("the dev cluster did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let edge = cluster["edges"][0]["url"]
        .as_str()
        .context("edge url")?
        .to_owned();
    let token = cluster["tokens"]["learner"]
        .as_str()
        .context("token")?
        .to_owned();
    loop {
        let ready = client.get(format!("{edge}/readyz")).send().await?;
        if ready.status().is_success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the edge did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((edge, token))
}

/// Waits until every pool is full again, so each measurement starts alike.
async fn pools_full(client: &reqwest::Client, edge: &str, token: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pools: Value = client
            .get(format!("{edge}/api/v1/sandbox/pools"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let full = pools["pools"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["warm"] == p["target"]));
        if full {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the warm pools did not refill: {pools}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn one_run(
    client: &reqwest::Client,
    edge: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let answer: Value = client
        .post(format!("{edge}/api/v1/runs"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .json()
        .await?;
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    if answer["status"] != "accepted" {
        bail!("run failed: {answer}");
    }
    let stage = |k: &str| answer["stages_ms"][k].as_f64().unwrap_or(f64::NAN);
    Ok(Sample {
        total_ms,
        hot: answer["hot"] == true,
        stages: STAGES.map(stage),
    })
}

/// `runs` runs with `concurrency` in flight at once (closed loop). At
/// concurrency 1 each run waits for the pool to refill first, as a learner
/// pausing between runs would.
async fn closed_loop(
    client: &reqwest::Client,
    edge: &str,
    token: &str,
    body: &Value,
    runs: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Sample>> {
    let left = Arc::new(Mutex::new(runs));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(runs)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, edge, token, body) = (
            client.clone(),
            edge.to_owned(),
            token.to_owned(),
            body.clone(),
        );
        let (left, samples) = (left.clone(), samples.clone());
        workers.spawn(async move {
            loop {
                {
                    let mut left = left.lock().await;
                    if *left == 0 {
                        return Ok::<_, anyhow::Error>(());
                    }
                    *left -= 1;
                }
                if concurrency == 1 {
                    pools_full(&client, &edge, &token).await?;
                }
                let sample = one_run(&client, &edge, &token, &body).await?;
                samples.lock().await.push(sample);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let samples = samples.lock().await.clone();
    Ok(samples)
}

/// Runs arriving at `rate` per second for `secs` seconds (open loop: a slow
/// answer does not slow the arrivals); returns every total latency.
async fn open_loop(
    client: &reqwest::Client,
    edge: &str,
    token: &str,
    body: &Value,
    rate: f64,
    secs: u64,
) -> anyhow::Result<Vec<Sample>> {
    let count = (rate * secs as f64).round().max(1.0) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..count {
        tokio::time::sleep_until(started + gap * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let (client, edge, token, body) = (
            client.clone(),
            edge.to_owned(),
            token.to_owned(),
            body.clone(),
        );
        runs.spawn(async move { one_run(&client, &edge, &token, &body).await });
    }
    let mut samples = Vec::with_capacity(count);
    while let Some(done) = runs.join_next().await {
        samples.push(done??);
    }
    Ok(samples)
}

fn print_samples(title: &str, samples: Vec<Sample>) {
    let (hot, cold): (Vec<Sample>, Vec<Sample>) = samples.into_iter().partition(|s| s.hot);
    println!("{title}: {} hot, {} cold", hot.len(), cold.len());
    report(
        "  lyceum: HTTP total, hot",
        hot.iter().map(|s| s.total_ms).collect(),
    );
    for (i, stage) in STAGES.iter().enumerate() {
        report(
            &format!("    stage {stage}, hot"),
            hot.iter().map(|s| s.stages[i]).collect(),
        );
    }
    if !cold.is_empty() {
        report(
            "  lyceum: HTTP total, cold (pool empty)",
            cold.iter().map(|s| s.total_ms).collect(),
        );
    }
}

async fn bench(data: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let (edge, token) = cluster(data, &client).await?;
    let image = String::from_utf8(
        Command::new("docker")
            .args([
                "images",
                "lyceum/sandbox",
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ])
            .output()?
            .stdout,
    )?;
    let image = image.lines().next().context("no sandbox image")?.to_owned();
    for program in PROGRAMS
        .iter()
        .filter(|p| args.languages.iter().any(|l| l == p.language))
    {
        let body = json!({"language": program.language,
                          "files": [{"name": program.file, "content": program.source}]});
        println!("\n== {} hello-world ==", program.language);
        for &concurrency in &args.concurrency {
            pools_full(&client, &edge, &token).await?;
            let samples =
                closed_loop(&client, &edge, &token, &body, args.runs, concurrency).await?;
            print_samples(
                &format!("concurrency {concurrency}, {} runs", args.runs),
                samples,
            );
        }
        let work = data.join(format!("bare-{}", program.language));
        std::fs::create_dir_all(&work)?;
        let mut bare = Vec::new();
        for _ in 0..args.runs {
            let started = Instant::now();
            let status = Command::new("/bin/sh")
                .args(["-c", program.bare])
                .current_dir(&work)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("the bare program failed");
            }
            bare.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        report("floor: bare on the host, one at a time", bare);
        let mut naive = Vec::new();
        for _ in 0..args.runs.min(20) {
            let started = Instant::now();
            let status = Command::new("docker")
                .args([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "-v",
                    "/usr:/usr:ro",
                    "--tmpfs",
                    "/work:exec",
                    "-w",
                    "/work",
                    &image,
                    "/bin/sh",
                    "-c",
                    program.bare,
                ])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("docker run failed");
            }
            naive.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        report("naive: docker run --rm per run, one at a time", naive);
        if args.sustain_secs > 0 {
            sustained(&client, &edge, &token, &body, args).await?;
        }
    }
    Ok(())
}

/// Raises the arrival rate step by step until p99 passes the target; prints
/// each step and the best rate that kept it.
async fn sustained(
    client: &reqwest::Client,
    edge: &str,
    token: &str,
    body: &Value,
    args: &Args,
) -> anyhow::Result<()> {
    println!(
        "sustained rate, open loop, {} s per step, target p99 < {} ms:",
        args.sustain_secs, args.sustain_p99_ms
    );
    let mut best = None;
    for rate in [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0] {
        pools_full(client, edge, token).await?;
        let samples = open_loop(client, edge, token, body, rate, args.sustain_secs).await?;
        let hot = samples.iter().filter(|s| s.hot).count();
        let totals = sorted(samples.iter().map(|s| s.total_ms).collect());
        let p99 = percentile(&totals, 99.0);
        println!(
            "  {rate:>5.1} runs/s: n={:<4} hot={hot:<4} p50={:>8.1} p99={p99:>8.1} ms",
            totals.len(),
            percentile(&totals, 50.0)
        );
        if p99 < args.sustain_p99_ms {
            best = Some(rate);
        } else {
            break;
        }
    }
    match best {
        Some(rate) => println!(
            "  => sustained {rate} runs/s with p99 under {} ms",
            args.sustain_p99_ms
        ),
        None => println!(
            "  => no tested rate kept p99 under {} ms",
            args.sustain_p99_ms
        ),
    }
    Ok(())
}
