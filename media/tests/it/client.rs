//! A webrtc-crate client for the tests: joins the SFU in-process, offers a
//! microphone and listening slots, sends synthetic Opus at 20 ms pacing and
//! counts the packets it hears. Waits are bounded and event-driven.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use media::signal::{ClientSignal, IceCandidate, MediaState, ServerSignal};
use media::{JoinRequest, MediaError, MediaRole, Sfu};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::sdp::extmap::AUDIO_LEVEL_URI;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::vanish::CuttableSocket;

/// How long any one wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// An Opus frame of 20 ms of silence (TOC 0xF8: CELT fullband 20 ms, one frame).
const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// One test client: a peer on the SFU and its own peer connection.
pub struct Client {
    pub id: String,
    pub pc: Arc<RTCPeerConnection>,
    mic: Arc<TrackLocalStaticRTP>,
    /// Packets heard so far, over every listening slot.
    pub heard: watch::Receiver<u64>,
    heard_tx: Arc<watch::Sender<u64>>,
    /// The last media state the SFU sent.
    pub state: watch::Receiver<Option<MediaState>>,
    /// The last active speaker the SFU announced, and how many announcements.
    pub speaker: watch::Receiver<(Option<String>, u32)>,
    /// The RFC 6464 level the client's packets carry (-dBov; 127 is silence).
    pub level: Arc<AtomicU8>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The SFU settings of the tests: loopback candidates, the rest default.
pub fn test_config() -> media::SfuConfig {
    media::SfuConfig {
        loopback_candidates: true,
        ..media::SfuConfig::default()
    }
}

impl Client {
    /// Joins `room` and builds the client's connection (no offer yet).
    pub async fn join(sfu: &Sfu, id: &str, room: &str, role: MediaRole) -> Result<Self> {
        Self::join_with(sfu, id, room, role, None).await
    }

