//! The datapath between two real overlay endpoints on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::testing::PodPair;
use podnet_overlay::tls::testing::TestCa;

struct Net {
    ca: TestCa,
    a: Arc<Datapath>,
    b: Arc<Datapath>,
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    pod_a: Arc<NetNs>,
    pod_b: Arc<NetNs>,
    _pair: PodPair,
}

fn net() -> Net {
    let ca = TestCa::new("test CA");
    let pair = PodPair::start(&ca.identity("node-a"), &ca.identity("node-b")).unwrap();
    // node-c's podCIDR is reached through node-b's address, but node-b's
    // certificate does not speak for it.
    let mut routes = pair.routes();
    routes.push(Route {
        cidr: "10.244.2.0/24".parse().unwrap(),
        node: "node-c".into(),
        underlay: pair.addr_b,
    });
    pair.dp_a.set_routes(routes.clone());
    pair.dp_b.set_routes(routes);
    Net {
        ca,
        a: pair.dp_a.clone(),
        b: pair.dp_b.clone(),
        addr_a: pair.addr_a,
        addr_b: pair.addr_b,
        pod_a: pair.a.clone(),
        pod_b: pair.b.clone(),
        _pair: pair,
    }
}

async fn echo_once(listener: &mut podnet_pod::netns::PodListener) -> SocketAddr {
    let (mut s, peer) = listener.accept().await.unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await.unwrap();
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
    peer
}

/// A namespace of its own at `ip` on the node of `dp`, as a pod there.
fn pod_on(dp: &Arc<Datapath>, ip: Ipv4Addr) -> Arc<NetNs> {
    let ns = NetNs::new(ip, Default::default(), Arc::<Datapath>::downgrade(dp));
    dp.add_pod(ns.clone());
    ns
}

/// `hello` from `client` to `dst`, where `server` listens, echoed back:
/// returns the client address the server saw, and the client's stream
/// (still open: its row stays in the client's socket table).
async fn hello(
    client: &Arc<NetNs>,
    server: &Arc<NetNs>,
    dst: SocketAddr,
) -> (SocketAddr, PodStream) {
    let mut listener = server.listen_tcp(dst.port()).unwrap();
    let accepted = tokio::spawn(async move { echo_once(&mut listener).await });
    let mut s = client.connect_tcp(dst).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    (accepted.await.unwrap(), s)
}

#[tokio::test]
async fn tcp_across_nodes_keeps_the_source_address() {
    let n = net();
    let (peer, _) = hello(&n.pod_a, &n.pod_b, SocketAddr::from((n.pod_b.ip(), 80))).await;
    assert_eq!(
        peer.ip(),
        n.pod_a.ip(),
        "no NAT: the server sees the client pod's IP"
    );
    assert_eq!(n.b.stats.snapshot().flows_in, 1);
}

/// A dual-stack pod reached at its IPv6 address over the overlay: the
/// flow leaves from the client's IPv6 address, and both ends see IPv6.
#[tokio::test]
async fn tcp_across_nodes_over_ipv6_keeps_the_ipv6_source() {
    let n = net();
    let (a6, b6) = (n.pod_a.ip6().unwrap(), n.pod_b.ip6().unwrap());
    let (peer, _stream) = hello(&n.pod_a, &n.pod_b, SocketAddr::from((b6, 80))).await;
    assert_eq!(peer.ip(), IpAddr::V6(a6));
    // The connection is listed with IPv6 ends on both sides.
    let rows = n.pod_a.sockets();
    assert!(
        rows.iter()
            .any(|r| r.peer == Some(SocketAddr::from((b6, 80)))),
        "{rows:?}"
    );
}

/// A pod without an IPv6 address has no route to one, as Linux says.
#[tokio::test]
async fn ipv6_from_a_pod_without_an_ipv6_address_is_unreachable() {
    let n = net();
    let v4_only = pod_on(&n.a, Ipv4Addr::new(10, 244, 0, 7));
    let b6 = n.pod_b.ip6().unwrap();
    let err = v4_only.connect_tcp((b6, 80)).await.err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NetworkUnreachable);
    let udp = v4_only.bind_udp(0).unwrap();
    let err = udp.send_to(b"q", (b6, 53)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NetworkUnreachable);
}

