//! Keeping a class alive when its home dies, and never live on two homes.
//!
//! *Ownership.* A class is run by one home at an **epoch**, won in two
//! rounds from a majority of the edges the claimant knows (alive, suspect
//! or down; itself included), as in single-decree Paxos. Each edge keeps
//! one [`Vote`] per class in the sled tree `live_votes`, written and
//! flushed before it answers. Round one (a [`Claim`]): a voter promises
//! epoch `e` when `e` is above every epoch it promised, and the claimant's
//! stored copy of the class (its *data epoch*) is at least the newest
//! *established* epoch the voter knows (its floor). Round two (the same
//! claim, `establish` set): a voter accepts `e` unless it promised a higher
//! one since, and raises its floor to `e`. Only then does the new home send
//! anything. Two majorities always share a voter, so two nodes never both
//! hold epoch `e`, and once an epoch is established no node with an older
//! copy can win; a claim that failed halfway raises no floor, so it never
//! locks the class.
//!
//! *Replication.* A home writes every batch of events to its own sled and
//! sends it to its **replica**, an edge in another region (any other edge
//! when there is none). Nothing leaves the home for sessions (events,
//! welcomes, replies) until the replica has acknowledged everything before
//! it, and a replica acknowledges a batch only once it is flushed to disk,
//! so every event a client has ever seen is stored on two nodes (durably
//! on the replica; the home does not wait for its own write's flush). The
//! first message at an epoch is a full copy (snapshot and replay buffer);
//! then only new events, and the snapshot whenever the home writes one.
//!
//! *Fencing.* A replica takes batches only at its vote's epoch or above
//! (raising its vote to it). Once the replica has taken over, or voted for
//! someone who has, the old home gets no acknowledgement again: it cannot
//! deliver anything, and on a refusal it steps down, closing its sessions
//! with 4011 so that clients resume wherever the class is now.
//!
//! *Failover.* When gossip declares a home down, its replica claims the next
//! epoch (its data epoch is the home's) and starts the classroom from its
//! copy, with a new replica. When the replica goes down, the home claims
//! the next epoch with a new replica and copies the class to it. Nodes
//! whose sessions were in a class homed on the dead node close them with
//! 4011; the clients resume with their last `seq` and get exactly what they
//! missed.
//!
//! *Storage.* Votes and copies are written by one storage worker per node,
//! off the hub's message path, in the order their messages arrived (so a
//! class's votes are decided one at a time and its batches applied in
//! order), from a queue of at most [`super::STORAGE_QUEUE_MAX`] jobs (past
//! it a vote is refused, a batch dropped and sent again). A run of jobs
//! queued together shares one flush, and no answer goes out before it. A store that fails a read, a write or a flush, or
//! holds a record that does not decode, is done: the node refuses every
//! later claim (its refusal counts as no answer) and every batch, and
//! reports the fault ([`super::hub::LiveNode::storage_fault`]), rather than
//! grant from a vote it may have lost.
//!
//! *Limits.* The voter set is the membership each node knows: growing or
//! shrinking the cluster while it is partitioned can make two majorities
//! miss each other. With fewer than half the edges reachable no one can
//! claim, and the class waits (sessions get 4014 and try elsewhere).

use serde::{Deserialize, Serialize};

use super::{
    class::ClassState,
    protocol::Event,
    storage::{Disk, Write},
};

/// The sled tree of every class's vote on this node.
pub const VOTES_TREE: &str = "live_votes";

/// Key of a class's snapshot in its tree `class:<id>`.
pub(super) const SNAPSHOT_KEY: &[u8] = b"s";

/// A class's stored snapshot: its state and the epoch of the copy (the
/// home's epoch for a home, the epoch of the home it copies for a replica).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The epoch this copy belongs to.
    pub epoch: u64,
    /// The class at the snapshot.
    pub state: ClassState,
}

/// The key of event `seq` in a class's tree.
pub(super) fn event_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'e';
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Why the live store could not be read or written. Either one ends the
/// store's part in votes and copies (see the module doc).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Sled failed a read, a write or a flush.
    #[error("sled failed: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode: never read as a default, which
    /// would grant a claim the lost record refused.
    #[error("corrupt record {key:?} in tree {tree:?}: {error}")]
    Corrupt {
        /// The tree.
        tree: String,
        /// The record's key.
        key: String,
        /// Why it does not decode.
        error: serde_json::Error,
    },
}

/// Decodes a stored record, naming it when it is corrupt.
fn decode<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        tree: String::from_utf8_lossy(&tree.name()).into_owned(),
        key: String::from_utf8_lossy(key).into_owned(),
        error,
    })
}

