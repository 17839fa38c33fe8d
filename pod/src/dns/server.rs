//! The `podnet/dns` server: DNS over UDP and TCP on the pod's sockets,
//! answering from the latest [`ClusterView`](crate::cluster::ClusterView).
//!
//! The byte-level work is two pure functions, [`handle_datagram`] and
//! [`handle_stream_message`] (decode with hickory-proto, [`answer`], encode
//! within the transport's size limit), which the loops call and the fuzzers
//! target. Nothing a client sends can panic the server: a message that does
//! not decode gets FORMERR when its header is readable and is dropped
//! otherwise; a message that is itself a response is never answered, so two
//! servers cannot bounce packets off each other.
//!
//! UDP responses fit in 512 bytes, or in the EDNS payload the query
//! advertises (capped at [`SERVER_UDP_PAYLOAD`]). A larger response first
//! loses its additional section (optional data, RFC 2181 §9), then is sent
//! as the question alone with TC set, and the client retries over TCP. TCP
//! carries 2-byte length-prefixed messages, several per connection, answered
//! in order, until the client closes or stays idle for [`TCP_IDLE_TIMEOUT`].
//!
//! The index is rebuilt when the view has changed (`watch::Receiver::
//! has_changed`), by whichever query notices first, never per query.
//!
//! A query the zones do not answer alone ([`Resolution::Forward`] and
//! [`Resolution::Chase`]) goes to the [`Forwarder`]: over UDP in a tracked
//! task of its own (so a slow upstream never holds up the zone's answers),
//! over TCP in the connection's turn. The pure entry points answer it as if
//! there were no upstream.
//!
//! Deliberately not here: a cache (answers are built from memory in
//! microseconds), rate limiting, and the host-side listener (the node binds
//! real sockets and feeds [`handle_datagram`]).

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Header, Message, MessageType, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use podnet_proto::model::network::{KUBE_DNS_IP, KUBE_DNS_IP6};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::answer::{ClusterDomain, Index, Resolution, SERVER_UDP_PAYLOAD, resolve};
use super::forward::{self, ForwardStats, Forwarder};
use crate::cluster::ClusterViewRx;
use crate::netns::{PodListener, PodUdpSocket};

/// The DNS port.
pub const DNS_PORT: u16 = 53;
/// How long a TCP connection may sit between messages (and a message take
/// to arrive or leave) before the server closes it. RFC 7766 asks for
/// seconds rather than minutes; 10 s is CoreDNS's read timeout.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connections served at once; further ones are closed on accept, as a
/// server out of file descriptors would.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// The size limit of a UDP response without EDNS (RFC 1035).
const CLASSIC_UDP_PAYLOAD: usize = 512;
/// Questions a message may announce before it is refused unread: hickory
/// reserves room for every announced question up front, and a 12-byte
/// header may announce 65535 of them. A query has exactly one.
const MAX_QUESTIONS: u16 = 16;

/// Counters of one server, for `/metrics`. Responses are counted by the
/// RCODE in their header (the low 4 bits, so an EDNS BADVERS counts as 0).
#[derive(Debug, Default)]
pub struct DnsStats {
    queries: AtomicU64,
    tcp_queries: AtomicU64,
    dropped: AtomicU64,
    truncated: AtomicU64,
    tcp_rejected: AtomicU64,
    responses: [AtomicU64; 16],
    forward: Arc<ForwardStats>,
}

impl DnsStats {
    /// Messages received, answered or not.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Messages received over TCP.
    pub fn tcp_queries(&self) -> u64 {
        self.tcp_queries.load(Ordering::Relaxed)
    }

    /// The forwarding's counters.
    pub fn forward(&self) -> &Arc<ForwardStats> {
        &self.forward
    }

