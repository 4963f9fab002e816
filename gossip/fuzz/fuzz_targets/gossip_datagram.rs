//! Fuzz target: a script of datagrams (each under one of three certificate
//! names) and timers played against one gossip member through the gossip
//! task's receive path (`gossip::receive`): every datagram is handled or
//! dropped with a reason, foca never takes a packet whose sender is not the
//! certificate's node, and nothing panics. The logic is
//! `gossip::fuzzing::datagrams`, which the stable tests run too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gossip::fuzzing::datagrams(data));
