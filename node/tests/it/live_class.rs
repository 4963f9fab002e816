//! A live class across the dev cluster's three regions, over real
//! WebSockets: an instructor on ap-south, one learner on eu-west and one on
//! us-east. Presence, chat, hands, broadcast, a dropped assignment that the
//! learners run in their own region's sandbox while the instructor watches
//! the grid, breakout rooms, a resume on another node with nothing lost or
//! repeated, a slow consumer, bad frames, forged tickets, and the end of
//! class with attendance recorded by the control plane.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{client, eventually, get_json, lyceum, Proc, START_LIMIT};

/// How long a test waits for one expected frame (a hang catcher).
const FRAME_LIMIT: Duration = Duration::from_secs(60);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One browser tab: a socket, and every frame it got, checked on arrival.
pub(crate) struct Tab {
    pub(crate) name: &'static str,
    socket: Socket,
    /// Largest event `seq` seen (carried over a resume).
    pub(crate) seq: u64,
    /// Every event seq seen, to prove nothing came twice.
    pub(crate) seen: Vec<u64>,
    pub(crate) frames: Vec<Value>,
}

impl Tab {
    pub(crate) async fn open(
        name: &'static str,
        edge: &str,
        ticket: &str,
        last_seq: Option<u64>,
    ) -> Self {
        let url = format!("{}/api/v1/live", edge.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|err| panic!("{name}: connect {url}: {err}"));
        let mut tab = Self {
            name,
            socket,
            seq: last_seq.unwrap_or(0),
            seen: Vec::new(),
            frames: Vec::new(),
        };
        let mut join = json!({"type": "join", "ticket": ticket});
        if let Some(seq) = last_seq {
            join["last_seq"] = json!(seq);
        }
        tab.send(join).await;
        tab
    }

