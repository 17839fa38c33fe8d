//! The load balancers themselves: for every Service of type LoadBalancer,
//! an address from the pool, a real listener per Service port on the host
//! (TCP, and UDP for UDP ports), the Service's `status.loadBalancer`, and
//! the forwarding of each connection into the overlay to a node's NodePort.
//!
//! Node choice follows what a cloud load balancer does with kube-proxy:
//! `externalTrafficPolicy: Cluster` spreads over every Ready node that
//! passes kube-proxy's `/healthz`; `Local` only over nodes whose
//! `healthCheckNodePort` says they run a ready endpoint, so the client's
//! address reaches the pod unchanged. A node that cannot be reached is
//! skipped and the next one tried, once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnet::Ipv4Net;
use podnet_proto::informer::Cache;
use podnet_proto::model::network::{IpFamily, PROXY_HEALTHZ_PORT};
use podnet_proto::model::str_at;
use podnet_proto::model::view::{Protocol, ServiceView};
use podnet_proto::trace::{Recorder, SpanTimer, hop, new_trace_id};
use podnet_proto::v1::ObjectRequest;
use podnet_proto::v1::api_client::ApiClient;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::health::{Check, HealthTable};
use crate::metrics::{EdgeMetrics, Failure, FrontendLabels, UdpMeters};
use crate::nodes::NodeInfo;
use crate::overlay::{OpenError, Overlay};
use crate::pool::{self, Claim, PoolError};

/// Where one load balancer port sends its traffic: read on every new
/// connection, so a changed Service applies without rebinding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    service: String,
    /// The family of the Service's primary ClusterIP: the nodes' NodePort
    /// of that family has its endpoints, as kube-proxy programs one
    /// family's NodePorts per proxier.
    family: IpFamily,
    node_port: u16,
    local: bool,
    health_port: Option<u16>,
}

/// A listener's key: the address, the Service's port and protocol.
type ListenerKey = (Ipv4Addr, u16, Protocol);

struct Listener {
    real_port: u16,
    target: Arc<RwLock<Target>>,
    cancel: CancellationToken,
}

/// UDP flows through the edge, by the source port the edge gave them.
struct UdpSession {
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    last: Instant,
    /// Bytes of replies to this client, on its frontend's series.
    replied: prometheus_client::metrics::counter::Counter,
}

/// How long a UDP flow keeps its session idle, as conntrack's UDP timeout.
const UDP_IDLE: Duration = Duration::from_secs(30);
const UDP_SESSIONS_MAX: usize = 8192;
/// The QUIC error code of a flow the edge ends with a reset.
const FLOW_RESET: quinn::VarInt = quinn::VarInt::from_u32(1);
/// Client connections one load balancer port carries at once.
const MAX_CONNECTIONS_PER_PORT: usize = 8192;

pub struct Balancer {
    pool: Ipv4Net,
    overlay: Arc<Overlay>,
    api: ApiClient<Channel>,
    nodes: RwLock<Vec<NodeInfo>>,
    pub health: HealthTable,
    listeners: Mutex<HashMap<ListenerKey, Listener>>,
    udp_sessions: Mutex<HashMap<u16, UdpSession>>,
    /// (listener, client) → the source port its UDP session uses.
    udp_by_client: Mutex<HashMap<(ListenerKey, SocketAddr), u16>>,
    next_udp_port: std::sync::atomic::AtomicU16,
    recorder: Recorder,
    /// The pool refusal last recorded as an Event, by Service uid: one
    /// Event per new refusal, not one per pass.
    refusals: Mutex<HashMap<String, PoolError>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    pub metrics: Arc<EdgeMetrics>,
}

/// Who records the edge's Events, as a cloud provider's service controller.
const EVENT_SOURCE: &str = "service-controller";

