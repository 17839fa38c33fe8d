//! Real TLS handshakes, in memory over `tokio::io::duplex`, between a
//! tokio-rustls server configured by a [`CertStore`] and a tokio-rustls
//! client that trusts a test CA: which certificate the server presents for
//! a given SNI, and what is negotiated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, HandshakeKind, ProtocolVersion, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{CertProblem, CertStore, SecretError};

const NS: &str = "default";
/// What the server writes after the handshake, so the client reads (and
/// thereby processes TLS 1.3 session tickets) before closing.
const GREETING: &[u8] = b"hello from the ingress";

// ---------------------------------------------------------------------------
// Test PKI and Secrets

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

#[derive(Clone)]
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, "podnet test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A leaf certificate for `names`, signed by the CA.
    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

fn base64(bytes: &[u8]) -> Value {
    serde_json::to_value(ByteString(bytes.to_vec())).unwrap()
}

fn secret_json(name: &str, resource_version: &str, secret_type: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": NS, "name": name, "resourceVersion": resource_version},
        "type": secret_type,
        "data": data,
    })
}

/// A well-formed `kubernetes.io/tls` Secret holding `cert_pem` and `key_pem`.
fn tls_secret(name: &str, resource_version: &str, cert_pem: &str, key_pem: &str) -> Value {
    secret_json(
        name,
        resource_version,
        "kubernetes.io/tls",
        json!({"tls.crt": base64(cert_pem.as_bytes()), "tls.key": base64(key_pem.as_bytes())}),
    )
}

fn secret_ref(name: &str) -> (String, String) {
    (NS.to_owned(), name.to_owned())
}

fn hosts(list: &[(&str, &str)]) -> Vec<(String, (String, String))> {
    list.iter()
        .map(|(host, secret)| (host.to_string(), secret_ref(secret)))
        .collect()
}

fn secrets(list: Vec<(&str, Value)>) -> HashMap<(String, String), Value> {
    list.into_iter()
        .map(|(name, secret)| (secret_ref(name), secret))
        .collect()
}

/// A CA, leaf certificates for two hosts and a wildcard, their Secrets,
/// and a store that serves them.
struct Fixture {
    pki: Pki,
    shop: Leaf,
    api: Leaf,
    apps: Leaf,
    secrets: HashMap<(String, String), Value>,
    store: Arc<CertStore>,
}

impl Fixture {
    fn new() -> Fixture {
        let pki = Pki::new();
        let shop = pki.leaf(&["shop.example.com"]);
        // Also names a host under the wildcard: an exact entry beats it.
        let api = pki.leaf(&["api.example.com", "special.apps.example.com"]);
        let apps = pki.leaf(&["*.apps.example.com"]);
        let secrets = secrets(vec![
            (
                "shop-tls",
                tls_secret("shop-tls", "1", &shop.cert_pem, &shop.key_pem),
            ),
            (
                "api-tls",
                tls_secret("api-tls", "1", &api.cert_pem, &api.key_pem),
            ),
            (
                "apps-tls",
                tls_secret("apps-tls", "1", &apps.cert_pem, &apps.key_pem),
            ),
        ]);
        let store = CertStore::new().unwrap();
        let problems = store.update(&Fixture::hosts(), &secrets);
        assert_eq!(problems, vec![]);
        Fixture {
            pki,
            shop,
            api,
            apps,
            secrets,
            store,
        }
    }

    fn hosts() -> Vec<(String, (String, String))> {
        hosts(&[
            ("shop.example.com", "shop-tls"),
            ("api.example.com", "api-tls"),
            ("special.apps.example.com", "api-tls"),
            ("*.apps.example.com", "apps-tls"),
        ])
    }

    fn client(&self) -> Client {
        Client::new(
            &self.pki,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &[],
        )
    }

    async fn handshake(&self, sni: &str) -> Handshake {
        handshake(self.store.server_config(), &self.client(), sni).await
    }
}

// ---------------------------------------------------------------------------
// The client side of a handshake

/// Verifies like a real client (the test CA as the only root, the SNI as
/// the name) but first records the certificate the server presented, so a
/// test sees it even when verification fails.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    presented: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.presented.lock().unwrap() = Some(end_entity.clone().into_owned());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

