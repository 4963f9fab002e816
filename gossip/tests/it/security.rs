//! Who may talk to the cluster: only holders of a certificate from the cluster
//! CA, only in their own name, and only with packets that decode.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use foca::{Codec, Header, Message, PostcardCodec};
use gossip::{ClusterCa, DropReason, NodeIdentity, TlsMaterial};

use crate::harness::{
    all_alive, cluster, identity, init_tracing, node_id, start_with, wait_for, Node,
};

/// Opens a raw, authenticated QUIC connection to `node` with `material`.
async fn raw_connection(
    material: &TlsMaterial,
    node: &Node,
) -> (quinn::Endpoint, quinn::Connection) {
    let transport = Arc::new(quinn::TransportConfig::default());
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(material.client_config(transport).expect("client config"));
    let conn = endpoint
        .connect(node.addr(), gossip::tls::CLUSTER_SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    (endpoint, conn)
}

fn announce(src: NodeIdentity, dst: NodeIdentity) -> Bytes {
    let header = Header {
        src,
        src_incarnation: 0,
        dst,
        message: Message::Announce,
    };
    let mut buf = Vec::new();
    PostcardCodec
        .encode_header(&header, &mut buf)
        .expect("encode");
    Bytes::from(buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_another_ca_cannot_join() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "guard", 2).await;
    wait_for("the cluster to converge", || all_alive(&nodes)).await;
    let seed = &nodes[0];

    // A node of another cluster: it trusts only its own CA.
    let other = ClusterCa::generate_ephemeral().expect("other ca");
    let stranger = other.material_for(&node_id("rogue-1")).expect("material");
    let rogue = start_with(stranger, "rogue-1", "eu-west", vec![seed.addr()]).await;
    wait_for("the seed to refuse the stranger's handshake", || {
        seed.dropped_metric("handshake_failed") >= 1.0
    })
    .await;
    wait_for("the stranger to fail to connect", || {
        rogue.handle.dropped(DropReason::ConnectFailed) >= 1
    })
    .await;

    // A node that trusts our CA but holds a certificate from another one.
    let forged = other.issue_node_cert(&node_id("rogue-2")).expect("cert");
    let impostor_tls = TlsMaterial::from_pem(ca.cert_pem(), forged.cert_pem(), forged.key_pem())
        .expect("material");
    let before = seed.dropped_metric("handshake_failed");
    let impostor = start_with(impostor_tls, "rogue-2", "us-east", vec![seed.addr()]).await;
    wait_for("the seed to refuse the impostor's certificate", || {
        seed.dropped_metric("handshake_failed") > before
    })
    .await;

    // Give them a few seed retries, then check that nobody let them in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in &nodes {
        for stranger in [&rogue, &impostor] {
            assert_eq!(
                node.state_of(&stranger.id),
                None,
                "{} knows {}",
                node.id,
                stranger.id
            );
        }
    }
    assert!(rogue.handle.members().is_empty());
    assert!(impostor.handle.members().is_empty());
    wait_for("the cluster to stay healthy", || all_alive(&nodes)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_in_someone_elses_name_are_dropped() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "forge", 2).await;
    wait_for("the cluster to converge", || all_alive(&nodes)).await;
    let target = &nodes[0];

    let material = ca.material_for(&node_id("forger")).expect("material");
    let (endpoint, conn) = raw_connection(&material, target).await;
    let local = endpoint.local_addr().expect("local addr");

    // Claiming to be another node is refused and counted.
    let victim = identity("victim", "eu-west").with_quic_addr(local);
    conn.send_datagram(announce(victim, target.handle.identity()))
        .expect("send");
    wait_for("the forged packet to be counted", || {
        target.dropped_metric("identity_mismatch") >= 1.0
    })
    .await;
    assert_eq!(target.handle.dropped(DropReason::IdentityMismatch), 1);

    // The same announce in its own name is accepted (the control).
    let honest = identity("forger", "eu-west").with_quic_addr(local);
    conn.send_datagram(announce(honest, target.handle.identity()))
        .expect("send");
    let forger = node_id("forger");
    wait_for("the honest announce to be accepted", || {
        target.state_of(&forger).is_some()
    })
    .await;
    assert_eq!(target.state_of(&node_id("victim")), None);
    assert_eq!(target.handle.dropped(DropReason::IdentityMismatch), 1);
    conn.close(0u8.into(), b"done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_counted() {
    init_tracing();
    let ca = ClusterCa::generate_ephemeral().expect("ca");
    let nodes = cluster(&ca, "junk", 2).await;
    wait_for("the cluster to converge", || all_alive(&nodes)).await;
    let target = &nodes[0];

    let material = ca.material_for(&node_id("junk-sender")).expect("material");
    let (_endpoint, conn) = raw_connection(&material, target).await;
    let max = conn.max_datagram_size().expect("datagrams enabled");

    // A fixed xorshift stream, so a failure can be replayed.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const JUNK_PACKETS: usize = 64;
    let mut sent = 0;
    for n in 0..JUNK_PACKETS {
        let len = if n == 0 {
            0
        } else {
            (next() as usize % max).max(1)
        };
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        conn.send_datagram(Bytes::from(bytes)).expect("send");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_for("every junk packet to be counted", || {
        target.handle.dropped(DropReason::Malformed)
            + target.handle.dropped(DropReason::IdentityMismatch)
            >= sent
    })
    .await;
    assert!(target.dropped_metric("malformed") >= (sent - 1) as f64);
    assert_eq!(target.state_of(&node_id("junk-sender")), None);
    // The node is fine and still gossiping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_for("the cluster to stay healthy", || all_alive(&nodes)).await;
}
