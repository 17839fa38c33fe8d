//! A pod's emulated network namespace and its socket API.
//!
//! Every pod has one `NetNs`: an IPv4 address and, on a dual-stack node, an
//! IPv6 one, one TCP, one SCTP and one UDP port table shared by all its
//! containers (a listener takes its port on both addresses, as a Linux
//! socket bound to `[::]` does; TCP 80 and SCTP 80 are two ports, as in a
//! kernel), and `localhost` (127.0.0.0/8 and `::1`) that reaches those
//! same tables. A flow leaves from the pod's address of the
//! destination's family; toward IPv6 from a pod without an IPv6 address
//! it fails as Linux does without a route (ENETUNREACH). Workloads use
//! `listen_tcp`, `connect_tcp`, `listen_sctp`, `connect_sctp`, `bind_udp`
//! and `ping`; the streams are `AsyncRead + AsyncWrite`, so hyper and
//! friends run over them unchanged. Anything that leaves the namespace is
//! handed to the [`Egress`] the namespace was created with (the node's
//! datapath), which decides where it goes; nothing here knows how.
//!
//! SCTP is emulated as a one-to-one style socket (`SOCK_STREAM`, as
//! `ncat --sctp` and most SCTP servers use it) whose association carries
//! one ordered, reliable stream: the same [`PodStream`] as TCP. Not
//! emulated: several streams per association, unordered or partially
//! reliable delivery, message boundaries (PPIDs), multi-homing. An
//! association to a port nothing listens on fails with ConnectionRefused,
//! as Linux reports SCTP's ABORT.
//!
//! There is no kernel involvement: the addresses exist only inside podnet.
//!
//! [`NetNs::sockets`] lists the namespace's sockets as `ss` shows them:
//! listeners and bound UDP ports from the port tables, and the TCP
//! connections and SCTP associations the pod opened or accepted, which are
//! registered once per
//! connection (when it is made, not per read or write) and leave the table
//! when their stream is dropped.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use podnet_metrics::prometheus_client::metrics::counter::Counter;
use podnet_proto::model::view::Protocol;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

use crate::dns::ResolverConfig;

/// Linux's default ephemeral port range.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// Pending connections a listener holds before new ones are dropped (the
/// SYN backlog).
const BACKLOG: usize = 1024;
/// Datagrams a UDP socket holds before new ones are dropped.
const UDP_QUEUE: usize = 1024;
/// The TTL a pod's echo requests leave with, as Linux's
/// `net.ipv4.ip_default_ttl`.
pub const DEFAULT_TTL: u8 = 64;
/// Buffer of an in-memory pipe between two pods on one node.
pub const LOCAL_PIPE_BYTES: usize = 256 * 1024;

/// What a pod needs from the node it runs on: the way out for flows,
/// datagrams and ICMP echo requests that leave its namespace. The node's
/// datapath implements it; where each one goes is its decision alone.
///
/// The methods take the `Arc` the namespace upgraded its `Weak` to, so the
/// implementation owns itself for as long as the (one, boxed) future runs.
pub trait Egress: Send + Sync {
    /// Opens a TCP flow from `src` (the pod's IP and an ephemeral port) to
    /// `dst`, as part of journey `trace_id` (0: a new one). A refused flow
    /// fails with ConnectionRefused; one into the void never completes.
    fn connect_tcp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>>;

    /// Opens an SCTP association from `src` to `dst`, as [`Egress::connect_tcp`]
    /// opens a TCP flow: an association nothing accepts (SCTP's ABORT)
    /// fails with ConnectionRefused, one into the void never completes.
    fn connect_sctp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>>;

    /// Sends one UDP datagram from `src` to `dst`. Delivery is not
    /// confirmed; a port-unreachable answer comes back through
    /// [`NetNs::deliver_udp`].
    fn send_udp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
    ) -> BoxFuture<'static, ()>;

    /// Sends one ICMP echo request that may pass `ttl` routers; the reply
    /// (an echo reply, or time exceeded from the router where the TTL ran
    /// out) comes back through [`NetNs::deliver_icmp`].
    fn send_echo(
        self: Arc<Self>,
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
        ttl: u8,
    ) -> BoxFuture<'static, ()>;
}

/// The egress of a namespace with no node behind it. It has no values, so
/// a `Weak<Isolated>` never upgrades: everything that leaves the namespace
/// fails as it does once the node's network is gone.
enum Isolated {}

impl Egress for Isolated {
    fn connect_tcp(
        self: Arc<Self>,
        _src: SocketAddr,
        _dst: SocketAddr,
        _trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        match *self {}
    }