    /// Joins as `join` does; with `cut`, all ICE traffic goes through one
    /// UDP socket that setting `cut` silences (a client that vanishes).
    pub async fn join_with(
        sfu: &Sfu,
        id: &str,
        room: &str,
        role: MediaRole,
        cut: Option<Arc<AtomicBool>>,
    ) -> Result<Self> {
        let mut link = sfu
            .join(JoinRequest {
                peer: id.to_owned(),
                room: room.to_owned(),
                role,
                rights: media::PeerRights::default(),
                open_mic: false,
            })
            .await
            .map_err(|err| anyhow!("join {id}: {err}"))?;
        let mut engine = MediaEngine::default();
        engine.register_default_codecs()?;
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RTPCodecType::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut engine)?;
        let mut settings = SettingEngine::default();
        settings.set_include_loopback_candidate(true);
        settings.set_network_types(vec![NetworkType::Udp4]);
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        if let Some(cut) = cut {
            let socket = CuttableSocket::bind(cut).await?;
            settings.set_udp_network(UDPNetwork::Muxed(UDPMuxDefault::new(UDPMuxParams::new(
                socket,
            ))));
        }
        media::ensure_crypto_provider();
        let api = APIBuilder::new()
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let (heard_tx, heard) = watch::channel(0u64);
        let heard_tx = Arc::new(heard_tx);
        {
            let heard_tx = Arc::clone(&heard_tx);
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
        }
        let mic = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                ..Default::default()
            },
            format!("mic-{id}"),
            format!("stream-{id}"),
        ));
        let (state_tx, state) = watch::channel(None);
        let (speaker_tx, speaker) = watch::channel((None, 0u32));
        // Server frames: media state now; candidates once the answer is set
        // (they are applied in order by this one task).
        let pump_pc = Arc::clone(&pc);
        let pump = tokio::spawn(async move {
            while let Some(frame) = link.signals.recv().await {
                match frame {
                    ServerSignal::MediaState(state) => {
                        let _ = state_tx.send(Some(state));
                    }
                    ServerSignal::ActiveSpeaker { peer, .. } => {
                        speaker_tx.send_modify(|(speaker, count)| {
                            *speaker = peer;
                            *count += 1;
                        });
                    }
                    ServerSignal::Candidate { candidate } => {
                        // The answer may still be in flight: retry briefly.
                        for _ in 0..100 {
                            if pump_pc.remote_description().await.is_some() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        let _ = pump_pc
                            .add_ice_candidate(RTCIceCandidateInit {
                                candidate: candidate.candidate,
                                sdp_mid: candidate.sdp_mid,
                                sdp_mline_index: candidate.sdp_mline_index,
                                username_fragment: candidate.username_fragment,
                            })
                            .await;
                    }
                    _ => {}
                }
            }
        });
        Ok(Self {
            id: id.to_owned(),
            pc,
            mic,
            heard,
            heard_tx,
            state,
            speaker,
            level: Arc::new(AtomicU8::new(127)),
            tasks: vec![pump],
        })
    }

    /// Adds a send-only microphone and `listen` receive-only slots.
    pub async fn add_transceivers(&self, mic: bool, listen: u8) -> Result<()> {
        if mic {
            self.pc
                .add_transceiver_from_track(
                    Arc::clone(&self.mic) as Arc<dyn TrackLocal + Send + Sync>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
        }
        for _ in 0..listen {
            self.pc
                .add_transceiver_from_kind(
                    RTPCodecType::Audio,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
        }
        Ok(())
    }

    /// Makes an offer with every candidate in it (the client does not trickle).
    async fn make_offer_with(&self, options: Option<RTCOfferOptions>) -> Result<String> {
        let offer = self.pc.create_offer(options).await?;
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(offer).await?;
        tokio::time::timeout(WAIT, gathered.recv())
            .await
            .context("ice gathering did not complete")?;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local description")?
            .sdp)
    }

    /// Sends an offer; on an answer, applies it. The SFU's refusal is `Err(Ok(e))`.
    pub async fn negotiate(&self, sfu: &Sfu) -> Result<std::result::Result<(), MediaError>> {
        self.negotiate_with(sfu, None).await
    }

    /// Renegotiates with new ICE credentials, as `pc.restartIce()` does
    /// after a network change.
    pub async fn restart_ice(&self, sfu: &Sfu) -> Result<std::result::Result<(), MediaError>> {
        let options = RTCOfferOptions {
            ice_restart: true,
            ..Default::default()
        };
        self.negotiate_with(sfu, Some(options)).await
    }

    async fn negotiate_with(
        &self,
        sfu: &Sfu,
        options: Option<RTCOfferOptions>,
    ) -> Result<std::result::Result<(), MediaError>> {
        let sdp = self.make_offer_with(options).await?;
        match sfu.handle(&self.id, ClientSignal::Offer { sdp }).await {
            Ok(Some(ServerSignal::Answer { sdp })) => {
                self.pc
                    .set_remote_description(RTCSessionDescription::answer(sdp)?)
                    .await?;
                Ok(Ok(()))
            }
            Ok(other) => bail!("an offer was answered with {other:?}"),
            Err(err) => {
                // Leave the client stable so it can offer again.
                let rollback: RTCSessionDescription =
                    serde_json::from_str(r#"{"type":"rollback","sdp":""}"#)?;
                let _ = self.pc.set_local_description(rollback).await;
                Ok(Err(err))
            }
        }
    }

    /// Starts sending synthetic Opus at 20 ms pacing until the client drops.
    pub fn start_talking(&mut self) {
        let mic = Arc::clone(&self.mic);
        let level = Arc::clone(&self.level);
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut seq: u16 = 0;
            let mut ts: u32 = 0;
            loop {
                tick.tick().await;
                let packet = Packet {
                    header: Header {
                        version: 2,
                        payload_type: 111,
                        sequence_number: seq,
                        timestamp: ts,
                        ssrc: 1,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from_static(&OPUS_SILENCE),
                };
                let level = AudioLevelExtension {
                    level: level.load(Ordering::Acquire),
                    voice: true,
                };
                let _ = mic
                    .write_rtp_with_extensions(&packet, &[HeaderExtension::AudioLevel(level)])
                    .await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(960);
            }
        }));
    }

    /// Waits until this client has heard `at_least` packets in all.
    pub async fn wait_heard(&self, at_least: u64) -> Result<u64> {
        let mut heard = self.heard.clone();
        let waited = tokio::time::timeout(WAIT, heard.wait_for(|n| *n >= at_least)).await;
        match waited {
            Ok(Ok(n)) => Ok(*n),
            _ => bail!(
                "{} heard {} packets, wanted {at_least}",
                self.id,
                self.heard_now()
            ),
        }
    }

    /// Packets heard so far.
    pub fn heard_now(&self) -> u64 {
        *self.heard_tx.borrow()
    }

    /// Waits until an announcement after the `after`-th names `peer` as the
    /// active speaker; returns how many announcements this client has had.
    pub async fn wait_speaker(&self, peer: Option<&str>, after: u32) -> Result<u32> {
        let mut speaker = self.speaker.clone();
        let waited = tokio::time::timeout(
            WAIT,
            speaker.wait_for(|(s, count)| *count > after && s.as_deref() == peer),
        )
        .await;
        match waited {
            Ok(Ok(got)) => Ok(got.1),
            _ => bail!(
                "{}: speaker never became {peer:?}; last {:?}",
                self.id,
                self.speaker.borrow()
            ),
        }
    }

    /// Waits until the SFU's media state satisfies `check`.
    pub async fn wait_state(&mut self, check: impl Fn(&MediaState) -> bool) -> Result<MediaState> {
        let mut state = self.state.clone();
        let waited =
            tokio::time::timeout(WAIT, state.wait_for(|s| s.as_ref().is_some_and(&check))).await;
        match waited {
            Ok(Ok(s)) => s.clone().context("no state"),
            _ => bail!(
                "{}: media state never matched; last {:?}",
                self.id,
                self.state.borrow()
            ),
        }
    }
}

/// A candidate frame, for the bad-input tests.
pub fn candidate(line: &str) -> ClientSignal {
    ClientSignal::Candidate {
        candidate: IceCandidate {
            candidate: line.to_owned(),
            sdp_mid: Some("0".to_owned()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        },
    }
}
