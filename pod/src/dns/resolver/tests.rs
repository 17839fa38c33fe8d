//! The resolver against the real server in the same standalone namespace
//! (the nameserver is the pod's own IP, which the loopback path reaches
//! without a datapath), and against scripted fake servers.

use hickory_proto::rr::RecordType::{A, AAAA, SRV};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::cluster::{self, ClusterView};
use crate::dns::answer::{ClusterDomain, Index};
use crate::dns::server::{self, DnsStats, ServeError, handle_datagram};
use crate::dns::{fixture, rcode_mnemonic};
use crate::netns::PodInfo;

const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 20);

fn pod() -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "default".into(),
        name: "client-0".into(),
        node: "node-1".into(),
    };
    NetNs::isolated(POD_IP, info)
}

/// The pod's resolv.conf, pointed at the pod itself on `port`.
fn config(port: u16) -> ResolverConfig {
    ResolverConfig {
        nameservers: vec![SocketAddr::V4(SocketAddrV4::new(POD_IP, port))],
        ..ResolverConfig::cluster_first("default")
    }
}

struct Server {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
    stats: Arc<DnsStats>,
}

impl Server {
    async fn stop(self) {
        self.cancel.cancel();
        let result = self.task.await.expect("the server does not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

fn start_server(ns: &Arc<NetNs>, view: ClusterView) -> Server {
    let udp = ns.bind_udp(53).unwrap();
    let tcp = ns.listen_tcp(53).unwrap();
    let cancel = CancellationToken::new();
    let stats = Arc::new(DnsStats::default());
    let task = tokio::spawn(server::serve(
        udp,
        tcp,
        ClusterDomain::cluster_local().unwrap(),
        cluster::fixed(view),
        // No `forward` in this server: outside the zones is REFUSED.
        None,
        stats.clone(),
        cancel.clone(),
    ));
    Server {
        cancel,
        task,
        stats,
    }
}

/// A UDP server on `port` that answers each query with what `script`
/// returns for it (any number of datagrams, possibly none).
fn fake_server(
    ns: &Arc<NetNs>,
    port: u16,
    script: impl Fn(&Message, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> JoinHandle<()> {
    let socket = ns.bind_udp(port).unwrap();
    tokio::spawn(async move {
        while let Ok((bytes, peer)) = socket.recv_from().await {
            let Ok(query) = Message::from_vec(&bytes) else {
                continue;
            };
            for reply in script(&query, &bytes) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    })
}

fn addresses(lookup: &Lookup) -> Vec<String> {
    lookup.records.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn search_list_and_ndots_order() {
    let check = |config: &ResolverConfig, name: &str, expected: &[&str]| {
        assert_eq!(config.candidates(name), expected, "{name}");
    };
    let pod = ResolverConfig::cluster_first("default");
    assert_eq!(
        pod.search,
        [
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local"
        ]
    );
    assert_eq!(
        pod.servers(),
        [SocketAddr::from((Ipv4Addr::new(10, 96, 0, 10), 53))]
    );
    assert_eq!(
        (pod.ndots, pod.timeout, pod.attempts),
        (5, Duration::from_secs(2), 2)
    );
    check(
        &pod,
        "web",
        &[
            "web.default.svc.cluster.local.",
            "web.svc.cluster.local.",
            "web.cluster.local.",
            "web.",
        ],
    );
    // Four dots is still fewer than five: the search list comes first.
    check(
        &pod,
        "web.default.svc.cluster.local",
        &[
            "web.default.svc.cluster.local.default.svc.cluster.local.",
            "web.default.svc.cluster.local.svc.cluster.local.",
            "web.default.svc.cluster.local.cluster.local.",
            "web.default.svc.cluster.local.",
        ],
    );
    // Five dots: as is first.
    check(
        &pod,
        "a.b.c.d.e.f",
        &[
            "a.b.c.d.e.f.",
            "a.b.c.d.e.f.default.svc.cluster.local.",
            "a.b.c.d.e.f.svc.cluster.local.",
            "a.b.c.d.e.f.cluster.local.",
        ],
    );
    // A trailing dot makes a name absolute.
    check(&pod, "web.", &["web."]);
    check(
        &pod,
        "web.default.svc.cluster.local.",
        &["web.default.svc.cluster.local."],
    );
    let standalone = ResolverConfig::cluster_first("");
    check(
        &standalone,
        "web",
        &["web.svc.cluster.local.", "web.cluster.local.", "web."],
    );
    let mut one_dot = pod.clone();
    one_dot.ndots = 1;
    check(
        &one_dot,
        "example.com",
        &[
            "example.com.",
            "example.com.default.svc.cluster.local.",
            "example.com.svc.cluster.local.",
            "example.com.cluster.local.",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn names_resolve_through_the_search_list() {
    let ns = pod();
    let server = start_server(&ns, fixture::cluster_view());
    let config = config(53);
    let check = |name: &'static str, found: &'static str, expected: &'static [&'static str]| {
        let (ns, config) = (ns.clone(), config.clone());
        async move {
            let lookup = lookup_with(&ns, &config, name, A)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(lookup.name.to_ascii(), found, "{name}");
            assert_eq!(addresses(&lookup), expected, "{name}");
        }
    };
    check("web", "web.default.svc.cluster.local.", &["10.96.0.12"]).await;
    check("web.other", "web.other.svc.cluster.local.", &["10.96.5.5"]).await;
    check(
        "kube-dns.kube-system",
        "kube-dns.kube-system.svc.cluster.local.",
        &["10.96.0.10"],
    )
    .await;
    check(
        "WEB.Default.Svc",
        "WEB.Default.Svc.cluster.local.",
        &["10.96.0.12"],
    )
    .await;
    check(
        "db-0.db",
        "db-0.db.default.svc.cluster.local.",
        &["10.244.1.5"],
    )
    .await;
    check(
        "web.default.svc.cluster.local.",
        "web.default.svc.cluster.local.",
        &["10.96.0.12"],
    )
    .await;
    let before = server.stats.queries();
    // Fewer dots than ndots: three search names fail before the name as is.
    check(
        "web.default.svc.cluster.local",
        "web.default.svc.cluster.local.",
        &["10.96.0.12"],
    )
    .await;
    assert_eq!(server.stats.queries() - before, 4);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nxdomain_nodata_and_refused_are_told_apart() {
    let ns = pod();
    let server = start_server(&ns, fixture::cluster_view());
    let config = config(53);
    let error = lookup_with(&ns, &config, "nope", A).await.unwrap_err();
    assert!(
        matches!(&error, ResolveError::NxDomain { name } if name == "nope"),
        "{error:?}"
    );
    assert_eq!(error.gai_message(), "Name or service not known");
    // web.default.svc.cluster.local exists but has no AAAA: NODATA wins
    // over the NXDOMAINs of the other search names.
    let error = lookup_with(&ns, &config, "web", AAAA).await.unwrap_err();
    assert!(
        matches!(error, ResolveError::NoData { rtype: AAAA, .. }),
        "{error:?}"
    );
    // Outside the cluster: every search name is NXDOMAIN, the name as is
    // REFUSED (podnet has no upstream); NXDOMAIN is what gets reported...
    let error = lookup_with(&ns, &config, "example.com", A)
        .await
        .unwrap_err();
    assert!(matches!(error, ResolveError::NxDomain { .. }), "{error:?}");
    // ...unless the name was only asked as is.
    let error = lookup_with(&ns, &config, "example.com.", A)
        .await
        .unwrap_err();
    assert!(matches!(error, ResolveError::Refused { .. }), "{error:?}");
    assert_eq!(error.gai_message(), "Temporary failure in name resolution");
    // The headless Service without ready endpoints does not exist.
    let error = lookup_with(&ns, &config, "empty", A).await.unwrap_err();
    assert!(matches!(error, ResolveError::NxDomain { .. }), "{error:?}");
    assert!(matches!(
        lookup_with(&ns, &config, "", A).await,
        Err(ResolveError::InvalidName { .. })
    ));
    assert!(matches!(
        lookup_with(&ns, &config, "a..b", A).await,
        Err(ResolveError::InvalidName { .. })
    ));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cnames_of_external_name_services_are_followed() {
    let ns = pod();
    let server = start_server(&ns, fixture::cluster_view());
    let config = config(53);
    let lookup = lookup_with(&ns, &config, "alias", A).await.unwrap();
    assert_eq!(lookup.name.to_ascii(), "alias.default.svc.cluster.local.");
    assert_eq!(
        lookup.canonical.to_ascii(),
        "web.default.svc.cluster.local."
    );
    assert_eq!(addresses(&lookup), ["10.96.0.12"]);
    // A CNAME out of the cluster ends without an address: nothing to
    // connect to, as with no upstream DNS.
    let error = lookup_with(&ns, &config, "ext", A).await.unwrap_err();
    assert!(matches!(error, ResolveError::NoData { .. }), "{error:?}");
    let srv = lookup_with(&ns, &config, "_pg._tcp.db", SRV).await.unwrap();
    assert_eq!(srv.records.len(), 2);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn truncated_answers_are_asked_again_over_tcp() {
    let mut view = fixture::cluster_view();
    fixture::big_headless(&mut view, 100);
    let ns = pod();
    let server = start_server(&ns, view);
    let ips = resolve_ipv4_with(&ns, &config(53), "big").await.unwrap();
    assert_eq!(ips.len(), 100);
    assert_eq!(server.stats.truncated(), 1);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn silence_times_out_after_every_attempt() {
    let ns = pod();
    // Bound but never answering.
    let _silent = ns.bind_udp(5353).unwrap();
    let started = Instant::now();
    let error = lookup_with(&ns, &config(5353), "web", A).await.unwrap_err();
    assert!(
        matches!(error, ResolveError::Timeout { attempts: 2, .. }),
        "{error:?}"
    );
    // A timeout ends the search: one name, two tries of two seconds.
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    assert_eq!(error.gai_message(), "Temporary failure in name resolution");
}

#[tokio::test(start_paused = true)]
async fn a_closed_port_fails_at_once() {
    let ns = pod();
    let started = Instant::now();
    let error = lookup_with(&ns, &config(5353), "web", A).await.unwrap_err();
    assert!(
        matches!(&error, ResolveError::Network { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn only_a_matching_response_counts() {
    let ns = pod();
    let index = Index::build(
        &fixture::cluster_view(),
        &ClusterDomain::cluster_local().unwrap(),
        1,
    );
    let _fake = fake_server(&ns, 5353, move |query, bytes| {
        let real = handle_datagram(&index, bytes).unwrap_or_default();
        let mut wrong_id = Message::from_vec(&real).unwrap();
        wrong_id.metadata.id = query.id.wrapping_add(1);
        let mut wrong_question = Message::from_vec(&real).unwrap();
        wrong_question.queries[0].set_query_type(AAAA);
        vec![
            b"garbage".to_vec(),
            wrong_id.to_vec().unwrap(),
            wrong_question.to_vec().unwrap(),
            real,
        ]
    });
    let lookup = lookup_with(&ns, &config(5353), "web", A).await.unwrap();
    assert_eq!(addresses(&lookup), ["10.96.0.12"]);
}

#[tokio::test(start_paused = true)]
async fn servfail_moves_on_and_is_reported_last() {
    let ns = pod();
    let _fake = fake_server(&ns, 5353, |query, _| {
        let mut failure = Message::error_msg(query.id, query.op_code, ResponseCode::ServFail);
        failure.add_queries(query.queries.iter().cloned());
        vec![failure.to_vec().unwrap()]
    });
    let error = lookup_with(&ns, &config(5353), "web", A).await.unwrap_err();
    match &error {
        ResolveError::ServFail { name, rcode, .. } => {
            assert_eq!(
                (name.as_str(), rcode_mnemonic(*rcode).as_str()),
                ("web", "SERVFAIL")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_hosts_file_comes_first() {
    let ns = pod();
    // No server anywhere: these never query.
    let config = config(5353);
    let check = |host: &'static str, expected: Ipv4Addr| {
        let (ns, config) = (ns.clone(), config.clone());
        async move {
            assert_eq!(
                resolve_ipv4_with(&ns, &config, host).await.unwrap(),
                [expected],
                "{host}"
            );
        }
    };
    check("10.0.0.1", Ipv4Addr::new(10, 0, 0, 1)).await;
    check("LOCALHOST.", Ipv4Addr::LOCALHOST).await;
    check("client-0", POD_IP).await;
    check("Client-0.", POD_IP).await;
    // Without a datapath the kube-dns address is unreachable.
    let error = resolve_ipv4(&ns, "web").await.unwrap_err();
    assert!(matches!(error, ResolveError::Network { .. }), "{error:?}");
}

/// `ResolverConfig::new(nameservers, search, options)` read as glibc
/// reads resolv.conf, and the file written back from it.
#[test]
fn options_are_read_as_glibc_reads_them_and_written_back() {
    let ns = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 53);
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let check = |nameservers: &[&str],
                 search: &[&str],
                 options: &[&str],
                 effective: (usize, u64, u32),
                 file: &str| {
        let config = ResolverConfig::new(
            nameservers.iter().map(|ip| ns(ip)).collect(),
            strings(search),
            strings(options),
        );
        assert_eq!(
            (config.ndots, config.timeout.as_secs(), config.attempts),
            effective,
            "{options:?}"
        );
        assert_eq!(config.resolv_conf(), file, "{options:?}");
    };
    // No options: glibc's ndots and attempts, podnet's 2 s timeout (stated).
    check(
        &["10.96.0.10"],
        &[],
        &[],
        (1, 2, 2),
        "nameserver 10.96.0.10\noptions timeout:2\n",
    );
    // Stated options keep their place; unknown ones are kept as written.
    check(
        &["1.1.1.1", "8.8.8.8"],
        &["example.com"],
        &["edns0", "ndots:2", "timeout:3", "attempts:4"],
        (2, 3, 4),
        "search example.com\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions edns0 ndots:2 timeout:3 attempts:4\n",
    );
    // glibc's caps (ndots 15, timeout 30, attempts 5) and atoi: the file
    // says what the resolver uses.
    check(
        &["10.0.0.1"],
        &[],
        &["ndots:99", "timeout:120", "attempts:9"],
        (15, 30, 5),
        "nameserver 10.0.0.1\noptions ndots:15 timeout:30 attempts:5\n",
    );
    check(
        &["10.0.0.1"],
        &[],
        &["ndots:x", "timeout:0", "attempts:3x"],
        (0, 1, 3),
        "nameserver 10.0.0.1\noptions ndots:0 timeout:1 attempts:3\n",
    );
    // glibc's 5 s timeout stated explicitly stays stated.
    check(
        &["10.0.0.1"],
        &[],
        &["timeout:5"],
        (1, 5, 2),
        "nameserver 10.0.0.1\noptions timeout:5\n",
    );
    // The last of a name wins, and each is written with that value.
    check(
        &["10.0.0.1"],
        &[],
        &["ndots:3", "ndots:4"],
        (4, 2, 2),
        "nameserver 10.0.0.1\noptions ndots:4 ndots:4 timeout:2\n",
    );
}

#[test]
fn servers_are_the_first_three_ipv4_nameservers_or_localhost() {
    let config = |servers: &[&str]| {
        ResolverConfig::new(
            servers
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), 53))
                .collect(),
            Vec::new(),
            Vec::new(),
        )
    };
    let server = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 53);
    assert_eq!(config(&[]).servers(), [server("127.0.0.1")]);
    // The first three lines count, IPv6 ones too (asked from the pod's
    // IPv6 address).
    assert_eq!(
        config(&["10.0.0.1", "2001:db8::1", "10.0.0.2", "10.0.0.3"]).servers(),
        [
            server("10.0.0.1"),
            server("2001:db8::1"),
            server("10.0.0.2")
        ]
    );
    assert_eq!(config(&["2001:db8::1"]).servers(), [server("2001:db8::1")]);
    // The file still lists every nameserver it was given.
    assert_eq!(
        config(&["10.0.0.1", "2001:db8::1"]).resolv_conf(),
        "nameserver 10.0.0.1\nnameserver 2001:db8::1\noptions timeout:2\n"
    );
}

#[test]
fn repeated_and_root_search_suffixes_add_no_names() {
    let config = ResolverConfig::new(
        vec![SocketAddr::V4(NAMESERVER)],
        vec!["a.example".into(), ".".into(), "a.example.".into()],
        vec!["ndots:1".into()],
    );
    assert_eq!(config.candidates("web"), ["web.a.example.", "web."]);
}

/// Nameservers in file order: a silent one and a refusing one pass the
/// query on to the next, as glibc's `res_send`.
#[tokio::test(start_paused = true)]
async fn the_next_nameserver_answers_when_one_is_silent_or_refuses() {
    let ns = pod();
    let index = Index::build(
        &fixture::cluster_view(),
        &ClusterDomain::cluster_local().unwrap(),
        1,
    );
    let _silent = ns.bind_udp(5301).unwrap();
    let _refusing = fake_server(&ns, 5302, |query, _| {
        let mut refused = Message::error_msg(query.id, query.op_code, ResponseCode::Refused);
        refused.add_queries(query.queries.iter().cloned());
        vec![refused.to_vec().unwrap()]
    });
    let _real = fake_server(&ns, 5303, move |_, bytes| {
        vec![handle_datagram(&index, bytes).unwrap_or_default()]
    });
    let at = |port| SocketAddr::V4(SocketAddrV4::new(POD_IP, port));
    let config = ResolverConfig {
        nameservers: vec![at(5301), at(5302), at(5303)],
        ..ResolverConfig::cluster_first("default")
    };
    let started = Instant::now();
    let lookup = lookup_with(&ns, &config, "web", A).await.unwrap();
    assert_eq!(addresses(&lookup), ["10.96.0.12"]);
    // One timeout of the silent server, then the other two at once.
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // Only refusals: every search name is REFUSED by each server, and the
    // search reports it without waiting for more rounds.
    let config = ResolverConfig {
        nameservers: vec![at(5302), at(5302)],
        ..ResolverConfig::cluster_first("default")
    };
    let started = Instant::now();
    let error = lookup_with(&ns, &config, "web", A).await.unwrap_err();
    assert!(matches!(error, ResolveError::Refused { .. }), "{error:?}");
    assert_eq!(started.elapsed(), Duration::ZERO);

    // Only silence: every server, every attempt, then a timeout.
    let config = ResolverConfig {
        nameservers: vec![at(5301), at(5301)],
        ..ResolverConfig::cluster_first("default")
    };
    let started = Instant::now();
    let error = lookup_with(&ns, &config, "web", A).await.unwrap_err();
    assert!(
        matches!(error, ResolveError::Timeout { attempts: 2, .. }),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(8));

    // An IPv6 nameserver from a pod without an IPv6 address: unreachable
    // at once, as glibc finds it (ENETUNREACH), and the next one answers.
    let config = ResolverConfig {
        nameservers: vec!["[2001:db8::1]:53".parse().unwrap(), at(5303)],
        ..ResolverConfig::cluster_first("default")
    };
    let started = Instant::now();
    let lookup = lookup_with(&ns, &config, "web", A).await.unwrap();
    assert_eq!(addresses(&lookup), ["10.96.0.12"]);
    assert_eq!(started.elapsed(), Duration::ZERO);
    let config = ResolverConfig {
        nameservers: vec!["[2001:db8::1]:53".parse().unwrap()],
        ..ResolverConfig::cluster_first("default")
    };
    let error = lookup_with(&ns, &config, "web", A).await.unwrap_err();
    assert!(
        matches!(&error, ResolveError::Network { source, .. }
            if source.kind() == std::io::ErrorKind::NetworkUnreachable),
        "{error:?}"
    );
}