struct Client {
    config: Arc<ClientConfig>,
    verifier: Arc<Recording>,
}

impl Client {
    fn new(pki: &Pki, versions: &[&'static SupportedProtocolVersion], alpn: &[&[u8]]) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca_der()).unwrap();
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let verifier = Arc::new(Recording {
            inner,
            presented: Mutex::new(None),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Client {
            config: Arc::new(config),
            verifier,
        }
    }

    /// The same client, but sending no SNI.
    fn without_sni(mut self) -> Client {
        Arc::make_mut(&mut self.config).enable_sni = false;
        self
    }
}

#[derive(Debug)]
struct Negotiated {
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
    resumed: bool,
}

#[derive(Debug)]
struct Handshake {
    /// The end-entity certificate the server sent; `None` on a resumed
    /// handshake, where no certificate is sent.
    presented: Option<CertificateDer<'static>>,
    /// The client's view: what was negotiated, or why the handshake failed.
    outcome: Result<Negotiated, String>,
}

/// Runs one TLS connection in memory: the server accepts with `server`,
/// writes [`GREETING`] and closes; the client connects to `sni`, reads
/// everything and closes.
async fn handshake(server: Arc<ServerConfig>, client: &Client, sni: &str) -> Handshake {
    *client.verifier.presented.lock().unwrap() = None;
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server_side = async move {
        // A failed handshake is the client's to report.
        let Ok(mut tls) = TlsAcceptor::from(server).accept(server_io).await else {
            return;
        };
        let _ = tls.write_all(GREETING).await;
        let _ = tls.shutdown().await;
        let _ = tls.read_to_end(&mut Vec::new()).await;
    };
    let client_side = async {
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        let mut tls = TlsConnector::from(client.config.clone())
            .connect(name, client_io)
            .await
            .map_err(|error| error.to_string())?;
        let (_, conn) = tls.get_ref();
        let negotiated = Negotiated {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        };
        let mut received = Vec::new();
        tls.read_to_end(&mut received)
            .await
            .map_err(|error| error.to_string())?;
        assert_eq!(received, GREETING);
        tls.shutdown().await.map_err(|error| error.to_string())?;
        Ok(negotiated)
    };
    let ((), outcome) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(server_side, client_side)
    })
    .await
    .expect("the in-memory handshake did not finish");
    Handshake {
        presented: client.verifier.presented.lock().unwrap().take(),
        outcome,
    }
}

/// Asserts the handshake verified against the test CA and the server
/// presented `expected`.
#[track_caller]
fn assert_served(handshake: &Handshake, expected: &CertificateDer<'_>, sni: &str) {
    if let Err(error) = &handshake.outcome {
        panic!("handshake for {sni} failed: {error}");
    }
    assert_eq!(
        handshake.presented.as_ref(),
        Some(expected),
        "wrong certificate for {sni}"
    );
}

/// Asserts the server presented its default certificate, which a client
/// trusting only the test CA rejects.
#[track_caller]
fn assert_default(handshake: &Handshake, store: &CertStore, sni: &str) {
    assert_eq!(
        handshake.presented,
        Some(store.default_cert_der()),
        "{sni} did not get the default certificate"
    );
    let error = handshake
        .outcome
        .as_ref()
        .expect_err("the default certificate was trusted");
    assert!(
        error.contains("invalid peer certificate"),
        "unexpected error for {sni}: {error}"
    );
}

// ---------------------------------------------------------------------------
// SNI selection through real handshakes

#[tokio::test]
async fn exact_hosts_get_their_certificates() {
    let f = Fixture::new();
    for (sni, leaf) in [
        ("shop.example.com", &f.shop),
        ("api.example.com", &f.api),
        ("SHOP.Example.COM", &f.shop),
        // Exact beats the wildcard that also covers it.
        ("special.apps.example.com", &f.api),
    ] {
        assert_served(&f.handshake(sni).await, &leaf.der, sni);
    }
}

#[tokio::test]
async fn wildcard_covers_exactly_one_label() {
    let f = Fixture::new();
    for sni in ["a.apps.example.com", "Web-1.APPS.example.com"] {
        assert_served(&f.handshake(sni).await, &f.apps.der, sni);
    }
    for sni in ["apps.example.com", "a.b.apps.example.com"] {
        assert_default(&f.handshake(sni).await, &f.store, sni);
    }
}

#[tokio::test]
async fn unknown_host_and_no_sni_get_the_default_certificate() {
    let f = Fixture::new();
    assert_default(
        &f.handshake("unknown.example.com").await,
        &f.store,
        "unknown.example.com",
    );

    let client = f.client().without_sni();
    let handshake = handshake(f.store.server_config(), &client, "shop.example.com").await;
    // Without SNI the server cannot know the host: the default certificate,
    // although the client would accept the shop's.
    assert_eq!(handshake.presented, Some(f.store.default_cert_der()));
    assert!(handshake.outcome.is_err());
}

#[tokio::test]
async fn default_certificate_names_ingress_local() {
    let store = CertStore::new().unwrap();
    let der = store.default_cert_der();
    let cert = webpki::EndEntityCert::try_from(&der).unwrap();
    let names: Vec<_> = cert.valid_dns_names().map(str::to_owned).collect();
    assert_eq!(names, vec!["ingress.local"]);

    // A client that trusts it (as `curl --cacert` would) completes the
    // handshake for ingress.local.
    let mut roots = RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (server, client) = tokio::join!(
        TlsAcceptor::from(store.server_config()).accept(server_io),
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("ingress.local").unwrap(), client_io),
    );
    server.unwrap();
    let client = client.unwrap();
    let presented = client.get_ref().1.peer_certificates().unwrap();
    assert_eq!(presented, &[der][..]);
}

