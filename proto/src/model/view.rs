//! Read views over Kubernetes objects kept as JSON: the facts several
//! crates read (a Node's addresses and readiness, a Service's cluster IPs,
//! ports and LoadBalancer status, an EndpointSlice's endpoints with
//! upstream's condition defaulting, a Pod's phase, IP and status), each
//! decoded once, here.
//!
//! A view borrows the object (`&Value`) and copies nothing; a field that is
//! absent or of the wrong type reads as Kubernetes reads an unset field.
//! Views never write: objects stay Kubernetes JSON, and this is not a
//! second object model.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;

use super::{ANNOTATION_UNDERLAY, condition_is_true, str_at, strs_at};

/// The items of the array at `pointer`; nothing when absent.
fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A port number at `pointer`: 1..=65535, else `None`.
fn port_at(v: &Value, pointer: &str) -> Option<u16> {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
}

/// The transport protocol of a Service, EndpointSlice or container port.
/// Unset means TCP, as the API server defaults it. In podnet's own files
/// (scenarios) it is spelled as the API spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// `TCP`, `UDP`, `SCTP`, or "" (TCP); anything else is `None`.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The protocol of a port object (`{"protocol": ...}`).
    pub fn of(port: &Value) -> Option<Protocol> {
        Protocol::parse(str_at(port, "/protocol"))
    }

    /// The API's spelling: `TCP`, `UDP`, `SCTP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata` of any object.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a>(pub &'a Value);

impl<'a> Meta<'a> {
    pub fn name(self) -> &'a str {
        str_at(self.0, "/metadata/name")
    }

    pub fn namespace(self) -> &'a str {
        str_at(self.0, "/metadata/namespace")
    }

    pub fn uid(self) -> &'a str {
        str_at(self.0, "/metadata/uid")
    }

    /// The value of label `key`, or "".
    pub fn label(self, key: &str) -> &'a str {
        self.0
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The value of annotation `key`, or "".
    pub fn annotation(self, key: &str) -> &'a str {
        self.0
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A deletionTimestamp is set: the object is terminating.
    pub fn deleting(self) -> bool {
        self.0.pointer("/metadata/deletionTimestamp").is_some()
    }
}

/// A Node.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a>(pub &'a Value);

impl<'a> NodeView<'a> {
    pub fn meta(self) -> Meta<'a> {
        Meta(self.0)
    }

    /// Every `InternalIP` of `status.addresses` that is an IPv4 address.
    pub fn internal_ips(self) -> impl Iterator<Item = Ipv4Addr> + use<'a> {
        items(self.0, "/status/addresses")
            .filter(|a| str_at(a, "/type") == "InternalIP")
            .filter_map(|a| str_at(a, "/address").parse().ok())
    }

    /// Every `InternalIP` of `status.addresses`, of either family, in
    /// order.
    pub fn internal_addresses(self) -> impl Iterator<Item = IpAddr> + use<'a> {
        items(self.0, "/status/addresses")
            .filter(|a| str_at(a, "/type") == "InternalIP")
            .filter_map(|a| str_at(a, "/address").parse().ok())
    }

    /// The first InternalIP: where NodePorts and health ports answer.
    pub fn internal_ip(self) -> Option<Ipv4Addr> {
        self.internal_ips().next()
    }

    /// The Ready condition is True.
    pub fn ready(self) -> bool {
        condition_is_true(self.0, "Ready")
    }

    /// The real UDP address of the node's overlay endpoint.
    pub fn underlay(self) -> Option<SocketAddr> {
        self.meta().annotation(ANNOTATION_UNDERLAY).parse().ok()
    }

    pub fn pod_cidr(self) -> &'a str {
        str_at(self.0, "/spec/podCIDR")
    }

    /// `spec.podCIDRs` (one per family), or `spec.podCIDR` alone when the
    /// list is absent; entries that are not CIDRs are skipped.
    pub fn pod_cidrs(self) -> Vec<ipnet::IpNet> {
        let listed: Vec<ipnet::IpNet> = items(self.0, "/spec/podCIDRs")
            .filter_map(|c| c.as_str()?.parse().ok())
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        self.pod_cidr().parse().into_iter().collect()
    }
}