impl Balancer {
    pub fn new(
        pool: Ipv4Net,
        overlay: Arc<Overlay>,
        api: ApiClient<Channel>,
        recorder: Recorder,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Balancer> {
        let balancer = Arc::new(Balancer {
            pool,
            overlay: overlay.clone(),
            api,
            nodes: RwLock::new(Vec::new()),
            health: HealthTable::default(),
            listeners: Mutex::new(HashMap::new()),
            udp_sessions: Mutex::new(HashMap::new()),
            udp_by_client: Mutex::new(HashMap::new()),
            next_udp_port: std::sync::atomic::AtomicU16::new(0),
            recorder,
            refusals: Mutex::new(HashMap::new()),
            tasks,
            shutdown,
            metrics: Arc::new(EdgeMetrics::default()),
        });
        let weak = Arc::downgrade(&balancer);
        overlay.on_udp_reply(Arc::new(move |port, _from, payload| {
            if let Some(b) = weak.upgrade() {
                b.udp_reply(port, payload);
            }
        }));
        balancer
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes the listeners and statuses match the Services and nodes.
    pub async fn reconcile(self: &Arc<Self>, services: &Cache, nodes: Vec<NodeInfo>) {
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = nodes;
        let mut lbs: Vec<&Value> = services.values().filter(|s| is_ours(s)).collect();
        lbs.sort_by_key(|s| {
            (
                str_at(s, "/metadata/creationTimestamp").to_string(),
                str_at(s, "/metadata/namespace").to_string(),
                str_at(s, "/metadata/name").to_string(),
            )
        });
        let claims: BTreeMap<usize, Claim> = lbs
            .iter()
            .enumerate()
            .map(|(i, s)| (i, claim_of(s)))
            .collect();
        let assigned = pool::assign(self.pool, &claims);
        self.report_refusals(&lbs, &assigned);
        let mut wanted: HashSet<ListenerKey> = HashSet::new();
        for (i, svc) in lbs.iter().enumerate() {
            let id = format!(
                "{}/{}",
                str_at(svc, "/metadata/namespace"),
                str_at(svc, "/metadata/name")
            );
            let ip = match &assigned[&i] {
                Ok(ip) => *ip,
                Err(e) => {
                    tracing::warn!(service = %id, error = %e, "no load balancer address");
                    self.write_status(svc, json!({})).await;
                    continue;
                }
            };
            let mut ports = Vec::new();
            let recorded = recorded_ports(svc, ip);
            for (i, (port, proto, target)) in ports_of(svc, &id).into_iter().enumerate() {
                let key = (ip, port, proto);
                wanted.insert(key);
                let before = recorded.get(i).copied();
                if let Some(real) = self.ensure_listener(key, before, target).await {
                    ports.push(json!({"port": real, "protocol": proto.as_str()}));
                }
            }
            let status =
                json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP", "ports": ports}]});
            self.write_status(svc, status).await;
        }
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|key, l| {
            let keep = wanted.contains(key);
            if !keep {
                tracing::info!(address = %key.0, port = l.real_port, "load balancer port closed");
                l.cancel.cancel();
            }
            keep
        });
        drop(listeners);
        self.health.wake();
    }

    /// The listener for `key`, bound if new (on the port its status
    /// recorded, so a restarted edge keeps what clients use, else on the
    /// Service's port, else on a free one); its real port.
    async fn ensure_listener(
        self: &Arc<Self>,
        key: ListenerKey,
        recorded: Option<u16>,
        target: Target,
    ) -> Option<u16> {
        {
            let listeners = self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(l) = listeners.get(&key) {
                *l.target.write().unwrap_or_else(PoisonError::into_inner) = target;
                return Some(l.real_port);
            }
        }
        let (ip, port, proto) = key;
        let target = Arc::new(RwLock::new(target));
        let cancel = self.shutdown.child_token();
        let real_port = match proto {
            Protocol::Tcp => {
                let listener = bind_tcp(ip, port, recorded).await?;
                let real = listener.local_addr().ok()?.port();
                let b = self.clone();
                let (t, c) = (target.clone(), cancel.clone());
                self.tasks
                    .spawn(async move { b.serve_tcp(listener, t, c).await });
                real
            }
            Protocol::Udp => {
                let socket = Arc::new(bind_udp(ip, port, recorded).await?);
                let real = socket.local_addr().ok()?.port();
                let b = self.clone();
                let (t, c) = (target.clone(), cancel.clone());
                self.tasks
                    .spawn(async move { b.serve_udp(key, socket, t, c).await });
                real
            }
            // `ports_of` keeps only the protocols the edge forwards.
            Protocol::Sctp => return None,
        };
        tracing::info!(address = %ip, port, real_port, protocol = proto.as_str(), "load balancer port open");
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Listener {
                    real_port,
                    target,
                    cancel,
                },
            );
        Some(real_port)
    }

