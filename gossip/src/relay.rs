//! What the gossip task adds to foca so that verdicts travel at network
//! speed instead of one gossip round at a time. foca (2.0.0, no Lifeguard)
//! leaves three gaps that the simulation showed in the detection time and
//! the false positives:
//!
//! * A suspicion reaches its subject only by chance (periodic gossip to a
//!   few random members), and the refutation goes back to the one member
//!   whose suspicion timer runs only by chance as well. So the member that
//!   raised a suspicion sends it **straight to its subject**, again every
//!   [`SwimSettings::suspicion_resend_ms`] while it still holds it, and a
//!   member told it is suspected **answers the sender directly** with a
//!   packet whose header carries its new incarnation (foca reads any header
//!   with a higher incarnation as a refutation).
//! * A down verdict spreads one gossip round (100 ms on the LAN) per hop.
//!   Each member that learns a member went down **relays the verdict at
//!   once** to [`SwimSettings::relay_fanout_max`] random members, once per
//!   verdict, so the whole cluster knows within a few network round trips.
//! * Knowledge can be one-sided: A learns of B from a third member while B
//!   has not heard of A, and foca has no push-pull sync, so B meets A only
//!   when it happens to hear of it (in a large join, minutes later). A
//!   member that learns of another **greets it** with one packet whose header
//!   introduces itself, so one side knowing is enough.
//!
//! The packets are ordinary foca `Gossip` messages built with foca's own
//! codec (a header and at most one member update), so peers need nothing
//! new to read them, and the production driver ([`crate::cluster`]) and the
//! simulation ([`crate::sim`]) run this same code.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use foca::{Codec, Header, Incarnation, Member, Message, PostcardCodec, State};
use rand_0_10::{rngs::SmallRng, RngExt, SeedableRng};

use crate::{cluster::SwimFoca, config::SwimSettings, identity::NodeIdentity};

/// A timer the relay asks its driver for: resend a suspicion to its subject
/// if it still stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChaseTimer {
    subject: NodeIdentity,
    incarnation: Incarnation,
}

/// A packet the relay wants sent, to go the same way as foca's own.
pub(crate) type RelayPacket = (NodeIdentity, Bytes);

