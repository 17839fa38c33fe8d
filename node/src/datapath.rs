//! The node's datapath: where a packet or a flow that leaves a pod goes.
//!
//! A destination that is a pod of this node is reached in memory (same
//! semantics, no QUIC). A destination inside another node's podCIDR (or
//! another node's IP) goes over the overlay: one QUIC bidirectional stream
//! per TCP flow or SCTP association, one QUIC datagram per UDP datagram or
//! ICMP message, each starting with a `FlowHeader`. Anything else is
//! unroutable and silently dropped, so the sender times out as it would on
//! a real network.
//!
//! SCTP takes TCP's path all the way, with its own protocol: the service
//! proxy's SCTP rules, NetworkPolicy judged as SCTP, the pod's SCTP port
//! table, and an `SctpOpen` header on the overlay. An association nothing
//! listens for is refused (SCTP's ABORT: the client's connect fails with
//! ECONNREFUSED), as a TCP SYN gets a RST.
//!
//! Inbound, a flow is accepted only if its source lies in the podCIDR (or
//! node IP) of the node whose certificate the connection presented: a node
//! cannot speak for another node's pods. Bad headers and forged sources are
//! dropped and counted, never a panic.
//!
//! ICMP echo requests carry a TTL and every node on the way is a router
//! ([`echo_step`]): the source node as its pods' gateway (the podCIDR's
//! `.1`), the destination node as its IP. Where the TTL runs out the node
//! answers time exceeded from that address, so `traceroute` in a pod
//! measures the path the datapath really takes, over the same overlay
//! connection and emulated link as any datagram, rather than reading a hop
//! list the node would have to keep in step with its routing. The TTL is
//! checked before the destination is looked up (a kind node's default
//! route forwards anything), so toward an address that leads nowhere the
//! gateway still answers.
//!
//! Both families are carried alike: a dual-stack node reaches its pods at
//! their IPv6 addresses too, routes every node's IPv6 podCIDR, and its
//! IPv6 gateway (the IPv6 podCIDR's `::1`) is a router as the IPv4 one is.
//!
//! A pod's flow to an address that is not the cluster's own (the outside
//! world's namespaces) leaves with the node's IP as its source, as
//! ip-masq-agent masquerades it ([`masquerade`]); UDP replies find the
//! pod again through the egress table.
//!
//! A link partitioned in `Reject` mode (`LinkParams::rejects`) is refused
//! here, where the link starts, as an iptables REJECT on the node would
//! refuse it: a stream flow routed over it fails to open with
//! ECONNREFUSED (for a flow served for another node or the edge, the
//! refusal goes back as the open status), a UDP datagram gets port
//! unreachable back to its sender (its socket's next call fails with
//! ECONNREFUSED), and the overlay connections to that peer are closed, so
//! flows already on the link are reset rather than left hanging. The link
//! emulator below drops whatever still reaches a partitioned link. An ICMP
//! echo across it goes unanswered.
//!
//! A link's `duplicate` also applies to each pod UDP datagram (one QUIC
//! datagram) sent over it: QUIC discards a duplicated underlay packet, so
//! the copy the link emulator makes never reaches a pod, while an
//! encapsulation without replay protection (VXLAN) would deliver it twice.
//! Stream bytes are not copied: TCP discards a duplicated segment too.
//!
//! Service proxying and network policy are not decided here.

mod masquerade;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use podnet_overlay::wire::{MAX_HEADER_LEN, PREFIX_LEN};
use podnet_overlay::{
    EmulatedSocket, FlowHeader, FrameKind, LinkTable, NodeIdentity, OpenStatus, Peers,
};
use podnet_pod::netns::{IcmpReply, NetNs, PodStream, StreamMeter, StreamProtocol};
use podnet_proto::model::network::{EDGE_NAME, IpFamily};
use podnet_proto::trace::{Recorder, SpanTimer, hop};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::policy::{Direction, Enforcer};
use crate::proxy::{Mode, Origin, Pick, ProxyState, ServiceTable};
use crate::proxy_metrics::{ProxyDrop, ProxyMetrics};
use podnet_proto::model::view::Protocol;

/// Where a prefix of addresses lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// A podCIDR (of either family), or a node IP as a /32.
    pub cidr: IpNet,
    pub node: String,
    pub underlay: SocketAddr,
}

/// Counters an operator would chart.
#[derive(Debug, Default)]
pub struct Stats {
    pub flows_out: AtomicU64,
    pub flows_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub bad_headers: AtomicU64,
    pub forged_sources: AtomicU64,
    pub unroutable: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    /// Flows and datagrams refused by a link partitioned in Reject mode.
    pub link_rejected: AtomicU64,
    /// Pod UDP datagrams sent twice by a link's `duplicate`.
    pub datagrams_duplicated: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub flows_out: u64,
    pub flows_in: u64,
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    pub bad_headers: u64,
    pub forged_sources: u64,
    pub unroutable: u64,
    pub datagrams_dropped: u64,
    pub link_rejected: u64,
    pub datagrams_duplicated: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            flows_out: l(&self.flows_out),
            flows_in: l(&self.flows_in),
            datagrams_out: l(&self.datagrams_out),
            datagrams_in: l(&self.datagrams_in),
            bad_headers: l(&self.bad_headers),
            forged_sources: l(&self.forged_sources),
            unroutable: l(&self.unroutable),
            datagrams_dropped: l(&self.datagrams_dropped),
            link_rejected: l(&self.link_rejected),
            datagrams_duplicated: l(&self.datagrams_duplicated),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a node's datapath needs to know about its place in the cluster.
#[derive(Debug, Clone)]
pub struct DatapathConfig {
    pub node_name: String,
    /// The node's own (emulated) IP: NodePorts answer here.
    pub node_ip: Ipv4Addr,
    /// The node's IPv6 InternalIP, on a cluster with IPv6.
    pub node_ip6: Option<Ipv6Addr>,
    /// The node's IPv4 podCIDR, on a cluster with IPv4.
    pub pod_cidr: Option<Ipv4Net>,
    /// The node's IPv6 podCIDR, on a cluster with IPv6.
    pub pod_cidr_v6: Option<Ipv6Net>,
    /// The IPv4 Service range, on a cluster with IPv4.
    pub service_cidr: Option<Ipv4Net>,
    /// The IPv6 Service range, on a cluster with IPv6.
    pub service_cidr_v6: Option<Ipv6Net>,
    pub proxy_mode: Mode,
    /// The host's address on the node network: the only source the edge
    /// may send from.
    pub host_ip: Option<Ipv4Addr>,
    /// The host's IPv6 address, on a cluster with IPv6.
    pub host_ip6: Option<Ipv6Addr>,
}

/// How long a proxied UDP flow keeps its reverse translation idle, as
/// conntrack's UDP timeout.
const UDP_CONNTRACK_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// Entries kept before the oldest are pruned.
const CONNTRACK_LIMIT: usize = 65_536;

/// A proxied UDP flow's translation: (source, endpoint, last use, the
/// Service port's byte counters).
type Pinned = (
    SocketAddr,
    SocketAddr,
    std::time::Instant,
    Option<StreamMeter>,
);

/// A masqueraded UDP NodePort flow: (client, NodePort asked, last use,
/// the Service port's byte counters).
type Masqueraded = (
    SocketAddr,
    SocketAddr,
    std::time::Instant,
    Option<StreamMeter>,
);

/// A tracked UDP Service flow: (the Service address asked, last use, its
/// byte counters).
type Tracked = (SocketAddr, std::time::Instant, Option<StreamMeter>);

/// A flow after the service proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxied {
    /// Not addressed to a Service: unchanged.
    Direct,
    /// Rewritten: new source (SNAT) and destination (DNAT).
    To {
        src: SocketAddr,
        dst: SocketAddr,
    },
    Refuse,
    Drop,
}

