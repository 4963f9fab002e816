//! Live-class audio: the media frames of the live WebSocket (`signal`) and
//! the edge's audio SFU (`sfu`), built on the `webrtc` crate.
//!
//! Each person's peer connection ends on the edge their live WebSocket is
//! on. The SFU forwards Opus RTP without decoding it, decides who may
//! publish, and enforces mutes. It knows nothing of HTTP, tickets or the
//! class actors: the node's live gateway checks who someone is and hands
//! the SFU a peer id, a room and a role. See `docs/design/media.md`.

pub mod config;
pub mod crypto;
pub mod error;
pub mod metrics;
pub mod sdp;
pub mod sfu;
pub mod signal;
pub mod turn;

pub use config::{ConfigError, SfuConfig};
pub use crypto::ensure_crypto_provider;
pub use error::MediaError;
pub use metrics::MediaMetrics;
pub use sfu::{JoinRequest, PeerLink, PeerRights, Sfu, SfuStartError};
pub use signal::{
    ClientSignal, IceServer, IceTransportPolicy, MediaErrorCode, MediaRole, MediaState,
    ServerSignal,
};