    /// A tab on a socket that has not joined yet.
    pub(crate) fn from_socket(name: &'static str, socket: Socket) -> Self {
        Self {
            name,
            socket,
            seq: 0,
            seen: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// Sends a frame; the error when the socket is closed.
    pub(crate) async fn try_send(
        &mut self,
        frame: Value,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.socket.send(Message::text(frame.to_string())).await
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .unwrap_or_else(|err| panic!("{}: send: {err}", self.name));
    }

    /// The next text frame, or the close code when the server closed.
    pub(crate) async fn next(&mut self) -> Result<Value, Option<u16>> {
        match self.next_within(FRAME_LIMIT).await {
            Some(next) => next,
            None => panic!(
                "{}: no frame within {FRAME_LIMIT:?}; got {:#?}",
                self.name,
                self.frames.iter().rev().take(5).collect::<Vec<_>>()
            ),
        }
    }

    /// As [`Tab::next`], or `None` when nothing came within `limit`.
    pub(crate) async fn next_within(
        &mut self,
        limit: Duration,
    ) -> Option<Result<Value, Option<u16>>> {
        // One deadline for the frame: pings must not keep a stuck wait alive.
        let deadline = tokio::time::Instant::now() + limit;
        Some(loop {
            let Ok(message) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return None;
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    assert_eq!(frame["v"], json!(1), "{}: {frame}", self.name);
                    let seq = frame["seq"].as_u64().expect("every frame has a seq");
                    let kind = frame["type"].as_str().expect("type");
                    if kind == "snapshot" {
                        self.seq = seq;
                    } else if frame.get("at_ms").is_some() {
                        assert!(
                            seq > self.seq,
                            "{}: event {seq} after {} (duplicate or out of order): {frame}",
                            self.name,
                            self.seq
                        );
                        self.seq = seq;
                        self.seen.push(seq);
                    }
                    self.frames.push(frame.clone());
                    break Ok(frame);
                }
                Some(Ok(Message::Close(close))) => {
                    break Err(close.map(|c| u16::from(c.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break Err(None),
            }
        })
    }

    /// Reads until a frame matches; panics when the socket closes first.
    pub(crate) async fn until(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Ok(frame) if matches(&frame) => return frame,
                Ok(_) => {}
                Err(code) => panic!("{}: closed ({code:?}) waiting for {what}", self.name),
            }
        }
    }

    /// Reads until a frame of `kind` arrives.
    pub(crate) async fn until_type(&mut self, kind: &str) -> Value {
        self.until(kind, |f| f["type"] == kind).await
    }

    /// Reads until the server closes; returns the close code.
    pub(crate) async fn until_closed(&mut self) -> Option<u16> {
        loop {
            if let Err(code) = self.next().await {
                return code;
            }
        }
    }

    /// Whether any frame so far matched.
    pub(crate) fn saw(&self, matches: impl Fn(&Value) -> bool) -> bool {
        self.frames.iter().any(matches)
    }
}

/// POST JSON with a bearer token; status and body.
pub(crate) async fn post(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The name a test learner shows to others: her e-mail's local part,
/// capitalised (`Ada` for `ada@live.test`), never the address itself.
pub(crate) fn display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let mut chars = local.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub(crate) struct Cluster {
    _dev: Proc,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cp: String,
    /// The control plane's pid.
    pub(crate) cp_pid: i64,
    /// Edge URL by region.
    pub(crate) edges: std::collections::BTreeMap<String, String>,
    /// Edge pid by region.
    pub(crate) pids: std::collections::BTreeMap<String, i64>,
    /// Edge node id by region.
    pub(crate) ids: std::collections::BTreeMap<String, String>,
    tokens: Value,
}

pub(crate) async fn start_cluster(extra_env: &[(&str, &str)]) -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = lyceum();
    command
        .args(["dev", "--base-port", "0", "--data-dir"])
        .arg(&data)
        .env("LYCEUM_SANDBOX__POOL_TARGET", "1")
        .env("LYCEUM_SANDBOX__LANGUAGES", "[\"python\"]");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let dev = Proc::spawn(command, &dir.path().join("dev.log"));
    let cluster_path = data.join("cluster.json");
    let cluster: Value = eventually("cluster.json", START_LIMIT, || {
        let path = cluster_path.clone();
        async move { serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok() }
    })
    .await;
    let cp = cluster["control_plane"]["url"]
        .as_str()
        .expect("cp url")
        .to_owned();
    let mut edges = std::collections::BTreeMap::new();
    let mut pids = std::collections::BTreeMap::new();
    let mut ids = std::collections::BTreeMap::new();
    for edge in cluster["edges"].as_array().expect("edges") {
        ids.insert(
            edge["region"].as_str().expect("region").to_owned(),
            edge["node_id"].as_str().expect("node_id").to_owned(),
        );
        pids.insert(
            edge["region"].as_str().expect("region").to_owned(),
            edge["pid"].as_i64().expect("pid"),
        );
        edges.insert(
            edge["region"].as_str().expect("region").to_owned(),
            edge["url"].as_str().expect("url").to_owned(),
        );
    }
    for url in edges.values() {
        eventually(
            &format!("{url} ready with three members"),
            START_LIMIT,
            || {
                let url = url.clone();
                async move {
                    let (status, _) = get_json(&format!("{url}/readyz"), None).await?;
                    let (_, members) =
                        get_json(&format!("{url}/api/v1/cluster/members"), None).await?;
                    let alive = members
                        .as_array()?
                        .iter()
                        .filter(|m| m["state"] == "alive")
                        .count();
                    // Homes are placed over the actor mesh: until an edge
                    // sees the other nodes' actors it may home a class
                    // itself, so wait for the mesh as well as gossip.
                    let (_, actors) =
                        get_json(&format!("{url}/api/v1/cluster/actors"), None).await?;
                    (status == 200 && alive == 3 && actors["groups"]["nodes"] == 3).then_some(())
                }
            },
        )
        .await;
    }
    Cluster {
        _dev: dev,
        dir,
        cp,
        cp_pid: cluster["control_plane"]["pid"].as_i64().expect("cp pid"),
        edges,
        pids,
        ids,
        tokens: cluster["tokens"].clone(),
    }
}

impl Cluster {
    pub(crate) fn token(&self, role: &str) -> String {
        self.tokens[role].as_str().expect("dev token").to_owned()
    }

    pub(crate) fn edge(&self, region: &str) -> &str {
        self.edges.get(region).expect("edge in region")
    }

    /// The demo course and its live-classroom unit.
    pub(crate) async fn live_unit(&self) -> (String, String) {
        self.demo_unit("live_classroom").await
    }

    /// The demo course and its unit of `kind`.
    pub(crate) async fn demo_unit(&self, kind: &str) -> (String, String) {
        let instructor = self.token("instructor");
        let (status, courses) = get_json(&format!("{}/api/v1/courses", self.cp), Some(&instructor))
            .await
            .expect("courses");
        assert_eq!(status, 200, "{courses}");
        let list = courses["items"]
            .as_array()
            .or_else(|| courses.as_array())
            .expect("a list of courses")
            .clone();
        let items = |v: Value| -> Vec<Value> {
            v["items"]
                .as_array()
                .or_else(|| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        for course in list {
            let id = course["id"].as_str().expect("course id").to_owned();
            let (_, modules) = get_json(
                &format!("{}/api/v1/courses/{id}/modules", self.cp),
                Some(&instructor),
            )
            .await
            .expect("modules");
            for module in items(modules) {
                let module_id = module["id"].as_str().expect("module id");
                let (_, units) = get_json(
                    &format!("{}/api/v1/modules/{module_id}/units", self.cp),
                    Some(&instructor),
                )
                .await
                .expect("units");
                if let Some(unit) = items(units).into_iter().find(|u| u["kind"] == kind) {
                    return (id, unit["id"].as_str().expect("unit id").to_owned());
                }
            }
        }
        panic!("the demo course has no {kind} unit");
    }

    /// A new learner of the dev tenant, enrolled in `course`; their token.
    pub(crate) async fn learner(&self, email: &str, course: &str) -> String {
        let (status, body) = post(
            &format!("{}/api/v1/auth/sign-up", self.cp),
            "",
            &json!({"email": email, "password": "a long enough password", "display_name": display_name(email), "tenant": "dev"}),
        )
        .await;
        assert_eq!(status, 201, "sign-up: {body}");
        let token = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        self.enroll(&token, course).await;
        token
    }

    pub(crate) async fn enroll(&self, token: &str, course: &str) {
        let (status, body) = post(
            &format!("{}/api/v1/courses/{course}/enrollments", self.cp),
            token,
            &json!({}),
        )
        .await;
        assert!(status == 201 || status == 200, "enroll: {status} {body}");
    }

    pub(crate) async fn ticket(&self, token: &str, class_id: &str) -> String {
        let (status, body) = post(
            &format!("{}/api/v1/live/tickets", self.cp),
            token,
            &json!({"class_id": class_id}),
        )
        .await;
        assert_eq!(status, 200, "ticket: {body}");
        body["ticket"].as_str().expect("ticket").to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_across_three_regions_from_join_to_attendance() {
    let cluster = start_cluster(&[]).await;
    let (course, class_id) = cluster.live_unit().await;
    let instructor_token = cluster.token("instructor");
    let ada_token = cluster.learner("ada@live.test", &course).await;
    let bob_token = cluster.learner("bob@live.test", &course).await;
    let teacher_ticket = cluster.ticket(&instructor_token, &class_id).await;
    let ada_ticket = cluster.ticket(&ada_token, &class_id).await;
    let bob_ticket = cluster.ticket(&bob_token, &class_id).await;

    // A learner who is not enrolled gets no ticket.
    let stranger = {
        let (status, body) = post(
            &format!("{}/api/v1/auth/sign-up", cluster.cp),
            "",
            &json!({"email": "eve@live.test", "password": "a long enough password", "display_name": "Eve", "tenant": "dev"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    };
    let (status, body) = post(
        &format!("{}/api/v1/live/tickets", cluster.cp),
        &stranger,
        &json!({"class_id": class_id}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("not_enrolled"))
    );

    // A forged ticket is refused with an error frame and close 4001; an
    // access token is not a ticket either.
    for (what, forged) in [
        (
            "tampered",
            format!("{}x", &ada_ticket[..ada_ticket.len() - 1]),
        ),
        ("access token", ada_token.clone()),
    ] {
        let mut tab = Tab::open("forger", cluster.edge("eu-west"), &forged, None).await;
        let frame = tab.next().await.expect("an error frame first");
        assert_eq!(frame["code"], "unauthenticated", "{what}: {frame}");
        assert_eq!(tab.until_closed().await, Some(4001), "{what}");
    }

    let mut teacher = Tab::open("teacher", cluster.edge("ap-south"), &teacher_ticket, None).await;
    let welcome = teacher.until_type("welcome").await;
    assert_eq!(welcome["role"], "instructor");
    assert_eq!(welcome["region"], "ap-south");
    assert_eq!(welcome["resumed"], false);
    teacher.until_type("snapshot").await;
    let mut ada = Tab::open("ada", cluster.edge("eu-west"), &ada_ticket, None).await;
    let welcome = ada.until_type("welcome").await;
    assert_eq!(welcome["role"], "learner");
    let ada_id = welcome["user_id"].as_str().expect("user id").to_owned();
    // The class is homed in its region (the demo unit's: eu-west).
    let home = welcome["home_node_id"].as_str().expect("home").to_owned();
    let mut bob = Tab::open("bob", cluster.edge("us-east"), &bob_ticket, None).await;
    let welcome = bob.until_type("welcome").await;
    let bob_id = welcome["user_id"].as_str().expect("user id").to_owned();
    assert_eq!(welcome["home_node_id"], json!(home));

    // Presence: the instructor sees both learners arrive.
    for id in [&ada_id, &bob_id] {
        teacher
            .until("presence joined", |f| {
                f["type"] == "presence" && f["user_id"] == json!(id) && f["status"] == "joined"
            })
            .await;
    }

    // Chat from eu-west reaches us-east and ap-south.
    ada.send(json!({"type": "chat", "text": "hello from eu"}))
        .await;
    for tab in [&mut bob, &mut teacher] {
        let chat = tab.until_type("chat").await;
        assert_eq!(chat["text"], "hello from eu");
        assert_eq!(chat["user_id"], json!(ada_id));
    }

    // A hand goes up.
    bob.send(json!({"type": "hand", "raised": true})).await;
    let hand = teacher.until_type("hand").await;
    assert_eq!(
        (&hand["user_id"], &hand["raised"]),
        (&json!(bob_id), &json!(true))
    );

    // Learners cannot broadcast; the instructor can, with a snippet.
    ada.send(json!({"type": "broadcast", "text": "me too", "id": "b1"}))
        .await;
    let refused = ada.until_type("error").await;
    assert_eq!(
        (&refused["code"], &refused["re"]),
        (&json!("forbidden"), &json!("b1"))
    );
    teacher
        .send(json!({"type": "broadcast", "text": "look", "code": {"language": "python", "source": "print(1)"}}))
        .await;
    for tab in [&mut ada, &mut bob] {
        let broadcast = tab.until_type("broadcast").await;
        assert_eq!(broadcast["code"]["source"], "print(1)");
    }

    // An assignment in a language no sandbox has is refused at the drop,
    // not sent to everyone to fail at each submission.
    teacher
        .send(
            json!({"type": "drop_assignment", "id": "cobol", "assignment": {
        "title": "Payroll", "language": "cobol", "instructions": "", "starter": "", "tests": []}}),
        )
        .await;
    let refused = teacher.until_type("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["re"].as_str()),
        (Some("unknown_language"), Some("cobol")),
        "{refused}"
    );

    // Drop an assignment: learners get it without its tests.
    teacher
        .send(json!({"type": "drop_assignment", "assignment": {
        "title": "Add two numbers", "language": "python",
        "instructions": "Read two integers, print their sum.",
        "starter": "a, b = map(int, input().split())\n",
        "tests": [
            {"name": "small", "stdin": "1 2\n", "expected_stdout": "3\n"},
            {"name": "hidden", "stdin": "40 2\n", "expected_stdout": "42\n"}
        ]}}))
        .await;
    let dropped = teacher.until_type("assignment").await;
    assert_eq!(dropped["tests"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        dropped["title"], "Add two numbers",
        "the cobol one never came"
    );
    let assignment = dropped["assignment_id"].as_str().expect("id").to_owned();
    for tab in [&mut ada, &mut bob] {
        let got = tab.until_type("assignment").await;
        assert_eq!(got["assignment_id"], json!(assignment));
        assert_eq!(got["tests_count"], 2);
        assert!(
            got.get("tests").is_none(),
            "{}: hidden tests leaked: {got}",
            tab.name
        );
    }

    // Ada fails, then passes; Bob passes. The instructor sees each verdict.
    ada.send(json!({"type": "submit", "assignment_id": assignment, "source": "print(0)\n"}))
        .await;
    let first = teacher
        .until("ada's first verdict", |f| {
            f["type"] == "submission" && f["user_id"] == json!(ada_id)
        })
        .await;
    assert_eq!(first["verdict"], "wrong_answer", "{first}");
    assert_eq!((&first["passed"], &first["total"]), (&json!(0), &json!(2)));
    assert_eq!(first["region"], "eu-west");
    let own = ada.until_type("submission").await;
    assert_eq!(own["verdict"], "wrong_answer");
    let solution = "a, b = map(int, input().split())\nprint(a + b)\n";
    ada.send(json!({"type": "submit", "assignment_id": assignment, "source": solution}))
        .await;
    bob.send(json!({"type": "submit", "assignment_id": assignment, "source": solution}))
        .await;
    let mut verdicts = std::collections::BTreeMap::new();
    while verdicts.len() < 2 {
        let frame = teacher
            .until("passing verdicts", |f| {
                f["type"] == "submission" && f["verdict"] == "accepted"
            })
            .await;
        verdicts.insert(
            frame["user_id"].as_str().expect("user").to_owned(),
            frame["region"].as_str().expect("region").to_owned(),
        );
    }
    assert_eq!(verdicts.get(&ada_id).map(String::as_str), Some("eu-west"));
    assert_eq!(verdicts.get(&bob_id).map(String::as_str), Some("us-east"));
    bob.until("bob's own verdict", |f| {
        f["type"] == "submission" && f["verdict"] == "accepted"
    })
    .await;
    // The control plane recorded bob's live submission against the class's
    // unit, with its tests, from bob's edge's outbox.
    let recorded = eventually("bob's submission recorded", START_LIMIT, || {
        let url = format!("{}/api/v1/submissions", cluster.cp);
        let token = bob_token.clone();
        async move {
            let (_, listed) = get_json(&url, Some(&token)).await?;
            listed["items"]
                .as_array()?
                .iter()
                .find(|s| s["status"] == "accepted")
                .cloned()
        }
    })
    .await;
    assert_eq!(recorded["unit_id"], json!(class_id), "{recorded}");
    assert_eq!(recorded["region"], "us-east", "{recorded}");
    assert!(
        recorded["tests_total"].as_u64() >= Some(1)
            && recorded["tests_passed"] == recorded["tests_total"],
        "{recorded}"
    );
    // Nobody sees another learner's submissions.
    assert!(!bob.saw(|f| f["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("submission"))
        && f["user_id"] == json!(ada_id)));

    // Breakout rooms: a message to one group reaches only it.
    teacher
        .send(json!({"type": "breakout_start", "groups": [
            {"name": "g1", "members": [ada_id]}, {"name": "g2", "members": [bob_id]}]}))
        .await;
    for tab in [&mut ada, &mut bob] {
        tab.until_type("breakout_started").await;
    }
    teacher
        .send(json!({"type": "breakout_message", "group": "g1", "text": "g1 only"}))
        .await;
    ada.until("the group message", |f| {
        f["type"] == "breakout_message" && f["text"] == "g1 only"
    })
    .await;
    ada.send(json!({"type": "chat", "text": "inside g1"})).await;
    let said = ada
        .until("own group chat", |f| {
            f["type"] == "chat" && f["text"] == "inside g1"
        })
        .await;
    assert_eq!(said["group"], "g1");
    teacher
        .until("group chat", |f| {
            f["type"] == "chat" && f["text"] == "inside g1"
        })
        .await;
    teacher.send(json!({"type": "breakout_end"})).await;
    bob.until_type("breakout_ended").await;
    assert!(ada.saw(|f| f["type"] == "breakout_message" && f["text"] == "g1 only"));
    assert!(
        !bob.saw(|f| f["type"] == "breakout_message"),
        "g2 saw g1's message"
    );
    assert!(!bob.saw(|f| f["text"] == "inside g1"), "g2 saw g1's chat");

    // Resume on another node: Bob drops, misses a chat, comes back through
    // ap-south with his last seq and gets exactly what he missed.
    let bob_seq = bob.seq;
    let bob_seen = bob.seen.clone();
    drop(bob);
    teacher
        .until("bob left", |f| {
            f["type"] == "presence" && f["user_id"] == json!(bob_id) && f["status"] == "left"
        })
        .await;
    ada.send(json!({"type": "chat", "text": "while bob was away"}))
        .await;
    teacher
        .until("the chat", |f| f["text"] == "while bob was away")
        .await;
    let mut bob = Tab::open("bob", cluster.edge("ap-south"), &bob_ticket, Some(bob_seq)).await;
    bob.seen = bob_seen;
    let welcome = bob.until_type("welcome").await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["region"], "ap-south");
    let replayed = welcome["replayed"].as_u64().expect("replayed");
    assert!(replayed >= 2, "bob's own departure and the chat: {welcome}");
    bob.until("the missed chat", |f| {
        f["type"] == "chat" && f["text"] == "while bob was away"
    })
    .await;
    assert!(
        !bob.saw(|f| f["type"] == "snapshot"),
        "a resume within the buffer needs no snapshot"
    );

    // Bad frames get their defined outcome and go nowhere.
    let cases = [
        (json!({"type": "dance"}).to_string(), "unknown_type"),
        ("{not json".to_owned(), "bad_message"),
        (json!({"type": "chat"}).to_string(), "bad_message"),
        (json!({"type": "chat", "text": "x".repeat(20_000)}).to_string(), "message_too_large"),
        (json!({"type": "chat", "text": "elsewhere", "class_id": "00000000-0000-0000-0000-000000000000"}).to_string(), "not_enrolled"),
        (json!({"type": "submit", "assignment_id": "a999", "source": "print(1)"}).to_string(), "unknown_assignment"),
        (json!({"type": "end_class"}).to_string(), "forbidden"),
        // The largest source fits a frame, even escaped; one byte more is
        // too large.
        (json!({"type": "submit", "assignment_id": "a999", "source": "\n".repeat(65_536)}).to_string(), "unknown_assignment"),
        (json!({"type": "submit", "assignment_id": "a999", "source": "#".repeat(65_537)}).to_string(), "message_too_large"),
    ];
    for (frame, code) in cases {
        bob.socket
            .send(Message::text(frame.clone()))
            .await
            .expect("send");
        let error = bob.until_type("error").await;
        assert_eq!(error["code"], code, "{frame:.80}: {error}");
    }
    bob.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(bob.until_type("pong").await["re"], "p");
    assert!(!teacher.saw(|f| f["text"] == "elsewhere"));

    // Nobody's e-mail address reaches a learner: classmates and the
    // instructor appear by the names they chose to show.
    assert!(
        ada.saw(|f| f.to_string().contains("\"Bob\"")),
        "ada sees bob by his display name"
    );
    for (tab, others) in [
        (&ada, ["bob@live.test", "instructor@dev.lyceum.test"]),
        (&bob, ["ada@live.test", "instructor@dev.lyceum.test"]),
    ] {
        for frame in &tab.frames {
            let text = frame.to_string();
            for email in others {
                assert!(
                    !text.contains(email),
                    "{} received {email} in {text}",
                    tab.name
                );
            }
        }
    }

    // End of class: everyone gets class_ended and close 4010, and the
    // control plane records attendance for both learners.
    teacher.send(json!({"type": "end_class"})).await;
    for tab in [&mut ada, &mut bob, &mut teacher] {
        tab.until_type("class_ended").await;
        assert_eq!(tab.until_closed().await, Some(4010), "{}", tab.name);
    }
    let attendance = eventually("attendance recorded", START_LIMIT, || {
        let url = format!("{}/api/v1/live/{class_id}/attendance", cluster.cp);
        let token = instructor_token.clone();
        async move {
            let (status, body) = get_json(&url, Some(&token)).await?;
            (status == 200).then_some(body)
        }
    })
    .await;
    eprintln!("attendance: {attendance}");
    let text = attendance.to_string();
    for id in [&ada_id, &bob_id] {
        assert!(text.contains(id.as_str()), "{id} missing from {attendance}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_without_slowing_others_and_resumes() {
    let cluster = start_cluster(&[
        ("LYCEUM_LIVE__SESSION_QUEUE_MAX", "64"),
        ("LYCEUM_LIVE__MESSAGES_PER_SESSION_PER_SECOND", "1000"),
        ("LYCEUM_LIVE__WRITE_TIMEOUT_MS", "60000"),
        ("LYCEUM_LIVE__CLASS_COMMANDS_PER_SECOND", "100000"),
        ("LYCEUM_LIVE__REPLAY_EVENTS_MAX", "4096"),
    ])
    .await;
    let (course, class_id) = cluster.live_unit().await;
    let teacher_ticket = cluster
        .ticket(&cluster.token("instructor"), &class_id)
        .await;
    let slow_token = cluster.learner("slow@live.test", &course).await;
    let fast_token = cluster.learner("fast@live.test", &course).await;
    let slow_ticket = cluster.ticket(&slow_token, &class_id).await;
    let fast_ticket = cluster.ticket(&fast_token, &class_id).await;
    let mut teacher = Tab::open("teacher", cluster.edge("eu-west"), &teacher_ticket, None).await;
    teacher.until_type("snapshot").await;
    let teacher = teacher;
    let mut slow = Tab::open("slow", cluster.edge("us-east"), &slow_ticket, None).await;
    slow.until_type("snapshot").await;
    let mut fast = Tab::open("fast", cluster.edge("us-east"), &fast_ticket, None).await;
    fast.until_type("snapshot").await;

    // The slow tab stops reading; the instructor sends far more than its
    // queue and the socket buffers hold, and the fast tab keeps up.
    let big = "y".repeat(14_000);
    let total = 1000;
    // The instructor's own tab receives every broadcast too: keep reading it.
    let (mut sink, mut stream) = teacher.socket.split();
    let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
    for i in 0..total {
        let frame = json!({"type": "broadcast", "text": format!("#{i}"), "code": {"language": "python", "source": big}});
        sink.send(Message::text(frame.to_string()))
            .await
            .expect("instructor send");
        // A brisk instructor, not a flood: the others keep up at this pace.
        tokio::time::sleep(Duration::from_millis(2)).await;
        if i % 50 == 0 {
            fast.until("keeping up", |f| f["text"] == format!("#{i}"))
                .await;
        }
    }
    fast.until("the last broadcast", |f| {
        f["text"] == format!("#{}", total - 1)
    })
    .await;

    assert!(
        !fast.saw(|f| f["type"] == "error"),
        "the fast tab was refused something"
    );
    drain.abort();
    eprintln!("slow-consumer test: all sent; the slow tab reads now");
    // The slow tab now reads: what was buffered, then close 4008.
    assert_eq!(slow.until_closed().await, Some(4008));
    let got = slow
        .frames
        .iter()
        .filter(|f| f["type"] == "broadcast")
        .count();
    assert!(
        got < total,
        "the slow tab got everything ({got}); nothing was slow"
    );
    eprintln!("slow-consumer test: cut off after {got} broadcasts; resuming");
    // It resumes from where it got to and receives the rest exactly once.
    let last = slow.seq;
    let mut slow = Tab::open("slow", cluster.edge("us-east"), &slow_ticket, Some(last)).await;
    let welcome = slow.until_type("welcome").await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    slow.until("the last broadcast", |f| {
        f["text"] == format!("#{}", total - 1)
    })
    .await;
    let resumed = slow
        .frames
        .iter()
        .filter(|f| f["type"] == "broadcast")
        .count();
    assert_eq!(
        got + resumed,
        total,
        "every broadcast exactly once across the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_holds_its_limits_at_their_edges() {
    let cluster = start_cluster(&[
        ("LYCEUM_LIVE__SESSIONS_MAX", "2"),
        ("LYCEUM_LIVE__JOIN_TIMEOUT_MS", "1000"),
        ("LYCEUM_LIVE__MESSAGES_PER_SESSION_PER_SECOND", "3"),
    ])
    .await;
    let (course, class_id) = cluster.live_unit().await;
    let edge = cluster.edge("eu-west").to_owned();
    let url = format!("{}/api/v1/live", edge.replacen("http", "ws", 1));

    // No join in time: an error frame, then close 4002.
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let mut silent = Tab {
        name: "silent",
        socket,
        seq: 0,
        seen: Vec::new(),
        frames: Vec::new(),
    };
    assert_eq!(
        silent.next().await.expect("error frame")["code"],
        "join_timeout"
    );
    assert_eq!(silent.until_closed().await, Some(4002));

    // Anything but a join first: close 4000.
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let mut early = Tab {
        name: "early",
        socket,
        seq: 0,
        seen: Vec::new(),
        frames: Vec::new(),
    };
    early.send(json!({"type": "chat", "text": "hi"})).await;
    assert_eq!(
        early.next().await.expect("error frame")["code"],
        "join_required"
    );
    assert_eq!(early.until_closed().await, Some(4000));

    // Three frames a second: the third passes, the fourth is refused.
    let token = cluster.learner("limits@live.test", &course).await;
    let ticket = cluster.ticket(&token, &class_id).await;
    let mut first = Tab::open("first", &edge, &ticket, None).await;
    first.until_type("snapshot").await;
    for i in 0..4 {
        first
            .send(json!({"type": "ping", "id": format!("p{i}")}))
            .await;
    }
    let mut answers = Vec::new();
    while answers.len() < 4 {
        let frame = first
            .until("a reply", |f| f["type"] == "pong" || f["type"] == "error")
            .await;
        answers.push((frame["type"].clone(), frame["code"].clone()));
    }
    assert_eq!(
        answers,
        vec![
            (json!("pong"), Value::Null),
            (json!("pong"), Value::Null),
            (json!("pong"), Value::Null),
            (json!("error"), json!("rate_limited")),
        ]
    );

    // Two sessions fit on the node; the third is refused with 4013.
    let mut second = Tab::open("second", &edge, &ticket, None).await;
    second.until_type("snapshot").await;
    let mut third = Tab::open("third", &edge, &ticket, None).await;
    assert_eq!(
        third.next().await.expect("error frame")["code"],
        "too_many_sessions"
    );
    assert_eq!(third.until_closed().await, Some(4013));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_whose_edge_dies_resumes_on_another_with_nothing_lost() {
    let cluster = start_cluster(&[]).await;
    let (course, class_id) = cluster.live_unit().await;
    let teacher_ticket = cluster
        .ticket(&cluster.token("instructor"), &class_id)
        .await;
    let token = cluster.learner("crash@live.test", &course).await;
    let ticket = cluster.ticket(&token, &class_id).await;
    // The class is homed on eu-west (the demo unit's region); the learner
    // is on us-east, whose edge is about to die.
    let mut teacher = Tab::open("teacher", cluster.edge("eu-west"), &teacher_ticket, None).await;
    teacher.until_type("snapshot").await;
    let mut learner = Tab::open("learner", cluster.edge("us-east"), &ticket, None).await;
    let welcome = learner.until_type("welcome").await;
    let learner_id = welcome["user_id"].as_str().expect("id").to_owned();
    teacher
        .send(json!({"type": "chat", "text": "before the crash"}))
        .await;
    learner
        .until("the first chat", |f| f["text"] == "before the crash")
        .await;

    let pid = cluster.pids["us-east"];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the learner's edge");
    assert_eq!(
        learner.until_closed().await,
        None,
        "a dead node sends no close"
    );
    // Gossip declares us-east down; the classroom drops its sessions.
    teacher
        .until("the learner leaving", |f| {
            f["type"] == "presence" && f["user_id"] == json!(learner_id) && f["status"] == "left"
        })
        .await;
    for i in 0..3 {
        teacher
            .send(json!({"type": "chat", "text": format!("while away {i}")}))
            .await;
    }
    teacher
        .until("the last chat", |f| f["text"] == "while away 2")
        .await;

    // The learner comes back through ap-south with the last seq it saw.
    let (seq, seen) = (learner.seq, learner.seen.clone());
    let mut learner = Tab::open("learner", cluster.edge("ap-south"), &ticket, Some(seq)).await;
    learner.seen = seen;
    let welcome = learner.until_type("welcome").await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["region"], "ap-south");
    learner
        .until("the last missed chat", |f| f["text"] == "while away 2")
        .await;
    let missed: Vec<_> = learner
        .frames
        .iter()
        .filter(|f| f["type"] == "chat")
        .map(|f| f["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        missed,
        ["while away 0", "while away 1", "while away 2"],
        "exactly the missed chats, once each"
    );
    teacher
        .until("the learner back", |f| {
            f["type"] == "presence" && f["user_id"] == json!(learner_id) && f["status"] == "joined"
        })
        .await;
}