pub struct Datapath {
    node_name: String,
    node_ip: Ipv4Addr,
    node_ip6: Option<Ipv6Addr>,
    local_cidr: Option<Ipv4Net>,
    local_cidr_v6: Option<Ipv6Net>,
    service_cidr: Option<Ipv4Net>,
    service_cidr_v6: Option<Ipv6Net>,
    proxy_mode: Mode,
    services: RwLock<Arc<ServiceTable>>,
    proxy_state: Mutex<ProxyState>,
    /// (client, backend) → the ClusterIP:port the client sent to, so UDP
    /// replies come back from the address that was asked.
    conntrack: Mutex<HashMap<(SocketAddr, SocketAddr), Tracked>>,
    /// (client, Service address asked) → (source, endpoint, last use) of a
    /// proxied UDP flow: conntrack's entry, which keeps the flow on its
    /// endpoint (and its masquerade port) while it is in use.
    udp_flows: Mutex<HashMap<(SocketAddr, SocketAddr), Pinned>>,
    /// (this node's masquerade address, backend) → (client, NodePort) of a
    /// UDP NodePort flow with the Cluster policy.
    masquerade: Mutex<HashMap<(SocketAddr, SocketAddr), Masqueraded>>,
    /// UDP flows of this node's pods masqueraded to outside addresses.
    egress: Mutex<masquerade::EgressTable>,
    next_snat_port: std::sync::atomic::AtomicU16,
    /// Local namespaces by each of their addresses.
    pods: RwLock<HashMap<IpAddr, Arc<NetNs>>>,
    routes: RwLock<Vec<Route>>,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    links: LinkTable,
    peers: Peers,
    /// Every overlay connection, dialed or accepted, while open: a link
    /// partitioned in Reject mode closes those with its peer.
    conns: Mutex<Vec<quinn::Connection>>,
    host_ip: Option<Ipv4Addr>,
    host_ip6: Option<Ipv6Addr>,
    /// The edge's latest connection: replies to the host's address (UDP
    /// through a LoadBalancer) go back on it; the node never dials the edge.
    edge: Mutex<Option<quinn::Connection>>,
    recorder: RwLock<Recorder>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    pub stats: Stats,
    /// NetworkPolicy: every new flow is judged here (egress for this
    /// node's pods, ingress for flows reaching them).
    policy: Enforcer,
    /// The service proxy's per-Service counters and its drops.
    proxy_metrics: ProxyMetrics,
}

/// What the remote end of one connection has proven about itself.
struct PeerAuth {
    conn: quinn::Connection,
    verified: Mutex<Option<String>>,
}

