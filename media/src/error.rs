//! `MediaError`: a refused media frame or call, with its stable code
//! (`signal::MediaErrorCode`) and a lowercase message for people. Every
//! refusal leaves the peer and its room as they were.

use crate::signal::{MediaErrorCode, ServerSignal};

/// A refused media frame or SFU call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}", code = code.as_str())]
pub struct MediaError {
    code: MediaErrorCode,
    message: String,
}

impl MediaError {
    /// A refusal with its code and message.
    pub fn new(code: MediaErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> MediaErrorCode {
        self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error frame to send to the peer.
    pub fn to_signal(&self) -> ServerSignal {
        ServerSignal::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }

    pub(crate) fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %err, what, "webrtc stack failed");
        Self::new(MediaErrorCode::Internal, format!("{what} failed"))
    }
}
