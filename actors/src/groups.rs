//! Process groups: the only way to find an actor on another node. A remote
//! actor's id is minted by the session that carries it, so it changes every
//! time a session to its node is opened again; a name in a group is what
//! stays. The names live here so every caller spells them the same way:
//! `node:<node_id>`, `nodes`, `classroom:<id>`, `pool:<region>:<language>`.
//!
//! The groups are ractor's `pg` (default scope), which ractor_cluster keeps in
//! sync over every session: local members are announced to peers, remote ones
//! appear here as proxies and leave when their session ends.

use ractor::ActorCell;

pub use ractor::GroupName;

/// The group every node's echo actor joins, so anyone can reach every node.
pub const NODES_GROUP: &str = "nodes";

/// The group of one node's echo actor.
pub fn node_group(node_id: &gossip::NodeId) -> GroupName {
    format!("node:{node_id}")
}

/// The group of one live classroom's actor.
pub fn classroom_group(classroom_id: &str) -> GroupName {
    format!("classroom:{classroom_id}")
}

/// The group of the sandbox-pool actors for one language in one region.
pub fn pool_group(region: &gossip::Region, language: &str) -> GroupName {
    format!("pool:{region}:{language}")
}

/// Adds `actor` to `group` on this node; peers learn of it through their
/// sessions. An actor leaves its groups by itself when it stops.
pub fn join_group(group: &str, actor: ActorCell) {
    ractor::pg::join(group.to_owned(), vec![actor]);
}

/// Removes `actor` from `group`.
pub fn leave_group(group: &str, actor: ActorCell) {
    ractor::pg::leave(group.to_owned(), vec![actor]);
}

/// Every member of `group` this node knows: its own actors and proxies of
/// remote ones. Resolve again before each use rather than keeping the cells:
/// a proxy dies with its session.
pub fn members_of(group: &str) -> Vec<ActorCell> {
    ractor::pg::get_members(&group.to_owned())
}

/// Only the members of `group` that live on other nodes.
pub fn remote_members_of(group: &str) -> Vec<ActorCell> {
    members_of(group)
        .into_iter()
        .filter(|cell| !cell.get_id().is_local())
        .collect()
}
