//! The media crate's one integration-test binary: the SFU against
//! webrtc-crate clients over loopback (`sfu`), and against headless
//! Chromium (`chromium`).

mod chromium;
mod client;
mod sfu;
mod vanish;
