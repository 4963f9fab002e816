//! The actor transport: one quinn endpoint per node (its own UDP socket and
//! ALPN, the gossip cluster's CA and certificates), one QUIC connection per
//! peer (which also carries `crate::datagrams`) and on it one bidirectional
//! stream that carries ractor_cluster's framing (a `u64` big-endian length, then a protobuf payload) through
//! [`ractor_cluster::ClusterBidiStream`].
//!
//! Every byte from a peer passes the [`FrameGuard`] before ractor_cluster
//! sees it. The guard cuts the stream at frame boundaries, refuses a length
//! above `frame_bytes_max` before anything is allocated for it, and checks
//! that a whole payload is well-formed protobuf before handing over its last
//! byte; a bad frame is counted, closes the connection and ends the session
//! with an I/O error, which ractor_cluster handles as a lost peer. So garbage
//! on the wire never reaches a decoder, and a peer cannot make the node
//! allocate more than one frame's worth.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use gossip::{NodeId, TlsMaterial};
use tokio::io::{AsyncRead, ReadBuf};

use crate::hold::HoldBack;
use crate::metrics::{BadFrame, Metrics};

/// The ALPN protocol of the actor transport, so a gossip client (or anything
/// else) dialling this port fails the handshake instead of talking nonsense.
pub const ACTORS_ALPN: &[u8] = b"lyceum-actors/1";
/// Bytes of ractor_cluster's frame length prefix.
pub const FRAME_HEADER_BYTES: usize = 8;
/// How many bytes the guard reads from QUIC at once.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TLS configuration was refused.
    #[error("actor transport tls: {0}")]
    Tls(#[from] gossip::TlsError),
    /// quinn refused the rustls configuration.
    #[error("actor transport quic crypto: {0}")]
    Crypto(String),
    /// The UDP socket could not be bound.
    #[error("bind actor endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
}

fn transport_config(idle_timeout_ms: u64) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(idle_timeout_ms))
        .map_err(|err| TransportError::Crypto(format!("idle timeout: {err}")))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(Duration::from_millis(idle_timeout_ms / 3)));
    // One stream per connection: the session. Refuse the peer any more.
    transport.max_concurrent_bidi_streams(1u8.into());
    transport.max_concurrent_uni_streams(0u8.into());
    // Datagrams ride the same connection (`crate::datagrams`): unreliable,
    // for traffic that must never wait, such as relayed audio.
    transport.datagram_receive_buffer_size(Some(crate::datagrams::DATAGRAM_BUFFER_BYTES));
    transport.datagram_send_buffer_size(crate::datagrams::DATAGRAM_BUFFER_BYTES);
    Ok(Arc::new(transport))
}

