//! Actors that edge nodes host, built on `ractor` and reached across nodes
//! through `ractor_cluster`. Gossip (the `gossip` crate) decides who is in the
//! cluster; this crate follows it: when a member comes up the node opens one
//! actor-cluster session to it, carried on a QUIC stream with the cluster's
//! mutual TLS, and when gossip declares the member down the session is torn
//! down (ractor's own ping never declares a peer dead). Remote actors are only
//! ever found through process groups, because their ids change with every new
//! session. Later issues add session, classroom and sandbox-pool actors; it
//! may depend on `gossip` and `sandbox`, never on `control-plane`.
//!
//! Modules, one idea each: [`config`] (settings and limits), [`transport`]
//! (the QUIC endpoint and the frame guard in front of ractor_cluster),
//! [`datagrams`] (unreliable datagrams between nodes on the same
//! connections, for relayed audio),
//! [`hold`] (fault injection: received bytes held back as gossip's fault
//! rules say), [`system`] (the running actor system that follows gossip), [`groups`]
//! (process-group names and look-ups), [`live`] (live classrooms: the
//! protocol, the classroom actor and each node's fan-out hub), [`pool`]
//! (sandbox-pool actors: warm targets from the timetable's plan, the
//! observed rate and operators, within the node's budget), [`echo`] (the
//! demo actor every edge registers) and [`metrics`] (Prometheus).

pub mod config;
pub mod datagrams;
pub mod echo;
pub mod groups;
pub mod hold;
pub mod live;
pub mod metrics;
pub mod pool;
pub mod system;
pub mod transport;

pub use config::{ActorConfig, ConfigError};
pub use datagrams::{Datagram, DatagramError};
pub use echo::{EchoActor, EchoMessage};
pub use groups::{join_group, leave_group, members_of, GroupName, NODES_GROUP};
pub use metrics::BadFrame;
pub use system::{ActorSystem, ActorsError, DatagramSender, SessionView};