    /// Messages not answered: unreadable headers and responses.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// UDP responses sent with TC set.
    pub fn truncated(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// TCP connections closed on accept because `MAX_TCP_CONNECTIONS`
    /// were open.
    pub fn tcp_rejected(&self) -> u64 {
        self.tcp_rejected.load(Ordering::Relaxed)
    }

    /// Responses sent with `rcode` in their header.
    pub fn responses(&self, rcode: ResponseCode) -> u64 {
        self.responses[usize::from(rcode.low() & 0x0f)].load(Ordering::Relaxed)
    }

    fn count_response(&self, reply: &[u8]) {
        // Byte 2 holds TC (0x02), byte 3 the RCODE's low bits: a response
        // built by `encode` always has its 12-byte header.
        if let (Some(flags), Some(rcode)) = (reply.get(2), reply.get(3)) {
            if flags & 0x02 != 0 {
                self.truncated.fetch_add(1, Ordering::Relaxed);
            }
            self.responses[usize::from(rcode & 0x0f)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the UDP socket on port {port} failed")]
    Udp {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("the TCP listener on port {port} failed")]
    Tcp {
        port: u16,
        #[source]
        source: io::Error,
    },
}

/// The transport a message came over, which bounds the response's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// The response to one UDP datagram, or `None` when nothing must be sent,
/// as a server without an upstream answers. Pure and total: any byte
/// string is fine.
pub fn handle_datagram(index: &Index, bytes: &[u8]) -> Option<Vec<u8>> {
    handle(index, bytes, Transport::Udp)
}

/// The response to one message read from a TCP stream (without its length
/// prefix), or `None` when nothing must be sent.
pub fn handle_stream_message(index: &Index, bytes: &[u8]) -> Option<Vec<u8>> {
    handle(index, bytes, Transport::Tcp)
}

fn handle(index: &Index, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
    match step(index, bytes, transport) {
        Step::Reply(reply) => Some(reply),
        Step::Drop => None,
        Step::Upstream {
            query,
            resolution,
            limit,
        } => encode(&(*resolution).without_upstream(&query), limit),
    }
}

/// What one message asks of the server.
enum Step {
    Reply(Vec<u8>),
    /// Nothing to send.
    Drop,
    /// The zones answer only with an upstream's help; the response must
    /// fit in `limit` bytes.
    Upstream {
        query: Box<Message>,
        resolution: Box<Resolution>,
        limit: usize,
    },
}

fn step(index: &Index, bytes: &[u8], transport: Transport) -> Step {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Step::Drop;
    };
    if header.message_type != MessageType::Query {
        return Step::Drop;
    }
    let reply = |reply: Option<Vec<u8>>| reply.map_or(Step::Drop, Step::Reply);
    if header.counts.queries > MAX_QUESTIONS {
        return reply(format_error(&header));
    }
    let query = match Message::from_vec(bytes) {
        Ok(query) => query,
        Err(_) => return reply(format_error(&header)),
    };
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => query.edns.as_ref().map_or(CLASSIC_UDP_PAYLOAD, |edns| {
            usize::from(edns.max_payload().clamp(512, SERVER_UDP_PAYLOAD))
        }),
    };
    match resolve(index, &query) {
        Resolution::Answer(response) => reply(encode(&response, limit)),
        resolution => Step::Upstream {
            query: Box::new(query),
            resolution: Box::new(resolution),
            limit,
        },
    }
}

/// The answer to a query that needs the upstream: forwarded (SERVFAIL when
/// no upstream answers), or the CNAME completed with the target's records
/// (the CNAME alone when no upstream answers).
async fn complete(
    forwarder: &Forwarder,
    index: &Index,
    query: Message,
    resolution: Resolution,
    transport: Transport,
) -> Message {
    let mut cluster_dns = index.nameserver_ips();
    cluster_dns.extend([IpAddr::V4(KUBE_DNS_IP), IpAddr::V6(KUBE_DNS_IP6)]);
    let upstreams = forwarder.upstreams(&cluster_dns);
    let tcp = transport == Transport::Tcp;
    let id = rand::random::<u16>();
    match resolution {
        Resolution::Answer(response) => response,
        Resolution::Forward => {
            let upstream_query = forward::upstream_query(&query, id);
            match forwarder.exchange(&upstream_query, &upstreams, tcp).await {
                Ok(response) => forward::relay(&query, response),
                Err(error) => {
                    tracing::debug!(%error, "query not forwarded; SERVFAIL");
                    forward::failure(&query, ResponseCode::ServFail)
                }
            }
        }
        Resolution::Chase { response, target } => {
            let Some(target_query) = forward::target_query(&query, &target, id) else {
                return response;
            };
            match forwarder.exchange(&target_query, &upstreams, tcp).await {
                Ok(upstream) => forward::chase(response, &upstream),
                Err(error) => {
                    tracing::debug!(%error, %target, "CNAME target not resolved");
                    response
                }
            }
        }
    }
}

/// FORMERR for a query whose header decodes but whose body does not (or
/// announces more questions than make sense).
fn format_error(header: &Header) -> Option<Vec<u8>> {
    let mut response = Message::error_msg(header.id, header.op_code, ResponseCode::FormErr);
    response.metadata.recursion_desired = header.recursion_desired;
    response.to_vec().ok()
}

/// Encodes `response` in at most `limit` bytes: whole, else without the
/// additional section, else as the question alone with TC set.
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let full = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(_) => return server_failure(response),
    };
    if full.len() <= limit {
        return Some(full);
    }
    if !response.additionals.is_empty() {
        let mut slim = response.clone();
        slim.additionals.clear();
        if let Ok(bytes) = slim.to_vec()
            && bytes.len() <= limit
        {
            return Some(bytes);
        }
    }
    // `truncate` keeps the header (with TC set), the question and the OPT.
    match response.truncate().to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        _ => server_failure(response),
    }
}