// ---------------------------------------------------------------------------
// Unusable Secrets

/// One broken Secret: its name, its JSON (`None`: absent), and a fragment
/// of the expected problem message.
struct BadCase {
    name: &'static str,
    secret: Option<Value>,
    reason: SecretError,
    message: &'static str,
}

fn bad_cases(f: &Fixture) -> Vec<BadCase> {
    let pem_block = |label: &str, body: &[u8]| {
        let der = CertificateDer::from(body.to_vec());
        // Valid PEM armour around bytes that are no certificate or key.
        let b64 = base64(der.as_ref());
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            b64.as_str().unwrap()
        )
    };
    let tls = |name: &str, cert: &str, key: &str| tls_secret(name, "7", cert, key);
    vec![
        BadCase {
            name: "absent",
            secret: None,
            reason: SecretError::NotFound,
            message: "secret not found",
        },
        BadCase {
            name: "garbage-base64",
            secret: Some(secret_json(
                "garbage-base64",
                "7",
                "kubernetes.io/tls",
                json!({"tls.crt": "!!! not base64 !!!", "tls.key": base64(f.shop.key_pem.as_bytes())}),
            )),
            reason: SecretError::BadBase64 {
                field: "tls.crt",
                reason: String::new(),
            },
            message: "data[\"tls.crt\"] is not valid base64",
        },
        BadCase {
            name: "mismatch",
            secret: Some(tls("mismatch", &f.shop.cert_pem, &f.api.key_pem)),
            reason: SecretError::KeyMismatch,
            message: "tls.key does not match the certificate in tls.crt",
        },
        BadCase {
            name: "missing-key",
            secret: Some(secret_json(
                "missing-key",
                "7",
                "kubernetes.io/tls",
                json!({"tls.crt": base64(f.shop.cert_pem.as_bytes())}),
            )),
            reason: SecretError::MissingField { field: "tls.key" },
            message: "data[\"tls.key\"] is missing",
        },
        BadCase {
            name: "wrong-type",
            secret: Some(secret_json(
                "wrong-type",
                "7",
                "Opaque",
                json!({"tls.crt": base64(f.shop.cert_pem.as_bytes()), "tls.key": base64(f.shop.key_pem.as_bytes())}),
            )),
            reason: SecretError::WrongType {
                found: "Opaque".to_owned(),
            },
            message: "type is \"Opaque\", expected \"kubernetes.io/tls\"",
        },
        BadCase {
            name: "key-in-crt",
            secret: Some(tls("key-in-crt", &f.shop.key_pem, &f.shop.key_pem)),
            reason: SecretError::NoCertificate,
            message: "tls.crt holds no CERTIFICATE block",
        },
        BadCase {
            name: "empty-key",
            secret: Some(tls("empty-key", &f.shop.cert_pem, "")),
            reason: SecretError::NoKey,
            message: "tls.key holds no private key block",
        },
        BadCase {
            name: "junk-key",
            secret: Some(tls(
                "junk-key",
                &f.shop.cert_pem,
                &pem_block("PRIVATE KEY", b"not a pkcs8 document"),
            )),
            reason: SecretError::UnsupportedKey {
                reason: String::new(),
            },
            message: "tls.key is not a supported private key",
        },
        BadCase {
            name: "junk-cert",
            secret: Some(tls(
                "junk-cert",
                &pem_block("CERTIFICATE", b"not DER at all"),
                &f.shop.key_pem,
            )),
            reason: SecretError::BadCertificate {
                reason: String::new(),
            },
            message: "tls.crt does not hold a valid X.509 certificate",
        },
        BadCase {
            name: "broken-pem",
            secret: Some(tls(
                "broken-pem",
                "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
                &f.shop.key_pem,
            )),
            reason: SecretError::BadPem {
                field: "tls.crt",
                reason: String::new(),
            },
            message: "tls.crt is not valid PEM",
        },
    ]
}

