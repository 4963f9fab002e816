//! Fuzz target: the checks the actor transport's frame guard makes before a
//! peer's bytes reach ractor_cluster's decoder (`actors::transport`): the
//! frame-length check and the protobuf shape check. The input's first two
//! bytes are `frame_bytes_max`, the rest a byte stream cut into frames the
//! way the guard cuts it. Every refusal has the reason its bytes call for,
//! every payload the shape check lets through also decodes with prost (so
//! the guard is never more lenient than the decoder behind it), and the same
//! bytes read as a list of fields and encoded with prost always pass (so the
//! guard never refuses what a protobuf encoder writes).

#![no_main]

use actors::{
    transport::{check_frame_payload, frame_payload_len, well_formed_protobuf, FRAME_HEADER_BYTES},
    BadFrame,
};
use libfuzzer_sys::fuzz_target;
use prost::encoding::{encode_key, encode_varint, WireType, MAX_TAG, MIN_TAG};

/// Whether prost decodes `bytes` as a message, skipping every field as
/// unknown (the unit message has none).
fn prost_accepts(bytes: &[u8]) -> bool {
    <() as prost::Message>::decode(bytes).is_ok()
}

/// Checks one payload the guard would hold whole.
fn check_payload(payload: &[u8]) -> bool {
    let verdict = check_frame_payload(payload);
    assert_eq!(verdict.is_ok(), well_formed_protobuf(payload));
    match verdict {
        Ok(()) => {
            assert!(
                prost_accepts(payload),
                "the guard passes a payload prost refuses: {payload:02x?}"
            );
            true
        }
        Err(reason) => {
            assert_eq!(reason, BadFrame::Malformed);
            false
        }
    }
}

/// Cuts `stream` into frames as the guard does, until one is refused or the
/// bytes run out.
fn walk(mut stream: &[u8], frame_bytes_max: u64) {
    while let Some((header, rest)) = stream.split_first_chunk::<FRAME_HEADER_BYTES>() {
        let announced = u64::from_be_bytes(*header);
        let len = match frame_payload_len(*header, frame_bytes_max) {
            Ok(len) => len,
            Err(reason) => {
                let expected = if announced == 0 {
                    BadFrame::Empty
                } else {
                    BadFrame::Oversize
                };
                assert_eq!(
                    reason, expected,
                    "length {announced}, max {frame_bytes_max}"
                );
                assert!(announced == 0 || announced > frame_bytes_max);
                return;
            }
        };
        assert!(len >= 1 && len as u64 == announced && announced <= frame_bytes_max);
        if rest.len() < len {
            return;
        }
        let (payload, rest) = rest.split_at(len);
        if !check_payload(payload) {
            return;
        }
        stream = rest;
    }
}

/// Reads `data` as a list of protobuf fields and encodes them with prost:
/// one byte picks the wire type, four the field number, then the value.
fn encoded_fields(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = data.split_first() {
        let Some((tag, rest)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let tag = MIN_TAG + u32::from_le_bytes(*tag) % MAX_TAG;
        data = rest;
        match kind % 4 {
            0 => {
                let Some((value, rest)) = data.split_first_chunk::<8>() else {
                    break;
                };
                encode_key(tag, WireType::Varint, &mut out);
                encode_varint(u64::from_le_bytes(*value), &mut out);
                data = rest;
            }
            1 => {
                let Some((value, rest)) = data.split_first_chunk::<8>() else {
                    break;
                };
                encode_key(tag, WireType::SixtyFourBit, &mut out);
                out.extend_from_slice(value);
                data = rest;
            }
            2 => {
                let Some((&len, rest)) = data.split_first() else {
                    break;
                };
                let len = usize::from(len).min(rest.len());
                encode_key(tag, WireType::LengthDelimited, &mut out);
                encode_varint(len as u64, &mut out);
                out.extend_from_slice(&rest[..len]);
                data = &rest[len..];
            }
            _ => {
                let Some((value, rest)) = data.split_first_chunk::<4>() else {
                    break;
                };
                encode_key(tag, WireType::ThirtyTwoBit, &mut out);
                out.extend_from_slice(value);
                data = rest;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((max, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let frame_bytes_max = u64::from(u16::from_be_bytes(*max));
    walk(stream, frame_bytes_max);
    // The stream as one payload, for the shape check on its own.
    check_payload(stream);

    let encoded = encoded_fields(data);
    assert!(prost_accepts(&encoded), "prost refuses what it encoded");
    assert_eq!(
        check_frame_payload(&encoded),
        Ok(()),
        "the guard refuses a payload prost encoded: {encoded:02x?}"
    );
    if !encoded.is_empty() {
        let header = (encoded.len() as u64).to_be_bytes();
        assert_eq!(
            frame_payload_len(header, encoded.len() as u64),
            Ok(encoded.len())
        );
    }
});
