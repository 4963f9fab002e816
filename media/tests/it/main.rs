//! The media crate's one integration-test binary: the SFU against
//! webrtc-crate clients over loopback (`sfu`), two SFUs relaying to each
//! other (`relay`), and against headless Chromium (`chromium`).

mod chromium;
mod client;
mod relay;
mod sfu;
mod vanish;