    /// Records a Warning Event on each Service the pool refused for a new
    /// reason (in the background: an Event never holds up the listeners).
    fn report_refusals(
        &self,
        lbs: &[&Value],
        assigned: &BTreeMap<usize, Result<Ipv4Addr, PoolError>>,
    ) {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now_refused = HashMap::new();
        for (i, svc) in lbs.iter().enumerate() {
            let Some(Err(e)) = assigned.get(&i) else {
                continue;
            };
            let uid = str_at(svc, "/metadata/uid").to_string();
            if refusals.get(&uid) != Some(e) {
                let (api, svc, e) = (self.api.clone(), (*svc).clone(), e.clone());
                self.tasks.spawn(
                    async move {
                        let source = podnet_proto::events::Source::component(EVENT_SOURCE);
                        let ty = podnet_proto::events::EventType::Warning;
                        if let Err(s) = podnet_proto::events::record(&api, &svc, ty, e.reason(), &e.message(), source).await {
                            tracing::debug!(error = %s.message(), "load balancer event not recorded");
                        }
                    }
                    .in_current_span(),
                );
            }
            now_refused.insert(uid, e.clone());
        }
        *refusals = now_refused;
    }

    async fn write_status(&self, svc: &Value, load_balancer: Value) {
        if svc.pointer("/status/loadBalancer").unwrap_or(&json!({})) == &load_balancer {
            return;
        }
        let mut updated = svc.clone();
        updated["status"]["loadBalancer"] = load_balancer;
        let Ok(body) = serde_json::to_vec(&updated) else {
            return;
        };
        // A conflict means a newer version is on its way through the watch,
        // which brings another pass.
        if let Err(s) = self
            .api
            .clone()
            .update_status(ObjectRequest { object: body })
            .await
        {
            tracing::debug!(error = %s.message(), "load balancer status not written");
        }
    }

