//! Live audio's signalling through real edges, without a browser: `media`
//! frames on the live WebSocket of the dev cluster, the class's audio
//! rights decided by the classroom and enforced by the SFU of another
//! region's edge, the bad-input table as error frames with their codes (the
//! connection and the class unaffected), a peer taken over by a newer
//! connection, and a peer that never connects cleaned up in bounded time.
//! Audio itself (RTP through the SFU, Chromium) is tested in `media` and in
//! the web app's end-to-end test.

use serde_json::{json, Value};

use crate::live_class::{start_cluster, Tab};
use crate::support::get_json;

/// An offer as Chromium makes it, cut to one audio line: `direction` is
/// `recvonly` (a listener) or `sendonly` (a microphone).
fn offer(direction: &str) -> String {
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Lyce",
        "a=ice-pwd:lyceumlyceumlyceumlyceum",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 \
         0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E",
        "a=setup:actpass",
        "a=mid:0",
        &format!("a={direction}"),
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "",
    ]
    .join("\r\n")
}

fn media(signal: Value) -> Value {
    json!({"type": "media", "signal": signal})
}

/// Reads until a media frame whose signal is of `kind`.
async fn until_signal(tab: &mut Tab, kind: &str) -> Value {
    tab.until(kind, |f| {
        f["type"] == "media" && f["signal"]["type"] == kind
    })
    .await
}

/// Reads until the media error answering the request `re`; its code.
async fn media_error(tab: &mut Tab, re: &str) -> String {
    let frame = tab
        .until(re, |f| {
            f["type"] == "media" && f["signal"]["type"] == "error" && f["re"] == re
        })
        .await;
    frame["signal"]["code"].as_str().expect("a code").to_owned()
}

