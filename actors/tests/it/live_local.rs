//! The live classroom on one node, in process: sessions registered with the
//! hub, the classroom actor deciding, numbering and delivering; resume from
//! the replay buffer and from a snapshot; a slow consumer dropped without
//! holding others up; and a classroom rebuilt from its sled log with the
//! same numbers and a higher epoch. The cross-node path is covered by the
//! node suite (`node/tests/it/live_class.rs`) over real processes.

use std::{sync::Arc, time::Duration};

use actors::live::{
    class::Participant,
    classroom::Input,
    hub::{LiveNode, Outbound, SessionHandle},
    protocol::{ClassRole, ClientBody, Reply},
    LiveLimits,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn person(id: &str, role: ClassRole) -> Participant {
    Participant {
        user_id: id.into(),
        name: id.into(),
        role,
    }
}

struct Tab {
    id: u64,
    who: Participant,
    rx: mpsc::Receiver<Outbound>,
    kick: Arc<tokio::sync::Notify>,
    seq: u64,
}

impl Tab {
    fn open(node: &LiveNode, class: &str, who: Participant, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let kick = Arc::new(tokio::sync::Notify::new());
        let id = node.registry().next_session_id();
        node.registry().register(
            class,
            id,
            SessionHandle {
                user_id: who.user_id.clone(),
                role: who.role,
                tx,
                kick: kick.clone(),
            },
        );
        Self {
            id,
            who,
            rx,
            kick,
            seq: 0,
        }
    }

    async fn next(&mut self) -> Outbound {
        let item = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a frame in time")
            .expect("the session is registered");
        match &item {
            Outbound::Event { seq, .. } => {
                assert!(*seq > self.seq, "event {seq} after {}", self.seq);
                self.seq = *seq;
            }
            Outbound::Snapshot { seq, .. } => self.seq = *seq,
            Outbound::Replay(events) => {
                for (seq, _) in events {
                    assert!(*seq > self.seq, "replayed {seq} after {}", self.seq);
                    self.seq = *seq;
                }
            }
            _ => {}
        }
        item
    }

    /// Reads until an event whose text contains `needle`.
    async fn until(&mut self, needle: &str) -> String {
        loop {
            match self.next().await {
                Outbound::Event { text, .. } if text.contains(needle) => {
                    return text.to_string();
                }
                Outbound::Replay(events) => {
                    if let Some((_, text)) = events.iter().find(|(_, t)| t.contains(needle)) {
                        return text.to_string();
                    }
                }
                _ => {}
            }
        }
    }
}

async fn start(dir: &std::path::Path, node_id: &str, limits: LiveLimits) -> Arc<LiveNode> {
    let store = sled::open(dir).expect("sled");
    let (tx, _rx) = mpsc::channel(16);
    LiveNode::start(
        node_id,
        "eu-west",
        limits,
        store,
        tx,
        Arc::new(|| Some(Vec::new())),
    )
    .await
    .expect("live node")
}

fn join(node: &LiveNode, class: &str, tab: &Tab, last_seq: Option<u64>) {
    node.send(
        class,
        tab.id,
        &tab.who,
        Input::Join {
            last_seq,
            region: "eu-west".into(),
        },
    )
    .expect("classroom reachable");
}

fn say(node: &LiveNode, class: &str, tab: &Tab, body: ClientBody) {
    node.send(class, tab.id, &tab.who, Input::Client { id: None, body })
        .expect("classroom reachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_on_one_node_delivers_resumes_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = LiveLimits {
        replay_events_max: 8,
        ..LiveLimits::default()
    };
    let node = start(dir.path(), "live-a", limits.clone()).await;
    let class = "class-1";
    node.place(class, "tenant-1", "live-a")
        .await
        .expect("placed");

    let mut teacher = Tab::open(&node, class, person("t", ClassRole::Instructor), 64);
    join(&node, class, &teacher, None);
    assert!(matches!(
        teacher.next().await,
        Outbound::Reply(Reply::Welcome { resumed: false, .. })
    ));
    assert!(matches!(teacher.next().await, Outbound::Snapshot { .. }));
    let mut ada = Tab::open(&node, class, person("ada", ClassRole::Learner), 64);
    join(&node, class, &ada, None);
    assert!(matches!(
        ada.next().await,
        Outbound::Reply(Reply::Welcome { .. })
    ));
    teacher.until(r#""user_id":"ada""#).await;

    say(&node, class, &ada, ClientBody::Chat { text: "hi".into() });
    teacher.until(r#""text":"hi""#).await;
    ada.until(r#""text":"hi""#).await;

    // A learner's instructor-only command is answered to that session only.
    say(
        &node,
        class,
        &ada,
        ClientBody::Broadcast {
            text: "no".into(),
            code: None,
        },
    );
    loop {
        if let Outbound::Reply(Reply::Error { code, .. }) = ada.next().await {
            assert_eq!(code, "forbidden");
            break;
        }
    }

    // Resume within the buffer: exactly the missed events.
    let ada_seq = ada.seq;
    node.registry().unregister(class, ada.id);
    node.send(class, ada.id, &ada.who, Input::Leave)
        .expect("leave");
    say(
        &node,
        class,
        &teacher,
        ClientBody::Chat {
            text: "missed".into(),
        },
    );
    teacher.until("missed").await;
    let mut ada = Tab::open(&node, class, person("ada", ClassRole::Learner), 64);
    ada.seq = ada_seq;
    join(&node, class, &ada, Some(ada_seq));
    match ada.next().await {
        Outbound::Reply(Reply::Welcome {
            resumed, replayed, ..
        }) => assert!(resumed && replayed == 2, "left + chat, got {replayed}"),
        other => panic!("welcome expected, got {other:?}"),
    }
    match ada.next().await {
        Outbound::Replay(events) => {
            assert_eq!(events.len(), 2, "{events:?}");
            assert!(events[0].1.contains(r#""status":"left""#));
            assert!(events[1].1.contains("missed"));
        }
        other => panic!("the replay expected, got {other:?}"),
    }
    ada.until(r#""status":"joined""#).await;

    // Resume from further back than the buffer: a snapshot.
    for i in 0..10 {
        say(
            &node,
            class,
            &teacher,
            ClientBody::Chat {
                text: format!("m{i}"),
            },
        );
    }
    teacher.until("m9").await;
    let mut late = Tab::open(&node, class, person("ada", ClassRole::Learner), 64);
    join(&node, class, &late, Some(1));
    match late.next().await {
        Outbound::Reply(Reply::Welcome { resumed, .. }) => assert!(!resumed),
        other => panic!("welcome expected, got {other:?}"),
    }
    assert!(matches!(late.next().await, Outbound::Snapshot { .. }));

    // A session that never reads is dropped and woken; others carry on.
    let slow = Tab::open(&node, class, person("slow", ClassRole::Learner), 2);
    join(&node, class, &slow, None);
    for i in 0..20 {
        say(
            &node,
            class,
            &teacher,
            ClientBody::Chat {
                text: format!("s{i}"),
            },
        );
    }
    teacher.until("s19").await;
    tokio::time::timeout(WAIT, slow.kick.notified())
        .await
        .expect("the slow session is woken");
    assert!(node.registry().slow_consumers() >= 1);

    // Stop the classroom and start it again from sled: same numbers.
    let seq_before = teacher.seq;
    node.stop_all().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.place(class, "tenant-1", "live-a")
        .await
        .expect("placed again");
    let mut back = Tab::open(&node, class, person("t", ClassRole::Instructor), 64);
    join(&node, class, &back, Some(seq_before));
    match back.next().await {
        Outbound::Reply(Reply::Welcome { epoch, resumed, .. }) => {
            assert_eq!(epoch, 2, "a restarted home has a higher epoch");
            assert!(resumed, "the log survived the restart");
        }
        other => panic!("welcome expected, got {other:?}"),
    }
    say(
        &node,
        class,
        &back,
        ClientBody::Chat {
            text: "after".into(),
        },
    );
    let after = back.until("after").await;
    assert!(after.contains(&format!(r#""seq":{}"#, back.seq)));
    assert!(back.seq > seq_before);
    let _ = late.rx.try_recv();
}
