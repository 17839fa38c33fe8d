//! The ingress controller's server certificates: which certificate a TLS
//! ClientHello gets, picked by its SNI from `kubernetes.io/tls` Secrets.
//!
//! [`CertStore`] is a [`ResolvesServerCert`]: the handshake path only clones
//! an `Arc` of the current SNI map under a read lock held for that clone, and
//! never parses anything. [`CertStore::update`] parses the Secrets (PEM,
//! keys, key/certificate match) off the handshake path, reports every Secret
//! it cannot use as a [`CertProblem`], and swaps the whole map at once, so a
//! handshake sees either the old map or the new one.
//!
//! Matching follows ingress-nginx: the exact host first, then a wildcard
//! pattern `*.example.com` covering exactly one more label, compared without
//! regard to ASCII case; no SNI, no match, or a host whose Secrets are all
//! unusable gets the controller's self-signed default certificate (CN/SAN
//! `ingress.local`, ingress-nginx's "Fake Certificate").
//!
//! Deliberately not here: which host maps to which Secret (the routes decide
//! that), watching Secrets, client certificates (mTLS), OCSP stapling, and
//! checking that a certificate names its host or is within its validity
//! period: like ingress-nginx, a usable pair is served as it is and the
//! client decides.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use k8s_openapi::ByteString;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WantsServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ConfigBuilder, InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::Value;

/// The name the default certificate is issued for.
pub const DEFAULT_CERT_HOST: &str = "ingress.local";
/// The Secret type whose Secrets can serve TLS.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// ALPN protocols the server offers, most preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// TLS sessions remembered for resumption by session ID (TLS 1.2); tickets
/// need no server memory.
const SESSION_CACHE_SIZE: usize = 1024;

/// A Secret identified by (namespace, name).
type SecretRef = (String, String);