/// Writes a class's snapshot (its state and the epoch of the copy).
pub(super) fn write_snapshot(
    tree: &sled::Tree,
    epoch: u64,
    state: &ClassState,
) -> sled::Result<()> {
    let stored = Stored {
        epoch,
        state: state.clone(),
    };
    tree.insert(
        SNAPSHOT_KEY,
        serde_json::to_vec(&stored).unwrap_or_default(),
    )?;
    Ok(())
}

/// The tree holding a class's snapshot and log.
pub(super) fn class_tree(db: &sled::Db, class_id: &str) -> sled::Result<sled::Tree> {
    db.open_tree(format!("class:{class_id}"))
}

/// The epoch of this node's stored copy of a class (0 when it has none).
///
/// # Errors
/// A sled error, or a snapshot that does not decode.
pub(super) fn data_epoch(db: &sled::Db, class_id: &str) -> Result<u64, StoreError> {
    let tree = class_tree(db, class_id)?;
    match tree.get(SNAPSHOT_KEY)? {
        Some(bytes) => Ok(decode::<Stored>(&tree, SNAPSHOT_KEY, &bytes)?.epoch),
        None => Ok(0),
    }
}

/// What one edge has granted for one class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The highest epoch promised (or accepted, or seen replicated).
    pub epoch: u64,
    /// The home it went to.
    pub home: String,
    /// That home's replica, when it named one.
    pub replica: Option<String>,
    /// The newest epoch known established: a claimant's copy must be at
    /// least this new.
    #[serde(default)]
    pub floor: u64,
    /// The home that established `floor`.
    #[serde(default)]
    pub floor_home: String,
    /// The epoch of the copy that home started `floor` from. A home writes
    /// its own store before anything of its epoch is acknowledged, so while
    /// its copy is still this old it has served nothing at `floor`: it may
    /// claim again from it (an establish whose claimant then lost its own
    /// vote would otherwise leave a home that never started, and lock the
    /// class for everyone).
    #[serde(default)]
    pub floor_data: u64,
}

/// A node asks to be a class's home at `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    /// Matches replies to the claim.
    pub claim_id: String,
    /// The class.
    pub class_id: String,
    /// The epoch asked for.
    pub epoch: u64,
    /// The claimant, to be the home.
    pub home: String,
    /// The replica the claimant will copy to.
    pub replica: Option<String>,
    /// The epoch of the claimant's stored copy of the class.
    pub data_epoch: u64,
    /// Round two: the claimant won round one and asks voters to accept.
    #[serde(default)]
    pub establish: bool,
}

/// A voter's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimReply {
    /// The claim answered.
    pub claim_id: String,
    /// Who answered.
    pub voter: String,
    /// Whether the epoch is granted.
    pub granted: bool,
    /// Refused because the claimant's copy is older than an established
    /// epoch (asking again with a higher epoch will not help).
    #[serde(default)]
    pub behind: bool,
    /// Refused because the voter cannot vote: its store failed, or its
    /// storage queue is full. It counts as a voter that did not answer,
    /// and `vote` says nothing.
    #[serde(default)]
    pub unavailable: bool,
    /// The voter's vote after answering: on a refusal, where the class is
    /// (or was last granted), so the claimant can send people there.
    pub vote: Vote,
}

/// Decides a claim (either round) against a voter's vote: the new vote
/// when granted, else whether the claimant's copy is too old.
///
/// # Errors
/// `true` when the claimant is behind an established epoch, `false` when
/// the voter promised as high an epoch to someone else.
pub fn decide(vote: &Vote, claim: &Claim) -> Result<Vote, bool> {
    let floors_home_unstarted =
        claim.home == vote.floor_home && claim.data_epoch >= vote.floor_data;
    if claim.data_epoch < vote.floor && !floors_home_unstarted {
        return Err(true);
    }
    let raises_floor = claim.establish && claim.epoch >= vote.floor;
    let next = Vote {
        epoch: claim.epoch,
        home: claim.home.clone(),
        replica: claim.replica.clone(),
        floor: if raises_floor {
            claim.epoch
        } else {
            vote.floor
        },
        floor_home: if raises_floor {
            claim.home.clone()
        } else {
            vote.floor_home.clone()
        },
        floor_data: if raises_floor {
            claim.data_epoch
        } else {
            vote.floor_data
        },
    };
    let open = if claim.establish {
        claim.epoch > vote.epoch || (claim.epoch == vote.epoch && claim.home == vote.home)
    } else {
        claim.epoch > vote.epoch
    };
    if open {
        Ok(next)
    } else {
        Err(false)
    }
}

