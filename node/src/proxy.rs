//! The service proxy (kube-proxy's job), as a pure core: a table built from
//! Services and EndpointSlices, and the choice of one endpoint for a new
//! flow to a ClusterIP:port or a NodePort.
//!
//! Semantics follow kube-proxy: only ready endpoints are used, falling back
//! to serving-but-terminating ones when none is ready; no endpoint at all
//! refuses the connection; `internalTrafficPolicy: Local` (ClusterIP traffic)
//! and `externalTrafficPolicy: Local` (NodePort traffic) use only this
//! node's endpoints and drop the flow when there is none; `sessionAffinity:
//! ClientIP` keeps a client on one endpoint until the timeout passes idle;
//! otherwise random (kube-proxy's default) or round robin.
//!
//! As kube-proxy runs one proxier per family, a dual-stack Service port
//! gets a rule per ClusterIP, each with the endpoints of the
//! EndpointSlices of that address type (an IPv6 ClusterIP never picks an
//! IPv4 endpoint), and its NodePort answers on the node's InternalIP of
//! that family with that family's endpoints.
//!
//! Rules are keyed by protocol: a Service port of `protocol: SCTP` has a
//! rule of its own (ClusterIP and NodePort) whose endpoints are the slices'
//! SCTP port of its name, and a TCP flow to the same number does not match
//! it.
//!
//! No sockets, no clock reads: `now` and the random source come in. The
//! datapath applies the decision (DNAT, and SNAT for NodePort with the
//! Cluster policy, as kube-proxy masquerades it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use podnet_proto::model::network::IpFamily;
use podnet_proto::model::str_at;
use podnet_proto::model::view::{EndpointSliceView, Protocol, ServiceView};
use serde_json::Value;

use podnet_pod::cluster::ClusterView;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub node: String,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// One port of one Service, with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name:port-name`, the key of affinity and counters.
    pub id: String,
    pub cluster_ip: Option<SocketAddr>,
    pub node_port: Option<u16>,
    pub proto: Protocol,
    /// `sessionAffinity: ClientIP` timeout.
    pub affinity: Option<Duration>,
    pub internal_local: bool,
    pub external_local: bool,
    pub endpoints: Vec<Endpoint>,
}

/// Where a new flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    To(SocketAddr),
    /// No endpoints: the client gets connection refused.
    Refuse,
    /// Local traffic policy without a local endpoint: silence.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Random,
    RoundRobin,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "random" => Ok(Mode::Random),
            "round-robin" | "roundrobin" => Ok(Mode::RoundRobin),
            _ => Err(format!("unknown proxy mode {s:?}: random or round-robin")),
        }
    }
}

/// The proxy table for one node.
#[derive(Debug, Default, Clone)]
pub struct ServiceTable {
    by_cluster_ip: HashMap<(SocketAddr, Protocol), usize>,
    by_node_port: HashMap<(u16, Protocol, IpFamily), usize>,
    ports: Vec<ServicePort>,
    /// Distinct ready endpoint addresses, for status reports.
    ready: Vec<SocketAddr>,
    health_checks: Vec<HealthCheck>,
}

/// A Service's `healthCheckNodePort` (LoadBalancer with
/// `externalTrafficPolicy: Local`): the port every node answers on with
/// whether it has a ready endpoint of the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub port: u16,
    pub namespace: String,
    pub name: String,
}

fn u16_at(v: &Value, key: &str) -> Option<u16> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