/// The variant of a [`SecretError`], ignoring the free-text reasons that
/// come from the parsers.
fn same_kind(a: &SecretError, b: &SecretError) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

#[tokio::test]
async fn unusable_secrets_are_problems_and_serve_the_default_certificate() {
    let f = Fixture::new();
    let cases = bad_cases(&f);
    let mut host_list = Fixture::hosts();
    let mut secrets = f.secrets.clone();
    for case in &cases {
        host_list.push((format!("{}.example.com", case.name), secret_ref(case.name)));
        if let Some(secret) = &case.secret {
            secrets.insert(secret_ref(case.name), secret.clone());
        }
    }

    let problems = f.store.update(&host_list, &secrets);

    assert_eq!(
        problems.len(),
        cases.len(),
        "one problem per broken Secret: {problems:#?}"
    );
    for (case, problem) in cases.iter().zip(&problems) {
        let CertProblem {
            namespace,
            name,
            hosts,
            reason,
        } = problem;
        assert_eq!((namespace.as_str(), name.as_str()), (NS, case.name));
        assert_eq!(hosts, &[format!("{}.example.com", case.name)]);
        assert!(
            same_kind(reason, &case.reason),
            "{}: expected {:?}, got {reason:?}",
            case.name,
            case.reason
        );
        let message = problem.to_string();
        let expected_prefix = format!(
            "secret default/{} cannot serve TLS for {}.example.com: ",
            case.name, case.name
        );
        assert!(message.starts_with(&expected_prefix), "{message}");
        assert!(message.contains(case.message), "{}: {message}", case.name);

        let sni = format!("{}.example.com", case.name);
        assert_default(&f.handshake(&sni).await, &f.store, &sni);
    }
    // The broken Secrets do not disturb the good ones.
    assert_served(&f.handshake("shop.example.com").await, &f.shop.der, "shop");
}

#[tokio::test]
async fn a_host_falls_back_to_its_next_usable_secret() {
    let f = Fixture::new();
    let mut secrets = f.secrets.clone();
    secrets.insert(
        secret_ref("mismatch"),
        tls_secret("mismatch", "1", &f.shop.cert_pem, &f.api.key_pem),
    );
    let problems = f.store.update(
        &hosts(&[
            ("shop.example.com", "mismatch"),
            ("shop.example.com", "shop-tls"),
            ("www.shop.example.com", "mismatch"),
            ("api.example.com", "api-tls"),
            // A later usable Secret does not replace an earlier one.
            ("api.example.com", "shop-tls"),
        ]),
        &secrets,
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, SecretError::KeyMismatch);
    assert_eq!(
        problems[0].hosts,
        vec!["shop.example.com", "www.shop.example.com"]
    );
    assert_served(&f.handshake("shop.example.com").await, &f.shop.der, "shop");
    assert_served(&f.handshake("api.example.com").await, &f.api.der, "api");
}

