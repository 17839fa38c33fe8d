//! The nodes the edge can send to, as their Node objects describe them.

use std::net::{Ipv4Addr, SocketAddr};

use podnet_proto::informer::Cache;
use podnet_proto::model::{ANNOTATION_UNDERLAY, condition_is_true, str_at};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The node's InternalIP: NodePorts and health ports answer there.
    pub ip: Ipv4Addr,
    /// The real UDP address of its overlay endpoint.
    pub underlay: SocketAddr,
    pub ready: bool,
}

/// Nodes with an InternalIP and an overlay address, by name. Nodes
/// without either cannot receive traffic and are left out.
pub fn nodes_of(cache: &Cache) -> Vec<NodeInfo> {
    cache.values().filter_map(node_of).collect()
}

fn node_of(n: &Value) -> Option<NodeInfo> {
    let underlay = n
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_UNDERLAY))
        .and_then(Value::as_str)?
        .parse()
        .ok()?;
    let ip = n
        .pointer("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| str_at(a, "/type") == "InternalIP")
        .and_then(|a| str_at(a, "/address").parse().ok())?;
    Some(NodeInfo {
        name: str_at(n, "/metadata/name").to_string(),
        ip,
        underlay,
        ready: condition_is_true(n, "Ready"),
    })
}
