//! The SFU against webrtc-crate clients over loopback: forwarding, server
//! mute, who may publish, bad input and limits at their edge, cleanup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use media::signal::ClientSignal;
use media::{MediaErrorCode, MediaRole, Sfu, SfuConfig};

use crate::client::{candidate, test_config, Client, WAIT};

fn sfu(config: SfuConfig) -> Result<Sfu> {
    Sfu::new(config).map_err(|err| anyhow!("sfu: {err}"))
}

/// Polls `check` on a bounded schedule: for state the SFU changes from its
/// own tasks (removal), which has no event to wait on from outside.
async fn eventually(what: &str, check: impl Fn() -> bool) -> Result<()> {
    tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .with_context(|| format!("{what} did not happen within {WAIT:?}"))
}

fn dropped(sfu: &Sfu, reason: &str) -> u64 {
    sfu.metrics()
        .dropped_packets
        .with_label_values(&[reason])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instructor_is_heard_and_a_server_mute_stops_a_learner_at_once() -> Result<()> {
    let sfu = sfu(test_config())?;
    let mut teacher = Client::join(&sfu, "teacher", "class-1", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 2).await?;
    teacher.negotiate(&sfu).await??;
    let mut learner = Client::join(&sfu, "learner", "class-1", MediaRole::Learner).await?;

    // A learner not allowed to speak cannot publish, and stays a listener.
    learner.add_transceivers(true, 2).await?;
    let refused = learner
        .negotiate(&sfu)
        .await?
        .expect_err("a learner may not publish yet");
    assert_eq!(refused.code(), MediaErrorCode::PublishNotAllowed);
    assert_eq!(sfu.peer_count(), 2, "the refusal left the peer in place");

    // The instructor allows her; now her offer with a microphone passes.
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: false,
        },
    )?;
    learner.negotiate(&sfu).await??;
    let state = learner
        .wait_state(|s| {
            let publishing = |id: &str| s.peers.iter().any(|p| p.peer == id && p.slot.is_some());
            publishing("teacher") && publishing("learner")
        })
        .await?;
    assert!(state
        .peers
        .iter()
        .any(|p| p.peer == "learner" && p.may_publish));

    // Both talk; each hears the other (never itself: one slot each).
    teacher.start_talking();
    learner.start_talking();
    learner.wait_heard(25).await?;
    teacher.wait_heard(25).await?;
    // The counter goes up once a write returns, which may be after the
    // listener has read the packet: wait for it rather than race it.
    eventually("50 packets counted as forwarded", || {
        sfu.metrics().forwarded_packets.get() >= 50
    })
    .await?;
    assert_eq!(sfu.metrics().published_tracks.get(), 2);
    // Both joins were timed, and the listeners' RTCP receiver reports
    // about what the SFU sends them are read (the client sends them about
    // once a second).
    assert_eq!(sfu.metrics().join_seconds.get_sample_count(), 2);
    eventually("receiver reports read", || {
        sfu.metrics().rtcp_loss_ratio.get_sample_count() > 0
            && sfu.metrics().rtcp_jitter_seconds.get_sample_count() > 0
    })
    .await?;

    // Server mute: forwarding stops at the next packet.
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: true,
        },
    )?;
    let at_mute = teacher.heard_now();
    let muted_before = dropped(&sfu, "muted");
    eventually("25 muted packets dropped", || {
        dropped(&sfu, "muted") >= muted_before + 25
    })
    .await?;
    // At most the packets already in flight when the mute landed (200 ms
    // of them, for a loaded machine), against 25 dropped since.
    assert!(
        teacher.heard_now() <= at_mute + 10,
        "heard {} after the mute at {at_mute}",
        teacher.heard_now()
    );
    // She cannot unmute herself past the server mute.
    let err = sfu
        .handle("learner", ClientSignal::SetMuted { muted: false })
        .await;
    assert_eq!(err.map_err(|e| e.code()), Err(MediaErrorCode::ServerMuted));
    // The instructor was heard all along.
    let learner_heard = learner.heard_now();
    learner.wait_heard(learner_heard + 10).await?;

    // Lifting the mute lets her through again.
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: false,
        },
    )?;
    let now = teacher.heard_now();
    teacher.wait_heard(now + 10).await?;

    sfu.leave("learner").await;
    sfu.leave("teacher").await;
    assert_eq!((sfu.peer_count(), sfu.room_count()), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_code_and_leaves_the_peer_working() -> Result<()> {
    let config = SfuConfig {
        offers_per_window_max: 4,
        offer_window_ms: 3_600_000,
        ..test_config()
    };
    let sfu = sfu(config)?;
    let mut teacher = Client::join(&sfu, "teacher", "class-2", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    let listener = Client::join(&sfu, "listener", "class-2", MediaRole::Learner).await?;
    listener.add_transceivers(false, 1).await?;
    teacher.negotiate(&sfu).await??; // offer 1 of 4
    listener.negotiate(&sfu).await??;
    teacher.start_talking();
    listener.wait_heard(10).await?;

    let check = |result: Result<Option<media::ServerSignal>, media::MediaError>,
                 code: MediaErrorCode| {
        assert_eq!(result.map(|_| ()).map_err(|e| e.code()), Err(code));
    };
    let offer = |sdp: &str| ClientSignal::Offer {
        sdp: sdp.to_owned(),
    };
    check(
        sfu.handle("teacher", offer("not sdp at all")).await,
        MediaErrorCode::MalformedSdp,
    ); // 2
    check(
        sfu.handle("teacher", offer("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n")).await,
        MediaErrorCode::UnsupportedMedia,
    ); // 3
    check(
        sfu.handle(
            "nobody",
            candidate("candidate:1 1 udp 1 192.0.2.9 9 typ host"),
        )
        .await,
        MediaErrorCode::UnknownPeer,
    );
    check(
        sfu.handle("teacher", candidate("not a candidate")).await,
        MediaErrorCode::MalformedCandidate,
    );
    check(
        sfu.handle(
            "teacher",
            candidate(&"x".repeat(media::signal::CANDIDATE_BYTES_MAX + 1)),
        )
        .await,
        MediaErrorCode::MalformedCandidate,
    );
    check(
        sfu.handle("teacher", ClientSignal::Answer { sdp: "v=0".into() })
            .await,
        MediaErrorCode::UnexpectedAnswer,
    );
    assert_eq!(
        sfu.set_rights("nobody", media::PeerRights::default())
            .map_err(|e| e.code()),
        Err(MediaErrorCode::UnknownPeer)
    );
    // offers_per_window_max (4) at its edge: the fourth passes the flood
    // check (and is malformed), the fifth is a flood.
    check(
        sfu.handle("teacher", offer("still not sdp")).await,
        MediaErrorCode::MalformedSdp,
    ); // 4
    check(
        sfu.handle("teacher", offer("still not sdp")).await,
        MediaErrorCode::RenegotiationFlood,
    ); // 5

    // The audio never stopped, and the room is as it was.
    let heard = listener.heard_now();
    listener.wait_heard(heard + 10).await?;
    assert_eq!(sfu.peer_count(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_at_their_edge() -> Result<()> {
    // peers_per_edge_max = 2: the third join is refused until one leaves.
    let config = SfuConfig {
        peers_per_edge_max: 2,
        publishers_per_room_max: 1,
        tracks_per_peer_max: 2,
        ..test_config()
    };
    let sfu = sfu(config)?;
    let first = Client::join(&sfu, "a", "room", MediaRole::Instructor).await?;
    let second = Client::join(&sfu, "b", "room", MediaRole::Instructor).await?;
    let third = Client::join(&sfu, "c", "room", MediaRole::Learner).await;
    let err = third.err().context("a third peer must be refused")?;
    assert!(err.to_string().contains("too_many_peers"), "{err}");
    let again = Client::join(&sfu, "a", "other", MediaRole::Learner)
        .await
        .err()
        .context("a duplicate id")?;
    assert!(
        again.to_string().contains("too_many_peers") || again.to_string().contains("peer_exists"),
        "{again}"
    );

    // publishers_per_room_max = 1: the second publisher is refused.
    first.add_transceivers(true, 1).await?;
    first.negotiate(&sfu).await??;
    second.add_transceivers(true, 1).await?;
    let refused = second
        .negotiate(&sfu)
        .await?
        .expect_err("one publisher only");
    assert_eq!(refused.code(), MediaErrorCode::TooManyPublishers);
    // tracks_per_peer_max = 2: a third audio m-line is too many.
    second.add_transceivers(false, 1).await?;
    let refused = second.negotiate(&sfu).await?.expect_err("three tracks");
    assert_eq!(refused.code(), MediaErrorCode::TooManyTracks);

    // When the publisher leaves, its slot and peer are free again.
    sfu.leave("a").await;
    drop(first);
    let state = sfu.media_state("room").context("room b is in")?;
    assert!(state.peers.iter().all(|p| p.slot.is_none()));
    let _third = Client::join(&sfu, "c", "room", MediaRole::Learner).await?;
    assert_eq!(sfu.peer_count(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_holds_its_publishers_across_its_breakout_rooms() -> Result<()> {
    // Two publishers per room, but one per class: a learner allowed to
    // speak in a breakout room of the class is refused while the
    // instructor publishes in the class room, and may publish once the
    // instructor stops.
    let config = SfuConfig {
        publishers_per_room_max: 2,
        tracks_per_peer_max: 3,
        publishers_per_class_max: 1,
        ..test_config()
    };
    let sfu = sfu(config)?;
    let teacher = Client::join(&sfu, "teacher", "class", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    teacher.negotiate(&sfu).await??;
    let learner = Client::join(&sfu, "learner", "class/0", MediaRole::Learner).await?;
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: false,
        },
    )?;
    learner.add_transceivers(true, 1).await?;
    let refused = learner
        .negotiate(&sfu)
        .await?
        .expect_err("the class has its one publisher");
    assert_eq!(refused.code(), MediaErrorCode::TooManyPublishers);
    // Another class is not affected.
    let other = Client::join(&sfu, "other", "class-b", MediaRole::Instructor).await?;
    other.add_transceivers(true, 0).await?;
    other.negotiate(&sfu).await??;
    // The instructor stops publishing: the learner's offer passes.
    sfu.leave("teacher").await;
    drop(teacher);
    learner.negotiate(&sfu).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_connect_or_close_are_removed() -> Result<()> {
    let config = SfuConfig {
        connect_timeout_ms: 300,
        ..test_config()
    };
    let sfu = sfu(config)?;
    // Joined, never offered: removed after connect_timeout_ms.
    let _silent = Client::join(&sfu, "silent", "room", MediaRole::Learner).await?;
    assert_eq!(sfu.peer_count(), 1);
    eventually("the silent peer is removed", || sfu.peer_count() == 0).await?;
    assert_eq!(sfu.room_count(), 0);
    assert_eq!(sfu.metrics().peers_reaped.get(), 1);

    // Connected, then its connection closes: removed, its slot freed.
    let mut teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    teacher.negotiate(&sfu).await??;
    let mut listener = Client::join(&sfu, "listener", "room", MediaRole::Learner).await?;
    listener.add_transceivers(false, 1).await?;
    listener.negotiate(&sfu).await??;
    teacher.start_talking();
    listener.wait_heard(5).await?;
    teacher.pc.close().await?;
    eventually("the closed peer is removed", || sfu.peer_count() == 1).await?;
    listener.wait_state(|s| s.peers.len() == 1).await?;
    eventually("its track ends", || {
        sfu.metrics().published_tracks.get() == 0
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_over_its_packet_rate_is_cut_to_the_rate() -> Result<()> {
    // publisher_packets_per_second_max = 10 against a 50 packets/s talker.
    let config = SfuConfig {
        publisher_packets_per_second_max: 10,
        ..test_config()
    };
    let sfu = sfu(config)?;
    let mut teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 0).await?;
    teacher.negotiate(&sfu).await??;
    let listener = Client::join(&sfu, "listener", "room", MediaRole::Learner).await?;
    listener.add_transceivers(false, 1).await?;
    listener.negotiate(&sfu).await??;
    let started = tokio::time::Instant::now();
    teacher.start_talking();
    listener.wait_heard(5).await?;
    eventually("80 packets dropped for rate", || {
        dropped(&sfu, "rate") >= 80
    })
    .await?;
    let seconds = started.elapsed().as_secs() + 1;
    let forwarded = sfu.metrics().forwarded_packets.get();
    assert!(
        forwarded <= 10 * seconds,
        "{forwarded} forwarded in under {seconds} s"
    );
    assert!(listener.heard_now() <= forwarded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_keep_up_with_its_frames_is_removed() -> Result<()> {
    // outbound_frames_max = 2: every join and removal sends the room's media
    // state to each member; nobody reads here except `a`, once.
    let config = SfuConfig {
        outbound_frames_max: 2,
        ..test_config()
    };
    let sfu = sfu(config)?;
    let join = |peer: &str| media::JoinRequest {
        peer: peer.into(),
        room: "room".into(),
        role: MediaRole::Learner,
        rights: media::PeerRights::default(),
        open_mic: false,
    };
    let drain = |link: &mut media::PeerLink| while link.signals.try_recv().is_ok() {};
    let mut a = sfu.join(join("a")).await?;
    drain(&mut a);
    let mut b = sfu.join(join("b")).await?;
    drain(&mut a);
    let mut c = sfu.join(join("c")).await?;
    // At the edge: `b` holds exactly two frames and stays.
    assert_eq!(sfu.peer_count(), 3);
    drain(&mut a);
    drain(&mut c);
    let _d = sfu.join(join("d")).await?;
    // The third frame for `b` removed it; the others hold two each.
    assert_eq!(sfu.peer_count(), 3);
    let state = sfu.media_state("room").context("room")?;
    assert!(state.peers.iter().all(|p| p.peer != "b"), "{state:?}");
    assert_eq!(sfu.metrics().peers_reaped.get(), 1);
    let mut frames = 0;
    while b.signals.recv().await.is_some() {
        frames += 1;
    }
    assert_eq!(frames, 2, "b's queue ends after the frames it held");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_is_removed_within_the_ice_timeouts() -> Result<()> {
    let config = SfuConfig {
        ice_disconnected_timeout_ms: 500,
        ice_failed_timeout_ms: 500,
        ..test_config()
    };
    // The ICE timeouts plus keepalive and scheduling slack on a loaded machine.
    let bound =
        Duration::from_millis(config.ice_disconnected_timeout_ms + config.ice_failed_timeout_ms)
            + Duration::from_secs(5);
    let sfu = sfu(config)?;
    let mut teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 0).await?;
    teacher.negotiate(&sfu).await??;
    let cut = Arc::new(AtomicBool::new(false));
    let learner = Client::join_with(
        &sfu,
        "learner",
        "room",
        MediaRole::Learner,
        Some(Arc::clone(&cut)),
    )
    .await?;
    learner.add_transceivers(false, 1).await?;
    learner.negotiate(&sfu).await??;
    teacher.start_talking();
    learner.wait_heard(10).await?;

    // The learner's network goes away: no goodbye, no DTLS close.
    cut.store(true, Ordering::Release);
    let cut_at = tokio::time::Instant::now();
    eventually("the vanished peer is removed", || sfu.peer_count() == 1).await?;
    let took = cut_at.elapsed();
    assert!(took <= bound, "removed after {took:?}, bound {bound:?}");
    // Not before ICE could have noticed: it was the timeouts that removed it.
    assert!(
        took >= Duration::from_millis(500),
        "removed after only {took:?}"
    );
    eprintln!("vanished peer removed after {took:?}");
    assert_eq!(sfu.metrics().peers_reaped.get(), 1);
    let state = sfu.media_state("room").context("room")?;
    assert_eq!(state.peers.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_from_the_browser_keeps_the_audio() -> Result<()> {
    let sfu = sfu(test_config())?;
    let mut teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 0).await?;
    teacher.negotiate(&sfu).await??;
    let listener = Client::join(&sfu, "listener", "room", MediaRole::Learner).await?;
    listener.add_transceivers(false, 1).await?;
    listener.negotiate(&sfu).await??;
    teacher.start_talking();
    listener.wait_heard(10).await?;

    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    let before = listener
        .pc
        .remote_description()
        .await
        .context("answer")?
        .sdp;
    listener.restart_ice(&sfu).await??;
    let after = listener
        .pc
        .remote_description()
        .await
        .context("answer")?
        .sdp;
    assert_ne!(
        ufrag(&before),
        ufrag(&after),
        "the server answered with new ICE credentials"
    );
    let heard = listener.heard_now();
    listener.wait_heard(heard + 25).await?;
    assert_eq!(sfu.peer_count(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_stays_inside_each_breakout_room() -> Result<()> {
    let sfu = sfu(test_config())?;
    let mut teacher = Client::join(&sfu, "teacher", "class", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 2).await?;
    teacher.negotiate(&sfu).await??;
    let mut one = Client::join(&sfu, "one", "class", MediaRole::Learner).await?;
    sfu.set_rights(
        "one",
        media::PeerRights {
            may_publish: true,
            server_muted: false,
        },
    )?;
    one.add_transceivers(true, 2).await?;
    one.negotiate(&sfu).await??;
    let two = Client::join(&sfu, "two", "class", MediaRole::Learner).await?;
    two.add_transceivers(false, 2).await?;
    two.negotiate(&sfu).await??;

    // Everyone hears the instructor in the main room.
    teacher.start_talking();
    one.wait_heard(10).await?;
    two.wait_heard(10).await?;

    // Breakouts open: one and two apart, the instructor visits room 1.
    sfu.move_peer("one", "class/1")?;
    sfu.move_peer("two", "class/2")?;
    sfu.move_peer("teacher", "class/1")?;
    let two_at_move = two.heard_now();
    one.wait_state(|s| s.room == "class/1" && s.peers.len() == 2)
        .await?;
    one.start_talking();
    let one_at_move = one.heard_now();
    one.wait_heard(one_at_move + 25).await?;
    teacher.wait_heard(25).await?;
    // At most what was in flight at the move (200 ms on a loaded machine).
    assert!(
        two.heard_now() <= two_at_move + 10,
        "room 2 heard room 1: {} after {two_at_move}",
        two.heard_now()
    );
    assert!(sfu.media_state("class").is_none(), "the main room is empty");

    // Breakouts end: everyone is back in the main room and hears it.
    for peer in ["one", "two", "teacher"] {
        sfu.move_peer(peer, "class")?;
    }
    let two_back = two.heard_now();
    two.wait_heard(two_back + 50).await?;
    let state = sfu.media_state("class").context("main room")?;
    assert_eq!(state.peers.len(), 3);
    assert_eq!(state.peers.iter().filter(|p| p.slot.is_some()).count(), 2);
    assert_eq!(sfu.room_count(), 1);
    let err = sfu.move_peer("nobody", "class").map_err(|e| e.code());
    assert_eq!(err, Err(MediaErrorCode::UnknownPeer));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_speaker_follows_the_audio_level_at_a_bounded_rate() -> Result<()> {
    let config = SfuConfig {
        active_speaker_interval_ms: 200,
        ..test_config()
    };
    let interval = Duration::from_millis(config.active_speaker_interval_ms);
    let sfu = sfu(config)?;
    let mut teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(true, 1).await?;
    teacher.negotiate(&sfu).await??;
    let mut learner = Client::join(&sfu, "learner", "room", MediaRole::Learner).await?;
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: false,
        },
    )?;
    learner.add_transceivers(true, 1).await?;
    learner.negotiate(&sfu).await??;
    let started = tokio::time::Instant::now();
    // Both send; only the instructor is louder than SPEAKING_DBOV_MAX.
    teacher.level.store(10, Ordering::Release);
    teacher.start_talking();
    learner.start_talking();
    learner.wait_speaker(Some("teacher"), 0).await?;
    // She falls quiet and the learner speaks up.
    teacher.level.store(127, Ordering::Release);
    learner
        .level
        .store(media::sfu::SPEAKING_DBOV_MAX, Ordering::Release);
    let seen = teacher.wait_speaker(Some("learner"), 0).await?;
    // A server mute takes the learner off the air: nobody speaks.
    sfu.set_rights(
        "learner",
        media::PeerRights {
            may_publish: true,
            server_muted: true,
        },
    )?;
    let announcements = teacher.wait_speaker(None, seen).await?;
    // At most one announcement per interval (plus the first).
    let rounds = u32::try_from(started.elapsed().as_millis() / interval.as_millis())? + 1;
    assert!(
        announcements <= rounds,
        "{announcements} announcements in {rounds} rounds"
    );
    assert!(
        announcements >= 3,
        "teacher, learner, nobody: {announcements}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_mic_room_lets_every_learner_publish_until_it_closes() -> Result<()> {
    let sfu = sfu(test_config())?;
    let teacher = Client::join(&sfu, "teacher", "room", MediaRole::Instructor).await?;
    teacher.add_transceivers(false, 1).await?;
    teacher.negotiate(&sfu).await??;
    let mut learner = Client::join(&sfu, "learner", "room", MediaRole::Learner).await?;
    learner.add_transceivers(true, 0).await?;
    let refused = learner.negotiate(&sfu).await?.expect_err("mic closed");
    assert_eq!(refused.code(), MediaErrorCode::PublishNotAllowed);

    // The class opens the mic (the classroom checks who may).
    sfu.set_open_mic("room", true);
    learner
        .wait_state(|s| s.open_mic && s.peers.iter().all(|p| p.may_publish))
        .await?;
    learner.negotiate(&sfu).await??;
    learner.start_talking();
    teacher.wait_heard(20).await?;

    // Closing it stops the learner's audio at once.
    sfu.set_open_mic("room", false);
    let at_close = teacher.heard_now();
    let muted_before = dropped(&sfu, "muted");
    eventually("25 packets dropped after closing the mic", || {
        dropped(&sfu, "muted") >= muted_before + 25
    })
    .await?;
    assert!(
        teacher.heard_now() <= at_close + 10,
        "heard after the close"
    );
    Ok(())
}
