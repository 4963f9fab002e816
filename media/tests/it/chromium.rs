//! Interop with real Chromium: the SFU plus a small HTTP signalling endpoint
//! run inside the test; Debian's headless Chromium opens a page that
//! publishes its fake microphone (a sine WAV the test writes) on one peer
//! connection and listens through the SFU on a second one. The page posts
//! its `getStats()` summary back; the test asserts that `inbound-rtp` audio
//! packets arrive at about the Opus frame rate and `totalAudioEnergy` grows,
//! and that the SFU, reading the RFC 6464 audio level Chromium puts on its
//! packets, announces the instructor as the active speaker. A second run
//! forces relay-only ICE through the embedded TURN server.
//!
//! The test fails, never skips, when `/usr/bin/chromium` is missing
//! (`scripts/services.sh chromium` installs it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use media::signal::{ClientSignal, ServerSignal};
use media::{JoinRequest, MediaRole, Sfu};
use serde::Deserialize;
use tokio::sync::mpsc;

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long Chromium may take to start, connect and report enough audio.
const INTEROP_WAIT: Duration = Duration::from_secs(60);
/// Packets the listener must report: two seconds of 20 ms Opus frames.
const PACKETS_WANTED: u64 = 100;

#[derive(Clone)]
struct Server {
    /// What the page builds its peer connections with: `iceServers` and
    /// `policy` (`all` or `relay`).
    ice: serde_json::Value,
    sfu: Sfu,
    links: Arc<Mutex<HashMap<String, mpsc::Receiver<ServerSignal>>>>,
    reports: mpsc::Sender<serde_json::Value>,
}

#[derive(Deserialize)]
struct JoinQuery {
    role: String,
}

async fn join(
    State(server): State<Server>,
    UrlPath(peer): UrlPath<String>,
    Query(query): Query<JoinQuery>,
) -> Json<serde_json::Value> {
    let role = if query.role == "instructor" {
        MediaRole::Instructor
    } else {
        MediaRole::Learner
    };
    match server
        .sfu
        .join(JoinRequest {
            peer: peer.clone(),
            room: "interop".into(),
            role,
            rights: media::PeerRights::default(),
            open_mic: false,
        })
        .await
    {
        Ok(link) => {
            server
                .links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(peer, link.signals);
            Json(serde_json::json!({ "ok": true }))
        }
        Err(err) => Json(serde_json::to_value(err.to_signal()).unwrap_or_default()),
    }
}

async fn signal(
    State(server): State<Server>,
    UrlPath(peer): UrlPath<String>,
    Json(frame): Json<ClientSignal>,
) -> Json<Vec<ServerSignal>> {
    match server.sfu.handle(&peer, frame).await {
        Ok(reply) => Json(reply.into_iter().collect()),
        Err(err) => Json(vec![err.to_signal()]),
    }
}

/// Drains the frames queued for `peer` (the page polls).
async fn poll(
    State(server): State<Server>,
    UrlPath(peer): UrlPath<String>,
) -> Json<Vec<ServerSignal>> {
    let mut frames = Vec::new();
    if let Some(link) = server
        .links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&peer)
    {
        while let Ok(frame) = link.try_recv() {
            frames.push(frame);
        }
    }
    Json(frames)
}

async fn report(
    State(server): State<Server>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let _ = server.reports.try_send(body);
    Json(serde_json::json!({}))
}

