//! `Wire<T>`: a hub message's payload, typed at both ends and carried as
//! JSON between nodes.
//!
//! A payload is decoded by the hub that handles it ([`Wire::open`]), not by
//! the actor transport: ractor's `BytesConvertable::from_bytes` may not fail,
//! and a plain `String` payload panics there on bytes that are not UTF-8.
//! Here `from_bytes` only stores the bytes, so a malformed frame from a peer
//! becomes a logged decode error in the hub instead of a panic, and the
//! sender cannot put one message kind's JSON into another's variant.

use std::fmt;
use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};

/// The JSON of one `T`, as sent to or received from another node.
pub struct Wire<T> {
    bytes: Vec<u8>,
    kind: PhantomData<fn() -> T>,
}

impl<T: Serialize> Wire<T> {
    /// Encodes `value`. Every payload type is plain data (strings, numbers,
    /// sequences and maps with string keys), which JSON always encodes.
    pub fn new(value: &T) -> Self {
        let bytes = serde_json::to_vec(value).expect("hub payloads are plain data");
        Self::from_json(bytes)
    }
}

impl<T> Wire<T> {
    /// Wraps bytes that are meant to be the JSON of a `T` (pieces joined
    /// again, or what a peer sent); [`Wire::open`] checks them.
    pub fn from_json(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            kind: PhantomData,
        }
    }

    /// The encoded length, for the limit on one actor frame.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty payload (never valid JSON).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The JSON bytes, for splitting a large payload into pieces.
    pub fn into_json(self) -> Vec<u8> {
        self.bytes
    }
}

impl<T: DeserializeOwned> Wire<T> {
    /// Decodes the payload.
    ///
    /// # Errors
    /// When the bytes are not the JSON of a `T` (a peer of another
    /// version, or a damaged frame).
    pub fn open(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }
}

impl<T> Clone for Wire<T> {
    fn clone(&self) -> Self {
        Self::from_json(self.bytes.clone())
    }
}

impl<T> fmt::Debug for Wire<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Wire<{}>({} bytes)",
            std::any::type_name::<T>(),
            self.bytes.len()
        )
    }
}

impl<T> ractor::BytesConvertable for Wire<T> {
    fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Self::from_json(bytes)
    }
}

#[cfg(test)]
mod tests {
    use ractor::BytesConvertable;
    use serde::{Deserialize, Serialize};

    use super::Wire;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }

    #[test]
    fn a_payload_survives_the_transport_and_garbage_is_an_error_not_a_panic() {
        let sent = Wire::new(&Ping { n: 7 });
        let received = Wire::<Ping>::from_bytes(sent.into_bytes());
        assert_eq!(received.open().expect("decodes"), Ping { n: 7 });
        let garbage = Wire::<Ping>::from_bytes(vec![0xff, 0xfe, b'{']);
        assert!(garbage.open().is_err());
        let other = Wire::<Ping>::from_bytes(br#"{"class_id":"c"}"#.to_vec());
        assert!(other.open().is_err(), "another kind's JSON is refused");
    }
}
