//! Joining, crash detection, graceful leave and metadata on a healthy cluster.

use tokio::time::Instant;

use gossip::{ClusterCa, MemberState, MembershipEvent, NodeMeta};

use crate::harness::{all_alive, bounded, cluster, init_tracing, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_in_three_regions_join_from_one_seed() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "join", 4).await;
    let took = wait_for("all four nodes to see each other alive", || {
        all_alive(&nodes)
    })
    .await;
    eprintln!("four nodes converged in {took:?}");

    for node in &nodes {
        let members = node.handle.members();
        assert_eq!(members.len(), 3, "{} knows {members:?}", node.id);
        let regions: std::collections::BTreeSet<_> = members
            .iter()
            .map(|member| member.region.as_str().to_owned())
            .collect();
        assert!(regions.len() >= 2, "members span regions: {regions:?}");
        for member in &members {
            assert_eq!(member.generation, 1);
            assert!(member.http_url.starts_with("http://join-"));
        }
    }
    // Round-trip times are measured once connections are up.
    wait_for("an rtt for every member", || {
        nodes.iter().all(|node| {
            node.handle
                .members()
                .iter()
                .all(|member| member.rtt_ms.is_some())
        })
    })
    .await;
    assert_eq!(
        nodes[0].metric("lyceum_gossip_members", "state=\"alive\""),
        3.0
    );
    assert!(nodes[0].metric("lyceum_gossip_datagrams_received_total", "") > 0.0);
    assert!(nodes[0].metric("lyceum_gossip_datagrams_sent_total", "") > 0.0);
    assert!(nodes[0].metric("lyceum_gossip_membership_changes_total", "") >= 3.0);

    // Metadata spreads to everyone.
    let mut meta = NodeMeta {
        load_permille: 250,
        sessions: 12,
        ..NodeMeta::default()
    };
    meta.free_warm.insert("python".to_owned(), 3);
    nodes[1]
        .handle
        .set_meta(meta.clone())
        .await
        .expect("meta accepted");
    let publisher = nodes[1].id.clone();
    wait_for("metadata to reach every node", || {
        nodes
            .iter()
            .all(|node| node.handle.meta(&publisher).as_ref() == Some(&meta))
    })
    .await;
    let view = nodes[2]
        .handle
        .members()
        .into_iter()
        .find(|member| member.node_id == publisher)
        .expect("publisher known");
    assert_eq!(view.meta, Some(meta.clone()));

    // A newer update replaces it.
    meta.sessions = 13;
    nodes[1]
        .handle
        .set_meta(meta.clone())
        .await
        .expect("meta accepted");
    wait_for("the newer metadata to win", || {
        nodes
            .iter()
            .all(|node| node.handle.meta(&publisher).as_ref() == Some(&meta))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_declared_down_by_everyone() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let mut nodes = cluster(&ca, "crash", 4).await;
    wait_for("the cluster to converge", || all_alive(&nodes)).await;

    let victim = nodes.remove(3);
    let victim_id = victim.id.clone();
    let crashed_at = Instant::now();
    victim.handle.abort();
    let mut seen_down = vec![None; nodes.len()];
    wait_for("every survivor to declare the crashed node down", || {
        for (slot, node) in seen_down.iter_mut().zip(&nodes) {
            if slot.is_none() && node.state_of(&victim_id) == Some(MemberState::Down) {
                *slot = Some(crashed_at.elapsed());
            }
        }
        seen_down.iter().all(Option::is_some)
    })
    .await;
    for (node, took) in nodes.iter().zip(&seen_down) {
        eprintln!("{} declared the crashed node down after {took:?}", node.id);
    }
    // The survivors still see each other alive.
    wait_for("the survivors to stay alive", || all_alive(&nodes)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_down_without_suspicion() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let mut nodes = cluster(&ca, "leave", 4).await;
    wait_for("the cluster to converge", || all_alive(&nodes)).await;

    let leaver = nodes.remove(2);
    let leaver_id = leaver.id.clone();
    let mut subscriptions: Vec<_> = nodes.iter().map(|node| node.handle.subscribe()).collect();
    let left_at = Instant::now();
    bounded("leave", leaver.handle.leave())
        .await
        .expect("leave");
    let took = wait_for("every node to see the leaver down", || {
        nodes
            .iter()
            .all(|node| node.state_of(&leaver_id) == Some(MemberState::Down))
    })
    .await;
    eprintln!(
        "leave was seen by all after {:?} ({took:?} after leave returned)",
        left_at.elapsed()
    );

    for (node, events) in nodes.iter().zip(subscriptions.iter_mut()) {
        let mut states = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let MembershipEvent::Member {
                node_id, current, ..
            } = event
            {
                if node_id == leaver_id {
                    states.push(current);
                }
            }
        }
        assert_eq!(
            states,
            vec![MemberState::Down],
            "{} saw the leaver go through {states:?}",
            node.id
        );
    }
}
