//! The facts a verdict is made from: pods, their namespaces and nodes, and
//! the flow being judged. Plain data the caller fills in from what its
//! informer sees; nothing here reads the API.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

pub use podnet_proto::model::view::Protocol;

/// The label the API server puts on every namespace (immutable, equal to the
/// name), so a `namespaceSelector` can pick a namespace by name.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// A NetworkPolicy by `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
}

impl PolicyRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> PolicyRef {
        PolicyRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A pod by `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> PodKey {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One `containers[].ports[]` entry: what a named port in a policy resolves
/// against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// What policy evaluation needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: PodKey,
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs`: one per family.
    pub ips: Vec<IpAddr>,
    /// Every container's ports, in order.
    pub ports: Vec<ContainerPort>,
    /// `spec.nodeName`: whose node IPs count as "the pod's own node".
    pub node: String,
}

impl PodInfo {
    /// The container port named `name` for `protocol`, as upstream resolves
    /// a named port in a policy (by name and protocol).
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A pod as the index held it when the flow was judged (shared, so an
    /// endpoint costs no copy), and the address of it this flow uses (a
    /// dual-stack pod has two; `ipBlock` peers match the one in use).
    Pod { pod: Arc<PodInfo>, ip: IpAddr },
    /// Anything that is not a pod: a node IP, the host (172.18.0.1), an
    /// outside host.
    External(IpAddr),
}

impl Endpoint {
    pub fn ip(&self) -> IpAddr {
        match self {
            Endpoint::Pod { ip, .. } | Endpoint::External(ip) => *ip,
        }
    }

    pub fn pod(&self) -> Option<&PodInfo> {
        match self {
            Endpoint::Pod { pod, .. } => Some(pod),
            Endpoint::External(_) => None,
        }
    }

    pub fn pod_key(&self) -> Option<&PodKey> {
        self.pod().map(|p| &p.key)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Pod { pod, ip } => write!(f, "{} ({ip})", pod.key),
            Endpoint::External(ip) => write!(f, "{ip}"),
        }
    }
}

/// A new connection (or the first datagram of a UDP/SCTP flow) as the
/// datapath sees it after the service proxy's DNAT: `dst` is the backend
/// actually reached, `dst_port` its port (a Service's targetPort, not the
/// Service port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub protocol: Protocol,
    pub dst_port: u16,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {}/{}",
            self.src,
            self.dst,
            self.protocol.as_str(),
            self.dst_port
        )
    }
}

/// Which side of a flow a policy rule speaks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The API's spelling in `policyTypes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    fn lowercase(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lowercase())
    }
}
