//! Mutual TLS for the overlay: quinn server and client configs built from
//! the cluster CA and this node's certificate, the transport settings every
//! overlay connection uses, and the check that a peer is a given node.
//!
//! Both sides present a certificate signed by the cluster CA and verify the
//! other's against that CA only (no system roots). A node certificate names
//! the node as a DNS subject alternative name (`node-1`); the client checks
//! it through the QUIC server name, the server checks it with
//! [`peer_is_node`] after the handshake. TLS 1.3 only, with the *ring*
//! provider chosen explicitly so nothing depends on a process-wide default.
//!
//! This module deliberately does not issue or rotate certificates (the
//! control plane does), and does not decide which pod addresses a node may
//! claim: callers map the verified node name to its podCIDR.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// ALPN protocol of the overlay; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"podnet-overlay/1";

/// Why a node identity could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cluster CA PEM is not valid PEM")]
    CaPem(#[source] rustls_pki_types::pem::Error),
    #[error("cluster CA PEM has no certificate")]
    NoCaCertificate,
    #[error("cluster CA certificate is not usable as a trust anchor")]
    InvalidCa(#[source] rustls::Error),
    #[error("node certificate PEM is not valid PEM")]
    CertPem(#[source] rustls_pki_types::pem::Error),
    #[error("node certificate PEM has no certificate")]
    NoNodeCertificate,
    #[error("node private key PEM has no usable private key (PKCS#8, PKCS#1 or SEC1)")]
    KeyPem(#[source] rustls_pki_types::pem::Error),
    #[error("cannot build the client certificate verifier from the cluster CA")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("node certificate and private key are not usable for TLS (do they match?)")]
    NodeCertificate(#[source] rustls::Error),
    #[error("the crypto provider does not support TLS 1.3")]
    Protocol(#[source] rustls::Error),
    #[error("the TLS config has no QUIC initial cipher suite (TLS13_AES_128_GCM_SHA256)")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// This node's TLS identity: the cluster CA it trusts and the certificate it
/// presents, already turned into rustls configs for both roles.
///
/// Cheap to clone; all configs are shared.
#[derive(Clone)]
pub struct NodeIdentity {
    server: Arc<QuicServerConfig>,
    client: Arc<QuicClientConfig>,
    transport: Arc<TransportConfig>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configs hold the private key: never print them.
        f.debug_struct("NodeIdentity").finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Parses the cluster CA (one or more certificates, all trusted, so a CA
    /// rotation can ship old and new together), this node's certificate
    /// chain (end entity first) and its private key, and builds the TLS
    /// configs. Every error surfaces here, so the configs below cannot fail.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let ca_certs = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::CaPem)?;
        if ca_certs.is_empty() {
            return Err(TlsError::NoCaCertificate);
        }
        let mut roots = RootCertStore::empty();
        for ca in ca_certs {
            roots.add(ca).map_err(TlsError::InvalidCa)?;
        }
        let roots = Arc::new(roots);

        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::CertPem)?;
        if chain.is_empty() {
            return Err(TlsError::NoNodeCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(TlsError::KeyPem)?;

        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(TlsError::Verifier)?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Protocol)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::NodeCertificate)?;
        server.alpn_protocols = vec![ALPN.to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Protocol)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::NodeCertificate)?;
        client.alpn_protocols = vec![ALPN.to_vec()];

        Ok(NodeIdentity {
            server: Arc::new(QuicServerConfig::try_from(Arc::new(server)).map_err(TlsError::Quic)?),
            client: Arc::new(QuicClientConfig::try_from(Arc::new(client)).map_err(TlsError::Quic)?),
            transport: Arc::new(transport_config()),
        })
    }

    /// The quinn server config: requires a client certificate from the
    /// cluster CA and uses [`transport_config`].
    pub fn server_config(&self) -> quinn::ServerConfig {
        let mut config = quinn::ServerConfig::with_crypto(self.server.clone());
        config.transport_config(self.transport.clone());
        config
    }

    /// The quinn client config: verifies the server against the cluster CA
    /// (the server name passed to `connect` is the peer node's name),
    /// presents this node's certificate, and uses [`transport_config`].
    pub fn client_config(&self) -> quinn::ClientConfig {
        let mut config = quinn::ClientConfig::new(self.client.clone());
        config.transport_config(self.transport.clone());
        config
    }
}

/// Flow-control window of one stream, the overlay's socket buffer of a pod
/// TCP connection (Linux autotunes one up to 6 MB, `tcp_rmem`): 2 MB keeps
/// one bulk flow at several Gbit/s on loopback (window / RTT, with RTTs of
/// 100-200 us under load), and bounds what one stuck flow holds.
pub const STREAM_WINDOW: u32 = 2 << 20;
/// Pod TCP connections one overlay connection carries at once.
pub const MAX_STREAMS: u32 = 10_000;
/// Connection-wide receive window: every stream's window at once. A kernel
/// gives each TCP connection its own buffers; podnet multiplexes pod
/// connections on one QUIC connection, so the shared window must never be
/// what blocks a stream: however many flows sit unread (each holding at
/// most [`STREAM_WINDOW`]), every other flow and the health checks on the
/// same node pair still get through. It bounds memory, it reserves none;
/// flows that stay unread are cut off by `splice`'s stall rules.
pub const CONNECTION_WINDOW: u64 = STREAM_WINDOW as u64 * MAX_STREAMS as u64;
/// Bytes sent and not yet acknowledged, across the connection: unread
/// bytes are acknowledged (they sit in the peer's stream buffer), so this
/// bounds only what is in flight.
const SEND_WINDOW: u64 = 32 << 20;
/// QUIC datagram buffers (pod UDP and ICMP), per connection.
const DATAGRAM_BUFFER: usize = 4 << 20;

/// The transport settings of every overlay connection, public so a
/// benchmark can run a bare quinn baseline with identical settings.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    // One stream per pod TCP connection: a busy node pair has many at once.
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    // 20 GB is far below the 2^62 a VarInt holds.
    t.receive_window(VarInt::from_u64(CONNECTION_WINDOW).unwrap_or(VarInt::MAX));
    t.send_window(SEND_WINDOW);
    t.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    t.datagram_send_buffer_size(DATAGRAM_BUFFER);
    // Keep-alives well inside the idle timeout so an idle node pair keeps its
    // connection, and a dead peer is noticed within the idle timeout.
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(30_000))));
    // The underlay is loopback or a LAN: start above the 1200-byte minimum,
    // MTU discovery (on by default) takes it further where possible.
    t.initial_mtu(1400);
    // Request/response flows: let ACKs ride on answers instead of going
    // out as packets of their own for every packet received.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(VarInt::from_u32(4));
    t.ack_frequency_config(Some(ack));
    t
}