/// A Service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceView<'a>(pub &'a Value);

impl<'a> ServiceView<'a> {
    pub fn meta(self) -> Meta<'a> {
        Meta(self.0)
    }

    /// `spec.type`; unset is ClusterIP.
    pub fn service_type(self) -> &'a str {
        match str_at(self.0, "/spec/type") {
            "" => "ClusterIP",
            t => t,
        }
    }

    /// `spec.clusterIPs`, else `spec.clusterIP` alone; `None` (headless)
    /// and "" are not addresses.
    pub fn cluster_ips(self) -> Vec<&'a str> {
        let list = strs_at(self.0, "/spec/clusterIPs");
        let list = if list.is_empty() {
            vec![str_at(self.0, "/spec/clusterIP")]
        } else {
            list
        };
        list.into_iter()
            .filter(|ip| !ip.is_empty() && !ip.eq_ignore_ascii_case("None"))
            .collect()
    }

    /// `clusterIP: None`: a headless Service, answered with its endpoints.
    pub fn headless(self) -> bool {
        let list = strs_at(self.0, "/spec/clusterIPs");
        let first = list
            .first()
            .copied()
            .unwrap_or_else(|| str_at(self.0, "/spec/clusterIP"));
        first.eq_ignore_ascii_case("None")
    }

    /// The first cluster IP that is an IPv4 address.
    pub fn cluster_ipv4(self) -> Option<Ipv4Addr> {
        self.cluster_ips()
            .into_iter()
            .find_map(|ip| ip.parse().ok())
    }

    pub fn ports(self) -> impl Iterator<Item = ServicePortView<'a>> + use<'a> {
        items(self.0, "/spec/ports").map(ServicePortView)
    }

    /// `status.loadBalancer.ingress[0].ip`.
    pub fn load_balancer_ip(self) -> Option<Ipv4Addr> {
        str_at(self.0, "/status/loadBalancer/ingress/0/ip")
            .parse()
            .ok()
    }

    /// The real host ports the edge recorded in
    /// `status.loadBalancer.ingress[0].ports`, in the order of the ports it
    /// listens for ([`ServiceView::edge_ports`]).
    pub fn load_balancer_ports(self) -> Vec<u16> {
        items(self.0, "/status/loadBalancer/ingress/0/ports")
            .filter_map(|p| port_at(p, "/port"))
            .collect()
    }

    /// The ports the edge listens for: those with a NodePort and a protocol
    /// it forwards (TCP or UDP), in Service port order.
    pub fn edge_ports(self) -> impl Iterator<Item = ServicePortView<'a>> + use<'a> {
        self.ports().filter(|p| p.is_edge_port())
    }

    /// For each of `spec.ports`, the real host port the edge listens on for
    /// it on the LoadBalancer address (`None`: the edge does not forward
    /// this port, or has not opened it yet).
    pub fn host_ports(self) -> Vec<Option<u16>> {
        let mut real = self.load_balancer_ports().into_iter();
        self.ports()
            .map(|p| if p.is_edge_port() { real.next() } else { None })
            .collect()
    }

    /// The real host port the edge listens on for Service port `port`.
    pub fn edge_port_for(self, port: u16) -> Option<u16> {
        let index = self.edge_ports().position(|p| p.port() == Some(port))?;
        self.load_balancer_ports().get(index).copied()
    }
}

/// One entry of `spec.ports` of a Service.
#[derive(Debug, Clone, Copy)]
pub struct ServicePortView<'a>(pub &'a Value);

impl<'a> ServicePortView<'a> {
    pub fn name(self) -> &'a str {
        str_at(self.0, "/name")
    }

    pub fn port(self) -> Option<u16> {
        port_at(self.0, "/port")
    }

    pub fn node_port(self) -> Option<u16> {
        port_at(self.0, "/nodePort")
    }

    pub fn protocol(self) -> Option<Protocol> {
        Protocol::of(self.0)
    }

    /// A port the edge listens for: it has a NodePort and a protocol the
    /// edge forwards (TCP or UDP).
    pub fn is_edge_port(self) -> bool {
        self.node_port().is_some() && matches!(self.protocol(), Some(Protocol::Tcp | Protocol::Udp))
    }
}

