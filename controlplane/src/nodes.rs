//! Node membership: join with a token, IP address management (a /24
//! podCIDR per node out of the cluster CIDR, an emulated InternalIP in join
//! order), leases renewed by heartbeats, and the node lifecycle controller
//! that marks a silent node NotReady and evicts its pods so their
//! controllers recreate them elsewhere.
//!
//! Leases live in memory, not in the store: after a control plane restart
//! every known node gets a fresh lease and one grace period to heartbeat.
//! A Node object nobody joined with (created through the API) gets a lease
//! when the lifecycle controller first sees it, and so goes NotReady one
//! grace period later unless a node heartbeats for it: a Node without a
//! process behind it is never Ready for long, and gets no pods.
//!
//! The lifecycle controller also runs the pod garbage collector's orphan
//! rule (`podgc`): pods bound to a Node that no longer exists are deleted.
//! A node whose Node was deleted registers again (its heartbeat answers
//! NOT_FOUND); it gets back the podCIDR and IP it had, remembered here by
//! name, while no other node has taken them.

mod podgc;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use podnet_proto::model::network::EDGE_NAME;
use podnet_proto::model::network::{ClusterFamilies, IpFamily, nth_address};
use podnet_proto::model::view::NodeView;
use podnet_proto::model::{
    ANNOTATION_AGENT, ANNOTATION_HOST_DNS, ANNOTATION_METRICS, ANNOTATION_PID, ANNOTATION_UNDERLAY,
    Kind, LABEL_HOSTNAME, LABEL_ZONE, ObjectKey, condition_is_true,
};
use podnet_proto::v1::{JoinEdgeRequest, JoinRequest, JoinResponse};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ca::{CaError, ClusterCa};
use crate::registry::{ApiError, Registry};
use podnet_proto::model::{DEFAULT_MAX_PODS, str_at};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("join token is not valid")]
    BadToken,
    #[error("node name {0:?} is not a valid DNS-1123 subdomain")]
    BadName(String),
    #[error("underlay address {0:?} is not an IP:port")]
    BadUnderlay(String),
    #[error("the cluster CIDR {0} has no free /{1} left for another node")]
    NoPodCidr(IpNet, u8),
    #[error("no free node IP left in {0}")]
    NoNodeIp(Ipv4Net),
    #[error("no free IPv6 node IP left in {0}")]
    NoNodeIpV6(Ipv6Net),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

#[derive(Debug, Clone)]
pub struct NodesConfig {
    pub join_token: String,
    /// The cluster's IP families: a node gets one podCIDR of each, the
    /// primary family's first.
    pub ip_families: ClusterFamilies,
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's podCIDR.
    pub node_cidr_mask_size: u8,
    /// The IPv6 pod network and the prefix length of each node's IPv6
    /// podCIDR (`--node-cidr-mask-size-ipv6`), used when the cluster has
    /// IPv6.
    pub cluster_cidr_v6: Ipv6Net,
    pub node_cidr_mask_size_v6: u8,
    pub node_cidr: Ipv4Net,
    /// The node network's IPv6 prefix, used when the cluster has IPv6.
    pub node_cidr_v6: Ipv6Net,
    /// The Service ranges (`--service-cluster-ip-range`), one per family,
    /// which joining nodes are told.
    pub service_cidrs: Vec<ipnet::IpNet>,
    /// How long a node may go without a heartbeat before it is NotReady.
    pub grace_period: Duration,
}

