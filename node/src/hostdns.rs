//! Cluster DNS on a real port of the host: `dig @127.0.0.1 -p PORT
//! web.default.svc.cluster.local` works from outside the cluster.
//!
//! Each node listens on a real UDP and TCP socket and sends every query from
//! its own (emulated) address to the kube-dns Service, so a query crosses
//! the service proxy and the overlay to a DNS pod exactly as a pod's query
//! does, and can be hit by the same faults. This is a forwarder, not a
//! second DNS server: it never reads or builds DNS messages.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use podnet_pod::netns::NetNs;

/// Queries forwarded at once; more wait for a slot (the socket buffers them).
const IN_FLIGHT: usize = 512;
/// How long a forwarded UDP query waits for its answer.
const UDP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a TCP connection may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest UDP message (EDNS allows up to 65535).
const MAX_UDP: usize = 65535;

pub struct HostDns {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl HostDns {
    /// Binds UDP and TCP on the same address (the TCP port follows the UDP
    /// one when port 0 is asked).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<HostDns> {
        // With port 0 the UDP port is picked first; its TCP twin may be
        // taken by an unrelated socket, so pick again a few times.
        let attempts = if addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let udp = UdpSocket::bind(addr).await?;
            match TcpListener::bind(udp.local_addr()?).await {
                Ok(tcp) => return Ok(HostDns { udp, tcp }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Forwards queries to `dns` (the kube-dns ClusterIP:53) from `host`,
    /// the node's own namespace, until `shutdown`.
    pub async fn run(self, host: Arc<NetNs>, dns: SocketAddrV4, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let udp = Arc::new(self.udp);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut buf = vec![0u8; MAX_UDP];
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = udp.recv_from(&mut buf) => {
                    let Ok((n, client)) = r else { continue };
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let query = buf[..n].to_vec();
                    let (udp, host) = (udp.clone(), host.clone());
                    tasks.spawn(async move {
                        let _permit = permit;
                        if let Some(answer) = forward_udp(&host, dns, &query).await {
                            let _ = udp.send_to(&answer, client).await;
                        }
                    }.in_current_span());
                }
                r = self.tcp.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let host = host.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = forward_tcp(&host, dns, stream) => {}
                        }
                    }.instrument(tracing::debug_span!("hostdns.tcp")));
                }
            }
        }
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
    }
}

async fn forward_udp(host: &Arc<NetNs>, dns: SocketAddrV4, query: &[u8]) -> Option<Vec<u8>> {
    let sock = host.bind_udp(0).ok()?;
    sock.send_to(query, dns).await.ok()?;
    match tokio::time::timeout(UDP_TIMEOUT, sock.recv_from()).await {
        Ok(Ok((answer, _))) => Some(answer.to_vec()),
        _ => None,
    }
}

async fn forward_tcp(host: &Arc<NetNs>, dns: SocketAddrV4, client: tokio::net::TcpStream) {
    let Ok(Ok(upstream)) = tokio::time::timeout(UDP_TIMEOUT, host.connect_tcp(dns)).await else {
        return;
    };
    // DNS over TCP is request/response; an idle connection is closed.
    let copy = podnet_overlay::splice(client, upstream);
    let _ = tokio::time::timeout(TCP_IDLE * 6, copy).await;
}
