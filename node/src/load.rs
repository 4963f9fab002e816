//! `lyceum load`: the live-classroom load generator. It opens thousands of
//! WebSocket sessions across the dev cluster's regions, joins them to one
//! class, has the instructor broadcast at a set rate, and measures fan-out
//! latency (the instructor's send to every receiver's receive, one clock:
//! every process runs on this machine) in HDR histograms.
//!
//! One process may hold at most 20,000 open files here, so sessions are
//! spread over `--processes` worker processes (`lyceum load-worker`, fed a
//! plan on stdin, answering JSON lines on stdout). With `--baseline URL` the
//! same broadcast runs, in the same invocation, against a plain WebSocket
//! broadcast server (the Node `ws` one in `node/bench/ws-baseline/`), so the
//! two figures are side by side from one run on one machine.
//!
//! Sessions share a pool of `--users` learner accounts (a learner may have
//! several tabs open): signing up thousands of accounts would measure
//! Argon2, not the classroom, and fan-out is per session either way.

use std::{
    io::{BufRead as _, Write as _},
    time::Duration,
};

use tokio::time::Instant;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::{
    serialization::{Deserializer, Serializer as _, V2Serializer},
    Histogram,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;

use crate::api_client;
use crate::cli::LoadArgs;
use crate::cluster_file::ClusterFile;
use crate::config::Config;

/// Sessions one worker process opens at most (file headroom under 20,000).
pub const SESSIONS_PER_WORKER_MAX: usize = 9_500;
/// Connections a worker opens at once.
const CONNECT_CONCURRENCY: usize = 64;

/// What a worker is told to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// WebSocket URLs, used round-robin.
    pub urls: Vec<String>,
    /// Tickets, used round-robin (empty for a baseline server).
    pub tickets: Vec<String>,
    /// Sessions to open.
    pub sessions: usize,
    /// Broadcasts each session should receive before it reports done.
    pub expect: u64,
}

/// A worker's report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WorkerReport {
    opened: usize,
    failed: usize,
    received: u64,
    closed: usize,
    histogram: String,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Wall-clock nanoseconds, stamped into frames so that another process can
/// measure delivery latency (tokio's clock is per process).
#[expect(
    clippy::disallowed_methods,
    reason = "latency across processes needs the wall clock"
)]
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The send time a broadcast carries, from our frame or a baseline's.
fn sent_ns(frame: &Value) -> Option<u128> {
    let direct = frame.get("lt").and_then(Value::as_str);
    let text;
    let lt = match direct {
        Some(lt) => lt,
        None => {
            if frame["type"] != "broadcast" {
                return None;
            }
            text = serde_json::from_str::<Value>(frame["text"].as_str()?).ok()?;
            text.get("lt")?.as_str()?
        }
    };
    lt.parse().ok()
}

/// `lyceum load-worker`: opens the planned sessions, reports `ready`, then
/// records broadcast latencies until stdin says `stop` (or closes).
///
/// # Errors
/// When the plan cannot be read.
pub async fn worker() -> anyhow::Result<u8> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let plan: WorkerPlan =
        serde_json::from_str(&lines.next_line().await?.context("no plan on stdin")?)
            .context("the plan")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<u64>)>();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut opened = 0;
    let mut failed = 0;
    let mut handles = Vec::new();
    for i in 0..plan.sessions {
        let url = plan.urls[i % plan.urls.len()].clone();
        let ticket = plan.tickets.get(i % plan.tickets.len().max(1)).cloned();
        let permit = semaphore.clone().acquire_owned().await?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            session(url, ticket, ready_tx, tx).await;
        }));
        let ok = ready_rx.await.unwrap_or(false);
        drop(permit);
        if ok {
            opened += 1;
        } else {
            failed += 1;
        }
        if (i + 1) % 1000 == 0 {
            eprintln!("load-worker: {} sessions open", i + 1);
        }
    }
    drop(tx);
    println!("{}", json!({"ready": opened, "failed": failed}));
    std::io::stdout().flush()?;
    let mut hist = histogram();
    let mut received = 0u64;
    let mut closed = 0usize;
    let expected = plan.expect * u64::try_from(opened).unwrap_or(0);
    let mut done_said = false;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some((_, Some(us))) => {
                    received += 1;
                    let _ = hist.record(us.max(1));
                    if !done_said && received >= expected && expected > 0 {
                        println!("{}", json!({"done": received}));
                        std::io::stdout().flush()?;
                        done_said = true;
                    }
                }
                Some((_, None)) => closed += 1,
                None => break,
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) if line.trim() == "stop" => break,
                Ok(Some(_)) => {}
                _ => break,
            },
        }
    }
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(&hist, &mut bytes)?;
    let report = WorkerReport {
        opened,
        failed,
        received,
        closed,
        histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    println!("{}", serde_json::to_string(&report)?);
    std::io::stdout().flush()?;
    Ok(0)
}

