//! Live classrooms: the protocol, the class as data, the classroom actor
//! and each node's fan-out hub.
//!
//! *Shape.* A class has one [`classroom::ClassroomActor`], homed on one edge
//! node and found cluster-wide through the process group
//! `classroom:<class_id>`. Every edge runs one [`hub::LiveHub`] (group
//! `live-hub:<node_id>`) and a [`hub::Registry`] of its local sessions. A
//! session sends its commands straight to the classroom actor (local or a
//! remote proxy); the classroom decides, folds and numbers the resulting
//! events and sends **one copy per subscribed node** to that node's hub,
//! which fans out to its local sessions by audience. Cross-region traffic
//! grows with nodes, not learners.
//!
//! *Order.* A classroom sends to a hub over one actor session (or the local
//! mailbox), so a hub sees a class's messages in the order they were sent:
//! a join's welcome and replay arrive before any later event, which is what
//! makes resume exact. Sessions still drop any event at or below the last
//! `seq` they delivered.
//!
//! *Bounds.* ractor mailboxes are unbounded, so nothing is allowed to pile
//! into them faster than it is limited elsewhere: commands are rate-limited
//! per session on the gateway and per class in the classroom, and a
//! session's outbound queue is bounded (a session that falls behind is
//! closed as a slow consumer, never waited for).
//!
//! *Failover.* Every event is stored on the home and on a replica in
//! another region before anyone sees it; homes hold a class at an epoch a
//! majority of edges granted, so a partitioned home cannot go on beside
//! its successor. See [`replication`].
//!
//! Modules: [`protocol`] (the wire frames), [`class`] (state and its fold),
//! [`classroom`] (the actor: persistence, replay, delivery), [`hub`] (the
//! per-node registry, fan-out and classroom placement), [`replication`]
//! (epochs, votes, the replica's copy), `storage` (the worker that stores
//! votes and copies off the hub's path).

mod bucket;
pub mod class;
pub mod classroom;
pub mod config;
pub mod hub;
pub mod protocol;
pub mod replication;
mod storage;
pub mod wire;

pub use config::LiveConfig;
pub use storage::STORAGE_QUEUE_MAX;

use std::time::Duration;

/// The limits of live classrooms that the actors enforce; every one is set
/// from the `live` section of the node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLimits {
    /// Events a classroom keeps for resume; a client further behind gets a
    /// snapshot instead.
    pub replay_events_max: usize,
    /// Frames queued for one session before it counts as a slow consumer.
    pub session_queue_max: usize,
    /// People one class may hold.
    pub class_members_max: usize,
    /// Commands a class accepts per second (a token bucket of this size).
    pub class_commands_per_second: u32,
    /// Classes one tenant may have homed on one node.
    pub classes_per_tenant_max: usize,
    /// Events between two stored snapshots of a class.
    pub snapshot_every_events: u64,
    /// How long a join waits for a classroom to be found or started.
    pub class_start_timeout: Duration,
    /// How long an ended class stays, so late resumers learn it ended.
    pub ended_linger: Duration,
    /// How long a home waits for its replica's acknowledgement before it
    /// sends the whole class again.
    pub replica_retry: Duration,
    /// How long a claim for a class's next epoch waits for votes.
    pub claim_timeout: Duration,
    /// Messages a home holds back while its replica catches up; past it
    /// the home steps down (its sessions resume wherever the class goes).
    pub replication_pending_max: usize,
    /// Votes and replica batches the node's storage worker may hold; past
    /// it a vote is refused at once and a batch goes unacknowledged (the
    /// home sends it again). See [`STORAGE_QUEUE_MAX`], the default.
    pub storage_queue_max: usize,
}

/// The defaults are the configuration's: [`LiveConfig`] holds the one set.
impl Default for LiveLimits {
    fn default() -> Self {
        LiveConfig::default().limits()
    }
}

impl LiveConfig {
    /// The limits the actors enforce, from the `[live]` section.
    pub fn limits(&self) -> LiveLimits {
        LiveLimits {
            replay_events_max: self.replay_events_max,
            session_queue_max: self.session_queue_max,
            class_members_max: self.class_members_max,
            class_commands_per_second: self.class_commands_per_second,
            classes_per_tenant_max: self.classes_per_tenant_max,
            snapshot_every_events: self.snapshot_every_events,
            class_start_timeout: Duration::from_millis(self.class_start_timeout_ms),
            ended_linger: Duration::from_millis(self.ended_linger_ms),
            replica_retry: Duration::from_millis(self.replica_retry_ms),
            claim_timeout: Duration::from_millis(self.claim_timeout_ms),
            replication_pending_max: self.replication_pending_max,
            storage_queue_max: self.storage_queue_max,
        }
    }
}

/// The process group of one node's live hub.
pub fn hub_group(node_id: &str) -> String {
    format!("live-hub:{node_id}")
}