/// One member's relay state (one per foca instance).
pub(crate) struct Relay {
    rng: SmallRng,
    fanout: usize,
    resend: Duration,
    packet_bytes_max: usize,
    /// Generation and incarnation in the last header foca sent: foca does not
    /// expose its incarnation, and no member can know a higher one than the
    /// last we sent.
    own: Option<(u64, Incarnation)>,
    /// The member foca pinged at its last probe tick.
    probing: Option<NodeIdentity>,
    /// foca sent a `Gossip` since [`Relay::begin_packet`]: it does so from a
    /// received packet only to refute a suspicion of itself (or to rejoin).
    gossiped: bool,
    incarnation_before: Option<(u64, Incarnation)>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("fanout", &self.fanout)
            .field("resend", &self.resend)
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay with the fan-out and resend period of `swim`, drawing its
    /// random choices from `seed`.
    pub(crate) fn new(swim: &SwimSettings, seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            fanout: swim.relay_fanout_max,
            resend: Duration::from_millis(swim.suspicion_resend_ms),
            packet_bytes_max: swim.packet_bytes_max,
            own: None,
            probing: None,
            gossiped: false,
            incarnation_before: None,
        }
    }

    /// Sees a header foca is sending (every one, before it leaves).
    pub(crate) fn observe_sent(&mut self, header: &Header<NodeIdentity>) {
        self.own = Some((header.src.generation(), header.src_incarnation));
        match header.message {
            Message::Ping(_) => self.probing = Some(header.dst.clone()),
            Message::Gossip => self.gossiped = true,
            _ => {}
        }
    }

    /// Call before foca handles a received packet.
    pub(crate) fn begin_packet(&mut self) {
        self.gossiped = false;
        self.incarnation_before = self.own;
    }

    /// Call once foca handled a packet and what it sent was observed: true
    /// when the packet told us we are suspected (foca raised its incarnation,
    /// or gossiped to refute), so its sender is to get [`Relay::answer`].
    pub(crate) fn end_packet(&mut self) -> bool {
        let refuted = self.gossiped || self.own > self.incarnation_before;
        self.gossiped = false;
        refuted
    }

    /// The direct answer to `sender` after [`Relay::end_packet`] said so: a
    /// header with our current incarnation, which refutes at the sender.
    pub(crate) fn answer(&self, foca: &SwimFoca, sender: &NodeIdentity) -> Option<RelayPacket> {
        if sender == foca.identity() {
            return None;
        }
        self.craft(foca, sender, None)
            .map(|bytes| (sender.clone(), bytes))
    }

    /// Call right before foca handles a `ProbeRandomMember` timer; pass the
    /// result to [`Relay::after_probe_tick`].
    pub(crate) fn before_probe_tick(&mut self) -> Option<NodeIdentity> {
        self.probing.take()
    }

    /// Call after the probe tick was handled and its packets observed: if the
    /// member probed before it is now suspect (the probe failed), send the
    /// suspicion straight to it and ask to be reminded.
    pub(crate) fn after_probe_tick(
        &mut self,
        foca: &SwimFoca,
        probed: Option<NodeIdentity>,
        out: &mut Vec<RelayPacket>,
        timers: &mut Vec<(Duration, ChaseTimer)>,
    ) {
        let Some(probed) = probed else {
            return;
        };
        let Some(incarnation) = suspect_incarnation(foca, &probed) else {
            return;
        };
        self.chase(foca, probed, incarnation, out, timers);
    }

    /// Handles a [`ChaseTimer`]: resends the suspicion while it stands.
    pub(crate) fn on_chase(
        &mut self,
        foca: &SwimFoca,
        timer: ChaseTimer,
        out: &mut Vec<RelayPacket>,
        timers: &mut Vec<(Duration, ChaseTimer)>,
    ) {
        if suspect_incarnation(foca, &timer.subject) == Some(timer.incarnation) {
            self.chase(foca, timer.subject, timer.incarnation, out, timers);
        }
    }

    fn chase(
        &mut self,
        foca: &SwimFoca,
        subject: NodeIdentity,
        incarnation: Incarnation,
        out: &mut Vec<RelayPacket>,
        timers: &mut Vec<(Duration, ChaseTimer)>,
    ) {
        let update = Member::new(subject.clone(), incarnation, State::Suspect);
        if let Some(bytes) = self.craft(foca, &subject, Some(&update)) {
            out.push((subject.clone(), bytes));
        }
        timers.push((
            self.resend,
            ChaseTimer {
                subject,
                incarnation,
            },
        ));
    }

    /// Call on foca's `MemberUp` notification: the greeting that makes the
    /// new member know us too.
    pub(crate) fn on_member_up(&self, foca: &SwimFoca, up: &NodeIdentity) -> Option<RelayPacket> {
        if up == foca.identity() {
            return None;
        }
        self.craft(foca, up, None).map(|bytes| (up.clone(), bytes))
    }

    /// Call on foca's `MemberDown` notification: relays the verdict to
    /// `relay_fanout_max` random active members.
    pub(crate) fn on_member_down(
        &mut self,
        foca: &SwimFoca,
        down: &NodeIdentity,
        out: &mut Vec<RelayPacket>,
    ) {
        let mut candidates: Vec<&NodeIdentity> = foca
            .iter_members()
            .map(Member::id)
            .filter(|id| *id != down)
            .collect();
        let update = Member::new(down.clone(), 0, State::Down);
        for _ in 0..self.fanout.min(candidates.len()) {
            let at = self.rng.random_range(0..candidates.len());
            let to = candidates.swap_remove(at);
            if let Some(bytes) = self.craft(foca, to, Some(&update)) {
                out.push((to.clone(), bytes));
            }
        }
    }

    /// A `Gossip` from us to `dst` carrying `update` (or no update: the
    /// header alone tells our incarnation). `None` when it does not encode
    /// within the packet size, which cannot happen with valid identities.
    fn craft(
        &self,
        foca: &SwimFoca,
        dst: &NodeIdentity,
        update: Option<&Member<NodeIdentity>>,
    ) -> Option<Bytes> {
        let src = foca.identity().clone();
        let src_incarnation = match self.own {
            Some((generation, incarnation)) if generation == src.generation() => incarnation,
            _ => 0,
        };
        let header = Header {
            src,
            src_incarnation,
            dst: dst.clone(),
            message: Message::Gossip,
        };
        let mut buf = BytesMut::with_capacity(256).limit(self.packet_bytes_max);
        let mut codec = PostcardCodec;
        codec.encode_header(&header, &mut buf).ok()?;
        if let Some(update) = update {
            if buf.remaining_mut() < 2 {
                return None;
            }
            buf.put_u16(1);
            codec.encode_member(update, &mut buf).ok()?;
        }
        Some(buf.into_inner().freeze())
    }
}

/// The incarnation at which foca holds `member` (this very identity)
/// suspect, if it does.
fn suspect_incarnation(foca: &SwimFoca, member: &NodeIdentity) -> Option<Incarnation> {
    foca.iter_membership_state()
        .find(|m| m.id() == member)
        .filter(|m| m.state() == State::Suspect)
        .map(Member::incarnation)
}

#[cfg(test)]
mod tests {
    use foca::{AccumulatingRuntime, Foca};

    use super::*;
    use crate::{
        meta::{MetaHandler, MetaTable},
        names::{NodeId, Region},
    };

