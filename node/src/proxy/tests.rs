//! Service table building and endpoint choice, table-driven.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::Instant;

use serde_json::json;

use super::*;
use podnet_proto::model::network::IpFamily;

fn view(services: Vec<Value>, slices: Vec<Value>) -> ClusterView {
    let key = |v: &Value| {
        format!(
            "{}/{}",
            str_at(v, "/metadata/namespace"),
            str_at(v, "/metadata/name")
        )
    };
    ClusterView {
        services: services.into_iter().map(|s| (key(&s), s)).collect(),
        endpoint_slices: slices.into_iter().map(|s| (key(&s), s)).collect(),
    }
}

fn svc(spec: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

/// An endpoint: (ip, node, ready, serving, terminating).
type Ep = (&'static str, &'static str, bool, bool, bool);

fn slice(name: &str, port: u16, eps: &[Ep]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, node, ready, serving, terminating)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    json!({"metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}], "endpoints": endpoints})
}

fn web(extra: Value, eps: &[Ep]) -> ServiceTable {
    let mut spec = json!({"type": "NodePort", "clusterIP": "10.96.0.20",
                          "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    ServiceTable::build(&view(vec![svc(spec)], vec![slice("web-1", 8080, eps)]))
}

const VIP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 20), 80));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 244, 0, 9));

fn check(table: &ServiceTable, origin: Origin, random: u64, expected: Pick) {
    let port = match origin {
        Origin::ClusterIp => table.by_cluster_ip(VIP, Protocol::Tcp),
        Origin::NodePort => table.by_node_port(30080, Protocol::Tcp, IpFamily::V4),
    }
    .expect("service port in table");
    let got = ProxyState::default().pick(port, origin, CLIENT, "node-1", Instant::now(), random);
    assert_eq!(got, expected);
}

fn to(ip: &str) -> Pick {
    Pick::To(SocketAddr::new(ip.parse().unwrap(), 8080))
}

#[test]
fn picks_ready_endpoints_with_the_target_port() {
    let eps: &[Ep] = &[
        ("10.244.1.2", "node-2", true, true, false),
        ("10.244.0.2", "node-1", false, false, false),
    ];
    let t = web(json!({}), eps);
    check(&t, Origin::ClusterIp, 0, to("10.244.1.2"));
    check(&t, Origin::ClusterIp, 1, to("10.244.1.2"));
    check(&t, Origin::NodePort, 7, to("10.244.1.2"));
}

#[test]
fn no_endpoints_refuses_and_local_policy_without_local_endpoint_drops() {
    check(&web(json!({}), &[]), Origin::ClusterIp, 0, Pick::Refuse);
    check(
        &web(json!({}), &[("10.244.1.2", "node-2", false, false, false)]),
        Origin::ClusterIp,
        0,
        Pick::Refuse,
    );
    let remote: &[Ep] = &[("10.244.1.2", "node-2", true, true, false)];
    check(
        &web(json!({"externalTrafficPolicy": "Local"}), remote),
        Origin::NodePort,
        0,
        Pick::Drop,
    );
    check(
        &web(json!({"externalTrafficPolicy": "Local"}), remote),
        Origin::ClusterIp,
        0,
        to("10.244.1.2"),
    );
    check(
        &web(json!({"internalTrafficPolicy": "Local"}), remote),
        Origin::ClusterIp,
        0,
        Pick::Drop,
    );
    let both: &[Ep] = &[
        ("10.244.1.2", "node-2", true, true, false),
        ("10.244.0.5", "node-1", true, true, false),
    ];
    for r in 0..4 {
        check(
            &web(json!({"internalTrafficPolicy": "Local"}), both),
            Origin::ClusterIp,
            r,
            to("10.244.0.5"),
        );
    }
}

