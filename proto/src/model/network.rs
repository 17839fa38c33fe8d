//! The cluster's address plan defaults, shared by the control plane (which
//! allocates from them) and the nodes (which route and resolve with them).

use std::net::{IpAddr, Ipv4Addr};

/// Pod network: each node gets a /24 of it.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Service ClusterIPs.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// The IPv6 pod network (kind's default podSubnet): each node gets a /64.
pub const DEFAULT_CLUSTER_CIDR_V6: &str = "fd00:10:244::/56";
/// The prefix length of each node's IPv6 podCIDR, as
/// kube-controller-manager's `--node-cidr-mask-size-ipv6`.
pub const DEFAULT_NODE_CIDR_MASK_SIZE_V6: u8 = 64;
/// The node network's IPv6 prefix on a cluster with IPv6 (the ULA prefix
/// Docker gives kind's network): each node gets an InternalIP of it beside
/// its IPv4 one, `::1` being the host's, as on the IPv4 network.
pub const DEFAULT_NODE_CIDR_V6: ipnet::Ipv6Net = ipnet::Ipv6Net::new_assert(
    std::net::Ipv6Addr::new(0xfc00, 0xf853, 0x0ccd, 0xe793, 0, 0, 0, 0),
    64,
);
/// IPv6 Service ClusterIPs (kind's default serviceSubnet).
pub const DEFAULT_SERVICE_CIDR_V6: &str = "fd00:10:96::/112";
/// The `kubernetes` Service in `default`: the first address of the range.
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The `kube-dns` Service in `kube-system`, where pods' resolv.conf points.
pub const KUBE_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// `kube-dns`'s ClusterIP on an IPv6 single-stack cluster: the tenth
/// address of [`DEFAULT_SERVICE_CIDR_V6`], as kind's.
pub const KUBE_DNS_IP6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0xa);

/// The `n`th address of `net` (its network address being the 0th), as
/// the API server counts the well-known ClusterIPs; `None` past its end.
pub fn nth_address(net: ipnet::IpNet, n: u128) -> Option<IpAddr> {
    let ip = match net.network() {
        IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(
            u32::from(ip).checked_add(u32::try_from(n).ok()?)?,
        )),
        IpAddr::V6(ip) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(ip).checked_add(n)?)),
    };
    net.contains(&ip).then_some(ip)
}

/// The cluster DNS's ClusterIP on a cluster whose primary Service range
/// is `range`: its tenth address (kubeadm's and kind's `clusterDNS`).
pub fn cluster_dns_ip(range: ipnet::IpNet) -> Option<IpAddr> {
    nth_address(range, 10)
}
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

/// An address family, as Kubernetes spells it in `ipFamilies` and an
/// EndpointSlice's `addressType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4, also what an object without a family field means.
    #[default]
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `IPv4` or `IPv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    /// The family `IPv4` or `IPv6` names.
    pub fn parse(text: &str) -> Option<IpFamily> {
        match text {
            "IPv4" => Some(IpFamily::V4),
            "IPv6" => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// The other family.
    pub fn other(self) -> IpFamily {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cluster's IP families (`--ip-family`, kind's `networking.ipFamily`):
/// IPv4 only, IPv6 only, or dual-stack with IPv4 primary (the family of
/// `clusterIP`, `podIP` and every single-stack Service), as kind's `dual`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ClusterFamilies {
    #[default]
    Ipv4,
    Ipv6,
    Dual,
}

impl ClusterFamilies {
    /// Every family, the primary first.
    pub fn families(self) -> &'static [IpFamily] {
        match self {
            ClusterFamilies::Ipv4 => &[IpFamily::V4],
            ClusterFamilies::Ipv6 => &[IpFamily::V6],
            ClusterFamilies::Dual => &[IpFamily::V4, IpFamily::V6],
        }
    }

    /// The primary family.
    pub fn primary(self) -> IpFamily {
        self.families()[0]
    }

    pub fn has(self, family: IpFamily) -> bool {
        self.families().contains(&family)
    }

    pub fn is_dual(self) -> bool {
        self == ClusterFamilies::Dual
    }

    /// The flag's word: `ipv4`, `ipv6` or `dual`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterFamilies::Ipv4 => "ipv4",
            ClusterFamilies::Ipv6 => "ipv6",
            ClusterFamilies::Dual => "dual",
        }
    }
}

impl std::str::FromStr for ClusterFamilies {
    type Err = String;

    fn from_str(s: &str) -> Result<ClusterFamilies, String> {
        match s {
            "ipv4" => Ok(ClusterFamilies::Ipv4),
            "ipv6" => Ok(ClusterFamilies::Ipv6),
            "dual" => Ok(ClusterFamilies::Dual),
            _ => Err(format!("expected ipv4, ipv6 or dual, got {s:?}")),
        }
    }
}

impl std::fmt::Display for ClusterFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_networks() {
        for cidr in [
            DEFAULT_CLUSTER_CIDR,
            DEFAULT_CLUSTER_CIDR_V6,
            DEFAULT_SERVICE_CIDR,
            DEFAULT_SERVICE_CIDR_V6,
        ] {
            let net: ipnet::IpNet = cidr.parse().unwrap();
            assert_eq!(net.trunc(), net, "{cidr}");
        }
    }

    #[test]
    fn cluster_families_name_their_primary_first() {
        for (word, families) in [
            ("ipv4", &[IpFamily::V4][..]),
            ("ipv6", &[IpFamily::V6][..]),
            ("dual", &[IpFamily::V4, IpFamily::V6][..]),
        ] {
            let parsed: ClusterFamilies = word.parse().unwrap();
            assert_eq!(parsed.families(), families);
            assert_eq!(parsed.to_string(), word);
        }
        assert!("IPv4".parse::<ClusterFamilies>().is_err());
    }
}
