//! NetworkPolicy enforcement on this node: an index of the cluster's
//! policies, pods, namespaces and nodes ([`podnet_netpol::Index`], fed by
//! the agent's informers through [`sync`]), judged once per new flow by
//! the datapath after the service proxy's DNAT: egress at the source pod's
//! node before the flow leaves, ingress at the destination pod's node
//! before it reaches the pod.
//!
//! A TCP connection (or SCTP association) is judged when it opens, with
//! its own protocol (an SCTP rule admits no TCP flow to the same port);
//! everything on it afterwards, replies included, rides on that decision,
//! so a policy change applies to new connections and an established one
//! carries on (as conntrack keeps an established connection in iptables-
//! and eBPF-based plugins). UDP has
//! no connection: an allowed datagram records its exchange (source,
//! destination) with conntrack's idle timeout, and a datagram of the
//! reverse direction within it passes both sides unjudged, as a reply.
//! Denied flows are dropped: a TCP or SCTP client sees silence and times out, a
//! datagram is lost. ICMP is not judged (NetworkPolicy speaks of TCP, UDP
//! and SCTP only).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use podnet_netpol::{ContainerPort, Endpoint, Flow, Index, PodInfo, PodKey, PolicyRef, Verdict};

pub use podnet_netpol::Direction;
use podnet_proto::informer::Cache;
use podnet_proto::model::str_at;
use podnet_proto::model::view::{NodeView, Protocol};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long an allowed UDP exchange lets replies through idle, as
/// conntrack's UDP timeout.
const UDP_IDLE: Duration = Duration::from_secs(30);
/// Exchanges kept before the idle ones are pruned; past it even after
/// pruning, new exchanges are judged but not remembered (their replies are
/// judged too).
const UDP_LIMIT: usize = 65_536;

/// Judged flows each node keeps for `podnet flows`, the oldest dropped
/// first.
pub const FLOW_LOG_LIMIT: usize = 4096;

/// One judged flow, as `podnet flows` shows it. Kept as judged (the
/// endpoints and the verdict share the index's pods and policy names), and
/// put into words only when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    pub time: std::time::SystemTime,
    pub direction: Direction,
    pub protocol: Protocol,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The ends as the index knew them: pods or outside addresses.
    pub src_end: Endpoint,
    pub dst_end: Endpoint,
    pub verdict: Verdict,
}

impl FlowRecord {
    /// `namespace/name` of the source pod, when it is one.
    pub fn src_pod(&self) -> Option<String> {
        self.src_end.pod_key().map(ToString::to_string)
    }

    pub fn dst_pod(&self) -> Option<String> {
        self.dst_end.pod_key().map(ToString::to_string)
    }

    pub fn allowed(&self) -> bool {
        self.verdict.is_allowed()
    }

    /// The verdict, for people: "allowed by default/web", "isolated for
    /// ingress by default/deny-all, no rule allows".
    pub fn reason(&self) -> String {
        self.verdict.to_string()
    }

    /// The policies that allowed it, or that isolate the pod it was
    /// denied for.
    pub fn policies(&self) -> Vec<String> {
        match &self.verdict {
            Verdict::Allowed { by: list }
            | Verdict::Denied {
                isolating: list, ..
            } => list.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

/// What NetworkPolicy made of a new TCP connection or SCTP association on
/// one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No policy in the cluster: nothing was judged.
    Unjudged,
    Allowed(Verdict),
    Denied(Verdict),
}

impl Decision {
    pub fn is_denied(&self) -> bool {
        matches!(self, Decision::Denied(_))
    }

    /// The verdict, when there was one.
    pub fn verdict(&self) -> Option<&Verdict> {
        match self {
            Decision::Unjudged => None,
            Decision::Allowed(v) | Decision::Denied(v) => Some(v),
        }
    }
}

/// Flows judged and dropped, per side.
#[derive(Debug, Default)]
pub struct PolicyStats {
    pub allowed: AtomicU64,
    pub dropped_egress: AtomicU64,
    pub dropped_ingress: AtomicU64,
}

/// The node's policy state and its decisions.
#[derive(Debug, Default)]
pub struct Enforcer {
    index: RwLock<Index>,
    /// Allowed UDP exchanges, (source, destination) as judged → last use.
    udp: Mutex<HashMap<(SocketAddr, SocketAddr), Instant>>,
    pub stats: PolicyStats,
    /// The latest judged flows with a pod on the judged side.
    log: Mutex<std::collections::VecDeque<FlowRecord>>,
}

impl Enforcer {
    pub fn new() -> Enforcer {
        Enforcer::default()
    }

    /// The flows kept, oldest first; at most the `last` newest (0: all).
    pub fn flows(&self, last: usize) -> Vec<FlowRecord> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = match last {
            0 => 0,
            n => log.len().saturating_sub(n),
        };
        log.iter().skip(skip).cloned().collect()
    }

    fn record(&self, record: FlowRecord) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() >= FLOW_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(record);
    }

