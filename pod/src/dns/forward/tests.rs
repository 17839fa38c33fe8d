//! Forwarding: the pure parts one by one, then a client, the cluster DNS
//! and the outside resolver in three namespaces joined by a minimal wire
//! (what the node's datapath does for pods on one node).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Weak;

use bytes::Bytes;
use futures::future::BoxFuture;
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::cluster;
use crate::dns::answer::{ClusterDomain, chased};
use crate::dns::fixture;
use crate::dns::outside::{Outside, OutsideZone, serve_outside};
use crate::dns::resolver::{ResolverConfig, new_query};
use crate::dns::server::{DNS_PORT, DnsStats, serve};
use crate::netns::{Egress, PodInfo, PodStream};

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 20);
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// An address nothing answers on: the wire drops what goes there.
const SILENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

#[test]
fn upstreams_leave_out_the_cluster_dns_itself() {
    let s = |ip: [u8; 4]| SocketAddr::from((Ipv4Addr::from(ip), 53));
    let check = |servers: &[SocketAddr], want: &[SocketAddr]| {
        let got = upstreams(
            servers,
            &[IpAddr::V4(DNS_IP)],
            &[Ipv4Addr::new(10, 96, 0, 10).into()],
        );
        assert_eq!(got, want, "{servers:?}");
    };
    check(&[s([192, 0, 2, 53])], &[s([192, 0, 2, 53])]);
    // The kube-dns Service, the pod itself, loopback: loops.
    check(
        &[
            s([10, 96, 0, 10]),
            s([10, 244, 1, 10]),
            s([127, 0, 0, 1]),
            s([0, 0, 0, 0]),
            s([192, 0, 2, 53]),
            s([192, 0, 2, 53]),
            s([10, 0, 0, 2]),
        ],
        &[s([192, 0, 2, 53]), s([10, 0, 0, 2])],
    );
    check(&[s([10, 96, 0, 10])], &[]);
}

#[test]
fn relayed_answers_keep_the_clients_id_and_question() {
    let query = new_query(name("Api.Example.COM."), RecordType::A, true);
    let upstream = upstream_query(&query, query.id.wrapping_add(1));
    assert_ne!(upstream.id, query.id);
    assert_eq!(upstream.queries, query.queries);
    assert!(upstream.edns.is_some() && upstream.recursion_desired);

    let mut response = Message::response(upstream.id, upstream.op_code);
    response.add_query(Query::query(name("api.example.com."), RecordType::A));
    response.metadata.response_code = ResponseCode::NXDomain;
    response.metadata.recursion_available = true;
    let relayed = relay(&query, response);
    assert_eq!(relayed.id, query.id);
    assert_eq!(relayed.queries[0].name().to_ascii(), "Api.Example.COM.");
    assert_eq!(relayed.response_code, ResponseCode::NXDomain);
    assert!(relayed.recursion_available);

    let failed = failure(&query, ResponseCode::ServFail);
    assert_eq!(
        (failed.id, failed.response_code, failed.queries.len()),
        (query.id, ResponseCode::ServFail, 1)
    );
}

#[test]
fn a_chased_cname_gets_the_targets_records_after_it() {
    let query = new_query(name("ext.default.svc.cluster.local."), RecordType::A, false);
    let target = name("www.example.com.");
    let asked = target_query(&query, &target, 7).unwrap();
    assert_eq!(asked.id, 7);
    assert_eq!(asked.queries[0].name(), &target);
    assert_eq!(asked.queries[0].query_type(), RecordType::A);

    let mut response = Message::response(query.id, query.op_code);
    let cname = Record::from_rdata(
        name("ext.default.svc.cluster.local."),
        5,
        RData::CNAME(CNAME(target.clone())),
    );
    response.add_answer(cname.clone());
    let mut upstream = Message::response(7, query.op_code);
    let a = Record::from_rdata(target, 300, RData::A(A::new(203, 0, 113, 10)));
    upstream.add_answer(a.clone());
    let completed = chase(response, &upstream);
    assert_eq!(completed.answers, [cname, a]);
    assert!(chased(RecordType::A) && chased(RecordType::AAAA) && !chased(RecordType::TXT));
}

/// Delivers between the namespaces it knows, in memory; drops the rest.
#[derive(Default)]
struct Wire {
    hosts: std::sync::Mutex<HashMap<IpAddr, Weak<NetNs>>>,
}

impl Wire {
    fn host(&self, ip: IpAddr) -> Option<Arc<NetNs>> {
        self.hosts.lock().unwrap().get(&ip)?.upgrade()
    }
}

