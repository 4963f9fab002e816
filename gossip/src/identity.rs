//! The identity a node gossips about itself: who it is (node id, region),
//! where to reach it (QUIC, HTTP, actor addresses) and which life it is in
//! (`generation`). It is a separate module because it is the one type that is
//! both on the wire in every packet (so its encoded size is budgeted here) and
//! the key foca uses to tell members apart: two identities with the same node
//! id are the same member, and the higher generation wins.

use std::{fmt, net::SocketAddr};

use serde::{Deserialize, Serialize};

use crate::names::{NodeId, Region, NAME_BYTES_MAX};

/// Longest HTTP URL a node may advertise, in bytes.
pub const HTTP_URL_BYTES_MAX: usize = 64;

/// Upper bound of one encoded identity with postcard, in bytes: two names and
/// the URL with their length prefixes, two socket addresses (an IPv6 one is
/// 1 tag + 16 + 2 bytes of port, worst case 20 with varints) and a `u64`
/// varint (10 bytes).
pub const IDENTITY_ENCODED_BYTES_MAX: usize =
    (1 + NAME_BYTES_MAX) * 2 + (1 + HTTP_URL_BYTES_MAX) + 2 * 20 + 10;

/// Why an identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The HTTP URL is longer than [`HTTP_URL_BYTES_MAX`].
    #[error("http url must be at most {HTTP_URL_BYTES_MAX} bytes, got {0}")]
    UrlTooLong(usize),
    /// The HTTP URL does not start with `http://` or `https://`.
    #[error("http url must start with http:// or https://")]
    UrlScheme,
}

fn check_url(url: &str) -> Result<(), IdentityError> {
    if url.len() > HTTP_URL_BYTES_MAX {
        return Err(IdentityError::UrlTooLong(url.len()));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(IdentityError::UrlScheme);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
struct HttpUrl(String);

impl TryFrom<String> for HttpUrl {
    type Error = IdentityError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_url(&value)?;
        Ok(Self(value))
    }
}

impl From<HttpUrl> for String {
    fn from(value: HttpUrl) -> Self {
        value.0
    }
}

/// A node as the cluster knows it. Implements [`foca::Identity`]: its
/// address (what makes two identities "the same member") is the node id, and
/// a restart or a [`foca::Identity::renew`] brings a higher `generation`,
/// which wins over the old identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    node_id: NodeId,
    region: Region,
    quic_addr: SocketAddr,
    http_url: HttpUrl,
    actor_addr: SocketAddr,
    generation: u64,
}

impl NodeIdentity {
    /// Builds an identity, checking the URL.
    ///
    /// # Errors
    /// [`IdentityError`] when the HTTP URL is too long or not http(s).
    pub fn new(
        node_id: NodeId,
        region: Region,
        quic_addr: SocketAddr,
        http_url: &str,
        actor_addr: SocketAddr,
        generation: u64,
    ) -> Result<Self, IdentityError> {
        check_url(http_url)?;
        Ok(Self {
            node_id,
            region,
            quic_addr,
            http_url: HttpUrl(http_url.to_owned()),
            actor_addr,
            generation,
        })
    }

    /// A stand-in for a seed whose node id we learnt from its certificate but
    /// whose identity we do not know yet: foca accepts an announce addressed to
    /// any identity with the right node id, so only that and the QUIC address
    /// (where we send it) matter.
    pub(crate) fn placeholder(node_id: NodeId, region: Region, quic_addr: SocketAddr) -> Self {
        Self {
            node_id,
            region,
            quic_addr,
            http_url: HttpUrl("http://0.0.0.0".to_owned()),
            actor_addr: quic_addr,
            generation: 0,
        }
    }