    fn connect_sctp(
        self: Arc<Self>,
        _src: SocketAddr,
        _dst: SocketAddr,
        _trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        match *self {}
    }

    fn send_udp(
        self: Arc<Self>,
        _src: SocketAddr,
        _dst: SocketAddr,
        _payload: Bytes,
    ) -> BoxFuture<'static, ()> {
        match *self {}
    }

    fn send_echo(
        self: Arc<Self>,
        _src: IpAddr,
        _dst: IpAddr,
        _id: u16,
        _seq: u16,
        _ttl: u8,
    ) -> BoxFuture<'static, ()> {
        match *self {}
    }
}

/// The QUIC error code of a pod connection ended by a reset.
const RESET_CODE: quinn::VarInt = quinn::VarInt::from_u32(1);

/// The connection-oriented protocols of a namespace: each has a port table
/// of its own and its streams are [`PodStream`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamProtocol {
    Tcp,
    /// An SCTP association, emulated as one ordered reliable stream.
    Sctp,
}

impl StreamProtocol {
    /// The protocol as Kubernetes objects name it.
    pub fn protocol(self) -> Protocol {
        match self {
            StreamProtocol::Tcp => Protocol::Tcp,
            StreamProtocol::Sctp => Protocol::Sctp,
        }
    }

    /// The socket-table name: `tcp`, `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamProtocol::Tcp => "tcp",
            StreamProtocol::Sctp => "sctp",
        }
    }
}

/// One end of a pod TCP connection or SCTP association, with the trace id
/// of its flow (the journey it belongs to; 0 when untraced).
pub enum PodStream {
    /// Both ends on this node.
    Local { io: DuplexStream, trace_id: u64 },
    /// Carried by one QUIC stream of the overlay.
    Quic {
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        trace_id: u64,
    },
    /// A pod's end of a connection, listed in its namespace's socket table
    /// for as long as it lives.
    Tracked {
        inner: Box<PodStream>,
        entry: ConnectionEntry,
    },
    /// Bytes written and read counted (a proxied Service flow).
    Metered {
        inner: Box<PodStream>,
        meter: StreamMeter,
    },
}

/// Where a metered stream counts its bytes: the counters of a metrics
/// registry, shared by every stream of one series.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    pub written: Counter,
    pub read: Counter,
}

/// A connection's (or association's) row in its namespace's socket table;
/// dropping it removes the row.
pub struct ConnectionEntry {
    ns: Arc<NetNs>,
    id: u64,
}

impl Drop for ConnectionEntry {
    fn drop(&mut self) {
        self.ns.connections().remove(&self.id);
    }
}

impl PodStream {
    /// Both ends of an in-memory connection on this node.
    pub fn local_pair(trace_id: u64) -> (PodStream, PodStream) {
        let (a, b) = tokio::io::duplex(LOCAL_PIPE_BYTES);
        (
            PodStream::Local { io: a, trace_id },
            PodStream::Local { io: b, trace_id },
        )
    }

    pub fn trace_id(&self) -> u64 {
        match self {
            PodStream::Local { trace_id, .. } | PodStream::Quic { trace_id, .. } => *trace_id,
            PodStream::Tracked { inner, .. } | PodStream::Metered { inner, .. } => inner.trace_id(),
        }
    }

    /// This stream, counting what is written to and read from it on
    /// `meter`.
    pub fn metered(self, meter: StreamMeter) -> PodStream {
        PodStream::Metered {
            inner: Box::new(self),
            meter,
        }
    }

    /// Ends the connection as a TCP reset does, rather than with a FIN: a
    /// QUIC stream is reset and stopped (its peer sees an error, not a
    /// clean end, and the unread bytes stop holding flow-control credit).
    /// An in-memory connection has no reset; dropping it afterwards closes
    /// it.
    pub fn abort(&mut self) {
        match self {
            PodStream::Local { .. } => {}
            PodStream::Quic { send, recv, .. } => {
                let _ = send.reset(RESET_CODE);
                let _ = recv.stop(RESET_CODE);
            }
            PodStream::Tracked { inner, .. } | PodStream::Metered { inner, .. } => inner.abort(),
        }
    }
}

impl AsyncRead for PodStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PodStream::Local { io: s, .. } => Pin::new(s).poll_read(cx, buf),
            PodStream::Quic { recv, .. } => Pin::new(recv).poll_read(cx, buf),
            PodStream::Tracked { inner, .. } => Pin::new(&mut **inner).poll_read(cx, buf),
            PodStream::Metered { inner, meter } => {
                let before = buf.filled().len();
                let polled = Pin::new(&mut **inner).poll_read(cx, buf);
                let read = buf.filled().len().saturating_sub(before);
                if read > 0 {
                    meter.read.inc_by(read as u64);
                }
                polled
            }
        }
    }
}

