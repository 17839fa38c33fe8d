//! Two nodes with real datapaths and one pod each, for tests and benchmarks
//! that need pod traffic to cross the QUIC overlay on loopback without a
//! control plane: [`PodPair::start`] with two node identities.
//!
//! Deliberately not here: certificates (the caller brings identities from
//! whichever CA it has), an agent, a pod runtime, Services or an edge.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use podnet_overlay::NodeIdentity;
use podnet_pod::netns::{NetNs, PodInfo};
use tokio_util::sync::CancellationToken;

use crate::datapath::{Datapath, DatapathConfig, Route};

/// node-a's podCIDR. (A constant: a bad prefix would fail the build, not a
/// run.)
const CIDR_A: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 24);
/// node-b's podCIDR.
const CIDR_B: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 1, 0), 24);
/// node-a's IPv6 podCIDR.
const CIDR6_A: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 0), 64);
/// node-b's IPv6 podCIDR.
const CIDR6_B: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 0), 64);

/// node-a (172.18.0.2) with pod `a` (10.244.0.2, fd00:10:244::2) and
/// node-b (172.18.0.3) with pod `b` (10.244.1.2, fd00:10:244:1::2), a
/// dual-stack pair each routing the other's podCIDRs over the overlay.
/// Dropping the pair stops both datapaths.
pub struct PodPair {
    pub a: Arc<NetNs>,
    pub b: Arc<NetNs>,
    pub dp_a: Arc<Datapath>,
    pub dp_b: Arc<Datapath>,
    /// The nodes' overlay endpoints (real UDP sockets on loopback).
    pub addr_a: SocketAddr,
    pub addr_b: SocketAddr,
    /// Stops both datapaths when cancelled.
    pub shutdown: CancellationToken,
}

impl PodPair {
    /// Starts node-a as `id_a` and node-b as `id_b` (certificates for
    /// `node-a` and `node-b` from one CA), with the cluster's default
    /// Service CIDR and proxy mode, and no edge.
    pub fn start(id_a: &NodeIdentity, id_b: &NodeIdentity) -> io::Result<PodPair> {
        let shutdown = CancellationToken::new();
        let sock_a = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let sock_b = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let (addr_a, addr_b) = (sock_a.local_addr()?, sock_b.local_addr()?);
        let service_cidr: Ipv4Net = podnet_proto::model::network::DEFAULT_SERVICE_CIDR
            .parse()
            .map_err(io::Error::other)?;
        let service_cidr_v6: Ipv6Net = podnet_proto::model::network::DEFAULT_SERVICE_CIDR_V6
            .parse()
            .map_err(io::Error::other)?;
        let config = |name: &str, ip: [u8; 4], pod_cidr, pod_cidr_v6| DatapathConfig {
            node_name: name.into(),
            node_ip: Ipv4Addr::from(ip),
            node_ip6: None,
            pod_cidr: Some(pod_cidr),
            pod_cidr_v6: Some(pod_cidr_v6),
            service_cidr: Some(service_cidr),
            service_cidr_v6: Some(service_cidr_v6),
            proxy_mode: Default::default(),
            host_ip: None,
            host_ip6: None,
        };
        let dp_a = Datapath::start(
            config("node-a", [172, 18, 0, 2], CIDR_A, CIDR6_A),
            id_a,
            sock_a,
            shutdown.child_token(),
        )?;
        let dp_b = Datapath::start(
            config("node-b", [172, 18, 0, 3], CIDR_B, CIDR6_B),
            id_b,
            sock_b,
            shutdown.child_token(),
        )?;
        let pod = |ip: Ipv4Addr, ip6: Ipv6Addr, name: &str, dp: &Arc<Datapath>| {
            let info = PodInfo {
                namespace: "default".into(),
                name: name.into(),
                node: dp.node_name().into(),
            };
            let resolver = podnet_pod::dns::ResolverConfig::cluster_first(&info.namespace);
            let ns = NetNs::with_resolver(
                podnet_pod::netns::PodIps::Dual(ip, ip6),
                info,
                resolver,
                Arc::<Datapath>::downgrade(dp),
            );
            dp.add_pod(ns.clone());
            ns
        };
        let a = pod(
            Ipv4Addr::new(10, 244, 0, 2),
            Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 2),
            "a",
            &dp_a,
        );
        let b = pod(
            Ipv4Addr::new(10, 244, 1, 2),
            Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 2),
            "b",
            &dp_b,
        );
        let pair = PodPair {
            a,
            b,
            dp_a,
            dp_b,
            addr_a,
            addr_b,
            shutdown,
        };
        let routes = pair.routes();
        pair.dp_a.set_routes(routes.clone());
        pair.dp_b.set_routes(routes);
        Ok(pair)
    }

    /// The routes both nodes start with: each podCIDR to its node.
    pub fn routes(&self) -> Vec<Route> {
        let route = |cidr: IpNet, node: &str, underlay| Route {
            cidr,
            node: node.into(),
            underlay,
        };
        vec![
            route(CIDR_A.into(), "node-a", self.addr_a),
            route(CIDR_B.into(), "node-b", self.addr_b),
            route(CIDR6_A.into(), "node-a", self.addr_a),
            route(CIDR6_B.into(), "node-b", self.addr_b),
        ]
    }
}

impl Drop for PodPair {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