#[test]
fn terminating_serving_endpoints_are_the_fallback() {
    let eps: &[Ep] = &[
        ("10.244.1.2", "node-2", false, true, true),
        ("10.244.1.3", "node-2", false, false, true),
    ];
    check(&web(json!({}), eps), Origin::ClusterIp, 0, to("10.244.1.2"));
    check(&web(json!({}), eps), Origin::ClusterIp, 1, to("10.244.1.2"));
    let with_ready: &[Ep] = &[
        ("10.244.1.2", "node-2", false, true, true),
        ("10.244.1.9", "node-2", true, true, false),
    ];
    check(
        &web(json!({}), with_ready),
        Origin::ClusterIp,
        0,
        to("10.244.1.9"),
    );
}

#[test]
fn client_ip_affinity_sticks_until_idle_timeout() {
    let eps: &[Ep] = &[
        ("10.244.1.2", "n", true, true, false),
        ("10.244.1.3", "n", true, true, false),
    ];
    let t = web(
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}}),
        eps,
    );
    let port = t.by_cluster_ip(VIP, Protocol::Tcp).unwrap();
    let mut state = ProxyState::default();
    let t0 = Instant::now();
    let first = state.pick(port, Origin::ClusterIp, CLIENT, "n", t0, 0);
    for (i, secs) in [1u64, 5, 14].into_iter().enumerate() {
        let got = state.pick(
            port,
            Origin::ClusterIp,
            CLIENT,
            "n",
            t0 + Duration::from_secs(secs),
            i as u64 + 1,
        );
        assert_eq!(got, first, "still within 10 s of the last use at {secs}s");
    }
    let later = state.pick(
        port,
        Origin::ClusterIp,
        CLIENT,
        "n",
        t0 + Duration::from_secs(30),
        1,
    );
    assert_eq!(later, to("10.244.1.3"), "affinity expired, a new pick");
    let other = state.pick(
        port,
        Origin::ClusterIp,
        IpAddr::V4(Ipv4Addr::new(10, 244, 2, 2)),
        "n",
        t0,
        0,
    );
    assert_eq!(other, to("10.244.1.2"));
}

#[test]
fn round_robin_cycles() {
    let eps: &[Ep] = &[
        ("10.244.1.2", "n", true, true, false),
        ("10.244.1.3", "n", true, true, false),
    ];
    let t = web(json!({}), eps);
    let port = t.by_cluster_ip(VIP, Protocol::Tcp).unwrap();
    let mut state = ProxyState::default();
    let picks: Vec<Pick> = (0..4)
        .map(|_| state.pick_round_robin(port, Origin::ClusterIp, CLIENT, "n", Instant::now()))
        .collect();
    assert_eq!(
        picks,
        [
            to("10.244.1.2"),
            to("10.244.1.3"),
            to("10.244.1.2"),
            to("10.244.1.3")
        ]
    );
}

#[test]
fn headless_external_name_and_other_protocols_are_not_proxied() {
    let headless = svc(json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}));
    let external = json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
    let t = ServiceTable::build(&view(vec![headless, external], vec![]));
    assert!(t.by_cluster_ip(VIP, Protocol::Tcp).is_none());
    assert_eq!(
        t.ports().len(),
        1,
        "the headless port has no ClusterIP to answer on"
    );
    let t = web(json!({}), &[("10.244.1.2", "n", true, true, false)]);
    assert!(t.by_cluster_ip(VIP, Protocol::Udp).is_none());
    assert!(t.by_node_port(30081, Protocol::Tcp, IpFamily::V4).is_none());
}

