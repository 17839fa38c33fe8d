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
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// NodePort range, inclusive.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Label of the DNS pods and selector of the kube-dns Service.
pub const DNS_APP_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