// ---------------------------------------------------------------------------
// Updates

#[tokio::test]
async fn update_replaces_a_certificate() {
    let f = Fixture::new();
    let hosts = hosts(&[("shop.example.com", "shop-tls")]);
    let mut secrets = f.secrets.clone();
    assert_eq!(f.store.update(&hosts, &secrets), vec![]);
    assert_served(&f.handshake("shop.example.com").await, &f.shop.der, "v1");

    // The certificate is renewed: a new resourceVersion.
    let renewed = f.pki.leaf(&["shop.example.com"]);
    secrets.insert(
        secret_ref("shop-tls"),
        tls_secret("shop-tls", "2", &renewed.cert_pem, &renewed.key_pem),
    );
    assert_eq!(f.store.update(&hosts, &secrets), vec![]);
    assert_served(&f.handshake("shop.example.com").await, &renewed.der, "v2");

    // The same resourceVersion is not parsed again, whatever it holds.
    let garbage = secret_json("shop-tls", "2", "Opaque", json!({}));
    secrets.insert(secret_ref("shop-tls"), garbage);
    assert_eq!(f.store.update(&hosts, &secrets), vec![]);
    assert_served(
        &f.handshake("shop.example.com").await,
        &renewed.der,
        "cached",
    );

    // Removing the host serves the default certificate and forgets the
    // Secret: re-adding it parses what is there now.
    assert_eq!(f.store.update(&[], &secrets), vec![]);
    assert_default(&f.handshake("shop.example.com").await, &f.store, "removed");
    assert!(format!("{:?}", f.store).contains("cached_secrets: 0"));
    let problems = f.store.update(&hosts, &secrets);
    assert_eq!(problems.len(), 1);
    assert!(matches!(problems[0].reason, SecretError::WrongType { .. }));
}

#[tokio::test]
async fn secrets_without_resource_version_are_parsed_every_time() {
    let f = Fixture::new();
    let hosts = hosts(&[("shop.example.com", "shop-tls")]);
    let mut good = tls_secret("shop-tls", "", &f.shop.cert_pem, &f.shop.key_pem);
    good["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(
        f.store.update(&hosts, &secrets(vec![("shop-tls", good)])),
        vec![]
    );
    let broken = tls_secret("shop-tls", "", &f.shop.cert_pem, &f.api.key_pem);
    let problems = f.store.update(&hosts, &secrets(vec![("shop-tls", broken)]));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, SecretError::KeyMismatch);
}

#[tokio::test]
async fn string_data_is_accepted() {
    let f = Fixture::new();
    let secret = json!({
        "metadata": {"namespace": NS, "name": "plain", "resourceVersion": "3"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": f.shop.cert_pem, "tls.key": f.shop.key_pem},
    });
    let problems = f.store.update(
        &hosts(&[("shop.example.com", "plain")]),
        &secrets(vec![("plain", secret)]),
    );
    assert_eq!(problems, vec![]);
    assert_served(
        &f.handshake("shop.example.com").await,
        &f.shop.der,
        "stringData",
    );
}

// ---------------------------------------------------------------------------
// Negotiation

#[tokio::test]
async fn alpn_prefers_h2() {
    let f = Fixture::new();
    /// Protocols the client offers, and the one the server should pick.
    type AlpnCase<'a> = (&'a [&'a [u8]], Option<&'a [u8]>);
    let both: &[&[u8]] = &[b"http/1.1", b"h2"];
    let cases: &[AlpnCase] = &[
        (both, Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[b"h2"], Some(b"h2")),
        (&[], None),
    ];
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (offered, expected) in cases {
            let client = Client::new(&f.pki, &[version], offered);
            let handshake = handshake(f.store.server_config(), &client, "shop.example.com").await;
            assert_served(&handshake, &f.shop.der, "shop.example.com");
            let negotiated = handshake.outcome.unwrap();
            assert_eq!(negotiated.alpn.as_deref(), *expected, "offered {offered:?}");
            assert_eq!(negotiated.version, Some(version.version));
        }
    }
}

