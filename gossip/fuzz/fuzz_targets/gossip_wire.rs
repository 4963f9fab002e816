//! Fuzz target: the values peers send inside gossip packets, decoded with
//! postcard (a node identity, a metadata broadcast directly and through
//! foca's broadcast handler, a foca header, a foca member): what decodes is
//! within our bounds and survives an encode and decode, what does not is
//! refused with a reason, and nothing panics. The logic is
//! `gossip::fuzzing::wire_values`, which the stable tests run too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gossip::fuzzing::wire_values(data));