/// Setting up the store itself failed; only happens if the system's random
/// number generator fails.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the default certificate")]
    Generate(#[source] rcgen::Error),
    #[error("cannot load the default certificate's key")]
    DefaultKey(#[source] rustls::Error),
    #[error("cannot set up TLS with the ring provider")]
    Tls(#[source] rustls::Error),
}

/// Why a Secret cannot serve TLS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret not found")]
    NotFound,
    #[error("type is {found:?}, expected {TLS_SECRET_TYPE:?}")]
    WrongType { found: String },
    #[error("data[{field:?}] is missing")]
    MissingField { field: &'static str },
    #[error("data[{field:?}] is not valid base64: {reason}")]
    BadBase64 { field: &'static str, reason: String },
    #[error("{field} is not valid PEM: {reason}")]
    BadPem { field: &'static str, reason: String },
    #[error("tls.crt holds no CERTIFICATE block")]
    NoCertificate,
    #[error("tls.crt does not hold a valid X.509 certificate: {reason}")]
    BadCertificate { reason: String },
    #[error("tls.key holds no private key block")]
    NoKey,
    #[error("tls.key is not a supported private key (RSA, ECDSA P-256/P-384 or Ed25519): {reason}")]
    UnsupportedKey { reason: String },
    #[error("tls.key does not match the certificate in tls.crt")]
    KeyMismatch,
}

/// A Secret that [`CertStore::update`] could not use; the hosts it was
/// meant for are served by another usable Secret for the same host if there
/// is one, else by the default certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "secret {namespace}/{name} cannot serve TLS for {host_list}: {reason}",
    host_list = .hosts.join(", ")
)]
pub struct CertProblem {
    pub namespace: String,
    pub name: String,
    /// The host patterns that asked for this Secret, in the order given.
    pub hosts: Vec<String>,
    pub reason: SecretError,
}

/// The SNI map of one [`CertStore::update`]. Keys are lowercase, without a
/// trailing dot.
#[derive(Default)]
struct SniMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniMap {
    fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = normalize(server_name);
        if let Some(key) = self.exact.get(&name) {
            return Some(key);
        }
        match name.split_once('.') {
            Some((first, parent)) if !first.is_empty() => self.wildcard.get(parent),
            _ => None,
        }
    }
}

/// A parsed Secret, kept while the Secret is referenced and unchanged.
struct Cached {
    resource_version: String,
    loaded: Result<Arc<CertifiedKey>, SecretError>,
}

/// The server certificates of the ingress controller, chosen by SNI.
pub struct CertStore {
    default: Arc<CertifiedKey>,
    sni: RwLock<Arc<SniMap>>,
    /// Parsed Secrets by (namespace, name); only touched by `update`.
    cache: Mutex<HashMap<SecretRef, Cached>>,
    /// Built once so [`CertStore::server_config`] cannot fail.
    builder: ConfigBuilder<ServerConfig, WantsServerCert>,
    /// Shared by every config this store builds, so sessions resume across
    /// config rebuilds.
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    sessions: Arc<ServerSessionMemoryCache>,
}

impl CertStore {
    /// A store that serves the controller's default certificate for every
    /// host: self-signed, freshly generated (ECDSA P-256), CN and SAN
    /// [`DEFAULT_CERT_HOST`].
    pub fn new() -> Result<Arc<CertStore>, CertError> {
        let default = default_certificate()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(CertError::Tls)?
            .with_no_client_auth();
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(CertError::Tls)?;
        Ok(Arc::new(CertStore {
            default: Arc::new(default),
            sni: RwLock::default(),
            cache: Mutex::default(),
            builder,
            ticketer,
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
        }))
    }

    /// Replaces the SNI map with the one `hosts` describes, atomically.
    ///
    /// `hosts` maps an SNI pattern (`shop.example.com`, or `*.example.com`
    /// for exactly one more label) to the Secret that serves it; when a
    /// pattern appears more than once the first entry with a usable Secret
    /// wins, so callers list them by precedence. `secrets` holds the
    /// Secrets' JSON by (namespace, name). Patterns with a `*` anywhere but
    /// a leading `*.` can never match and are ignored.
    ///
    /// Returns one [`CertProblem`] per referenced Secret that cannot be
    /// used, in the order of first reference. Parsed Secrets are cached by
    /// `metadata.resourceVersion`, so an unchanged Secret is not parsed
    /// again (a Secret without one is parsed every time); Secrets no longer
    /// referenced are dropped from the cache.
    pub fn update(
        &self,
        hosts: &[(String, SecretRef)],
        secrets: &HashMap<SecretRef, Value>,
    ) -> Vec<CertProblem> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut loaded: HashMap<&SecretRef, Result<Arc<CertifiedKey>, SecretError>> =
            HashMap::new();
        let mut problems: Vec<CertProblem> = Vec::new();
        let mut problem_index: HashMap<&SecretRef, usize> = HashMap::new();
        let mut map = SniMap::default();

        for (pattern, secret_ref) in hosts {
            let result = loaded
                .entry(secret_ref)
                .or_insert_with(|| load_cached(&mut cache, secret_ref, secrets.get(secret_ref)));
            let key = match result {
                Ok(key) => key,
                Err(reason) => {
                    let index = *problem_index.entry(secret_ref).or_insert_with(|| {
                        problems.push(CertProblem {
                            namespace: secret_ref.0.clone(),
                            name: secret_ref.1.clone(),
                            hosts: Vec::new(),
                            reason: reason.clone(),
                        });
                        problems.len() - 1
                    });
                    let problem = &mut problems[index];
                    if !problem.hosts.contains(pattern) {
                        problem.hosts.push(pattern.clone());
                    }
                    continue;
                }
            };
            let name = normalize(pattern);
            let (table, name) = match name.strip_prefix("*.") {
                Some(parent) => (&mut map.wildcard, parent.to_owned()),
                None => (&mut map.exact, name),
            };
            if name.is_empty() || name.contains('*') {
                continue;
            }
            if let Entry::Vacant(slot) = table.entry(name) {
                slot.insert(Arc::clone(key));
            }
        }

        cache.retain(|secret_ref, _| loaded.contains_key(secret_ref));
        drop(cache);
        tracing::debug!(
            tls.exact_hosts = map.exact.len(),
            tls.wildcard_hosts = map.wildcard.len(),
            tls.problems = problems.len(),
            "updated ingress certificates"
        );
        *self.sni.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
        problems
    }

    /// The certificate a ClientHello with this SNI gets: the pure core of
    /// [`ResolvesServerCert::resolve`].
    pub fn certificate_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let map = Arc::clone(&self.sni.read().unwrap_or_else(PoisonError::into_inner));
        server_name
            .and_then(|name| map.lookup(name))
            .map_or_else(|| Arc::clone(&self.default), Arc::clone)
    }

    /// A rustls server config that takes its certificates from this store:
    /// TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`, no client certificates,
    /// session resumption by ticket and by session ID. Build one per
    /// listener; every config of a store shares its ticket keys and session
    /// cache, and sees every later [`CertStore::update`].
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = self
            .builder
            .clone()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        config.ticketer = Arc::clone(&self.ticketer);
        config.session_storage = Arc::clone(&self.sessions) as _;
        Arc::new(config)
    }

    /// The default certificate's DER, to compare with what a handshake
    /// presented.
    #[cfg(test)]
    pub(crate) fn default_cert_der(&self) -> CertificateDer<'static> {
        self.default.cert[0].clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certificate_for(client_hello.server_name()))
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = Arc::clone(&self.sni.read().unwrap_or_else(PoisonError::into_inner));
        let cached = self
            .cache
            .try_lock()
            .map(|cache| cache.len())
            .unwrap_or_default();
        f.debug_struct("CertStore")
            .field("exact_hosts", &map.exact.len())
            .field("wildcard_hosts", &map.wildcard.len())
            .field("cached_secrets", &cached)
            .finish_non_exhaustive()
    }
}