/// One session: join, then report each broadcast's latency in µs.
async fn session(
    url: String,
    ticket: Option<String>,
    ready: tokio::sync::oneshot::Sender<bool>,
    tx: tokio::sync::mpsc::UnboundedSender<(u64, Option<u64>)>,
) {
    let Ok(Ok((mut socket, _))) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(&url),
    )
    .await
    else {
        let _ = ready.send(false);
        return;
    };
    let mut ready = Some(ready);
    if let Some(ticket) = ticket {
        let join = json!({"type": "join", "ticket": ticket}).to_string();
        if socket.send(Message::text(join)).await.is_err() {
            let _ = ready.take().map(|r| r.send(false));
            return;
        }
    } else if let Some(r) = ready.take() {
        let _ = r.send(true);
    }
    while let Some(message) = socket.next().await {
        let Ok(Message::Text(text)) = message else {
            if matches!(message, Ok(Message::Close(_)) | Err(_)) {
                break;
            }
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] == "snapshot" {
            if let Some(r) = ready.take() {
                let _ = r.send(true);
            }
            continue;
        }
        if frame["type"] == "error" && ready.is_some() {
            eprintln!("load-worker: join refused: {frame}");
            break;
        }
        if let Some(sent) = sent_ns(&frame) {
            let us = now_ns().saturating_sub(sent) / 1000;
            let _ = tx.send((0, Some(u64::try_from(us).unwrap_or(u64::MAX))));
        }
    }
    if let Some(r) = ready.take() {
        let _ = r.send(false);
    }
    let _ = tx.send((0, None));
}

/// One spawned worker; its stdout lines arrive on `lines`.
struct Worker {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Worker {
    fn spawn(plan: &WorkerPlan) -> anyhow::Result<Self> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("load-worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("spawn a load worker")?;
        let stdin = child.stdin.as_mut().context("worker stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(plan)?)?;
        stdin.flush()?;
        let out = std::io::BufReader::new(child.stdout.take().context("worker stdout")?);
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        if tx.send(value).is_err() {
                            break;
                        }
                    }
                    Err(err) => eprintln!("lyceum load: bad worker line {line:?}: {err}"),
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The next line, within `limit`.
    async fn line(&mut self, limit: Duration) -> anyhow::Result<Value> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => bail!("a load worker exited early"),
            Err(_) => bail!("a load worker said nothing for {limit:?}"),
        }
    }

