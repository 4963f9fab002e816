//! The media crate's one integration-test binary: the SFU against
//! webrtc-crate clients over loopback (`sfu`), two SFUs relaying to each
//! other (`relay`), against headless Chromium (`chromium`), and the leak
//! soak (`soak`, running the `media-soak` binary).

mod chromium;
mod client;
mod relay;
mod sfu;
mod soak;
mod vanish;