/// An EndpointSlice.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSliceView<'a>(pub &'a Value);

impl<'a> EndpointSliceView<'a> {
    pub fn meta(self) -> Meta<'a> {
        Meta(self.0)
    }

    /// The `kubernetes.io/service-name` label: the Service it belongs to.
    pub fn service_name(self) -> &'a str {
        self.meta().label("kubernetes.io/service-name")
    }

    /// The number of the slice port named `name` with `protocol`.
    pub fn port(self, name: &str, protocol: Protocol) -> Option<u16> {
        items(self.0, "/ports")
            .find(|p| str_at(p, "/name") == name && Protocol::of(p) == Some(protocol))
            .and_then(|p| port_at(p, "/port"))
    }

    pub fn endpoints(self) -> impl Iterator<Item = EndpointView<'a>> + use<'a> {
        items(self.0, "/endpoints").map(EndpointView)
    }

    /// Every address of every endpoint, ready or not.
    pub fn addresses(self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.endpoints().flat_map(EndpointView::addresses)
    }
}

/// One endpoint of an EndpointSlice, with the conditions defaulted as
/// upstream consumers read them.
#[derive(Debug, Clone, Copy)]
pub struct EndpointView<'a>(pub &'a Value);

impl<'a> EndpointView<'a> {
    fn condition(self, name: &str) -> Option<bool> {
        self.0
            .get("conditions")
            .and_then(|c| c.get(name))
            .and_then(Value::as_bool)
    }

    /// `conditions.ready`; unset means ready (unknown state is treated as
    /// ready, as kube-proxy and CoreDNS do).
    pub fn ready(self) -> bool {
        self.condition("ready").unwrap_or(true)
    }

    /// `conditions.serving`; unset takes the value of `ready`.
    pub fn serving(self) -> bool {
        self.condition("serving").unwrap_or_else(|| self.ready())
    }

    /// `conditions.terminating`; unset means not terminating.
    pub fn terminating(self) -> bool {
        self.condition("terminating").unwrap_or(false)
    }

    pub fn addresses(self) -> impl Iterator<Item = &'a str> + use<'a> {
        items(self.0, "/addresses").filter_map(Value::as_str)
    }

    /// The addresses that are IPv4 addresses.
    pub fn ipv4s(self) -> impl Iterator<Item = Ipv4Addr> + use<'a> {
        self.addresses().filter_map(|a| a.parse().ok())
    }

    pub fn node_name(self) -> &'a str {
        str_at(self.0, "/nodeName")
    }

    pub fn hostname(self) -> &'a str {
        str_at(self.0, "/hostname")
    }
}

/// A Pod.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a>(pub &'a Value);

