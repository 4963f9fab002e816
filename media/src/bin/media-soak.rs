//! `media-soak`: a leak soak of the audio SFU, in one process. An instructor
//! publishes synthetic Opus into a room while listeners join, connect, hear
//! at least one packet and leave, cycle after cycle. Every `--every` cycles
//! it prints resident memory (`/proc/self/statm`) and open files
//! (`/proc/self/fd`), which must plateau: the `webrtc` crate has had
//! reference-cycle leaks, and this shows whether the SFU inherits one.
//!
//! Run: `cargo run --release -p media --bin media-soak -- [cycles] [every]`
//! (defaults 200 and 20). A bench, not a test: it prints, it does not judge.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use media::signal::{ClientSignal, ServerSignal};
use media::{JoinRequest, MediaRole, Sfu, SfuConfig};
use tokio::sync::watch;
use tokio::time::Instant;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// How long one join may take to hear its first packet.
const JOIN_WAIT: Duration = Duration::from_secs(20);
/// Bytes per page, for `/proc/self/statm` (4 KiB on every Linux we run).
const PAGE_BYTES: u64 = 4096;

fn client_api() -> Result<API> {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs()?;
    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    media::ensure_crypto_provider();
    Ok(APIBuilder::new()
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .build())
}

/// Joins `peer`, negotiates (one microphone or one listening slot), and
/// returns the client's connection and its count of packets heard.
async fn connect(
    sfu: &Sfu,
    api: &API,
    peer: &str,
    role: MediaRole,
    mic: Option<Arc<TrackLocalStaticRTP>>,
) -> Result<(Arc<RTCPeerConnection>, watch::Receiver<u64>)> {
    let mut link = sfu
        .join(JoinRequest {
            peer: peer.to_owned(),
            room: "soak".to_owned(),
            role,
            rights: media::PeerRights::default(),
            open_mic: false,
        })
        .await?;
    let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
    let (heard_tx, heard) = watch::channel(0u64);
    let heard_tx = Arc::new(heard_tx);
    pc.on_track(Box::new(move |track, _, _| {
        let heard_tx = Arc::clone(&heard_tx);
        Box::pin(async move {
            tokio::spawn(async move {
                while track.read_rtp().await.is_ok() {
                    heard_tx.send_modify(|n| *n += 1);
                }
            });
        })
    }));
    let init = |direction| {
        Some(RTCRtpTransceiverInit {
            direction,
            send_encodings: vec![],
        })
    };
    match mic {
        Some(mic) => {
            pc.add_transceiver_from_track(
                mic as Arc<dyn TrackLocal + Send + Sync>,
                init(RTCRtpTransceiverDirection::Sendonly),
            )
            .await?;
        }
        None => {
            pc.add_transceiver_from_kind(
                RTPCodecType::Audio,
                init(RTCRtpTransceiverDirection::Recvonly),
            )
            .await?;
        }
    }
    let offer = pc.create_offer(None).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    tokio::time::timeout(JOIN_WAIT, gathered.recv())
        .await
        .map_err(|_| "ice gathering did not complete")?;
    let sdp = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    let Some(ServerSignal::Answer { sdp }) = sfu.handle(peer, ClientSignal::Offer { sdp }).await?
    else {
        return Err("no answer".into());
    };
    pc.set_remote_description(RTCSessionDescription::answer(sdp)?)
        .await?;
    let candidates_pc = Arc::clone(&pc);
    tokio::spawn(async move {
        while let Some(frame) = link.signals.recv().await {
            if let ServerSignal::Candidate { candidate } = frame {
                let _ = candidates_pc
                    .add_ice_candidate(RTCIceCandidateInit {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_mline_index,
                        username_fragment: candidate.username_fragment,
                    })
                    .await;
            }
        }
    });
    Ok((pc, heard))
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|pages| pages.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * PAGE_BYTES)
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cycles: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let every: u32 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20)
        .max(1);
    let sfu = Sfu::new(SfuConfig {
        loopback_candidates: true,
        ..SfuConfig::default()
    })?;
    let api = client_api()?;
    let mic = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        },
        "mic".to_owned(),
        "soak".to_owned(),
    ));
    let (teacher, _) = connect(
        &sfu,
        &api,
        "teacher",
        MediaRole::Instructor,
        Some(Arc::clone(&mic)),
    )
    .await?;
    let talking = tokio::spawn({
        let mic = Arc::clone(&mic);
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let (mut seq, mut ts) = (0u16, 0u32);
            loop {
                tick.tick().await;
                let header = Header {
                    version: 2,
                    payload_type: 111,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc: 1,
                    ..Default::default()
                };
                let _ = mic
                    .write_rtp(&Packet {
                        header,
                        payload: bytes::Bytes::from_static(&[0xF8, 0xFF, 0xFE]),
                    })
                    .await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(960);
            }
        }
    });
    println!("cycle\trss_kib\topen_files\tpeers\tjoin_ms_last\tjoins_failed");
    println!(
        "0\t{}\t{}\t{}\t-\t0",
        rss_bytes() / 1024,
        open_files(),
        sfu.peer_count()
    );
    let started = Instant::now();
    let mut failed = 0u32;
    for cycle in 1..=cycles {
        let peer = format!("listener-{cycle}");
        let joined = Instant::now();
        let (pc, heard) = connect(&sfu, &api, &peer, MediaRole::Learner, None).await?;
        let mut join_ms = joined.elapsed().as_millis();
        let mut heard_one = heard.clone();
        match tokio::time::timeout(JOIN_WAIT, heard_one.wait_for(|n| *n > 0)).await {
            Ok(Ok(_)) => join_ms = joined.elapsed().as_millis(),
            _ => {
                failed += 1;
                eprintln!(
                    "cycle {cycle}: nothing heard in {JOIN_WAIT:?}; client {:?}, sfu peers {}",
                    pc.connection_state(),
                    sfu.peer_count()
                );
            }
        }
        sfu.leave(&peer).await;
        pc.close().await?;
        drop(pc);
        if cycle % every == 0 {
            // Let closing tasks finish before reading the figures.
            tokio::time::sleep(Duration::from_millis(200)).await;
            println!(
                "{cycle}\t{}\t{}\t{}\t{join_ms}\t{failed}",
                rss_bytes() / 1024,
                open_files(),
                sfu.peer_count()
            );
        }
    }
    println!(
        "# {cycles} cycles in {:.1} s; forwarded {} packets",
        started.elapsed().as_secs_f64(),
        sfu.metrics().forwarded_packets.get()
    );
    talking.abort();
    sfu.leave("teacher").await;
    teacher.close().await?;
    Ok(())
}
