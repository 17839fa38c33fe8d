//! The cluster CA: made once per state directory and kept there, so node
//! certificates issued before a control plane restart stay valid after it.
//!
//! It issues node certificates whose subject alternative name is the node
//! name; the overlay checks a peer's name against the podCIDR it sends from.
//! It does not revoke: a node that leaves keeps a valid certificate until the
//! cluster is torn down.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
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

impl ClusterCa {
    /// Loads the CA from `dir/ca.key` and `dir/ca.crt`, creating them on
    /// first use.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, CaError> {
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        if key_path.exists() && cert_path.exists() {
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
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::write(&key_path, ca.issuer.key().serialize_pem()).map_err(io(&key_path))?;
        std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
        Ok(ca)
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

    /// A certificate for a node: its name as DNS SAN and common name, usable
    /// as both TLS server and client (the overlay is mutual TLS).
    pub fn issue_node(&self, node_name: &str) -> Result<Issued, CaError> {
        let issue = |source| CaError::Issue {
            subject: node_name.to_string(),
            source,
        };
        let mut params = CertificateParams::new(vec![node_name.to_string()]).map_err(issue)?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(issue)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
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
