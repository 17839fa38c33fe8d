//! Shared by the tests: policies from YAML, and a small cluster of pods,
//! namespaces and nodes to judge flows in.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::{ContainerPort, Endpoint, Flow, Index, PodInfo, PodKey, Policy, Protocol, compile};

/// A NetworkPolicy from YAML, as `kubectl apply` would read it.
pub(crate) fn np(yaml: &str) -> NetworkPolicy {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"))
}

/// A policy from YAML that must compile.
pub(crate) fn compiled(yaml: &str) -> Policy {
    compile(&np(yaml)).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `"name:port/PROTO"` or `"port/PROTO"` or `"port"` (TCP).
pub(crate) fn container_port(spec: &str) -> ContainerPort {
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (Some(n.to_string()), r),
        None => (None, spec),
    };
    let (port, protocol) = match rest.split_once('/') {
        Some((p, proto)) => (p, protocol(proto)),
        None => (rest, Protocol::Tcp),
    };
    ContainerPort {
        name,
        port: port.parse().unwrap_or_else(|e| panic!("{spec}: {e}")),
        protocol,
    }
}

pub(crate) fn protocol(s: &str) -> Protocol {
    Protocol::parse(s).unwrap_or_else(|| panic!("protocol {s}"))
}

/// `"k=v,k2=v2"` as labels.
pub(crate) fn label_map(s: &str) -> std::collections::BTreeMap<String, String> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub(crate) fn pod(key: &str, labels: &str, ip_addr: &str, node: &str, ports: &[&str]) -> PodInfo {
    let (namespace, name) = key.split_once('/').unwrap_or_else(|| panic!("pod {key}"));
    PodInfo {
        key: PodKey::new(namespace, name),
        labels: label_map(labels),
        ips: vec![ip(ip_addr)],
        ports: ports.iter().map(|p| container_port(p)).collect(),
        node: node.to_string(),
    }
}

/// `"ns/name"` is a pod (at its first address), anything else an address.
pub(crate) fn endpoint(index: &Index, s: &str) -> Endpoint {
    match s.split_once('/') {
        Some((ns, name)) => index
            .pod_endpoint(&PodKey::new(ns, name))
            .unwrap_or_else(|| panic!("no pod {s}")),
        None => index.endpoint(ip(s)),
    }
}

/// A flow from `src` to `dst` on `"PROTO/port"`.
pub(crate) fn flow(index: &Index, src: &str, dst: &str, on: &str) -> Flow {
    let (proto, port) = on.split_once('/').unwrap_or_else(|| panic!("{on}"));
    Flow {
        src: endpoint(index, src),
        dst: endpoint(index, dst),
        protocol: protocol(proto),
        dst_port: port.parse().unwrap_or_else(|e| panic!("{on}: {e}")),
    }
}

/// A policy's YAML from `"namespace/name"` and its spec (flow style is
/// handy: `"podSelector: {}\npolicyTypes: [Ingress]"`).
pub(crate) fn policy_yaml(key: &str, spec: &str) -> String {
    let (namespace, name) = key
        .split_once('/')
        .unwrap_or_else(|| panic!("policy {key}"));
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

/// A verdict in a few characters, for tables: `open`, `-` (not a pod),
/// `self`, `node`, `allow(ns/p,..)`, `deny(ns/p,..)`.
pub(crate) fn short(v: &crate::Verdict) -> String {
    use crate::Verdict::*;
    let refs = |l: &[std::sync::Arc<crate::PolicyRef>]| {
        l.iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    match v {
        Allowed { by } => format!("allow({})", refs(by)),
        NotIsolated { .. } => "open".into(),
        NotAPod { .. } => "-".into(),
        SamePod => "self".into(),
        LocalNode { .. } => "node".into(),
        Denied { isolating, .. } => format!("deny({})", refs(isolating)),
    }
}