impl AsyncWrite for PodStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PodStream::Local { io: s, .. } => Pin::new(s).poll_write(cx, buf),
            PodStream::Quic { send, .. } => {
                Pin::new(send).poll_write(cx, buf).map_err(io::Error::from)
            }
            PodStream::Tracked { inner, .. } => Pin::new(&mut **inner).poll_write(cx, buf),
            PodStream::Metered { inner, meter } => {
                let polled = Pin::new(&mut **inner).poll_write(cx, buf);
                if let Poll::Ready(Ok(n)) = polled {
                    meter.written.inc_by(n as u64);
                }
                polled
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PodStream::Local { io: s, .. } => Pin::new(s).poll_flush(cx),
            PodStream::Quic { send, .. } => Pin::new(send).poll_flush(cx),
            PodStream::Tracked { inner, .. } | PodStream::Metered { inner, .. } => {
                Pin::new(&mut **inner).poll_flush(cx)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PodStream::Local { io: s, .. } => Pin::new(s).poll_shutdown(cx),
            PodStream::Quic { send, .. } => Pin::new(send).poll_shutdown(cx),
            PodStream::Tracked { inner, .. } | PodStream::Metered { inner, .. } => {
                Pin::new(&mut **inner).poll_shutdown(cx)
            }
        }
    }
}

/// A new inbound connection: the stream and the peer's address.
pub type Incoming = (PodStream, SocketAddr);

/// What a UDP socket receives: a datagram, or an ICMP port-unreachable
/// error for one it sent (surfaced as ConnectionRefused, as Linux does).
pub type UdpItem = Result<(Bytes, SocketAddr), io::ErrorKind>;

/// What an ICMP echo socket receives about one of its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpReply {
    /// The destination answered.
    EchoReply,
    /// A router on the way dropped the request: its TTL ran out there.
    TimeExceeded,
}

/// An ICMP message for an echo socket: the request's sequence number, who
/// sent the message, and what it says.
type IcmpItem = (u16, IpAddr, IcmpReply);

/// The answer to one probe of [`IcmpSocket::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReply {
    pub from: IpAddr,
    pub reply: IcmpReply,
    pub rtt: Duration,
}

#[derive(Default)]
struct Ports {
    tcp: HashMap<u16, mpsc::Sender<Incoming>>,
    sctp: HashMap<u16, mpsc::Sender<Incoming>>,
    udp: HashMap<u16, mpsc::Sender<UdpItem>>,
    icmp: HashMap<u16, mpsc::Sender<IcmpItem>>,
}

impl Ports {
    fn stream(&self, protocol: StreamProtocol) -> &HashMap<u16, mpsc::Sender<Incoming>> {
        match protocol {
            StreamProtocol::Tcp => &self.tcp,
            StreamProtocol::Sctp => &self.sctp,
        }
    }

    fn stream_mut(
        &mut self,
        protocol: StreamProtocol,
    ) -> &mut HashMap<u16, mpsc::Sender<Incoming>> {
        match protocol {
            StreamProtocol::Tcp => &mut self.tcp,
            StreamProtocol::Sctp => &mut self.sctp,
        }
    }
}

/// The state of a socket, as `ss` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SocketState {
    /// A TCP or SCTP listener.
    Listen,
    /// A bound UDP socket.
    Unconn,
    /// A TCP connection or an SCTP association.
    Established,
}

/// One row of a namespace's socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub protocol: Protocol,
    pub state: SocketState,
    /// `0.0.0.0:port` for listeners and UDP sockets (all addresses), or
    /// `[::]:port` in a dual-stack pod (both families).
    pub local: SocketAddr,
    /// `None` for listeners and UDP sockets (`*`).
    pub peer: Option<SocketAddr>,
    /// Listeners: connections waiting to be accepted; UDP: datagrams
    /// queued. 0 for connections (their buffers are not counted).
    pub recv_q: usize,
    /// Listeners: the backlog. 0 otherwise.
    pub send_q: usize,
}

/// The identity of a namespace's owner, for logs and workload answers.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub node: String,
}

/// A pod's addresses: one of each family the cluster has, IPv4 first on
/// a dual-stack cluster (the kubelet's `podIPs` order, the primary first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodIps {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Dual(Ipv4Addr, Ipv6Addr),
}