    /// The checks the current Services need: `/healthz` on every Ready
    /// node, and each Local Service's health port on every Ready node.
    pub fn checks(&self) -> Vec<Check> {
        let ports: HashSet<u16> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|l| {
                let t = l.target.read().unwrap_or_else(PoisonError::into_inner);
                t.health_port.filter(|_| t.local)
            })
            .collect();
        let mut checks = Vec::new();
        for node in self.nodes().into_iter().filter(|n| n.ready) {
            checks.push(Check {
                node: node.name.clone(),
                port: PROXY_HEALTHZ_PORT,
                path: "/healthz",
            });
            for port in &ports {
                checks.push(Check {
                    node: node.name.clone(),
                    port: *port,
                    path: "/",
                });
            }
        }
        checks
    }

    /// Nodes that may take a new flow for `target`, in random order.
    fn candidates(&self, target: &Target) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self
            .nodes()
            .into_iter()
            .filter(|n| n.ready)
            .filter(|n| match (target.local, target.health_port) {
                // Local: only nodes that said they have an endpoint.
                (true, Some(port)) => self.health.healthy(&n.name, port) == Some(true),
                // Cluster: any node whose proxy is healthy (or not yet checked).
                _ => self.health.healthy(&n.name, PROXY_HEALTHZ_PORT) != Some(false),
            })
            .collect();
        nodes.shuffle(&mut rand::rng());
        nodes
    }

    async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        target: Arc<RwLock<Target>>,
        cancel: CancellationToken,
    ) {
        let Ok(frontend) = listener.local_addr() else {
            return;
        };
        // Connections beyond the limit wait in the kernel's backlog, so a
        // flood of idle clients costs bounded memory here.
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS_PER_PORT));
        loop {
            let permit = tokio::select! {
                () = cancel.cancelled() => return,
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let (client, peer) = tokio::select! {
                () = cancel.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let t = target
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let (b, c) = (self.clone(), cancel.clone());
            self.tasks.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    () = b.forward_tcp(client, peer, frontend, t) => {}
                    () = c.cancelled() => {}
                }
            });
        }
    }

    async fn forward_tcp(
        self: Arc<Self>,
        client: TcpStream,
        peer: SocketAddr,
        frontend: SocketAddr,
        target: Target,
    ) {
        let _ = client.set_nodelay(true);
        let trace_id = new_trace_id();
        let timer = SpanTimer::start(trace_id, hop::EDGE);
        let policy = if target.local { "Local" } else { "Cluster" };
        let labels = FrontendLabels::new(&target.service, frontend, Protocol::Tcp);
        self.metrics.connection(&labels);
        let mut tried = Vec::new();
        let mut status = "no healthy node";
        for node in self.candidates(&target).into_iter().take(2) {
            let dst = SocketAddr::new(node.address(target.family), target.node_port);
            match self
                .overlay
                .open_tcp(&node, peer.port(), dst, trace_id)
                .await
            {
                Ok(flow) => {
                    tried.push(format!("{} ({dst})", node.name));
                    let decision = format!(
                        "{peer} → {frontend} (service {}) → {}, policy {policy}",
                        target.service,
                        tried.join(" then ")
                    );
                    timer.finish(&self.recorder, decision, "ok");
                    let (mut client, mut flow) = (client, flow);
                    let spliced = podnet_overlay::splice(&mut client, &mut flow).await;
                    self.metrics.moved(&labels, spliced.a_to_b, spliced.b_to_a);
                    if let Some(why) = spliced.aborted {
                        // As a TCP RST both ways: the client sees a reset,
                        // the node a reset stream, not a clean end.
                        tracing::debug!(service = %target.service, client = %peer, ?why, "flow reset");
                        let _ = client.set_zero_linger();
                        let (mut recv, mut send) = flow.into_inner();
                        let _ = send.reset(FLOW_RESET);
                        let _ = recv.stop(FLOW_RESET);
                    }
                    return;
                }
                Err(OpenError::Refused) => {
                    self.metrics.failed(&labels, Failure::Refused);
                    tried.push(format!("{} ({dst}) refused", node.name));
                    status = "refused";
                    break;
                }
                Err(OpenError::Unreachable(e)) => {
                    self.metrics.failed(&labels, Failure::Unreachable);
                    tracing::debug!(service = %target.service, node = %node.name, error = %e, "node unreachable, trying another");
                    tried.push(format!("{} ({dst}) unreachable", node.name));
                    status = "unreachable";
                }
            }
        }
        let decision = format!(
            "{peer} → {frontend} (service {}), policy {policy}: {}",
            target.service,
            if tried.is_empty() {
                "no healthy node".to_string()
            } else {
                tried.join(", ")
            }
        );
        if tried.is_empty() {
            self.metrics.failed(&labels, Failure::NoHealthyNode);
        }
        timer.finish(&self.recorder, decision, status);
        // Nobody could take it: reset rather than leave the client waiting.
        let _ = client.set_zero_linger();
    }

    async fn serve_udp(
        self: Arc<Self>,
        key: ListenerKey,
        socket: Arc<UdpSocket>,
        target: Arc<RwLock<Target>>,
        cancel: CancellationToken,
    ) {
        let mut buf = vec![0u8; 65_535];
        let Ok(frontend) = socket.local_addr() else {
            return;
        };
        let mut meters: Option<(String, UdpMeters)> = None;
        loop {
            let (n, client) = tokio::select! {
                () = cancel.cancelled() => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(_) => continue,
                },
            };
            let t = target
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // The series change only when the listener's Service does:
            // no label strings are built per datagram.
            let meters = match &meters {
                Some((service, m)) if *service == t.service => m.clone(),
                _ => {
                    let labels = FrontendLabels::new(&t.service, frontend, Protocol::Udp);
                    let m = self.metrics.udp_meters(&labels);
                    meters = Some((t.service.clone(), m.clone()));
                    m
                }
            };
            meters.datagrams.inc();
            meters.to_backend.inc_by(n as u64);
            let Some(src_port) = self.udp_session(key, &socket, client, &meters.from_backend)
            else {
                continue;
            };
            let Some(node) = self.udp_node(&t, src_port) else {
                continue;
            };
            let dst = SocketAddr::new(node.address(t.family), t.node_port);
            let trace_id = new_trace_id();
            if let Err(e) = self
                .overlay
                .send_udp(&node, src_port, dst, &buf[..n], trace_id)
                .await
            {
                tracing::debug!(error = %e, "UDP datagram dropped");
            }
        }
    }

    /// The source port of `client`'s UDP session on listener `key`.
    /// `None` when every session is in use: the datagram is dropped, as a
    /// full conntrack table drops new flows.
    fn udp_session(
        &self,
        key: ListenerKey,
        socket: &Arc<UdpSocket>,
        client: SocketAddr,
        replied: &prometheus_client::metrics::counter::Counter,
    ) -> Option<u16> {
        let mut by_client = self
            .udp_by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sessions = self
            .udp_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(port) = by_client.get(&(key, client))
            && let Some(s) = sessions.get_mut(port)
        {
            s.last = now;
            return Some(*port);
        }
        if sessions.len() >= UDP_SESSIONS_MAX {
            sessions.retain(|_, s| now.duration_since(s.last) < UDP_IDLE);
            by_client.retain(|_, p| sessions.contains_key(p));
            if sessions.len() >= UDP_SESSIONS_MAX {
                return None;
            }
        }
        // Fewer sessions than ports: a free one is found.
        let port = loop {
            let n = self
                .next_udp_port
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = 40_000 + n % 20_000;
            if !sessions.contains_key(&port) {
                break port;
            }
        };
        sessions.insert(
            port,
            UdpSession {
                socket: socket.clone(),
                client,
                last: now,
                replied: replied.clone(),
            },
        );
        by_client.insert((key, client), port);
        Some(port)
    }

    /// UDP has no handshake to fail over with: one flow sticks to one node
    /// (chosen by its session port) while that node stays a candidate.
    fn udp_node(&self, target: &Target, session: u16) -> Option<NodeInfo> {
        let mut nodes = self.candidates(target);
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let n = nodes.len();
        (n > 0).then(|| nodes.swap_remove(usize::from(session) % n))
    }

    fn udp_reply(self: &Arc<Self>, port: u16, payload: Bytes) {
        let session = {
            let mut sessions = self
                .udp_sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(s) = sessions.get_mut(&port) else {
                return;
            };
            s.last = Instant::now();
            (s.socket.clone(), s.client, s.replied.clone())
        };
        let (socket, client, replied) = session;
        // Replies that do not fit the socket's buffer now are dropped, as UDP.
        if socket.try_send_to(&payload, client).is_ok() {
            replied.inc_by(payload.len() as u64);
        }
    }

    pub fn close_all(&self) {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for l in listeners.values() {
            l.cancel.cancel();
        }
        listeners.clear();
    }
}

