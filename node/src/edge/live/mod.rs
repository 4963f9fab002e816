//! The live gateway of an edge: `gateway` (the node's shared live state,
//! attendance and membership), `media` (the audio SFU, its frames and how
//! class rights reach it), `relay` (audio between edges), `session` (one
//! task per WebSocket),
//! `ticket` (verifying a class ticket) and `submit` (a learner's
//! submission through the run service). The protocol itself is
//! `actors::live::protocol`; see `docs/live-protocol.md`.

pub(crate) mod gateway;
pub(crate) mod media;
pub(crate) mod relay;
pub(crate) mod session;
pub(crate) mod submit;
pub(crate) mod ticket;