#[tokio::test]
async fn sessions_resume_across_server_configs() {
    let f = Fixture::new();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = Client::new(&f.pki, &[version], &[b"h2"]);
        let first = handshake(f.store.server_config(), &client, "shop.example.com").await;
        assert_served(&first, &f.shop.der, "first");
        assert!(!first.outcome.unwrap().resumed);

        // A config built later by the same store (a new listener, a
        // reload) still honours the tickets of the first.
        let second = handshake(f.store.server_config(), &client, "shop.example.com").await;
        let negotiated = second.outcome.unwrap();
        assert!(negotiated.resumed, "{version:?} did not resume");
        assert_eq!(negotiated.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(
            second.presented, None,
            "a resumed handshake sends no certificate"
        );
    }
}

// ---------------------------------------------------------------------------
// The pure selection, without handshakes

#[test]
fn certificate_for_matches_like_ingress_nginx() {
    let f = Fixture::new();
    let default = f.store.default_cert_der();
    let check = |sni: Option<&str>, expected: &CertificateDer<'_>| {
        let key = f.store.certificate_for(sni);
        assert_eq!(&key.cert[0], expected, "{sni:?}");
    };
    check(Some("shop.example.com"), &f.shop.der);
    check(Some("shop.example.com."), &f.shop.der);
    check(Some("ShOp.ExAmPlE.cOm"), &f.shop.der);
    check(Some("api.example.com"), &f.api.der);
    check(Some("x.apps.example.com"), &f.apps.der);
    check(Some("special.apps.example.com"), &f.api.der);
    check(Some("apps.example.com"), &default);
    check(Some(".apps.example.com"), &default);
    check(Some("x.y.apps.example.com"), &default);
    check(Some("example.com"), &default);
    check(Some(""), &default);
    check(None, &default);
}

#[test]
fn patterns_with_other_wildcards_never_match() {
    let f = Fixture::new();
    let problems = f.store.update(
        &hosts(&[
            ("*", "shop-tls"),
            ("*.", "shop-tls"),
            ("shop.*.com", "shop-tls"),
            ("*.*.example.com", "shop-tls"),
            ("", "shop-tls"),
        ]),
        &f.secrets,
    );
    assert_eq!(problems, vec![]);
    let default = f.store.default_cert_der();
    for sni in ["shop.example.com", "shop.x.com", "a.b.example.com", "x"] {
        assert_eq!(f.store.certificate_for(Some(sni)).cert[0], default, "{sni}");
    }
}

#[test]
fn debug_output_shows_counts_not_keys() {
    let f = Fixture::new();
    let debug = format!("{:?}", f.store);
    assert!(debug.contains("exact_hosts: 3"), "{debug}");
    assert!(debug.contains("wildcard_hosts: 1"), "{debug}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
}

// ---------------------------------------------------------------------------
// Nothing in a Secret can panic the store

fn arbitrary_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600).prop_map(|bytes| base64(&bytes)),
        (
            prop::sample::select(vec![
                "CERTIFICATE",
                "PRIVATE KEY",
                "EC PRIVATE KEY",
                "RSA PRIVATE KEY"
            ]),
            proptest::collection::vec(any::<u8>(), 0..400),
        )
            .prop_map(|(label, bytes)| {
                let body = base64(&bytes);
                let pem = format!(
                    "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                    body.as_str().unwrap()
                );
                base64(pem.as_bytes())
            }),
        ".*".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!({"nested": [1, 2]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_secrets_are_problems_not_panics(
        crt in arbitrary_field(),
        key in arbitrary_field(),
        secret_type in prop::sample::select(vec!["kubernetes.io/tls", "Opaque", ""]),
        data_is_object in any::<bool>(),
    ) {
        let store = CertStore::new().unwrap();
        let data = if data_is_object { json!({"tls.crt": crt, "tls.key": key}) } else { json!([crt, key]) };
        let secret = secret_json("fuzz", "1", secret_type, data);
        let problems = store.update(
            &hosts(&[("fuzz.example.com", "fuzz")]),
            &secrets(vec![("fuzz", secret)]),
        );
        prop_assert_eq!(problems.len(), 1);
        prop_assert_eq!(
            store.certificate_for(Some("fuzz.example.com")).cert[0].clone(),
            store.default_cert_der()
        );
    }
}