/// Services the edge serves: type LoadBalancer without a
/// `loadBalancerClass` (a class names another implementation), not being
/// deleted.
fn is_ours(svc: &Value) -> bool {
    str_at(svc, "/spec/type") == "LoadBalancer"
        && str_at(svc, "/spec/loadBalancerClass").is_empty()
        && svc.pointer("/metadata/deletionTimestamp").is_none()
}

fn claim_of(svc: &Value) -> Claim {
    Claim {
        current: ServiceView(svc).load_balancer_ip(),
        requested: str_at(svc, "/spec/loadBalancerIP").parse().ok(),
    }
}

/// The ports the edge listens for ([`ServiceView::edge_ports`]: those with
/// a NodePort, TCP or UDP), with where each sends its traffic.
fn ports_of(svc: &Value, id: &str) -> Vec<(u16, Protocol, Target)> {
    let local = str_at(svc, "/spec/externalTrafficPolicy") == "Local";
    let family = ServiceView(svc)
        .cluster_ips()
        .first()
        .and_then(|ip| ip.parse().ok())
        .map_or(IpFamily::V4, IpFamily::of);
    let health_port = svc
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok());
    ServiceView(svc)
        .edge_ports()
        .filter_map(|p| {
            Some((
                p.port()?,
                p.protocol()?,
                Target {
                    service: id.to_string(),
                    family,
                    node_port: p.node_port()?,
                    local,
                    health_port,
                },
            ))
        })
        .collect()
}

/// The real ports `status.loadBalancer` records for address `ip`, in the
/// order of the Service's ports.
fn recorded_ports(svc: &Value, ip: Ipv4Addr) -> Vec<u16> {
    let svc = ServiceView(svc);
    if svc.load_balancer_ip() == Some(ip) {
        svc.load_balancer_ports()
    } else {
        Vec::new()
    }
}

