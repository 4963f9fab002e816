//! Actors that edge nodes host: one session actor per connected person, one
//! classroom actor per live class and one sandbox-pool actor per language,
//! built on `ractor` and reached across nodes through `ractor_cluster`.
//! Issues 3, 4 and 6 fill this crate; the foundation only reserves its place
//! in the dependency graph (it may depend on `gossip` and `sandbox`, never on
//! `control-plane`).
