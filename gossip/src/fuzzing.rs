//! Entry points for the fuzz targets in `gossip/fuzz`, and for the property
//! tests that run the same code under a plain `cargo test`. Each takes
//! arbitrary bytes, drives what peers send through the production decoders,
//! and panics only when an invariant breaks: foca took a packet whose sender
//! is not the node its certificate names, a refusal has no drop reason, a
//! value accepted from the wire breaks our bounds, a packet foca sends in
//! return does not fit a datagram, or a decoded value does not survive an
//! encode and decode. The seeds ([`datagram_seeds`], [`wire_value_seeds`])
//! are real packets and values from a short exchange between members, so that
//! fuzzing starts inside the formats rather than at random bytes; the files
//! under `gossip/fuzz/corpus` are these seeds, and a test keeps them current.
//!
//! It lives in the crate, not in the fuzz crate, because it needs the
//! crate's private pieces (the foca type every node runs, the metadata
//! handler and its wire type) and because the stable test suite must run it;
//! it is compiled only for tests and with the `fuzzing` feature, which the
//! fuzz crate turns on.

use std::{
    collections::VecDeque,
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
};

use foca::{
    AccumulatingRuntime, Codec, Foca, Header, Identity as _, Member, PostcardCodec, State, Timer,
};
use rand_0_10::{rngs::SmallRng, SeedableRng};

use crate::{
    cluster::SwimFoca,
    config::{SwimSettings, PACKET_BYTES_MAX},
    identity::{NodeIdentity, HTTP_URL_BYTES_MAX, IDENTITY_ENCODED_BYTES_MAX},
    meta::{MetaHandler, MetaTable, MetaUpdate, NodeMeta, META_NODES_MAX, META_UPDATE_BYTES_MAX},
    names::{NodeId, Region, NAME_BYTES_MAX},
    receive::{self, Received},
};

/// The node every fuzzed datagram is delivered to.
const RECEIVER: usize = 0;
/// Node ids a datagram's TLS certificate may name, picked by a step's first
/// byte: the receiver itself (a forged loop-back) and two peers.
const NODES: [&str; 3] = ["fuzz-receiver", "fuzz-peer-a", "fuzz-peer-b"];
/// A step's first byte from this value up fires the receiver's oldest
/// pending timer instead of delivering a datagram.
const TIMER_STEP: u8 = 0xf0;
/// Most steps of one datagram script.
pub const SCRIPT_STEPS_MAX: usize = 64;
/// Most timers the harness keeps pending (foca asks for a few per member).
const TIMERS_PENDING_MAX: usize = 1_024;
/// The seed of the receiver's random generator, fixed so a script replays.
const RECEIVER_SEED: u64 = 7;

fn identity(index: usize) -> NodeIdentity {
    let port = 7_000 + 10 * u16::try_from(index).unwrap_or(0);
    NodeIdentity::new(
        NodeId::new(NODES[index]).expect("a valid fuzz node id"),
        Region::new("eu-west").expect("a valid region"),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!("http://127.0.0.1:{port}"),
        SocketAddr::from(([127, 0, 0, 1], port + 1)),
        1,
    )
    .expect("a valid fuzz identity")
}

/// The largest identity our bounds allow: longest names and URL, IPv6
/// addresses, the last generation.
fn largest_identity() -> NodeIdentity {
    let name = "z".repeat(NAME_BYTES_MAX);
    let v6 = SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        ),
        u16::MAX,
        0,
        0,
    ));
    let url = format!("https://{}", "u".repeat(HTTP_URL_BYTES_MAX - 8));
    NodeIdentity::new(
        NodeId::new(&name).expect("a valid id"),
        Region::new(&name).expect("a valid region"),
        v6,
        &url,
        v6,
        u64::MAX,
    )
    .expect("a valid identity")
}

/// One foca member as every node runs it (LAN preset, postcard codec,
/// metadata handler), driven by hand: no sockets, no tasks, timers fired on
/// request in the order foca asked for them.
struct Harness {
    foca: SwimFoca,
    runtime: AccumulatingRuntime<NodeIdentity>,
    meta: MetaTable,
    timers: VecDeque<Timer<NodeIdentity>>,
}