/// True when the peer of `conn` presented a certificate valid for
/// `node_name` (a DNS subject alternative name).
///
/// The certificate chain itself was already verified against the cluster CA
/// by the handshake; this only checks which node it names. False when the
/// connection has no peer certificate or the name is not a valid DNS name.
pub fn peer_is_node(conn: &quinn::Connection, node_name: &str) -> bool {
    peer_identity_is_node(conn.peer_identity(), node_name)
}

fn peer_identity_is_node(identity: Option<Box<dyn Any>>, node_name: &str) -> bool {
    let Some(identity) = identity else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    let Some(end_entity) = chain.first() else {
        return false;
    };
    let Ok(name) = ServerName::try_from(node_name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(end_entity)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(&name))
        .is_ok()
}

/// Certificates for tests: a cluster CA and node certificates signed by it.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };

    use super::NodeIdentity;

    /// A test cluster CA.
    pub struct TestCa {
        pub cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        pub fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).unwrap();
            TestCa {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A node certificate (PEM) and its key (PEM), valid for `node`.
        pub fn node_cert(&self, node: &str) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![node.to_string()]).unwrap();
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }

        pub fn identity(&self, node: &str) -> NodeIdentity {
            let (cert, key) = self.node_cert(node);
            NodeIdentity::from_pem(&self.cert_pem, &cert, &key).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::testing::TestCa;
    use super::*;

    fn endpoint(identity: &NodeIdentity) -> quinn::Endpoint {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut ep = quinn::Endpoint::server(identity.server_config(), addr).unwrap();
        ep.set_default_client_config(identity.client_config());
        ep
    }

    #[tokio::test]
    async fn mutual_tls_between_two_nodes_and_peer_check() {
        let ca = TestCa::new("podnet test CA");
        let node1 = endpoint(&ca.identity("node-1"));
        let node2 = endpoint(&ca.identity("node-2"));
        let node2_addr = node2.local_addr().unwrap();

        let server = tokio::spawn(async move {
            let conn = node2.accept().await.unwrap().await.unwrap();
            let checks = (
                peer_is_node(&conn, "node-1"),
                peer_is_node(&conn, "node-3"),
                peer_is_node(&conn, "not a dns name"),
            );
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let got = recv.read_to_end(1024).await.unwrap();
            send.write_all(&got).await.unwrap();
            send.finish().unwrap();
            // Keep the connection until the client has read the echo.
            conn.closed().await;
            checks
        });

        let conn = node1.connect(node2_addr, "node-2").unwrap().await.unwrap();
        assert!(peer_is_node(&conn, "node-2"));
        assert_eq!(
            conn.handshake_data()
                .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|d| d.protocol),
            Some(ALPN.to_vec())
        );
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"hello overlay").await.unwrap();
        send.finish().unwrap();
        let echo = recv.read_to_end(1024).await.unwrap();
        assert_eq!(echo, b"hello overlay");
        conn.close(0u32.into(), b"done");

        let (is_node1, is_node3, bad_name) = server.await.unwrap();
        assert!(is_node1, "server sees node-1");
        assert!(!is_node3, "node-1's certificate does not name node-3");
        assert!(!bad_name);
        node1.wait_idle().await;
    }

    /// Streams whose receiver never reads, more of them full than the
    /// whole connection could once hold, and still a new stream gets an
    /// answer at once on the same connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unread_streams_never_block_a_new_one() {
        const STUCK: usize = 24;
        let ca = TestCa::new("podnet test CA");
        let node1 = endpoint(&ca.identity("node-1"));
        let node2 = endpoint(&ca.identity("node-2"));
        let node2_addr = node2.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let conn = node2.accept().await.unwrap().await.unwrap();
            let mut unread = Vec::new();
            loop {
                let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                    return;
                };
                let mut first = [0u8; 1];
                recv.read_exact(&mut first).await.unwrap();
                if first == [b'e'] {
                    // The echo: answered, as a health check is.
                    let rest = recv.read_to_end(64).await.unwrap();
                    send.write_all(&rest).await.unwrap();
                    send.finish().unwrap();
                } else {
                    // Held, never read again.
                    unread.push((send, recv));
                }
            }
        });
        let conn = node1.connect(node2_addr, "node-2").unwrap().await.unwrap();
        let mut stuck = Vec::new();
        for _ in 0..STUCK {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            // Exactly what the stream's window lets through unread.
            let fill = vec![b's'; STREAM_WINDOW as usize];
            tokio::time::timeout(Duration::from_secs(20), send.write_all(&fill))
                .await
                .expect("each stream's own window is all it waits for")
                .unwrap();
            stuck.push((send, recv));
        }
        assert!(STUCK as u64 * u64::from(STREAM_WINDOW) > 32 << 20);
        let echo = async {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"eping").await.unwrap();
            send.finish().unwrap();
            recv.read_to_end(64).await.unwrap()
        };
        let answer = tokio::time::timeout(Duration::from_secs(2), echo)
            .await
            .expect("a new stream is answered while the others sit unread");
        assert_eq!(answer, b"ping");
        conn.close(0u32.into(), b"done");
        server.abort();
    }

    #[tokio::test]
    async fn server_name_must_match_the_certificate() {
        let ca = TestCa::new("podnet test CA");
        let node1 = endpoint(&ca.identity("node-1"));
        let node2 = endpoint(&ca.identity("node-2"));
        let node2_addr = node2.local_addr().unwrap();
        let _server = tokio::spawn(async move { node2.accept().await.unwrap().await });
        let result = node1.connect(node2_addr, "node-3").unwrap().await;
        assert!(result.is_err(), "node-2's certificate accepted as node-3");
    }

    #[tokio::test]
    async fn client_from_another_ca_is_rejected() {
        let ca = TestCa::new("podnet test CA");
        let rogue_ca = TestCa::new("rogue CA");
        let node2 = endpoint(&ca.identity("node-2"));
        let node2_addr = node2.local_addr().unwrap();

        // The rogue node trusts the real CA, so it would accept node-2; only
        // node-2's client verification can reject it.
        let (cert, key) = rogue_ca.node_cert("node-1");
        let rogue = NodeIdentity::from_pem(&ca.cert_pem, &cert, &key).unwrap();
        let rogue = endpoint(&rogue);

        let server = tokio::spawn(async move { node2.accept().await.unwrap().await });
        let client = rogue.connect(node2_addr, "node-2").unwrap().await;
        let server = server.await.unwrap();
        assert!(server.is_err(), "server accepted a client from another CA");
        // With TLS 1.3 the client may finish its side before the server's
        // rejection arrives; it must not stay usable.
        if let Ok(conn) = client {
            let err = conn.closed().await;
            assert!(
                matches!(err, quinn::ConnectionError::ConnectionClosed(_)),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn server_from_another_ca_is_rejected() {
        let ca = TestCa::new("podnet test CA");
        let rogue_ca = TestCa::new("rogue CA");
        let node1 = endpoint(&ca.identity("node-1"));
        let (cert, key) = rogue_ca.node_cert("node-2");
        let rogue = endpoint(&NodeIdentity::from_pem(&ca.cert_pem, &cert, &key).unwrap());
        let rogue_addr = rogue.local_addr().unwrap();
        let _server = tokio::spawn(async move { rogue.accept().await.unwrap().await });
        let result = node1.connect(rogue_addr, "node-2").unwrap().await;
        assert!(result.is_err(), "client accepted a server from another CA");
    }

    #[test]
    fn bad_pem_inputs_are_clear_errors() {
        let ca = TestCa::new("podnet test CA");
        let (cert, key) = ca.node_cert("node-1");
        let check = |ca_pem: &str, cert_pem: &str, key_pem: &str, expected: &str| {
            let err = NodeIdentity::from_pem(ca_pem, cert_pem, key_pem).unwrap_err();
            assert_eq!(err.to_string(), expected);
        };
        check("", &cert, &key, "cluster CA PEM has no certificate");
        check(&key, &cert, &key, "cluster CA PEM has no certificate");
        check(
            &ca.cert_pem,
            "",
            &key,
            "node certificate PEM has no certificate",
        );
        check(
            &ca.cert_pem,
            &cert,
            &cert,
            "node private key PEM has no usable private key (PKCS#8, PKCS#1 or SEC1)",
        );
        let (_, other_key) = ca.node_cert("node-2");
        check(
            &ca.cert_pem,
            &cert,
            &other_key,
            "node certificate and private key are not usable for TLS (do they match?)",
        );
    }

    #[test]
    fn no_peer_identity_is_not_a_node() {
        assert!(!peer_identity_is_node(None, "node-1"));
        assert!(!peer_identity_is_node(Some(Box::new(42u8)), "node-1"));
        let empty: Vec<CertificateDer<'static>> = Vec::new();
        assert!(!peer_identity_is_node(Some(Box::new(empty)), "node-1"));
    }
}