/// Binds the actor endpoint: mutual TLS with the cluster CA, ALPN
/// [`ACTORS_ALPN`], server and client on one socket.
///
/// # Errors
/// [`TransportError`] when TLS or quinn refuse the configuration or the
/// socket cannot be bound.
pub(crate) fn bind_endpoint(
    bind_addr: SocketAddr,
    tls: &TlsMaterial,
    idle_timeout_ms: u64,
) -> Result<quinn::Endpoint, TransportError> {
    let transport = transport_config(idle_timeout_ms)?;
    let mut server_tls = tls.rustls_server_config()?;
    server_tls.alpn_protocols = vec![ACTORS_ALPN.to_vec()];
    let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)
        .map_err(|err| TransportError::Crypto(err.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    // A fresh handshake per connection; no 0-RTT (replayable) data.
    server.migration(false);

    let mut client_tls = tls.rustls_client_config()?;
    client_tls.alpn_protocols = vec![ACTORS_ALPN.to_vec()];
    let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)
        .map_err(|err| TransportError::Crypto(err.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);

    let mut endpoint =
        quinn::Endpoint::server(server, bind_addr).map_err(|source| TransportError::Bind {
            addr: bind_addr,
            source,
        })?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// A session's QUIC stream as ractor_cluster wants it.
pub(crate) struct QuicBidi {
    pub(crate) send: quinn::SendStream,
    pub(crate) recv: FrameGuard<HoldBack<quinn::RecvStream>>,
    pub(crate) label: String,
}

impl ractor_cluster::ClusterBidiStream for QuicBidi {
    fn split(self: Box<Self>) -> (ractor_cluster::BoxRead, ractor_cluster::BoxWrite) {
        (Box::new(self.recv), Box::new(self.send))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.label.clone())
    }

    fn local_label(&self) -> Option<String> {
        Some("quic".to_owned())
    }
}

/// Where the guard is inside the current frame.
#[derive(Debug)]
enum Part {
    /// Reading the length prefix; holds the bytes seen so far.
    Header {
        bytes: [u8; FRAME_HEADER_BYTES],
        seen: usize,
    },
    /// Reading a payload of `len` bytes, of which `payload` holds those seen.
    Payload { len: usize, payload: Vec<u8> },
    /// A bad frame was seen: every further read fails.
    Failed,
}

/// An [`AsyncRead`] in front of ractor_cluster that passes bytes through
/// frame by frame and refuses bad frames (see the module docs). It never
/// reads across a frame boundary, so the bytes of a frame are only handed on
/// once the guard has seen them, and the last byte of a payload only once the
/// whole payload checked out.
pub(crate) struct FrameGuard<R> {
    inner: R,
    part: Part,
    frame_bytes_max: u64,
    metrics: Metrics,
    /// Closed on a bad frame, so the peer learns at once.
    conn: Option<quinn::Connection>,
    peer: NodeId,
    chunk: Vec<u8>,
}

impl<R> FrameGuard<R> {
    pub(crate) fn new(
        inner: R,
        frame_bytes_max: u64,
        metrics: Metrics,
        conn: Option<quinn::Connection>,
        peer: NodeId,
    ) -> Self {
        Self {
            inner,
            part: Part::Header {
                bytes: [0; FRAME_HEADER_BYTES],
                seen: 0,
            },
            frame_bytes_max,
            metrics,
            conn,
            peer,
            chunk: vec![0; READ_CHUNK_BYTES],
        }
    }

    fn refuse(&mut self, reason: BadFrame) -> io::Error {
        tracing::warn!(peer = %self.peer, reason = reason.as_str(), "bad actor frame; dropping the session");
        self.metrics.bad_frame(reason);
        self.part = Part::Failed;
        if let Some(conn) = &self.conn {
            conn.close(1u8.into(), b"bad frame");
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad actor frame: {}", reason.as_str()),
        )
    }

    /// How many bytes may be read next without crossing a frame boundary.
    fn wanted(&self) -> usize {
        match &self.part {
            Part::Header { seen, .. } => FRAME_HEADER_BYTES - seen,
            Part::Payload { len, payload } => len - payload.len(),
            Part::Failed => 0,
        }
    }

    /// Takes `got` bytes just read; errs on a bad frame.
    fn account(&mut self, got: usize) -> Result<(), io::Error> {
        let data = &self.chunk[..got];
        match &mut self.part {
            Part::Header { bytes, seen } => {
                bytes[*seen..*seen + got].copy_from_slice(data);
                *seen += got;
                if *seen == FRAME_HEADER_BYTES {
                    let len = match frame_payload_len(*bytes, self.frame_bytes_max) {
                        Ok(len) => len,
                        Err(reason) => return Err(self.refuse(reason)),
                    };
                    self.part = Part::Payload {
                        len,
                        payload: Vec::with_capacity(len.min(READ_CHUNK_BYTES)),
                    };
                }
            }
            Part::Payload { len, payload } => {
                payload.extend_from_slice(data);
                if payload.len() == *len {
                    if let Err(reason) = check_frame_payload(payload) {
                        return Err(self.refuse(reason));
                    }
                    self.part = Part::Header {
                        bytes: [0; FRAME_HEADER_BYTES],
                        seen: 0,
                    };
                }
            }
            Part::Failed => {}
        }
        Ok(())
    }
}

/// ractor_cluster drops the read half when its session ends for any reason
/// (authentication refused, a frame its decoder refused, a panic in the
/// session): the QUIC connection goes with it, so the session table forgets
/// the peer and the next reconcile round dials again instead of keeping a
/// connection that carries nothing.
impl<R> Drop for FrameGuard<R> {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            conn.close(0u8.into(), b"session ended");
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for FrameGuard<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if matches!(this.part, Part::Failed) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "session dropped after a bad frame",
            )));
        }
        let want = this.wanted().min(buf.remaining()).min(this.chunk.len());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = ReadBuf::new(&mut this.chunk[..want]);
        match Pin::new(&mut this.inner).poll_read(cx, &mut scratch) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => {
                let got = scratch.filled().len();
                if got == 0 {
                    return Poll::Ready(Ok(()));
                }
                this.account(got)?;
                buf.put_slice(&this.chunk[..got]);
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// The payload length a frame's header announces, or why the frame is
/// refused before anything is allocated for it: a zero length
/// ([`BadFrame::Empty`]) or one above `frame_bytes_max`
/// ([`BadFrame::Oversize`]).
///
/// # Errors
/// The [`BadFrame`] reason the frame is refused for.
pub fn frame_payload_len(
    header: [u8; FRAME_HEADER_BYTES],
    frame_bytes_max: u64,
) -> Result<usize, BadFrame> {
    let len = u64::from_be_bytes(header);
    if len == 0 {
        return Err(BadFrame::Empty);
    }
    if len > frame_bytes_max {
        return Err(BadFrame::Oversize);
    }
    usize::try_from(len).map_err(|_| BadFrame::Oversize)
}

/// Whether a whole payload may go on to ractor_cluster's decoder: it must be
/// [`well_formed_protobuf`].
///
/// # Errors
/// [`BadFrame::Malformed`] when it is not.
pub fn check_frame_payload(payload: &[u8]) -> Result<(), BadFrame> {
    if well_formed_protobuf(payload) {
        Ok(())
    } else {
        Err(BadFrame::Malformed)
    }
}

/// Whether `bytes` parse as a sequence of protobuf fields: each key a valid
/// varint with a field number of at least 1 and a known wire type (varint,
/// 64-bit, length-delimited, 32-bit), each value complete. It does not know
/// ractor_cluster's schema (private to it); prost still checks that, and
/// refuses with an error rather than a panic.
pub fn well_formed_protobuf(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((key, after)) = varint(rest) else {
            return false;
        };
        if key >> 3 == 0 || key >> 3 > u64::from(u32::MAX >> 3) {
            return false;
        }
        rest = after;
        let skip = match key & 7 {
            0 => match varint(rest) {
                Some((_, after)) => {
                    rest = after;
                    0
                }
                None => return false,
            },
            1 => 8,
            2 => match varint(rest) {
                Some((len, after)) => {
                    rest = after;
                    match usize::try_from(len) {
                        Ok(len) => len,
                        Err(_) => return false,
                    }
                }
                None => return false,
            },
            5 => 4,
            _ => return false,
        };
        if skip > rest.len() {
            return false;
        }
        rest = &rest[skip..];
    }
    true
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        // The tenth byte carries only the top bit of a u64: more overflows,
        // and prost (behind the guard) refuses it, so the guard does too.
        if i == 9 && *byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn guard(bytes: Vec<u8>, max: u64) -> (FrameGuard<std::io::Cursor<Vec<u8>>>, Metrics) {
        let metrics = Metrics::register(&prometheus::Registry::new()).expect("metrics");
        let peer = NodeId::new("peer").expect("id");
        (
            FrameGuard::new(
                std::io::Cursor::new(bytes),
                max,
                metrics.clone(),
                None,
                peer,
            ),
            metrics,
        )
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u64).to_be_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    async fn check(input: Vec<u8>, max: u64, passed: usize, refused: Option<BadFrame>) {
        let (mut guard, metrics) = guard(input, max);
        let mut out = Vec::new();
        let result = guard.read_to_end(&mut out).await;
        assert_eq!(out.len(), passed, "bytes handed on");
        match refused {
            None => assert!(result.is_ok(), "{result:?}"),
            Some(reason) => {
                assert_eq!(
                    result.expect_err("refused").kind(),
                    io::ErrorKind::InvalidData
                );
                assert_eq!(metrics.bad_frame_count(reason), 1);
            }
        }
    }

    #[tokio::test]
    async fn good_frames_pass_and_bad_ones_stop_before_their_end() {
        // Field 1, length-delimited, 3 bytes: a well-formed message.
        let good = [0x0a, 0x03, b'a', b'b', b'c'];
        let two = [frame(&good), frame(&good)].concat();
        check(two.clone(), 1024, two.len(), None).await;

        // A length above the cap: refused after the header, nothing more read.
        let mut huge = u64::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 64]);
        check(huge, 1024, 0, Some(BadFrame::Oversize)).await;
        check(frame(&[0; 2000]), 1024, 0, Some(BadFrame::Oversize)).await;

        check(frame(&[]), 1024, 0, Some(BadFrame::Empty)).await;

        // Garbage payload: the read that completes it is never handed on, so
        // the decoder never holds a complete bad frame.
        let bad = [0xff, 0xff, 0xff, 0xff];
        let input = [frame(&good), frame(&bad)].concat();
        let passed = input.len() - bad.len();
        check(input, 1024, passed, Some(BadFrame::Malformed)).await;
    }

    proptest::proptest! {
        /// Whatever a peer sends, the guard never panics and hands on only a
        /// prefix of it.
        #[test]
        fn random_bytes_pass_only_a_prefix(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            max in 16u64..2048,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let out = runtime.block_on(async {
                let (mut guard, _metrics) = guard(input.clone(), max);
                let mut out = Vec::new();
                let _outcome = guard.read_to_end(&mut out).await;
                out
            });
            proptest::prop_assert!(input.starts_with(&out));
            let _shape = well_formed_protobuf(&input);
        }

        /// The same with well-framed random payloads, which reach the
        /// protobuf check: only whole well-formed frames pass.
        #[test]
        fn random_frames_pass_only_whole_good_ones(
            payloads in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
                0..8,
            ),
        ) {
            let input: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let out = runtime.block_on(async {
                let (mut guard, _metrics) = guard(input.clone(), 1024);
                let mut out = Vec::new();
                let _outcome = guard.read_to_end(&mut out).await;
                out
            });
            let good: usize = payloads
                .iter()
                .take_while(|p| well_formed_protobuf(p))
                .map(|p| FRAME_HEADER_BYTES + p.len())
                .sum();
            proptest::prop_assert!(input.starts_with(&out));
            proptest::prop_assert!(out.len() >= good);
            proptest::prop_assert!(out.len() < good + FRAME_HEADER_BYTES + 64);
        }
    }

    #[test]
    fn protobuf_shape_check() {
        assert!(well_formed_protobuf(&[]));
        assert!(well_formed_protobuf(&[0x08, 0x96, 0x01])); // field 1 varint 150
        assert!(well_formed_protobuf(&[0x0d, 1, 2, 3, 4])); // field 1 fixed32
        assert!(!well_formed_protobuf(&[0x0d, 1, 2])); // truncated fixed32
        assert!(!well_formed_protobuf(&[0x00])); // field number 0
        assert!(!well_formed_protobuf(&[0x0b])); // group start (wire type 3)
        assert!(!well_formed_protobuf(&[0x0a, 0x05, 1])); // length past the end
        assert!(!well_formed_protobuf(&[0x08, 0xff])); // unterminated varint
        let mut max = vec![0x08];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert!(well_formed_protobuf(&max)); // u64::MAX
        *max.last_mut().expect("last") = 0x3f;
        assert!(!well_formed_protobuf(&max)); // past u64::MAX (found by fuzzing)
    }
}