/// Reads a class's vote (the default when it has none).
///
/// # Errors
/// A sled error, or a record that does not decode: the voter then cannot
/// know what it promised and must not vote.
pub(super) fn read_vote(tree: &sled::Tree, class_id: &str) -> Result<Vote, StoreError> {
    match tree.get(class_id.as_bytes())? {
        Some(bytes) => decode(tree, class_id.as_bytes(), &bytes),
        None => Ok(Vote::default()),
    }
}

/// Writes a class's vote; the caller flushes it before anyone hears of it.
pub(super) fn write_vote(tree: &sled::Tree, class_id: &str, vote: &Vote) -> sled::Result<()> {
    tree.insert(
        class_id.as_bytes(),
        serde_json::to_vec(vote).unwrap_or_default(),
    )?;
    Ok(())
}

/// A batch from a home to its replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replicate {
    /// The class.
    pub class_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The home's epoch.
    pub epoch: u64,
    /// The home.
    pub home: String,
    /// A full copy: the home's state now; `events` is then its replay
    /// buffer. Sent first at every epoch, and whenever the replica lost
    /// its place.
    #[serde(default)]
    pub sync: Option<ClassState>,
    /// The home wrote a snapshot at this state: store it and trim.
    #[serde(default)]
    pub snapshot: Option<ClassState>,
    /// Events, in order (following the replica's last one, unless `sync`).
    #[serde(default)]
    pub events: Vec<Event>,
    /// Events the home keeps for replay; the replica trims to the same.
    pub replay_max: u64,
}

/// How a replica took a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckResult {
    /// Stored; `seq` is the replica's last event now.
    Stored,
    /// The replica has voted for a newer epoch: the home must step down.
    Stale,
    /// The batch does not follow what the replica has: send a full copy.
    Gap,
}

/// A replica's answer to a [`Replicate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaAck {
    /// The class.
    pub class_id: String,
    /// The epoch the batch came at.
    pub epoch: u64,
    /// The replica.
    pub replica: String,
    /// The replica's last stored `seq` at that epoch.
    pub seq: u64,
    /// What happened.
    pub result: AckResult,
}

/// A replica's in-memory place in one class it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The class's tenant.
    pub tenant_id: String,
    /// The home it copies.
    pub home: String,
    /// The epoch of the copy.
    pub epoch: u64,
    /// Its last event.
    pub seq: u64,
}

/// Applies a batch to this node's copy of the class; `copy` is where the
/// copy stood (None when unknown). Answers the result and the new place.
/// Nothing is flushed: the caller flushes before it acknowledges.
///
/// # Errors
/// A sled error or a corrupt vote; the batch is then not acknowledged.
pub(super) fn apply(
    disk: &dyn Disk,
    db: &sled::Db,
    votes: &sled::Tree,
    me: &str,
    copy: Option<&Copy>,
    batch: &Replicate,
) -> Result<(AckResult, Option<Copy>), StoreError> {
    let vote = read_vote(votes, &batch.class_id)?;
    if batch.epoch < vote.epoch || (batch.epoch == vote.epoch && vote.home != batch.home) {
        return Ok((AckResult::Stale, copy.cloned()));
    }
    disk.write(Write::Copy)?;
    if batch.epoch > vote.epoch || vote.floor < batch.epoch {
        // A home sends only once its epoch is established.
        write_vote(
            votes,
            &batch.class_id,
            &Vote {
                epoch: batch.epoch,
                home: batch.home.clone(),
                replica: Some(me.to_owned()),
                floor: batch.epoch,
                // The home replicates, so it started: its copy is at
                // `batch.epoch` and no older copy may claim past it.
                floor_home: batch.home.clone(),
                floor_data: batch.epoch,
            },
        )?;
    }
    let tree = class_tree(db, &batch.class_id)?;
    let mut seq = match (&batch.sync, copy) {
        (Some(_), _) => 0,
        (None, Some(copy)) if copy.epoch == batch.epoch => copy.seq,
        (None, _) => return Ok((AckResult::Gap, copy.cloned())),
    };
    if let Some(state) = &batch.sync {
        tree.clear()?;
        write_snapshot(&tree, batch.epoch, state)?;
        seq = state.seq;
    } else if batch.events.first().is_some_and(|e| e.seq != seq + 1) {
        return Ok((AckResult::Gap, copy.cloned()));
    }
    let mut writes = sled::Batch::default();
    for event in &batch.events {
        writes.insert(
            &event_key(event.seq),
            serde_json::to_vec(event).unwrap_or_default(),
        );
        if batch.sync.is_none() {
            seq = event.seq;
        }
    }
    tree.apply_batch(writes)?;
    if let Some(state) = &batch.snapshot {
        write_snapshot(&tree, batch.epoch, state)?;
        trim(&tree, state.seq.saturating_sub(batch.replay_max))?;
    }
    Ok((
        AckResult::Stored,
        Some(Copy {
            tenant_id: batch.tenant_id.clone(),
            home: batch.home.clone(),
            epoch: batch.epoch,
            seq,
        }),
    ))
}

