//! The node's datapath: where a packet or a flow that leaves a pod goes.
//!
//! A destination that is a pod of this node is reached in memory (same
//! semantics, no QUIC). A destination inside another node's podCIDR (or
//! another node's IP) goes over the overlay: one QUIC bidirectional stream
//! per TCP flow, one QUIC datagram per UDP datagram or ICMP message, each
//! starting with a `FlowHeader`. Anything else is unroutable and silently
//! dropped, so the sender times out as it would on a real network.
//!
//! Inbound, a flow is accepted only if its source lies in the podCIDR (or
//! node IP) of the node whose certificate the connection presented: a node
//! cannot speak for another node's pods. Bad headers and forged sources are
//! dropped and counted, never a panic.
//!
//! Service proxying and network policy are not decided here.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use ipnet::Ipv4Net;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::netns::{LOCAL_PIPE_BYTES, NetNs, PodStream};
use crate::overlay::wire::BASE_HEADER_LEN;
use crate::overlay::{EmulatedSocket, FlowHeader, FrameKind, LinkTable, NodeIdentity, OpenStatus};

/// Where a prefix of addresses lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// A podCIDR, or a node IP as a /32.
    pub cidr: Ipv4Net,
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
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

type PeerSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

pub struct Datapath {
    node_name: String,
    local_cidr: Ipv4Net,
    pods: RwLock<HashMap<Ipv4Addr, Arc<NetNs>>>,
    routes: RwLock<Vec<Route>>,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    links: LinkTable,
    peers: Mutex<HashMap<String, PeerSlot>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    pub stats: Stats,
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
        node_name: &str,
        local_cidr: Ipv4Net,
        identity: &NodeIdentity,
        socket: std::net::UdpSocket,
        shutdown: CancellationToken,
    ) -> io::Result<Arc<Datapath>> {
        let links = LinkTable::default();
        let socket = EmulatedSocket::new(socket, links.clone())?;
        let endpoint = crate::overlay::endpoint(socket, Some(identity.server_config()))?;
        let dp = Arc::new(Datapath {
            node_name: node_name.to_string(),
            local_cidr,
            pods: RwLock::new(HashMap::new()),
            routes: RwLock::new(Vec::new()),
            endpoint,
            client_config: identity.client_config(),
            links,
            peers: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown,
            stats: Stats::default(),
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

    pub fn add_pod(&self, ns: Arc<NetNs>) {
        self.pods
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ns.ip(), ns);
    }

    pub fn remove_pod(&self, ip: Ipv4Addr) {
        self.pods
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ip);
    }

    pub fn local_pod(&self, ip: Ipv4Addr) -> Option<Arc<NetNs>> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ip)
            .cloned()
    }

    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
    }

    fn route(&self, ip: Ipv4Addr) -> Option<Route> {
        // This node's own podCIDR never leaves the node, whatever the table says.
        if self.local_cidr.contains(&ip) {
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
        let slot = {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            peers.entry(route.node.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.close_reason().is_none()
            && conn.remote_address() == route.underlay
        {
            return Ok(conn.clone());
        }
        let connecting = self
            .endpoint
            .connect_with(self.client_config.clone(), route.underlay, &route.node)
            .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?;
        let conn = connecting
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
        tracing::debug!(peer.node = %route.node, peer.addr = %route.underlay, "overlay connection up");
        let auth = Arc::new(PeerAuth {
            conn: conn.clone(),
            verified: Mutex::new(None),
        });
        self.tasks.spawn(
            self.clone()
                .serve_connection(auth)
                .instrument(tracing::debug_span!("overlay.conn", peer.node = %route.node)),
        );
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Opens a TCP flow from `src` (a local pod or this node) to `dst`.
    pub async fn connect_tcp(
        self: &Arc<Self>,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        trace_id: u64,
    ) -> io::Result<PodStream> {
        bump(&self.stats.flows_out);
        if let Some(ns) = self.local_pod(*dst.ip()) {
            let (a, b) = tokio::io::duplex(LOCAL_PIPE_BYTES);
            return match ns.deliver_tcp(dst.port(), (PodStream::Local(b), src)) {
                Ok(()) => Ok(PodStream::Local(a)),
                Err(Some(_)) => Err(io::ErrorKind::ConnectionRefused.into()),
                Err(None) => std::future::pending().await,
            };
        }
        let Some(route) = self.route(*dst.ip()).filter(|r| r.node != self.node_name) else {
            bump(&self.stats.unroutable);
            return std::future::pending().await;
        };
        let conn = self.peer(&route).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(io::Error::from)?;
        let trace_id = if trace_id == 0 {
            rand::random()
        } else {
            trace_id
        };
        let header = FlowHeader {
            kind: FrameKind::TcpOpen,
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
                Ok(OpenStatus::Accepted) => Ok(PodStream::Quic { send, recv }),
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
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: Bytes,
        trace_id: u64,
    ) {
        bump(&self.stats.datagrams_out);
        if let Some(ns) = self.local_pod(*dst.ip()) {
            if !ns.deliver_udp(dst.port(), Ok((payload, src)))
                && let Some(origin) = self.local_pod(*src.ip())
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
        self.send_datagram(*dst.ip(), header, &payload).await;
    }

    /// Sends one ICMP echo request.
    pub async fn send_echo(self: &Arc<Self>, src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) {
        if let Some(ns) = self.local_pod(dst) {
            if let Some(origin) = self.local_pod(src) {
                origin.deliver_echo_reply(id, seq, ns.ip());
            }
            return;
        }
        let header = FlowHeader {
            kind: FrameKind::IcmpEchoRequest { id, seq },
            src: SocketAddrV4::new(src, 0),
            dst: SocketAddrV4::new(dst, 0),
            trace_id: 0,
        };
        self.send_datagram(dst, header, b"podnet-ping").await;
    }

    async fn send_datagram(self: &Arc<Self>, dst: Ipv4Addr, header: FlowHeader, payload: &[u8]) {
        let Some(route) = self.route(dst).filter(|r| r.node != self.node_name) else {
            bump(&self.stats.unroutable);
            return;
        };
        let conn = match self.peer(&route).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, peer.node = %route.node, "datagram dropped: no connection");
                bump(&self.stats.datagrams_dropped);
                return;
            }
        };
        let mut buf = BytesMut::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut buf);
        buf.extend_from_slice(payload);
        if let Err(e) = conn.send_datagram(buf.freeze()) {
            tracing::debug!(error = %e, "datagram dropped");
            bump(&self.stats.datagrams_dropped);
        }
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

    /// Is `ip` an address the peer of `auth` may speak for?
    fn authorized(&self, auth: &PeerAuth, ip: Ipv4Addr) -> bool {
        let Some(route) = self.route(ip) else {
            return false;
        };
        let mut verified = auth.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.as_deref() == Some(route.node.as_str()) {
            return true;
        }
        if crate::overlay::peer_is_node(&auth.conn, &route.node) {
            *verified = Some(route.node);
            return true;
        }
        false
    }

    async fn serve_stream(
        self: Arc<Self>,
        auth: &PeerAuth,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let mut buf = [0u8; BASE_HEADER_LEN];
        if recv.read_exact(&mut buf).await.is_err() {
            bump(&self.stats.bad_headers);
            return;
        }
        let header = match FlowHeader::decode(&buf) {
            Ok((h, _)) if h.kind == FrameKind::TcpOpen => h,
            Ok(_) | Err(_) => {
                bump(&self.stats.bad_headers);
                let _ = send.reset(1u32.into());
                return;
            }
        };
        if !self.authorized(auth, *header.src.ip()) {
            bump(&self.stats.forged_sources);
            tracing::warn!(flow.src = %header.src, "flow dropped: source outside the sending node's addresses");
            let _ = send.reset(1u32.into());
            return;
        }
        bump(&self.stats.flows_in);
        let Some(ns) = self.local_pod(*header.dst.ip()) else {
            // No such pod here: silence, the client times out.
            let _ = send.finish();
            return;
        };
        if !ns.has_tcp_listener(header.dst.port()) {
            let _ = send.write_all(&[OpenStatus::Refused.to_byte()]).await;
            let _ = send.finish();
            return;
        }
        if send
            .write_all(&[OpenStatus::Accepted.to_byte()])
            .await
            .is_err()
        {
            return;
        }
        if let Err(Some((stream, _))) = ns.deliver_tcp(
            header.dst.port(),
            (PodStream::Quic { send, recv }, header.src),
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
            FrameKind::IcmpPortUnreachable => *header.dst.ip(),
            _ => *header.src.ip(),
        };
        if !self.authorized(auth, remote) {
            bump(&self.stats.forged_sources);
            return;
        }
        match header.kind {
            FrameKind::Udp => {
                let Some(ns) = self.local_pod(*header.dst.ip()) else {
                    return;
                };
                if !ns.deliver_udp(header.dst.port(), Ok((payload, header.src))) {
                    let reply = FlowHeader {
                        kind: FrameKind::IcmpPortUnreachable,
                        ..header
                    };
                    let _ = auth.conn.send_datagram(Bytes::from(reply.to_bytes()));
                }
            }
            FrameKind::IcmpEchoRequest { id, seq } => {
                if self.local_pod(*header.dst.ip()).is_some() {
                    let reply = FlowHeader {
                        kind: FrameKind::IcmpEchoReply { id, seq },
                        src: header.dst,
                        dst: header.src,
                        trace_id: header.trace_id,
                    };
                    let mut buf = BytesMut::from(&reply.to_bytes()[..]);
                    buf.extend_from_slice(&payload);
                    let _ = auth.conn.send_datagram(buf.freeze());
                }
            }
            FrameKind::IcmpEchoReply { id, seq } => {
                if let Some(ns) = self.local_pod(*header.dst.ip()) {
                    ns.deliver_echo_reply(id, seq, *header.src.ip());
                }
            }
            FrameKind::IcmpPortUnreachable => {
                if let Some(ns) = self.local_pod(*header.src.ip()) {
                    ns.deliver_udp(header.src.port(), Err(io::ErrorKind::ConnectionRefused));
                }
            }
            FrameKind::TcpOpen => bump(&self.stats.bad_headers),
        }
    }
}

#[cfg(test)]
mod tests;
