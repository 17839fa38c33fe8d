//! The nodes the edge can send to, as their Node objects describe them.

use std::net::{Ipv4Addr, SocketAddr};

use podnet_proto::informer::Cache;
use podnet_proto::model::view::NodeView;
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
    let node = NodeView(n);
    Some(NodeInfo {
        name: node.meta().name().to_string(),
        ip: node.internal_ip()?,
        underlay: node.underlay()?,
        ready: node.ready(),
    })
}
