//! Who calls, and how a caller proves it: podnet's identities as the
//! Kubernetes API server authenticates x509 client certificates (the
//! subject's common name is the user, its organizations are the groups),
//! and the TLS settings of every gRPC client and server podnet runs.
//!
//! The identities, all certificates from the cluster CA:
//! - `podnet-admin` in `system:masters`: the client (`podnet get`, the
//!   lab, the tests); may do anything.
//! - `system:node:<name>` in `system:nodes`: a node (its agent and
//!   kubelet); the same certificate names the node as a DNS SAN for the
//!   overlay.
//! - `system:podnet-edge`: the edge load balancer (DNS SAN `podnet-edge`
//!   on the overlay).
//! - `system:serviceaccount:<namespace>:<name>`: a workload acting as its
//!   pod's service account (the ingress controller).
//! - `kube-apiserver-kubelet-client` in `system:masters`: the control plane
//!   calling node agents and trace sources, as kubeadm names it.
//!
//! Clients verify the control plane as [`API_SERVER_NAME`] whatever
//! address they dial, as in-cluster clients verify `kubernetes.default.svc`;
//! a node agent as its node name, the edge as `podnet-edge`.
//!
//! This module decides nothing about what a user may do: the control
//! plane's authorizer does, and a node agent admits only the control plane.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The client's user.
pub const ADMIN_USER: &str = "podnet-admin";
/// The group that may do anything (upstream's superuser group).
pub const MASTERS_GROUP: &str = "system:masters";
pub const NODES_GROUP: &str = "system:nodes";
const NODE_USER_PREFIX: &str = "system:node:";
/// The edge load balancer's user.
pub const EDGE_USER: &str = "system:podnet-edge";
/// The control plane's user toward node agents and trace sources.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The name clients verify the control plane's serving certificate for.
pub const API_SERVER_NAME: &str = "kubernetes";

/// Files of the cluster's credentials in the control plane's state dir.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The admin's certificate and key (`podnet-admin.crt`, `.key`).
pub const ADMIN_CREDENTIALS: &str = "podnet-admin";

