//! A UDP socket that can be cut, for a client that vanishes without a
//! goodbye: once cut, it drops everything it would send or receive, as a
//! closed laptop lid or a lost network would.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use webrtc::util::{Conn, Result};

/// A UDP socket with a switch that silences it.
pub struct CuttableSocket {
    socket: UdpSocket,
    cut: Arc<AtomicBool>,
}

impl CuttableSocket {
    /// Binds on every IPv4 interface; `cut` silences it when set.
    pub async fn bind(cut: Arc<AtomicBool>) -> std::io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind("0.0.0.0:0").await?,
            cut,
        })
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Conn for CuttableSocket {
    async fn connect(&self, addr: SocketAddr) -> Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let n = self.socket.recv(buf).await?;
            if !self.is_cut() {
                return Ok(n);
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        loop {
            let got = self.socket.recv_from(buf).await?;
            if !self.is_cut() {
                return Ok(got);
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> Result<usize> {
        if self.is_cut() {
            return Ok(buf.len());
        }
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> Result<usize> {
        if self.is_cut() {
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
