//! The gossip integration suite: real QUIC on 127.0.0.1 with ephemeral ports,
//! each node its own `Gossip` instance in this process. Tests wait for the
//! cluster to converge within a generous bound instead of asserting speed, and
//! print the times they measure.

mod faults;
mod harness;
mod membership;
mod security;
mod sim;
