//! Forwarding what the cluster zones do not hold, as CoreDNS's default
//! `forward . /etc/resolv.conf`: the upstreams are the nameservers of the
//! DNS pod's own resolv.conf (`dnsPolicy: Default`, so the node's).
//!
//! The pure parts: [`upstreams`] (the resolv.conf's servers without the
//! cluster DNS itself, which would be a loop: CoreDNS's `loop` plugin
//! would stop the server, podnet leaves such a nameserver out),
//! [`upstream_query`] (the client's query under a fresh id, as the forward
//! plugin sends it), [`relay`] (the upstream's response under the
//! client's id and question: rcode, answers, the SOA in authority and the
//! additional records as the upstream sent them), [`failure`] and
//! [`chase`] (an ExternalName's CNAME followed by the upstream's records
//! for its target, as the kubernetes plugin's upstream lookup adds them).
//!
//! [`Forwarder`] does the I/O from the DNS pod's namespace through the
//! pod resolver's [`exchange`]: over the transport the client used (a
//! truncated UDP answer is asked again over TCP, and the server then fits
//! the full answer to the client's limit, setting TC itself when it does
//! not fit), the upstreams in resolv.conf order, [`TRY_TIMEOUT`] each and
//! [`FORWARD_DEADLINE`] in all; an upstream that does not answer in time
//! passes the query on, and when none answers the client gets SERVFAIL.
//! At most [`MAX_CONCURRENT`] forwarded queries are in flight; beyond that
//! the answer is REFUSED, as the forward plugin's `max_concurrent` does.
//!
//! Deliberately not here: caching (CoreDNS's `cache` plugin), health
//! checks of upstreams and the random upstream order (the servers are asked
//! in file order, as `policy sequential`), DNS over TLS.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::Name;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::resolver::{ExchangeOptions, exchange};
use crate::netns::NetNs;