#[tokio::test]
async fn closed_port_refuses_and_missing_pod_is_silent() {
    let n = net();
    let err = n
        .pod_a
        .connect_tcp(SocketAddr::new(n.pod_b.ip(), 81))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    for ip in [
        IpAddr::from(Ipv4Addr::new(10, 244, 1, 99)),
        IpAddr::from(Ipv4Addr::new(10, 9, 9, 9)),
        IpAddr::from(Ipv4Addr::new(10, 244, 0, 99)),
        IpAddr::from(Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 0x99)),
        IpAddr::from(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1)),
    ] {
        let silent =
            tokio::time::timeout(Duration::from_millis(300), n.pod_a.connect_tcp((ip, 80))).await;
        assert!(silent.is_err(), "{ip} must be silent");
    }
}

#[tokio::test]
async fn udp_and_ping_across_nodes() {
    let n = net();
    let server = n.pod_b.bind_udp(53).unwrap();
    let client = n.pod_a.bind_udp(0).unwrap();
    client
        .send_to(b"q", SocketAddr::new(n.pod_b.ip(), 53))
        .await
        .unwrap();
    let (data, from) = server.recv_from().await.unwrap();
    assert_eq!((&data[..], from.ip()), (&b"q"[..], n.pod_a.ip()));
    // No socket on the port: the sender learns it (ICMP port unreachable).
    client
        .send_to(b"q", SocketAddr::new(n.pod_b.ip(), 54))
        .await
        .unwrap();
    let err = client.recv_from().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let mut icmp = n.pod_a.icmp_socket();
    let rtt = icmp
        .echo(n.pod_b.ip(), 1, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(rtt.is_some());
    assert_eq!(
        icmp.echo(Ipv4Addr::new(10, 244, 1, 77), 2, Duration::from_millis(200))
            .await
            .unwrap(),
        None
    );

    // The same over IPv6, with the IPv6 source and the answer from the
    // IPv6 address that was asked.
    let (a6, b6) = (n.pod_a.ip6().unwrap(), n.pod_b.ip6().unwrap());
    client.send_to(b"6", (b6, 53)).await.unwrap();
    let (data, from) = server.recv_from().await.unwrap();
    assert_eq!((&data[..], from.ip()), (&b"6"[..], IpAddr::V6(a6)));
    server.send_to(b"r", from).await.unwrap();
    let (data, from) = client.recv_from().await.unwrap();
    assert_eq!((&data[..], from), (&b"r"[..], SocketAddr::from((b6, 53))));
    let rtt = icmp.echo(b6, 3, Duration::from_secs(2)).await.unwrap();
    assert!(rtt.is_some());
}

/// A node may only send from its own addresses: node-b's certificate
/// cannot open a flow from node-c's podCIDR, and garbage headers are
/// counted, not obeyed.
#[tokio::test]
async fn forged_sources_and_bad_headers_are_dropped_and_counted() {
    let n = net();
    let _listener = n.pod_a.listen_tcp(80).unwrap();
    let rogue_id = n.ca.identity("node-b");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rogue = podnet_overlay::endpoint(
        EmulatedSocket::new(sock, LinkTable::default()).unwrap(),
        None,
    )
    .unwrap();
    let conn = rogue
        .connect_with(rogue_id.client_config(), n.addr_a, "node-a")
        .unwrap()
        .await
        .unwrap();

    let forged = FlowHeader {
        kind: FrameKind::TcpOpen,
        src: "10.244.2.5:1234".parse().unwrap(),
        dst: SocketAddr::from((n.pod_a.ip(), 80)),
        trace_id: 1,
    };
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&forged.to_bytes()).await.unwrap();
    let mut status = [0u8; 1];
    assert!(
        recv.read_exact(&mut status).await.is_err(),
        "a forged flow must get no status"
    );
    assert_eq!(n.a.stats.snapshot().forged_sources, 1);

    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xff; 24]).await.unwrap();
    assert!(recv.read_exact(&mut status).await.is_err());
    assert_eq!(n.a.stats.snapshot().bad_headers, 1);
    conn.send_datagram(bytes::Bytes::from_static(b"\x01\x09garbage"))
        .unwrap();

    // Nor may node-b speak for node-a's IPv6 podCIDR; from its own, over
    // IPv6, the flow is accepted.
    let open_v6 = |src: Ipv6Addr| {
        let header = FlowHeader {
            src: SocketAddr::from((src, 999)),
            dst: SocketAddr::from((n.pod_a.ip6().unwrap(), 80)),
            ..forged
        };
        let conn = conn.clone();
        async move {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(&header.to_bytes()).await.unwrap();
            let mut status = [0u8; 1];
            recv.read_exact(&mut status).await.ok()?;
            OpenStatus::decode(&status).ok()
        }
    };
    assert_eq!(open_v6(n.pod_a.ip6().unwrap()).await, None);
    assert_eq!(n.a.stats.snapshot().forged_sources, 2);
    assert_eq!(
        open_v6(n.pod_b.ip6().unwrap()).await,
        Some(OpenStatus::Accepted)
    );
    // Datagrams are handled on their own; poll for the count with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while n.a.stats.snapshot().bad_headers < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "garbage datagram not counted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_node_routes_an_echo_request_by_its_ttl() {
    let check = |ttl: u8, for_this_node: bool, expected: EchoStep| {
        assert_eq!(echo_step(ttl, for_this_node), expected, "ttl {ttl}")
    };
    check(0, false, EchoStep::Expired);
    check(1, false, EchoStep::Expired);
    check(2, false, EchoStep::Forward { ttl: 1 });
    check(64, false, EchoStep::Forward { ttl: 63 });
    check(255, false, EchoStep::Forward { ttl: 254 });
    // The node's own addresses answer whatever the TTL.
    check(1, true, EchoStep::Answer);
    check(0, true, EchoStep::Answer);
    assert_eq!(
        gateway("10.244.3.0/24".parse().unwrap()),
        Ipv4Addr::new(10, 244, 3, 1)
    );
    assert_eq!(
        gateway_v6("fd00:10:244:3::/64".parse().unwrap()),
        Ipv6Addr::new(0xfd00, 0x10, 0x244, 3, 0, 0, 0, 1)
    );
}