/// Lowercase, without a trailing dot: the form SNI patterns and names are
/// compared in.
fn normalize(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn default_certificate() -> Result<CertifiedKey, CertError> {
    let mut params = rcgen::CertificateParams::new(vec![DEFAULT_CERT_HOST.to_owned()])
        .map_err(CertError::Generate)?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, DEFAULT_CERT_HOST);
    subject.push(
        rcgen::DnType::OrganizationName,
        "podnet Ingress Controller Fake Certificate",
    );
    params.distinguished_name = subject;
    let key_pair = rcgen::KeyPair::generate().map_err(CertError::Generate)?;
    let cert = params.self_signed(&key_pair).map_err(CertError::Generate)?;
    let key = PrivateKeyDer::from(key_pair);
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::DefaultKey)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

/// Loads a Secret through the cache. Failures are cached too, so a broken
/// Secret is parsed once per resourceVersion and still reported every time.
fn load_cached(
    cache: &mut HashMap<SecretRef, Cached>,
    secret_ref: &SecretRef,
    secret: Option<&Value>,
) -> Result<Arc<CertifiedKey>, SecretError> {
    let Some(secret) = secret else {
        return Err(SecretError::NotFound);
    };
    let resource_version = secret
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if resource_version.is_empty() {
        cache.remove(secret_ref);
        return load(secret);
    }
    if let Some(cached) = cache.get(secret_ref)
        && cached.resource_version == resource_version
    {
        return cached.loaded.clone();
    }
    let loaded = load(secret);
    cache.insert(
        secret_ref.clone(),
        Cached {
            resource_version: resource_version.to_owned(),
            loaded: loaded.clone(),
        },
    );
    loaded
}

/// Parses a `kubernetes.io/tls` Secret into a certificate chain and its
/// signing key. Never panics: every field is checked.
fn load(secret: &Value) -> Result<Arc<CertifiedKey>, SecretError> {
    let secret_type = secret
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Opaque");
    if secret_type != TLS_SECRET_TYPE {
        return Err(SecretError::WrongType {
            found: secret_type.to_owned(),
        });
    }
    let cert_pem = field(secret, "tls.crt")?;
    let key_pem = field(secret, "tls.key")?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| SecretError::BadPem {
            field: "tls.crt",
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(SecretError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| match error {
        pem::Error::NoItemsFound => SecretError::NoKey,
        error => SecretError::BadPem {
            field: "tls.key",
            reason: error.to_string(),
        },
    })?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|error| {
        SecretError::UnsupportedKey {
            reason: error.to_string(),
        }
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring's keys always know their public key; `Unknown` is what
        // rustls itself accepts too (`CertifiedKey::from_der`).
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(SecretError::KeyMismatch)
        }
        Err(error) => Err(SecretError::BadCertificate {
            reason: error.to_string(),
        }),
    }
}

/// One key of the Secret: `stringData` (plain text, as written in a
/// manifest that the API server has not folded into `data`) wins over
/// `data` (base64), as it does in Kubernetes.
fn field(secret: &Value, field: &'static str) -> Result<Vec<u8>, SecretError> {
    if let Some(text) = secret
        .get("stringData")
        .and_then(|data| data.get(field))
        .and_then(Value::as_str)
    {
        return Ok(text.as_bytes().to_vec());
    }
    let value = secret
        .get("data")
        .and_then(|data| data.get(field))
        .ok_or(SecretError::MissingField { field })?;
    ByteString::deserialize(value)
        .map(|bytes| bytes.0)
        .map_err(|error| SecretError::BadBase64 {
            field,
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests;