/// Writes a 48 kHz mono 16-bit WAV of a 440 Hz sine: Chromium loops it as
/// its fake microphone, so the audio energy the listener sees never stops.
fn write_sine_wav(path: &Path) -> Result<()> {
    const RATE: u32 = 48_000;
    let samples: Vec<i16> = (0..RATE * 2)
        .map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            (f64::from(i16::MAX) * 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect();
    let data_len = u32::try_from(samples.len() * 2)?;
    let mut wav = Vec::with_capacity(44 + samples.len() * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    std::fs::write(path, wav)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_and_hears_through_the_sfu() -> Result<()> {
    let report = interop(serde_json::json!({ "iceServers": [], "policy": "all" })).await?;
    ensure!(
        report["listener"]["candidate"] == "host" || report["listener"]["candidate"] == "prflx",
        "a direct path was expected: {report}"
    );
    Ok(())
}

/// A browser told to use relayed candidates only (`iceTransportPolicy:
/// "relay"`, what a network that allows nothing else forces) still gets
/// audio: both its connections go through the embedded TURN server, with
/// time-limited TURN REST credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_with_relay_only_ice_is_heard_through_turn() -> Result<()> {
    let secret = "interop-secret";
    let turn = media::turn::Turn::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        std::net::IpAddr::from([127, 0, 0, 1]),
        "lyceum",
        secret,
    )
    .await?;
    let server = media::turn::ice_server(
        vec![turn.url().to_owned()],
        secret,
        "interop",
        Duration::from_secs(600),
    );
    let report = interop(serde_json::json!({ "iceServers": [server], "policy": "relay" })).await;
    turn.close().await;
    let report = report?;
    // The browser gathered relayed candidates only, so its traffic went
    // through TURN: the pair in use has a relay candidate, or a
    // peer-reflexive one it learned from a check that came through the
    // relay (Chromium names it so when that check arrives first).
    for side in ["publisher", "listener"] {
        ensure!(
            report[side]["locals"]
                .as_array()
                .is_some_and(|types| types.iter().all(|t| t == "relay" || t == "prflx")
                    && types.iter().any(|t| t == "relay")),
            "the {side} gathered more than relayed candidates: {report}"
        );
        ensure!(
            report[side]["candidate"] == "relay" || report[side]["candidate"] == "prflx",
            "the {side} did not go through turn: {report}"
        );
    }
    Ok(())
}

/// Runs the page against a fresh SFU with `ice` for its peer connections
/// until the listener has heard enough; the last report.
async fn interop(ice: serde_json::Value) -> Result<serde_json::Value> {
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/services.sh chromium"
    );
    let sfu = Sfu::new(crate::client::test_config()).map_err(|err| anyhow::anyhow!("{err}"))?;
    let (reports_tx, mut reports) = mpsc::channel(1_024);
    let server = Server {
        ice: ice.clone(),
        sfu: sfu.clone(),
        links: Arc::default(),
        reports: reports_tx,
    };
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/ice",
            get(|State(server): State<Server>| async move { Json(server.ice) }),
        )
        .route("/join/{peer}", post(join))
        .route("/signal/{peer}", post(signal))
        .route("/poll/{peer}", post(poll))
        .route("/report", post(report))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("sine.wav");
    write_sine_wav(&wav)?;
    let profile = dir.path().join("profile");
    let mut chromium = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ])
        .arg(format!(
            "--use-file-for-fake-audio-capture={}",
            wav.display()
        ))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{addr}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting chromium")?;

    let outcome = tokio::time::timeout(INTEROP_WAIT, async {
        let mut first_energy: Option<f64> = None;
        let mut last = serde_json::Value::Null;
        while let Some(report) = reports.recv().await {
            if let Some(error) = report.get("error") {
                bail!("the page failed: {error}; last report {last}");
            }
            let packets = report["listener"]["packets"].as_u64().unwrap_or(0);
            let energy = report["listener"]["energy"].as_f64().unwrap_or(0.0);
            last = report;
            if packets > 0 && energy > 0.0 && first_energy.is_none() {
                first_energy = Some(energy);
            }
            let speaker = last["listener"]["speaker"].as_str() == Some("instructor");
            if let Some(first) = first_energy {
                if packets >= PACKETS_WANTED && energy > first && speaker {
                    return Ok(last);
                }
            }
        }
        bail!("the report channel closed; last report {last}")
    })
    .await;
    let _ = chromium.start_kill();
    let stderr = match chromium.wait_with_output().await {
        Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
        Err(err) => format!("(no chromium output: {err})"),
    };
    http.abort();
    let report = match outcome {
        Ok(Ok(report)) => report,
        Ok(Err(err)) => bail!("{err}\nchromium stderr:\n{stderr}"),
        Err(_) => bail!("no audio within {INTEROP_WAIT:?}\nchromium stderr:\n{stderr}"),
    };
    eprintln!("chromium report: {report}");
    // About the Opus frame rate: 50 packets a second, give or take.
    let rate = report["listener"]["packetsPerSecond"]
        .as_f64()
        .unwrap_or(0.0);
    ensure!(
        (35.0..=65.0).contains(&rate),
        "listener received {rate} packets per second: {report}"
    );
    ensure!(
        sfu.metrics().forwarded_packets.get() >= PACKETS_WANTED,
        "sfu forwarded too little"
    );
    Ok(report)
}

