//! The edge's side of the overlay: one mutually authenticated QUIC
//! connection per node for client traffic (the edge presents the
//! `podnet-edge` certificate and speaks for the host's address only), a
//! TCP flow per client connection, a QUIC datagram per UDP datagram, and
//! the replies to those datagrams.
//!
//! Health checks ride a connection of their own per node, as a cloud load
//! balancer's checks are connections of their own: nothing the client
//! flows do to their connection can fail a check, and a check that failed
//! for want of an answer drops its connection ([`Overlay::reset_health`]),
//! so the next one starts on a fresh connection rather than on whatever
//! state made this one fail.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use podnet_overlay::{FlowHeader, FrameKind, OpenStatus, Peers};
use tokio::io::{Join, join};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::nodes::NodeInfo;

/// A TCP flow through the overlay: both directions of one QUIC stream.
pub type FlowStream = Join<quinn::RecvStream, quinn::SendStream>;

/// How long opening a flow may take before the node counts as unreachable
/// for this connection.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The node answered: nothing serves that port (no endpoints).
    #[error("refused by the node")]
    Refused,
    /// The node could not be reached or dropped the flow.
    #[error("node unreachable: {0}")]
    Unreachable(String),
}

/// Delivers a UDP reply (payload, destination port on the host address).
pub type UdpReplies = Arc<dyn Fn(u16, SocketAddr, Bytes) + Send + Sync>;

