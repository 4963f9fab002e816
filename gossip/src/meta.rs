//! Node metadata that changes while a node runs (load, sessions, warm sandbox
//! containers per language), spread with foca's custom broadcasts so that it
//! rides on packets the cluster sends anyway. It is separate from the identity
//! because changing it must not look like a new member: each update carries the
//! node's generation and a sequence number, and only newer updates replace
//! older ones. Sizes are bounded so an update always fits in a packet.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use crate::names::NodeId;

/// Most languages in [`NodeMeta::free_warm`].
pub const META_WARM_ENTRIES_MAX: usize = 16;
/// Longest language name in [`NodeMeta::free_warm`], in bytes.
pub const META_KEY_BYTES_MAX: usize = 24;
/// Largest encoded metadata update, in bytes (node id, versions, fields).
pub const META_UPDATE_BYTES_MAX: usize = 640;
/// Most nodes whose metadata a node keeps.
pub const META_NODES_MAX: usize = 1_024;
const _: () = assert!(
    META_UPDATE_BYTES_MAX
        >= 1 + crate::names::NAME_BYTES_MAX
            + 20
            + 3
            + 5
            + 1
            + META_WARM_ENTRIES_MAX * (1 + META_KEY_BYTES_MAX + 5)
);
const _: () = assert!(META_UPDATE_BYTES_MAX < crate::config::PACKET_BYTES_MAX);

/// What a node says about its current work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Load in thousandths (0 idle, 1000 saturated; may exceed when overloaded).
    pub load_permille: u16,
    /// Live learner sessions on the node.
    pub sessions: u32,
    /// Warm, unused sandbox containers per language.
    pub free_warm: BTreeMap<String, u32>,
}

impl NodeMeta {
    /// Checks the bounds.
    ///
    /// # Errors
    /// [`MetaError`] when there are too many languages or a name is too long.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.free_warm.len() > META_WARM_ENTRIES_MAX {
            return Err(MetaError::TooManyEntries(self.free_warm.len()));
        }
        if let Some(key) = self
            .free_warm
            .keys()
            .find(|key| key.is_empty() || key.len() > META_KEY_BYTES_MAX)
        {
            return Err(MetaError::BadKey(key.clone()));
        }
        Ok(())
    }
}

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// More than [`META_WARM_ENTRIES_MAX`] languages.
    #[error("at most {META_WARM_ENTRIES_MAX} languages, got {0}")]
    TooManyEntries(usize),
    /// An empty language name or one longer than [`META_KEY_BYTES_MAX`].
    #[error("language name {0:?} must be 1..={META_KEY_BYTES_MAX} bytes")]
    BadKey(String),
    /// The update does not decode.
    #[error("metadata update does not decode: {0}")]
    Decode(String),
    /// The encoded update is larger than [`META_UPDATE_BYTES_MAX`].
    #[error("metadata update is larger than {META_UPDATE_BYTES_MAX} bytes")]
    TooLarge,
    /// The table already holds [`META_NODES_MAX`] nodes.
    #[error("metadata of at most {META_NODES_MAX} nodes is kept")]
    TableFull,
}

/// One metadata update on the wire. `(generation, seq)` orders updates from
/// one node across restarts, since the generation only grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaUpdate {
    pub(crate) node_id: NodeId,
    pub(crate) generation: u64,
    pub(crate) seq: u64,
    pub(crate) meta: NodeMeta,
}

impl MetaUpdate {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, MetaError> {
        self.meta.validate()?;
        let bytes =
            postcard::to_allocvec(self).map_err(|err| MetaError::Decode(err.to_string()))?;
        if bytes.len() > META_UPDATE_BYTES_MAX {
            return Err(MetaError::TooLarge);
        }
        Ok(bytes)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        if bytes.len() > META_UPDATE_BYTES_MAX {
            return Err(MetaError::TooLarge);
        }
        let update: Self =
            postcard::from_bytes(bytes).map_err(|err| MetaError::Decode(err.to_string()))?;
        update.meta.validate()?;
        Ok(update)
    }

    fn version(&self) -> (u64, u64) {
        (self.generation, self.seq)
    }
}

/// The key foca uses to replace stale metadata still being disseminated.
#[derive(Debug, Clone)]
pub(crate) struct MetaKey {
    node_id: NodeId,
    version: (u64, u64),
}

impl foca::Invalidates for MetaKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id && self.version >= other.version
    }
}

/// The latest metadata per node, shared with the handle.
pub(crate) type MetaTable = Arc<Mutex<BTreeMap<NodeId, ((u64, u64), NodeMeta)>>>;

/// foca's broadcast handler for metadata: keeps the newest update per node and
/// tells foca to keep spreading only updates that were news.
pub(crate) struct MetaHandler {
    table: MetaTable,
}

impl MetaHandler {
    pub(crate) fn new(table: MetaTable) -> Self {
        Self { table }
    }
}

impl<T> foca::BroadcastHandler<T> for MetaHandler {
    type Key = MetaKey;
    type Error = MetaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<Self::Key>, Self::Error> {
        let update = MetaUpdate::decode(data)?;
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = table.get(&update.node_id).map(|(version, _)| *version);
        if known.is_some_and(|version| version >= update.version()) {
            return Ok(None);
        }
        if known.is_none() && table.len() >= META_NODES_MAX {
            return Err(MetaError::TableFull);
        }
        let key = MetaKey {
            node_id: update.node_id.clone(),
            version: update.version(),
        };
        table.insert(update.node_id, (key.version, update.meta));
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use foca::BroadcastHandler;

    use super::*;

    fn full_meta() -> NodeMeta {
        NodeMeta {
            load_permille: u16::MAX,
            sessions: u32::MAX,
            free_warm: (0..META_WARM_ENTRIES_MAX)
                .map(|i| {
                    (
                        format!("{i:0>width$}", width = META_KEY_BYTES_MAX),
                        u32::MAX,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn largest_update_fits_and_newer_wins() {
        let node = NodeId::new(&"n".repeat(crate::names::NAME_BYTES_MAX)).expect("id");
        let update = |generation, seq, meta| MetaUpdate {
            node_id: node.clone(),
            generation,
            seq,
            meta,
        };
        let big = update(u64::MAX, u64::MAX, full_meta())
            .encode()
            .expect("fits");
        assert!(big.len() <= META_UPDATE_BYTES_MAX);

        let table = MetaTable::default();
        let mut handler = MetaHandler::new(table.clone());
        let mut receive = |generation, seq| {
            let bytes = update(generation, seq, NodeMeta::default())
                .encode()
                .expect("encode");
            BroadcastHandler::<()>::receive_item(&mut handler, &bytes, None)
                .expect("valid")
                .is_some()
        };
        assert!(receive(1, 5));
        assert!(!receive(1, 5), "a repeat is not news");
        assert!(!receive(1, 4), "an older one is not news");
        assert!(receive(2, 0), "a new generation is news");
        assert!(BroadcastHandler::<()>::receive_item(&mut handler, b"\xff\xff", None).is_err());

        let mut too_many = full_meta();
        too_many.free_warm.insert("extra".to_owned(), 1);
        assert_eq!(
            update(1, 1, too_many).encode(),
            Err(MetaError::TooManyEntries(META_WARM_ENTRIES_MAX + 1))
        );
    }
}