/// What answers an echo request from pod a with each TTL: the pods'
/// gateway on node-a, node-b's IP, then the pod; a pod on node-a right
/// after the gateway; an address that leads nowhere only the gateway.
#[tokio::test]
async fn ttl_limited_echo_is_answered_by_each_router_on_the_way() {
    let n = net();
    // As the agent routes them: each node's IP to that node.
    let mut routes = n._pair.routes();
    routes.push(Route {
        cidr: Ipv4Net::from(n.b.node_ip()).into(),
        node: "node-b".into(),
        underlay: n._pair.addr_b,
    });
    routes.push(Route {
        cidr: Ipv4Net::from(n.a.node_ip()).into(),
        node: "node-a".into(),
        underlay: n.addr_a,
    });
    n.a.set_routes(routes.clone());
    n.b.set_routes(routes);
    let neighbour = pod_on(&n.a, Ipv4Addr::new(10, 244, 0, 9));

    let hops = |dst: IpAddr, max: u8| {
        let pod_a = n.pod_a.clone();
        async move {
            let mut seen = Vec::new();
            for ttl in 1..=max {
                let answer = pod_a
                    .icmp_socket()
                    .probe(dst, u16::from(ttl), ttl, Duration::from_millis(500))
                    .await
                    .unwrap()
                    .map(|a| (a.from, a.reply));
                seen.push(answer);
            }
            seen
        }
    };
    let v4 = |ip: Ipv4Addr| IpAddr::V4(ip);
    let gw = Some((v4(Ipv4Addr::new(10, 244, 0, 1)), IcmpReply::TimeExceeded));
    let node_b = Some((v4(n.b.node_ip()), IcmpReply::TimeExceeded));
    let echo = |ip| Some((ip, IcmpReply::EchoReply));
    let pod_b = n.pod_b.ip();
    assert_eq!(hops(pod_b, 4).await, [gw, node_b, echo(pod_b), echo(pod_b)]);
    let neighbour_ip = neighbour.ip();
    assert_eq!(
        hops(neighbour_ip, 3).await,
        [gw, echo(neighbour_ip), echo(neighbour_ip)]
    );
    // The other node itself is two hops away, its gateway too.
    let node_b_ip = v4(n.b.node_ip());
    assert_eq!(hops(node_b_ip, 2).await, [gw, echo(node_b_ip)]);
    let gw_b = v4(Ipv4Addr::new(10, 244, 1, 1));
    assert_eq!(hops(gw_b, 2).await, [gw, echo(gw_b)]);
    // No pod there, or no route at all: past the gateway, silence.
    assert_eq!(
        hops(v4(Ipv4Addr::new(10, 244, 1, 77)), 3).await,
        [gw, None, None]
    );
    assert_eq!(hops(v4(Ipv4Addr::new(10, 96, 0, 99)), 2).await, [gw, None]);

    // Over IPv6 the routers are the IPv6 gateways: node-a's for its pod,
    // and node-b's (its IPv6 podCIDR's ::1, the node having no IPv6
    // InternalIP) where the TTL runs out there.
    let gw6 = Some((
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 1)),
        IcmpReply::TimeExceeded,
    ));
    let gw6_b = Some((
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 1)),
        IcmpReply::TimeExceeded,
    ));
    let pod_b6 = IpAddr::V6(n.pod_b.ip6().unwrap());
    assert_eq!(hops(pod_b6, 3).await, [gw6, gw6_b, echo(pod_b6)]);
}