impl Datapath {
    /// Starts the overlay endpoint on `socket` and serves inbound flows
    /// until `shutdown`.
    pub fn start(
        config: DatapathConfig,
        identity: &NodeIdentity,
        socket: std::net::UdpSocket,
        shutdown: CancellationToken,
    ) -> io::Result<Arc<Datapath>> {
        let links = LinkTable::default();
        let socket = EmulatedSocket::new(socket, links.clone())?;
        let endpoint = podnet_overlay::endpoint(socket, Some(identity.server_config()))?;
        let dp = Arc::new(Datapath {
            node_name: config.node_name,
            node_ip: config.node_ip,
            node_ip6: config.node_ip6,
            local_cidr: config.pod_cidr,
            local_cidr_v6: config.pod_cidr_v6,
            service_cidr: config.service_cidr,
            service_cidr_v6: config.service_cidr_v6,
            proxy_mode: config.proxy_mode,
            services: RwLock::new(Arc::new(ServiceTable::default())),
            proxy_state: Mutex::new(ProxyState::default()),
            conntrack: Mutex::new(HashMap::new()),
            udp_flows: Mutex::new(HashMap::new()),
            masquerade: Mutex::new(HashMap::new()),
            egress: Mutex::new(masquerade::EgressTable::new(
                UDP_CONNTRACK_IDLE,
                CONNTRACK_LIMIT,
            )),
            next_snat_port: std::sync::atomic::AtomicU16::new(0),
            pods: RwLock::new(HashMap::new()),
            routes: RwLock::new(Vec::new()),
            endpoint,
            client_config: identity.client_config(),
            links,
            peers: Peers::default(),
            conns: Mutex::new(Vec::new()),
            host_ip: config.host_ip,
            host_ip6: config.host_ip6,
            edge: Mutex::new(None),
            recorder: RwLock::new(Recorder::disabled()),
            tasks: TaskTracker::new(),
            shutdown,
            stats: Stats::default(),
            policy: Enforcer::new(),
            proxy_metrics: ProxyMetrics::default(),
        });
        dp.tasks.spawn(
            dp.clone()
                .accept_loop()
                .instrument(tracing::info_span!("overlay.accept")),
        );
        Ok(dp)
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn links(&self) -> &LinkTable {
        &self.links
    }

    /// Applies a link's settings to what this node sends to the peer at
    /// `underlay`. A partition in Reject mode also resets the flows on the
    /// link: its overlay connections with that peer are closed, so every
    /// stream on them fails here at once (the peer, hearing nothing more,
    /// gives up on its side at the idle timeout; a partition both ways
    /// closes them on both sides).
    pub fn set_link(&self, underlay: SocketAddr, params: podnet_proto::model::LinkParams) {
        self.links.set(underlay, params);
        if params.rejects() {
            self.close_connections_to(underlay);
        }
    }

    /// Clears a link's settings (see [`Datapath::set_link`]).
    pub fn clear_link(&self, underlay: SocketAddr) {
        self.links.clear(underlay);
    }

    fn remember(&self, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.retain(|c| c.close_reason().is_none());
        conns.push(conn.clone());
    }

    fn close_connections_to(&self, underlay: SocketAddr) {
        let peer = canonical(underlay);
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.retain(|c| {
            if c.close_reason().is_some() {
                return false;
            }
            if canonical(c.remote_address()) != peer {
                return true;
            }
            tracing::info!(peer = %underlay, "link partitioned (Reject): overlay connection closed, its flows reset");
            c.close(1u32.into(), b"link partitioned (Reject)");
            false
        });
    }

    /// Is the link to `route`'s node partitioned in Reject mode?
    fn rejects(&self, route: &Route) -> bool {
        let rejects = self.links.get(route.underlay).rejects();
        if rejects {
            bump(&self.stats.link_rejected);
        }
        rejects
    }

    /// Closes every connection and waits (bounded) for peers to learn it.
    pub async fn close(&self) {
        self.shutdown.cancel();
        self.endpoint.close(0u32.into(), b"node shutting down");
        self.tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            self.tasks.wait().await;
            self.endpoint.wait_idle().await;
        })
        .await;
    }

    /// Makes `ns` reachable at each of its addresses.
    pub fn add_pod(&self, ns: Arc<NetNs>) {
        let mut pods = self.pods.write().unwrap_or_else(PoisonError::into_inner);
        for ip in ns.addresses() {
            pods.insert(ip, ns.clone());
        }
    }

    /// Forgets `ns` at each of its addresses.
    pub fn remove_pod(&self, ns: &NetNs) {
        let mut pods = self.pods.write().unwrap_or_else(PoisonError::into_inner);
        for ip in ns.addresses() {
            pods.remove(&ip);
        }
    }

    pub fn local_pod(&self, ip: impl Into<IpAddr>) -> Option<Arc<NetNs>> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ip.into())
            .cloned()
    }

    /// Is `ip` this node's own (emulated) IP?
    fn is_node_ip(&self, ip: IpAddr) -> bool {
        ip == IpAddr::V4(self.node_ip) || self.node_ip6.is_some_and(|v6| ip == IpAddr::V6(v6))
    }

    /// Is `ip` in a Service range of the cluster?
    fn is_service_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.service_cidr.is_some_and(|c| c.contains(&ip)),
            IpAddr::V6(ip) => self.service_cidr_v6.is_some_and(|c| c.contains(&ip)),
        }
    }

    /// Is `ip` in this node's own podCIDRs?
    fn is_local_cidr(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.local_cidr.is_some_and(|c| c.contains(&ip)),
            IpAddr::V6(ip) => self.local_cidr_v6.is_some_and(|c| c.contains(&ip)),
        }
    }

    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
    }

    fn route(&self, ip: IpAddr) -> Option<Route> {
        // This node's own podCIDRs never leave the node, whatever the table says.
        if self.is_local_cidr(ip) {
            return None;
        }
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes
            .iter()
            .filter(|r| r.cidr.contains(&ip))
            .max_by_key(|r| r.cidr.prefix_len())
            .cloned()
    }

    /// The connection to a peer node, made on first use and remade when
    /// it has closed.
    async fn peer(self: &Arc<Self>, route: &Route) -> io::Result<quinn::Connection> {
        let (conn, new) = self
            .peers
            .connect(
                &self.endpoint,
                &self.client_config,
                &route.node,
                route.underlay,
            )
            .await?;
        if !new {
            return Ok(conn);
        }
        self.remember(&conn);
        let auth = Arc::new(PeerAuth {
            conn: conn.clone(),
            verified: Mutex::new(None),
        });
        self.tasks.spawn(
            self.clone()
                .serve_connection(auth)
                .instrument(tracing::debug_span!("overlay.conn", peer.node = %route.node)),
        );
        Ok(conn)
    }

    /// Where the proxy and overlay hops of request journeys go.
    pub fn set_recorder(&self, recorder: Recorder) {
        *self
            .recorder
            .write()
            .unwrap_or_else(PoisonError::into_inner) = recorder;
    }

    fn recorder(&self) -> Recorder {
        self.recorder
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn node_ip(&self) -> Ipv4Addr {
        self.node_ip
    }

    /// The node's NetworkPolicy state, which the agent keeps current.
    pub fn proxy_metrics(&self) -> &ProxyMetrics {
        &self.proxy_metrics
    }

    /// QUIC connections open on the overlay endpoint (peers and the edge).
    pub fn overlay_connections(&self) -> usize {
        self.endpoint.open_connections()
    }

    pub fn policy(&self) -> &Enforcer {
        &self.policy
    }

    /// The node's InternalIP of `dst`'s family (IPv4 when the node has no
    /// IPv6 one): where the node's own flows to `dst` leave from.
    pub fn node_ip_for(&self, dst: IpAddr) -> IpAddr {
        match (dst, self.node_ip6) {
            (IpAddr::V6(_), Some(v6)) => IpAddr::V6(v6),
            _ => IpAddr::V4(self.node_ip),
        }
    }

    /// The node's podCIDRs: its IPv4 one and its IPv6 one, each on a
    /// cluster of that family.
    pub fn pod_cidrs(&self) -> (Option<Ipv4Net>, Option<Ipv6Net>) {
        (self.local_cidr, self.local_cidr_v6)
    }

    /// Replaces the service proxy's table (Services and EndpointSlices).
    pub fn set_services(&self, table: ServiceTable) {
        *self
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }

    pub fn services(&self) -> Arc<ServiceTable> {
        self.services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A masquerade source toward `dst`: the node's InternalIP of its
    /// family (IPv4 when the node has no IPv6 one).
    fn snat_source(&self, dst: IpAddr) -> SocketAddr {
        let n = self
            .next_snat_port
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ip = self.node_ip_for(dst);
        // Clear of the NodePort range and of the pods' ephemeral range.
        SocketAddr::new(ip, 20000 + n % 10000)
    }

    /// The service proxy: a flow to a ClusterIP:port, or to this node's
    /// IP:nodePort, gets an endpoint (DNAT); NodePort flows with the Cluster
    /// policy also get this node's IP as source (SNAT), as kube-proxy
    /// masquerades them.
    ///
    /// Also the Service port's byte counters, for a flow sent to one of
    /// its endpoints.
    fn proxy(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        proto: Protocol,
        trace_id: u64,
    ) -> (Proxied, Option<StreamMeter>) {
        if trace_id == 0 {
            // Untraced (UDP datagrams): no clock reads on the per-packet path.
            return self.proxy_untraced(src, dst, proto);
        }
        let timer = SpanTimer::start(trace_id, hop::PROXY);
        let (proxied, meter) = self.proxy_untraced(src, dst, proto);
        if !matches!(proxied, Proxied::Direct) {
            let (decision, status) = match proxied {
                Proxied::To { src: s, dst: d } if s == src => {
                    (format!("{dst} → endpoint {d}, client {src} kept"), "ok")
                }
                Proxied::To { src: s, dst: d } => (
                    format!("{dst} → endpoint {d}, client {src} masqueraded as {s}"),
                    "ok",
                ),
                Proxied::Refuse => (
                    format!("{dst}: no endpoints, connection refused"),
                    "refused",
                ),
                _ => (
                    format!("{dst}: no local endpoint (traffic policy Local) or no rule, dropped"),
                    "dropped",
                ),
            };
            timer.finish(&self.recorder(), decision, status);
        }
        (proxied, meter)
    }

    fn proxy_untraced(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        proto: Protocol,
    ) -> (Proxied, Option<StreamMeter>) {
        let table = self.services();
        let (port, origin) = if self.is_service_ip(dst.ip()) {
            match table.by_cluster_ip(dst, proto) {
                Some(p) => (p, Origin::ClusterIp),
                // No rule for this address: it leads nowhere.
                None => {
                    self.proxy_metrics.dropped(ProxyDrop::NoRule);
                    return (Proxied::Drop, None);
                }
            }
        } else if self.is_node_ip(dst.ip()) {
            match table.by_node_port(dst.port(), proto, IpFamily::of(dst.ip())) {
                Some(p) => (p, Origin::NodePort),
                None => return (Proxied::Direct, None),
            }
        } else {
            return (Proxied::Direct, None);
        };
        let now = std::time::Instant::now();
        let pick = {
            let mut state = self
                .proxy_state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match self.proxy_mode {
                Mode::Random => {
                    state.pick(port, origin, src.ip(), &self.node_name, now, rand::random())
                }
                Mode::RoundRobin => {
                    state.pick_round_robin(port, origin, src.ip(), &self.node_name, now)
                }
            }
        };
        match pick {
            Pick::To(endpoint) => {
                let snat = origin == Origin::NodePort && !port.external_local;
                let src = if snat {
                    self.snat_source(endpoint.ip())
                } else {
                    src
                };
                tracing::debug!(svc = %port.id, flow.src = %src, endpoint = %endpoint, "service flow");
                let meter = self.proxy_metrics.new_flow(&port.id, proto);
                (Proxied::To { src, dst: endpoint }, Some(meter))
            }
            Pick::Refuse => {
                self.proxy_metrics.dropped(ProxyDrop::NoEndpoints);
                (Proxied::Refuse, None)
            }
            Pick::Drop => {
                self.proxy_metrics.dropped(ProxyDrop::NoLocalEndpoint);
                (Proxied::Drop, None)
            }
        }
    }

    /// Opens a TCP flow from `src` (a local pod or this node) to `dst`,
    /// through the service proxy.
    pub async fn connect_tcp(
        self: &Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        self.connect_stream(StreamProtocol::Tcp, src, dst, trace_id)
            .await
    }

    /// Opens an SCTP association from `src` (a local pod or this node) to
    /// `dst`, through the service proxy's SCTP rules.
    pub async fn connect_sctp(
        self: &Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        self.connect_stream(StreamProtocol::Sctp, src, dst, trace_id)
            .await
    }

    /// Opens a stream flow of `protocol`: the proxy, the source's egress
    /// policy, the egress masquerade, then the destination.
    pub async fn connect_stream(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        bump(&self.stats.flows_out);
        // A flow's journey starts at its first hop.
        let trace_id = if trace_id == 0 {
            podnet_proto::trace::new_trace_id()
        } else {
            trace_id
        };
        let origin = src;
        let (proxied, meter) = self.proxy(src, dst, protocol.protocol(), trace_id);
        let (src, dst) = match proxied {
            Proxied::Direct => (src, dst),
            Proxied::To { src, dst } => (src, dst),
            Proxied::Refuse => return Err(io::ErrorKind::ConnectionRefused.into()),
            Proxied::Drop => return std::future::pending().await,
        };
        // The source pod's egress, toward the backend the proxy chose.
        let decision = self
            .policy
            .connection(Direction::Egress, protocol.protocol(), origin, dst);
        self.policy_hop(trace_id, origin, dst, Direction::Egress, &decision);
        if decision.is_denied() {
            return std::future::pending().await;
        }
        let src = if self.masquerades(src, dst) {
            // The stream is the translation: the outside sees the node.
            let masq = self.snat_source(dst.ip());
            tracing::debug!(flow.src = %src, flow.dst = %dst, masquerade = %masq, "egress masqueraded");
            masq
        } else {
            src
        };
        let stream = self.connect_direct(protocol, src, dst, trace_id).await?;
        Ok(match meter {
            Some(meter) => stream.metered(meter),
            None => stream,
        })
    }

    /// The journey's policy hop: the verdict this node gave a new flow.
    fn policy_hop(
        &self,
        trace_id: u64,
        src: SocketAddr,
        dst: SocketAddr,
        side: Direction,
        decision: &crate::policy::Decision,
    ) {
        let Some(verdict) = decision.verdict().filter(|v| crate::policy::telling(v)) else {
            return;
        };
        let recorder = self.recorder();
        if !recorder.enabled() {
            // Nothing would keep the words: spare every new flow the
            // formatting.
            return;
        }
        let status = if decision.is_denied() {
            "dropped"
        } else {
            "ok"
        };
        let decision = format!("{src} → {dst} {side} on {}: {verdict}", self.node_name);
        SpanTimer::start(trace_id, hop::POLICY).finish(&recorder, decision, status);
    }

    /// Is a flow from `src` to `dst` (after the proxy) a pod's flow to
    /// the outside, which leaves as the node?
    fn masquerades(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        masquerade::masquerades(
            src.ip(),
            dst.ip(),
            &masquerade::Internal {
                pod_cidr: self.local_cidr,
                service_cidr: self.service_cidr,
                node_ip: self.node_ip,
                host_ip: self.host_ip,
                routes: &routes,
            },
        )
    }

    /// Opens a TCP flow or SCTP association to an address that is not a
    /// Service. Boxed: a NodePort flow served for a peer opens one too, and
    /// the recursion through the connection tasks needs a named future
    /// type.
    fn connect_direct(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'_, io::Result<PodStream>> {
        Box::pin(self.connect_direct_inner(protocol, src, dst, trace_id))
    }

    async fn connect_direct_inner(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        // The node's own IP is its host namespace, registered as a pod:
        // health checks listen there.
        if let Some(ns) = self.local_pod(dst.ip()) {
            // A pod of this node: its ingress, as a flow from another node's.
            let decision =
                self.policy
                    .connection(Direction::Ingress, protocol.protocol(), src, dst);
            self.policy_hop(trace_id, src, dst, Direction::Ingress, &decision);
            if decision.is_denied() {
                return std::future::pending().await;
            }
            let (a, b) = PodStream::local_pair(trace_id);
            return match ns.deliver_stream(protocol, dst.port(), (b, src)) {
                Ok(()) => Ok(a),
                Err(Some(_)) => Err(io::ErrorKind::ConnectionRefused.into()),
                Err(None) => std::future::pending().await,
            };
        }
        let Some(route) = self.route(dst.ip()).filter(|r| r.node != self.node_name) else {
            bump(&self.stats.unroutable);
            return std::future::pending().await;
        };
        if self.rejects(&route) {
            tracing::debug!(flow.src = %src, flow.dst = %dst, peer.node = %route.node, "refused: link partitioned (Reject)");
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        let conn = self.peer(&route).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(io::Error::from)?;
        let header = FlowHeader {
            kind: open_kind(protocol),
            src,
            dst,
            trace_id,
        };
        send.write_all(&header.to_bytes())
            .await
            .map_err(io::Error::from)?;
        let mut status = [0u8; OpenStatus::LEN];
        match recv.read_exact(&mut status).await {
            Ok(()) => match OpenStatus::decode(&status) {
                Ok(OpenStatus::Accepted) => Ok(PodStream::Quic {
                    send,
                    recv,
                    trace_id,
                }),
                Ok(OpenStatus::Refused) => Err(io::ErrorKind::ConnectionRefused.into()),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad open status from peer node",
                )),
            },
            // The far end dropped the flow without an answer: the sender
            // sees silence, as with a SYN sent into the void.
            Err(quinn::ReadExactError::FinishedEarly(_)) => std::future::pending().await,
            Err(quinn::ReadExactError::ReadError(e)) => Err(io::Error::from(e)),
        }
    }

    /// Sends one UDP datagram from `src` to `dst`. Delivery is not
    /// confirmed, as with UDP.
    pub async fn send_udp(
        self: &Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
        trace_id: u64,
    ) {
        bump(&self.stats.datagrams_out);
        // Who hears of it if a link refuses the datagram: its sender, about
        // the address it sent to.
        let sender = (src, dst);
        if self.is_node_ip(dst.ip())
            && let Some((client, node_port, meter)) = self.unmasquerade(dst, src)
        {
            // A reply on a masqueraded NodePort flow goes back to the
            // client, from the NodePort it asked.
            if let Some(meter) = meter {
                meter.read.inc_by(payload.len() as u64);
            }
            return self
                .send_udp_direct(node_port, client, payload, trace_id, sender)
                .await;
        }
        let egress_reply = if self.is_node_ip(dst.ip()) {
            self.egress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .inbound(dst.port(), src, std::time::Instant::now())
        } else {
            None
        };
        if let Some((client, asked)) = egress_reply {
            // A reply from the outside to a pod's masqueraded flow goes
            // back to the pod, from the address it asked.
            return self
                .send_udp_direct(asked, client, payload, trace_id, sender)
                .await;
        }
        let asked = dst;
        let origin = src;
        let (proxied, meter) = self.proxy_udp(src, dst);
        let (src, dst) = match proxied {
            Proxied::Direct => (src, dst),
            Proxied::To {
                src: new_src,
                dst: endpoint,
            } => {
                if new_src == src {
                    self.track(src, endpoint, dst, meter.clone());
                } else {
                    self.track_masquerade(new_src, endpoint, src, dst, meter.clone());
                }
                (new_src, endpoint)
            }
            Proxied::Refuse => {
                // kube-proxy rejects with ICMP port unreachable.
                if let Some(origin) = self.local_pod(src.ip()) {
                    origin.deliver_udp(src.port(), Err(io::ErrorKind::ConnectionRefused));
                }
                return;
            }
            Proxied::Drop => return,
        };
        let now = std::time::Instant::now();
        if self
            .policy
            .udp(Direction::Egress, origin, dst, now)
            .is_err()
        {
            return;
        }
        if let Some(meter) = &meter {
            meter.written.inc_by(payload.len() as u64);
        }
        if self.masquerades(src, dst) {
            return self.send_udp_masqueraded(src, dst, asked, payload);
        }
        self.send_udp_direct(src, dst, payload, trace_id, sender)
            .await;
    }

    /// The service proxy for a UDP datagram: a flow conntrack still holds
    /// (the same client and Service address within the idle timeout, its
    /// endpoint still one the Service may use) keeps its translation, as
    /// the kernel's conntrack keeps every packet of a flow on the endpoint
    /// its first one got; kube-proxy clears the entries of endpoints that
    /// left, which the check of the current rules stands for. A new flow
    /// is proxied and remembered.
    fn proxy_udp(&self, src: SocketAddr, dst: SocketAddr) -> (Proxied, Option<StreamMeter>) {
        // Only Service addresses are translated: pod-to-pod datagrams skip
        // the table.
        if !self.is_service_ip(dst.ip()) && !self.is_node_ip(dst.ip()) {
            return (Proxied::Direct, None);
        }
        let now = std::time::Instant::now();
        let pinned = {
            let mut flows = self
                .udp_flows
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            flows
                .get_mut(&(src, dst))
                .filter(|(_, _, last, _)| now.duration_since(*last) < UDP_CONNTRACK_IDLE)
                .map(|(s, e, last, meter)| {
                    *last = now;
                    (*s, *e, meter.clone())
                })
        };
        if let Some((new_src, endpoint, meter)) = pinned
            && self.still_usable(dst, endpoint)
        {
            return (
                Proxied::To {
                    src: new_src,
                    dst: endpoint,
                },
                meter,
            );
        }
        let (proxied, meter) = self.proxy(src, dst, Protocol::Udp, 0);
        if let Proxied::To {
            src: new_src,
            dst: endpoint,
        } = proxied
        {
            let mut flows = self
                .udp_flows
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if flows.len() >= CONNTRACK_LIMIT {
                flows.retain(|_, (_, _, last, _)| now.duration_since(*last) < UDP_CONNTRACK_IDLE);
            }
            flows.insert((src, dst), (new_src, endpoint, now, meter.clone()));
        }
        (proxied, meter)
    }

    /// Is `endpoint` one a new flow to Service address `dst` could still
    /// be sent to (the rules now, its traffic policy applied)?
    fn still_usable(&self, dst: SocketAddr, endpoint: SocketAddr) -> bool {
        let table = self.services();
        let (port, local_only) = if self.is_service_ip(dst.ip()) {
            match table.by_cluster_ip(dst, Protocol::Udp) {
                Some(p) => (p, p.internal_local),
                None => return false,
            }
        } else {
            match table.by_node_port(dst.port(), Protocol::Udp, IpFamily::of(dst.ip())) {
                Some(p) => (p, p.external_local),
                None => return false,
            }
        };
        crate::proxy::usable_endpoints(&port.endpoints, local_only, &self.node_name)
            .iter()
            .any(|e| e.addr == endpoint)
    }

    /// Sends a pod's datagram to the outside with the node's IP as its
    /// source, on the masquerade port of its flow: to this node's copy of
    /// the outside host, or nowhere.
    fn send_udp_masqueraded(
        &self,
        client: SocketAddr,
        dst: SocketAddr,
        asked: SocketAddr,
        payload: Bytes,
    ) {
        let port = self
            .egress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .outbound(client, dst, asked, std::time::Instant::now());
        let Some(port) = port else {
            tracing::debug!(flow.src = %client, flow.dst = %dst, "egress table full, datagram dropped");
            bump(&self.stats.datagrams_dropped);
            return;
        };
        let masq = SocketAddr::from((self.node_ip, port));
        if let Some(ns) = self.local_pod(dst.ip()) {
            // Port unreachable goes back to the pod, not to the node.
            if !self.deliver_udp_local(&ns, masq, dst, payload)
                && let Some(origin) = self.local_pod(client.ip())
            {
                origin.deliver_udp(client.port(), Err(io::ErrorKind::ConnectionRefused));
            }
            return;
        }
        // Not the cluster's own, so never routed over the overlay: an
        // outside address nothing serves, a blackhole.
        bump(&self.stats.unroutable);
    }

    /// Sends a datagram to an address the proxy has already resolved;
    /// `sender` (the datagram's source and the address it was sent to, as
    /// it arrived at this node) hears of a refusal.
    async fn send_udp_direct(
        self: &Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
        trace_id: u64,
        sender: (SocketAddr, SocketAddr),
    ) {
        if let Some(ns) = self.local_pod(dst.ip()) {
            let now = std::time::Instant::now();
            if self.policy.udp(Direction::Ingress, src, dst, now).is_err() {
                return;
            }
            if !self.deliver_udp_local(&ns, src, dst, payload)
                && let Some(origin) = self.local_pod(src.ip())
            {
                origin.deliver_udp(src.port(), Err(io::ErrorKind::ConnectionRefused));
            }
            return;
        }
        let header = FlowHeader {
            kind: FrameKind::Udp,
            src,
            dst,
            trace_id,
        };
        if self.send_datagram(dst.ip(), header, &payload).await == Outcome::Rejected {
            self.port_unreachable(sender.0, sender.1).await;
        }
    }

    /// Port unreachable to `origin` about its datagram to `asked`, as a
    /// REJECT rule answers: straight to a pod of this node, else over the
    /// overlay to the node (or the edge) it came from, which delivers it
    /// to the sending socket.
    async fn port_unreachable(self: &Arc<Self>, origin: SocketAddr, asked: SocketAddr) {
        if let Some(ns) = self.local_pod(origin.ip()) {
            ns.deliver_udp(origin.port(), Err(io::ErrorKind::ConnectionRefused));
            return;
        }
        let header = FlowHeader {
            kind: FrameKind::IcmpPortUnreachable,
            src: origin,
            dst: asked,
            trace_id: 0,
        };
        // Refused again (the way back is cut too): nothing more to say.
        let _ = self.send_datagram(origin.ip(), header, &[]).await;
    }

    /// Remembers a masqueraded NodePort flow: this node sent from `masq`
    /// to `backend` on behalf of `client`, who asked `node_port`.
    fn track_masquerade(
        &self,
        masq: SocketAddr,
        backend: SocketAddr,
        client: SocketAddr,
        node_port: SocketAddr,
        meter: Option<StreamMeter>,
    ) {
        let now = std::time::Instant::now();
        let mut m = self
            .masquerade
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if m.len() >= CONNTRACK_LIMIT {
            m.retain(|_, (_, _, last, _)| now.duration_since(*last) < UDP_CONNTRACK_IDLE);
        }
        m.insert((masq, backend), (client, node_port, now, meter));
    }

    /// The client and NodePort of a reply from `backend` to `masq`.
    fn unmasquerade(
        &self,
        masq: SocketAddr,
        backend: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr, Option<StreamMeter>)> {
        let mut m = self
            .masquerade
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (client, node_port, last, meter) = m.get_mut(&(masq, backend))?;
        if last.elapsed() >= UDP_CONNTRACK_IDLE {
            return None;
        }
        *last = std::time::Instant::now();
        Some((*client, *node_port, meter.clone()))
    }

    /// Remembers that `client` sent to `service` and reached `backend`.
    fn track(
        &self,
        client: SocketAddr,
        backend: SocketAddr,
        service: SocketAddr,
        meter: Option<StreamMeter>,
    ) {
        let now = std::time::Instant::now();
        let mut ct = self
            .conntrack
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if ct.len() >= CONNTRACK_LIMIT {
            ct.retain(|_, (_, last, _)| now.duration_since(*last) < UDP_CONNTRACK_IDLE);
        }
        ct.insert((client, backend), (service, now, meter));
    }

    /// Delivers a UDP datagram to a local pod, undoing the service
    /// translation of a reply (backend → the ClusterIP the client asked).
    fn deliver_udp_local(
        &self,
        ns: &NetNs,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
    ) -> bool {
        let src = {
            let mut ct = self
                .conntrack
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match ct.get_mut(&(dst, src)) {
                Some((service, last, meter)) if last.elapsed() < UDP_CONNTRACK_IDLE => {
                    *last = std::time::Instant::now();
                    if let Some(meter) = meter {
                        meter.read.inc_by(payload.len() as u64);
                    }
                    *service
                }
                _ => src,
            }
        };
        ns.deliver_udp(dst.port(), Ok((payload, src)))
    }

    /// A TCP flow or SCTP association from another node (or the edge) to
    /// this node's IP: a NodePort, or a listener of the node itself.
    async fn serve_node_port(
        self: Arc<Self>,
        protocol: StreamProtocol,
        header: FlowHeader,
        mut send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) {
        let refuse = |mut send: quinn::SendStream| async move {
            let _ = send.write_all(&[OpenStatus::Refused.to_byte()]).await;
            let _ = send.finish();
        };
        let (proxied, meter) =
            self.proxy(header.src, header.dst, protocol.protocol(), header.trace_id);
        let (src, dst) = match proxied {
            Proxied::To { src, dst } => (src, dst),
            // Not a NodePort: the node's own listeners (health checks).
            Proxied::Direct => (header.src, header.dst),
            Proxied::Refuse => return refuse(send).await,
            Proxied::Drop => {
                let _ = send.finish();
                return;
            }
        };
        // Bounded: a silent endpoint must not hold the flow forever.
        let upstream = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.connect_direct(protocol, src, dst, header.trace_id),
        )
        .await;
        match upstream {
            Ok(Ok(upstream)) => {
                if send
                    .write_all(&[OpenStatus::Accepted.to_byte()])
                    .await
                    .is_err()
                {
                    return;
                }
                let mut client = PodStream::Quic {
                    send,
                    recv,
                    trace_id: header.trace_id,
                };
                let mut upstream = match meter {
                    Some(meter) => upstream.metered(meter),
                    None => upstream,
                };
                let spliced = podnet_overlay::splice(&mut client, &mut upstream).await;
                if let Some(why) = spliced.aborted {
                    tracing::debug!(flow.src = %src, flow.dst = %dst, ?why, "node port flow reset");
                    client.abort();
                    upstream.abort();
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => refuse(send).await,
            Ok(Err(_)) | Err(_) => {
                let _ = send.reset(1u32.into());
            }
        }
    }

    /// The pods' gateway on this node: the podCIDR's first address (the
    /// bridge address a CNI like kindnet or flannel gives the node).
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.local_cidr.map(gateway)
    }

    /// The pods' IPv6 gateway on a dual-stack node: the IPv6 podCIDR's
    /// first address.
    pub fn gateway_v6(&self) -> Option<Ipv6Addr> {
        self.local_cidr_v6.map(gateway_v6)
    }

    /// The gateway a pod at `ip` sends through: the one of its family.
    fn gateway_for(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => self.gateway().map(IpAddr::V4),
            IpAddr::V6(_) => self.gateway_v6().map(IpAddr::V6),
        }
        // A pod has addresses of its node's podCIDRs only.
        .unwrap_or_else(|| self.node_ip_for(ip))
    }

    /// The address this node answers time exceeded from for a request
    /// toward `dst` that came over the overlay: its InternalIP of that
    /// family (for IPv6 without one, its pods' IPv6 gateway).
    fn router_address(&self, dst: IpAddr) -> IpAddr {
        match (dst, self.node_ip6, self.gateway_v6()) {
            (IpAddr::V6(_), Some(ip), _) => IpAddr::V6(ip),
            (IpAddr::V6(_), None, Some(gw)) => IpAddr::V6(gw),
            _ => IpAddr::V4(self.node_ip),
        }
    }

    /// Is `ip` this node itself (its IP, or the pods' gateway)?
    fn is_this_node(&self, ip: IpAddr) -> bool {
        self.is_node_ip(ip)
            || self.gateway().is_some_and(|gw| ip == IpAddr::V4(gw))
            || self.gateway_v6().is_some_and(|gw| ip == IpAddr::V6(gw))
    }

    /// Sends one ICMP echo request from a local pod, this node being the
    /// first router it passes (see [`echo_step`]).
    pub async fn send_echo(self: &Arc<Self>, src: IpAddr, dst: IpAddr, id: u16, seq: u16, ttl: u8) {
        let answer = |from: IpAddr, reply: IcmpReply| {
            if let Some(origin) = self.local_pod(src) {
                origin.deliver_icmp(id, seq, from, reply);
            }
        };
        let ttl = match echo_step(ttl, self.is_this_node(dst)) {
            EchoStep::Answer => return answer(dst, IcmpReply::EchoReply),
            EchoStep::Expired => return answer(self.gateway_for(src), IcmpReply::TimeExceeded),
            EchoStep::Forward { ttl } => ttl,
        };
        if self.local_pod(dst).is_some() {
            return answer(dst, IcmpReply::EchoReply);
        }
        let header = FlowHeader {
            kind: FrameKind::IcmpEchoRequest { id, seq, ttl },
            src: SocketAddr::new(src, 0),
            dst: SocketAddr::new(dst, 0),
            trace_id: 0,
        };
        // Across a link that refuses, the request goes unanswered: podnet's
        // ping has no destination-unreachable reply to show.
        let _ = self.send_datagram(dst, header, b"podnet-ping").await;
    }

    async fn send_datagram(
        self: &Arc<Self>,
        dst: IpAddr,
        header: FlowHeader,
        payload: &[u8],
    ) -> Outcome {
        let mut copies = 1;
        let conn = if self.is_host_ip(dst) {
            let edge = self
                .edge
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .filter(|c| c.close_reason().is_none());
            let Some(conn) = edge else {
                bump(&self.stats.datagrams_dropped);
                return Outcome::Dropped;
            };
            conn
        } else {
            let Some(route) = self.route(dst).filter(|r| r.node != self.node_name) else {
                bump(&self.stats.unroutable);
                return Outcome::Dropped;
            };
            let link = self.links.get(route.underlay);
            if link.rejects() {
                bump(&self.stats.link_rejected);
                return Outcome::Rejected;
            }
            if header.kind == FrameKind::Udp && rand::random::<f64>() < link.duplicate {
                bump(&self.stats.datagrams_duplicated);
                copies = 2;
            }
            match self.peer(&route).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, peer.node = %route.node, "datagram dropped: no connection");
                    bump(&self.stats.datagrams_dropped);
                    return Outcome::Dropped;
                }
            }
        };
        let mut buf = BytesMut::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut buf);
        buf.extend_from_slice(payload);
        let datagram = buf.freeze();
        for _ in 0..copies {
            if let Err(e) = conn.send_datagram(datagram.clone()) {
                tracing::debug!(error = %e, "datagram dropped");
                bump(&self.stats.datagrams_dropped);
                return Outcome::Dropped;
            }
        }
        Outcome::Sent
    }

    async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                i = self.endpoint.accept() => match i { Some(i) => i, None => return },
            };
            let dp = self.clone();
            self.tasks.spawn(
                async move {
                    match incoming.await {
                        Ok(conn) => {
                            dp.remember(&conn);
                            let auth = Arc::new(PeerAuth {
                                conn,
                                verified: Mutex::new(None),
                            });
                            dp.serve_connection(auth).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "overlay handshake failed"),
                    }
                }
                .instrument(tracing::debug_span!("overlay.conn")),
            );
        }
    }

    async fn serve_connection(self: Arc<Self>, auth: Arc<PeerAuth>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                bi = auth.conn.accept_bi() => match bi {
                    Ok((send, recv)) => {
                        let dp = self.clone();
                        let auth = auth.clone();
                        self.tasks.spawn(async move { dp.serve_stream(&auth, send, recv).await }.in_current_span());
                    }
                    Err(_) => return,
                },
                dg = auth.conn.read_datagram() => match dg {
                    Ok(bytes) => self.handle_datagram(&auth, bytes),
                    Err(_) => return,
                },
            }
        }
    }

    /// Is `ip` an address the peer of `auth` may speak for? A node speaks
    /// for its podCIDR and IP, the edge for the host's address.
    fn authorized(&self, auth: &PeerAuth, ip: IpAddr) -> bool {
        let from_host = self.is_host_ip(ip);
        let name = if from_host {
            EDGE_NAME.to_string()
        } else {
            match self.route(ip) {
                Some(route) => route.node,
                None => return false,
            }
        };
        let mut verified = auth.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.as_deref() == Some(name.as_str()) {
            if from_host {
                self.keep_edge(&auth.conn, false);
            }
            return true;
        }
        if podnet_overlay::peer_is_node(&auth.conn, &name) {
            if from_host {
                self.keep_edge(&auth.conn, true);
            }
            *verified = Some(name);
            return true;
        }
        false
    }

    /// Is `ip` the host's address on the node network (the edge's)?
    fn is_host_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.host_ip == Some(ip),
            IpAddr::V6(ip) => self.host_ip6 == Some(ip),
        }
    }

    /// Replies to the host's address go back on the edge's newest
    /// connection, or, once that has closed (the edge has one for client
    /// traffic and one for health checks, and drops the latter when a
    /// check gets no answer), on whichever of its connections is heard
    /// from next.
    fn keep_edge(&self, conn: &quinn::Connection, newest: bool) {
        let mut edge = self.edge.lock().unwrap_or_else(PoisonError::into_inner);
        let closed = edge.as_ref().is_none_or(|c| c.close_reason().is_some());
        if newest || closed {
            *edge = Some(conn.clone());
        }
    }

    async fn serve_stream(
        self: Arc<Self>,
        auth: &PeerAuth,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        // The first bytes say how long the header is (it depends on the
        // family); then the rest of it.
        let mut buf = [0u8; MAX_HEADER_LEN];
        let (prefix, _) = buf.split_at_mut(PREFIX_LEN);
        if recv.read_exact(prefix).await.is_err() {
            bump(&self.stats.bad_headers);
            return;
        }
        let len = match podnet_overlay::wire::header_len(prefix) {
            Ok(len) => len.min(MAX_HEADER_LEN),
            Err(_) => {
                bump(&self.stats.bad_headers);
                let _ = send.reset(1u32.into());
                return;
            }
        };
        let Some(rest) = buf.get_mut(PREFIX_LEN..len) else {
            bump(&self.stats.bad_headers);
            return;
        };
        if recv.read_exact(rest).await.is_err() {
            bump(&self.stats.bad_headers);
            return;
        }
        let (header, protocol) = match FlowHeader::decode(buf.get(..len).unwrap_or_default()) {
            Ok((h, _)) if h.kind == FrameKind::TcpOpen => (h, StreamProtocol::Tcp),
            Ok((h, _)) if h.kind == FrameKind::SctpOpen => (h, StreamProtocol::Sctp),
            Ok(_) | Err(_) => {
                bump(&self.stats.bad_headers);
                let _ = send.reset(1u32.into());
                return;
            }
        };
        if !self.authorized(auth, header.src.ip()) {
            bump(&self.stats.forged_sources);
            tracing::warn!(flow.src = %header.src, "flow dropped: source outside the sending node's addresses");
            let _ = send.reset(1u32.into());
            return;
        }
        bump(&self.stats.flows_in);
        let timer = SpanTimer::start(header.trace_id, hop::OVERLAY);
        let peer = auth
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        let hop = |what: &str, status: &str| {
            let decision = format!(
                "{} → {} over QUIC from {peer} to {}: {what}",
                header.src, header.dst, self.node_name
            );
            timer.clone().finish(&self.recorder(), decision, status);
        };
        if self.is_node_ip(header.dst.ip()) {
            hop("to this node's address", "ok");
            return self.serve_node_port(protocol, header, send, recv).await;
        }
        let Some(ns) = self.local_pod(header.dst.ip()) else {
            // No such pod here: silence, the client times out.
            hop("no such pod, dropped", "dropped");
            let _ = send.finish();
            return;
        };
        let pod = format!("pod {}/{}", ns.info().namespace, ns.info().name);
        let decision = self.policy.connection(
            Direction::Ingress,
            protocol.protocol(),
            header.src,
            header.dst,
        );
        self.policy_hop(
            header.trace_id,
            header.src,
            header.dst,
            Direction::Ingress,
            &decision,
        );
        if decision.is_denied() {
            // Dropped: the client times out, as before a DROP rule.
            hop(&format!("{pod}: dropped by NetworkPolicy"), "dropped");
            let _ = send.finish();
            return;
        }
        if !ns.has_listener(protocol, header.dst.port()) {
            // TCP's RST, SCTP's ABORT: the client's connect is refused.
            let what = match protocol {
                StreamProtocol::Tcp => format!("{pod} has nothing listening, refused"),
                StreamProtocol::Sctp => format!("{pod} has no SCTP listener, aborted"),
            };
            hop(&what, "refused");
            let _ = send.write_all(&[OpenStatus::Refused.to_byte()]).await;
            let _ = send.finish();
            return;
        }
        hop(&format!("delivered to {pod}"), "ok");
        if send
            .write_all(&[OpenStatus::Accepted.to_byte()])
            .await
            .is_err()
        {
            return;
        }
        if let Err(Some((stream, _))) = ns.deliver_stream(
            protocol,
            header.dst.port(),
            (
                PodStream::Quic {
                    send,
                    recv,
                    trace_id: header.trace_id,
                },
                header.src,
            ),
        ) && let PodStream::Quic { mut send, .. } = stream
        {
            let _ = send.reset(1u32.into());
        }
    }

    fn handle_datagram(self: &Arc<Self>, auth: &PeerAuth, bytes: Bytes) {
        bump(&self.stats.datagrams_in);
        let (header, len) = match FlowHeader::decode(&bytes) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(error = %e, "bad datagram header");
                bump(&self.stats.bad_headers);
                return;
            }
        };
        let payload = bytes.slice(len..);
        // The address the peer speaks for: the origin, except for an error
        // about our own datagram, which vouches for its destination.
        let remote = match header.kind {
            FrameKind::IcmpPortUnreachable => header.dst.ip(),
            _ => header.src.ip(),
        };
        if !self.authorized(auth, remote) {
            bump(&self.stats.forged_sources);
            return;
        }
        match header.kind {
            FrameKind::Udp if self.is_node_ip(header.dst.ip()) => {
                // To this node's own address: a NodePort or a reply to a
                // masqueraded flow; the proxy path decides.
                let dp = self.clone();
                self.tasks.spawn(
                    async move {
                        dp.send_udp(header.src, header.dst, payload, header.trace_id)
                            .await
                    }
                    .in_current_span(),
                );
            }
            FrameKind::Udp => {
                let Some(ns) = self.local_pod(header.dst.ip()) else {
                    return;
                };
                let now = std::time::Instant::now();
                if self
                    .policy
                    .udp(Direction::Ingress, header.src, header.dst, now)
                    .is_err()
                {
                    return;
                }
                if !self.deliver_udp_local(&ns, header.src, header.dst, payload) {
                    let reply = FlowHeader {
                        kind: FrameKind::IcmpPortUnreachable,
                        ..header
                    };
                    let _ = auth.conn.send_datagram(Bytes::from(reply.to_bytes()));
                }
            }
            FrameKind::IcmpEchoRequest { id, seq, ttl } => {
                let dst = header.dst.ip();
                // This node is the last router before its pods.
                let (kind, from) = match echo_step(ttl, self.is_this_node(dst)) {
                    EchoStep::Answer => (FrameKind::IcmpEchoReply { id, seq }, dst),
                    _ if self.local_pod(dst).is_none() => return,
                    EchoStep::Expired => (
                        FrameKind::IcmpTimeExceeded { id, seq },
                        self.router_address(dst),
                    ),
                    EchoStep::Forward { .. } => (FrameKind::IcmpEchoReply { id, seq }, dst),
                };
                let reply = FlowHeader {
                    kind,
                    src: SocketAddr::new(from, 0),
                    dst: header.src,
                    trace_id: header.trace_id,
                };
                let mut buf = BytesMut::from(&reply.to_bytes()[..]);
                if matches!(kind, FrameKind::IcmpEchoReply { .. }) {
                    buf.extend_from_slice(&payload);
                }
                let _ = auth.conn.send_datagram(buf.freeze());
            }
            FrameKind::IcmpEchoReply { id, seq } => {
                if let Some(ns) = self.local_pod(header.dst.ip()) {
                    ns.deliver_echo_reply(id, seq, header.src.ip());
                }
            }
            FrameKind::IcmpTimeExceeded { id, seq } => {
                if let Some(ns) = self.local_pod(header.dst.ip()) {
                    ns.deliver_icmp(id, seq, header.src.ip(), IcmpReply::TimeExceeded);
                }
            }
            FrameKind::IcmpPortUnreachable => {
                if let Some(ns) = self.local_pod(header.src.ip()) {
                    ns.deliver_udp(header.src.port(), Err(io::ErrorKind::ConnectionRefused));
                }
            }
            // Stream opens come on streams, never as datagrams.
            FrameKind::TcpOpen | FrameKind::SctpOpen => bump(&self.stats.bad_headers),
        }
    }
}