    fn node(id: &str, port: u16) -> NodeIdentity {
        NodeIdentity::new(
            NodeId::new(id).expect("id"),
            Region::new("eu-west").expect("region"),
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            "http://node.test",
            std::net::SocketAddr::from(([127, 0, 0, 1], port + 1)),
            1,
        )
        .expect("identity")
    }

    fn swim(identity: NodeIdentity) -> SwimFoca {
        Foca::with_custom_broadcast(
            identity,
            SwimSettings::lan().to_foca().expect("config"),
            SmallRng::seed_from_u64(7),
            PostcardCodec,
            MetaHandler::new(MetaTable::default()),
        )
    }

    /// A crafted suspicion refutes at its subject, and the subject's direct
    /// answer refutes at the sender: the round trip the relay relies on.
    #[test]
    fn suspicion_sent_to_its_subject_is_refuted_by_the_answer() {
        let (a_id, b_id) = (node("relay-a", 1000), node("relay-b", 2000));
        let mut a = swim(a_id.clone());
        let mut b = swim(b_id.clone());
        let mut runtime = AccumulatingRuntime::new();
        // a knows b as suspect at incarnation 0, b knows a.
        a.apply_many(
            [Member::new(b_id.clone(), 0, State::Suspect)].into_iter(),
            false,
            &mut runtime,
        )
        .expect("apply");
        b.apply_many(
            [Member::alive(a_id.clone())].into_iter(),
            false,
            &mut runtime,
        )
        .expect("apply");
        while runtime.to_send().is_some()
            || runtime.to_schedule().is_some()
            || runtime.to_notify().is_some()
        {}
        let mut relay_a = Relay::new(&SwimSettings::lan(), 1);
        let mut relay_b = Relay::new(&SwimSettings::lan(), 2);
        let (mut out, mut timers) = (Vec::new(), Vec::new());
        relay_a.on_chase(
            &a,
            ChaseTimer {
                subject: b_id.clone(),
                incarnation: 0,
            },
            &mut out,
            &mut timers,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(timers.len(), 1, "reminded to resend");
        let (to, bytes) = out.pop().expect("packet");
        assert_eq!(to, b_id);

        relay_b.begin_packet();
        b.handle_data(&bytes, &mut runtime).expect("b takes it");
        while let Some((_, sent)) = runtime.to_send() {
            let header: Header<NodeIdentity> =
                PostcardCodec.decode_header(&sent[..]).expect("header");
            relay_b.observe_sent(&header);
        }
        assert!(relay_b.end_packet(), "b refuted");
        let (to, answer) = relay_b.answer(&b, &a_id).expect("direct answer");
        assert_eq!(to, a_id);
        a.handle_data(&answer, &mut runtime).expect("a takes it");
        let state = a
            .iter_membership_state()
            .find(|m| m.id() == &b_id)
            .expect("b known");
        assert_eq!(state.state(), State::Alive);
        assert!(state.incarnation() > 0);

        // Refuted: the reminder sends nothing more.
        relay_a.on_chase(&a, timers.pop().expect("timer").1, &mut out, &mut timers);
        assert!(out.is_empty() && timers.is_empty());
    }

    /// One side knowing is enough: the greeting makes the other side know
    /// the greeter.
    #[test]
    fn a_greeting_introduces_the_greeter() {
        let (a_id, b_id) = (node("relay-a", 1000), node("relay-b", 2000));
        let a = swim(a_id.clone());
        let mut b = swim(b_id.clone());
        let mut runtime = AccumulatingRuntime::new();
        let relay = Relay::new(&SwimSettings::lan(), 4);
        assert!(
            relay.on_member_up(&a, &a_id).is_none(),
            "never greets itself"
        );
        let (to, bytes) = relay.on_member_up(&a, &b_id).expect("greeting");
        assert_eq!(to, b_id);
        assert!(bytes.len() <= SwimSettings::lan().packet_bytes_max);
        b.handle_data(&bytes, &mut runtime).expect("b takes it");
        assert!(b.iter_members().any(|m| m.id() == &a_id), "b knows a");
    }

    #[test]
    fn a_down_verdict_goes_to_fanout_members_but_not_its_subject() {
        let local = node("relay-a", 1000);
        let mut a = swim(local);
        let mut runtime = AccumulatingRuntime::new();
        let others: Vec<NodeIdentity> = (0..8).map(|i| node(&format!("m{i}"), 3000 + i)).collect();
        a.apply_many(
            others.iter().cloned().map(Member::alive),
            false,
            &mut runtime,
        )
        .expect("apply");
        let mut relay = Relay::new(&SwimSettings::lan(), 3);
        let mut out = Vec::new();
        relay.on_member_down(&a, &others[0], &mut out);
        assert_eq!(out.len(), SwimSettings::lan().relay_fanout_max);
        assert!(out.iter().all(|(to, _)| to != &others[0]));
        let mut distinct: Vec<_> = out.iter().map(|(to, _)| to.node_id().clone()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), out.len());
    }
}
