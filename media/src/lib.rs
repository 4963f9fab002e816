//! WebRTC signalling for live-class audio (offers, answers and ICE candidates
//! relayed by the edge node that hosts the classroom). Filled by a later
//! issue; the foundation only reserves its place in the dependency graph.