/// SERVFAIL with the question, for a response that cannot be encoded.
fn server_failure(response: &Message) -> Option<Vec<u8>> {
    let mut failure = Message::error_msg(response.id, response.op_code, ResponseCode::ServFail);
    failure.add_queries(response.queries.iter().cloned());
    failure.to_vec().ok()
}

/// The index of the latest view, rebuilt only when the view changed.
struct Zone {
    domain: ClusterDomain,
    state: Mutex<ZoneState>,
}

struct ZoneState {
    cluster: ClusterViewRx,
    index: Arc<Index>,
}

impl Zone {
    fn new(domain: ClusterDomain, mut cluster: ClusterViewRx) -> Zone {
        let view = cluster.borrow_and_update().clone();
        let index = Arc::new(build(&view, &domain, 0));
        Zone {
            domain,
            state: Mutex::new(ZoneState { cluster, index }),
        }
    }

    fn current(&self) -> Arc<Index> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // An error means the sender is gone: the last view stays current.
        if state.cluster.has_changed().unwrap_or(false) {
            let view = state.cluster.borrow_and_update().clone();
            let previous = state.index.serial();
            state.index = Arc::new(build(&view, &self.domain, previous));
        }
        state.index.clone()
    }
}

/// Builds the index with a serial that is the build time (as CoreDNS's)
/// but always above the previous one.
fn build(view: &crate::cluster::ClusterView, domain: &ClusterDomain, previous: u32) -> Index {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let serial = now.max(previous.wrapping_add(1));
    let index = Index::build(view, domain, serial);
    // Debug, not warn: a Service waiting for its ClusterIP is routine, and
    // the API server's validation keeps the other cases out.
    for skipped in index.skipped() {
        tracing::debug!(%skipped, "object left out of cluster DNS");
    }
    tracing::debug!(serial, "cluster DNS zone rebuilt");
    index
}