/// Milliseconds since the Unix epoch, by this node's clock: the one place
/// the actors read wall-clock time (durations use tokio's clock, which
/// tests can pause).
#[expect(clippy::disallowed_methods, reason = "the crate's one wall-clock read")]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Another edge as membership sees it, for choosing replicas and counting
/// votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// Whether gossip has it alive now.
    pub alive: bool,
}

/// Where a node's live side reads the membership from (gossip, in a node);
/// `None` when it is gone (the node is stopping), which no claim survives.
pub type Peers = std::sync::Arc<dyn Fn() -> Option<Vec<Peer>> + Send + Sync>;

/// Counters of a node's live side, for operators: how classes move. Made
/// unregistered with the node; [`LiveCounters::register`] adds them to the
/// node's registry (tests need not).
#[derive(Debug, Clone)]
pub struct LiveCounters {
    /// `lyceum_live_events_total`: events emitted by classes homed here.
    pub events: prometheus::IntCounter,
    /// `lyceum_live_claims_total{outcome}`: claims for a class's epoch
    /// made here, by outcome (`won`, `behind`, `outbid`, `no_quorum`,
    /// `storage`: this node's store has failed).
    pub claims: prometheus::IntCounterVec,
    /// `lyceum_live_takeovers_total`: classes this node took over as
    /// replica when their home died.
    pub takeovers: prometheus::IntCounter,
    /// `lyceum_live_step_downs_total`: classes a home here gave up.
    pub step_downs: prometheus::IntCounter,
    /// `lyceum_live_replica_syncs_total`: full copies sent to replicas.
    pub replica_syncs: prometheus::IntCounter,
    /// `lyceum_live_storage_errors_total`: reads, writes and flushes of the
    /// live store that failed. After the first, the store takes no more
    /// votes or class copies ([`hub::LiveNode::storage_fault`] says why).
    pub storage_errors: prometheus::IntCounter,
    /// `lyceum_live_classroom_failures_total`: classrooms homed here that
    /// panicked; each class's sessions resumed and it started again from
    /// its store.
    pub classroom_failures: prometheus::IntCounter,
}

impl LiveCounters {
    /// Fresh, unregistered counters.
    ///
    /// # Panics
    /// Never: the names and labels are constants that prometheus accepts.
    pub fn new() -> Self {
        let counter = |name: &str, help: &str| {
            prometheus::IntCounter::new(name, help).expect("a valid metric name")
        };
        let claims = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "live_claims_total",
                "Claims for a class's next epoch made on this node, by outcome.",
            ),
            &["outcome"],
        )
        .expect("a valid metric name");
        for outcome in ["won", "behind", "outbid", "no_quorum", "storage"] {
            claims.with_label_values(&[outcome]);
        }
        Self {
            events: counter(
                "live_events_total",
                "Events emitted by the classes homed on this node.",
            ),
            claims,
            takeovers: counter(
                "live_takeovers_total",
                "Classes this node took over as replica when their home died.",
            ),
            step_downs: counter(
                "live_step_downs_total",
                "Classes a home on this node gave up (fenced off, or no majority).",
            ),
            replica_syncs: counter(
                "live_replica_syncs_total",
                "Full copies of a class sent to its replica.",
            ),
            storage_errors: counter(
                "live_storage_errors_total",
                "Reads, writes and flushes of this node's live store that failed; after the first it takes no more votes or class copies.",
            ),
            classroom_failures: counter(
                "live_classroom_failures_total",
                "Classrooms homed on this node that failed (panicked); their sessions resumed and each started again from its store.",
            ),
        }
    }

    /// Adds every counter to `registry`.
    ///
    /// # Errors
    /// When a name is registered already.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.events.clone()))?;
        registry.register(Box::new(self.claims.clone()))?;
        registry.register(Box::new(self.takeovers.clone()))?;
        registry.register(Box::new(self.step_downs.clone()))?;
        registry.register(Box::new(self.replica_syncs.clone()))?;
        registry.register(Box::new(self.storage_errors.clone()))?;
        registry.register(Box::new(self.classroom_failures.clone()))?;
        Ok(())
    }
}

impl Default for LiveCounters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_live_counter_registers_under_its_documented_name() {
        // The node's registry adds the `lyceum_` prefix; the names here
        // must not carry it themselves.
        let registry =
            prometheus::Registry::new_custom(Some("lyceum".to_owned()), None).expect("registry");
        super::LiveCounters::new()
            .register(&registry)
            .expect("register");
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "lyceum_live_claims_total",
                "lyceum_live_classroom_failures_total",
                "lyceum_live_events_total",
                "lyceum_live_replica_syncs_total",
                "lyceum_live_step_downs_total",
                "lyceum_live_storage_errors_total",
                "lyceum_live_takeovers_total",
            ]
        );
    }
}
