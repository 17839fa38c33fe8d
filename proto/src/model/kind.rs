//! The kinds podnet serves and how their objects are keyed.

use std::fmt;
use std::str::FromStr;

/// A kind of object podnet stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Deployment,
    ReplicaSet,
    Service,
    EndpointSlice,
    Endpoints,
    Ingress,
    IngressClass,
    /// networking.k8s.io/v1 NetworkPolicy, enforced by the nodes.
    NetworkPolicy,
    /// Only `kubernetes.io/tls` Secrets are used (by the ingress controller).
    Secret,
    /// What controllers report about objects (core/v1 Event).
    Event,
    /// podnet's own: emulated conditions of one directed node-to-node link.
    Link,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown kind {given:?}: podnet serves {known}")]
pub struct UnknownKind {
    pub given: String,
    pub known: String,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Endpoints,
        Kind::Ingress,
        Kind::IngressClass,
        Kind::NetworkPolicy,
        Kind::Secret,
        Kind::Event,
        Kind::Link,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Secret => "Secret",
            Kind::Event => "Event",
            Kind::Link => "Link",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace
            | Kind::Node
            | Kind::Pod
            | Kind::Service
            | Kind::Endpoints
            | Kind::Secret
            | Kind::Event => "v1",
            Kind::Ingress | Kind::IngressClass | Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::Deployment | Kind::ReplicaSet => "apps/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Link => super::LINK_API_VERSION,
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::Service
                | Kind::EndpointSlice
                | Kind::Endpoints
                | Kind::Ingress
                | Kind::NetworkPolicy
                | Kind::Secret
                | Kind::Event
        )
    }

    /// The lowercase plural, as in `kubectl get pods`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Endpoints => "endpoints",
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::Secret => "secrets",
            Kind::Event => "events",
            Kind::Link => "links",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns", "namespace"],
            Kind::Node => &["no", "node"],
            Kind::Pod => &["po", "pod"],
            Kind::Deployment => &["deploy", "deployment"],
            Kind::ReplicaSet => &["rs", "replicaset"],
            Kind::Service => &["svc", "service"],
            Kind::EndpointSlice => &["endpointslice"],
            Kind::Endpoints => &["ep"],
            Kind::Ingress => &["ing", "ingress"],
            Kind::IngressClass => &["ingressclass"],
            Kind::NetworkPolicy => &["netpol", "networkpolicy"],
            Kind::Secret => &["secret"],
            Kind::Event => &["ev", "event"],
            Kind::Link => &["link"],
        }
    }

    /// Kind from an object's `apiVersion` and `kind`.
    pub fn from_type(api_version: &str, kind: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
            .ok_or_else(|| UnknownKind {
                given: format!("{api_version}/{kind}"),
                known: Kind::known_types(),
            })
    }

    fn known_types() -> String {
        Kind::ALL
            .iter()
            .map(|k| format!("{}/{}", k.api_version(), k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the kind (`Pod`), its plural (`pods`) and kubectl's short
    /// names (`po`, `deploy`, `rs`, `no`, `ns`), case-insensitively.
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        let lower = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| k.plural() == lower || k.aliases().contains(&lower.as_str()))
            .ok_or_else(|| UnknownKind {
                given: s.to_string(),
                known: Kind::ALL
                    .iter()
                    .map(|k| k.plural())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Where one object lives: kind, namespace (empty for cluster-scoped kinds)
/// and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if kind.namespaced() { namespace } else { "" };
        ObjectKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The key in the store: `Kind/namespace/name`. Listing a kind or a
    /// namespace of a kind is a prefix scan.
    pub fn storage_key(&self) -> String {
        format!("{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
    }

    /// Prefix of every key of `kind` (in `namespace` if non-empty).
    pub fn prefix(kind: Kind, namespace: &str) -> String {
        if namespace.is_empty() || !kind.namespaced() {
            format!("{}/", kind.as_str())
        } else {
            format!("{}/{}/", kind.as_str(), namespace)
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.plural(), self.name)
        } else {
            write!(
                f,
                "{}/{} in namespace {}",
                self.kind.plural(),
                self.name,
                self.namespace
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_names() {
        for (given, kind) in [
            ("po", Kind::Pod),
            ("Pods", Kind::Pod),
            ("deploy", Kind::Deployment),
            ("rs", Kind::ReplicaSet),
            ("no", Kind::Node),
            ("namespaces", Kind::Namespace),
            ("links", Kind::Link),
            ("svc", Kind::Service),
            ("ep", Kind::Endpoints),
            ("endpoints", Kind::Endpoints),
            ("endpointslices", Kind::EndpointSlice),
            ("ing", Kind::Ingress),
            ("ingressclasses", Kind::IngressClass),
            ("netpol", Kind::NetworkPolicy),
            ("networkpolicy", Kind::NetworkPolicy),
            ("NetworkPolicies", Kind::NetworkPolicy),
            ("secrets", Kind::Secret),
        ] {
            assert_eq!(given.parse::<Kind>().unwrap(), kind, "{given}");
        }
        assert_eq!(
            Kind::from_type("networking.k8s.io/v1", "NetworkPolicy").unwrap(),
            Kind::NetworkPolicy
        );
        assert!(Kind::NetworkPolicy.namespaced());
        let err = "svcx".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("pods"), "{err}");
    }

    #[test]
    fn cluster_scoped_keys_drop_the_namespace() {
        assert_eq!(
            ObjectKey::new(Kind::Node, "default", "n1").storage_key(),
            "Node//n1"
        );
        assert_eq!(
            ObjectKey::new(Kind::Pod, "default", "p").storage_key(),
            "Pod/default/p"
        );
        assert_eq!(ObjectKey::prefix(Kind::Pod, ""), "Pod/");
        assert_eq!(ObjectKey::prefix(Kind::Pod, "a"), "Pod/a/");
    }
}