impl Harness {
    fn new(identity: NodeIdentity, seed: u64) -> Self {
        let meta = MetaTable::default();
        let foca = Foca::with_custom_broadcast(
            identity,
            SwimSettings::lan()
                .to_foca()
                .expect("the LAN preset is valid"),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            MetaHandler::new(meta.clone()),
        );
        Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            meta,
            timers: VecDeque::new(),
        }
    }

    /// Runs one datagram through the gossip task's receive path and checks
    /// what came of it against [`receive::admit`].
    fn deliver(&mut self, from: &NodeId, bytes: &[u8]) -> Received {
        let from_addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let admitted = receive::admit(bytes, from);
        let received = receive::receive(&mut self.foca, &mut self.runtime, from_addr, from, bytes);
        match (&admitted, received) {
            (_, Received::Failed) => {
                panic!("foca failed on its own side on a received packet: a refusal without a drop reason")
            }
            (Err(refusal), Received::Dropped(reason)) => assert_eq!(reason, refusal.reason()),
            (Err(refusal), Received::Handled) => {
                panic!("foca took a packet that admit refused: {refusal}")
            }
            (Ok(header), Received::Handled | Received::Dropped(_)) => assert_eq!(
                header.src.node_id(),
                from,
                "a packet got past admit with a sender its certificate does not name"
            ),
        }
        received
    }

    /// Fires the oldest pending timer; false when none is pending.
    fn fire_timer(&mut self) -> bool {
        let Some(timer) = self.timers.pop_front() else {
            return false;
        };
        // Timer errors are foca's bookkeeping, not the packets' doing.
        let _outcome = self.foca.handle_timer(timer, &mut self.runtime);
        true
    }

    /// Takes what foca asked for, checking every packet it wants sent.
    fn drain(&mut self) -> Vec<(NodeIdentity, Vec<u8>)> {
        let mut sent = Vec::new();
        while let Some((to, bytes)) = self.runtime.to_send() {
            assert!(
                bytes.len() <= PACKET_BYTES_MAX,
                "foca built a {} byte packet, more than {PACKET_BYTES_MAX}",
                bytes.len()
            );
            sent.push((to, bytes.to_vec()));
        }
        while let Some((_after, timer)) = self.runtime.to_schedule() {
            if self.timers.len() < TIMERS_PENDING_MAX {
                self.timers.push_back(timer);
            }
        }
        while self.runtime.to_notify().is_some() {}
        sent
    }

    /// What foca and the metadata table hold must still be within bounds,
    /// whatever the packets said.
    fn check_state(&self) {
        for member in self.foca.iter_membership_state() {
            let bytes = postcard::to_allocvec(member.id()).expect("a member's identity encodes");
            assert!(
                bytes.len() <= IDENTITY_ENCODED_BYTES_MAX,
                "a member's identity is {} bytes",
                bytes.len()
            );
        }
        let table = self
            .meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(table.len() <= META_NODES_MAX);
        for (_, meta) in table.values() {
            assert_eq!(meta.validate(), Ok(()), "stored metadata out of bounds");
        }
    }
}

/// One step of a datagram script.
enum Step<'a> {
    Datagram { from: usize, bytes: &'a [u8] },
    Timer,
}

/// Splits a script: each step is one byte, then for a datagram (byte below
/// [`TIMER_STEP`]; the certificate names `NODES[byte % 3]`) a big-endian
/// `u16` length and that many bytes (fewer when the input ends first).
fn steps(mut input: &[u8]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    while let Some((&op, rest)) = input.split_first() {
        if steps.len() == SCRIPT_STEPS_MAX {
            break;
        }
        if op >= TIMER_STEP {
            steps.push(Step::Timer);
            input = rest;
            continue;
        }
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (bytes, rest) = rest.split_at(len.min(rest.len()));
        steps.push(Step::Datagram {
            from: usize::from(op) % NODES.len(),
            bytes,
        });
        input = rest;
    }
    steps
}