/// The page: one peer connection publishes the fake microphone as the
/// instructor, a second listens as a learner through the SFU; every 500 ms
/// it posts both sides' `getStats()` summary.
const PAGE: &str = r#"<!doctype html>
<html><body><script>
const post = async (path, body) => {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  return r.json();
};
const speakers = {};
const fail = (e) => post('/report', { error: String(e && e.stack || e) });
async function connect(peer, role, mic, slots) {
  const joined = await post(`/join/${peer}?role=${role}`);
  if (!joined.ok) throw new Error('join refused: ' + JSON.stringify(joined));
  const ice = await (await fetch('/ice')).json();
  const pc = new RTCPeerConnection({ iceServers: ice.iceServers, iceTransportPolicy: ice.policy });
  if (mic) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
  }
  for (let i = 0; i < slots; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.ontrack = (e) => { const a = new Audio(); a.srcObject = new MediaStream([e.track]); a.play().catch(() => {}); };
  await pc.setLocalDescription();
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') done(); };
  });
  const replies = await post(`/signal/${peer}`, { type: 'offer', sdp: pc.localDescription.sdp });
  const answer = replies.find((f) => f.type === 'answer');
  if (!answer) throw new Error('no answer: ' + JSON.stringify(replies));
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  (async () => {
    for (;;) {
      for (const f of await post(`/poll/${peer}`)) {
        if (f.type === 'candidate') await pc.addIceCandidate(f.candidate);
        if (f.type === 'active_speaker') speakers[peer] = f.peer;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })().catch(fail);
  return pc;
}
async function summary(pc, kind) {
  let packets = 0, energy = 0, candidate = null;
  const locals = new Set();
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'local-candidate') locals.add(s.candidateType);
    if (s.type === kind && s.kind === 'audio') {
      packets += (kind === 'inbound-rtp' ? s.packetsReceived : s.packetsSent) || 0;
      energy += s.totalAudioEnergy || 0;
    }
    // The type of the local candidate of the pair in use: host, srflx, relay.
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      if (local) candidate = local.candidateType;
    }
  });
  return { packets, energy, state: pc.connectionState, candidate, locals: [...locals].sort() };
}
(async () => {
  const publisher = await connect('instructor', 'instructor', true, 0);
  const listener = await connect('learner', 'learner', false, 1);
  let start = null;
  setInterval(async () => {
    try {
      const heard = await summary(listener, 'inbound-rtp');
      const now = performance.now();
      if (heard.packets > 0 && !start) start = { t: now, packets: heard.packets };
      heard.packetsPerSecond = start && now > start.t ? (heard.packets - start.packets) * 1000 / (now - start.t) : 0;
      heard.speaker = speakers.learner ?? null;
      await post('/report', { publisher: await summary(publisher, 'outbound-rtp'), listener: heard });
    } catch (e) { fail(e); }
  }, 500);
})().catch(fail);
</script></body></html>
"#;