/// Reads until the live `error` reply to `re`; its code.
async fn live_error(tab: &mut Tab, re: &str) -> String {
    let frame = tab
        .until(re, |f| f["type"] == "error" && f["re"] == re)
        .await;
    frame["code"].as_str().expect("a code").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_set_in_one_region_hold_at_the_edge_carrying_the_audio() {
    let cluster = start_cluster(&[("LYCEUM_MEDIA__CONNECT_TIMEOUT_MS", "20000")]).await;
    let (course, class_id) = cluster.live_unit().await;
    let teacher_ticket = cluster
        .ticket(&cluster.token("instructor"), &class_id)
        .await;
    let ada_token = cluster.learner("ada@audio.test", &course).await;
    let ada_ticket = cluster.ticket(&ada_token, &class_id).await;
    let eu = cluster.edge("eu-west").to_owned();

    // A media frame before the join is refused like any other frame.
    let url = format!("{}/api/v1/live", eu.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let mut early = Tab::from_socket("early", socket);
    early
        .send(media(json!({"type": "offer", "sdp": offer("recvonly")})))
        .await;
    assert_eq!(
        early.next().await.expect("an error frame")["code"],
        "join_required"
    );
    assert_eq!(early.until_closed().await, Some(4000));

    // Every welcome is followed by how to build the peer connection.
    let mut teacher = Tab::open("teacher", cluster.edge("ap-south"), &teacher_ticket, None).await;
    let mut ada = Tab::open("ada", &eu, &ada_ticket, None).await;
    let welcome = ada.until_type("welcome").await;
    let ada_id = welcome["user_id"].as_str().expect("user id").to_owned();
    let config = until_signal(&mut ada, "media_config").await;
    assert_eq!(config["signal"]["listening_slots"], 4, "{config}");
    assert_eq!(config["signal"]["ice_transport_policy"], "all", "{config}");
    // The edge's own TURN server, with time-limited credentials for her.
    let turn = &config["signal"]["ice_servers"][0];
    assert!(
        turn["urls"][0].as_str().is_some_and(
            |url| url.starts_with("turn:127.0.0.1:") && url.ends_with("?transport=udp")
        ),
        "{config}"
    );
    let username = turn["username"].as_str().expect("a turn user name");
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    assert_eq!(user, ada_id);
    assert!(expiry.parse::<u64>().is_ok(), "{username}");
    assert_eq!(
        turn["credential"].as_str().map(str::len),
        Some(28),
        "{config}"
    );
    until_signal(&mut teacher, "media_config").await;
    ada.until_type("snapshot").await;
    // The teacher knows Ada is in: from a presence event, or from the
    // roster of its snapshot when she was there first.
    let arrived = |f: &Value| {
        (f["type"] == "presence" && f["user_id"] == ada_id.as_str())
            || (f["type"] == "snapshot"
                && f["state"]["roster"]
                    .as_array()
                    .is_some_and(|roster| roster.iter().any(|m| m["user_id"] == ada_id.as_str())))
    };
    if !teacher.saw(arrived) {
        teacher.until("ada's arrival", arrived).await;
    }

    // The bad-input table: each refusal has its code and the connection
    // goes on.
    let candidate = json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host", "sdpMid": "0"}});
    ada.send(json!({"type": "media", "id": "c1", "signal": candidate}))
        .await;
    assert_eq!(media_error(&mut ada, "c1").await, "unknown_peer");
    ada.send(json!({"type": "media", "id": "b1", "signal": {"type": "dance"}}))
        .await;
    assert_eq!(live_error(&mut ada, "b1").await, "bad_message");
    ada.send(
        json!({"type": "media", "id": "m1", "signal": {"type": "offer", "sdp": offer("sendonly")}}),
    )
    .await;
    assert_eq!(media_error(&mut ada, "m1").await, "publish_not_allowed");
    let huge = "a=x-filler\r\n".repeat(6_000);
    ada.send(json!({"type": "media", "id": "h1", "signal": {"type": "offer", "sdp": huge}}))
        .await;
    assert_eq!(media_error(&mut ada, "h1").await, "malformed_sdp");
    ada.send(json!({"type": "media", "id": "v1", "signal": {"type": "offer", "sdp": offer("recvonly").replace("m=audio", "m=video")}}))
        .await;
    assert_eq!(media_error(&mut ada, "v1").await, "unsupported_media");

    // Only an instructor gives rights, and only to a learner of the class.
    ada.send(json!({"type": "allow_to_speak", "id": "a1", "user_id": ada_id, "allowed": true}))
        .await;
    assert_eq!(live_error(&mut ada, "a1").await, "forbidden");
    teacher
        .send(json!({"type": "mute", "id": "u1", "user_id": "nobody", "muted": true}))
        .await;
    assert_eq!(live_error(&mut teacher, "u1").await, "unknown_user");

    // The instructor (on ap-south) allows her; her edge (eu-west) lets her
    // microphone in: the same offer is answered now.
    teacher
        .send(json!({"type": "allow_to_speak", "user_id": ada_id, "allowed": true}))
        .await;
    ada.until("allowed", |f| {
        f["type"] == "allow_to_speak" && f["allowed"] == true
    })
    .await;
    ada.send(media(json!({"type": "offer", "sdp": offer("sendonly")})))
        .await;
    let answer = until_signal(&mut ada, "answer").await;
    assert!(
        answer["signal"]["sdp"]
            .as_str()
            .is_some_and(|sdp| sdp.contains("m=audio")),
        "{answer}"
    );
    let state = ada
        .until("her slot", |f| {
            f["signal"]["type"] == "media_state"
                && f["signal"]["peers"].as_array().is_some_and(|peers| {
                    peers
                        .iter()
                        .any(|p| p["peer"] == ada_id.as_str() && p["slot"] == 0)
                })
        })
        .await;
    assert_eq!(state["signal"]["room"], class_id.as_str(), "{state}");
    // The edge trickles its own candidates.
    if !ada.saw(|f| f["signal"]["type"] == "candidate") {
        until_signal(&mut ada, "candidate").await;
    }

    // Muted from ap-south: eu-west refuses her own unmute.
    teacher
        .send(json!({"type": "mute", "user_id": ada_id, "muted": true}))
        .await;
    ada.until("muted", |f| f["type"] == "mute" && f["muted"] == true)
        .await;
    ada.until("the server mute in her room's state", |f| {
        f["signal"]["type"] == "media_state"
            && f["signal"]["peers"].as_array().is_some_and(|peers| {
                peers
                    .iter()
                    .any(|p| p["peer"] == ada_id.as_str() && p["server_muted"] == true)
            })
    })
    .await;
    ada.send(json!({"type": "media", "id": "s1", "signal": {"type": "set_muted", "muted": false}}))
        .await;
    assert_eq!(media_error(&mut ada, "s1").await, "server_muted");

    // A client that joins now learns the rights from its snapshot.
    let mut ada2 = Tab::open("ada-again", &eu, &ada_ticket, None).await;
    // The welcome, then how to build the peer connection, then the state.
    until_signal(&mut ada2, "media_config").await;
    let snapshot = ada2.until_type("snapshot").await;
    assert_eq!(
        snapshot["state"]["audio"],
        json!({"open_mic": false, "allowed": [ada_id], "muted": [ada_id]}),
        "{snapshot}"
    );

    // Her newer connection takes the audio over; the older one is told.
    ada2.send(media(json!({"type": "offer", "sdp": offer("recvonly")})))
        .await;
    until_signal(&mut ada2, "answer").await;
    let taken = ada
        .until("taken over", |f| f["signal"]["type"] == "error")
        .await;
    assert_eq!(taken["signal"]["code"], "peer_exists", "{taken}");

    // Its peer never connects (nothing answers ICE): the edge drops it when
    // ICE gives up or media.connect_timeout_ms passes (20 s here, so that
    // the steps above never race it), and tells the client to start again.
    let again = until_signal(&mut ada2, "media_config").await;
    assert_eq!(again["signal"]["listening_slots"], 4);

    // Leaving the audio closes the peer at once; the next offer starts anew.
    ada2.send(media(json!({"type": "offer", "sdp": offer("recvonly")})))
        .await;
    until_signal(&mut ada2, "answer").await;
    ada2.send(media(json!({"type": "leave"}))).await;
    ada2.send(json!({"type": "media", "id": "after-leave", "signal": {"type": "set_muted", "muted": true}}))
        .await;
    assert_eq!(media_error(&mut ada2, "after-leave").await, "unknown_peer");

    // The class went on throughout: chat still flows both ways.
    ada2.send(json!({"type": "chat", "text": "still here"}))
        .await;
    teacher
        .until("her chat", |f| {
            f["type"] == "chat" && f["text"] == "still here"
        })
        .await;

    // The edge's metrics name the SFU's series.
    let metrics = crate::support::metrics_text(&eu).await;
    for series in [
        "lyceum_media_peers",
        "lyceum_media_forwarded_packets_total",
        "lyceum_media_reaped_peers_total",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    let (status, _) = get_json(&format!("{eu}/readyz"), None)
        .await
        .expect("readyz");
    assert_eq!(status, 200, "the edge is still ready");
}
