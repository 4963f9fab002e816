//! A node's live store seen through its hub, with faults injected at the
//! store's seam ([`Faults`]): a vote or a copy the store cannot read, write
//! or flush is refused, and so is everything after it; the hub keeps
//! delivering while a vote is being flushed; a run of queued jobs shares
//! one flush and nothing is answered before it; the storage queue holds
//! its bound; a replica acknowledges only what it has flushed. Nodes here
//! are real (hub, classroom, sled in a
//! temporary directory); several share the process under distinct ids.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::*;
use crate::live::{
    protocol::{close, Audience, ClassRole, Event, EventKind, Reply},
    replication::{Claim, ClaimReply, Replicate, SNAPSHOT_KEY, VOTES_TREE},
    storage::{
        faults::{Faults, Step},
        Answer, Job, Storage, Write, STORAGE_QUEUE_MAX,
    },
    LiveLimits, Peer,
};

/// How long anything here may take before the test fails; a bound, never
/// a wait.
const WAIT: Duration = Duration::from_secs(10);

struct TestNode {
    node: Arc<LiveNode>,
    faults: Arc<Faults>,
    _dir: tempfile::TempDir,
}

fn limits() -> LiveLimits {
    LiveLimits {
        // No idle resends while a test looks at the replica's steps.
        replica_retry: Duration::from_secs(600),
        class_start_timeout: WAIT,
        claim_timeout: WAIT,
        ..LiveLimits::default()
    }
}

fn peer(node_id: &str) -> Peer {
    Peer {
        node_id: node_id.into(),
        region: "ap-south".into(),
        alive: true,
    }
}

async fn start(node_id: &str, peers: Vec<Peer>) -> TestNode {
    start_queued(node_id, peers, STORAGE_QUEUE_MAX).await
}

async fn start_queued(node_id: &str, peers: Vec<Peer>, queue_max: usize) -> TestNode {
    let dir = tempfile::tempdir().expect("dir");
    let store = sled::open(dir.path()).expect("sled");
    let faults = Arc::new(Faults::default());
    let (attendance, _reports) = mpsc::channel(16);
    let node = LiveNode::start_with(
        node_id,
        "eu-west",
        limits(),
        store,
        attendance,
        Arc::new(move || Some(peers.clone())),
        Storage {
            disk: faults.clone(),
            queue_max,
        },
    )
    .await
    .expect("live node");
    TestNode {
        node,
        faults,
        _dir: dir,
    }
}

/// A claim for `class_id` at `epoch` by the node itself (so the answer
/// comes back to its own hub).
fn claim(node: &LiveNode, class_id: &str, epoch: u64) -> Claim {
    Claim {
        claim_id: format!("{}-{class_id}-{epoch}", node.node_id()),
        class_id: class_id.into(),
        epoch,
        home: node.node_id().into(),
        replica: None,
        data_epoch: 0,
        establish: false,
    }
}

/// Where the answer to `claim` will arrive.
fn answers(node: &LiveNode, claim: &Claim) -> mpsc::UnboundedReceiver<ClaimReply> {
    let (tx, rx) = mpsc::unbounded_channel();
    node.claims
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(claim.claim_id.clone(), tx);
    rx
}

fn send_claim(node: &LiveNode, claim: &Claim) {
    assert!(to_hub(
        node.node_id(),
        LiveHubMessage::Claim(Wire::new(claim))
    ));
}

async fn answer(rx: &mut mpsc::UnboundedReceiver<ClaimReply>) -> ClaimReply {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the claim is answered in time")
        .expect("the answer channel is open")
}

/// Sends a claim to the node's hub, as a peer would, and waits for the
/// answer.
async fn ask(node: &LiveNode, claim: &Claim) -> ClaimReply {
    let mut rx = answers(node, claim);
    send_claim(node, claim);
    answer(&mut rx).await
}

async fn next_frame(rx: &mut mpsc::Receiver<Outbound>) -> Outbound {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a frame in time")
        .expect("registered")
}

fn chat(seq: u64, text: &str) -> Event {
    Event {
        seq,
        at_ms: 1,
        audience: Audience::all(),
        kind: EventKind::Chat {
            user_id: "t".into(),
            name: "t".into(),
            text: text.into(),
            group: None,
        },
    }
}

