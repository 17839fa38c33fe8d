//! Cluster DNS on a real port of the host: `dig @127.0.0.1 -p PORT
//! web.default.svc.cluster.local` works from outside the cluster.
//!
//! Each node listens on a real UDP and TCP socket and sends every query from
//! its own (emulated) address to the kube-dns Service, so a query crosses
//! the service proxy and the overlay to a DNS pod exactly as a pod's query
//! does, and can be hit by the same faults. This is a forwarder, not a
//! second DNS server: it reads DNS over TCP's 2-byte length framing
//! (RFC 1035 4.2.2) to know where a query ends, never a message's content.
//!
//! TCP connections are kept as miekg/dns (the server library CoreDNS is
//! built on) keeps them: [`FIRST_QUERY_TIMEOUT`] for the first query,
//! [`IDLE_TIMEOUT`] between queries, at most [`MAX_QUERIES_PER_CONNECTION`]
//! queries, and at most [`MAX_TCP_CONNECTIONS`] at once, where a new one
//! sheds the connection idle the longest ([`conns`]). The upstream
//! connection to the DNS pod is made at the first query, so an idle client
//! holds nothing inside the cluster.

mod conns;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use podnet_pod::netns::{NetNs, PodStream};

use self::conns::{Admit, ConnTable};

/// Queries forwarded at once; more wait for a slot (the socket buffers them).
const IN_FLIGHT: usize = 512;
/// How long a forwarded UDP query waits for its answer.
const UDP_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest UDP message (EDNS allows up to 65535).
const MAX_UDP: usize = 65535;
/// How long a new TCP connection has to send its first query (and any
/// query, once started, to arrive whole): miekg/dns's read timeout.
const FIRST_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connection may wait between queries: miekg/dns's
/// `idleTimeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(8);
/// How long writing an answer to a TCP client may take: miekg/dns's write
/// timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries one TCP connection may send before it is closed: miekg/dns's
/// `maxTCPQueries`.
const MAX_QUERIES_PER_CONNECTION: usize = 128;
/// TCP connections at once; past it a new one sheds the longest idle.
const MAX_TCP_CONNECTIONS: usize = 256;
/// How long the upstream DNS pod has to accept and to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

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
    pub async fn run(self, host: Arc<NetNs>, dns: SocketAddr, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let udp = Arc::new(self.udp);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut buf = vec![0u8; MAX_UDP];
        let conns = Conns::new(MAX_TCP_CONNECTIONS);
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
                    let Ok((stream, peer)) = r else { continue };
                    let Some(conn) = conns.admit(&shutdown) else {
                        tracing::debug!(%peer, "DNS TCP connection refused: every connection busy");
                        continue;
                    };
                    let host = host.clone();
                    tasks.spawn(async move {
                        let cancel = conn.cancel.clone();
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            () = forward_tcp(&host, dns, stream, &conn) => {}
                        }
                    }.instrument(tracing::debug_span!("hostdns.tcp", conn.peer = %peer)));
                }
            }
        }
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
    }
}

async fn forward_udp(host: &Arc<NetNs>, dns: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let sock = host.bind_udp(0).ok()?;
    sock.send_to(query, dns).await.ok()?;
    match tokio::time::timeout(UDP_TIMEOUT, sock.recv_from()).await {
        Ok(Ok((answer, _))) => Some(answer.to_vec()),
        _ => None,
    }
}

/// The TCP connections of the host DNS port: the table's decisions, and
/// how to close a connection it sheds.
struct Conns {
    inner: Mutex<(ConnTable, std::collections::HashMap<u64, CancellationToken>)>,
}

/// One admitted connection; dropping it leaves the table.
struct Conn {
    conns: Arc<Conns>,
    id: u64,
    cancel: CancellationToken,
}

impl Conns {
    fn new(cap: usize) -> Arc<Conns> {
        Arc::new(Conns {
            inner: Mutex::new((ConnTable::new(cap), Default::default())),
        })
    }

    fn admit(self: &Arc<Self>, shutdown: &CancellationToken) -> Option<Conn> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (table, cancels) = &mut *inner;
        let Admit::Accepted { id, shed } = table.admit(Instant::now()) else {
            return None;
        };
        if let Some(cancel) = shed.and_then(|shed| cancels.remove(&shed)) {
            tracing::debug!("idle DNS TCP connection shed for a new one");
            cancel.cancel();
        }
        let cancel = shutdown.child_token();
        cancels.insert(id, cancel.clone());
        Some(Conn {
            conns: self.clone(),
            id,
            cancel,
        })
    }

    fn with(&self, f: impl FnOnce(&mut ConnTable)) {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner).0);
    }
}

impl Conn {
    fn busy(&self) {
        self.conns.with(|t| t.busy(self.id));
    }

    fn idle(&self) {
        self.conns.with(|t| t.idle(self.id, Instant::now()));
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut inner = self
            .conns
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        inner.0.remove(self.id);
        inner.1.remove(&self.id);
    }
}

/// One DNS-over-TCP message: its length prefix and its bytes.
async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut prefix = [0u8; 2];
    r.read_exact(&mut prefix).await?;
    read_body(r, prefix).await
}

async fn read_body<R: AsyncRead + Unpin>(r: &mut R, prefix: [u8; 2]) -> std::io::Result<Vec<u8>> {
    let mut message = vec![0u8; 2 + usize::from(u16::from_be_bytes(prefix))];
    message[..2].copy_from_slice(&prefix);
    r.read_exact(&mut message[2..]).await?;
    Ok(message)
}

/// Serves one client connection: each query is read whole, sent on the
/// connection to the DNS pod (made at the first query, made again once if
/// it has closed) and its answer written back, one at a time, so answers
/// keep the order of the queries.
async fn forward_tcp(host: &Arc<NetNs>, dns: SocketAddr, mut client: TcpStream, conn: &Conn) {
    let mut upstream: Option<PodStream> = None;
    for served in 0..MAX_QUERIES_PER_CONNECTION {
        let wait = if served == 0 {
            FIRST_QUERY_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        let mut prefix = [0u8; 2];
        match tokio::time::timeout(wait, client.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            // Closed by the client, or idle too long.
            Ok(Err(_)) | Err(_) => return,
        }
        conn.busy();
        let Ok(Ok(query)) =
            tokio::time::timeout(FIRST_QUERY_TIMEOUT, read_body(&mut client, prefix)).await
        else {
            return;
        };
        let Some(answer) = ask(host, dns, &mut upstream, &query).await else {
            return;
        };
        match tokio::time::timeout(WRITE_TIMEOUT, client.write_all(&answer)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        conn.idle();
    }
}

/// The answer to `query` from the DNS pod, on the kept upstream connection
/// or, when that fails, on one new connection.
async fn ask(
    host: &Arc<NetNs>,
    dns: SocketAddr,
    upstream: &mut Option<PodStream>,
    query: &[u8],
) -> Option<Vec<u8>> {
    if let Some(stream) = upstream.as_mut()
        && let Some(answer) = exchange(stream, query).await
    {
        return Some(answer);
    }
    // None yet, or the DNS pod closed the kept one (its own idle timeout):
    // one new connection.
    *upstream = None;
    let Ok(Ok(stream)) = tokio::time::timeout(UPSTREAM_TIMEOUT, host.connect_tcp(dns)).await else {
        return None;
    };
    let stream = upstream.insert(stream);
    exchange(stream, query).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    query: &[u8],
) -> Option<Vec<u8>> {
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        stream.write_all(query).await?;
        read_message(stream).await
    })
    .await
    .ok()?
    .ok()
}