/// Serves DNS on `udp` and `tcp` until `cancel` fires (then it stops
/// accepting, ends every TCP connection and returns `Ok`) or a socket fails
/// (then it stops the other transport too and returns the error). Returns
/// only after every connection task has ended. Without a `forwarder` the
/// server is a Corefile without `forward`: REFUSED outside the zones.
pub async fn serve(
    udp: PodUdpSocket,
    tcp: PodListener,
    domain: ClusterDomain,
    cluster: ClusterViewRx,
    forwarder: Option<Forwarder>,
    stats: Arc<DnsStats>,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    let zone = Arc::new(Zone::new(domain, cluster));
    let udp = Arc::new(udp);
    let udp_port = udp.local_port();
    let tcp_port = tcp.port();
    // Either loop failing stops the other: a DNS server with half its
    // transports is a confusing thing to debug.
    let stop = cancel.child_token();
    let udp_loop = async {
        // Returns on `stop` too, once every forwarded query has ended.
        let result = serve_udp(&udp, &zone, &forwarder, &stats, &stop)
            .await
            .map_err(|source| ServeError::Udp {
                port: udp_port,
                source,
            });
        stop.cancel();
        result
    }
    .instrument(tracing::debug_span!("dns.udp", port = udp_port));
    let tcp_loop = async {
        // Returns only once every connection has ended.
        let result = serve_tcp(
            tcp,
            zone.clone(),
            forwarder.clone(),
            stats.clone(),
            stop.clone(),
        )
        .await
        .map_err(|source| ServeError::Tcp {
            port: tcp_port,
            source,
        });
        stop.cancel();
        result
    };
    let (udp_result, tcp_result) = tokio::join!(udp_loop, tcp_loop);
    udp_result.and(tcp_result)
}

/// Answers datagrams one at a time: answering is pure computation, so a
/// queue of one is the concurrency bound, and the socket's own bounded
/// queue drops what arrives faster, as a full socket buffer does. A query
/// for the upstream gets a task of its own (at most
/// `forward::MAX_CONCURRENT`; beyond that REFUSED), which ends with
/// `cancel` at the latest; the loop returns once they all have.
async fn serve_udp(
    socket: &Arc<PodUdpSocket>,
    zone: &Zone,
    forwarder: &Option<Forwarder>,
    stats: &Arc<DnsStats>,
    cancel: &CancellationToken,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let result = receive_udp(socket, zone, forwarder, stats, cancel, &tracker).await;
    tracker.close();
    tracker.wait().await;
    result
}

async fn receive_udp(
    socket: &Arc<PodUdpSocket>,
    zone: &Zone,
    forwarder: &Option<Forwarder>,
    stats: &Arc<DnsStats>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> io::Result<()> {
    loop {
        let received = tokio::select! {
            received = socket.recv_from() => received,
            () = cancel.cancelled() => return Ok(()),
        };
        let (bytes, peer) = match received {
            Ok(datagram) => datagram,
            // An earlier response came back port-unreachable: that client
            // has gone, which is no reason to stop serving.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(error) => return Err(error),
        };
        stats.queries.fetch_add(1, Ordering::Relaxed);
        let index = zone.current();
        let reply = match step(&index, &bytes, Transport::Udp) {
            Step::Reply(reply) => reply,
            Step::Drop => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%peer, len = bytes.len(), "datagram dropped");
                continue;
            }
            Step::Upstream {
                query,
                resolution,
                limit,
            } => {
                let Some(forwarder) = forwarder else {
                    // No `forward` configured: the zones' answer alone.
                    match encode(&(*resolution).without_upstream(&query), limit) {
                        Some(reply) => {
                            stats.count_response(&reply);
                            if let Err(error) = socket.send_to(&reply, peer).await {
                                tracing::debug!(%error, %peer, "response not sent");
                            }
                        }
                        None => {
                            stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                };
                let Some(slot) = forwarder.slot() else {
                    let refused = encode(&forward::failure(&query, ResponseCode::Refused), limit);
                    if let Some(reply) = refused {
                        stats.count_response(&reply);
                        if let Err(error) = socket.send_to(&reply, peer).await {
                            tracing::debug!(%error, %peer, "response not sent");
                        }
                    }
                    continue;
                };
                let (socket, forwarder, stats, cancel) = (
                    socket.clone(),
                    forwarder.clone(),
                    stats.clone(),
                    cancel.clone(),
                );
                let span = tracing::debug_span!("dns.forward", conn.peer = %peer);
                tracker.spawn(
                    async move {
                        let _slot = slot;
                        let response = tokio::select! {
                            response = complete(&forwarder, &index, *query, *resolution, Transport::Udp) => response,
                            () = cancel.cancelled() => return,
                        };
                        let Some(reply) = encode(&response, limit) else {
                            return;
                        };
                        stats.count_response(&reply);
                        if let Err(error) = socket.send_to(&reply, peer).await {
                            tracing::debug!(%error, %peer, "response not sent");
                        }
                    }
                    .instrument(span),
                );
                continue;
            }
        };
        stats.count_response(&reply);
        if let Err(error) = socket.send_to(&reply, peer).await {
            tracing::debug!(%error, %peer, "response not sent");
        }
    }
}

async fn serve_tcp(
    mut listener: PodListener,
    zone: Arc<Zone>,
    forwarder: Option<Forwarder>,
    stats: Arc<DnsStats>,
    cancel: CancellationToken,
) -> io::Result<()> {
    let connections = cancel.child_token();
    // However this ends (including being dropped), connections end too.
    let _end_connections = connections.clone().drop_guard();
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let tracker = TaskTracker::new();
    let port = listener.port();
    let result = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => break Err(error),
            },
            () = connections.cancelled() => break Ok(()),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "too many DNS connections; closed");
            continue;
        };
        let (zone, forwarder, stats, connections) = (
            zone.clone(),
            forwarder.clone(),
            stats.clone(),
            connections.clone(),
        );
        let span = tracing::debug_span!("dns.tcp", port, conn.peer = %peer);
        tracker.spawn(
            async move {
                let _slot = slot;
                tokio::select! {
                    result = serve_connection(stream, &zone, &forwarder, &stats) => {
                        if let Err(error) = result {
                            tracing::debug!(%error, "DNS connection ended with an error");
                        }
                    }
                    () = connections.cancelled() => {}
                }
            }
            .instrument(span),
        );
    };
    drop(listener);
    connections.cancel();
    tracker.close();
    tracker.wait().await;
    result
}

