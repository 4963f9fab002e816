//! Fault injection reaches actor sessions: a `delay` rule on the gossip node
//! for what it receives from a peer holds that peer's session frames back as
//! well (`actors::hold`), so an echo round trip takes at least the delay
//! while the rule holds. The delay stays below gossip's probe round trip, so
//! gossip keeps the peer alive and the session up throughout.

use std::time::Duration;

use actors::{echo::ping, groups::node_group, groups::remote_members_of};
use gossip::{ClusterCa, FaultAction, FaultDirection, FaultFilter, FaultRule, PeerSelector};

use crate::harness::{init_tracing, wait_for, ChildNode, Node, CALL_MS, ONE_NODE_PER_PROCESS};

/// Below the LAN preset's 100 ms probe round trip.
const DELAY_MS: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_delay_rule_holds_a_peers_session_frames() {
    let _turn = ONE_NODE_PER_PROCESS.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate(dir.path()).expect("ca");
    let a = Node::start(&ca, "hold-a", "eu-west", 1, Vec::new()).await;
    let b = ChildNode::spawn(dir.path(), "hold-b", "us-east", 1, a.gossip_addr()).await;
    wait_for("a session to b", || async {
        a.session_ids().await == ["hold-b"]
    })
    .await;
    let group = node_group(&b.id);
    wait_for("b's echo actor", || async {
        remote_members_of(&group).len() == 1
    })
    .await;
    let echo = remote_members_of(&group).remove(0);
    let call = Duration::from_millis(CALL_MS);
    assert_eq!(ping(&echo, "before", call).await.expect("ping"), "hold-b");

    a.gossip.set_fault_filter(
        FaultFilter::new(vec![FaultRule {
            peer: PeerSelector::NodeId(b.id.clone()),
            action: FaultAction::DelayMs(DELAY_MS),
            direction: FaultDirection::Inbound,
        }])
        .expect("valid"),
    );
    for _ in 0..5 {
        let sent = tokio::time::Instant::now();
        assert_eq!(ping(&echo, "held", call).await.expect("ping"), "hold-b");
        let took = sent.elapsed();
        assert!(
            took >= Duration::from_millis(DELAY_MS),
            "the answer came back in {took:?}, before the {DELAY_MS} ms hold"
        );
    }
    a.gossip.clear_fault_filter();
    assert_eq!(ping(&echo, "after", call).await.expect("ping"), "hold-b");
    assert_eq!(a.session_ids().await, ["hold-b"]);

    b.stop().await;
    a.stop().await;
}
