//! Sessions follow gossip: three nodes form sessions when gossip says up, an
//! actor on one finds the others' echo actors through process groups, a
//! crashed node's session and group entries go when gossip declares it down,
//! and its next life is found again under a new actor id.

use std::{collections::BTreeSet, time::Duration};

use actors::{
    echo::ping,
    groups::{node_group, remote_members_of},
    members_of, NODES_GROUP,
};
use gossip::{ClusterCa, MemberState};

use crate::harness::{
    bounded, init_tracing, wait_for, ChildNode, Node, CALL_MS, ONE_NODE_PER_PROCESS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_follow_gossip_and_groups_re_resolve_after_a_crash() {
    let _turn = ONE_NODE_PER_PROCESS.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate(dir.path()).expect("ca");
    // "fab-m" sits between the others: it dials "fab-x" (the smaller id
    // dials) and is dialled by "fab-b", so both directions are exercised.
    let a = Node::start(&ca, "fab-m", "eu-west", 1, Vec::new()).await;
    let b = ChildNode::spawn(dir.path(), "fab-b", "us-east", 1, a.gossip_addr()).await;
    let c = ChildNode::spawn(dir.path(), "fab-x", "ap-south", 1, a.gossip_addr()).await;

    let took = wait_for("sessions to both peers", || async {
        a.session_ids().await == ["fab-b", "fab-x"]
    })
    .await;
    eprintln!("sessions up {took:?} after the children were ready");
    let sessions = a.actors.sessions().await.expect("sessions");
    assert!(sessions[0].inbound, "fab-b dialled us: {sessions:?}");
    assert!(!sessions[1].inbound, "we dialled fab-x: {sessions:?}");
    assert_eq!(sessions[0].generation, Some(1));

    // Every node's echo actor is in `nodes`: ours and two proxies.
    wait_for("three members in group nodes", || async {
        members_of(NODES_GROUP).len() == 3
    })
    .await;
    let call = Duration::from_millis(CALL_MS);
    let mut answers = BTreeSet::new();
    for member in members_of(NODES_GROUP) {
        answers.insert(ping(&member, "hello", call).await.expect("echo answers"));
    }
    assert_eq!(
        answers,
        BTreeSet::from(["fab-b".to_owned(), "fab-m".to_owned(), "fab-x".to_owned()])
    );

    // Node b's echo actor through its own group.
    let b_group = node_group(&b.id);
    let found = remote_members_of(&b_group);
    assert_eq!(found.len(), 1, "one echo actor in {b_group}");
    assert_eq!(ping(&found[0], "hi b", call).await.expect("ping"), "fab-b");
    let first_b = found[0].get_id();
    assert_eq!(a.metric("lyceum_actors_sessions", ""), 2.0);
    assert_eq!(
        a.metric("lyceum_actors_connects_total", "direction=\"inbound\""),
        1.0
    );
    assert_eq!(
        a.metric("lyceum_actors_connects_total", "direction=\"outbound\""),
        1.0
    );

    // A lost connection is not a failed member: both sessions come back
    // (whichever side dialled), and the echo actors under new ids.
    let old_x = remote_members_of(&node_group(&c.id))[0].get_id();
    assert!(a.actors.drop_session(&c.id));
    assert!(a.actors.drop_session(&b.id));
    let renewed = |group: &str, old: ractor::ActorId| {
        let found = remote_members_of(group);
        found.len() == 1 && found[0].get_id() != old
    };
    wait_for("both sessions to come back under new actor ids", || async {
        a.session_ids().await == ["fab-b", "fab-x"]
            && renewed(&node_group(&c.id), old_x)
            && renewed(&b_group, first_b)
    })
    .await;
    assert_eq!(a.state_of(&c.id), Some(MemberState::Alive));
    let x = remote_members_of(&node_group(&c.id)).remove(0);
    assert_eq!(ping(&x, "again", call).await.expect("ping"), "fab-x");
    let old_b = remote_members_of(&b_group)[0].get_id();

    // A crash: gossip declares b down, and its session and actors go.
    let b_id = b.id.clone();
    let crashed_at = tokio::time::Instant::now();
    b.kill().await;
    wait_for("gossip to declare b down", || {
        let state = a.state_of(&b_id);
        async move { state == Some(MemberState::Down) }
    })
    .await;
    wait_for("b's session to close", || async {
        a.session_ids().await == ["fab-x"]
    })
    .await;
    wait_for("b's echo actor to leave the groups", || async {
        members_of(&b_group).is_empty() && members_of(NODES_GROUP).len() == 2
    })
    .await;
    eprintln!(
        "b's session and group entries were gone {:?} after the crash",
        crashed_at.elapsed()
    );
    assert!(a.metric("lyceum_actors_disconnects_total", "") >= 1.0);
    assert_eq!(a.metric("lyceum_actors_sessions", ""), 1.0);

    // Its next life (a new generation) is found again, under a new id.
    let b = ChildNode::spawn(dir.path(), "fab-b", "us-east", 2, a.gossip_addr()).await;
    wait_for("a session to b's new generation", || async {
        a.actors
            .sessions()
            .await
            .expect("sessions")
            .iter()
            .any(|s| s.node_id == b_id && s.generation == Some(2))
    })
    .await;
    wait_for("b's new echo actor in its group", || async {
        remote_members_of(&b_group).len() == 1
    })
    .await;
    let new_b = remote_members_of(&b_group).remove(0);
    assert_ne!(new_b.get_id(), old_b, "a new session mints new actor ids");
    assert_eq!(
        bounded("ping b again", ping(&new_b, "welcome back", call))
            .await
            .expect("ping"),
        "fab-b"
    );
    wait_for("three members in group nodes again", || async {
        members_of(NODES_GROUP).len() == 3
    })
    .await;

    c.stop().await;
    b.stop().await;
    a.stop().await;
}