pub struct Overlay {
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    host_ip: Ipv4Addr,
    /// The host's IPv6 address, on a cluster with IPv6.
    host_ip6: Option<Ipv6Addr>,
    peers: Peers,
    /// The health checks' own connections.
    health_peers: Peers,
    replies: Mutex<Option<UdpReplies>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Overlay {
    pub fn new(
        endpoint: quinn::Endpoint,
        client_config: quinn::ClientConfig,
        host_ip: Ipv4Addr,
        host_ip6: Option<Ipv6Addr>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Overlay> {
        Arc::new(Overlay {
            endpoint,
            client_config,
            host_ip,
            host_ip6,
            peers: Peers::default(),
            health_peers: Peers::default(),
            replies: Mutex::new(None),
            tasks,
            shutdown,
        })
    }

    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The host's address a flow to `dst` comes from: the one of its
    /// family.
    fn source(&self, dst: SocketAddr, port: u16) -> io::Result<SocketAddr> {
        match dst {
            SocketAddr::V4(_) => Ok(SocketAddr::new(IpAddr::V4(self.host_ip), port)),
            SocketAddr::V6(_) => self
                .host_ip6
                .map(|ip| SocketAddr::new(IpAddr::V6(ip), port))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NetworkUnreachable,
                        format!("the host has no IPv6 address to reach {dst} from"),
                    )
                }),
        }
    }

    fn is_host_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => ip == self.host_ip,
            IpAddr::V6(ip) => Some(ip) == self.host_ip6,
        }
    }

    /// Where UDP datagrams the nodes send to the host's address go.
    pub fn on_udp_reply(&self, replies: UdpReplies) {
        *self.replies.lock().unwrap_or_else(PoisonError::into_inner) = Some(replies);
    }

    async fn connection(self: &Arc<Self>, node: &NodeInfo) -> io::Result<quinn::Connection> {
        self.connection_in(&self.peers, node).await
    }

    async fn connection_in(
        self: &Arc<Self>,
        peers: &Peers,
        node: &NodeInfo,
    ) -> io::Result<quinn::Connection> {
        let connecting = peers.connect(
            &self.endpoint,
            &self.client_config,
            &node.name,
            node.underlay,
        );
        let (conn, new) = tokio::time::timeout(OPEN_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "overlay handshake timed out")
            })??;
        if !new {
            return Ok(conn);
        }
        let overlay = self.clone();
        let reader = conn.clone();
        self.tasks
            .spawn(async move { overlay.read_datagrams(reader).await });
        Ok(conn)
    }

    /// Opens a TCP flow from the host's address to `dst` on `node`.
    pub async fn open_tcp(
        self: &Arc<Self>,
        node: &NodeInfo,
        src_port: u16,
        dst: SocketAddr,
        trace_id: u64,
    ) -> Result<FlowStream, OpenError> {
        self.open_tcp_in(&self.peers, node, src_port, dst, trace_id)
            .await
    }

    /// Opens a health check's TCP flow, on the health checks' connection
    /// to `node`.
    pub async fn open_health_check(
        self: &Arc<Self>,
        node: &NodeInfo,
        src_port: u16,
        dst: SocketAddr,
    ) -> Result<FlowStream, OpenError> {
        self.open_tcp_in(&self.health_peers, node, src_port, dst, 0)
            .await
    }

    /// Drops the health checks' connection to `node`: a check on it got
    /// no answer, so the next check makes a new one.
    pub fn reset_health(&self, node: &NodeInfo) {
        self.health_peers
            .close(&node.name, b"health check got no answer");
    }

    async fn open_tcp_in(
        self: &Arc<Self>,
        peers: &Peers,
        node: &NodeInfo,
        src_port: u16,
        dst: SocketAddr,
        trace_id: u64,
    ) -> Result<FlowStream, OpenError> {
        let unreachable = |e: &dyn std::fmt::Display| OpenError::Unreachable(e.to_string());
        let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
            let conn = self
                .connection_in(peers, node)
                .await
                .map_err(|e| unreachable(&e))?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(&e))?;
            let header = FlowHeader {
                kind: FrameKind::TcpOpen,
                src: self.source(dst, src_port).map_err(|e| unreachable(&e))?,
                dst,
                trace_id,
            };
            send.write_all(&header.to_bytes())
                .await
                .map_err(|e| unreachable(&e))?;
            let mut status = [0u8; OpenStatus::LEN];
            recv.read_exact(&mut status)
                .await
                .map_err(|e| unreachable(&e))?;
            match OpenStatus::decode(&status) {
                Ok(OpenStatus::Accepted) => Ok(join(recv, send)),
                Ok(OpenStatus::Refused) => Err(OpenError::Refused),
                Err(e) => Err(unreachable(&e)),
            }
        })
        .await;
        opened.unwrap_or_else(|_| Err(OpenError::Unreachable("no answer from the node".into())))
    }

    /// Sends one UDP datagram from the host's address to `dst` on `node`.
    pub async fn send_udp(
        self: &Arc<Self>,
        node: &NodeInfo,
        src_port: u16,
        dst: SocketAddr,
        payload: &[u8],
        trace_id: u64,
    ) -> io::Result<()> {
        let conn = self.connection(node).await?;
        let header = FlowHeader {
            kind: FrameKind::Udp,
            src: self.source(dst, src_port)?,
            dst,
            trace_id,
        };
        let mut buf = BytesMut::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut buf);
        buf.extend_from_slice(payload);
        conn.send_datagram(buf.freeze())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// Hands UDP replies addressed to the host to the balancer; anything
    /// else a node sends here is dropped.
    async fn read_datagrams(self: Arc<Self>, conn: quinn::Connection) {
        loop {
            let bytes = tokio::select! {
                () = self.shutdown.cancelled() => return,
                d = conn.read_datagram() => match d { Ok(b) => b, Err(_) => return },
            };
            let Ok((header, len)) = FlowHeader::decode(&bytes) else {
                continue;
            };
            if header.kind != FrameKind::Udp || !self.is_host_ip(header.dst.ip()) {
                continue;
            }
            let src = header.src;
            let replies = self
                .replies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(replies) = replies {
                replies(header.dst.port(), src, bytes.slice(len..));
            }
        }
    }

    /// Closes every connection (bounded wait for the nodes to learn it).
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"edge shutting down");
        let _ = tokio::time::timeout(Duration::from_millis(300), self.endpoint.wait_idle()).await;
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }
}
