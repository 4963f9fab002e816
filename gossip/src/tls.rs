//! Mutual TLS for gossip. Every node holds a certificate signed by one cluster
//! CA whose DNS name says which node it is (`<node_id>.lyceum.node`), and both
//! ends of every QUIC connection must show one: that is what lets a node trust
//! the sender field of a gossip packet (it must match the certificate) and
//! keeps anything without a cluster certificate out. A development CA can be
//! generated into a directory; real deployments load PEM files.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    RootCertStore,
};

use crate::names::NodeId;

/// The DNS suffix under which every node certificate names its node.
pub const NODE_NAME_SUFFIX: &str = "lyceum.node";
/// The name every node certificate also carries, used when dialling a seed
/// whose node id is not known yet.
pub const CLUSTER_SERVER_NAME: &str = NODE_NAME_SUFFIX;
/// The ALPN protocol both ends must agree on, so a stray QUIC client of
/// another protocol fails the handshake instead of talking nonsense.
pub const GOSSIP_ALPN: &[u8] = b"lyceum-gossip/1";
/// How long a development CA is valid, in days.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a node certificate issued by the development CA is valid, in days.
pub const NODE_CERT_VALIDITY_DAYS: i64 = 365;
/// Largest PEM file we read (a CA, a chain or a key), in bytes.
pub const PEM_FILE_BYTES_MAX: u64 = 64 * 1024;
/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// Why certificates or TLS configuration could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A PEM file is larger than [`PEM_FILE_BYTES_MAX`].
    #[error("{path}: larger than {PEM_FILE_BYTES_MAX} bytes")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificates or settings.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA could not be turned into a verifier.
    #[error("certificate verifier: {0}")]
    Verifier(String),
    /// quinn refused the rustls configuration.
    #[error("quic crypto configuration: {0}")]
    Quic(String),
    /// The certificate does not name a node as `<node_id>.lyceum.node`.
    #[error("certificate does not name a node (no valid `<node_id>.{NODE_NAME_SUFFIX}` DNS name)")]
    NoNodeName,
    /// The certificate could not be parsed.
    #[error("certificate could not be parsed: {0}")]
    Parse(String),
    /// The connection has no peer certificate (it should be impossible with
    /// mutual TLS, so it is reported rather than trusted).
    #[error("the connection has no peer certificate")]
    NoPeerCertificate,
}

/// The DNS name that a node's certificate carries.
pub fn node_dns_name(node_id: &NodeId) -> String {
    format!("{}.{NODE_NAME_SUFFIX}", node_id.as_str())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "lyceum dev cluster ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now_utc() - time::Duration::days(1);
    params.not_after = now_utc() + time::Duration::days(CA_VALIDITY_DAYS);
    params
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let size = fs::metadata(path).map_err(io)?.len();
    if size > PEM_FILE_BYTES_MAX {
        return Err(TlsError::FileTooLarge {
            path: path.to_owned(),
        });
    }
    fs::read(path).map_err(io)
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn pem_error(what: &str, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// A development cluster CA: it issues node certificates for `lyceum dev`
/// and tests. Production clusters bring their own CA and load node material
/// with [`TlsMaterial::from_pem_files`].
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Loads the CA from `dir/ca.pem` and `dir/ca.key`, or, when neither
    /// exists, generates a new one and writes both (the key with mode 0600).
    ///
    /// # Errors
    /// [`TlsError`] when the files cannot be read or written, only one of the
    /// two exists, or they do not hold a CA certificate and its key.
    pub fn generate(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path),
            (false, false) => {
                fs::create_dir_all(dir).map_err(|source| TlsError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
                let ca = Self::generate_ephemeral()?;
                write_file(&key_path, &ca.issuer.key().serialize_pem(), true)?;
                write_file(&cert_path, &ca.cert_pem, false)?;
                Ok(ca)
            }
            (true, false) => Err(pem_error(
                &key_path.display().to_string(),
                "missing while the CA certificate exists",
            )),
            (false, true) => Err(pem_error(
                &cert_path.display().to_string(),
                "missing while the CA key exists",
            )),
        }
    }

    /// Generates a CA that lives only in memory (tests, throwaway clusters).
    ///
    /// # Errors
    /// [`TlsError::Generate`] when key or certificate generation fails.
    pub fn generate_ephemeral() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let params = ca_params();
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA certificate and its private key from PEM files.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read or parsed.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let cert_pem = String::from_utf8(read_pem_file(cert_path)?)
            .map_err(|err| pem_error(&cert_path.display().to_string(), err))?;
        let key_pem = String::from_utf8(read_pem_file(key_path)?)
            .map_err(|err| pem_error(&key_path.display().to_string(), err))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|err| pem_error(&cert_path.display().to_string(), err))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self {
            issuer,
            cert_der,
            cert_pem,
        })
    }

    /// The CA certificate in DER, the trust anchor every node needs.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `node_id`, valid for server and client use,
    /// with the DNS names `<node_id>.lyceum.node` and `lyceum.node`.
    ///
    /// # Errors
    /// [`TlsError::Generate`] when key or certificate generation fails.
    pub fn issue_node_cert(&self, node_id: &NodeId) -> Result<NodeCert, TlsError> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec![node_dns_name(node_id), CLUSTER_SERVER_NAME.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, node_id.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = now_utc() - time::Duration::days(1);
        params.not_after = now_utc() + time::Duration::days(NODE_CERT_VALIDITY_DAYS);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            node_id: node_id.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a node certificate and bundles it with this CA as trust anchor.
    ///
    /// # Errors
    /// As [`ClusterCa::issue_node_cert`] and [`TlsMaterial::from_pem`].
    pub fn material_for(&self, node_id: &NodeId) -> Result<TlsMaterial, TlsError> {
        let cert = self.issue_node_cert(node_id)?;
        TlsMaterial::from_pem(&self.cert_pem, &cert.cert_pem, &cert.key_pem)
    }
}

