//! The edge's sled store. This file holds what every part of it shares:
//! its error type, and the time stamps written with what it keeps. The run
//! store ([`runs`]), the kept pool plan ([`pool_plan`]), the outboxes (the `outbox` module beside this one) and
//! the node's identity depend on this file and on nothing of the edge's
//! wiring; this file imports none of them, so no import runs back up.

pub mod pool_plan;
pub mod runs;

/// Why the edge's local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled refused to open, read or flush.
    #[error("edge store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value has the wrong shape.
    #[error("edge store: key {key} is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

/// Now, as the RFC 3339 UTC time stamp stored with runs, reports and dead
/// letters.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
