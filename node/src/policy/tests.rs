use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pod(namespace: &str, name: &str, app: &str, ip: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name, "labels": {"app": app}, "resourceVersion": "1"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        ]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

fn policy(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": "1"},
        "spec": spec,
    })
}

/// An enforcer holding pods `client` (10.244.0.2) and `web` (10.244.1.2)
/// in `default` and the policies given.
fn enforcer(policies: &[Value]) -> Enforcer {
    let e = Enforcer::new();
    let mut seen = Seen::default();
    let pods: Cache = [
        (
            "default/client".to_string(),
            pod("default", "client", "client", "10.244.0.2"),
        ),
        (
            "default/web".to_string(),
            pod("default", "web", "web", "10.244.1.2"),
        ),
    ]
    .into();
    let namespaces: Cache = [(
        "/default".to_string(),
        json!({"metadata": {"name": "default", "resourceVersion": "1"}}),
    )]
    .into();
    let policies: Cache = policies
        .iter()
        .map(|p| (podnet_proto::informer::cache_key(p), p.clone()))
        .collect();
    e.update(|index| {
        apply(&mut seen.namespaces, &namespaces, |c| match c {
            Change::Upsert(ns) => index.upsert_namespace(str_at(ns, "/metadata/name"), labels(ns)),
            Change::Remove(_) => {}
        });
        apply(&mut seen.pods, &pods, |c| match c {
            Change::Upsert(p) => index.upsert_pod(pod_info(p)),
            Change::Remove(_) => {}
        });
        apply(&mut seen.policies, &policies, |c| match c {
            Change::Upsert(p) => upsert_policy(index, p),
            Change::Remove(_) => {}
        });
    });
    e
}

const CLIENT: &str = "10.244.0.2:40000";
const WEB: &str = "10.244.1.2:8080";

#[test]
fn without_policies_every_flow_passes_unjudged() {
    let e = enforcer(&[]);
    assert_eq!(
        e.tcp(Direction::Egress, addr(CLIENT), addr(WEB)),
        Decision::Unjudged
    );
    assert_eq!(
        e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB)),
        Decision::Unjudged
    );
    assert_eq!(e.stats.allowed.load(Ordering::Relaxed), 0);
}

#[test]
fn a_default_deny_ingress_drops_new_connections_and_counts_them() {
    let e = enforcer(&[policy("default", "deny", json!({"podSelector": {}}))]);
    // The client's egress is not isolated; the server's ingress is.
    assert!(
        !e.tcp(Direction::Egress, addr(CLIENT), addr(WEB))
            .is_denied()
    );
    let Decision::Denied(denied) = e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB)) else {
        panic!("not denied");
    };
    assert_eq!(
        denied.to_string(),
        "isolated for ingress by default/deny, no rule allows"
    );
    assert_eq!(e.stats.dropped_ingress.load(Ordering::Relaxed), 1);
}

#[test]
fn a_named_port_rule_matches_the_backend_port_after_dnat() {
    let allow = policy(
        "default",
        "allow-http",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                            "ports": [{"port": "http"}]}]}),
    );
    let e = enforcer(&[allow]);
    assert!(
        !e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB))
            .is_denied()
    );
    assert!(
        e.tcp(Direction::Ingress, addr(CLIENT), addr("10.244.1.2:9090"))
            .is_denied()
    );
    // Another source: not a client pod.
    assert!(
        e.tcp(Direction::Ingress, addr("10.244.2.9:1"), addr(WEB))
            .is_denied()
    );
}

/// An SCTP rule admits SCTP associations to its port and nothing else
/// there: a TCP connection to the same port is judged as TCP and denied,
/// and the flow log says which protocol each was.
#[test]
fn an_sctp_rule_admits_sctp_but_not_tcp_to_the_same_port() {
    let allow = policy(
        "default",
        "allow-sctp",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"ports": [{"port": 8080, "protocol": "SCTP"}]}]}),
    );
    let e = enforcer(&[allow]);
    let sctp = e.connection(Direction::Ingress, Protocol::Sctp, addr(CLIENT), addr(WEB));
    assert!(matches!(sctp, Decision::Allowed(_)), "{sctp:?}");
    assert!(
        e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB))
            .is_denied()
    );
    assert!(
        e.connection(
            Direction::Ingress,
            Protocol::Sctp,
            addr(CLIENT),
            addr("10.244.1.2:8081")
        )
        .is_denied()
    );
    let logged: Vec<(Protocol, bool)> = e
        .flows(0)
        .iter()
        .map(|f| (f.protocol, f.allowed()))
        .collect();
    assert_eq!(
        logged,
        [
            (Protocol::Sctp, true),
            (Protocol::Tcp, false),
            (Protocol::Sctp, false)
        ]
    );
}