/// An outside host in `dp`, as the node's outside world registers one.
fn outside_host(dp: &Arc<Datapath>, ip: &str) -> Arc<NetNs> {
    let ns = NetNs::new(
        ip.parse::<IpAddr>().unwrap(),
        podnet_pod::netns::PodInfo {
            namespace: String::new(),
            name: "api.example.com".into(),
            node: dp.node_name().into(),
        },
        Arc::<Datapath>::downgrade(dp),
    );
    dp.add_pod(ns.clone());
    ns
}

#[tokio::test]
async fn egress_to_the_outside_is_masqueraded_to_the_node() {
    let n = net();
    let outside = outside_host(&n.a, "203.0.113.10");
    let (peer, _) = hello(&n.pod_a, &outside, SocketAddr::from((outside.ip(), 8080))).await;
    assert_eq!(
        peer.ip(),
        IpAddr::V4(n.a.node_ip()),
        "the outside sees the node"
    );

    // UDP: the reply to the node's masquerade port reaches the pod, from
    // the address it asked; the flow keeps its port.
    let server = outside.bind_udp(9000).unwrap();
    let client = n.pod_a.bind_udp(0).unwrap();
    let target = SocketAddr::new(outside.ip(), 9000);
    let mut peers = Vec::new();
    for payload in [&b"one"[..], b"two"] {
        client.send_to(payload, target).await.unwrap();
        let (data, from) = server.recv_from().await.unwrap();
        assert_eq!(&data[..], payload);
        assert_eq!(from.ip(), IpAddr::V4(n.a.node_ip()), "masqueraded");
        server.send_to(&data, from).await.unwrap();
        let (echoed, replier) = client.recv_from().await.unwrap();
        assert_eq!((&echoed[..], replier), (payload, target));
        peers.push(from);
    }
    assert_eq!(peers[0], peers[1], "one flow, one masquerade port");

    // A closed outside port: the pod hears port unreachable, not the node.
    client
        .send_to(b"q", SocketAddr::new(outside.ip(), 9001))
        .await
        .unwrap();
    let err = client.recv_from().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn pods_keep_their_address_to_pods_and_unserved_outside_addresses_are_silent() {
    let n = net();
    // Pod to pod across nodes, with an outside world present: no NAT.
    let _outside = outside_host(&n.a, "203.0.113.10");
    let server = n.pod_b.bind_udp(53).unwrap();
    let client = n.pod_a.bind_udp(0).unwrap();
    client
        .send_to(b"q", SocketAddr::new(n.pod_b.ip(), 53))
        .await
        .unwrap();
    let (_, from) = server.recv_from().await.unwrap();
    assert_eq!(from.ip(), n.pod_a.ip());
    // An outside address nothing serves: silence, as a blackhole.
    let unroutable = n.a.stats.snapshot().unroutable;
    let silent = tokio::time::timeout(
        Duration::from_millis(300),
        n.pod_a
            .connect_tcp(SocketAddrV4::new("203.0.113.99".parse().unwrap(), 80)),
    )
    .await;
    assert!(silent.is_err(), "the flow leads nowhere");
    assert_eq!(n.a.stats.snapshot().unroutable, unroutable + 1);
}

/// A UDP Service `dns` at 10.96.0.53:53 with endpoints `ips` (port 5353,
/// all on node-b and ready).
fn udp_service(ips: &[IpAddr]) -> crate::proxy::ServiceTable {
    let endpoints: Vec<serde_json::Value> = ips
        .iter()
        .map(|ip| serde_json::json!({"addresses": [ip.to_string()], "nodeName": "node-b", "conditions": {"ready": true}}))
        .collect();
    let view = podnet_pod::cluster::ClusterView {
        services: [(
            "default/dns".to_string(),
            serde_json::json!({"metadata": {"name": "dns", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.53", "clusterIPs": ["10.96.0.53"],
                         "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]}}),
        )]
        .into(),
        endpoint_slices: [(
            "default/dns-1".to_string(),
            serde_json::json!({"metadata": {"name": "dns-1", "namespace": "default",
                                            "labels": {"kubernetes.io/service-name": "dns"}},
                "addressType": "IPv4", "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
                "endpoints": endpoints}),
        )]
        .into(),
    };
    crate::proxy::ServiceTable::build(&view)
}

/// conntrack: every datagram of a UDP flow (one client socket, one
/// Service address) goes to the endpoint its first one got, new flows are
/// spread, and a flow whose endpoint left the Service moves to another.
#[tokio::test]
async fn a_udp_flow_to_a_service_stays_on_its_endpoint() {
    let n = net();
    let c = pod_on(&n.b, Ipv4Addr::new(10, 244, 1, 3));
    let servers = [n.pod_b.bind_udp(5353).unwrap(), c.bind_udp(5353).unwrap()];
    let ips = [n.pod_b.ip(), c.ip()];
    n.a.set_services(udp_service(&ips));
    let vip = SocketAddr::from((Ipv4Addr::new(10, 96, 0, 53), 53));

    // Which server the next datagram reached.
    let landed = || async {
        tokio::select! {
            r = servers[0].recv_from() => { r.unwrap(); 0 }
            r = servers[1].recv_from() => { r.unwrap(); 1 }
        }
    };
    let flow = n.pod_a.bind_udp(0).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        flow.send_to(b"q", vip).await.unwrap();
        seen.insert(landed().await);
    }
    assert_eq!(seen.len(), 1, "one flow, one endpoint: {seen:?}");
    let pinned = *seen.first().unwrap();

    let mut spread = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let new_flow = n.pod_a.bind_udp(0).unwrap();
        new_flow.send_to(b"q", vip).await.unwrap();
        spread.insert(landed().await);
    }
    assert_eq!(spread.len(), 2, "new flows are spread: {spread:?}");

    // The endpoint leaves the Service: the flow moves to the other.
    n.a.set_services(udp_service(&[ips[1 - pinned]]));
    flow.send_to(b"q", vip).await.unwrap();
    assert_eq!(landed().await, 1 - pinned);
}

/// Both nodes' policy state: pods `a` (app=a, node-a) and `b` (app=b,
/// node-b) in `default`, and `policies`, as the agents' informers feed it.
fn police(n: &Net, policies: &[serde_json::Value]) {
    let pod = |name: &str, ns: &NetNs, node: &str| podnet_netpol::PodInfo {
        key: podnet_netpol::PodKey::new("default", name),
        labels: [("app".to_string(), name.to_string())].into(),
        ips: ns.addresses().collect(),
        ports: Vec::new(),
        node: node.into(),
    };
    for dp in [&n.a, &n.b] {
        dp.policy().update(|index| {
            index.upsert_namespace("default", Default::default());
            index.upsert_pod(pod("a", &n.pod_a, "node-a"));
            index.upsert_pod(pod("b", &n.pod_b, "node-b"));
            for p in policies {
                let policy: k8s_openapi::api::networking::v1::NetworkPolicy =
                    serde_json::from_value(p.clone()).unwrap();
                index.upsert_policy(podnet_netpol::compile(&policy).unwrap());
            }
        });
    }
}

fn netpol(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"metadata": {"namespace": "default", "name": name}, "spec": spec})
}

