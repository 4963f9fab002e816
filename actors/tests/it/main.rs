//! The actors integration suite: real nodes (gossip and the actor system over
//! real QUIC with mutual TLS on 127.0.0.1). ractor keeps its process groups
//! and actor registry in process-wide statics, so two nodes cannot share a
//! process: the test process hosts one node and starts the others as child
//! processes of this same binary (`child::child_node`), which it can kill to
//! simulate a crash. Tests wait for the cluster within generous bounds and
//! never assert speed.

mod child;
mod cluster;
mod datagrams;
mod faults;
mod garbage;
mod harness;
mod live_local;
mod protocol_doc;