/// A home's first batch (a full copy) of `class_id` at epoch 1.
fn sync_batch(class_id: &str) -> Replicate {
    Replicate {
        class_id: class_id.into(),
        tenant_id: "t".into(),
        epoch: 1,
        home: "elsewhere".into(),
        sync: Some(super::super::class::ClassState::new(class_id, "t", 1)),
        snapshot: None,
        events: Vec::new(),
        replay_max: 16,
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    CorruptVote,
    FailedWrite,
    FailedFlush,
}

/// After `fault`, the claim that met it is refused, and so are every later
/// claim and copy on that store.
async fn check_a_fault_ends_the_store(fault: Fault) {
    let t = start(&format!("fault-{fault:?}"), Vec::new()).await;
    let node = &t.node;
    match fault {
        Fault::CorruptVote => {
            node.store
                .open_tree(VOTES_TREE)
                .expect("votes")
                .insert("a", b"{not a vote".as_slice())
                .expect("insert");
        }
        Fault::FailedWrite => t.faults.fail_writes(1),
        Fault::FailedFlush => t.faults.fail_flushes(1),
    }
    let reply = ask(node, &claim(node, "a", 1)).await;
    assert!(
        !reply.granted,
        "{fault:?}: a vote the store lost is refused"
    );
    let reply = ask(node, &claim(node, "b", 1)).await;
    assert!(
        !reply.granted,
        "{fault:?}: a store that failed once votes no more"
    );
    let batch = sync_batch("c");
    assert!(to_hub_large(node.node_id(), Large::new(&batch)));
    // Taken in order after the batch: once it is answered, so is the batch.
    let _after = ask(node, &claim(node, "d", 1)).await;
    let copy = replication::class_tree(&node.store, "c")
        .expect("tree")
        .get(SNAPSHOT_KEY)
        .expect("read");
    assert!(
        copy.is_none(),
        "{fault:?}: a store that failed once keeps no copies"
    );
    let reason = node.storage_fault();
    assert!(reason.is_some(), "{fault:?}: the fault is reported");
    assert_eq!(node.counters().storage_errors.get(), 1, "{fault:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_failed_once_takes_no_more_votes_or_copies() {
    for fault in [Fault::CorruptVote, Fault::FailedWrite, Fault::FailedFlush] {
        check_a_fault_ends_the_store(fault).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_fails_the_claim_instead_of_starting_the_class_empty() {
    let t = start("corrupt-copy", Vec::new()).await;
    replication::class_tree(&t.node.store, "k")
        .expect("tree")
        .insert(SNAPSHOT_KEY, b"{not a snapshot".as_slice())
        .expect("insert");
    let claimed = t.node.claim("k", 0, None).await;
    assert!(
        matches!(claimed, Err(PlaceError::Storage(_))),
        "got {claimed:?}"
    );
    assert!(t.node.storage_fault().is_some());
    let claims = &t.node.counters().claims;
    assert_eq!(claims.with_label_values(&["storage"]).get(), 1);
    assert_eq!(claims.with_label_values(&["won"]).get(), 0);
    // Nor can the node claim anything else on that store.
    let other = t.node.claim("other", 0, None).await;
    assert!(
        matches!(other, Err(PlaceError::Storage(_))),
        "got {other:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_delivers_while_a_vote_is_being_flushed() {
    let t = start("slow-disk", Vec::new()).await;
    let node = &t.node;
    let class = "busy-class";
    let mut rx = joined(node, class, "elsewhere").await;

    let held = t.faults.hold_flushes();
    let vote = claim(node, "voted-class", 1);
    let mut answered = answers(node, &vote);
    send_claim(node, &vote);
    t.faults.flushes_begun(1).await;
    let deliver = Deliver {
        class_id: class.into(),
        events: vec![chat(1, "still here")],
    };
    assert!(to_hub_large(node.node_id(), Large::new(&deliver)));
    match next_frame(&mut rx).await {
        Outbound::Event { seq, .. } => assert_eq!(seq, 1),
        _ => panic!("expected the event"),
    }
    drop(held);
    assert!(answer(&mut answered).await.granted);
}

/// Queues a vote on `class_id` with the storage worker, as the hub does;
/// where its answer will arrive.
fn queue_vote(node: &LiveNode, class_id: &str) -> tokio::sync::oneshot::Receiver<ClaimReply> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.submit(Job::Vote {
        claim: claim(node, class_id, 1),
        answer: Answer::Local(tx),
    });
    rx
}

async fn granted(rx: tokio::sync::oneshot::Receiver<ClaimReply>) -> bool {
    tokio::time::timeout(WAIT, rx)
        .await
        .expect("answered in time")
        .expect("answered")
        .granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_queued_votes_shares_one_flush_and_is_answered_after_it() {
    let t = start("grouped", Vec::new()).await;
    let node = &t.node;
    let held = t.faults.hold_flushes();
    let mut first = queue_vote(node, "g0");
    t.faults.flushes_begun(1).await;
    let rest: Vec<_> = (1..=5)
        .map(|i| queue_vote(node, &format!("g{i}")))
        .collect();
    assert!(first.try_recv().is_err(), "answered before it was flushed");
    drop(held);
    assert!(granted(first).await);
    for rx in rest {
        assert!(granted(rx).await);
    }
    let vote = Step::Write(Write::Vote);
    assert_eq!(
        t.faults.steps(),
        [vote, Step::Flush, vote, vote, vote, vote, vote, Step::Flush],
        "the five votes queued behind the first flush share the next one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_queue_takes_its_bound_and_refuses_one_more_at_once() {
    const QUEUE: usize = 3;
    let t = start_queued("queue-edge", Vec::new(), QUEUE).await;
    let node = &t.node;
    let held = t.faults.hold_flushes();
    // The worker takes the first vote and waits on its flush.
    let first = queue_vote(node, "q0");
    t.faults.flushes_begun(1).await;
    let queued: Vec<_> = (1..=QUEUE)
        .map(|i| queue_vote(node, &format!("q{i}")))
        .collect();
    let mut over = queue_vote(node, "q-over");
    let refused = over
        .try_recv()
        .expect("refused at once, without waiting for the disk");
    assert!(refused.unavailable && !refused.granted, "{refused:?}");
    // A batch past the bound is dropped (its home sends it again).
    node.submit(Job::Copy(Box::new(sync_batch("q-copy"))));
    drop(held);
    assert!(granted(first).await);
    for rx in queued {
        assert!(granted(rx).await, "the queue holds {QUEUE}");
    }
    assert!(
        node.storage_fault().is_none(),
        "a full queue is not a fault"
    );
    assert!(
        granted(queue_vote(node, "q-over")).await,
        "nothing was stored"
    );
    let copy = replication::class_tree(&node.store, "q-copy")
        .expect("tree")
        .get(SNAPSHOT_KEY)
        .expect("read");
    assert!(copy.is_none(), "the batch past the bound was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_acknowledges_only_what_it_has_flushed() {
    let home = start("flush-home", vec![peer("flush-replica")]).await;
    let replica = start("flush-replica", vec![peer("flush-home")]).await;
    let class = "flushed-class";
    home.node
        .place(class, "t", "flush-home")
        .await
        .expect("placed");
    let (tx, mut rx) = mpsc::channel(16);
    let session = home.node.registry().next_session_id();
    let who = super::super::class::Participant {
        user_id: "ada".into(),
        name: "Ada".into(),
        role: ClassRole::Learner,
    };
    home.node.registry().register(
        class,
        session,
        SessionHandle {
            user_id: who.user_id.clone(),
            role: who.role,
            tx,
            kick: Arc::new(tokio::sync::Notify::new()),
        },
    );
    home.node
        .send(
            class,
            session,
            &who,
            Input::Join {
                last_seq: None,
                region: "eu-west".into(),
            },
        )
        .expect("sent");
    // The welcome (at seq 0) needs nothing from the replica; the arrival it
    // causes (seq 1) leaves the home only once the replica acknowledged it,
    // so by then the replica must have flushed it.
    loop {
        if let Outbound::Event { seq, .. } = next_frame(&mut rx).await {
            assert_eq!(seq, 1);
            break;
        }
    }
    let steps = replica.faults.steps();
    let copied = steps
        .iter()
        .rposition(|step| *step == Step::Write(Write::Copy))
        .expect("the replica stored a copy");
    assert!(
        steps[copied..].contains(&Step::Flush),
        "acknowledged before it was flushed: {steps:?}"
    );
}

/// Registers a session of `class_id` on `node` and delivers its welcome
/// from `home`, as a join does; the session's outbound queue.
async fn joined(node: &LiveNode, class_id: &str, home: &str) -> mpsc::Receiver<Outbound> {
    let (tx, mut rx) = mpsc::channel(16);
    let session = node.registry().next_session_id();
    node.registry().register(
        class_id,
        session,
        SessionHandle {
            user_id: "ada".into(),
            role: ClassRole::Learner,
            tx,
            kick: Arc::new(tokio::sync::Notify::new()),
        },
    );
    let welcome = Direct {
        class_id: class_id.into(),
        session_id: session,
        welcome: Some(Reply::Welcome {
            class_id: class_id.into(),
            user_id: "ada".into(),
            role: ClassRole::Learner,
            node_id: node.node_id().into(),
            region: "eu-west".into(),
            home_node_id: home.into(),
            epoch: 1,
            resumed: false,
            replayed: 0,
        }),
        ..Direct::default()
    };
    assert!(to_hub_large(node.node_id(), Large::new(&welcome)));
    assert!(matches!(next_frame(&mut rx).await, Outbound::Reply(_)));
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_classroom_is_forgotten_its_sessions_resume_and_it_starts_again() {
    let t = start("supervisor", Vec::new()).await;
    let node = &t.node;
    let first = node.host("fragile", "t").await.expect("hosted");
    let mut session = joined(node, "fragile", node.node_id()).await;
    // A class homed elsewhere is left alone.
    let mut bystander = joined(node, "steady", "elsewhere").await;

    first
        .cast(ClassroomMessage::control(&Control::Panic))
        .expect("cast");

    match next_frame(&mut session).await {
        Outbound::Close(code, reason) => {
            assert_eq!(code, close::CLASS_MOVED);
            assert_eq!(reason, LiveErrorCode::ClassMoved.as_str());
        }
        _ => panic!("expected the session to be told to resume"),
    }
    assert_eq!(node.counters().classroom_failures.get(), 1);
    assert_eq!(node.homed_count(), 0, "the failed classroom is forgotten");
    assert!(
        bystander.try_recv().is_err(),
        "a class homed elsewhere keeps its sessions"
    );

    // The hub outlived its child and still delivers.
    let deliver = Deliver {
        class_id: "steady".into(),
        events: vec![chat(1, "still here")],
    };
    assert!(to_hub_large(node.node_id(), Large::new(&deliver)));
    assert!(matches!(
        next_frame(&mut bystander).await,
        Outbound::Event { seq: 1, .. }
    ));

    // The next join starts the class again, as a new actor.
    let second = node.host("fragile", "t").await.expect("hosted again");
    assert_ne!(first.get_id(), second.get_id());
    assert_eq!(node.homed_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_whose_events_cannot_be_stored_gives_the_class_up() {
    let t = start("event-write", Vec::new()).await;
    let node = &t.node;
    node.host("k", "t").await.expect("hosted");
    let (tx, mut rx) = mpsc::channel(16);
    let session = node.registry().next_session_id();
    node.registry().register(
        "k",
        session,
        SessionHandle {
            user_id: "ada".into(),
            role: ClassRole::Learner,
            tx,
            kick: Arc::new(tokio::sync::Notify::new()),
        },
    );
    let ada = Participant {
        user_id: "ada".into(),
        name: "Ada".into(),
        role: ClassRole::Learner,
    };
    node.send(
        "k",
        session,
        &ada,
        Input::Join {
            last_seq: None,
            region: "eu-west".into(),
        },
    )
    .expect("join");
    // The welcome, then the join's own events.
    assert!(matches!(next_frame(&mut rx).await, Outbound::Reply(_)));

    t.faults.fail_writes(1);
    node.send(
        "k",
        session,
        &ada,
        Input::Client {
            id: None,
            body: crate::live::protocol::ClientBody::Chat {
                text: "lost?".into(),
            },
        },
    )
    .expect("chat");
    loop {
        match next_frame(&mut rx).await {
            Outbound::Close(code, _) => {
                assert_eq!(code, close::CLASS_MOVED);
                break;
            }
            Outbound::Event { text, .. } => {
                assert!(!text.contains("lost?"), "an unstored event went out")
            }
            _ => {}
        }
    }
    assert!(node.storage_fault().is_some());
    assert_eq!(node.counters().step_downs.get(), 1);
    tokio::time::timeout(WAIT, async {
        while node.homed_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the classroom stops");
}