/// An SCTP Service port is a rule of its own, ClusterIP and NodePort, with
/// the slices' SCTP port; the same number over TCP is another Service
/// port (or none).
#[test]
fn sctp_ports_have_rules_of_their_own() {
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [
        {"name": "assoc", "port": 80, "protocol": "SCTP", "targetPort": 5000, "nodePort": 30080},
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080},
    ]});
    let slice = json!({"metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "assoc", "port": 5000, "protocol": "SCTP"}, {"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.2"], "nodeName": "n", "conditions": {"ready": true}}]});
    let t = ServiceTable::build(&view(vec![svc(spec)], vec![slice]));
    let endpoint = |port: Option<&ServicePort>| {
        let port = port.expect("a rule");
        (
            port.proto,
            port.endpoints
                .iter()
                .map(|e| e.addr.port())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        endpoint(t.by_cluster_ip(VIP, Protocol::Sctp)),
        (Protocol::Sctp, vec![5000])
    );
    assert_eq!(
        endpoint(t.by_cluster_ip(VIP, Protocol::Tcp)),
        (Protocol::Tcp, vec![8080])
    );
    assert_eq!(
        endpoint(t.by_node_port(30080, Protocol::Sctp, IpFamily::V4)),
        (Protocol::Sctp, vec![5000])
    );
    assert!(t.by_cluster_ip(VIP, Protocol::Udp).is_none());
}

/// kube-proxy's endpoint categorization (topology.go `CategorizeEndpoints`
/// and the KEP-1669 cases): which endpoints a new flow may use.
#[test]
fn endpoint_categorization_follows_kep_1669() {
    // (ip, node, ready, serving, terminating), as slices carry them.
    let ep = |(ip, node, ready, serving, terminating): Ep| Endpoint {
        addr: SocketAddr::new(ip.parse().unwrap(), 8080),
        node: node.to_string(),
        ready,
        serving,
        terminating,
    };
    let check = |eps: &[Ep], local_only: bool, expected: &[&str]| {
        let endpoints: Vec<Endpoint> = eps.iter().copied().map(ep).collect();
        let got: Vec<String> = usable_endpoints(&endpoints, local_only, "node-1")
            .iter()
            .map(|e| e.addr.ip().to_string())
            .collect();
        assert_eq!(got, expected, "{eps:?} local_only={local_only}");
    };
    const READY: (bool, bool, bool) = (true, true, false);
    const SERVING_TERMINATING: (bool, bool, bool) = (false, true, true);
    const TERMINATING: (bool, bool, bool) = (false, false, true);
    const NOT_READY: (bool, bool, bool) = (false, false, false);
    let e = |ip: &'static str, node: &'static str, (r, s, t): (bool, bool, bool)| -> Ep {
        (ip, node, r, s, t)
    };

    // Ready endpoints only, whatever else there is.
    check(
        &[
            e("10.0.0.1", "node-1", READY),
            e("10.0.0.2", "node-2", SERVING_TERMINATING),
            e("10.0.0.3", "node-2", NOT_READY),
        ],
        false,
        &["10.0.0.1"],
    );
    // No ready endpoint: the serving terminating ones, not the
    // terminating ones that stopped serving.
    check(
        &[
            e("10.0.0.1", "node-1", SERVING_TERMINATING),
            e("10.0.0.2", "node-2", SERVING_TERMINATING),
            e("10.0.0.3", "node-2", TERMINATING),
        ],
        false,
        &["10.0.0.1", "10.0.0.2"],
    );
    // Not ready and not terminating never serves, even as a fallback.
    check(&[e("10.0.0.1", "node-1", NOT_READY)], false, &[]);
    // All terminating and none serving: nothing.
    check(&[e("10.0.0.1", "node-1", TERMINATING)], false, &[]);
    check(&[], false, &[]);

    // Local policy: a ready local endpoint wins.
    check(
        &[
            e("10.0.0.1", "node-1", READY),
            e("10.0.0.2", "node-2", READY),
        ],
        true,
        &["10.0.0.1"],
    );
    // Only terminating local endpoints: they are used, not the other
    // node's ready one.
    check(
        &[
            e("10.0.0.1", "node-1", SERVING_TERMINATING),
            e("10.0.0.2", "node-2", READY),
        ],
        true,
        &["10.0.0.1"],
    );
    // Ready local and serving terminating local: the ready one.
    check(
        &[
            e("10.0.0.1", "node-1", SERVING_TERMINATING),
            e("10.0.0.4", "node-1", READY),
        ],
        true,
        &["10.0.0.4"],
    );
    // Local terminating that stopped serving: nothing (the flow drops).
    check(
        &[
            e("10.0.0.1", "node-1", TERMINATING),
            e("10.0.0.2", "node-2", READY),
        ],
        true,
        &[],
    );
    // No local endpoint at all: nothing, never the remote ones.
    check(&[e("10.0.0.2", "node-2", READY)], true, &[]);
}

#[test]
fn external_local_uses_local_terminating_endpoints_through_the_node_port() {
    let eps: &[Ep] = &[
        ("10.244.0.2", "node-1", false, true, true),
        ("10.244.1.2", "node-2", true, true, false),
    ];
    let local = web(json!({"externalTrafficPolicy": "Local"}), eps);
    for r in 0..3 {
        check(&local, Origin::NodePort, r, to("10.244.0.2"));
    }
    // ClusterIP traffic of the same Service is not local: the ready one.
    check(&local, Origin::ClusterIp, 0, to("10.244.1.2"));
    // The health check counts ready local endpoints only, so a load
    // balancer stops choosing a node whose endpoints are all terminating.
    assert_eq!(local.local_ready_endpoints("default", "web", "node-1"), 0);
    assert_eq!(local.local_ready_endpoints("default", "web", "node-2"), 1);
}

/// An IPv6 slice of web with one ready endpoint on node-2.
fn slice_v6() -> Value {
    let mut v6 = slice(
        "web-2",
        8080,
        &[("fd00:10:244:1::2", "node-2", true, true, false)],
    );
    v6["addressType"] = json!("IPv6");
    v6
}

/// kube-proxy's per-family proxiers: a dual-stack Service has a rule per
/// ClusterIP, each picking only endpoints of its own address type, also
/// for its NodePort on the node's address of that family.
#[test]
fn a_dual_stack_service_has_a_rule_per_family_with_that_familys_endpoints() {
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.20",
                      "clusterIPs": ["10.96.0.20", "fd00:10:96::20"],
                      "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]});
    let v6 = slice_v6();
    let v4 = slice(
        "web-1",
        8080,
        &[("10.244.1.2", "node-2", true, true, false)],
    );
    let t = ServiceTable::build(&view(vec![svc(spec)], vec![v4, v6]));
    let vip6 = SocketAddr::from((Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0x20), 80));
    let client6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 9));
    let pick = |vip: SocketAddr, client: IpAddr, random: u64| {
        let port = t.by_cluster_ip(vip, Protocol::Tcp).expect("a rule");
        ProxyState::default().pick(
            port,
            Origin::ClusterIp,
            client,
            "node-1",
            Instant::now(),
            random,
        )
    };
    for random in 0..3 {
        assert_eq!(pick(VIP, CLIENT, random), to("10.244.1.2"));
        assert_eq!(pick(vip6, client6, random), to("fd00:10:244:1::2"));
    }
    // The NodePort on each family's node address picks that family's.
    let node_port = t
        .by_node_port(30080, Protocol::Tcp, IpFamily::V4)
        .expect("NodePort rule");
    assert_eq!(node_port.cluster_ip, Some(VIP));
    let node_port6 = t
        .by_node_port(30080, Protocol::Tcp, IpFamily::V6)
        .expect("IPv6 NodePort rule");
    assert_eq!(node_port6.cluster_ip, Some(vip6));
    assert_eq!(t.ports().len(), 2);
    assert_ne!(
        t.ports()[0].id,
        t.ports()[1].id,
        "each family keeps its own state"
    );

    // An IPv6 single-stack Service: its only rule, on IPv6 node addresses.
    let spec = json!({"type": "NodePort", "clusterIP": "fd00:10:96::20",
                      "clusterIPs": ["fd00:10:96::20"], "ipFamilies": ["IPv6"],
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]});
    let v6 = slice_v6();
    let t = ServiceTable::build(&view(vec![svc(spec)], vec![v6]));
    assert!(t.by_node_port(30080, Protocol::Tcp, IpFamily::V4).is_none());
    let port = t
        .by_node_port(30080, Protocol::Tcp, IpFamily::V6)
        .expect("NodePort rule");
    assert_eq!(port.cluster_ip, Some(vip6));
    assert_eq!(port.id, "default/web:http");
}