/// `system:node:<name>`.
pub fn node_user(node: &str) -> String {
    format!("{NODE_USER_PREFIX}{node}")
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// An authenticated caller: the user and groups its certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: &str, groups: &[&str]) -> User {
        User {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The user a DER certificate names: common name and organizations.
    /// `None` when it does not parse or has no common name. The chain was
    /// verified against the cluster CA by the TLS handshake already.
    pub fn from_der(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?;
        if name.is_empty() {
            return None;
        }
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(String::from)
            .collect();
        Some(User {
            name: name.to_string(),
            groups,
        })
    }

    /// The caller of a request served over TLS with a client certificate.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<User> {
        let certs = request.peer_certs()?;
        User::from_der(certs.first()?.as_ref())
    }

    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    /// The node this user is, for `system:node:<name>` in `system:nodes`.
    pub fn node(&self) -> Option<&str> {
        let name = self.name.strip_prefix(NODE_USER_PREFIX)?;
        (!name.is_empty() && self.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
    }

    pub fn is_edge(&self) -> bool {
        self.name == EDGE_USER
    }

    /// `(namespace, name)` for `system:serviceaccount:<namespace>:<name>`.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A certificate, its private key and the CA to trust, PEM.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a join hands out: the node's (or the edge's) credentials.
impl From<&crate::v1::JoinResponse> for Credentials {
    fn from(joined: &crate::v1::JoinResponse) -> Credentials {
        Credentials {
            ca_pem: joined.ca_pem.clone(),
            cert_pem: joined.cert_pem.clone(),
            key_pem: joined.key_pem.clone(),
        }
    }
}

impl From<crate::v1::Credentials> for Credentials {
    fn from(c: crate::v1::Credentials) -> Credentials {
        Credentials {
            ca_pem: c.ca_pem,
            cert_pem: c.cert_pem,
            key_pem: c.key_pem,
        }
    }
}

impl From<Credentials> for crate::v1::Credentials {
    fn from(c: Credentials) -> crate::v1::Credentials {
        crate::v1::Credentials {
            ca_pem: c.ca_pem,
            cert_pem: c.cert_pem,
            key_pem: c.key_pem,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a PEM CA certificate file, checking it holds a certificate.
pub fn read_ca(path: &Path) -> Result<String, CredentialsError> {
    let pem = read(path)?;
    if CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .is_none_or(|c| c.is_err())
    {
        return Err(CredentialsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(pem)
}

impl Credentials {
    /// `dir/ca.crt`, `dir/NAME.crt` and `dir/NAME.key`.
    pub fn read(dir: &Path, name: &str) -> Result<Credentials, CredentialsError> {
        Ok(Credentials {
            ca_pem: read_ca(&dir.join(CA_CERT_FILE))?,
            cert_pem: read(&dir.join(format!("{name}.crt")))?,
            key_pem: read(&dir.join(format!("{name}.key")))?,
        })
    }

    /// Writes `dir/NAME.crt` and `dir/NAME.key`, both 0600.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), CredentialsError> {
        write_private(&dir.join(format!("{name}.crt")), self.cert_pem.as_bytes())?;
        write_private(&dir.join(format!("{name}.key")), self.key_pem.as_bytes())
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// TLS toward a server that presents a certificate for `server_name`
    /// from the CA, presenting these credentials.
    pub fn client_tls(&self, server_name: &str) -> ClientTlsConfig {
        server_tls_client(&self.ca_pem, server_name).identity(self.identity())
    }

    /// An endpoint for `address` (`host:port`) over that TLS.
    pub fn endpoint(
        &self,
        address: &str,
        server_name: &str,
    ) -> Result<Endpoint, tonic::transport::Error> {
        Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(self.client_tls(server_name))
    }

    /// Serving with these credentials; clients must present a certificate
    /// from the CA unless `client_auth_optional` (then a call without one
    /// has no user, and the service refuses what needs one).
    pub fn server_tls(&self, client_auth_optional: bool) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(client_auth_optional)
    }
}

fn server_tls_client(ca_pem: &str, server_name: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(server_name)
}

/// An endpoint to the control plane verified against `ca_pem`, with no
/// client certificate: for Join and JoinEdge, which carry the join token.
pub fn join_endpoint(address: &str, ca_pem: &str) -> Result<Endpoint, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(server_tls_client(ca_pem, API_SERVER_NAME))
}

/// Writes `contents` to a new or truncated file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CredentialsError> {
    let write_err = |source| CredentialsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = open_private(path).map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    // An existing file keeps its mode on open: set it.
    set_mode(path, 0o600).map_err(write_err)
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Creates `dir` (and its parents) and makes it accessible to its owner
/// only (0700), also when it existed.
pub fn private_dir(dir: &Path) -> Result<PathBuf, CredentialsError> {
    let write_err = |source| CredentialsError::Write {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    set_mode(dir, 0o700).map_err(write_err)?;
    Ok(dir.to_path_buf())
}

/// Makes an existing file readable by its owner only (a key written by an
/// older podnet with the default mode).
pub fn make_private(path: &Path) -> Result<(), CredentialsError> {
    set_mode(path, 0o600).map_err(|source| CredentialsError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The Status for a call without a client certificate.
pub fn unauthenticated() -> tonic::Status {
    tonic::Status::unauthenticated(
        "Unauthorized: this call needs a client certificate from the cluster CA \
         (the admin's is controlplane/podnet-admin.crt in the cluster's state dir)",
    )
}

/// For services only the control plane may call (a node's Exec, every
/// TraceSource): the caller must be [`KUBELET_CLIENT_USER`]. Usable as a
/// tonic interceptor.
pub fn only_control_plane<T>(
    request: tonic::Request<T>,
) -> Result<tonic::Request<T>, tonic::Status> {
    match User::of(&request) {
        Some(user) if user.name == KUBELET_CLIENT_USER => Ok(request),
        Some(user) => Err(tonic::Status::permission_denied(format!(
            "User {:?} cannot call this service: only the control plane ({KUBELET_CLIENT_USER}) may",
            user.name
        ))),
        None => Err(unauthenticated()),
    }
}

/// For what `system:masters` may call on a node (ProxyStatus).
pub fn only_masters<T>(request: &tonic::Request<T>) -> Result<(), tonic::Status> {
    match User::of(request) {
        Some(user) if user.is_admin() => Ok(()),
        Some(user) => Err(tonic::Status::permission_denied(format!(
            "User {:?} cannot call this service: only {MASTERS_GROUP} may",
            user.name
        ))),
        None => Err(unauthenticated()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_of_each_kind() {
        let node = User::new("system:node:node-1", &[NODES_GROUP]);
        assert_eq!(node.node(), Some("node-1"));
        assert!(!node.is_admin());
        // The name alone does not make a node: the group must say so too.
        assert_eq!(User::new("system:node:node-1", &[]).node(), None);
        assert_eq!(User::new("system:node:", &[NODES_GROUP]).node(), None);
        let sa = User::new(
            &service_account_user("podnet-ingress", "controller"),
            &[SERVICE_ACCOUNTS_GROUP],
        );
        assert_eq!(sa.service_account(), Some(("podnet-ingress", "controller")));
        assert_eq!(
            User::new("system:serviceaccount:a:b:c", &[]).service_account(),
            None
        );
        assert!(User::new(ADMIN_USER, &[MASTERS_GROUP]).is_admin());
        assert!(User::new(EDGE_USER, &[]).is_edge());
    }

    #[test]
    fn garbage_is_no_user() {
        assert_eq!(User::from_der(b""), None);
        assert_eq!(User::from_der(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3]), None);
    }
}