/// A node certificate and its private key, in PEM.
#[derive(Clone)]
pub struct NodeCert {
    node_id: NodeId,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeCert {
    /// The node this certificate names.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key in PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `node.pem` and `node.key` (mode 0600) into `dir`, refusing to
    /// overwrite existing files.
    ///
    /// # Errors
    /// [`TlsError::Io`] when a file exists or cannot be written.
    pub fn write_pem_files(&self, dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
        let cert_path = dir.join("node.pem");
        let key_path = dir.join("node.key");
        write_file(&key_path, &self.key_pem, true)?;
        write_file(&cert_path, &self.cert_pem, false)?;
        Ok((cert_path, key_path))
    }
}

/// Everything a node needs for mutual TLS: the cluster CA it trusts, its own
/// certificate chain and private key, and the node id its certificate names.
pub struct TlsMaterial {
    ca_cert: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    node_id: NodeId,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self {
            ca_cert: self.ca_cert.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            node_id: self.node_id.clone(),
        }
    }
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Builds the material from PEM text: the CA certificate, the node's
    /// certificate chain (leaf first) and its private key.
    ///
    /// # Errors
    /// [`TlsError`] when an input holds no certificate or key, or the leaf
    /// does not name a node.
    pub fn from_pem(ca_pem: &str, chain_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let ca_cert = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|err| pem_error("ca certificate", err))?;
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| pem_error("node certificate", err))?;
        let leaf = chain
            .first()
            .ok_or_else(|| pem_error("node certificate", "no certificate found"))?;
        let node_id = node_id_from_cert(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|err| pem_error("node key", err))?;
        Ok(Self {
            ca_cert,
            chain,
            key,
            node_id,
        })
    }

    /// Loads the material from PEM files, as a real deployment does.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read or parsed.
    pub fn from_pem_files(ca: &Path, chain: &Path, key: &Path) -> Result<Self, TlsError> {
        let text = |path: &Path| -> Result<String, TlsError> {
            String::from_utf8(read_pem_file(path)?)
                .map_err(|err| pem_error(&path.display().to_string(), err))
        };
        Self::from_pem(&text(ca)?, &text(chain)?, &text(key)?)
    }

    /// The node id the certificate names.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.clone())?;
        Ok(Arc::new(roots))
    }

    /// The rustls server configuration: TLS 1.3 only, and a client
    /// certificate signed by the cluster CA is required.
    ///
    /// # Errors
    /// [`TlsError`] when rustls refuses the certificates.
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier = client_verifier(self.roots()?)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![GOSSIP_ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client configuration: TLS 1.3 only, the server must show a
    /// certificate signed by the cluster CA, and we show ours.
    ///
    /// # Errors
    /// [`TlsError`] when rustls refuses the certificates.
    pub fn rustls_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let verifier = server_verifier(self.roots()?)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![GOSSIP_ALPN.to_vec()];
        Ok(config)
    }

    /// The quinn server configuration (mutual TLS, see
    /// [`TlsMaterial::rustls_server_config`]) with the given transport.
    ///
    /// # Errors
    /// [`TlsError`] when rustls or quinn refuse the configuration.
    pub fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, TlsError> {
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(self.rustls_server_config()?)
                .map_err(|err| TlsError::Quic(err.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }

    /// The quinn client configuration (mutual TLS, see
    /// [`TlsMaterial::rustls_client_config`]) with the given transport.
    ///
    /// # Errors
    /// [`TlsError`] when rustls or quinn refuse the configuration.
    pub fn client_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ClientConfig, TlsError> {
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(self.rustls_client_config()?)
                .map_err(|err| TlsError::Quic(err.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }
}

fn client_verifier(
    roots: Arc<RootCertStore>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|err| TlsError::Verifier(err.to_string()))
}

fn server_verifier(
    roots: Arc<RootCertStore>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|err| TlsError::Verifier(err.to_string()))
}

/// Reads the node id out of a certificate: the DNS name of the form
/// `<node_id>.lyceum.node` whose first label is a valid node id.
///
/// # Errors
/// [`TlsError::Parse`] for a certificate that cannot be parsed,
/// [`TlsError::NoNodeName`] when no DNS name names a node.
pub fn node_id_from_cert(cert: &CertificateDer<'_>) -> Result<NodeId, TlsError> {
    let (_rest, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|err| TlsError::Parse(err.to_string()))?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|err| TlsError::Parse(err.to_string()))?
        .ok_or(TlsError::NoNodeName)?;
    let suffix = format!(".{NODE_NAME_SUFFIX}");
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns
                .strip_suffix(&suffix)
                .and_then(|label| NodeId::new(label).ok()),
            _ => None,
        })
        .ok_or(TlsError::NoNodeName)
}