impl Egress for Wire {
    fn connect_tcp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        Box::pin(async move {
            let Some(ns) = self.host(dst.ip()) else {
                return std::future::pending().await;
            };
            let (a, b) = PodStream::local_pair(trace_id);
            match ns.deliver_tcp(dst.port(), (b, src)) {
                Ok(()) => Ok(a),
                Err(_) => Err(io::ErrorKind::ConnectionRefused.into()),
            }
        })
    }

    fn connect_sctp(
        self: Arc<Self>,
        _src: SocketAddr,
        _dst: SocketAddr,
        _trace_id: u64,
    ) -> BoxFuture<'static, io::Result<PodStream>> {
        // DNS has no SCTP transport.
        Box::pin(async { Err(io::ErrorKind::ConnectionRefused.into()) })
    }

    fn send_udp(
        self: Arc<Self>,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Bytes,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(ns) = self.host(dst.ip()) {
                ns.deliver_udp(dst.port(), Ok((payload, src)));
            }
        })
    }

    fn send_echo(
        self: Arc<Self>,
        _src: IpAddr,
        _dst: IpAddr,
        _id: u16,
        _seq: u16,
        _ttl: u8,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

struct Net {
    /// Held: the namespaces reach each other through it.
    _wire: Arc<Wire>,
    client: Arc<NetNs>,
    stats: Arc<DnsStats>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn add(wire: &Arc<Wire>, ip: Ipv4Addr, resolver: ResolverConfig) -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "default".into(),
        name: ip.to_string(),
        node: "node-1".into(),
    };
    let egress: Weak<dyn Egress> = Arc::downgrade(&(wire.clone() as Arc<dyn Egress>));
    let ns = NetNs::with_resolver(ip, info, resolver, egress);
    wire.hosts
        .lock()
        .unwrap()
        .insert(IpAddr::V4(ip), Arc::downgrade(&ns));
    ns
}

