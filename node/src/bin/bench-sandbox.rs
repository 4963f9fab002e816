//! Sandbox latency benchmark: a Python hello-world through the whole HTTP
//! path of a real dev cluster (token check, validation, warm container,
//! agent, verdict), side by side in one run with the floor (the bare runtime
//! started on the host) and the naive way (`docker run --rm` per run).
//! Prints p50/p95/p99 in milliseconds, per stage and in total.
//!
//! Usage: `bench-sandbox [RUNS]` (default 40). Needs the Docker engine and
//! runtimes `scripts/services.sh docker runtimes` installs, and the `lyceum`
//! binary built next to this one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round();
    sorted[rank as usize]
}

fn report(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{name:<44} n={:<4} p50={:>8.1} p95={:>8.1} p99={:>8.1} ms",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 95.0),
        percentile(&samples, 99.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("RUNS must be a number")?
        .unwrap_or(40);
    let exe = std::env::current_exe()?.with_file_name("lyceum");
    if !exe.exists() {
        bail!("build lyceum first: cargo build -p node --bin lyceum");
    }
    let data = std::env::temp_dir().join(format!("lyceum-bench-{}", std::process::id()));
    let mut dev = Command::new(&exe)
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]")
        .env("LYCEUM_SANDBOX__POOL_TARGET", "4")
        .env("LYCEUM_DEV__REGIONS", "[\"eu-west\"]")
        .env("LYCEUM_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start lyceum dev")?;
    let result = bench(&data, runs).await;
    let _ = Command::new("kill").arg(dev.id().to_string()).status();
    let _ = dev.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn bench(data: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    let cluster_path = data.join("cluster.json");
    let deadline = Instant::now() + Duration::from_secs(120);
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
    let client = reqwest::Client::new();
    // Wait for the edge to be ready (image built, pool warming).
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body =
        json!({"language": "python", "files": [{"name": "main.py", "content": "print('hello')"}]});

    let (mut total, mut validate, mut schedule, mut execute, mut capture) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cold = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let answer: Value = client
            .post(format!("{edge}/api/v1/runs"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if answer["status"] != "accepted" {
            bail!("run failed: {answer}");
        }
        if answer["hot"] == true {
            total.push(elapsed);
            let stage = |k: &str| answer["stages_ms"][k].as_f64().unwrap_or(f64::NAN);
            validate.push(stage("validate"));
            schedule.push(stage("schedule"));
            execute.push(stage("execute"));
            capture.push(stage("capture"));
        } else {
            cold += 1;
        }
        // Give the pool time to warm a replacement, as a class would.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut bare = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new("/usr/bin/python3")
            .args(["-c", "print('hello')"])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("python3 failed");
        }
        bare.push(started.elapsed().as_secs_f64() * 1000.0);
    }
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
    let mut naive = Vec::new();
    for _ in 0..runs.min(20) {
        let started = Instant::now();
        let status = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "/usr:/usr:ro",
                &image,
                "/usr/bin/python3",
                "-c",
                "print('hello')",
            ])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("docker run failed");
        }
        naive.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("python hello-world, concurrency 1, {runs} runs ({cold} cold starts left out)");
    report("lyceum: HTTP total (hot)", total);
    report("  stage validate", validate);
    report("  stage schedule", schedule);
    report("  stage execute", execute);
    report("  stage capture", capture);
    report("floor: bare python3 on the host", bare);
    report("naive: docker run --rm per run", naive);
    Ok(())
}