/// A connection a policy denies is dropped where it is judged (the
/// server's node for ingress, the client's for egress): the client hears
/// nothing. A connection opened before the policy carries on, as
/// conntrack keeps established connections.
#[tokio::test]
async fn denied_connections_are_dropped_and_established_ones_carry_on() {
    let n = net();
    let dst = SocketAddr::new(n.pod_b.ip(), 80);
    let mut listener = n.pod_b.listen_tcp(80).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 5];
        while s.read_exact(&mut buf).await.is_ok() {
            s.write_all(&buf).await.unwrap();
        }
    });
    let mut established = n.pod_a.connect_tcp(dst).await.unwrap();
    police(
        &n,
        &[netpol(
            "deny-b",
            serde_json::json!({"podSelector": {"matchLabels": {"app": "b"}}}),
        )],
    );
    let denied = tokio::time::timeout(Duration::from_millis(500), n.pod_a.connect_tcp(dst)).await;
    assert!(denied.is_err(), "a denied connection gets no answer");
    assert_eq!(
        n.b.policy()
            .stats
            .dropped_ingress
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    established.write_all(b"still").await.unwrap();
    let mut back = [0u8; 5];
    established.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still");
    drop(established);
    server.abort();

    // Egress is judged at the client's node, before the flow leaves.
    police(
        &n,
        &[netpol(
            "a-out",
            serde_json::json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]}),
        )],
    );
    let flows_in = n.b.stats.snapshot().flows_in;
    let denied = tokio::time::timeout(Duration::from_millis(500), n.pod_a.connect_tcp(dst)).await;
    assert!(denied.is_err());
    assert_eq!(
        n.a.policy()
            .stats
            .dropped_egress
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        n.b.stats.snapshot().flows_in,
        flows_in,
        "nothing reached node-b"
    );
}

