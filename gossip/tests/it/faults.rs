//! Fault injection: a node that drops all traffic with a peer declares it
//! down, and recovers it once the filter is cleared.

use std::time::Duration;

use gossip::{ClusterCa, DropReason, FaultAction, FaultFilter, MemberState, PeerSelector};

use crate::harness::{all_alive, cluster, init_tracing, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_peer_makes_it_down_and_clearing_heals() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "fault", 2).await;
    wait_for("the pair to converge", || all_alive(&nodes)).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let generation_before = b.handle.identity().generation();

    let filter = FaultFilter::single(PeerSelector::NodeId(b.id.clone()), FaultAction::Drop)
        .expect("valid filter");
    a.handle.set_fault_filter(filter);
    let took = wait_for("a to declare b down", || {
        a.state_of(&b.id) == Some(MemberState::Down)
    })
    .await;
    eprintln!("with all packets to and from b dropped, a declared it down after {took:?}");
    assert!(a.handle.dropped(DropReason::FaultInjected) > 0);

    a.handle.clear_fault_filter();
    let took = wait_for("the pair to see each other alive again", || {
        all_alive(&nodes)
    })
    .await;
    eprintln!("after clearing the filter the pair healed in {took:?}");
    assert!(
        b.handle.identity().generation() > generation_before
            || a.handle.identity().generation() > 1,
        "healing goes through a rejoin with a new generation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_delay_is_tolerated_and_a_cut_is_a_partition() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "delay", 2).await;
    wait_for("the pair to converge", || all_alive(&nodes)).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // 25 ms each way stays well inside the LAN preset's 100 ms probe timeout.
    let delay = FaultFilter::single(PeerSelector::Addr(b.addr()), FaultAction::DelayMs(25))
        .expect("valid filter");
    a.handle.set_fault_filter(delay);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_ne!(a.state_of(&b.id), Some(MemberState::Down));
    }
    assert_eq!(a.handle.dropped(DropReason::FaultInjected), 0);

    let cut = FaultFilter::single(PeerSelector::NodeId(b.id.clone()), FaultAction::Cut)
        .expect("valid filter");
    a.handle.set_fault_filter(cut);
    let took = wait_for("a to declare b down behind the cut", || {
        a.state_of(&b.id) == Some(MemberState::Down)
    })
    .await;
    eprintln!("with the connection cut, a declared b down after {took:?}");

    a.handle.clear_fault_filter();
    wait_for("the pair to heal after the cut", || all_alive(&nodes)).await;
}