impl PodIps {
    /// The pod's IPv4 and IPv6 addresses, either of them; `None` when it
    /// has neither.
    pub fn new(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Option<PodIps> {
        match (v4, v6) {
            (Some(v4), Some(v6)) => Some(PodIps::Dual(v4, v6)),
            (Some(v4), None) => Some(PodIps::V4(v4)),
            (None, Some(v6)) => Some(PodIps::V6(v6)),
            (None, None) => None,
        }
    }

    /// `status.podIP`: the primary family's.
    pub fn primary(self) -> IpAddr {
        match self {
            PodIps::V4(v4) | PodIps::Dual(v4, _) => IpAddr::V4(v4),
            PodIps::V6(v6) => IpAddr::V6(v6),
        }
    }

    pub fn v4(self) -> Option<Ipv4Addr> {
        match self {
            PodIps::V4(v4) | PodIps::Dual(v4, _) => Some(v4),
            PodIps::V6(_) => None,
        }
    }

    pub fn v6(self) -> Option<Ipv6Addr> {
        match self {
            PodIps::V6(v6) | PodIps::Dual(_, v6) => Some(v6),
            PodIps::V4(_) => None,
        }
    }

    /// `status.podIPs`: every address, the primary first.
    pub fn all(self) -> impl Iterator<Item = IpAddr> {
        self.v4()
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6().map(IpAddr::V6))
    }
}

impl From<IpAddr> for PodIps {
    fn from(ip: IpAddr) -> PodIps {
        match ip {
            IpAddr::V4(v4) => PodIps::V4(v4),
            IpAddr::V6(v6) => PodIps::V6(v6),
        }
    }
}

impl From<Ipv4Addr> for PodIps {
    fn from(ip: Ipv4Addr) -> PodIps {
        PodIps::V4(ip)
    }
}

pub struct NetNs {
    ips: PodIps,
    info: PodInfo,
    /// The pod's /etc/resolv.conf, which the node wrote when it made the
    /// pod: every container of the pod shares it.
    resolver: ResolverConfig,
    egress: Weak<dyn Egress>,
    ports: Mutex<Ports>,
    /// Live TCP connections and SCTP associations by id.
    connections: Mutex<HashMap<u64, Connection>>,
    next_connection: AtomicU64,
    next_port: AtomicU16,
    next_icmp_id: AtomicU16,
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetNs")
            .field("ips", &self.ips)
            .field("pod", &self.info.name)
            .finish()
    }
}

/// A live connection's row: (protocol, local, peer).
type Connection = (StreamProtocol, SocketAddr, SocketAddr);

fn addr_in_use(port: u16) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("port {port} is already in use in this pod"),
    )
}

fn unreachable(dst: IpAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::NetworkUnreachable,
        format!("Network is unreachable: this pod has no address of {dst}'s family"),
    )
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the node's network is shutting down",
    )
}

impl NetNs {
    /// A namespace whose traffic off the pod leaves through `egress`.
    /// Its resolv.conf is the ClusterFirst one of the pod's namespace; a
    /// node making a pod passes the one it generated to [`NetNs::with_resolver`].
    pub fn new(ip: impl Into<PodIps>, info: PodInfo, egress: Weak<dyn Egress>) -> Arc<NetNs> {
        let resolver = ResolverConfig::cluster_first(&info.namespace);
        NetNs::with_resolver(ip, info, resolver, egress)
    }

    /// A namespace with `resolver` as its /etc/resolv.conf.
    pub fn with_resolver(
        ips: impl Into<PodIps>,
        info: PodInfo,
        resolver: ResolverConfig,
        egress: Weak<dyn Egress>,
    ) -> Arc<NetNs> {
        let ips = ips.into();
        let seed = match ips.primary() {
            IpAddr::V4(v4) => u16::from_be_bytes([v4.octets()[2], v4.octets()[3]]),
            IpAddr::V6(v6) => v6.segments()[7] ^ v6.segments()[3],
        };
        Arc::new(NetNs {
            ips,
            info,
            resolver,
            egress,
            ports: Mutex::new(Ports::default()),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            next_port: AtomicU16::new(EPHEMERAL.start().wrapping_add(seed % 1000)),
            next_icmp_id: AtomicU16::new(seed),
        })
    }

    /// A namespace with no way out: its own addresses work, anything else
    /// fails as if the node's network were shutting down (tests, tools).
    pub fn isolated(ip: impl Into<PodIps>, info: PodInfo) -> Arc<NetNs> {
        NetNs::new(ip, info, Weak::<Isolated>::new())
    }

    /// [`NetNs::isolated`] with an IPv6 address too, as a dual-stack pod's.
    pub fn isolated_dual_stack(ip: Ipv4Addr, ip6: Ipv6Addr, info: PodInfo) -> Arc<NetNs> {
        let resolver = ResolverConfig::cluster_first(&info.namespace);
        NetNs::with_resolver(
            PodIps::Dual(ip, ip6),
            info,
            resolver,
            Weak::<Isolated>::new(),
        )
    }

