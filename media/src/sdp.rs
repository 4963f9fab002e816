//! What an offer asks for, read before the WebRTC stack sees it: how many
//! audio m-lines send (the microphone) and how many listen (slots), so the
//! SFU can refuse a malformed offer, a learner publishing without leave or
//! too many tracks with a stable code, and leave the peer connection as it
//! was.
//!
//! The protocol: a browser's microphone is one `sendonly` (or `sendrecv`)
//! audio m-line, and it listens on `recvonly` audio m-lines, one per slot;
//! slot `n` is its `n`-th listening line. `inactive` lines (a microphone
//! taken away) count against the track limit only.

use std::io::Cursor;

use webrtc::sdp::SessionDescription;

use crate::config::SfuConfig;
use crate::error::MediaError;
use crate::signal::{MediaErrorCode, SDP_BYTES_MAX};

/// The audio an offer sends and listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferShape {
    /// Audio m-lines that send (0 or 1).
    pub sending: u8,
    /// Audio m-lines that only receive: the listening slots.
    pub listening: u8,
}

/// Reads `sdp` as an offer and checks it against the limits.
///
/// # Errors
/// `malformed_sdp` (too long, does not parse, no audio), `unsupported_media`
/// (video or data), `too_many_tracks` (more audio m-lines than
/// `tracks_per_peer_max`, more than one sending, or more listening lines
/// than `publishers_per_room_max`).
pub fn inspect_offer(sdp: &str, config: &SfuConfig) -> Result<OfferShape, MediaError> {
    if sdp.len() > SDP_BYTES_MAX {
        return Err(MediaError::new(
            MediaErrorCode::MalformedSdp,
            format!(
                "sdp of {} bytes is over the {SDP_BYTES_MAX} byte limit",
                sdp.len()
            ),
        ));
    }
    let parsed =
        SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).map_err(|err| {
            MediaError::new(
                MediaErrorCode::MalformedSdp,
                format!("sdp does not parse: {err}"),
            )
        })?;
    let mut sending: u32 = 0;
    let mut listening: u32 = 0;
    let mut audio: u32 = 0;
    for media in &parsed.media_descriptions {
        if media.media_name.media != "audio" {
            return Err(MediaError::new(
                MediaErrorCode::UnsupportedMedia,
                format!(
                    "media kind {:?} is not supported, only audio",
                    media.media_name.media
                ),
            ));
        }
        audio += 1;
        let has = |key: &str| media.attribute(key).is_some();
        if has("sendonly") || has("sendrecv") {
            sending += 1;
        } else if has("recvonly") {
            listening += 1;
        } else if !has("inactive") {
            // No direction attribute means sendrecv (RFC 4566 section 6).
            sending += 1;
        }
    }
    if audio == 0 {
        return Err(MediaError::new(
            MediaErrorCode::MalformedSdp,
            "offer has no audio m-line",
        ));
    }
    if audio > u32::from(config.tracks_per_peer_max) {
        return Err(MediaError::new(
            MediaErrorCode::TooManyTracks,
            format!(
                "offer has {audio} audio m-lines, the limit is {}",
                config.tracks_per_peer_max
            ),
        ));
    }
    if sending > 1 {
        return Err(MediaError::new(
            MediaErrorCode::TooManyTracks,
            "offer sends on more than one audio m-line",
        ));
    }
    if listening > u32::from(config.publishers_per_room_max) {
        return Err(MediaError::new(
            MediaErrorCode::TooManyTracks,
            format!(
                "offer listens on {listening} slots, the limit is {}",
                config.publishers_per_room_max
            ),
        ));
    }
    // Both fit in a u8: bounded by tracks_per_peer_max above.
    Ok(OfferShape {
        sending: sending as u8,
        listening: listening as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(lines: &[(&str, &str)]) -> String {
        let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        for (kind, direction) in lines {
            sdp.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na={direction}\r\n"
            ));
        }
        sdp
    }

    fn check(lines: &[(&str, &str)], expected: Result<(u8, u8), MediaErrorCode>) {
        let actual = inspect_offer(&offer(lines), &SfuConfig::default())
            .map(|shape| (shape.sending, shape.listening))
            .map_err(|err| err.code());
        assert_eq!(actual, expected, "offer {lines:?}");
    }

    #[test]
    fn offers_are_read_and_limited_at_their_edge() {
        check(&[("audio", "sendonly")], Ok((1, 0)));
        check(
            &[
                ("audio", "sendonly"),
                ("audio", "recvonly"),
                ("audio", "recvonly"),
            ],
            Ok((1, 2)),
        );
        check(&[("audio", "inactive"), ("audio", "recvonly")], Ok((0, 1)));
        check(
            &[("audio", "sendrecv"), ("audio", "sendonly")],
            Err(MediaErrorCode::TooManyTracks),
        );
        check(
            &[("video", "sendonly")],
            Err(MediaErrorCode::UnsupportedMedia),
        );
        check(&[], Err(MediaErrorCode::MalformedSdp));
        // tracks_per_peer_max (5) and publishers_per_room_max (4) at their edge.
        let four = [("audio", "recvonly"); 4];
        check(&four, Ok((0, 4)));
        let five = [("audio", "recvonly"); 5];
        check(&five, Err(MediaErrorCode::TooManyTracks));
        let mut full = vec![("audio", "sendonly")];
        full.extend_from_slice(&four);
        check(&full, Ok((1, 4)));
        full.push(("audio", "inactive"));
        check(&full, Err(MediaErrorCode::TooManyTracks));
    }

    #[test]
    fn garbage_and_oversized_sdp_are_malformed() {
        let config = SfuConfig::default();
        let garbage = inspect_offer("hello", &config).map_err(|e| e.code());
        assert_eq!(garbage, Err(MediaErrorCode::MalformedSdp));
        let mut long = offer(&[("audio", "sendonly")]);
        long.push_str(&"a=x\r\n".repeat(SDP_BYTES_MAX / 5));
        assert!(long.len() > SDP_BYTES_MAX);
        assert_eq!(
            inspect_offer(&long, &config).map_err(|e| e.code()),
            Err(MediaErrorCode::MalformedSdp)
        );
    }
}