pub struct Nodes {
    config: NodesConfig,
    registry: Registry,
    ca: Arc<ClusterCa>,
    leases: Mutex<HashMap<String, Instant>>,
    /// The podCIDRs and IP each node name had, kept after its Node is gone.
    allocations: Mutex<HashMap<String, Held>>,
    /// Joins are serialized: address allocation reads then writes.
    join_lock: Mutex<()>,
    /// The edge's TraceSource address (memory only: a restarted control
    /// plane learns it when the edge joins again).
    edge_agent: Mutex<Option<String>>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ready_condition(status: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": now, "lastTransitionTime": now})
}

pub fn node_is_ready(node: &Value) -> bool {
    condition_is_true(node, "Ready")
}

/// A node's podCIDRs (primary family first) and its InternalIP.
type Held = (Vec<String>, Vec<String>);

/// Every podCIDR of a stored Node: `spec.podCIDRs`, else `spec.podCIDR`.
fn pod_cidrs_of(node: &Value) -> Vec<&str> {
    match podnet_proto::model::strs_at(node, "/spec/podCIDRs") {
        cidrs if !cidrs.is_empty() => cidrs,
        _ => Some(NodeView(node).pod_cidr())
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect(),
    }
}

/// The podCIDRs and InternalIP a stored Node holds, if it has both.
fn allocation_of(node: &Value) -> Option<Held> {
    let ips: Vec<String> = NodeView(node)
        .internal_addresses()
        .map(|ip| ip.to_string())
        .collect();
    let cidrs: Vec<String> = pod_cidrs_of(node).into_iter().map(str::to_string).collect();
    (!cidrs.is_empty() && !ips.is_empty()).then_some((cidrs, ips))
}

/// Whether no Node of `nodes` holds a podCIDR or the IP of `held`.
fn still_free(held: &Held, nodes: &[Value]) -> bool {
    nodes.iter().filter_map(allocation_of).all(|(cidrs, ips)| {
        ips.iter().all(|ip| !held.1.contains(ip)) && cidrs.iter().all(|cidr| !held.0.contains(cidr))
    })
}

/// The first of `hosts` after the network's first (the host's, its
/// gateway) that no Node of `nodes` has as an InternalIP.
fn lowest_free(hosts: impl Iterator<Item = IpAddr>, nodes: &[Value]) -> Option<IpAddr> {
    let taken: BTreeSet<IpAddr> = nodes
        .iter()
        .flat_map(|n| NodeView(n).internal_addresses())
        .collect();
    hosts.skip(1).find(|ip| !taken.contains(ip))
}

/// The family of a podCIDR as written.
fn family_of(cidr: &str) -> Option<IpFamily> {
    cidr.parse::<IpNet>()
        .ok()
        .map(|net| IpFamily::of(net.addr()))
}

fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Nodes {
    pub fn new(
        config: NodesConfig,
        registry: Registry,
        ca: Arc<ClusterCa>,
    ) -> Result<Nodes, ApiError> {
        let nodes = Nodes {
            config,
            registry,
            ca,
            leases: Mutex::new(HashMap::new()),
            allocations: Mutex::new(HashMap::new()),
            join_lock: Mutex::new(()),
            edge_agent: Mutex::new(None),
        };
        let now = Instant::now();
        let mut leases = nodes.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let mut allocations = nodes
            .allocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for node in nodes.registry.list_all(Kind::Node, "")? {
            let name = str_at(&node, "/metadata/name").to_string();
            if let Some(held) = allocation_of(&node) {
                allocations.insert(name.clone(), held);
            }
            leases.insert(name, now);
        }
        drop((leases, allocations));
        Ok(nodes)
    }

    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    fn check_token(&self, token: &str) -> Result<(), JoinError> {
        // Compare in time independent of where the first difference is.
        let a = token.as_bytes();
        let b = self.config.join_token.as_bytes();
        let diff = a
            .iter()
            .zip(b)
            .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
        if diff == 0 {
            Ok(())
        } else {
            Err(JoinError::BadToken)
        }
    }

    /// Admits a node: (re)writes its Node object, keeping the podCIDR and IP
    /// of an earlier join under the same name, and issues its certificate.
    pub fn join(&self, req: &JoinRequest) -> Result<JoinResponse, JoinError> {
        self.check_token(&req.token)?;
        if !valid_node_name(&req.node_name) || req.node_name == EDGE_NAME {
            return Err(JoinError::BadName(req.node_name.clone()));
        }
        if req
            .underlay_address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(JoinError::BadUnderlay(req.underlay_address.clone()));
        }
        let key = ObjectKey::new(Kind::Node, "", &req.node_name);
        let _serialized = self
            .join_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let existing = self.registry.get(&key)?;
        let all = self.registry.list_all(Kind::Node, "")?;
        let remembered = self
            .allocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&req.node_name)
            .cloned()
            .filter(|held| still_free(held, &all));
        let (held_cidrs, held_ips) = match (existing.as_ref().and_then(allocation_of), remembered) {
            (Some(held), _) | (None, Some(held)) => held,
            (None, None) => (Vec::new(), Vec::new()),
        };
        // An IPv4 InternalIP always (podnet's nodes have one), and an IPv6
        // one on a cluster with IPv6: the held ones, new ones for the rest.
        let held_ip = |v6: bool| {
            held_ips
                .iter()
                .find(|ip| ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6))
                .cloned()
        };
        let node_ip = match held_ip(false) {
            Some(ip) => ip,
            None => self.free_node_ip(&all)?.to_string(),
        };
        let mut node_ips = vec![node_ip.clone()];
        if self.config.ip_families.families().contains(&IpFamily::V6) {
            node_ips.push(match held_ip(true) {
                Some(ip) => ip,
                None => self.free_node_ip_v6(&all)?.to_string(),
            });
        }
        // One podCIDR per family of the cluster, in its order: the held
        // ones where they are of a family the cluster still has, new ones
        // for the rest (a cluster that gained a family).
        let mut pod_cidrs = Vec::new();
        for family in self.config.ip_families.families() {
            let held = held_cidrs
                .iter()
                .find(|c| family_of(c) == Some(*family))
                .cloned();
            pod_cidrs.push(match held {
                Some(cidr) => cidr,
                None => self.free_pod_cidr(*family, &all)?.to_string(),
            });
        }
        let pod_cidr = pod_cidrs.first().cloned().unwrap_or_default();
        let issued = self.ca.issue_node(&req.node_name)?;
        let mut labels = serde_json::Map::new();
        for (k, v) in &req.labels {
            labels.insert(k.clone(), json!(v));
        }
        labels.insert(LABEL_HOSTNAME.into(), json!(req.node_name));
        labels.insert("kubernetes.io/os".into(), json!("linux"));
        labels.insert("kubernetes.io/arch".into(), json!(std::env::consts::ARCH));
        if !req.zone.is_empty() {
            labels.insert(LABEL_ZONE.into(), json!(req.zone));
        }
        let cpu = if req.cpu.is_empty() { "4" } else { &req.cpu };
        let memory = if req.memory.is_empty() {
            "8Gi"
        } else {
            &req.memory
        };
        let max_pods = match req.max_pods {
            0 => DEFAULT_MAX_PODS,
            n => n,
        };
        let resources = json!({"cpu": cpu, "memory": memory, "pods": max_pods.to_string()});
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": req.node_name,
                "labels": labels,
                "annotations": {
                    ANNOTATION_UNDERLAY: req.underlay_address,
                    ANNOTATION_AGENT: req.agent_address,
                    ANNOTATION_PID: req.pid.to_string(),
                    ANNOTATION_HOST_DNS: req.host_dns_address,
                    ANNOTATION_METRICS: req.metrics_address,
                },
            },
            "spec": {"podCIDR": pod_cidr, "podCIDRs": pod_cidrs},
        });
        // Listed the primary family's first, as the kubelet lists them.
        let mut listed = node_ips.clone();
        if self.config.ip_families.primary() == IpFamily::V6 {
            listed.reverse();
        }
        let status = json!({
            "addresses": listed
                .iter()
                .map(|ip| json!({"type": "InternalIP", "address": ip}))
                .chain([json!({"type": "Hostname", "address": req.node_name})])
                .collect::<Vec<_>>(),
            "capacity": resources, "allocatable": resources,
            "conditions": [ready_condition("True", "KubeletReady", "podnet node is posting ready status")],
            "nodeInfo": {"kubeletVersion": concat!("podnet-", env!("CARGO_PKG_VERSION")), "containerRuntimeVersion": "podnet",
                         "operatingSystem": "linux", "architecture": std::env::consts::ARCH},
        });
        let stored = match existing {
            None => self.registry.create(node)?,
            Some(_) => self.registry.update(node)?,
        };
        let mut with_status = stored;
        with_status["status"] = status;
        self.registry.update_status(with_status)?;
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(req.node_name.clone(), Instant::now());
        self.allocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(req.node_name.clone(), (pod_cidrs.clone(), node_ips.clone()));
        tracing::info!(node = %req.node_name, pod_cidrs = ?pod_cidrs, node_ips = ?node_ips, "node joined");
        Ok(JoinResponse {
            ca_pem: self.ca.cert_pem().to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            pod_cidr,
            pod_cidrs,
            service_cidrs: self
                .config
                .service_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
            node_ip,
            node_ips,
            lease_duration_ms: self.config.grace_period.as_millis() as u64,
            host_ip: self.host_ip()?.to_string(),
            host_ips: self.host_ips()?,
        })
    }

    /// Admits the edge load balancer to the overlay: a certificate for
    /// [`EDGE_NAME`] and the host's address on the node network (its
    /// gateway, .1, as the host is on a kind network). No Node object: the
    /// edge runs no pods.
    pub fn join_edge(&self, req: &JoinEdgeRequest) -> Result<JoinResponse, JoinError> {
        self.check_token(&req.token)?;
        let issued = self.ca.issue_edge()?;
        let host_ip = self.host_ip()?;
        tracing::info!(pid = req.pid, %host_ip, agent = %req.agent_address, "edge joined");
        *self
            .edge_agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(req.agent_address.clone()).filter(|a| !a.is_empty());
        Ok(JoinResponse {
            ca_pem: self.ca.cert_pem().to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            pod_cidr: String::new(),
            pod_cidrs: Vec::new(),
            service_cidrs: Vec::new(),
            node_ip: host_ip.to_string(),
            node_ips: Vec::new(),
            lease_duration_ms: self.config.grace_period.as_millis() as u64,
            host_ip: host_ip.to_string(),
            host_ips: self.host_ips()?,
        })
    }

    /// The host's address on the node network: its first address, the
    /// gateway of a docker or kind network.
    /// The host's addresses: [`Self::host_ip`], then on a cluster with
    /// IPv6 the first address of the IPv6 node network.
    fn host_ips(&self) -> Result<Vec<String>, JoinError> {
        let mut ips = vec![self.host_ip()?.to_string()];
        if self.config.ip_families.has(IpFamily::V6) {
            let net = self.config.node_cidr_v6;
            ips.push(
                nth_address(net.into(), 1)
                    .ok_or(JoinError::NoNodeIpV6(net))?
                    .to_string(),
            );
        }
        Ok(ips)
    }

    fn host_ip(&self) -> Result<Ipv4Addr, JoinError> {
        self.config
            .node_cidr
            .hosts()
            .next()
            .ok_or(JoinError::NoNodeIp(self.config.node_cidr))
    }

    /// Where the edge serves its journey spans, once it has joined.
    pub fn edge_agent(&self) -> Option<String> {
        self.edge_agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The lowest podCIDR of `family` that no Node holds.
    fn free_pod_cidr(&self, family: IpFamily, nodes: &[Value]) -> Result<IpNet, JoinError> {
        let taken: BTreeSet<&str> = nodes.iter().flat_map(pod_cidrs_of).collect();
        let (cidr, mask) = match family {
            IpFamily::V4 => (
                IpNet::V4(self.config.cluster_cidr),
                self.config.node_cidr_mask_size,
            ),
            IpFamily::V6 => (
                IpNet::V6(self.config.cluster_cidr_v6),
                self.config.node_cidr_mask_size_v6,
            ),
        };
        cidr.subnets(mask)
            .map_err(|_| JoinError::NoPodCidr(cidr, mask))?
            .find(|s| !taken.contains(s.to_string().as_str()))
            .ok_or(JoinError::NoPodCidr(cidr, mask))
    }

    /// The lowest IPv4 address of the node network no Node holds (.1 is
    /// the network's gateway, as on a docker or kind network).
    fn free_node_ip(&self, nodes: &[Value]) -> Result<Ipv4Addr, JoinError> {
        let net = self.config.node_cidr;
        lowest_free(net.hosts().map(IpAddr::V4), nodes)
            .and_then(|ip| match ip {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
            .ok_or(JoinError::NoNodeIp(net))
    }

    /// The lowest IPv6 address of the node network no Node holds (`::1`
    /// is the host's).
    fn free_node_ip_v6(&self, nodes: &[Value]) -> Result<Ipv6Addr, JoinError> {
        let net = self.config.node_cidr_v6;
        // An IPv6 network's addresses start at its network address (the
        // subnet-router anycast): skipping it, the host's is the next.
        lowest_free(net.hosts().skip(1).take(1 << 20).map(IpAddr::V6), nodes)
            .and_then(|ip| match ip {
                IpAddr::V6(ip) => Some(ip),
                IpAddr::V4(_) => None,
            })
            .ok_or(JoinError::NoNodeIpV6(net))
    }

    /// Renews a node's lease; a node that was NotReady becomes Ready again.
    /// Renews `node_name`'s lease; the caller was authenticated as that
    /// node.
    pub fn heartbeat(&self, node_name: &str) -> Result<(), JoinError> {
        let key = ObjectKey::new(Kind::Node, "", node_name);
        let node = self.registry.must_get(&key)?;
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node_name.to_string(), Instant::now());
        if !node_is_ready(&node) {
            self.set_ready(
                node,
                "True",
                "KubeletReady",
                "podnet node is posting ready status",
            )?;
            tracing::info!(node = node_name, "node is Ready again");
        }
        Ok(())
    }

    fn set_ready(
        &self,
        mut node: Value,
        status: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let mut conditions: Vec<Value> = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| str_at(c, "/type") != "Ready");
        conditions.push(ready_condition(status, reason, message));
        node["status"]["conditions"] = Value::Array(conditions);
        self.registry.update_status(node)?;
        Ok(())
    }

    /// One pass of the node lifecycle controller at `now`.
    pub fn check_leases(&self, now: Instant) -> Result<(), ApiError> {
        let nodes = self.registry.list_all(Kind::Node, "")?;
        let names: BTreeSet<&str> = nodes.iter().map(|n| str_at(n, "/metadata/name")).collect();
        {
            // A Node first seen here was never joined with: its grace
            // period starts now, as upstream's starts at its creation.
            let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
            for name in &names {
                if !leases.contains_key(*name) {
                    tracing::info!(node = %name, "a Node no node joined with: NotReady unless it heartbeats within the grace period");
                    leases.insert(name.to_string(), now);
                }
            }
            leases.retain(|name, _| names.contains(name.as_str()));
        }
        for key in podgc::orphaned(&self.registry.list_all(Kind::Pod, "")?, &names) {
            tracing::warn!(pod = %key, "pod garbage collector: deleting a pod bound to a Node that does not exist");
            match self.registry.delete(&key, Some(0), "") {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let expired: Vec<String> = {
            let leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
            leases
                .iter()
                .filter(|(_, t)| now.saturating_duration_since(**t) > self.config.grace_period)
                .map(|(n, _)| n.clone())
                .collect()
        };
        for name in expired {
            let key = ObjectKey::new(Kind::Node, "", &name);
            let Some(node) = self.registry.get(&key)? else {
                self.leases
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&name);
                continue;
            };
            if node_is_ready(&node) {
                tracing::warn!(node = %name, "node stopped posting status: NotReady, evicting its pods");
                self.set_ready(
                    node,
                    "Unknown",
                    "NodeStatusUnknown",
                    "Kubelet stopped posting node status.",
                )?;
            }
            self.evict_pods(&name)?;
        }
        Ok(())
    }

    fn evict_pods(&self, node_name: &str) -> Result<(), ApiError> {
        for pod in self.registry.list_all(Kind::Pod, "")? {
            if str_at(&pod, "/spec/nodeName") == node_name {
                let key = ObjectKey::new(
                    Kind::Pod,
                    str_at(&pod, "/metadata/namespace"),
                    str_at(&pod, "/metadata/name"),
                );
                match self.registry.delete(&key, Some(0), "") {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Runs the node lifecycle controller until `shutdown`.
    pub async fn run_lifecycle(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick =
            tokio::time::interval(self.config.grace_period.min(Duration::from_secs(1)) / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                now = tick.tick() => {
                    if let Err(e) = self.check_leases(now) {
                        tracing::error!(error = %e, "node lifecycle pass failed");
                    }
                }
            }
        }
    }
}