impl ServiceTable {
    /// Builds the table from Kubernetes Service and EndpointSlice objects.
    /// Objects that do not make sense (no IP, bad ports) are skipped: the
    /// control plane validated them, a stale or foreign object must not
    /// break the node.
    pub fn build(view: &ClusterView) -> ServiceTable {
        let mut slices_by_service: HashMap<(String, String, IpFamily), Vec<&Value>> =
            HashMap::new();
        for slice in view.endpoint_slices.values() {
            let svc = slice
                .pointer("/metadata/labels")
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let family = match str_at(slice, "/addressType") {
                "IPv4" | "" => IpFamily::V4,
                "IPv6" => IpFamily::V6,
                // FQDN slices are for no proxy rule.
                _ => continue,
            };
            if svc.is_empty() {
                continue;
            }
            let ns = str_at(slice, "/metadata/namespace").to_string();
            slices_by_service
                .entry((ns, svc.to_string(), family))
                .or_default()
                .push(slice);
        }
        let mut table = ServiceTable::default();
        for svc in view.services.values() {
            let ns = str_at(svc, "/metadata/namespace");
            let name = str_at(svc, "/metadata/name");
            let ty = str_at(svc, "/spec/type");
            if ty == "ExternalName" {
                continue;
            }
            // One rule per ClusterIP, in the Service's family order; a
            // headless Service or one without a ClusterIP yet has a
            // NodePort-only (or no) rule of its primary family.
            let mut cluster_ips: Vec<Option<IpAddr>> = ServiceView(svc)
                .cluster_ips()
                .into_iter()
                .filter_map(|ip| ip.parse::<IpAddr>().ok())
                .map(Some)
                .collect();
            if cluster_ips.is_empty() {
                cluster_ips.push(None);
            }
            let ipv6_only = cluster_ips
                .iter()
                .all(|ip| ip.is_some_and(|ip| ip.is_ipv6()));
            let affinity = (str_at(svc, "/spec/sessionAffinity") == "ClientIP").then(|| {
                let secs = svc
                    .pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(10800);
                Duration::from_secs(secs)
            });
            if let Some(port) = u16_at(
                svc.get("spec").unwrap_or(&Value::Null),
                "healthCheckNodePort",
            )
            .filter(|_| ty == "LoadBalancer")
            {
                table.health_checks.push(HealthCheck {
                    port,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                });
            }
            let internal_local = str_at(svc, "/spec/internalTrafficPolicy") == "Local";
            let external_local = str_at(svc, "/spec/externalTrafficPolicy") == "Local";
            for port in svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // TCP, UDP and SCTP ports each get their own rule, as
                // kube-proxy's: port 80/TCP and 80/SCTP are two.
                let (Some(number), Some(proto)) = (u16_at(port, "port"), Protocol::of(port)) else {
                    continue;
                };
                let port_name = str_at(port, "/name");
                for cluster_ip in &cluster_ips {
                    let family = match cluster_ip {
                        Some(IpAddr::V6(_)) => IpFamily::V6,
                        _ => IpFamily::V4,
                    };
                    let endpoints = slices_by_service
                        .get(&(ns.to_string(), name.to_string(), family))
                        .map(|s| endpoints_for(s, port_name, proto))
                        .unwrap_or_default();
                    let node_port = u16_at(port, "nodePort")
                        .filter(|_| matches!(ty, "NodePort" | "LoadBalancer"));
                    // kube-proxy's per-family proxiers keep their own state:
                    // the IPv6 rule has an id of its own.
                    let id = match family {
                        IpFamily::V6 if !ipv6_only => format!("{ns}/{name}:{port_name} (IPv6)"),
                        _ => format!("{ns}/{name}:{port_name}"),
                    };
                    let entry = ServicePort {
                        id,
                        cluster_ip: cluster_ip.map(|ip| SocketAddr::new(ip, number)),
                        node_port,
                        proto,
                        affinity,
                        internal_local,
                        external_local,
                        endpoints,
                    };
                    let i = table.ports.len();
                    if let Some(vip) = entry.cluster_ip {
                        table.by_cluster_ip.insert((vip, proto), i);
                    }
                    if let Some(np) = node_port {
                        table.by_node_port.insert((np, proto, family), i);
                    }
                    table.ports.push(entry);
                }
            }
        }
        let mut ready: Vec<SocketAddr> = table
            .ports
            .iter()
            .flat_map(|p| p.endpoints.iter().filter(|e| e.ready).map(|e| e.addr))
            .collect();
        ready.sort();
        ready.dedup();
        table.ready = ready;
        table
    }

    /// Every endpoint address some service port may pick for new flows.
    pub fn ready_endpoints(&self) -> &[SocketAddr] {
        &self.ready
    }

    pub fn by_cluster_ip(&self, dst: SocketAddr, proto: Protocol) -> Option<&ServicePort> {
        self.by_cluster_ip
            .get(&(dst, proto))
            .map(|i| &self.ports[*i])
    }

    /// The rule of NodePort `port` asked at a node address of `family`.
    pub fn by_node_port(
        &self,
        port: u16,
        proto: Protocol,
        family: IpFamily,
    ) -> Option<&ServicePort> {
        self.by_node_port
            .get(&(port, proto, family))
            .map(|i| &self.ports[*i])
    }

    pub fn ports(&self) -> &[ServicePort] {
        &self.ports
    }

    pub fn health_checks(&self) -> &[HealthCheck] {
        &self.health_checks
    }

    /// Ready endpoint pods of Service `namespace/name` on `node`: what
    /// its health check reports.
    pub fn local_ready_endpoints(&self, namespace: &str, name: &str, node: &str) -> usize {
        let prefix = format!("{namespace}/{name}:");
        let mut addrs: Vec<IpAddr> = self
            .ports
            .iter()
            .filter(|p| p.id.starts_with(&prefix))
            .flat_map(|p| p.endpoints.iter())
            .filter(|e| e.ready && e.node == node)
            .map(|e| e.addr.ip())
            .collect();
        // A dual-stack pod is one endpoint of both families: count it once.
        if addrs.iter().any(IpAddr::is_ipv4) {
            addrs.retain(IpAddr::is_ipv4);
        }
        addrs.sort();
        addrs.dedup();
        addrs.len()
    }
}