    fn say(&mut self, text: &str) -> anyhow::Result<()> {
        let stdin = self.child.stdin.as_mut().context("worker stdin")?;
        writeln!(stdin, "{text}")?;
        stdin.flush()?;
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory and CPU seconds of a process, from /proc.
fn usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((rss_kb, ticks / 100.0))
}

/// The figures of one run.
#[derive(Debug, Serialize)]
struct Figures {
    target: String,
    sessions: usize,
    failed: usize,
    broadcasts: u64,
    rate_per_second: f64,
    delivered: u64,
    expected: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    deliveries_per_second: f64,
    edge_rss_kb_per_session: Option<f64>,
    edge_cpu_ms_per_1k_deliveries: Option<f64>,
}

/// Runs the workers against `urls`, the instructor broadcasting through
/// `send`, and returns the figures.
#[allow(clippy::too_many_arguments)]
async fn measure(
    target: &str,
    args: &LoadArgs,
    urls: Vec<String>,
    tickets: Vec<String>,
    instructor: (String, Option<String>),
    edge_pids: &[u32],
) -> anyhow::Result<Figures> {
    let workers_n = args
        .processes
        .max(args.sessions.div_ceil(SESSIONS_PER_WORKER_MAX))
        .max(1);
    let before: Vec<_> = edge_pids.iter().filter_map(|p| usage(*p)).collect();
    let mut workers = Vec::new();
    for w in 0..workers_n {
        let sessions = args.sessions / workers_n + usize::from(w < args.sessions % workers_n);
        let mut urls = urls.clone();
        let turn = w % urls.len().max(1);
        urls.rotate_left(turn);
        workers.push(Worker::spawn(&WorkerPlan {
            urls,
            tickets: tickets.clone(),
            sessions,
            expect: args.broadcasts,
        })?);
    }
    let mut opened = 0;
    let mut failed = 0;
    let open_limit = Duration::from_secs(600);
    for worker in &mut workers {
        let ready = worker.line(open_limit).await?;
        opened += ready["ready"].as_u64().unwrap_or(0) as usize;
        failed += ready["failed"].as_u64().unwrap_or(0) as usize;
    }
    eprintln!("lyceum load: {target}: {opened} sessions open ({failed} failed)");
    let after_open: Vec<_> = edge_pids.iter().filter_map(|p| usage(*p)).collect();
    let (mut socket, _) = tokio_tungstenite::connect_async(&instructor.0)
        .await
        .context("instructor connect")?;
    if let Some(ticket) = &instructor.1 {
        socket
            .send(Message::text(
                json!({"type": "join", "ticket": ticket}).to_string(),
            ))
            .await?;
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                if text.contains("\"type\":\"snapshot\"") {
                    break;
                }
            }
        }
    }
    let (mut sink, mut stream) = socket.split();
    // Keep reading so the instructor's own session never backs up.
    let reader = tokio::spawn(async move { while stream.next().await.is_some() {} });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_start: Vec<_> = edge_pids.iter().filter_map(|p| usage(*p)).collect();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let started = Instant::now();
    for i in 0..args.broadcasts {
        let payload = json!({"lt": now_ns().to_string(), "i": i}).to_string();
        let frame = if instructor.1.is_some() {
            json!({"type": "broadcast", "text": payload}).to_string()
        } else {
            payload
        };
        sink.send(Message::text(frame))
            .await
            .context("instructor socket")?;
        let next = started + interval * u32::try_from(i + 1).unwrap_or(u32::MAX);
        tokio::time::sleep_until(next).await;
    }
    // Wait until each worker has everything, or the grace passes.
    let grace = Duration::from_secs(args.grace_secs);
    let mut reports = Vec::new();
    for worker in &mut workers {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match worker.line(left).await {
                Ok(line) if line.get("done").is_some() => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_end: Vec<_> = edge_pids.iter().filter_map(|p| usage(*p)).collect();
    let _ = sink.close().await;
    reader.abort();
    let mut merged = histogram();
    let mut delivered = 0;
    for worker in &mut workers {
        worker.say("stop")?;
        let report: WorkerReport = loop {
            let line = worker.line(Duration::from_secs(60)).await?;
            if line.get("histogram").is_some() {
                break serde_json::from_value(line)?;
            }
        };
        delivered += report.received;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&report.histogram)?;
        let hist: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
        merged.add(hist).context("merge histograms")?;
        reports.push(report);
    }
    let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
    let rss_per_session = (!before.is_empty() && opened > 0).then(|| {
        let grew: i64 = after_open
            .iter()
            .zip(&before)
            .map(|(a, b)| a.0 as i64 - b.0 as i64)
            .sum();
        grew as f64 / opened as f64
    });
    let cpu_per_k = (!cpu_start.is_empty() && delivered > 0).then(|| {
        let cpu: f64 = cpu_end.iter().zip(&cpu_start).map(|(a, b)| a.1 - b.1).sum();
        cpu * 1000.0 / (delivered as f64 / 1000.0)
    });
    Ok(Figures {
        target: target.to_owned(),
        sessions: opened,
        failed,
        broadcasts: args.broadcasts,
        rate_per_second: args.rate,
        delivered,
        expected: args.broadcasts * opened as u64,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: merged.max() as f64 / 1000.0,
        deliveries_per_second: delivered as f64 / elapsed.max(0.001),
        edge_rss_kb_per_session: rss_per_session,
        edge_cpu_ms_per_1k_deliveries: cpu_per_k,
    })
}