impl Net {
    async fn ask(&self, qname: &str, rtype: RecordType, tcp: bool) -> Message {
        let query = new_query(name(qname), rtype, false);
        let options = ExchangeOptions {
            timeout: Duration::from_secs(10),
            attempts: 1,
            tcp,
        };
        let server = SocketAddr::from((DNS_IP, DNS_PORT));
        let exchanged = exchange(&self.client, server, &query, options)
            .await
            .expect("the cluster DNS answers");
        assert_eq!(exchanged.response.id, query.id);
        exchanged.response
    }

    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// The client, the cluster DNS (its resolv.conf listing `nameservers`),
/// and the outside resolver serving `outside`.
fn net(nameservers: &[Ipv4Addr], outside: OutsideZone, limit: usize) -> Net {
    let wire = Arc::new(Wire::default());
    let cancel = CancellationToken::new();
    let stats = Arc::new(DnsStats::default());
    let client = add(&wire, CLIENT_IP, ResolverConfig::cluster_first("default"));
    let resolv = ResolverConfig::new(
        nameservers
            .iter()
            .map(|ip| SocketAddr::V4(SocketAddrV4::new(*ip, 53)))
            .collect(),
        Vec::new(),
        Vec::new(),
    );
    let dns = add(&wire, DNS_IP, resolv);
    let outside_ns = add(&wire, OUTSIDE_IP, ResolverConfig::cluster_first(""));
    let udp = dns.bind_udp(DNS_PORT).unwrap();
    let tcp = dns.listen_tcp(DNS_PORT).unwrap();
    let forwarder = Forwarder::with_limit(dns.clone(), stats.forward().clone(), limit);
    let domain = ClusterDomain::cluster_local().unwrap();
    let view = cluster::fixed(fixture::cluster_view());
    let (token, server_stats) = (cancel.clone(), stats.clone());
    let server = tokio::spawn(async move {
        serve(udp, tcp, domain, view, Some(forwarder), server_stats, token)
            .await
            .unwrap();
    });
    let token = cancel.clone();
    let outside = tokio::spawn(async move {
        let outside = Outside {
            zone: outside,
            host: None,
        };
        serve_outside(outside_ns, outside, token).await.unwrap();
    });
    Net {
        _wire: wire,
        client,
        stats,
        cancel,
        tasks: vec![server, outside],
    }
}

fn example() -> OutsideZone {
    OutsideZone::new([
        ("api.example.com", Ipv4Addr::new(203, 0, 113, 10)),
        ("www.example.com", Ipv4Addr::new(203, 0, 113, 20)),
    ])
    .unwrap()
}

fn answers(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[tokio::test]
async fn names_outside_the_zones_are_forwarded_and_relayed() {
    let net = net(&[OUTSIDE_IP], example(), MAX_CONCURRENT);
    for tcp in [false, true] {
        let found = net.ask("api.example.com.", RecordType::A, tcp).await;
        assert_eq!(found.response_code, ResponseCode::NoError);
        assert_eq!(answers(&found), ["api.example.com. A 203.0.113.10"]);
        assert!(found.recursion_available && !found.authoritative);

        let missing = net.ask("nosuch.example.com.", RecordType::A, tcp).await;
        assert_eq!(missing.response_code, ResponseCode::NXDomain);
        assert!(missing.answers.is_empty());
        assert_eq!(missing.authorities.len(), 1);
        assert_eq!(missing.authorities[0].record_type(), RecordType::SOA);

        // The zones still answer themselves, and nothing of them goes out.
        let inside = net
            .ask("nope.default.svc.cluster.local.", RecordType::A, tcp)
            .await;
        assert_eq!(inside.response_code, ResponseCode::NXDomain);
        assert!(inside.authoritative);
    }
    let sent: u64 = net.stats.forward().requests().values().sum();
    assert_eq!(sent, 4, "two names over two transports");
    net.stop().await;
}

#[tokio::test]
async fn an_external_name_is_its_cname_and_the_targets_address() {
    let net = net(&[OUTSIDE_IP], example(), MAX_CONCURRENT);
    let found = net
        .ask("ext.default.svc.cluster.local.", RecordType::A, false)
        .await;
    assert_eq!(found.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&found),
        [
            "ext.default.svc.cluster.local. CNAME www.example.com.",
            "www.example.com. A 203.0.113.20"
        ]
    );
    // No upstream record of that type: the CNAME alone.
    let cname_only = net
        .ask("ext.default.svc.cluster.local.", RecordType::AAAA, false)
        .await;
    assert_eq!(cname_only.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&cname_only),
        ["ext.default.svc.cluster.local. CNAME www.example.com."]
    );
    // Types the kubernetes plugin does not chase: nothing asked upstream.
    let before: u64 = net.stats.forward().requests().values().sum();
    let txt = net
        .ask("ext.default.svc.cluster.local.", RecordType::TXT, false)
        .await;
    assert_eq!(answers(&txt).len(), 1);
    let after: u64 = net.stats.forward().requests().values().sum();
    assert_eq!(before, after);
    net.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_is_passed_over_and_none_at_all_is_servfail() {
    // The first nameserver never answers: the second does, after the
    // first's try timed out.
    let net1 = net(&[SILENT_IP, OUTSIDE_IP], example(), MAX_CONCURRENT);
    let started = tokio::time::Instant::now();
    let found = net1.ask("api.example.com.", RecordType::A, false).await;
    assert_eq!(answers(&found), ["api.example.com. A 203.0.113.10"]);
    assert!(started.elapsed() >= TRY_TIMEOUT, "{:?}", started.elapsed());
    net1.stop().await;

    // Only silent upstreams: SERVFAIL once the deadline has passed.
    let net2 = net(&[SILENT_IP], example(), MAX_CONCURRENT);
    let started = tokio::time::Instant::now();
    let failed = net2.ask("api.example.com.", RecordType::A, false).await;
    assert_eq!(failed.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() >= TRY_TIMEOUT);
    let timeouts: u64 = net2
        .stats
        .forward()
        .responses()
        .iter()
        .filter(|((_, rcode), _)| rcode.is_none())
        .map(|(_, n)| n)
        .sum();
    assert_eq!(timeouts, 1);
    net2.stop().await;

    // Nothing but the cluster DNS itself in resolv.conf: SERVFAIL at once.
    let net3 = net(
        &[Ipv4Addr::new(10, 96, 0, 10), DNS_IP],
        example(),
        MAX_CONCURRENT,
    );
    let failed = net3.ask("api.example.com.", RecordType::A, false).await;
    assert_eq!(failed.response_code, ResponseCode::ServFail);
    assert!(net3.stats.forward().requests().is_empty());
    net3.stop().await;
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_asked_again_over_tcp() {
    // Forty addresses do not fit in 512 bytes.
    let many: Vec<(String, Ipv4Addr)> = (1..=40)
        .map(|i| ("big.example.com".to_owned(), Ipv4Addr::new(203, 0, 113, i)))
        .collect();
    let zone = OutsideZone::new(many.iter().map(|(n, ip)| (n.as_str(), *ip))).unwrap();
    let net = net(&[OUTSIDE_IP], zone, MAX_CONCURRENT);
    // The client asks over UDP without EDNS: the server got the whole
    // answer over TCP but can send only TC; the client's retry over TCP
    // gets it all.
    let query = new_query(name("big.example.com."), RecordType::A, false);
    let options = ExchangeOptions {
        timeout: Duration::from_secs(10),
        attempts: 1,
        tcp: false,
    };
    let exchanged = exchange(
        &net.client,
        SocketAddr::from((DNS_IP, DNS_PORT)),
        &query,
        options,
    )
    .await
    .unwrap();
    assert!(exchanged.truncated_udp && exchanged.tcp);
    assert_eq!(exchanged.response.answers.len(), 40);
    assert_eq!(net.stats.truncated(), 1);
    net.stop().await;
}

#[tokio::test]
async fn beyond_the_concurrency_limit_queries_are_refused() {
    let net = net(&[OUTSIDE_IP], example(), 0);
    for tcp in [false, true] {
        let refused = net.ask("api.example.com.", RecordType::A, tcp).await;
        assert_eq!(refused.response_code, ResponseCode::Refused);
    }
    assert_eq!(net.stats.forward().rejected(), 2);
    // The zones need no slot.
    let inside = net
        .ask("web.default.svc.cluster.local.", RecordType::A, false)
        .await;
    assert_eq!(inside.response_code, ResponseCode::NoError);
    net.stop().await;
}
