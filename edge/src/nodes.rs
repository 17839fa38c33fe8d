//! The nodes the edge can send to, as their Node objects describe them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use podnet_proto::informer::Cache;
use podnet_proto::model::network::IpFamily;
use podnet_proto::model::view::NodeView;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The node's InternalIP: NodePorts and health ports answer there.
    pub ip: Ipv4Addr,
    /// Its IPv6 InternalIP, on a cluster with IPv6.
    pub ip6: Option<Ipv6Addr>,
    /// The real UDP address of its overlay endpoint.
    pub underlay: SocketAddr,
    pub ready: bool,
}

/// Nodes with an InternalIP and an overlay address, by name. Nodes
/// without either cannot receive traffic and are left out.
pub fn nodes_of(cache: &Cache) -> Vec<NodeInfo> {
    cache.values().filter_map(node_of).collect()
}

impl NodeInfo {
    /// The node's InternalIP of `family` (its IPv4 one when it has none
    /// of that family).
    pub fn address(&self, family: IpFamily) -> IpAddr {
        match (family, self.ip6) {
            (IpFamily::V6, Some(ip6)) => IpAddr::V6(ip6),
            _ => IpAddr::V4(self.ip),
        }
    }
}

fn node_of(n: &Value) -> Option<NodeInfo> {
    let node = NodeView(n);
    Some(NodeInfo {
        name: node.meta().name().to_string(),
        ip: node.internal_ip()?,
        ip6: node.internal_addresses().find_map(|ip| match ip {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        }),
        underlay: node.underlay()?,
        ready: node.ready(),
    })
}