/// `lyceum load`: see the module docs.
///
/// # Errors
/// When the cluster cannot be read or set up.
pub async fn run(args: &LoadArgs, config: &Config) -> anyhow::Result<u8> {
    let path = args
        .cluster
        .clone()
        .unwrap_or_else(|| config.data_dir.join("cluster.json"));
    let cluster: ClusterFile = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("read {} (start `lyceum dev` first)", path.display()))?,
    )
    .with_context(|| format!("parse {}", path.display()))?;
    let tokens = cluster.tokens.clone();
    let edges: Vec<_> = cluster
        .edges
        .iter()
        .filter(|e| e.state == "running")
        .filter(|e| args.regions.is_empty() || args.regions.contains(&e.region))
        .collect();
    if edges.is_empty() {
        bail!("no running edge in the chosen regions");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let cp = cluster.control_plane.url.trim_end_matches('/').to_owned();
    let home_region = edges[0].region.clone();
    let (course, class_id) = make_class(&http, &cp, &tokens.instructor, &home_region).await?;
    eprintln!("lyceum load: class {class_id} in course {course}, home region {home_region}");
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut tickets = Vec::new();
    for i in 0..args.users.max(1) {
        let email = format!("load-{}-{i}@load.test", &run[run.len() - 8..]);
        let body = api_client::post_json(
            &http,
            &format!("{cp}/api/v1/auth/sign-up"),
            None,
            &json!({"email": email, "password": "load-test-password", "display_name": format!("Load {i}"), "tenant": "dev"}),
        )
        .await?;
        let token = body["access_token"]
            .as_str()
            .context("sign-up token")?
            .to_owned();
        api_client::post_json(
            &http,
            &format!("{cp}/api/v1/courses/{course}/enrollments"),
            Some(&token),
            &json!({}),
        )
        .await?;
        let ticket = api_client::post_json(
            &http,
            &format!("{cp}/api/v1/live/tickets"),
            Some(&token),
            &json!({"class_id": class_id}),
        )
        .await?;
        tickets.push(ticket["ticket"].as_str().context("ticket")?.to_owned());
    }
    let teacher = api_client::post_json(
        &http,
        &format!("{cp}/api/v1/live/tickets"),
        Some(&tokens.instructor),
        &json!({"class_id": class_id}),
    )
    .await?;
    let teacher = teacher["ticket"].as_str().context("ticket")?.to_owned();
    let ws = |url: &str| format!("{}/api/v1/live", url.replacen("http", "ws", 1));
    let urls: Vec<String> = edges.iter().map(|e| ws(&e.url)).collect();
    let pids: Vec<u32> = edges.iter().map(|e| e.pid).collect();
    let mut results = vec![
        measure(
            "lyceum",
            args,
            urls.clone(),
            tickets,
            (urls[0].clone(), Some(teacher)),
            &pids,
        )
        .await?,
    ];
    if let Some(baseline) = &args.baseline {
        results.push(
            measure(
                "node-ws baseline",
                args,
                vec![baseline.clone()],
                Vec::new(),
                (baseline.clone(), None),
                &args.baseline_pid.into_iter().collect::<Vec<_>>(),
            )
            .await?,
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "| target | sessions | broadcasts/s | delivered | p50 ms | p90 ms | p99 ms | max ms | deliveries/s | RSS KiB/session | CPU ms/1k deliveries |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for r in &results {
            println!(
                "| {} | {} | {} | {}/{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} |",
                r.target,
                r.sessions,
                r.rate_per_second,
                r.delivered,
                r.expected,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                r.deliveries_per_second,
                r.edge_rss_kb_per_session
                    .map_or("-".into(), |v| format!("{v:.1}")),
                r.edge_cpu_ms_per_1k_deliveries
                    .map_or("-".into(), |v| format!("{v:.1}")),
            );
        }
    }
    Ok(0)
}

/// A fresh course with one published live-classroom unit homed in `region`.
async fn make_class(
    http: &reqwest::Client,
    cp: &str,
    instructor: &str,
    region: &str,
) -> anyhow::Result<(String, String)> {
    let (course, module) =
        api_client::course_with_module(http, cp, instructor, "Load test", "lyceum load").await?;
    let unit = api_client::live_class(http, cp, instructor, &module, "Load class", region).await?;
    Ok((course, unit))
}