/// The endpoints of one service port across its slices.
fn endpoints_for(slices: &[&Value], port_name: &str, proto: Protocol) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices.iter().map(|s| EndpointSliceView(s)) {
        let Some(number) = slice.port(port_name, proto) else {
            continue;
        };
        for ep in slice.endpoints() {
            let ips = ep.addresses().filter_map(|a| a.parse::<IpAddr>().ok());
            out.extend(ips.map(|ip| Endpoint {
                addr: SocketAddr::new(ip, number),
                node: ep.node_name().to_string(),
                ready: ep.ready(),
                serving: ep.serving(),
                terminating: ep.terminating(),
            }));
        }
    }
    out.sort_by_key(|e| e.addr);
    out.dedup_by_key(|e| e.addr);
    out
}

/// The endpoints a new flow may go to, as kube-proxy's
/// `CategorizeEndpoints`: the ready ones in scope (this node's alone when
/// `local_only`); when there is none, the ones in scope that are serving
/// and terminating (KEP-1669), so a Service whose pods are all being
/// deleted keeps answering until they exit. A local policy never falls
/// back to another node's endpoints.
pub fn usable_endpoints<'a>(
    endpoints: &'a [Endpoint],
    local_only: bool,
    local_node: &str,
) -> Vec<&'a Endpoint> {
    let in_scope = |e: &&Endpoint| !local_only || e.node == local_node;
    let ready: Vec<&Endpoint> = endpoints
        .iter()
        .filter(in_scope)
        .filter(|e| e.ready)
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .iter()
        .filter(in_scope)
        .filter(|e| e.serving && e.terminating)
        .collect()
}

/// The proxy's memory between flows: affinity and round-robin positions.
#[derive(Debug, Default)]
pub struct ProxyState {
    affinity: HashMap<(String, IpAddr), (SocketAddr, std::time::Instant)>,
    next: HashMap<String, usize>,
}

/// Which traffic policy applies to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// To a ClusterIP: internalTrafficPolicy.
    ClusterIp,
    /// To a NodePort: externalTrafficPolicy.
    NodePort,
}

impl ProxyState {
    /// Chooses the endpoint of a new flow from `client` to `port`.
    /// `random` is a uniformly random number (kept outside so tests are
    /// deterministic).
    pub fn pick(
        &mut self,
        port: &ServicePort,
        origin: Origin,
        client: IpAddr,
        local_node: &str,
        now: std::time::Instant,
        random: u64,
    ) -> Pick {
        let local_only = match origin {
            Origin::ClusterIp => port.internal_local,
            Origin::NodePort => port.external_local,
        };
        let usable = usable_endpoints(&port.endpoints, local_only, local_node);
        if usable.is_empty() {
            return if local_only { Pick::Drop } else { Pick::Refuse };
        }
        if let Some(timeout) = port.affinity {
            let key = (port.id.clone(), client);
            if let Some((addr, last)) = self.affinity.get(&key)
                && now.saturating_duration_since(*last) < timeout
                && usable.iter().any(|e| e.addr == *addr)
            {
                let addr = *addr;
                self.affinity.insert(key, (addr, now));
                return Pick::To(addr);
            }
            let chosen = usable[(random % usable.len() as u64) as usize].addr;
            self.affinity.insert(key, (chosen, now));
            return Pick::To(chosen);
        }
        Pick::To(usable[(random % usable.len() as u64) as usize].addr)
    }

    /// Round robin: the next usable endpoint after the previous pick.
    pub fn pick_round_robin(
        &mut self,
        port: &ServicePort,
        origin: Origin,
        client: IpAddr,
        local_node: &str,
        now: std::time::Instant,
    ) -> Pick {
        let n = self.next.entry(port.id.clone()).or_default();
        let random = *n as u64;
        *n = n.wrapping_add(1);
        self.pick(port, origin, client, local_node, now, random)
    }

    /// Forgets affinities idle longer than their timeout.
    pub fn expire(&mut self, now: std::time::Instant, longest: Duration) {
        self.affinity
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < longest);
    }
}

#[cfg(test)]
mod tests;