/// The node id named by the certificate the peer showed on an established
/// connection. With mutual TLS both sides always show one; the chain was
/// already verified against the cluster CA during the handshake.
///
/// # Errors
/// [`TlsError::NoPeerCertificate`] when there is none, or as
/// [`node_id_from_cert`].
pub fn peer_node_id(connection: &quinn::Connection) -> Result<NodeId, TlsError> {
    let identity = connection
        .peer_identity()
        .ok_or(TlsError::NoPeerCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::NoPeerCertificate)?;
    let leaf = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    node_id_from_cert(leaf)
}

#[cfg(test)]
mod tests {
    use rustls::{
        client::danger::ServerCertVerifier,
        pki_types::{ServerName, UnixTime},
    };

    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).expect("valid node id")
    }

    fn leaf(material: &TlsMaterial) -> CertificateDer<'static> {
        material.chain.first().expect("leaf").clone()
    }

    #[test]
    fn node_id_round_trips_through_certificate() {
        let ca = ClusterCa::generate_ephemeral().expect("ca");
        let material = ca.material_for(&node("eu-west-1")).expect("material");
        assert_eq!(material.node_id(), &node("eu-west-1"));
        assert_eq!(
            node_id_from_cert(&leaf(&material)).expect("named"),
            node("eu-west-1")
        );
        assert!(matches!(
            node_id_from_cert(ca.cert_der()),
            Err(TlsError::NoNodeName)
        ));
    }

    #[test]
    fn verifiers_accept_own_ca_and_refuse_another() {
        let ca = ClusterCa::generate_ephemeral().expect("ca");
        let other = ClusterCa::generate_ephemeral().expect("other ca");
        let ours = ca.material_for(&node("a")).expect("ours");
        let theirs = other.material_for(&node("b")).expect("theirs");
        let now = UnixTime::now();

        let clients = client_verifier(ours.roots().expect("roots")).expect("verifier");
        assert!(clients.verify_client_cert(&leaf(&ours), &[], now).is_ok());
        assert!(clients
            .verify_client_cert(&leaf(&theirs), &[], now)
            .is_err());
        assert!(clients.client_auth_mandatory());

        let servers = server_verifier(ours.roots().expect("roots")).expect("verifier");
        let by_id = ServerName::try_from(node_dns_name(&node("a"))).expect("name");
        let generic = ServerName::try_from(CLUSTER_SERVER_NAME).expect("name");
        let wrong = ServerName::try_from(node_dns_name(&node("z"))).expect("name");
        assert!(servers
            .verify_server_cert(&leaf(&ours), &[], &by_id, &[], now)
            .is_ok());
        assert!(servers
            .verify_server_cert(&leaf(&ours), &[], &generic, &[], now)
            .is_ok());
        assert!(servers
            .verify_server_cert(&leaf(&ours), &[], &wrong, &[], now)
            .is_err());
        let their_name = ServerName::try_from(node_dns_name(&node("b"))).expect("name");
        assert!(servers
            .verify_server_cert(&leaf(&theirs), &[], &their_name, &[], now)
            .is_err());
    }

    #[test]
    fn ca_directory_is_created_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ClusterCa::generate(dir.path()).expect("generate");
        let second = ClusterCa::generate(dir.path()).expect("load");
        assert_eq!(first.cert_der(), second.cert_der());
        // A certificate issued by the reloaded CA verifies against the original.
        let material = second.material_for(&node("eu-west-2")).expect("issue");
        let roots = TlsMaterial::from_pem(first.cert_pem(), "", "");
        assert!(roots.is_err(), "an empty chain is refused");
        let clients = client_verifier({
            let mut store = RootCertStore::empty();
            store.add(first.cert_der().clone()).expect("add");
            Arc::new(store)
        })
        .expect("verifier");
        assert!(clients
            .verify_client_cert(&leaf(&material), &[], UnixTime::now())
            .is_ok());
    }

    #[test]
    fn material_loads_from_pem_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::generate(dir.path()).expect("ca");
        let cert = ca.issue_node_cert(&node("us-east-7")).expect("cert");
        let (cert_path, key_path) = cert.write_pem_files(dir.path()).expect("write");
        let material =
            TlsMaterial::from_pem_files(&dir.path().join(CA_CERT_FILE), &cert_path, &key_path)
                .expect("load");
        assert_eq!(material.node_id(), &node("us-east-7"));
        material.rustls_server_config().expect("server config");
        material.rustls_client_config().expect("client config");
    }
}