impl<'a> PodView<'a> {
    pub fn meta(self) -> Meta<'a> {
        Meta(self.0)
    }

    pub fn phase(self) -> &'a str {
        str_at(self.0, "/status/phase")
    }

    pub fn ip(self) -> Option<Ipv4Addr> {
        str_at(self.0, "/status/podIP").parse().ok()
    }

    pub fn node_name(self) -> &'a str {
        str_at(self.0, "/spec/nodeName")
    }

    /// The Ready condition is True.
    pub fn ready(self) -> bool {
        condition_is_true(self.0, "Ready")
    }

    /// `status.containerStatuses`, in the order the kubelet reports them.
    pub fn container_statuses(self) -> Vec<&'a Value> {
        items(self.0, "/status/containerStatuses").collect()
    }

    /// The one word kubectl's STATUS column shows, as its `printPod`
    /// finds it: `status.reason` (Evicted) else the phase; then, from the
    /// last container to the first, a waiting reason (CrashLoopBackOff,
    /// ErrImagePull, ...) or a terminated one (Completed, Error), so the
    /// first container's wins; Completed beside a ready running container
    /// is Running (NotReady without the Ready condition); a pod being
    /// deleted that has not ended is Terminating.
    pub fn status(self) -> String {
        let mut reason = match (str_at(self.0, "/status/reason"), self.phase()) {
            ("", "") => "Pending".to_string(),
            ("", phase) => phase.to_string(),
            (reason, _) => reason.to_string(),
        };
        let mut has_running = false;
        let statuses: Vec<&Value> = items(self.0, "/status/containerStatuses").collect();
        for c in statuses.iter().rev() {
            let waiting = str_at(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, "/reason") {
                    "" => match t.get("signal").and_then(Value::as_i64).unwrap_or(0) {
                        0 => format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        ),
                        signal => format!("Signal:{signal}"),
                    },
                    r => r.to_string(),
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if self.ready() { "Running" } else { "NotReady" }.to_string();
        }
        let ended = matches!(self.phase(), "Succeeded" | "Failed");
        if self.meta().deleting() && str_at(self.0, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_string();
        } else if self.meta().deleting() && !ended {
            reason = "Terminating".to_string();
        }
        reason
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// kubectl's STATUS column (`printPod`).
    #[test]
    fn pod_status_word_as_kubectl_prints_it() {
        let check = |pod: Value, expected: &str| {
            assert_eq!(PodView(&pod).status(), expected, "{pod}");
        };
        let running = json!({"ready": true, "state": {"running": {}}});
        let completed = json!({"state": {"terminated": {"reason": "Completed", "exitCode": 0}}});
        let error = json!({"state": {"terminated": {"reason": "Error", "exitCode": 3}}});
        let crash = json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        check(json!({}), "Pending");
        check(
            json!({"status": {"phase": "Running", "containerStatuses": [running]}}),
            "Running",
        );
        check(
            json!({"status": {"phase": "Running", "containerStatuses": [crash]}}),
            "CrashLoopBackOff",
        );
        check(
            json!({"status": {"phase": "Succeeded", "containerStatuses": [completed]}}),
            "Completed",
        );
        check(
            json!({"status": {"phase": "Failed", "containerStatuses": [error]}}),
            "Error",
        );
        // The first container's reason wins.
        check(
            json!({"status": {"phase": "Failed", "containerStatuses": [error, completed]}}),
            "Error",
        );
        // Completed beside a running container is Running (or NotReady).
        let ready = json!([{"type": "Ready", "status": "True"}]);
        check(
            json!({"status": {"phase": "Running", "conditions": ready, "containerStatuses": [completed, running]}}),
            "Running",
        );
        check(
            json!({"status": {"phase": "Running", "containerStatuses": [completed, running]}}),
            "NotReady",
        );
        check(
            json!({"status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]}}),
            "ExitCode:2",
        );
        // Evicted before any container reported: the pod's own reason.
        check(
            json!({"status": {"phase": "Failed", "reason": "Evicted"}}),
            "Evicted",
        );
        // Deleted: Terminating unless it has ended.
        let deleting = json!({"deletionTimestamp": "2024-01-01T00:00:00Z"});
        check(
            json!({"metadata": deleting, "status": {"phase": "Running", "containerStatuses": [running]}}),
            "Terminating",
        );
        check(
            json!({"metadata": deleting, "status": {"phase": "Failed", "containerStatuses": [error]}}),
            "Error",
        );
    }

    #[test]
    fn endpoint_conditions_default_as_upstream() {
        // (conditions, ready, serving, terminating)
        let check = |conditions: Value, expected: (bool, bool, bool)| {
            let ep = json!({"addresses": ["10.244.1.2"], "conditions": conditions});
            let v = EndpointView(&ep);
            assert_eq!(
                (v.ready(), v.serving(), v.terminating()),
                expected,
                "{conditions}"
            );
        };
        check(json!({}), (true, true, false));
        check(json!(null), (true, true, false));
        check(json!({"ready": false}), (false, false, false));
        check(
            json!({"ready": false, "serving": true, "terminating": true}),
            (false, true, true),
        );
        check(json!({"ready": "yes"}), (true, true, false));
    }

    #[test]
    fn slices_find_ports_by_name_and_protocol() {
        let slice = json!({
            "metadata": {"labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "bad", "port": 70000}],
            "endpoints": [{"addresses": ["10.244.1.2", "x"]}, {"addresses": ["10.244.2.2"], "conditions": {"ready": false}}],
        });
        let s = EndpointSliceView(&slice);
        assert_eq!(s.service_name(), "web");
        assert_eq!(s.port("http", Protocol::Tcp), Some(8080));
        assert_eq!(s.port("http", Protocol::Udp), None);
        assert_eq!(s.port("dns", Protocol::Udp), Some(53));
        assert_eq!(s.port("bad", Protocol::Tcp), None);
        assert_eq!(
            s.addresses().collect::<Vec<_>>(),
            ["10.244.1.2", "x", "10.244.2.2"]
        );
        let ready: Vec<Ipv4Addr> = s
            .endpoints()
            .filter(|e| e.ready())
            .flat_map(EndpointView::ipv4s)
            .collect();
        assert_eq!(ready, [Ipv4Addr::new(10, 244, 1, 2)]);
    }

    #[test]
    fn nodes_read_addresses_readiness_and_underlay() {
        let node = json!({
            "metadata": {"name": "node-1", "annotations": {ANNOTATION_UNDERLAY: "127.0.0.1:4000"}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "172.18.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        });
        let n = NodeView(&node);
        assert_eq!(n.internal_ip(), Some(Ipv4Addr::new(172, 18, 0, 2)));
        assert!(n.ready());
        assert_eq!(n.underlay(), "127.0.0.1:4000".parse().ok());
        assert_eq!(n.pod_cidr(), "10.244.1.0/24");
        assert_eq!(NodeView(&json!({})).internal_ip(), None);
        assert!(!NodeView(&json!({})).ready());
    }

    #[test]
    fn services_read_cluster_ips_and_edge_ports_in_order() {
        let svc = json!({
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.5",
                "ports": [
                    {"port": 80, "nodePort": 30000},
                    {"port": 9, "nodePort": 30002, "protocol": "SCTP"},
                    {"port": 443, "nodePort": 30001},
                ],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1", "ports": [{"port": 80}, {"port": 40443}]}]}},
        });
        let s = ServiceView(&svc);
        assert_eq!(s.cluster_ips(), ["10.96.0.5"]);
        assert_eq!(s.load_balancer_ip(), Some(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(s.edge_port_for(443), Some(40443));
        assert_eq!(s.edge_port_for(80), Some(80));
        assert_eq!(s.edge_port_for(9), None);
        let headless = json!({"spec": {"clusterIP": "None"}});
        assert!(ServiceView(&headless).cluster_ips().is_empty());
        assert!(ServiceView(&headless).headless());
        assert!(!s.headless());
        assert_eq!(ServiceView(&headless).service_type(), "ClusterIP");
        let dual =
            json!({"spec": {"clusterIP": "fd00::5", "clusterIPs": ["fd00::5", "10.96.0.7"]}});
        assert_eq!(
            ServiceView(&dual).cluster_ipv4(),
            Some(Ipv4Addr::new(10, 96, 0, 7))
        );
    }

    #[test]
    fn pod_status_is_the_word_kubectl_shows() {
        let check = |pod: Value, expected: &str| assert_eq!(PodView(&pod).status(), expected);
        check(json!({}), "Pending");
        check(json!({"status": {"phase": "Running"}}), "Running");
        check(
            json!({"status": {"phase": "Pending", "containerStatuses": [
                {"state": {"running": {}}}, {"state": {"waiting": {"reason": "ErrImagePull"}}}]}}),
            "ErrImagePull",
        );
        check(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}),
            "Terminating",
        );
    }

    #[test]
    fn protocols_default_to_tcp() {
        assert_eq!(Protocol::of(&json!({})), Some(Protocol::Tcp));
        assert_eq!(
            Protocol::of(&json!({"protocol": "UDP"})),
            Some(Protocol::Udp)
        );
        assert_eq!(Protocol::of(&json!({"protocol": "ICMP"})), None);
        assert_eq!(Protocol::Sctp.to_string(), "SCTP");
    }
}