fn script(steps: &[(usize, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (from, bytes) in steps {
        out.push(u8::try_from(*from).expect("a node index"));
        let len = u16::try_from(bytes.len()).expect("a datagram fits u16");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The datagram target: `input` is a script of up to [`SCRIPT_STEPS_MAX`]
/// steps, each a datagram from one of three certificate names or a timer,
/// played against one fresh member through the gossip task's receive path.
/// Panics only when an invariant breaks (see the module docs).
pub fn datagrams(input: &[u8]) {
    let mut receiver = Harness::new(identity(RECEIVER), RECEIVER_SEED);
    for step in steps(input) {
        match step {
            Step::Datagram { from, bytes } => {
                let from = NodeId::new(NODES[from]).expect("a valid fuzz node id");
                receiver.deliver(&from, bytes);
            }
            Step::Timer => {
                receiver.fire_timer();
            }
        }
        receiver.drain();
        receiver.check_state();
    }
}

/// Asserts that `value` encodes within `bound` bytes and decodes back equal.
fn round_trip<T>(value: &T, bound: usize)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = postcard::to_allocvec(value).expect("a decoded value encodes");
    assert!(
        bytes.len() <= bound,
        "{value:?} encodes to {} bytes, more than {bound}",
        bytes.len()
    );
    let back: T = postcard::from_bytes(&bytes).expect("an encoded value decodes");
    assert_eq!(&back, value, "decode(encode(x)) != x");
}

/// The wire-value target: `input` is tried as each value peers send inside
/// packets, with postcard: a [`NodeIdentity`], a metadata update (directly
/// and through foca's broadcast handler), a foca header and a foca member.
/// Whatever decodes must be within our bounds and survive an encode and
/// decode; whatever is refused has a reason. Panics only when an invariant
/// breaks.
pub fn wire_values(input: &[u8]) {
    if let Ok(identity) = postcard::from_bytes::<NodeIdentity>(input) {
        round_trip(&identity, IDENTITY_ENCODED_BYTES_MAX);
        let rebuilt = NodeIdentity::new(
            identity.node_id().clone(),
            identity.region().clone(),
            identity.quic_addr(),
            identity.http_url(),
            identity.actor_addr(),
            identity.generation(),
        );
        assert_eq!(rebuilt.as_ref(), Ok(&identity), "decoding skipped a check");
        assert_eq!(identity.addr(), *identity.node_id());
    }

    let decoded = MetaUpdate::decode(input);
    if let Ok(update) = &decoded {
        let bytes = update.encode().expect("a decoded update is within bounds");
        assert!(bytes.len() <= META_UPDATE_BYTES_MAX);
        assert_eq!(MetaUpdate::decode(&bytes).as_ref(), Ok(update));
    }
    let table = MetaTable::default();
    let mut handler = MetaHandler::new(table.clone());
    let handled = foca::BroadcastHandler::<NodeIdentity>::receive_item(&mut handler, input, None);
    match (&decoded, handled) {
        (Ok(update), Ok(Some(_key))) => {
            let table = table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let stored = table.get(&update.node_id).map(|(_, meta)| meta);
            assert_eq!(stored, Some(&update.meta));
        }
        (Err(_), Err(_)) => {}
        (decoded, handled) => panic!(
            "the broadcast handler and the decoder disagree: {decoded:?} against {handled:?}"
        ),
    }

    let mut codec = PostcardCodec;
    if let Ok(header) = Codec::<NodeIdentity>::decode_header(&mut codec, input) {
        let mut bytes = Vec::new();
        codec
            .encode_header(&header, &mut bytes)
            .expect("a decoded header encodes");
        let back: Header<NodeIdentity> = codec
            .decode_header(&bytes[..])
            .expect("an encoded header decodes");
        assert_eq!(back, header);
    }
    if let Ok(member) = Codec::<NodeIdentity>::decode_member(&mut codec, input) {
        round_trip(member.id(), IDENTITY_ENCODED_BYTES_MAX);
        let mut bytes = Vec::new();
        codec
            .encode_member(&member, &mut bytes)
            .expect("a decoded member encodes");
        let back: Member<NodeIdentity> = codec
            .decode_member(&bytes[..])
            .expect("an encoded member decodes");
        assert_eq!(back, member);
    }
}

/// The packets of a short exchange that the receiver is sent: both peers
/// announce to it and to each other, one broadcasts metadata, and the three
/// trade probes and gossip for a few rounds of timers. Deterministic.
fn exchange() -> Vec<(usize, Vec<u8>)> {
    let mut members: Vec<Harness> = (0..NODES.len())
        .map(|index| {
            let seed = if index == RECEIVER {
                RECEIVER_SEED
            } else {
                100 + index as u64
            };
            Harness::new(identity(index), seed)
        })
        .collect();
    let update = MetaUpdate {
        node_id: identity(1).node_id().clone(),
        generation: 1,
        seq: 1,
        meta: NodeMeta {
            load_permille: 250,
            sessions: 12,
            free_warm: [("python".to_owned(), 3), ("rust".to_owned(), 1)]
                .into_iter()
                .collect(),
        },
    };
    let bytes = update.encode().expect("the sample update fits");
    let peer = &mut members[1];
    // Errors here would only mean fewer seeds.
    let _added = peer.foca.add_broadcast(&bytes);
    let _announced = peer.foca.announce(identity(RECEIVER), &mut peer.runtime);
    let other = &mut members[2];
    let _announced = other.foca.announce(identity(1), &mut other.runtime);

    let mut to_receiver = Vec::new();
    for round in 0..12 {
        let mut in_flight = Vec::new();
        for (index, member) in members.iter_mut().enumerate() {
            if round > 0 {
                // Fire what was due by now: one timer each round keeps the
                // exchange short and varied.
                member.fire_timer();
                if round % 3 == 0 {
                    let _gossiped = member.foca.gossip(&mut member.runtime);
                }
            }
            for (to, bytes) in member.drain() {
                in_flight.push((index, to, bytes));
            }
        }
        for (from, to, bytes) in in_flight {
            let Some(target) = NODES.iter().position(|name| *name == to.node_id().as_str()) else {
                continue;
            };
            if target == RECEIVER {
                to_receiver.push((from, bytes.clone()));
            }
            let from_id = identity(from).node_id().clone();
            members[target].deliver(&from_id, &bytes);
        }
    }
    to_receiver
}

/// Seeds for [`datagrams`]: every packet the receiver got in the exchange as
/// a one-step script, the whole exchange as one script, and the same with
/// timers between the packets.
pub fn datagram_seeds() -> Vec<Vec<u8>> {
    let packets = exchange();
    let mut seeds: Vec<Vec<u8>> = packets
        .iter()
        .map(|(from, bytes)| script(&[(*from, &bytes[..])]))
        .collect();
    let all: Vec<(usize, &[u8])> = packets
        .iter()
        .take(SCRIPT_STEPS_MAX / 2)
        .map(|(from, bytes)| (*from, &bytes[..]))
        .collect();
    seeds.push(script(&all));
    let mut with_timers = Vec::new();
    for step in &all {
        with_timers.extend(script(&[*step]));
        with_timers.push(TIMER_STEP);
    }
    seeds.push(with_timers);
    seeds.sort();
    seeds.dedup();
    seeds
}

/// Seeds for [`wire_values`]: identities (typical and largest), metadata
/// updates, and the headers and members of real packets.
pub fn wire_value_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for identity in [identity(0), identity(1), largest_identity()] {
        seeds.push(postcard::to_allocvec(&identity).expect("an identity encodes"));
        let mut member = Vec::new();
        let mut codec = PostcardCodec;
        codec
            .encode_member(&Member::new(identity, 3, State::Suspect), &mut member)
            .expect("a member encodes");
        seeds.push(member);
    }
    let update = MetaUpdate {
        node_id: identity(2).node_id().clone(),
        generation: 4,
        seq: 9,
        meta: NodeMeta {
            load_permille: 999,
            sessions: 70_000,
            free_warm: [("c".to_owned(), 2), ("java".to_owned(), 0)]
                .into_iter()
                .collect(),
        },
    };
    seeds.push(update.encode().expect("the sample update fits"));
    seeds.push(
        MetaUpdate {
            meta: NodeMeta::default(),
            ..update
        }
        .encode()
        .expect("the sample update fits"),
    );
    for (_, packet) in exchange() {
        let mut codec = PostcardCodec;
        if let Ok(header) = Codec::<NodeIdentity>::decode_header(&mut codec, &packet[..]) {
            let mut bytes = Vec::new();
            codec
                .encode_header(&header, &mut bytes)
                .expect("a header encodes");
            seeds.push(bytes);
        }
    }
    seeds.sort();
    seeds.dedup();
    seeds
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;

    /// Where `cargo fuzz` finds the seeds of `target`.
    fn corpus_dir(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target)
    }

    /// The committed seeds must be what the code makes now (run with
    /// `UPDATE_FUZZ_SEEDS=1` to rewrite them after a format change).
    fn check_corpus(target: &str, seeds: &[Vec<u8>]) {
        let dir = corpus_dir(target);
        let name = |i: usize| format!("seed-{i:02}");
        if std::env::var_os("UPDATE_FUZZ_SEEDS").is_some() {
            let _missing = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the corpus dir");
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(name(i)), seed).expect("write a seed");
            }
        }
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        committed.sort();
        let expected: Vec<String> = (0..seeds.len()).map(name).collect();
        assert_eq!(
            committed, expected,
            "{target} seeds changed; rerun with UPDATE_FUZZ_SEEDS=1"
        );
        for (i, seed) in seeds.iter().enumerate() {
            let bytes = std::fs::read(dir.join(name(i))).expect("read a seed");
            assert!(
                bytes == *seed,
                "{target}/{} changed; rerun with UPDATE_FUZZ_SEEDS=1",
                name(i)
            );
        }
    }

    #[test]
    fn committed_fuzz_seeds_are_current() {
        check_corpus("gossip_datagram", &datagram_seeds());
        check_corpus("gossip_wire", &wire_value_seeds());
    }

    #[test]
    fn seeds_reach_inside_the_formats() {
        // Every one-step datagram seed is taken by a fresh receiver, so the
        // fuzzer starts past the header checks.
        let packets = exchange();
        assert!(packets.len() >= 6, "only {} packets", packets.len());
        let from = |index: usize| NodeId::new(NODES[index]).expect("id");
        let mut handled = 0;
        for (sender, bytes) in &packets {
            let mut receiver = Harness::new(identity(RECEIVER), RECEIVER_SEED);
            if receiver.deliver(&from(*sender), bytes) == Received::Handled {
                handled += 1;
            }
        }
        assert!(
            handled * 2 >= packets.len(),
            "{handled} of {}",
            packets.len()
        );
        for seed in datagram_seeds() {
            datagrams(&seed);
        }

        // A packet under another certificate is dropped as a forgery.
        let (sender, bytes) = &packets[0];
        let liar = from((*sender + 1) % NODES.len());
        let mut receiver = Harness::new(identity(RECEIVER), RECEIVER_SEED);
        assert_eq!(
            receiver.deliver(&liar, bytes),
            Received::Dropped(crate::DropReason::IdentityMismatch)
        );
        assert_eq!(
            receiver.deliver(&from(*sender), &bytes[..2]),
            Received::Dropped(crate::DropReason::Malformed)
        );

        let seeds = wire_value_seeds();
        assert!(seeds
            .iter()
            .any(|s| postcard::from_bytes::<NodeIdentity>(s).is_ok()));
        assert!(seeds.iter().any(|s| MetaUpdate::decode(s).is_ok()));
        for seed in &seeds {
            wire_values(seed);
        }
    }

    /// A seed with a few bytes flipped, cut short or extended.
    fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let count = seeds.len();
        (
            0..count,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            proptest::option::of(any::<usize>()),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(move |(index, flips, cut, tail)| {
                let mut bytes = seeds[index].clone();
                for (at, mask) in flips {
                    if !bytes.is_empty() {
                        let at = at % bytes.len();
                        bytes[at] ^= mask | 1;
                    }
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut % (bytes.len() + 1));
                }
                bytes.extend(tail);
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random bytes through both entry points: no invariant breaks.
        #[test]
        fn random_bytes_break_nothing(input in proptest::collection::vec(any::<u8>(), 0..1_500)) {
            datagrams(&input);
            wire_values(&input);
        }

        /// Real packets and values, mutated: no invariant breaks.
        #[test]
        fn mutated_seeds_break_nothing(
            datagram in mutated(datagram_seeds()),
            value in mutated(wire_value_seeds()),
        ) {
            datagrams(&datagram);
            wire_values(&value);
        }
    }
}
