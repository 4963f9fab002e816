//! Datagrams on the actor sessions' connections between two real nodes (the
//! second in a child process, which echoes what it gets): sent and echoed
//! while the session is up, refused with a reason when there is no session
//! or the datagram is too large, and dropped both ways by a `drop` rule.

use std::time::Duration;

use actors::DatagramError;
use gossip::{ClusterCa, FaultAction, FaultDirection, FaultFilter, FaultRule, PeerSelector};

use crate::harness::{
    bounded, init_tracing, node_id, wait_for, ChildNode, Node, ONE_NODE_PER_PROCESS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_travel_the_session_and_obey_fault_rules() {
    let _turn = ONE_NODE_PER_PROCESS.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate(dir.path()).expect("ca");
    let a = Node::start(&ca, "dgram-a", "eu-west", 1, Vec::new()).await;
    let b = ChildNode::spawn(dir.path(), "dgram-b", "us-east", 1, a.gossip_addr()).await;
    wait_for("a session to b", || async {
        a.session_ids().await == ["dgram-b"]
    })
    .await;
    let sender = a.actors.datagram_sender();
    let mut inbox = a.actors.take_datagrams().expect("the datagrams, once");
    assert!(a.actors.take_datagrams().is_none(), "handed out once");

    // Up: what a sends comes back echoed, named by b's certificate. The
    // session may take a moment to carry datagrams both ways; send until
    // one echo arrives.
    let echoed = bounded("an echo", async {
        loop {
            let _lost = sender.send(&b.id, bytes::Bytes::from_static(b"hi"));
            if let Ok(Some(datagram)) =
                tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await
            {
                return datagram;
            }
        }
    })
    .await;
    assert_eq!(
        (echoed.from.as_str(), &echoed.bytes[..]),
        ("dgram-b", &b"echo:hi"[..])
    );

    // Refusals say why.
    assert_eq!(
        sender.send(&node_id("nobody"), bytes::Bytes::from_static(b"x")),
        Err(DatagramError::NoSession(node_id("nobody")))
    );
    assert!(matches!(
        sender.send(&b.id, vec![0u8; 64 * 1024].into()),
        Err(DatagramError::TooLarge { len: 65536, .. })
    ));

    // A drop rule for b drops datagrams to it at once.
    let rule = |direction| {
        FaultFilter::new(vec![FaultRule {
            peer: PeerSelector::NodeId(b.id.clone()),
            action: FaultAction::Drop,
            direction,
        }])
        .expect("valid")
    };
    a.gossip.set_fault_filter(rule(FaultDirection::Outbound));
    assert_eq!(
        sender.send(&b.id, bytes::Bytes::from_static(b"x")),
        Err(DatagramError::Faulted(b.id.clone()))
    );
    // Inbound: b's echoes are dropped on arrival.
    while inbox.try_recv().is_ok() {}
    a.gossip.set_fault_filter(rule(FaultDirection::Inbound));
    let dropped_before = a.metric("lyceum_actors_datagrams_total", "outcome=\"dropped\"");
    for _ in 0..20 {
        sender
            .send(&b.id, bytes::Bytes::from_static(b"lost"))
            .expect("sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("echoes dropped on arrival", || async {
        a.metric("lyceum_actors_datagrams_total", "outcome=\"dropped\"") >= dropped_before + 10.0
    })
    .await;
    assert!(
        inbox.try_recv().is_err(),
        "nothing dropped reached the inbox"
    );
    a.gossip.clear_fault_filter();

    b.stop().await;
    a.stop().await;
}
