//! Who this edge is: its node id and a generation that every start bumps,
//! kept in the edge's sled store under the data dir, so peers can tell a
//! restarted node from a stale one. Opened before anything else serves.

use std::path::{Path, PathBuf};

use gossip::{NodeId, Region};
use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::store::StoreError;

/// Who this node is, as kept in its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeIdentity {
    /// Stable across restarts.
    pub node_id: NodeId,
    /// Region served.
    pub region: Region,
    /// Bumped on every start, so peers can tell a restarted node from a
    /// stale one.
    pub generation: u64,
}

const KEY_NODE_ID: &str = "node_id";
const KEY_GENERATION: &str = "generation";

/// Directory of an edge's state for `region` under `data_dir`.
pub fn edge_dir(data_dir: &Path, region: &Region) -> PathBuf {
    data_dir.join(format!("edge-{region}"))
}

/// Opens the store, loads or creates the node id and bumps the generation,
/// durably, before the node serves anything. Blocking: call from a blocking
/// context.
///
/// # Errors
/// [`StoreError`] when sled fails or the stored identity is corrupt.
pub fn open_identity(
    dir: &Path,
    region: &Region,
    configured_id: Option<NodeId>,
) -> Result<(sled::Db, NodeIdentity), StoreError> {
    let db = sled::open(dir.join("state.sled"))?;
    let stored = db
        .get(KEY_NODE_ID)?
        .map(|bytes| {
            let text = String::from_utf8(bytes.to_vec()).map_err(|err| StoreError::Corrupt {
                key: KEY_NODE_ID,
                reason: err.to_string(),
            })?;
            NodeId::new(&text).map_err(|err| StoreError::Corrupt {
                key: KEY_NODE_ID,
                reason: err.to_string(),
            })
        })
        .transpose()?;
    let node_id = match (configured_id, stored) {
        (Some(id), _) => id,
        (None, Some(id)) => id,
        (None, None) => NodeId::generate(region, rand_u32()),
    };
    db.insert(KEY_NODE_ID, node_id.as_str().as_bytes())?;
    let previous = match db.get(KEY_GENERATION)? {
        None => 0,
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: KEY_GENERATION,
                reason: format!("expected 8 bytes, found {}", bytes.len()),
            })?;
            u64::from_be_bytes(array)
        }
    };
    let generation = previous + 1;
    db.insert(KEY_GENERATION, &generation.to_be_bytes())?;
    // A node that cannot persist its generation must not run: peers would
    // see the same generation twice after a crash.
    db.flush()?;
    let read_back = db.get(KEY_GENERATION)?.map(|b| b.to_vec());
    assert_eq!(read_back.as_deref(), Some(&generation.to_be_bytes()[..]));
    Ok((
        db,
        NodeIdentity {
            node_id,
            region: region.clone(),
            generation,
        },
    ))
}

/// Raises the stored generation to `generation` if it is higher, durably.
/// Gossip renews a node's identity (a higher generation) when the cluster
/// declared it down and it rejoins; keeping that number means the next
/// start goes above it, never back to one the cluster has seen.
///
/// # Errors
/// [`StoreError::Sled`] when sled fails.
pub fn persist_generation(db: &sled::Db, generation: u64) -> Result<(), StoreError> {
    let stored = db
        .get(KEY_GENERATION)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map_or(0, u64::from_be_bytes);
    if generation > stored {
        db.insert(KEY_GENERATION, &generation.to_be_bytes())?;
        db.flush()?;
    }
    Ok(())
}

/// Follows gossip's events and persists every renewed generation.
pub(crate) async fn keep_generations(
    db: sled::Db,
    mut events: tokio::sync::broadcast::Receiver<gossip::MembershipEvent>,
    shutdown: Shutdown,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = shutdown.clone().wait() => return,
        };
        match event {
            Ok(gossip::MembershipEvent::Rejoined { generation }) => {
                tracing::warn!(generation, "the cluster declared this node down; rejoined");
                let db = db.clone();
                let stored =
                    tokio::task::spawn_blocking(move || persist_generation(&db, generation)).await;
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(error = %err, "cannot persist the generation"),
                    Err(err) => tracing::error!(error = %err, "generation task failed"),
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "gossip events missed while persisting generations");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use crate::edge::identity::*;
    use std::time::Duration;

    #[test]
    fn a_renewed_generation_survives_a_restart_and_never_goes_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let region = Region::new("eu-west").expect("region");
        let (db, first) = open_identity(dir.path(), &region, None).expect("open");
        assert_eq!(first.generation, 1);
        // Gossip rejoined as generation 4 while running.
        persist_generation(&db, 4).expect("persist");
        // A lower one (a stale event) changes nothing.
        persist_generation(&db, 2).expect("persist");
        drop(db);
        // sled lets go of its lock from a background thread: retry a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            match open_identity(dir.path(), &region, None) {
                Ok((_, identity)) => break identity,
                Err(err) if tokio::time::Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("reopen: {err}"),
            }
        };
        assert_eq!(second.node_id, first.node_id);
        assert_eq!(second.generation, 5);
    }
}