/// The way out of this node's pods: each call is the datapath's own method
/// (service proxy included), behind one boxed future. Named by path, not
/// imported, so that `Arc<Datapath>` method calls here keep resolving to the
/// inherent methods.
impl podnet_pod::netns::Egress for Datapath {
    fn connect_tcp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        Box::pin(async move { Datapath::connect_tcp(&self, src, dst, trace_id).await })
    }

    fn connect_sctp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        Box::pin(async move { Datapath::connect_sctp(&self, src, dst, trace_id).await })
    }

    fn send_udp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
    ) -> BoxFuture<'static, ()> {
        // Pods' datagrams are untraced.
        Box::pin(async move { Datapath::send_udp(&self, src, dst, payload, 0).await })
    }

    fn send_echo(
        self: Arc<Self>,
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
        ttl: u8,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move { Datapath::send_echo(&self, src, dst, id, seq, ttl).await })
    }
}

/// What became of a datagram handed to the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Dropped on the way out (no route, no connection, a full queue):
    /// silence, as UDP.
    Dropped,
    /// Refused by a link partitioned in Reject mode: the sender is told.
    Rejected,
}

/// IPv4-mapped IPv6 addresses key the same peer as the plain IPv4 address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The overlay header kind that opens a stream flow of `protocol`.
fn open_kind(protocol: StreamProtocol) -> FrameKind {
    match protocol {
        StreamProtocol::Tcp => FrameKind::TcpOpen,
        StreamProtocol::Sctp => FrameKind::SctpOpen,
    }
}