    /// The node id, stable across restarts.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node's region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Where the node's gossip QUIC endpoint listens.
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }

    /// The node's public HTTP URL.
    pub fn http_url(&self) -> &str {
        &self.http_url.0
    }

    /// Where the node's actor system listens.
    pub fn actor_addr(&self) -> SocketAddr {
        self.actor_addr
    }

    /// Which life of the node this is; only grows.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The same identity with another QUIC address.
    pub fn with_quic_addr(mut self, quic_addr: SocketAddr) -> Self {
        self.quic_addr = quic_addr;
        self
    }

    fn conflict_key(&self) -> (u64, SocketAddr, SocketAddr, &str, &str) {
        (
            self.generation,
            self.quic_addr,
            self.actor_addr,
            self.http_url.0.as_str(),
            self.region.as_str(),
        )
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}#{}",
            self.node_id.as_str(),
            self.quic_addr,
            self.generation
        )
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = NodeId;

    /// A node declared down rejoins at once as its next generation. The
    /// node's store bumps the generation on every restart as well, so a
    /// restarted node also wins over its previous life.
    fn renew(&self) -> Option<Self> {
        let mut next = self.clone();
        next.generation = self.generation.checked_add(1)?;
        Some(next)
    }

    fn addr(&self) -> NodeId {
        self.node_id.clone()
    }

    /// The higher generation wins; equal generations (which a correct node
    /// never produces) are settled by the other fields so every node agrees.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.conflict_key() > adversary.conflict_key()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use foca::{Codec, Header, Identity, Message, PostcardCodec};

    use super::*;

    fn largest() -> NodeIdentity {
        let name = "a".repeat(NAME_BYTES_MAX);
        let v6 = SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
            ),
            u16::MAX,
            0,
            0,
        ));
        let url = format!("https://{}", "u".repeat(HTTP_URL_BYTES_MAX - 8));
        NodeIdentity::new(
            NodeId::new(&name).expect("id"),
            Region::new(&name).expect("region"),
            v6,
            &url,
            v6,
            u64::MAX,
        )
        .expect("identity")
    }

    fn typical() -> NodeIdentity {
        NodeIdentity::new(
            NodeId::new("eu-west-1a2b3c4d").expect("id"),
            Region::new("eu-west").expect("region"),
            "10.0.0.12:7946".parse().expect("addr"),
            "https://eu-west-1.lyceum.example",
            "10.0.0.12:7947".parse().expect("addr"),
            42,
        )
        .expect("identity")
    }

    fn encoded_len(identity: &NodeIdentity) -> usize {
        postcard::to_allocvec(identity).expect("encode").len()
    }

    #[test]
    fn encoded_size_is_bounded() {
        let big = encoded_len(&largest());
        assert!(
            big <= IDENTITY_ENCODED_BYTES_MAX,
            "largest identity is {big} bytes"
        );
        let small = encoded_len(&typical());
        assert!(small <= 80, "typical identity is {small} bytes");

        // The worst header (three identities: src, dst and a probe target)
        // must leave room in a gossip datagram for updates.
        let header = Header {
            src: largest(),
            src_incarnation: u16::MAX,
            dst: largest(),
            message: Message::PingReq {
                target: largest(),
                probe_number: u8::MAX,
            },
        };
        let mut buf = Vec::new();
        PostcardCodec
            .encode_header(&header, &mut buf)
            .expect("encode");
        assert!(
            buf.len() + IDENTITY_ENCODED_BYTES_MAX < crate::config::PACKET_BYTES_MAX,
            "worst header is {} bytes",
            buf.len()
        );
    }

    #[test]
    fn round_trips_and_refuses_bad_input() {
        let identity = typical();
        let bytes = postcard::to_allocvec(&identity).expect("encode");
        let back: NodeIdentity = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, identity);

        // A URL past the limit is refused when decoding too.
        let mut too_long = typical();
        too_long.http_url = HttpUrl(format!("http://{}", "x".repeat(HTTP_URL_BYTES_MAX)));
        let bytes = postcard::to_allocvec(&too_long).expect("encode");
        assert!(postcard::from_bytes::<NodeIdentity>(&bytes).is_err());

        assert_eq!(
            NodeIdentity::new(
                identity.node_id().clone(),
                identity.region().clone(),
                identity.quic_addr(),
                "ftp://x",
                identity.actor_addr(),
                1
            ),
            Err(IdentityError::UrlScheme)
        );
    }

    #[test]
    fn renew_bumps_generation_and_wins() {
        let old = typical();
        let new = old.renew().expect("renewable");
        assert_eq!(new.generation(), old.generation() + 1);
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(largest().renew(), None, "generation cannot wrap");
    }
}