    /// Changes the index under its lock (the agent's informers).
    pub fn update(&self, change: impl FnOnce(&mut Index)) {
        change(&mut self.index.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// Judges a new TCP connection from `src` to `dst` (after DNAT) for
    /// one side.
    pub fn tcp(&self, side: Direction, src: SocketAddr, dst: SocketAddr) -> Decision {
        self.connection(side, Protocol::Tcp, src, dst)
    }

    /// Judges a new connection of `protocol` (TCP, or an SCTP association)
    /// from `src` to `dst` (after DNAT) for one side, once: nothing on it
    /// afterwards is judged. UDP datagrams are [`Enforcer::udp`]'s.
    pub fn connection(
        &self,
        side: Direction,
        protocol: Protocol,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Decision {
        match self.judge(side, src, dst, protocol) {
            Ok(None) => Decision::Unjudged,
            Ok(Some(verdict)) => Decision::Allowed(verdict),
            Err(verdict) => Decision::Denied(verdict),
        }
    }

    /// Judges a UDP datagram for one side: a reply of an exchange allowed
    /// before passes; an allowed one starts (or renews) its exchange.
    pub fn udp(
        &self,
        side: Direction,
        src: SocketAddr,
        dst: SocketAddr,
        now: Instant,
    ) -> Result<(), Verdict> {
        {
            let mut udp = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
            for key in [(dst, src), (src, dst)] {
                if let Some(last) = udp.get_mut(&key)
                    && now.saturating_duration_since(*last) < UDP_IDLE
                {
                    *last = now;
                    return Ok(());
                }
            }
        }
        self.judge(side, src, dst, Protocol::Udp)?;
        let mut udp = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
        if udp.len() >= UDP_LIMIT {
            udp.retain(|_, last| now.saturating_duration_since(*last) < UDP_IDLE);
        }
        if udp.len() < UDP_LIMIT {
            udp.insert((src, dst), now);
        }
        Ok(())
    }

    fn judge(
        &self,
        side: Direction,
        src: SocketAddr,
        dst: SocketAddr,
        protocol: Protocol,
    ) -> Result<Option<Verdict>, Verdict> {
        let (verdict, flow) = {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            if !index.has_policies() {
                return Ok(None);
            }
            let flow = Flow {
                src: index.endpoint(src.ip()),
                dst: index.endpoint(dst.ip()),
                protocol,
                dst_port: dst.port(),
            };
            let verdict = match side {
                Direction::Egress => index.judge_egress(&flow),
                Direction::Ingress => index.judge_ingress(&flow),
            };
            (verdict, flow)
        };
        if telling(&verdict) {
            self.record(FlowRecord {
                time: std::time::SystemTime::now(),
                direction: side,
                protocol,
                src,
                dst,
                src_end: flow.src,
                dst_end: flow.dst,
                verdict: verdict.clone(),
            });
        }
        if verdict.is_allowed() {
            self.stats.allowed.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(verdict));
        }
        let dropped = match side {
            Direction::Egress => &self.stats.dropped_egress,
            Direction::Ingress => &self.stats.dropped_ingress,
        };
        dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(flow.src = %src, flow.dst = %dst, protocol = protocol.as_str(), %verdict, "flow dropped by policy");
        Err(verdict)
    }
}

/// Does a verdict tell a user anything? The side with no pod on it (an
/// outside source's egress) has nothing to say, and a pod's own node (its
/// probes) is never judged against a policy: such verdicts are neither
/// logged nor shown in journeys.
pub fn telling(verdict: &Verdict) -> bool {
    !matches!(verdict, Verdict::NotAPod { .. } | Verdict::LocalNode { .. })
}

/// A pod object as the index holds it: labels, the addresses it has while
/// it runs (a pod that has ended gives its addresses back, and another pod
/// may get them), its container ports and its node.
pub fn pod_info(pod: &Value) -> PodInfo {
    let ended = matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed");
    let mut ips: Vec<IpAddr> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| str_at(ip, "/ip").parse().ok())
        .collect();
    if ips.is_empty()
        && let Ok(ip) = str_at(pod, "/status/podIP").parse()
    {
        ips.push(ip);
    }
    if ended {
        ips.clear();
    }
    let ports = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.pointer("/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|p| {
            Some(ContainerPort {
                name: Some(str_at(p, "/name"))
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                port: u16::try_from(p.pointer("/containerPort")?.as_u64()?).ok()?,
                protocol: match str_at(p, "/protocol") {
                    "" | "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    _ => return None,
                },
            })
        })
        .collect();
    PodInfo {
        key: PodKey::new(
            str_at(pod, "/metadata/namespace"),
            str_at(pod, "/metadata/name"),
        ),
        labels: labels(pod),
        ips,
        ports,
        node: str_at(pod, "/spec/nodeName").to_string(),
    }
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// What the index last took from each informer: object key → its
/// resourceVersion, so an unchanged object is not compiled again.
#[derive(Debug, Default)]
struct Seen {
    policies: BTreeMap<String, String>,
    pods: BTreeMap<String, String>,
    namespaces: BTreeMap<String, String>,
    nodes: BTreeMap<String, String>,
}

/// The informers' caches the index follows.
pub struct Sources {
    pub policies: watch::Receiver<Cache>,
    pub pods: watch::Receiver<Cache>,
    pub namespaces: watch::Receiver<Cache>,
    pub nodes: watch::Receiver<Cache>,
}

/// Keeps `enforcer`'s index in line with the informers, one changed object
/// at a time, until `shutdown`.
pub async fn sync(enforcer: &Enforcer, mut sources: Sources, shutdown: CancellationToken) {
    let mut seen = Seen::default();
    loop {
        {
            // Read in place, not copied: the caches hold every pod of the
            // cluster, and only the changed objects are looked at.
            let policies = sources.policies.borrow_and_update();
            let pods = sources.pods.borrow_and_update();
            let namespaces = sources.namespaces.borrow_and_update();
            let nodes = sources.nodes.borrow_and_update();
            enforcer.update(|index| {
                apply(&mut seen.namespaces, &namespaces, |change| match change {
                    Change::Upsert(ns) => {
                        index.upsert_namespace(str_at(ns, "/metadata/name"), labels(ns))
                    }
                    Change::Remove(key) => index.remove_namespace(key.trim_start_matches('/')),
                });
                apply(&mut seen.nodes, &nodes, |change| match change {
                    Change::Upsert(node) => index.upsert_node(
                        str_at(node, "/metadata/name"),
                        NodeView(node).internal_addresses().collect(),
                    ),
                    Change::Remove(key) => index.remove_node(key.trim_start_matches('/')),
                });
                apply(&mut seen.pods, &pods, |change| match change {
                    Change::Upsert(pod) => index.upsert_pod(pod_info(pod)),
                    Change::Remove(key) => {
                        if let Some((namespace, name)) = key.split_once('/') {
                            index.remove_pod(&PodKey::new(namespace, name));
                        }
                    }
                });
                apply(&mut seen.policies, &policies, |change| match change {
                    Change::Upsert(object) => upsert_policy(index, object),
                    Change::Remove(key) => {
                        if let Some((namespace, name)) = key.split_once('/') {
                            index.remove_policy(&PolicyRef::new(namespace, name));
                        }
                    }
                });
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = sources.policies.changed() => if r.is_err() { return },
            r = sources.pods.changed() => if r.is_err() { return },
            r = sources.namespaces.changed() => if r.is_err() { return },
            r = sources.nodes.changed() => if r.is_err() { return },
        }
    }
}

/// A policy the API server admitted compiles; one that does not (an older
/// server's) is left out, with why, so it allows nothing it did not say.
fn upsert_policy(index: &mut Index, object: &Value) {
    let key = PolicyRef::new(
        str_at(object, "/metadata/namespace"),
        str_at(object, "/metadata/name"),
    );
    let compiled = serde_json::from_value::<NetworkPolicy>(object.clone())
        .map_err(|e| e.to_string())
        .and_then(|policy| podnet_netpol::compile(&policy).map_err(|e| e.to_string()));
    match compiled {
        Ok(policy) => index.upsert_policy(policy),
        Err(error) => {
            tracing::warn!(policy = %key, %error, "NetworkPolicy not enforced");
            index.remove_policy(&key);
        }
    }
}

enum Change<'a> {
    Upsert(&'a Value),
    Remove(&'a str),
}

/// Calls `each` for every object of `cache` new or changed since `seen`
/// and every key gone from it, and records what it saw.
fn apply(seen: &mut BTreeMap<String, String>, cache: &Cache, mut each: impl FnMut(Change<'_>)) {
    let gone: Vec<String> = seen
        .keys()
        .filter(|k| !cache.contains_key(*k))
        .cloned()
        .collect();
    for key in &gone {
        seen.remove(key);
        each(Change::Remove(key));
    }
    for (key, object) in cache {
        let version = str_at(object, "/metadata/resourceVersion");
        if seen
            .get(key)
            .is_some_and(|v| v == version && !version.is_empty())
        {
            continue;
        }
        seen.insert(key.clone(), version.to_string());
        each(Change::Upsert(object));
    }
}

#[cfg(test)]
mod tests;
