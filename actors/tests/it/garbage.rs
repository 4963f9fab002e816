//! A peer with a valid cluster certificate that sends garbage on the actor
//! transport is dropped and counted, a certificate from another CA is refused
//! at the handshake, and the node and its other sessions carry on.

use std::{sync::Arc, time::Duration};

use actors::{
    echo::ping,
    groups::{node_group, remote_members_of},
    transport::ACTORS_ALPN,
    BadFrame,
};
use gossip::ClusterCa;

use crate::harness::{
    bounded, init_tracing, node_id, wait_for, ChildNode, Node, CALL_MS, ONE_NODE_PER_PROCESS,
};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u64).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_drop_the_sender_and_are_counted() {
    let _turn = ONE_NODE_PER_PROCESS.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate(dir.path()).expect("ca");
    let a = Node::start(&ca, "junk-m", "eu-west", 1, Vec::new()).await;
    let b = ChildNode::spawn(dir.path(), "junk-b", "us-east", 1, a.gossip_addr()).await;
    wait_for("a session to b", || async {
        a.session_ids().await == ["junk-b"]
    })
    .await;

    // An intruder holding a real cluster certificate, speaking the actor ALPN.
    let intruder = ca.material_for(&node_id("junk-intruder")).expect("cert");
    let mut tls = intruder.rustls_client_config().expect("client tls");
    tls.alpn_protocols = vec![ACTORS_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

    let mut huge = u64::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0xab; 32]);
    let cases = [
        (huge, BadFrame::Oversize),
        (frame(&[0xff, 0xff, 0xff, 0xff]), BadFrame::Malformed),
        (frame(&[]), BadFrame::Empty),
    ];
    for (bytes, reason) in cases {
        let conn = endpoint
            .connect(a.actors.local_addr(), &gossip::tls::node_dns_name(&a.id))
            .expect("connect")
            .await
            .expect("handshake with a cluster certificate");
        let (mut send, _recv) = conn.open_bi().await.expect("stream");
        send.write_all(&bytes).await.expect("write garbage");
        let closed = bounded("the node to drop the intruder", conn.closed()).await;
        eprintln!("{} frame: connection closed with {closed}", reason.as_str());
        assert_eq!(a.actors.bad_frames(reason), 1, "{reason:?} counted once");
        assert_eq!(
            a.metric(
                "lyceum_actors_bad_frames_total",
                &format!("reason=\"{}\"", reason.as_str())
            ),
            1.0
        );
    }

    // A certificate from another CA is refused, even by a client that
    // trusts ours: the node insists on a client certificate from its CA.
    let other_ca = ClusterCa::generate_ephemeral().expect("other ca");
    let foreign = other_ca
        .issue_node_cert(&node_id("junk-stranger"))
        .expect("cert");
    let stranger =
        gossip::TlsMaterial::from_pem(ca.cert_pem(), foreign.cert_pem(), foreign.key_pem())
            .expect("material");
    let mut tls = stranger.rustls_client_config().expect("client tls");
    tls.alpn_protocols = vec![ACTORS_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let attempt = bounded(
        "the stranger's handshake",
        endpoint
            .connect_with(
                quinn::ClientConfig::new(Arc::new(crypto)),
                a.actors.local_addr(),
                &gossip::tls::node_dns_name(&a.id),
            )
            .expect("connect"),
    )
    .await;
    // TLS 1.3 lets the client finish before the server has judged its
    // certificate; then the refusal closes the connection.
    if let Ok(conn) = attempt {
        let closed = bounded("the stranger to be refused", conn.closed()).await;
        eprintln!("stranger refused: {closed}");
    }

    // The node and its session with b carry on.
    assert_eq!(a.session_ids().await, ["junk-b"]);
    let found = remote_members_of(&node_group(&b.id));
    assert_eq!(found.len(), 1);
    assert_eq!(
        ping(&found[0], "still there?", Duration::from_millis(CALL_MS))
            .await
            .expect("ping"),
        "junk-b"
    );

    endpoint.close(0u8.into(), b"done");
    b.stop().await;
    a.stop().await;
}
