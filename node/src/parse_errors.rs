//! JSON bodies for the requests hyper refuses before our code sees them.
//!
//! hyper answers a request head it cannot take (a request target over its
//! 64 KiB limit: 414; a head larger than its read buffer: 431) by itself,
//! with an empty body, and closes the connection; no middleware runs. Every
//! other error of ours is `{"error": {"code", "message"}}`, so each accepted
//! connection is wrapped in [`JsonParseErrors`], which recognises exactly
//! that automatic answer as it is written (a 414 or 431 status line with
//! `content-length: 0`, which no handler of ours produces) and writes the
//! same status with a JSON body and a stable code instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use control_plane::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The largest head hyper's automatic answer can have; anything longer
/// is a response of ours and is passed through untouched.
const AUTOMATIC_HEAD_BYTES_MAX: usize = 256;

/// A listener whose connections get JSON bodies on hyper's parse errors.
#[derive(Debug)]
pub struct JsonParseErrorsListener(pub TcpListener);

impl axum::serve::Listener for JsonParseErrorsListener {
    type Io = JsonParseErrors<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (JsonParseErrors::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// One connection: reads pass through; hyper's automatic 414 and 431
/// answers are replaced on their way out.
#[derive(Debug)]
pub struct JsonParseErrors<Io> {
    inner: Io,
    /// A replacement being written: its bytes, how many are out, and the
    /// length of hyper's original to report once it is all out.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<Io> JsonParseErrors<Io> {
    /// Wraps one accepted connection.
    pub fn new(inner: Io) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The JSON answer that replaces hyper's empty one, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() > AUTOMATIC_HEAD_BYTES_MAX || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (status, code, message) = if text.starts_with("HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            ErrorCode::UriTooLong,
            "the request target is longer than this server takes (64 KiB)",
        )
    } else if text.starts_with("HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            ErrorCode::HeadersTooLarge,
            "the request's headers are larger than this server takes",
        )
    } else {
        return None;
    };
    if !text
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let body =
        serde_json::json!({"error": {"code": code.as_str(), "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<Io: AsyncRead + Unpin> AsyncRead for JsonParseErrors<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> JsonParseErrors<Io> {
    /// Writes the rest of a replacement; the original's length once done.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, original)) = &mut self.pending {
            if *written == bytes.len() {
                let original = *original;
                self.pending = None;
                return Poll::Ready(Ok(original));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            if let Some(bytes) = replacement(buf) {
                self.pending = Some((bytes, 0, buf.len()));
            }
        }
        if self.pending.is_some() {
            return self.drive(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (nonempty.next(), nonempty.next()) {
                if let Some(bytes) = replacement(only) {
                    self.pending = Some((bytes, 0, only.len()));
                }
            }
        }
        if self.pending.is_some() {
            return self.drive(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            if let Poll::Ready(Err(err)) = self.drive(cx) {
                return Poll::Ready(Err(err));
            }
            if self.pending.is_some() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_hypers_empty_414_and_431_heads_are_replaced() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 06:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(head).expect("replaced")).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request's headers are larger than this server takes"}}"#), "{out}");
        let uri = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(replacement(uri).expect("replaced"))
            .expect("utf8")
            .contains("uri_too_long"));
        // A response of ours, or one with a body, passes through.
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 431 X\r\ncontent-length: 12\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 414 X\r\ncontent-length: 0\r\n").is_none());
    }
}
