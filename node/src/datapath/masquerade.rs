//! Egress masquerade, pure: which flows leaving a pod get the node's IP
//! as their source, and the UDP translations that bring replies back.
//!
//! As ip-masq-agent (and kindnet, which runs it in every kind cluster)
//! does, a flow from a pod to a destination that is not the cluster's own
//! is masqueraded to the node's IP; the cluster's own are every pod
//! network (this node's podCIDR and every routed one), the Service range,
//! the nodes' IPs and the host's address on the node network. The decision
//! is taken on the destination after the service proxy, so a ClusterIP
//! flow to a pod keeps the client's IP (the backend sees it) while one
//! whose endpoint is outside is masqueraded, as iptables' POSTROUTING
//! sees the translated packet.
//!
//! TCP needs no table: the stream is the translation. UDP gets one
//! ([`EgressTable`]): a client's datagrams to one destination keep one
//! masquerade port while the flow is in use (conntrack's UDP timeout), so
//! the outside sees one peer per flow, and a reply to that port from that
//! destination goes back to the client, from the address it asked.
//!
//! IPv4 only: the outside hosts have IPv4 addresses and the node's IP is
//! an IPv4 one, so a pod's IPv6 flow is never masqueraded.
//!
//! Deliberately not here: the NodePort masquerade (the proxy's, with its
//! own table in the datapath), ICMP (echoes to an outside namespace are
//! answered by the node itself) and sockets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::Route;

/// Masquerade ports of UDP egress: clear of the NodePort masquerade's
/// (20000-29999), the NodePorts and the ephemeral range the node's own
/// sockets use.
pub(crate) const EGRESS_PORTS: RangeInclusive<u16> = 10000..=19999;

/// What the cluster's own addresses are, as the node knows them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Internal<'a> {
    pub pod_cidr: Option<Ipv4Net>,
    pub service_cidr: Option<Ipv4Net>,
    pub node_ip: Ipv4Addr,
    pub host_ip: Option<Ipv4Addr>,
    /// The other nodes' podCIDRs and IPs.
    pub routes: &'a [Route],
}

impl Internal<'_> {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.pod_cidr.is_some_and(|c| c.contains(&ip))
            || self.service_cidr.is_some_and(|c| c.contains(&ip))
            || ip == self.node_ip
            || Some(ip) == self.host_ip
            || self.routes.iter().any(|r| r.cidr.contains(&IpAddr::V4(ip)))
    }
}

/// Does a flow from `src` to `dst` (after the service proxy) leave with
/// the node's IP as its source? Only a pod's IPv4 flow (its source in this
/// node's podCIDR) to an address that is not the cluster's own.
pub(crate) fn masquerades(src: IpAddr, dst: IpAddr, internal: &Internal<'_>) -> bool {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            internal.pod_cidr.is_some_and(|c| c.contains(&src)) && !internal.contains(dst)
        }
        _ => false,
    }
}

/// One masqueraded UDP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    port: u16,
    /// Where the client sent (a ClusterIP:port when the proxy translated
    /// it): the source its replies must come from.
    asked: SocketAddr,
    last: Instant,
}

/// The UDP egress translations of one node.
#[derive(Debug)]
pub(crate) struct EgressTable {
    idle: Duration,
    limit: usize,
    /// (client, destination) → its flow.
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    /// (masquerade port, destination) → the client.
    ports: HashMap<(u16, SocketAddr), SocketAddr>,
    next: u16,
}

impl EgressTable {
    /// A table whose flows expire after `idle` without a datagram, holding
    /// at most `limit` of them.
    pub(crate) fn new(idle: Duration, limit: usize) -> EgressTable {
        EgressTable {
            idle,
            limit,
            flows: HashMap::new(),
            ports: HashMap::new(),
            next: *EGRESS_PORTS.start(),
        }
    }

    fn live(&self, flow: &Flow, now: Instant) -> bool {
        now.saturating_duration_since(flow.last) < self.idle
    }