#[test]
fn udp_replies_of_an_allowed_exchange_pass_until_it_idles_out() {
    // web may not send anything (egress deny-all), client may receive
    // nothing (ingress deny-all on every pod but web's allowed ingress).
    let deny_egress = policy(
        "default",
        "web-no-egress",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}),
    );
    let deny_client = policy(
        "default",
        "client-no-ingress",
        json!({"podSelector": {"matchLabels": {"app": "client"}}}),
    );
    let e = enforcer(&[deny_egress, deny_client]);
    let (client, dns) = (addr(CLIENT), addr("10.244.1.2:53"));
    let t0 = Instant::now();
    assert!(e.udp(Direction::Egress, client, dns, t0).is_ok());
    assert!(e.udp(Direction::Ingress, client, dns, t0).is_ok());
    // The reply: web's egress and client's ingress would both deny it.
    let t1 = t0 + Duration::from_secs(10);
    assert!(e.udp(Direction::Egress, dns, client, t1).is_ok());
    assert!(e.udp(Direction::Ingress, dns, client, t1).is_ok());
    // Web starting an exchange of its own is denied.
    assert!(
        e.udp(Direction::Egress, dns, addr("10.244.0.2:5000"), t1)
            .is_err()
    );
    // Idle past conntrack's timeout (from the last reply): judged again.
    let late = t1 + UDP_IDLE;
    assert!(e.udp(Direction::Egress, dns, client, late).is_err());
}

#[test]
fn pods_that_ended_give_their_addresses_back() {
    let mut done = pod("default", "job", "job", "10.244.0.9");
    done["status"]["phase"] = json!("Succeeded");
    let info = pod_info(&done);
    assert!(info.ips.is_empty());
    let running = pod_info(&pod("default", "web", "web", "10.244.1.2"));
    assert_eq!(running.ips, ["10.244.1.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(running.ports.len(), 2);
    assert_eq!(running.ports[0].name.as_deref(), Some("http"));
    assert_eq!(running.ports[1].protocol, Protocol::Udp);
}

#[test]
fn a_change_reaches_the_index_once_and_removals_are_seen() {
    let mut seen = BTreeMap::new();
    let mut cache: Cache = [(
        "a/x".to_string(),
        json!({"metadata": {"resourceVersion": "1"}}),
    )]
    .into();
    let mut log = Vec::new();
    let record = |seen: &mut BTreeMap<String, String>, cache: &Cache, log: &mut Vec<String>| {
        apply(seen, cache, |c| {
            log.push(match c {
                Change::Upsert(o) => format!("upsert {}", str_at(o, "/metadata/resourceVersion")),
                Change::Remove(k) => format!("remove {k}"),
            })
        })
    };
    record(&mut seen, &cache, &mut log);
    record(&mut seen, &cache, &mut log);
    cache.insert("a/x".into(), json!({"metadata": {"resourceVersion": "2"}}));
    record(&mut seen, &cache, &mut log);
    cache.clear();
    record(&mut seen, &cache, &mut log);
    assert_eq!(log, ["upsert 1", "upsert 2", "remove a/x"]);
}

#[test]
fn a_policy_that_does_not_compile_is_not_enforced() {
    let bad = policy(
        "default",
        "bad",
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
    );
    let e = enforcer(&[bad]);
    assert!(
        !e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB))
            .is_denied()
    );
}

#[test]
fn judged_flows_are_logged_with_their_verdict_and_the_log_is_bounded() {
    let e = enforcer(&[policy(
        "default",
        "deny",
        json!({"podSelector": {"matchLabels": {"app": "web"}}}),
    )]);
    let _ = e.tcp(Direction::Egress, addr(CLIENT), addr(WEB));
    let _ = e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB));
    let flows = e.flows(0);
    assert_eq!(flows.len(), 2);
    assert!(flows[0].allowed());
    assert_eq!(flows[0].reason(), "no policy selects the pod for egress");
    let dropped = &flows[1];
    assert!(!dropped.allowed());
    assert_eq!(dropped.direction, Direction::Ingress);
    assert_eq!(dropped.src_pod().as_deref(), Some("default/client"));
    assert_eq!(dropped.dst_pod().as_deref(), Some("default/web"));
    assert_eq!(dropped.policies(), ["default/deny"]);
    assert_eq!(e.flows(1), std::slice::from_ref(dropped));
    // An outside source has no egress side: nothing to log.
    let _ = e.tcp(Direction::Egress, addr("203.0.113.9:1"), addr(WEB));
    assert_eq!(e.flows(0).len(), 2);
    for _ in 0..FLOW_LOG_LIMIT {
        let _ = e.tcp(Direction::Ingress, addr(CLIENT), addr(WEB));
    }
    assert_eq!(e.flows(0).len(), FLOW_LOG_LIMIT);
}
