//! The child-process side of the suite: when the test binary is started by
//! [`crate::harness::ChildNode::spawn`] (the `LYCEUM_ACTORS_CHILD` variable is
//! set), this test runs one node until its stdin closes, then stops it
//! gracefully; a parent that wants a crash kills it instead. Run by the
//! ordinary test runner without that variable, it has nothing to do.

use std::path::Path;

use gossip::ClusterCa;
use tokio::io::AsyncReadExt;

use crate::harness::{
    init_tracing, Node, ENV_CA_DIR, ENV_CHILD, ENV_GENERATION, ENV_ID, ENV_REGION, ENV_SEED,
    READY_LINE,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for a child node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_node() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return;
    }
    init_tracing();
    let ca = ClusterCa::generate(Path::new(&env(ENV_CA_DIR))).expect("load the test CA");
    let node = Node::start(
        &ca,
        &env(ENV_ID),
        &env(ENV_REGION),
        env(ENV_GENERATION).parse().expect("generation"),
        vec![env(ENV_SEED).parse().expect("seed address")],
    )
    .await;
    // Echo every datagram to its sender, prefixed (for `datagrams`).
    if let Some(mut datagrams) = node.actors.take_datagrams() {
        let sender = node.actors.datagram_sender();
        tokio::spawn(async move {
            while let Some(datagram) = datagrams.recv().await {
                let mut echo = b"echo:".to_vec();
                echo.extend_from_slice(&datagram.bytes);
                let _lost = sender.send(&datagram.from, echo.into());
            }
        });
    }
    // libtest may have begun a line ("test child::child_node ... ").
    println!("\n{READY_LINE}");
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    node.stop().await;
}