    /// The masquerade port of a datagram from `client` to `dst` (which it
    /// sent to `asked`), the flow's own while it lives, else a new one.
    /// `None` when every port toward `dst` is taken by a live flow or the
    /// table is full of them: the datagram is dropped, as with conntrack
    /// full.
    pub(crate) fn outbound(
        &mut self,
        client: SocketAddr,
        dst: SocketAddr,
        asked: SocketAddr,
        now: Instant,
    ) -> Option<u16> {
        if let Some(flow) = self.flows.get(&(client, dst)).copied()
            && self.live(&flow, now)
        {
            self.flows.insert(
                (client, dst),
                Flow {
                    asked,
                    last: now,
                    ..flow
                },
            );
            return Some(flow.port);
        }
        self.forget(client, dst);
        if self.flows.len() >= self.limit {
            self.prune(now);
            if self.flows.len() >= self.limit {
                return None;
            }
        }
        let span = u32::from(EGRESS_PORTS.end() - EGRESS_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if port == *EGRESS_PORTS.end() {
                *EGRESS_PORTS.start()
            } else {
                port + 1
            };
            let taken = match self.ports.get(&(port, dst)) {
                Some(other) => match self.flows.get(&(*other, dst)).copied() {
                    Some(flow) if self.live(&flow, now) => true,
                    _ => {
                        let other = *other;
                        self.forget(other, dst);
                        false
                    }
                },
                None => false,
            };
            if !taken {
                self.flows.insert(
                    (client, dst),
                    Flow {
                        port,
                        asked,
                        last: now,
                    },
                );
                self.ports.insert((port, dst), client);
                return Some(port);
            }
        }
        None
    }

    /// The client of a reply from `from` to masquerade port `port`, and the
    /// address the reply must come from; `None` for no live flow.
    pub(crate) fn inbound(
        &mut self,
        port: u16,
        from: SocketAddr,
        now: Instant,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let client = *self.ports.get(&(port, from))?;
        let idle = self.idle;
        let flow = self.flows.get_mut(&(client, from))?;
        if flow.port != port || now.saturating_duration_since(flow.last) >= idle {
            return None;
        }
        flow.last = now;
        Some((client, flow.asked))
    }

    fn forget(&mut self, client: SocketAddr, dst: SocketAddr) {
        if let Some(flow) = self.flows.remove(&(client, dst))
            && self.ports.get(&(flow.port, dst)) == Some(&client)
        {
            self.ports.remove(&(flow.port, dst));
        }
    }

