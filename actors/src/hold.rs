//! Fault injection on actor sessions: [`HoldBack`] sits under the
//! [`crate::transport::FrameGuard`] of each session's receive stream and holds
//! what arrives from the peer for as long as the node's gossip fault rules
//! say (a `delay`, or a `degrade` of the traffic received from that peer),
//! so a degraded link adds its latency to class relay as well as to gossip.
//!
//! A stream is reliable, so it is only ever delayed, never made to lose
//! anything: a degrade's loss shows up as extra delay, as a retransmission
//! would ([`gossip::SharedFaults::stream_hold`]). Each chunk read from QUIC
//! gets its release time when it arrives, never earlier than the chunk
//! before it, so order is kept and holds overlap as on a real slow link
//! (a stream of frames 200 ms late is not slowed to a frame per 200 ms).
//! At most [`HELD_BYTES_MAX`] bytes are held; beyond that the stream is not
//! read, and QUIC's flow control pushes back on the peer. With no rule for
//! the peer, bytes pass straight through.

use std::{
    collections::VecDeque,
    future::Future as _,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use gossip::{FaultRng, NodeId, PacketWay, SharedFaults};
use tokio::{
    io::{AsyncRead, ReadBuf},
    time::{Instant, Sleep},
};

/// Most bytes one session holds back at once.
pub const HELD_BYTES_MAX: usize = 1024 * 1024;
/// How many bytes are read from the stream at once.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// An [`AsyncRead`] that holds what it reads back as the fault rules say
/// (see the module docs).
pub(crate) struct HoldBack<R> {
    inner: R,
    /// The rules, or `None` when fault injection does not reach actors.
    faults: Option<SharedFaults>,
    peer: NodeId,
    rng: FaultRng,
    /// Chunks read and their release times, in order.
    held: VecDeque<(Instant, Vec<u8>)>,
    held_bytes: usize,
    /// The release time of the newest chunk: none is released before it.
    last_release: Option<Instant>,
    /// How the stream ended, handed on once everything held is released.
    end: Option<io::Result<()>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<R> HoldBack<R> {
    pub(crate) fn new(inner: R, faults: Option<SharedFaults>, peer: NodeId, rng: FaultRng) -> Self {
        Self {
            inner,
            faults,
            peer,
            rng,
            held: VecDeque::new(),
            held_bytes: 0,
            last_release: None,
            end: None,
            sleep: None,
        }
    }

    /// When a chunk arriving now may go on.
    fn release_time(&mut self, now: Instant) -> Instant {
        let hold = self.faults.as_ref().map_or(std::time::Duration::ZERO, |f| {
            f.stream_hold(&self.peer, PacketWay::Inbound, &mut self.rng)
        });
        let at = self
            .last_release
            .map_or(now + hold, |last| last.max(now + hold));
        self.last_release = Some(at);
        at
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HoldBack<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Read whatever has arrived, while there is room to hold it.
        while this.end.is_none() && this.held_bytes < HELD_BYTES_MAX {
            if this.held.is_empty() {
                // Nothing held: read straight into the caller's buffer, and
                // take the bytes back only if they must be held.
                let before = buf.filled().len();
                match Pin::new(&mut this.inner).poll_read(cx, buf) {
                    Poll::Pending => break,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Ready(Ok(())) => {
                        let got = buf.filled().len() - before;
                        if got == 0 {
                            this.end = Some(Ok(()));
                            return Poll::Ready(Ok(()));
                        }
                        let now = Instant::now();
                        let at = this.release_time(now);
                        if at <= now {
                            return Poll::Ready(Ok(()));
                        }
                        let chunk = buf.filled()[before..].to_vec();
                        buf.set_filled(before);
                        this.held_bytes += got;
                        this.held.push_back((at, chunk));
                    }
                }
                continue;
            }
            let room = (HELD_BYTES_MAX - this.held_bytes).min(READ_CHUNK_BYTES);
            let mut chunk = vec![0; room];
            let mut scratch = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut scratch) {
                Poll::Pending => break,
                Poll::Ready(Err(err)) => this.end = Some(Err(err)),
                Poll::Ready(Ok(())) => {
                    let got = scratch.filled().len();
                    if got == 0 {
                        this.end = Some(Ok(()));
                        break;
                    }
                    chunk.truncate(got);
                    let at = this.release_time(Instant::now());
                    this.held_bytes += got;
                    this.held.push_back((at, chunk));
                }
            }
        }
        // Hand on the oldest chunk once it is due.
        if let Some((at, _)) = this.held.front() {
            let at = *at;
            if at > Instant::now() {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                sleep.as_mut().reset(at);
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let Some((_, chunk)) = this.held.front_mut() else {
                return Poll::Pending;
            };
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            this.held_bytes -= n;
            if chunk.is_empty() {
                this.held.pop_front();
            }
            return Poll::Ready(Ok(()));
        }
        match this.end.take() {
            // The end is handed on once, then stays: reads after EOF are EOF.
            Some(Ok(())) => {
                this.end = Some(Ok(()));
                Poll::Ready(Ok(()))
            }
            Some(Err(err)) => Poll::Ready(Err(err)),
            // The inner read was pending and will wake us.
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gossip::{Degrade, FaultAction, FaultDirection, FaultFilter, FaultRule, PeerSelector};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn peer() -> NodeId {
        NodeId::new("eu-west-1").expect("id")
    }

    fn faults(action: FaultAction, direction: FaultDirection) -> SharedFaults {
        let faults = SharedFaults::default();
        faults.set(
            FaultFilter::new(vec![FaultRule {
                peer: PeerSelector::NodeId(peer()),
                action,
                direction,
            }])
            .expect("valid"),
        );
        faults
    }

    /// Reads what is there within `within` of paused time.
    async fn read_within<R: AsyncRead + Unpin>(reader: &mut R, within: Duration) -> Vec<u8> {
        let mut out = vec![0; 64];
        match tokio::time::timeout(within, reader.read(&mut out)).await {
            Ok(read) => {
                out.truncate(read.expect("read"));
                out
            }
            Err(_) => Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_wait_their_delay_in_order_and_overlap() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let faults = faults(FaultAction::DelayMs(200), FaultDirection::Inbound);
        let mut held = HoldBack::new(rx, Some(faults), peer(), FaultRng::seeded(1));
        tx.write_all(b"one").await.expect("write");
        assert_eq!(
            read_within(&mut held, Duration::from_millis(150)).await,
            b""
        );
        tx.write_all(b"two").await.expect("write");
        // "one" went out 200 ms after it arrived, not after it was first read.
        assert_eq!(
            read_within(&mut held, Duration::from_millis(51)).await,
            b"one"
        );
        // "two" arrived 150 ms in, so it goes out at 350 ms.
        assert_eq!(read_within(&mut held, Duration::from_millis(50)).await, b"");
        assert_eq!(
            read_within(&mut held, Duration::from_millis(150)).await,
            b"two"
        );
        drop(tx);
        assert_eq!(read_within(&mut held, Duration::from_millis(1)).await, b"");
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_never_reorders_and_loss_only_delays() {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let degrade = Degrade::new(100, 100, 30.0).expect("valid");
        let faults = faults(FaultAction::Degrade(degrade), FaultDirection::Both);
        let seed = 77;
        let mut held = HoldBack::new(rx, Some(faults), peer(), FaultRng::seeded(seed));
        let writer = tokio::spawn(async move {
            for i in 0..200u8 {
                tx.write_all(&[i]).await.expect("write");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        });
        let mut out = Vec::new();
        held.read_to_end(&mut out).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(out, (0..200u8).collect::<Vec<_>>(), "seed {seed}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_rule_or_an_outbound_rule_passes_at_once() {
        for faults in [
            None,
            Some(SharedFaults::default()),
            Some(faults(FaultAction::DelayMs(500), FaultDirection::Outbound)),
            Some(faults(FaultAction::Drop, FaultDirection::Both)),
        ] {
            let (mut tx, rx) = tokio::io::duplex(1024);
            let mut held = HoldBack::new(rx, faults, peer(), FaultRng::seeded(1));
            tx.write_all(b"now").await.expect("write");
            assert_eq!(
                read_within(&mut held, Duration::from_millis(1)).await,
                b"now"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_held_bytes_max_are_held() {
        let (mut tx, rx) = tokio::io::duplex(4 * HELD_BYTES_MAX);
        let faults = faults(FaultAction::DelayMs(1_000), FaultDirection::Both);
        let mut held = HoldBack::new(rx, Some(faults), peer(), FaultRng::seeded(1));
        tx.write_all(&vec![7; 2 * HELD_BYTES_MAX])
            .await
            .expect("write");
        assert_eq!(read_within(&mut held, Duration::from_millis(10)).await, b"");
        assert_eq!(held.held_bytes, HELD_BYTES_MAX);
        let mut out = vec![0; 3 * HELD_BYTES_MAX];
        drop(tx);
        let mut got = 0;
        while let Ok(n) = held.read(&mut out[got..]).await {
            if n == 0 {
                break;
            }
            assert!(held.held_bytes <= HELD_BYTES_MAX);
            got += n;
        }
        assert_eq!(got, 2 * HELD_BYTES_MAX);
    }
}
