//! The cluster's address plan defaults, shared by the control plane (which
//! allocates from them) and the nodes (which route and resolve with them).

use std::net::Ipv4Addr;

/// Pod network: each node gets a /24 of it.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Service ClusterIPs.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// The `kubernetes` Service in `default`: the first address of the range.
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The `kube-dns` Service in `kube-system`, where pods' resolv.conf points.
pub const KUBE_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The outside world's recursive resolver, where an emulated node's
/// resolv.conf points (as a kind node's points at its Docker network's
/// resolver): each node serves it in its own process, from the names of
/// `podnet up --external`. An address of TEST-NET-1 (RFC 5737), outside
/// every cluster range.
pub const OUTSIDE_DNS_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// NodePort range, inclusive.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Label of the DNS pods and selector of the kube-dns Service.
pub const DNS_APP_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// The name in the edge load balancer's overlay certificate. No node may
/// take it.
pub const EDGE_NAME: &str = "podnet-edge";
/// kube-proxy's health port on every node: `/healthz` answers 200 while the
/// node's service proxy is programmed (the check cloud load balancers use
/// for Services with `externalTrafficPolicy: Cluster`).
pub const PROXY_HEALTHZ_PORT: u16 = 10256;
/// The default pool the edge hands LoadBalancer addresses out of, the way
/// MetalLB hands them out of an IPAddressPool.
pub const DEFAULT_LB_POOL: &str = "127.0.1.0/24";