/// The ports to try, in order: the one the status recorded (clients use
/// it), the Service's own (another cluster's edge may hold it, or ports
/// below 1024 need root), then any free one.
fn port_choices(port: u16, recorded: Option<u16>) -> Vec<u16> {
    let mut choices: Vec<u16> = recorded
        .filter(|r| *r != port && *r != 0)
        .into_iter()
        .collect();
    choices.extend([port, 0]);
    choices
}

async fn bind_tcp(ip: Ipv4Addr, port: u16, recorded: Option<u16>) -> Option<TcpListener> {
    for p in port_choices(port, recorded) {
        match TcpListener::bind((ip, p)).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::info!(address = %ip, port = p, error = %e, "port not available"),
        }
    }
    tracing::warn!(address = %ip, port, "cannot listen");
    None
}

async fn bind_udp(ip: Ipv4Addr, port: u16, recorded: Option<u16>) -> Option<UdpSocket> {
    for p in port_choices(port, recorded) {
        match UdpSocket::bind((ip, p)).await {
            Ok(s) => return Some(s),
            Err(e) => tracing::info!(address = %ip, port = p, error = %e, "port not available"),
        }
    }
    tracing::warn!(address = %ip, port, "cannot listen");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(spec: Value, status: Value) -> Value {
        json!({"metadata": {"namespace": "default", "name": "web"}, "spec": spec, "status": status})
    }

    #[test]
    fn only_load_balancers_without_a_class_are_ours() {
        assert!(is_ours(&lb(json!({"type": "LoadBalancer"}), json!({}))));
        assert!(!is_ours(&lb(json!({"type": "NodePort"}), json!({}))));
        assert!(!is_ours(&lb(
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}),
            json!({})
        )));
        let mut deleting = lb(json!({"type": "LoadBalancer"}), json!({}));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!is_ours(&deleting));
    }

    #[test]
    fn ports_keep_service_order_and_skip_what_cannot_be_forwarded() {
        let svc = lb(
            json!({
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 32000,
                "ports": [
                    {"port": 80, "nodePort": 30080},
                    {"port": 53, "protocol": "UDP", "nodePort": 30053},
                    {"port": 9, "protocol": "SCTP", "nodePort": 30009},
                    {"port": 443},
                ],
            }),
            json!({}),
        );
        let ports = ports_of(&svc, "default/web");
        let got: Vec<(u16, Protocol, u16)> = ports
            .iter()
            .map(|(p, pr, t)| (*p, *pr, t.node_port))
            .collect();
        assert_eq!(
            got,
            [(80, Protocol::Tcp, 30080), (53, Protocol::Udp, 30053)]
        );
        assert!(
            ports
                .iter()
                .all(|(_, _, t)| t.local && t.health_port == Some(32000))
        );
    }

    #[test]
    fn a_restarted_edge_asks_for_the_ports_it_recorded() {
        let svc = lb(
            json!({"type": "LoadBalancer"}),
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.3", "ports": [{"port": 80}, {"port": 41000}]}]}}),
        );
        assert_eq!(
            recorded_ports(&svc, Ipv4Addr::new(127, 0, 1, 3)),
            [80, 41000]
        );
        assert!(recorded_ports(&svc, Ipv4Addr::new(127, 0, 1, 4)).is_empty());
        assert_eq!(port_choices(443, Some(41000)), [41000, 443, 0]);
        assert_eq!(port_choices(80, Some(80)), [80, 0]);
        assert_eq!(port_choices(80, None), [80, 0]);
    }

    #[test]
    fn claims_come_from_status_and_spec() {
        let svc = lb(
            json!({"type": "LoadBalancer", "loadBalancerIP": "127.0.1.9"}),
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.3"}]}}),
        );
        let c = claim_of(&svc);
        assert_eq!(c.current, Some(Ipv4Addr::new(127, 0, 1, 3)));
        assert_eq!(c.requested, Some(Ipv4Addr::new(127, 0, 1, 9)));
        let bare = claim_of(&lb(json!({"type": "LoadBalancer"}), json!({})));
        assert_eq!((bare.current, bare.requested), (None, None));
    }
}
