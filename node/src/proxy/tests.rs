//! Service table building and endpoint choice, table-driven.

use std::time::Instant;

use serde_json::json;

use super::*;

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

const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 20), 80);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 9);

fn check(table: &ServiceTable, origin: Origin, random: u64, expected: Pick) {
    let port = match origin {
        Origin::ClusterIp => table.by_cluster_ip(VIP, Protocol::Tcp),
        Origin::NodePort => table.by_node_port(30080, Protocol::Tcp),
    }
    .expect("service port in table");
    let got = ProxyState::default().pick(port, origin, CLIENT, "node-1", Instant::now(), random);
    assert_eq!(got, expected);
}

fn to(ip: &str) -> Pick {
    Pick::To(SocketAddrV4::new(ip.parse().unwrap(), 8080))
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
        Ipv4Addr::new(10, 244, 2, 2),
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
    assert!(t.by_node_port(30081, Protocol::Tcp).is_none());
}
