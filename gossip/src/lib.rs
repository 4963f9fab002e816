//! Cluster membership for edge nodes: SWIM (foca) over QUIC datagrams with
//! mutual TLS. Each edge runs one [`Gossip`] node; it learns which other edges
//! are alive, where they listen and what they carry, and notices within
//! seconds when one fails. The crate also holds the identity every node
//! carries into gossip (a validated region name and node id), so that bad
//! names are refused at the edge of the system instead of spreading through
//! the cluster. It knows nothing of HTTP, SQL or Docker.
//!
//! Modules, one idea each: [`names`] (validated names), [`tls`] (cluster CA,
//! certificates, mutual-TLS configs), [`identity`] (the foca identity),
//! [`config`] (SWIM presets and limits), [`meta`] (node metadata broadcasts),
//! [`fault`] (fault injection), [`metrics`] (Prometheus), [`transport`]
//! (quinn endpoint and connection cache), [`receive`] (what becomes of one
//! received datagram), `relay` (what the gossip task adds to foca to spread
//! suspicions, refutations and down verdicts at once), [`cluster`] (the running node), [`sim`] (a
//! deterministic simulation of many members without sockets) and `fuzzing`
//! (the entry points of the fuzz targets and their seeds; tests and the
//! `fuzzing` feature only).

pub mod cluster;
pub mod config;
pub mod fault;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod identity;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod receive;
mod relay;
pub mod sim;
pub mod tls;
pub mod transport;

pub use cluster::{Gossip, GossipError, GossipHandle, MemberState, MemberView, MembershipEvent};
pub use config::{ConfigError, GossipConfig, SwimSettings};
pub use fault::{
    Degrade, Fate, FaultAction, FaultDirection, FaultError, FaultFilter, FaultRng, FaultRule,
    PacketWay, PeerSelector, SharedFaults,
};
pub use identity::{IdentityError, NodeIdentity};
pub use meta::{MetaError, NodeMeta};
pub use metrics::DropReason;
pub use names::{NameError, NodeId, Region, NAME_BYTES_MAX};
pub use receive::{Received, Refusal};
pub use tls::{ClusterCa, NodeCert, TlsError, TlsMaterial};