/// Serves length-prefixed messages on one connection until the client
/// closes it, sends garbage framing, or idles out. A forwarded query is
/// answered in its turn, as the messages before and after it are.
async fn serve_connection<S>(
    mut stream: S,
    zone: &Zone,
    forwarder: &Option<Forwarder>,
    stats: &DnsStats,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let mut prefix = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut prefix)).await {
            Err(_) => return Ok(()),
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Ok(Ok(_)) => {}
        }
        let length = usize::from(u16::from_be_bytes(prefix));
        if length == 0 {
            // Not a message; there is no way to resynchronise the framing.
            return Ok(());
        }
        // At most 64 KiB, bounded by the prefix.
        let mut message = vec![0u8; length];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut message)).await {
            Err(_) => return Ok(()),
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Ok(Ok(_)) => {}
        }
        stats.queries.fetch_add(1, Ordering::Relaxed);
        stats.tcp_queries.fetch_add(1, Ordering::Relaxed);
        let index = zone.current();
        let reply = match step(&index, &message, Transport::Tcp) {
            Step::Reply(reply) => reply,
            Step::Drop => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Step::Upstream {
                query,
                resolution,
                limit,
            } => {
                let response = match forwarder {
                    None => (*resolution).without_upstream(&query),
                    Some(forwarder) => match forwarder.slot() {
                        Some(_slot) => {
                            complete(forwarder, &index, *query, *resolution, Transport::Tcp).await
                        }
                        None => forward::failure(&query, ResponseCode::Refused),
                    },
                };
                match encode(&response, limit) {
                    Some(reply) => reply,
                    None => continue,
                }
            }
        };
        // `encode` keeps TCP responses within 65535 bytes.
        let Ok(reply_length) = u16::try_from(reply.len()) else {
            continue;
        };
        stats.count_response(&reply);
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_length.to_be_bytes());
        framed.extend_from_slice(&reply);
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, async {
            stream.write_all(&framed).await?;
            stream.flush().await
        })
        .await
        {
            Err(_) => return Ok(()),
            Ok(result) => result?,
        }
    }
}

#[cfg(test)]
mod tests;