    /// The pod's primary address (`status.podIP`).
    pub fn ip(&self) -> IpAddr {
        self.ips.primary()
    }

    pub fn ips(&self) -> PodIps {
        self.ips
    }

    /// The pod's IPv4 address, on a cluster with IPv4.
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        self.ips.v4()
    }

    /// The pod's IPv6 address, on a cluster with IPv6.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ips.v6()
    }

    /// Every address of the pod: the primary first.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.all()
    }

    /// The pod's address a packet to `dst` leaves from: the one of its
    /// family (ENETUNREACH when the pod has none).
    pub fn source_for(&self, dst: IpAddr) -> io::Result<IpAddr> {
        match dst {
            IpAddr::V4(_) => self.ip4().map(IpAddr::V4).ok_or_else(|| unreachable(dst)),
            IpAddr::V6(_) => self.ip6().map(IpAddr::V6).ok_or_else(|| unreachable(dst)),
        }
    }

    pub fn info(&self) -> &PodInfo {
        &self.info
    }

    /// The pod's resolv.conf.
    pub fn resolver(&self) -> &ResolverConfig {
        &self.resolver
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, Ports> {
        self.ports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `stream` in the socket table until it is dropped.
    fn track(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        stream: PodStream,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> PodStream {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.connections().insert(id, (protocol, local, peer));
        PodStream::Tracked {
            inner: Box::new(stream),
            entry: ConnectionEntry {
                ns: self.clone(),
                id,
            },
        }
    }

    /// The namespace's sockets: TCP and SCTP listeners, bound UDP ports and
    /// live TCP connections and SCTP associations, sorted by protocol,
    /// state and address.
    pub fn sockets(&self) -> Vec<SocketInfo> {
        // A dual-stack pod's sockets take both families, as `[::]` does.
        let unspecified = match self.ip6() {
            Some(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let any = |port| SocketAddr::new(unspecified, port);
        let mut rows = Vec::new();
        {
            let ports = self.ports();
            for protocol in [StreamProtocol::Tcp, StreamProtocol::Sctp] {
                for (port, tx) in ports.stream(protocol) {
                    if tx.is_closed() {
                        continue;
                    }
                    rows.push(SocketInfo {
                        protocol: protocol.protocol(),
                        state: SocketState::Listen,
                        local: any(*port),
                        peer: None,
                        recv_q: tx.max_capacity() - tx.capacity(),
                        send_q: tx.max_capacity(),
                    });
                }
            }
            for (port, tx) in &ports.udp {
                if tx.is_closed() {
                    continue;
                }
                rows.push(SocketInfo {
                    protocol: Protocol::Udp,
                    state: SocketState::Unconn,
                    local: any(*port),
                    peer: None,
                    recv_q: tx.max_capacity() - tx.capacity(),
                    send_q: 0,
                });
            }
        }
        for (protocol, local, peer) in self.connections().values() {
            rows.push(SocketInfo {
                protocol: protocol.protocol(),
                state: SocketState::Established,
                local: *local,
                peer: Some(*peer),
                recv_q: 0,
                send_q: 0,
            });
        }
        rows.sort_by_key(|r| (r.protocol, r.state, r.local.ip(), r.local.port(), r.peer));
        rows
    }

    fn egress(&self) -> io::Result<Arc<dyn Egress>> {
        self.egress.upgrade().ok_or_else(gone)
    }

    /// Is `ip` this namespace (one of its addresses or loopback)?
    pub fn is_self(&self, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into();
        ip.is_loopback() || self.addresses().any(|a| a == ip)
    }

    fn ephemeral_port<T>(&self, table: &HashMap<u16, T>) -> io::Result<u16> {
        let span = EPHEMERAL.end() - EPHEMERAL.start() + 1;
        for _ in 0..span {
            let n = self.next_port.fetch_add(1, Ordering::Relaxed);
            let port = EPHEMERAL.start() + n % span;
            if !table.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no free ephemeral port",
        ))
    }

    /// Listens on a TCP port of the pod (all of its addresses).
    pub fn listen_tcp(self: &Arc<Self>, port: u16) -> io::Result<PodListener> {
        self.listen(StreamProtocol::Tcp, port)
    }

    /// Listens on an SCTP port of the pod (all of its addresses): a
    /// one-to-one style socket, whose accepted associations are streams.
    pub fn listen_sctp(self: &Arc<Self>, port: u16) -> io::Result<PodListener> {
        self.listen(StreamProtocol::Sctp, port)
    }

    /// Listens on a port of `protocol`'s table (0 picks an ephemeral one).
    pub fn listen(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        port: u16,
    ) -> io::Result<PodListener> {
        let mut ports = self.ports();
        let table = ports.stream_mut(protocol);
        let port = if port == 0 {
            self.ephemeral_port(table)?
        } else {
            port
        };
        if table.get(&port).is_some_and(|tx| !tx.is_closed()) {
            return Err(addr_in_use(port));
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        table.insert(port, tx);
        Ok(PodListener {
            ns: self.clone(),
            protocol,
            port,
            rx,
        })
    }

    /// Hands an inbound connection to the listener on `port`.
    /// `Err(stream)` if nothing listens there (the caller refuses it).
    pub fn deliver_tcp(&self, port: u16, incoming: Incoming) -> Result<(), Option<Incoming>> {
        self.deliver_stream(StreamProtocol::Tcp, port, incoming)
    }

    /// Hands an inbound connection of `protocol` to its listener on
    /// `port`: `Err(Some(stream))` if nothing listens there (the caller
    /// refuses it), `Err(None)` if the backlog is full (dropped, the
    /// client times out).
    pub fn deliver_stream(
        &self,
        protocol: StreamProtocol,
        port: u16,
        incoming: Incoming,
    ) -> Result<(), Option<Incoming>> {
        let tx = self.ports().stream(protocol).get(&port).cloned();
        match tx {
            None => Err(Some(incoming)),
            Some(tx) => match tx.try_send(incoming) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(i)) => Err(Some(i)),
                // Backlog full: dropped, the client times out.
                Err(mpsc::error::TrySendError::Full(_)) => Err(None),
            },
        }
    }

    pub fn has_tcp_listener(&self, port: u16) -> bool {
        self.has_listener(StreamProtocol::Tcp, port)
    }

    /// Does a listener of `protocol` take connections on `port`?
    pub fn has_listener(&self, protocol: StreamProtocol, port: u16) -> bool {
        self.ports()
            .stream(protocol)
            .get(&port)
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Connects to `dst` from an ephemeral port of this pod. A refused
    /// connection fails with ConnectionRefused; a destination that does not
    /// answer never completes (callers bound it with a timeout).
    pub async fn connect_tcp(
        self: &Arc<Self>,
        dst: impl Into<SocketAddr>,
    ) -> io::Result<PodStream> {
        self.connect_tcp_traced(dst.into(), 0).await
    }

    /// [`NetNs::connect_tcp`] as part of journey `trace_id` (0: a new one).
    pub async fn connect_tcp_traced(
        self: &Arc<Self>,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        self.connect_stream(StreamProtocol::Tcp, dst, trace_id)
            .await
    }

    /// Opens an SCTP association to `dst` from an ephemeral SCTP port of
    /// this pod, as [`NetNs::connect_tcp`] connects: refused (ABORT) with
    /// ConnectionRefused, never completing toward a silent destination.
    pub async fn connect_sctp(
        self: &Arc<Self>,
        dst: impl Into<SocketAddr>,
    ) -> io::Result<PodStream> {
        self.connect_stream(StreamProtocol::Sctp, dst.into(), 0)
            .await
    }

    /// Connects with `protocol` to `dst`, as part of journey `trace_id`
    /// (0: a new one).
    pub async fn connect_stream(
        self: &Arc<Self>,
        protocol: StreamProtocol,
        dst: SocketAddr,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        let src_port = {
            let ports = self.ports();
            self.ephemeral_port(ports.stream(protocol))?
        };
        if self.is_self(dst.ip()) {
            let src = SocketAddr::new(dst.ip(), src_port);
            let (a, b) = PodStream::local_pair(trace_id);
            return match self.deliver_stream(protocol, dst.port(), (b, src)) {
                Ok(()) => Ok(self.track(protocol, a, src, dst)),
                Err(Some(_)) => Err(io::ErrorKind::ConnectionRefused.into()),
                Err(None) => std::future::pending().await,
            };
        }
        let src = SocketAddr::new(self.source_for(dst.ip())?, src_port);
        let egress = self.egress()?;
        let stream = match protocol {
            StreamProtocol::Tcp => egress.connect_tcp(src, dst, trace_id).await?,
            StreamProtocol::Sctp => egress.connect_sctp(src, dst, trace_id).await?,
        };
        Ok(self.track(protocol, stream, src, dst))
    }

    /// Binds a UDP port of the pod (0 picks an ephemeral one).
    pub fn bind_udp(self: &Arc<Self>, port: u16) -> io::Result<PodUdpSocket> {
        let mut ports = self.ports();
        let port = if port == 0 {
            self.ephemeral_port(&ports.udp)?
        } else {
            port
        };
        if ports.udp.get(&port).is_some_and(|tx| !tx.is_closed()) {
            return Err(addr_in_use(port));
        }
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        ports.udp.insert(port, tx);
        Ok(PodUdpSocket {
            ns: self.clone(),
            port,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// Delivers a datagram (or an error) to the socket on `port`; false if
    /// no socket is bound there.
    pub fn deliver_udp(&self, port: u16, item: UdpItem) -> bool {
        let tx = self.ports().udp.get(&port).cloned();
        match tx {
            // A full queue drops the datagram, as a full socket buffer does.
            Some(tx) => !matches!(tx.try_send(item), Err(mpsc::error::TrySendError::Closed(_))),
            None => false,
        }
    }

    /// Delivers an ICMP echo reply to the pinger that owns `id`.
    pub fn deliver_echo_reply(&self, id: u16, seq: u16, from: IpAddr) {
        self.deliver_icmp(id, seq, from, IcmpReply::EchoReply);
    }

    /// Delivers an ICMP message about echo request `id`/`seq` to the
    /// socket that owns `id` (a full queue drops it, as a full socket
    /// buffer does).
    pub fn deliver_icmp(&self, id: u16, seq: u16, from: IpAddr, reply: IcmpReply) {
        if let Some(tx) = self.ports().icmp.get(&id) {
            let _ = tx.try_send((seq, from, reply));
        }
    }

    /// Opens an ICMP echo socket for `ping`.
    pub fn icmp_socket(self: &Arc<Self>) -> IcmpSocket {
        let mut ports = self.ports();
        let mut id = self.next_icmp_id.fetch_add(1, Ordering::Relaxed);
        while ports.icmp.contains_key(&id) {
            id = self.next_icmp_id.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = mpsc::channel(64);
        ports.icmp.insert(id, tx);
        IcmpSocket {
            ns: self.clone(),
            id,
            rx,
        }
    }

    async fn send_udp_from(
        &self,
        src_port: u16,
        dst: SocketAddr,
        payload: Bytes,
    ) -> io::Result<()> {
        if self.is_self(dst.ip()) {
            let src = SocketAddr::new(dst.ip(), src_port);
            if !self.deliver_udp(dst.port(), Ok((payload, src))) {
                self.deliver_udp(src_port, Err(io::ErrorKind::ConnectionRefused));
            }
            return Ok(());
        }
        let src = SocketAddr::new(self.source_for(dst.ip())?, src_port);
        self.egress()?.send_udp(src, dst, payload).await;
        Ok(())
    }
}

pub struct PodListener {
    ns: Arc<NetNs>,
    protocol: StreamProtocol,
    port: u16,
    rx: mpsc::Receiver<Incoming>,
}

impl PodListener {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// TCP or SCTP.
    pub fn protocol(&self) -> StreamProtocol {
        self.protocol
    }

    pub async fn accept(&mut self) -> io::Result<Incoming> {
        let (stream, peer) = self.rx.recv().await.ok_or_else(gone)?;
        // A connection over loopback arrives at the address it was made
        // to, any other at the pod's address of the peer's family.
        let local_ip = if self.ns.is_self(peer.ip()) {
            peer.ip()
        } else {
            self.ns.source_for(peer.ip()).unwrap_or(self.ns.ip())
        };
        let local = SocketAddr::new(local_ip, self.port);
        Ok((self.ns.track(self.protocol, stream, local, peer), peer))
    }
}

impl Drop for PodListener {
    fn drop(&mut self) {
        self.ns.ports().stream_mut(self.protocol).remove(&self.port);
    }
}

pub struct PodUdpSocket {
    ns: Arc<NetNs>,
    port: u16,
    rx: tokio::sync::Mutex<mpsc::Receiver<UdpItem>>,
}

impl PodUdpSocket {
    pub fn local_port(&self) -> u16 {
        self.port
    }

    pub async fn send_to(&self, payload: &[u8], dst: impl Into<SocketAddr>) -> io::Result<()> {
        self.ns
            .send_udp_from(self.port, dst.into(), Bytes::copy_from_slice(payload))
            .await
    }

    /// The next datagram and its sender; ConnectionRefused if an earlier
    /// datagram came back port-unreachable.
    pub async fn recv_from(&self) -> io::Result<(Bytes, SocketAddr)> {
        match self.rx.lock().await.recv().await {
            Some(Ok(d)) => Ok(d),
            Some(Err(kind)) => Err(io::Error::new(kind, "port unreachable")),
            None => Err(gone()),
        }
    }
}

impl Drop for PodUdpSocket {
    fn drop(&mut self) {
        self.ns.ports().udp.remove(&self.port);
    }
}

pub struct IcmpSocket {
    ns: Arc<NetNs>,
    id: u16,
    rx: mpsc::Receiver<IcmpItem>,
}

impl IcmpSocket {
    /// Sends one echo request and waits up to `timeout` for its reply;
    /// `Ok(None)` on timeout.
    pub async fn echo(
        &mut self,
        dst: impl Into<IpAddr>,
        seq: u16,
        timeout: Duration,
    ) -> io::Result<Option<Duration>> {
        let dst = dst.into();
        let start = tokio::time::Instant::now();
        if self.ns.is_self(dst) {
            return Ok(Some(start.elapsed()));
        }
        let src = self.ns.source_for(dst)?;
        self.ns
            .egress()?
            .send_echo(src, dst, self.id, seq, DEFAULT_TTL)
            .await;
        let deadline = start + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(gone()),
                Ok(Some((s, from, IcmpReply::EchoReply))) if s == seq && from == dst => {
                    return Ok(Some(start.elapsed()));
                }
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Sends one echo request that may pass `ttl` routers and waits up to
    /// `timeout` for whatever answers it: the destination's echo reply or
    /// a router's time exceeded. `Ok(None)` on timeout. This socket's own
    /// addresses answer at once, whatever the TTL (no router is passed).
    pub async fn probe(
        &mut self,
        dst: impl Into<IpAddr>,
        seq: u16,
        ttl: u8,
        timeout: Duration,
    ) -> io::Result<Option<ProbeReply>> {
        let dst = dst.into();
        let start = tokio::time::Instant::now();
        if self.ns.is_self(dst) {
            return Ok(Some(ProbeReply {
                from: dst,
                reply: IcmpReply::EchoReply,
                rtt: start.elapsed(),
            }));
        }
        let src = self.ns.source_for(dst)?;
        self.ns
            .egress()?
            .send_echo(src, dst, self.id, seq, ttl)
            .await;
        let deadline = start + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(gone()),
                Ok(Some((s, from, reply))) if s == seq => {
                    return Ok(Some(ProbeReply {
                        from,
                        reply,
                        rtt: start.elapsed(),
                    }));
                }
                Ok(Some(_)) => continue,
            }
        }
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        self.ns.ports().icmp.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn pod() -> Arc<NetNs> {
        NetNs::isolated(Ipv4Addr::new(10, 244, 1, 5), PodInfo::default())
    }

    /// TCP 80 and SCTP 80 are two ports: each is taken once, each reached
    /// only by its own protocol.
    #[tokio::test]
    async fn sctp_ports_are_apart_from_tcp_ports() {
        let ns = pod();
        let mut tcp = ns.listen_tcp(80).expect("tcp 80");
        let mut sctp = ns.listen_sctp(80).expect("sctp 80 beside tcp 80");
        assert_eq!(sctp.protocol(), StreamProtocol::Sctp);
        let taken = ns.listen_sctp(80).err().expect("sctp 80 is taken");
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
        let dst = SocketAddr::new(ns.ip(), 80);
        for (protocol, listener, text) in [
            (StreamProtocol::Sctp, &mut sctp, b"sctp"),
            (StreamProtocol::Tcp, &mut tcp, b"tcp!"),
        ] {
            let mut client = ns.connect_stream(protocol, dst, 0).await.expect("opens");
            let (mut server, _) = listener.accept().await.expect("accepts");
            client.write_all(text).await.expect("write");
            let mut buf = [0; 4];
            server.read_exact(&mut buf).await.expect("read");
            assert_eq!(&buf, text);
        }
        drop(sctp);
        assert!(ns.has_tcp_listener(80));
        assert!(!ns.has_listener(StreamProtocol::Sctp, 80));
        let refused = ns.connect_sctp(dst).await.err().expect("nothing listens");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// The socket table names SCTP listeners and associations as such.
    #[tokio::test]
    async fn sockets_list_sctp_rows() {
        let ns = pod();
        let mut listener = ns.listen_sctp(5000).expect("listen");
        let _tcp = ns.listen_tcp(5000).expect("listen");
        let _client = ns.connect_sctp((ns.ip(), 5000)).await.expect("opens");
        let _server = listener.accept().await.expect("accepts");
        let rows: Vec<(Protocol, SocketState)> = ns
            .sockets()
            .into_iter()
            .map(|r| (r.protocol, r.state))
            .collect();
        assert_eq!(
            rows,
            [
                (Protocol::Tcp, SocketState::Listen),
                (Protocol::Sctp, SocketState::Listen),
                (Protocol::Sctp, SocketState::Established),
                (Protocol::Sctp, SocketState::Established),
            ]
        );
    }
}