    fn prune(&mut self, now: Instant) {
        let idle = self.idle;
        self.flows
            .retain(|_, f| now.saturating_duration_since(f.last) < idle);
        let flows = &self.flows;
        self.ports.retain(|(port, dst), client| {
            flows.get(&(*client, *dst)).is_some_and(|f| f.port == *port)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_pod_flows_to_outside_the_cluster_are_masqueraded() {
        let routes = [
            Route {
                cidr: net("10.244.2.0/24").into(),
                node: "node-2".into(),
                underlay: "127.0.0.1:1".parse().unwrap(),
            },
            Route {
                cidr: net("172.18.0.3/32").into(),
                node: "node-2".into(),
                underlay: "127.0.0.1:1".parse().unwrap(),
            },
        ];
        let internal = Internal {
            pod_cidr: Some(net("10.244.1.0/24")),
            service_cidr: Some(net("10.96.0.0/12")),
            node_ip: ip4("172.18.0.2"),
            host_ip: Some(ip4("172.18.0.1")),
            routes: &routes,
        };
        // (source, destination after the proxy, masqueraded)
        let check = |src: &str, dst: &str, expected: bool| {
            assert_eq!(
                masquerades(ip(src), ip(dst), &internal),
                expected,
                "{src} → {dst}"
            );
        };
        check("10.244.1.5", "203.0.113.10", true);
        check("10.244.1.5", "192.0.2.53", true);
        check("10.244.1.5", "8.8.8.8", true);
        // Pod to pod, here and on another node: the backend sees the pod.
        check("10.244.1.5", "10.244.1.6", false);
        check("10.244.1.5", "10.244.2.7", false);
        // A ClusterIP the proxy did not translate, the nodes, the host.
        check("10.244.1.5", "10.96.0.10", false);
        check("10.244.1.5", "172.18.0.2", false);
        check("10.244.1.5", "172.18.0.3", false);
        check("10.244.1.5", "172.18.0.1", false);
        // Not a pod of this node: the node itself, another node's pod,
        // the outside answering.
        check("172.18.0.2", "203.0.113.10", false);
        check("10.244.2.7", "203.0.113.10", false);
        check("203.0.113.10", "10.244.1.5", false);
        // IPv6: never.
        check("fd00:10:244:1::5", "2001:db8::10", false);
    }

    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn a_udp_flow_keeps_its_port_and_its_replies_find_the_client() {
        let now = Instant::now();
        let mut t = EgressTable::new(IDLE, 100);
        let (client, outside) = (sa("10.244.1.5:40000"), sa("203.0.113.10:9000"));
        let port = t.outbound(client, outside, outside, now).unwrap();
        assert!(EGRESS_PORTS.contains(&port));
        assert_eq!(
            t.outbound(client, outside, outside, now + Duration::from_secs(29)),
            Some(port),
            "same flow, same port"
        );
        assert_eq!(
            t.inbound(port, outside, now + Duration::from_secs(58)),
            Some((client, outside)),
            "a reply finds the client"
        );
        // Another destination or a stranger's reply finds nothing.
        assert_eq!(t.inbound(port, sa("203.0.113.11:9000"), now), None);
        assert_eq!(t.inbound(port, sa("203.0.113.10:9001"), now), None);
        assert_eq!(t.inbound(port + 1, outside, now), None);
        // Another client toward the same destination gets another port.
        let other = sa("10.244.1.6:40000");
        let port2 = t.outbound(other, outside, outside, now).unwrap();
        assert_ne!(port, port2);
        assert_eq!(t.inbound(port2, outside, now), Some((other, outside)));
        // Idle past the timeout: gone.
        let later = now + Duration::from_secs(58) + IDLE;
        assert_eq!(t.inbound(port, outside, later), None);
    }

    #[test]
    fn replies_come_from_the_address_the_client_asked() {
        let now = Instant::now();
        let mut t = EgressTable::new(IDLE, 100);
        let (client, endpoint, cluster_ip) = (
            sa("10.244.1.5:40000"),
            sa("203.0.113.10:9000"),
            sa("10.96.0.20:53"),
        );
        let port = t.outbound(client, endpoint, cluster_ip, now).unwrap();
        assert_eq!(t.inbound(port, endpoint, now), Some((client, cluster_ip)));
    }

    #[test]
    fn ports_of_expired_flows_are_reused_and_a_full_table_refuses() {
        let now = Instant::now();
        let mut t = EgressTable::new(IDLE, 2);
        let outside = sa("203.0.113.10:9000");
        let a = t
            .outbound(sa("10.244.1.5:1"), outside, outside, now)
            .unwrap();
        t.outbound(sa("10.244.1.5:2"), outside, outside, now)
            .unwrap();
        assert_eq!(
            t.outbound(sa("10.244.1.5:3"), outside, outside, now),
            None,
            "full of live flows"
        );
        let later = now + IDLE;
        let c = t
            .outbound(sa("10.244.1.5:3"), outside, outside, later)
            .unwrap();
        assert_eq!(t.len(), 1, "the expired flows were pruned");
        assert_eq!(t.inbound(a, outside, later), None);
        assert_eq!(
            t.inbound(c, outside, later),
            Some((sa("10.244.1.5:3"), outside))
        );
    }

    #[test]
    fn every_port_toward_one_destination_taken_refuses_the_next() {
        let now = Instant::now();
        let span = usize::from(EGRESS_PORTS.end() - EGRESS_PORTS.start()) + 1;
        let mut t = EgressTable::new(IDLE, span + 10);
        let outside = sa("203.0.113.10:9000");
        for i in 0..span {
            let client = SocketAddr::new(ip("10.244.1.5"), u16::try_from(i).unwrap() + 1);
            assert!(t.outbound(client, outside, outside, now).is_some(), "{i}");
        }
        let client = sa("10.244.1.6:1");
        assert_eq!(t.outbound(client, outside, outside, now), None);
        // Toward another destination the ports are free.
        let elsewhere = sa("203.0.113.11:9000");
        assert!(t.outbound(client, elsewhere, elsewhere, now).is_some());
    }
}