/// How long one upstream gets to answer (CoreDNS's forward starts its
/// read timeout at 2 s).
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a forwarded query may take over all its upstreams (the
/// forward plugin's `defaultTimeout`).
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(5);
/// Forwarded queries in flight at once.
pub const MAX_CONCURRENT: usize = 1000;

/// The upstreams of `servers` (the resolv.conf's, in order): without the
/// server's own address, loopback (the server's namespace), and the
/// cluster DNS's addresses, each of which would send the query back here.
pub fn upstreams(
    servers: &[SocketAddr],
    own: &[IpAddr],
    cluster_dns: &[IpAddr],
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for server in servers {
        let ip = server.ip();
        let is_cluster_dns = cluster_dns.contains(&ip);
        if own.contains(&ip) || ip.is_loopback() || ip.is_unspecified() || is_cluster_dns {
            continue;
        }
        if !out.contains(server) {
            out.push(*server);
        }
    }
    out
}

/// The client's query as it goes upstream: the same question, flags and
/// EDNS under `id`.
pub fn upstream_query(query: &Message, id: u16) -> Message {
    let mut upstream = query.clone();
    upstream.metadata.id = id;
    upstream
}

/// The upstream's `response` as the client gets it: the client's id and
/// question (its spelling), everything else as the upstream sent it.
pub fn relay(query: &Message, mut response: Message) -> Message {
    response.metadata.id = query.id;
    response.queries = query.queries.clone();
    response
}

/// `rcode` with the question, for a query that could not be forwarded.
pub fn failure(query: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::response(query.id, query.op_code);
    response.metadata.recursion_desired = query.recursion_desired;
    response.metadata.checking_disabled = query.checking_disabled;
    response.metadata.response_code = rcode;
    response.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(super::answer::SERVER_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// The question asked upstream for a CNAME target that left the cluster
/// zones: the client's query, under `id`, for `target` and the same type.
pub fn target_query(query: &Message, target: &Name, id: u16) -> Option<Message> {
    let question = query.queries.first()?;
    let mut upstream = upstream_query(query, id);
    let mut asked = Query::query(target.clone(), question.query_type());
    asked.set_query_class(question.query_class());
    upstream.queries = vec![asked];
    Some(upstream)
}

/// The cluster's CNAME answer completed with the upstream's answer for the
/// target (its records, CNAMEs of its own included). The response code
/// stays the cluster's: the ExternalName itself exists.
pub fn chase(mut response: Message, upstream: &Message) -> Message {
    for record in &upstream.answers {
        if !response.answers.contains(record) {
            response.add_answer(record.clone());
        }
    }
    response
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream nameserver (the resolv.conf lists only the cluster DNS itself)")]
    NoUpstream,
    #[error("no upstream answered within {FORWARD_DEADLINE:?} ({tried} tried)")]
    NoAnswer { tried: usize },
}

/// Counters of the forwarding, per upstream, for `/metrics`.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// (upstream, rcode or `None` for no answer) → count.
    responses: Mutex<BTreeMap<(SocketAddr, Option<u16>), u64>>,
    requests: Mutex<BTreeMap<SocketAddr, u64>>,
    rejected: std::sync::atomic::AtomicU64,
}

impl ForwardStats {
    fn request(&self, to: SocketAddr) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(to)
            .or_default() += 1;
    }

    fn response(&self, to: SocketAddr, rcode: Option<ResponseCode>) {
        *self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((to, rcode.map(u16::from)))
            .or_default() += 1;
    }

    /// Queries sent to each upstream.
    pub fn requests(&self) -> BTreeMap<SocketAddr, u64> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answers from each upstream by rcode (`None`: none in time).
    pub fn responses(&self) -> BTreeMap<(SocketAddr, Option<u16>), u64> {
        self.responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Queries answered REFUSED because `MAX_CONCURRENT` were in flight.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Sends queries upstream from the DNS pod's namespace.
#[derive(Clone)]
pub struct Forwarder {
    ns: Arc<NetNs>,
    slots: Arc<Semaphore>,
    stats: Arc<ForwardStats>,
}

impl Forwarder {
    pub fn new(ns: Arc<NetNs>, stats: Arc<ForwardStats>) -> Forwarder {
        Forwarder::with_limit(ns, stats, MAX_CONCURRENT)
    }

    pub fn with_limit(ns: Arc<NetNs>, stats: Arc<ForwardStats>, limit: usize) -> Forwarder {
        Forwarder {
            ns,
            slots: Arc::new(Semaphore::new(limit)),
            stats,
        }
    }

    /// A slot for one forwarded query, or `None` (counted) when all are
    /// taken.
    pub fn slot(&self) -> Option<OwnedSemaphorePermit> {
        let slot = self.slots.clone().try_acquire_owned().ok();
        if slot.is_none() {
            self.stats
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        slot
    }

    /// The upstreams now: the namespace's resolv.conf without the cluster
    /// DNS at `cluster_dns`.
    pub fn upstreams(&self, cluster_dns: &[IpAddr]) -> Vec<SocketAddr> {
        let own: Vec<IpAddr> = self.ns.addresses().collect();
        upstreams(&self.ns.resolver().servers(), &own, cluster_dns)
    }

    /// Asks `upstreams` in order for `query` (already under its upstream
    /// id) and returns the first response, whatever its rcode.
    pub async fn exchange(
        &self,
        query: &Message,
        upstreams: &[SocketAddr],
        tcp: bool,
    ) -> Result<Message, ForwardError> {
        if upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let deadline = Instant::now() + FORWARD_DEADLINE;
        let mut tried = 0;
        for upstream in upstreams {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tried += 1;
            self.stats.request(*upstream);
            let options = ExchangeOptions {
                timeout: left.min(TRY_TIMEOUT),
                attempts: 1,
                tcp,
            };
            match exchange(&self.ns, *upstream, query, options).await {
                Ok(exchanged) => {
                    self.stats
                        .response(*upstream, Some(exchanged.response.response_code));
                    return Ok(exchanged.response);
                }
                Err(error) => {
                    self.stats.response(*upstream, None);
                    tracing::debug!(%error, %upstream, "upstream did not answer");
                }
            }
        }
        Err(ForwardError::NoAnswer { tried })
    }
}

#[cfg(test)]
mod tests;