/// The pods' gateway of a podCIDR: its first address.
pub fn gateway(pod_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pod_cidr.network()).saturating_add(1))
}

/// The pods' gateway of an IPv6 podCIDR: its first address (`::1`).
pub fn gateway_v6(pod_cidr: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(pod_cidr.network()).saturating_add(1))
}

/// What a node, as a router, does with an echo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoStep {
    /// Addressed to the node itself: it answers, whatever the TTL.
    Answer,
    /// The TTL runs out here: the node answers time exceeded from its own
    /// address instead of forwarding.
    Expired,
    /// Passed on (to a pod of this node or over the overlay) with one hop
    /// less.
    Forward { ttl: u8 },
}

/// The router's step for an echo request that arrived with `ttl` hops
/// left, as Linux's forwarding path (`ip_forward`) takes it: a packet for
/// the router itself is delivered, one that would leave with TTL 0 is
/// dropped with time exceeded. Every node routes anything (as a kind node
/// with its default route does), so the TTL is checked before the
/// datapath decides whether the destination leads anywhere.
fn echo_step(ttl: u8, for_this_node: bool) -> EchoStep {
    if for_this_node {
        EchoStep::Answer
    } else if ttl <= 1 {
        EchoStep::Expired
    } else {
        EchoStep::Forward { ttl: ttl - 1 }
    }
}

#[cfg(test)]
mod tests;
