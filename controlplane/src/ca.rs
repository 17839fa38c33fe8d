//! The cluster CA: made once per state directory and kept there, so node
//! certificates issued before a control plane restart stay valid after it.
//!
//! It issues every identity's certificate (`podnet_proto::auth` names
//! them): nodes (whose DNS SAN, the node name, the overlay checks against
//! the podCIDR a peer sends from), the edge, service accounts, the admin
//! (written beside the CA, 0600, for the client) and the control plane's
//! own serving and kubelet-client certificates (in memory, new each start).
//! It does not revoke: a node that leaves keeps a valid certificate until the
//! cluster is torn down.

use std::path::Path;

use podnet_proto::auth::{self, Credentials, CredentialsError};
use podnet_proto::model::network::EDGE_NAME;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read or write the cluster CA at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster CA key at {path} is invalid")]
    BadKey {
        path: String,
        #[source]
        source: rcgen::Error,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot issue a certificate for {subject}")]
    Issue {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
}

pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "podnet cluster CA");
    dn.push(DnType::OrganizationName, "podnet");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// What one certificate says: the subject (user and groups, as the API
/// reads them), the names it serves for, and what it may be used for.
struct Subject<'a> {
    common_name: &'a str,
    organizations: Vec<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<std::net::IpAddr>,
    server: bool,
    client: bool,
}

impl ClusterCa {
    /// Loads the CA from `dir/ca.key` and `dir/ca.crt`, creating them on
    /// first use. The directory is made 0700 and the key 0600 (also when
    /// an older podnet left them readable to others).
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, CaError> {
        let key_path = dir.join("ca.key");
        let cert_path = dir.join(auth::CA_CERT_FILE);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        auth::private_dir(dir)?;
        if key_path.exists() && cert_path.exists() {
            auth::make_private(&key_path)?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|source| CaError::BadKey {
                path: key_path.display().to_string(),
                source,
            })?;
            return Ok(ClusterCa {
                cert_pem,
                issuer: Issuer::new(ca_params(), key),
            });
        }
        let ca = ClusterCa::generate()?;
        auth::write_private(&key_path, ca.issuer.key().serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
        Ok(ca)
    }

    /// Writes the admin's credentials into `dir` (0600) unless they are
    /// there, so clients of this state dir can call the API.
    pub fn ensure_admin(&self, dir: &Path) -> Result<(), CaError> {
        let name = auth::ADMIN_CREDENTIALS;
        if Credentials::read(dir, name).is_ok() {
            for ext in ["crt", "key"] {
                auth::make_private(&dir.join(format!("{name}.{ext}")))?;
            }
            return Ok(());
        }
        let admin = self.issue(&Subject {
            common_name: auth::ADMIN_USER,
            organizations: vec![auth::MASTERS_GROUP.into()],
            dns_names: vec![],
            ip_addresses: vec![],
            server: false,
            client: true,
        })?;
        self.credentials(admin).write(dir, name)?;
        Ok(())
    }

    /// A fresh CA held in memory only.
    pub fn generate() -> Result<ClusterCa, CaError> {
        let issue = |source| CaError::Issue {
            subject: "podnet cluster CA".into(),
            source,
        };
        let key = KeyPair::generate().map_err(issue)?;
        let params = ca_params();
        let cert = params.self_signed(&key).map_err(issue)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `issued` with this CA to trust.
    pub fn credentials(&self, issued: Issued) -> Credentials {
        Credentials {
            ca_pem: self.cert_pem.clone(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    fn issue(&self, subject: &Subject) -> Result<Issued, CaError> {
        let issue = |source| CaError::Issue {
            subject: subject.common_name.to_string(),
            source,
        };
        let mut params = CertificateParams::new(subject.dns_names.clone()).map_err(issue)?;
        params.subject_alt_names.extend(
            subject
                .ip_addresses
                .iter()
                .map(|ip| SanType::IpAddress(*ip)),
        );
        params
            .distinguished_name
            .push(DnType::CommonName, subject.common_name);
        for o in &subject.organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, o.as_str());
        }
        if subject.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if subject.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let key = KeyPair::generate().map_err(issue)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A node's certificate: user `system:node:<name>` in `system:nodes`
    /// toward the API, and the node name as DNS SAN for the overlay and its
    /// agent; usable as TLS server and client (the overlay is mutual TLS).
    pub fn issue_node(&self, node_name: &str) -> Result<Issued, CaError> {
        self.issue(&Subject {
            common_name: &auth::node_user(node_name),
            organizations: vec![auth::NODES_GROUP.into()],
            dns_names: vec![node_name.to_string()],
            ip_addresses: vec![],
            server: true,
            client: true,
        })
    }

    /// The edge's: user `system:podnet-edge`, DNS SAN `podnet-edge`.
    pub fn issue_edge(&self) -> Result<Issued, CaError> {
        self.issue(&Subject {
            common_name: auth::EDGE_USER,
            organizations: vec![],
            dns_names: vec![EDGE_NAME.to_string()],
            ip_addresses: vec![],
            server: true,
            client: true,
        })
    }

    /// A workload's, as its pod's service account: user
    /// `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>`.
    pub fn issue_service_account(&self, namespace: &str, name: &str) -> Result<Issued, CaError> {
        self.issue(&Subject {
            common_name: &auth::service_account_user(namespace, name),
            organizations: vec![
                auth::SERVICE_ACCOUNTS_GROUP.into(),
                format!("{}:{namespace}", auth::SERVICE_ACCOUNTS_GROUP),
            ],
            dns_names: vec![],
            ip_addresses: vec![],
            server: false,
            client: true,
        })
    }

    /// The control plane's toward node agents and trace sources.
    pub fn issue_kubelet_client(&self) -> Result<Issued, CaError> {
        self.issue(&Subject {
            common_name: auth::KUBELET_CLIENT_USER,
            organizations: vec![auth::MASTERS_GROUP.into()],
            dns_names: vec![],
            ip_addresses: vec![],
            server: false,
            client: true,
        })
    }

    /// The API's serving certificate: the names in-cluster clients use
    /// (`kubernetes`, `kubernetes.default.svc.cluster.local`, ...),
    /// `localhost`, 127.0.0.1, the `kubernetes` Service's ClusterIP and
    /// `listen_ip` when it is a specific address.
    pub fn issue_serving(&self, listen_ip: std::net::IpAddr) -> Result<Issued, CaError> {
        let mut ips: Vec<std::net::IpAddr> = vec![
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv4Addr::new(10, 96, 0, 1).into(),
        ];
        if !listen_ip.is_unspecified() && !ips.contains(&listen_ip) {
            ips.push(listen_ip);
        }
        self.issue(&Subject {
            common_name: "kube-apiserver",
            organizations: vec![],
            dns_names: [
                auth::API_SERVER_NAME,
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ]
            .map(String::from)
            .to_vec(),
            ip_addresses: ips,
            server: true,
            client: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_survives_reload_and_issues() {
        let dir = tempfile::tempdir().unwrap();
        let a = ClusterCa::load_or_create(dir.path()).unwrap();
        let b = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        let issued = b.issue_node("node-1").unwrap();
        assert!(issued.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(issued.key_pem.contains("PRIVATE KEY"));
    }
}