/// Removes events before `keep_from`: no replay can need them.
///
/// # Errors
/// A sled error.
pub(super) fn trim(tree: &sled::Tree, keep_from: u64) -> sled::Result<()> {
    let stale = tree
        .range(event_key(0)..event_key(keep_from))
        .keys()
        .collect::<sled::Result<Vec<_>>>()?;
    for key in stale {
        tree.remove(key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::storage::Sled;

    fn claim(epoch: u64, home: &str, data_epoch: u64) -> Claim {
        Claim {
            claim_id: "c".into(),
            class_id: "class".into(),
            epoch,
            home: home.into(),
            replica: Some("r".into()),
            data_epoch,
            establish: false,
        }
    }

    fn established(epoch: u64, home: &str, data_epoch: u64) -> Claim {
        Claim {
            establish: true,
            ..claim(epoch, home, data_epoch)
        }
    }

    #[test]
    fn a_vote_grants_each_epoch_once_and_never_to_an_old_copy() {
        let fresh = Vote::default();
        let promised = decide(&fresh, &claim(1, "a", 0)).expect("a new class");
        assert_eq!(promised.epoch, 1);
        assert_eq!(
            decide(&promised, &claim(1, "b", 0)),
            Err(false),
            "epoch 1 is a's"
        );
        assert_eq!(
            decide(&promised, &established(1, "b", 0)),
            Err(false),
            "b cannot establish a's epoch"
        );
        let granted = decide(&promised, &established(1, "a", 0)).expect("a establishes");
        assert_eq!(granted.floor, 1);
        assert_eq!(
            decide(&granted, &claim(2, "b", 0)),
            Err(true),
            "b's copy predates epoch 1"
        );
        let moved = decide(&granted, &claim(2, "r", 1)).expect("the replica of epoch 1");
        let moved = decide(&moved, &established(2, "r", 1)).expect("r establishes");
        assert_eq!((moved.epoch, moved.home.as_str()), (2, "r"));
        assert_eq!(
            decide(&moved, &claim(3, "a", 1)),
            Err(true),
            "a is behind now"
        );
    }

    #[test]
    fn a_home_whose_established_epoch_never_started_may_claim_again() {
        // a's claim for epoch 5 (from its copy of epoch 4) was established
        // by the other voters, but a lost its own vote and never started.
        let base = decide(&Vote::default(), &established(4, "e", 3)).expect("epoch 4");
        let phantom = decide(&base, &established(5, "a", 4)).expect("epoch 5 for a");
        assert_eq!(
            (
                phantom.floor,
                phantom.floor_home.as_str(),
                phantom.floor_data
            ),
            (5, "a", 4)
        );
        // a asks again from the same copy: granted, and established.
        let again = decide(&phantom, &claim(6, "a", 4)).expect("a never served epoch 5");
        let again = decide(&again, &established(6, "a", 4)).expect("a establishes 6");
        assert_eq!((again.floor, again.floor_home.as_str()), (6, "a"));
        // Nobody else gets past the floor with an older copy, nor a with
        // a copy older than the one it started from.
        assert_eq!(decide(&phantom, &claim(6, "b", 4)), Err(true));
        assert_eq!(decide(&phantom, &claim(6, "a", 3)), Err(true));
    }

    #[test]
    fn a_claim_that_failed_halfway_does_not_lock_the_class() {
        // Home a (epoch 1) and its replica r both claimed epoch 2 during a
        // partition and neither won: each only promised itself.
        let base = decide(&Vote::default(), &established(1, "a", 0)).expect("epoch 1");
        let a = decide(&base, &claim(2, "a", 1)).expect("a promises itself");
        let r = decide(&base, &claim(2, "r", 1)).expect("r promises itself");
        // Healed, a asks again one higher and everyone can grant it.
        for vote in [&a, &r, &base] {
            decide(vote, &claim(3, "a", 1)).expect("the floor is still 1");
        }
    }

    #[test]
    fn any_two_majorities_of_three_share_a_voter_so_one_epoch_has_one_home() {
        // Every way three voters can see two claims for the same epoch, in
        // either order: at most one claimant collects two grants.
        for order in [[0, 1], [1, 0]] {
            for pattern in 0..8u8 {
                let mut votes = vec![Vote::default(); 3];
                let claims = [claim(1, "a", 0), claim(1, "b", 0)];
                let mut grants = [0, 0];
                for (voter, vote) in votes.iter_mut().enumerate() {
                    let first = if pattern & (1 << voter) == 0 {
                        order[0]
                    } else {
                        order[1]
                    };
                    for which in [first, 1 - first] {
                        if let Ok(next) = decide(vote, &claims[which]) {
                            *vote = next;
                            grants[which] += 1;
                        }
                    }
                }
                assert!(grants.iter().filter(|g| **g >= 2).count() <= 1);
            }
        }
    }

    fn event(seq: u64) -> Event {
        Event {
            seq,
            at_ms: 1,
            audience: super::super::protocol::Audience::all(),
            kind: super::super::protocol::EventKind::ClassEnded {},
        }
    }

    fn batch(epoch: u64, home: &str, sync: Option<u64>, events: &[u64]) -> Replicate {
        Replicate {
            class_id: "k".into(),
            tenant_id: "t".into(),
            epoch,
            home: home.into(),
            sync: sync.map(|seq| {
                let mut state = ClassState::new("k", "t", 1);
                state.seq = seq;
                state
            }),
            snapshot: None,
            events: events.iter().map(|s| event(*s)).collect(),
            replay_max: 16,
        }
    }

    #[test]
    fn a_corrupt_record_reads_as_an_error_never_as_a_default() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let votes = db.open_tree(VOTES_TREE).expect("votes");
        votes.insert("k", b"{oops".as_slice()).expect("insert");
        assert!(matches!(
            read_vote(&votes, "k"),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(read_vote(&votes, "new").expect("absent"), Vote::default());
        assert!(
            matches!(
                apply(&Sled, &db, &votes, "r", None, &batch(1, "a", Some(0), &[])),
                Err(StoreError::Corrupt { .. })
            ),
            "a replica that cannot read its vote takes no batch"
        );
        class_tree(&db, "k")
            .expect("tree")
            .insert(SNAPSHOT_KEY, b"{oops".as_slice())
            .expect("insert");
        assert!(matches!(
            data_epoch(&db, "k"),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(data_epoch(&db, "new").expect("absent"), 0);
    }

    #[test]
    fn a_replica_takes_a_copy_then_what_follows_and_fences_older_homes() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let votes = db.open_tree(VOTES_TREE).expect("votes");
        let (result, copy) =
            apply(&Sled, &db, &votes, "r", None, &batch(1, "a", None, &[1])).expect("a");
        assert_eq!(result, AckResult::Gap, "nothing to follow yet");
        assert!(copy.is_none());
        let (result, copy) = apply(
            &Sled,
            &db,
            &votes,
            "r",
            None,
            &batch(1, "a", Some(2), &[1, 2]),
        )
        .expect("sync");
        assert_eq!(result, AckResult::Stored);
        assert_eq!(copy.as_ref().map(|c| c.seq), Some(2));
        let (result, copy) = apply(
            &Sled,
            &db,
            &votes,
            "r",
            copy.as_ref(),
            &batch(1, "a", None, &[4]),
        )
        .expect("gap");
        assert_eq!(result, AckResult::Gap);
        let (result, copy) = apply(
            &Sled,
            &db,
            &votes,
            "r",
            copy.as_ref(),
            &batch(1, "a", None, &[3, 4]),
        )
        .expect("next");
        assert_eq!(
            (result, copy.as_ref().map(|c| c.seq)),
            (AckResult::Stored, Some(4))
        );
        assert_eq!(data_epoch(&db, "k").expect("epoch"), 1);
        // Someone else won epoch 2 (this node voted for it).
        write_vote(
            &votes,
            "k",
            &Vote {
                epoch: 2,
                home: "r".into(),
                replica: None,
                floor: 2,
                floor_home: "r".into(),
                floor_data: 2,
            },
        )
        .expect("vote");
        let (result, _) = apply(
            &Sled,
            &db,
            &votes,
            "r",
            copy.as_ref(),
            &batch(1, "a", None, &[5]),
        )
        .expect("stale");
        assert_eq!(result, AckResult::Stale, "the old home is fenced off");
        let (result, _) =
            apply(&Sled, &db, &votes, "r", None, &batch(2, "b", Some(4), &[])).expect("usurper");
        assert_eq!(result, AckResult::Stale, "epoch 2 belongs to r, not b");
    }
}
