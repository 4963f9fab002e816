//! The `[live]` section of an edge's configuration: limits and timings of
//! the live gateway and classrooms. It lives here, beside the actors that
//! enforce most of it, so there is one set of defaults: `Default` is what
//! serde fills in for a missing key (the struct is `#[serde(default)]`),
//! and the defaults that belong to the actors (such as
//! [`STORAGE_QUEUE_MAX`]) are their constants, not copies.

use serde::{Deserialize, Serialize};

use super::protocol::SOURCE_BYTES_MAX;
use super::storage::STORAGE_QUEUE_MAX;

/// The smallest `live.frame_bytes_max`: a frame must hold the largest
/// source a submission or broadcast may carry, plus its JSON.
pub const FRAME_BYTES_MIN: usize = SOURCE_BYTES_MAX + 4 * 1024;

/// The default `live.frame_bytes_max`: room for a largest source even
/// when JSON escaping doubles it (every line break and quote is two bytes).
pub const FRAME_BYTES_DEFAULT: usize = 2 * SOURCE_BYTES_MAX + 8 * 1024;

const _: () = assert!(FRAME_BYTES_DEFAULT >= FRAME_BYTES_MIN);

/// Limits and timings of the live gateway and classrooms (`[live]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Largest client frame the protocol accepts, in bytes; a larger one
    /// gets an error frame `message_too_large` and is not forwarded.
    pub frame_bytes_max: usize,
    /// Largest WebSocket message at all, in bytes; past it the connection
    /// is closed with 1009 (the protocol's own limit answers first).
    pub websocket_message_bytes_max: usize,
    /// Bytes each connection reads from its socket at a time (its read
    /// buffer). Small by default: client frames are small, and at 19,000
    /// connections the library's default (128 KiB) alone is 2.4 GiB.
    pub websocket_read_buffer_bytes: usize,
    /// Bytes a connection gathers before writing to its socket (every frame
    /// is flushed anyway; this bounds the buffer kept between frames).
    pub websocket_write_buffer_bytes: usize,
    /// How long a new connection may take to send its `join`.
    pub join_timeout_ms: u64,
    /// Sessions this node holds at once (one process may hold at most
    /// 20,000 open files here).
    pub sessions_max: u64,
    /// Sessions one tenant may hold on this node.
    pub sessions_per_tenant_max: usize,
    /// Frames a session may send per second (a bucket of this size).
    pub messages_per_session_per_second: u32,
    /// Frames all sessions of one tenant on this node may send per minute
    /// together, so one organisation's classes cannot take the node.
    pub messages_per_tenant_per_minute: u32,
    /// Frames queued for one session before it is a slow consumer.
    pub session_queue_max: usize,
    /// How long one write to a client may take before the connection is
    /// dropped as dead.
    pub write_timeout_ms: u64,
    /// Interval of WebSocket pings from the server.
    pub ping_interval_ms: u64,
    /// Events a classroom keeps for resume.
    pub replay_events_max: usize,
    /// People one class may hold.
    pub class_members_max: usize,
    /// Commands one class accepts per second.
    pub class_commands_per_second: u32,
    /// Classes one tenant may have homed on this node.
    pub classes_per_tenant_max: usize,
    /// Events between stored snapshots of a class.
    pub snapshot_every_events: u64,
    /// How long a join waits for the classroom to be found or started.
    pub class_start_timeout_ms: u64,
    /// How long an ended class stays reachable.
    pub ended_linger_ms: u64,
    /// How long a class's home waits for its replica's acknowledgement
    /// before it sends the whole class again.
    pub replica_retry_ms: u64,
    /// How long a claim for a class's next epoch waits for votes.
    pub claim_timeout_ms: u64,
    /// Messages a home holds back while its replica catches up; past it
    /// the home gives the class up and its sessions resume elsewhere.
    pub replication_pending_max: usize,
    /// Votes and replica batches waiting for this node's live store at
    /// once; past it a vote is refused at once and a batch goes
    /// unacknowledged until the home resends it.
    pub storage_queue_max: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_DEFAULT,
            websocket_message_bytes_max: 256 * 1024,
            websocket_read_buffer_bytes: 8 * 1024,
            websocket_write_buffer_bytes: 8 * 1024,
            join_timeout_ms: 10_000,
            sessions_max: 19_500,
            sessions_per_tenant_max: 19_500,
            messages_per_session_per_second: 20,
            messages_per_tenant_per_minute: 600_000,
            session_queue_max: 512,
            write_timeout_ms: 10_000,
            ping_interval_ms: 20_000,
            replay_events_max: 1_024,
            class_members_max: 5_000,
            class_commands_per_second: 500,
            classes_per_tenant_max: 100,
            snapshot_every_events: 256,
            class_start_timeout_ms: 5_000,
            ended_linger_ms: 300_000,
            replica_retry_ms: 1_000,
            claim_timeout_ms: 2_000,
            replication_pending_max: 16_384,
            storage_queue_max: STORAGE_QUEUE_MAX,
        }
    }
}