/// UDP: an allowed datagram's exchange lets the replies through both
/// nodes, though neither the server's egress nor the client's ingress
/// allows anything; a datagram the server starts is dropped.
#[tokio::test]
async fn udp_replies_of_an_allowed_exchange_pass_through_both_nodes() {
    let n = net();
    police(
        &n,
        &[
            netpol(
                "b-in",
                serde_json::json!({"podSelector": {"matchLabels": {"app": "b"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"protocol": "UDP", "port": 53}]}]}),
            ),
            netpol(
                "a-in",
                serde_json::json!({"podSelector": {"matchLabels": {"app": "a"}}}),
            ),
        ],
    );
    let server = n.pod_b.bind_udp(53).unwrap();
    let client = n.pod_a.bind_udp(0).unwrap();
    client
        .send_to(b"q", SocketAddr::new(n.pod_b.ip(), 53))
        .await
        .unwrap();
    let (_, from) = server.recv_from().await.unwrap();
    server.send_to(b"r", from).await.unwrap();
    let (data, _) = client.recv_from().await.unwrap();
    assert_eq!(&data[..], b"r");
    // b starting an exchange toward another port of a: dropped at node-b.
    let other = n.pod_a.bind_udp(0).unwrap();
    let to = SocketAddr::new(n.pod_a.ip(), other.local_port());
    server.send_to(b"x", to).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_millis(300), other.recv_from()).await;
    assert!(lost.is_err(), "the datagram is dropped");
    assert_eq!(
        n.b.policy()
            .stats
            .dropped_egress
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// `hello` over an SCTP association from `client` to `dst`, where
/// `listener` (an SCTP one) accepts: the client address it saw.
async fn sctp_hello(
    client: &Arc<NetNs>,
    listener: &mut podnet_pod::netns::PodListener,
    dst: SocketAddr,
) -> SocketAddr {
    let talk = async {
        let mut s = client.connect_sctp(dst).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
    };
    let ((), accepted) = tokio::join!(talk, echo_once(listener));
    accepted
}

/// An SCTP association crosses the overlay as its own kind of flow: it
/// reaches the pod's SCTP listener with the client's address, never a
/// TCP one on the same port, and one nothing accepts is refused (ABORT).
#[tokio::test]
async fn sctp_across_nodes_echoes_and_is_refused_when_nothing_listens() {
    let n = net();
    let dst = SocketAddr::new(n.pod_b.ip(), 5000);
    let mut listener = n.pod_b.listen_sctp(5000).unwrap();
    let peer = sctp_hello(&n.pod_a, &mut listener, dst).await;
    assert_eq!(peer.ip(), n.pod_a.ip(), "no NAT for SCTP either");
    assert_eq!(n.b.stats.snapshot().flows_in, 1);

    // TCP 5000 is another port: nothing listens there.
    let err = n.pod_a.connect_tcp(dst).await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Nothing on SCTP 5001: ABORT, the client's connect is refused.
    let err = n
        .pod_a
        .connect_sctp(SocketAddr::new(n.pod_b.ip(), 5001))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Toward a pod that does not exist: silence, as for TCP.
    let silent = tokio::time::timeout(
        Duration::from_millis(300),
        n.pod_a.connect_sctp((Ipv4Addr::new(10, 244, 1, 99), 5000)),
    )
    .await;
    assert!(silent.is_err());

    // Over IPv6, and to a pod of the same node (no QUIC), alike.
    let b6 = n.pod_b.ip6().unwrap();
    let peer = sctp_hello(&n.pod_a, &mut listener, SocketAddr::from((b6, 5000))).await;
    assert_eq!(peer.ip(), IpAddr::V6(n.pod_a.ip6().unwrap()));
    let neighbour = pod_on(&n.a, Ipv4Addr::new(10, 244, 0, 9));
    let mut local = neighbour.listen_sctp(5000).unwrap();
    let flows_in = (n.a.stats.snapshot().flows_in, n.b.stats.snapshot().flows_in);
    let peer = sctp_hello(&n.pod_a, &mut local, SocketAddr::new(neighbour.ip(), 5000)).await;
    assert_eq!(peer.ip(), n.pod_a.ip());
    assert_eq!(
        (n.a.stats.snapshot().flows_in, n.b.stats.snapshot().flows_in),
        flows_in,
        "same-node traffic never touches QUIC"
    );
    // The client's socket table lists its association as SCTP.
    let _open = n.pod_a.connect_sctp(dst).await.unwrap();
    let rows = n.pod_a.sockets();
    assert!(
        rows.iter().any(|r| r.protocol == Protocol::Sctp
            && r.state == podnet_pod::netns::SocketState::Established
            && r.peer == Some(dst)),
        "{rows:?}"
    );
}

/// Service `assoc` at 10.96.0.60: SCTP port 80 → 5000 (NodePort 30600)
/// on `endpoints` (node-b's pods).
fn sctp_service(endpoints: &[IpAddr]) -> crate::proxy::ServiceTable {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|ip| serde_json::json!({"addresses": [ip.to_string()], "nodeName": "node-b", "conditions": {"ready": true}}))
        .collect();
    let view = podnet_pod::cluster::ClusterView {
        services: [(
            "default/assoc".to_string(),
            serde_json::json!({"metadata": {"name": "assoc", "namespace": "default"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.60", "clusterIPs": ["10.96.0.60"],
                         "ports": [{"name": "assoc", "port": 80, "protocol": "SCTP", "targetPort": 5000, "nodePort": 30600}]}}),
        )]
        .into(),
        endpoint_slices: [(
            "default/assoc-1".to_string(),
            serde_json::json!({"metadata": {"name": "assoc-1", "namespace": "default",
                                            "labels": {"kubernetes.io/service-name": "assoc"}},
                "addressType": "IPv4", "ports": [{"name": "assoc", "port": 5000, "protocol": "SCTP"}],
                "endpoints": endpoints}),
        )]
        .into(),
    };
    crate::proxy::ServiceTable::build(&view)
}