impl LiveConfig {
    /// Checks ranges; the error names the key.
    ///
    /// # Errors
    /// `(key, reason)` for the first bad value.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("live.frame_bytes_max", self.frame_bytes_max as u64),
            (
                "live.websocket_message_bytes_max",
                self.websocket_message_bytes_max as u64,
            ),
            (
                "live.websocket_read_buffer_bytes",
                self.websocket_read_buffer_bytes as u64,
            ),
            ("live.join_timeout_ms", self.join_timeout_ms),
            ("live.sessions_max", self.sessions_max),
            (
                "live.sessions_per_tenant_max",
                self.sessions_per_tenant_max as u64,
            ),
            (
                "live.messages_per_session_per_second",
                u64::from(self.messages_per_session_per_second),
            ),
            (
                "live.messages_per_tenant_per_minute",
                u64::from(self.messages_per_tenant_per_minute),
            ),
            ("live.session_queue_max", self.session_queue_max as u64),
            ("live.write_timeout_ms", self.write_timeout_ms),
            ("live.ping_interval_ms", self.ping_interval_ms),
            ("live.replay_events_max", self.replay_events_max as u64),
            ("live.class_members_max", self.class_members_max as u64),
            (
                "live.class_commands_per_second",
                u64::from(self.class_commands_per_second),
            ),
            (
                "live.classes_per_tenant_max",
                self.classes_per_tenant_max as u64,
            ),
            ("live.snapshot_every_events", self.snapshot_every_events),
            ("live.class_start_timeout_ms", self.class_start_timeout_ms),
            ("live.replica_retry_ms", self.replica_retry_ms),
            ("live.claim_timeout_ms", self.claim_timeout_ms),
            (
                "live.replication_pending_max",
                self.replication_pending_max as u64,
            ),
            ("live.storage_queue_max", self.storage_queue_max as u64),
        ] {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.frame_bytes_max < FRAME_BYTES_MIN {
            return Err((
                "live.frame_bytes_max",
                format!(
                    "must be at least {FRAME_BYTES_MIN}, so a frame holds a {} byte source",
                    SOURCE_BYTES_MAX
                ),
            ));
        }
        if self.websocket_message_bytes_max < self.frame_bytes_max {
            return Err((
                "live.websocket_message_bytes_max",
                "must be at least live.frame_bytes_max".into(),
            ));
        }
        if self.sessions_max > 19_900 {
            return Err((
                "live.sessions_max",
                "must be at most 19900 (a process may hold 20000 open files)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_takes_the_default() {
        let empty: LiveConfig = serde_json::from_str("{}").expect("empty section");
        assert_eq!(empty, LiveConfig::default());
        assert_eq!(empty.storage_queue_max, STORAGE_QUEUE_MAX);
        assert_eq!(LiveConfig::default().validate(), Ok(()));
    }
}