/// An SCTP Service port is proxied as a TCP one is: its ClusterIP (the
/// backend sees the client pod) and its NodePort on another node (the
/// backend sees that node, masqueraded); a TCP flow to the same ClusterIP
/// port matches no rule and leads nowhere; no endpoints refuses.
#[tokio::test]
async fn sctp_service_ports_are_proxied_on_cluster_ip_and_node_port() {
    let n = net();
    let mut routes = n._pair.routes();
    routes.push(Route {
        cidr: Ipv4Net::from(n.b.node_ip()).into(),
        node: "node-b".into(),
        underlay: n._pair.addr_b,
    });
    n.a.set_routes(routes.clone());
    n.b.set_routes(routes);
    for dp in [&n.a, &n.b] {
        dp.set_services(sctp_service(&[n.pod_b.ip()]));
    }
    let mut listener = n.pod_b.listen_sctp(5000).unwrap();
    let _tcp = n.pod_b.listen_tcp(5000).unwrap();
    let vip = SocketAddr::from((Ipv4Addr::new(10, 96, 0, 60), 80));
    let peer = sctp_hello(&n.pod_a, &mut listener, vip).await;
    assert_eq!(peer.ip(), n.pod_a.ip(), "a ClusterIP flow keeps the client");

    let node_port = SocketAddr::from((n.b.node_ip(), 30600));
    let peer = sctp_hello(&n.pod_a, &mut listener, node_port).await;
    assert_eq!(peer.ip(), IpAddr::V4(n.b.node_ip()), "NodePort masquerades");

    let tcp = tokio::time::timeout(Duration::from_millis(300), n.pod_a.connect_tcp(vip)).await;
    assert!(tcp.is_err(), "no TCP rule on the SCTP port: silence");

    n.a.set_services(sctp_service(&[]));
    let err = n.pod_a.connect_sctp(vip).await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

/// NetworkPolicy judges an association as SCTP: a rule for SCTP/5000
/// admits it, and a TCP connection to the same port of the same pod is
/// dropped (the client hears nothing).
#[tokio::test]
async fn an_sctp_rule_admits_sctp_and_drops_tcp_on_the_same_port() {
    let n = net();
    police(
        &n,
        &[netpol(
            "b-sctp",
            serde_json::json!({"podSelector": {"matchLabels": {"app": "b"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                             "ports": [{"protocol": "SCTP", "port": 5000}]}]}),
        )],
    );
    let dst = SocketAddr::new(n.pod_b.ip(), 5000);
    let mut listener = n.pod_b.listen_sctp(5000).unwrap();
    let _tcp = n.pod_b.listen_tcp(5000).unwrap();
    let peer = sctp_hello(&n.pod_a, &mut listener, dst).await;
    assert_eq!(peer.ip(), n.pod_a.ip());

    let tcp = tokio::time::timeout(Duration::from_millis(500), n.pod_a.connect_tcp(dst)).await;
    assert!(tcp.is_err(), "the TCP connection is dropped, not refused");
    assert_eq!(
        n.b.policy()
            .stats
            .dropped_ingress
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let judged: Vec<(Protocol, bool)> =
        n.b.policy()
            .flows(0)
            .iter()
            .map(|f| (f.protocol, f.allowed()))
            .collect();
    assert_eq!(judged, [(Protocol::Sctp, true), (Protocol::Tcp, false)]);
}

/// A link partitioned in Reject mode, as an iptables REJECT where it
/// starts: the flow already on it is reset, a new one is refused at once, a
/// UDP datagram gets port unreachable; cleared, the link carries flows again.
#[tokio::test]
async fn a_reject_partition_resets_flows_on_the_link_and_refuses_new_ones() {
    let n = net();
    let dst = SocketAddr::from((n.pod_b.ip(), 80));
    let mut listener = n.pod_b.listen_tcp(80).unwrap();
    // Echoes every connection until it ends.
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(len) = s.read(&mut buf).await {
                    if len == 0 || s.write_all(&buf[..len]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut established = n.pod_a.connect_tcp(dst).await.unwrap();
    established.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    established.read_exact(&mut back).await.unwrap();
    let udp_server = n.pod_b.bind_udp(53).unwrap();
    let client = n.pod_a.bind_udp(0).unwrap();

    let reject = podnet_proto::model::LinkParams {
        partition: true,
        partition_mode: podnet_proto::model::PartitionMode::Reject,
        ..Default::default()
    };
    n.a.set_link(n.addr_b, reject);
    let read = tokio::time::timeout(Duration::from_secs(2), established.read(&mut back)).await;
    assert!(
        matches!(read, Ok(Err(_))),
        "the established flow must be reset, not {read:?}"
    );
    let refused = tokio::time::timeout(Duration::from_secs(1), n.pod_a.connect_tcp(dst))
        .await
        .expect("refused at once, not left to time out")
        .err()
        .unwrap();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    client
        .send_to(b"q", SocketAddr::new(n.pod_b.ip(), 53))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(1), client.recv_from())
        .await
        .expect("port unreachable at once")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(n.a.stats.snapshot().link_rejected >= 2);

    // A Drop partition refuses nothing: the connect is left to time out.
    n.a.set_link(
        n.addr_b,
        podnet_proto::model::LinkParams {
            partition: true,
            ..Default::default()
        },
    );
    let silent = tokio::time::timeout(Duration::from_millis(300), n.pod_a.connect_tcp(dst)).await;
    assert!(silent.is_err(), "a dropping partition must be silent");

    n.a.clear_link(n.addr_b);
    let mut again = tokio::time::timeout(Duration::from_secs(10), n.pod_a.connect_tcp(dst))
        .await
        .expect("connects once the link is cleared")
        .unwrap();
    again.write_all(b"again").await.unwrap();
    again.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"again");
    drop(udp_server);
    server.abort();
}
