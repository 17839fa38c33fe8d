//! The incremental index: which policies select which pods after each kind
//! of update, and properties over random clusters: no policies allow all,
//! an allow-all policy never takes anything away, and incremental updates
//! judge as a fresh build does.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::testkit::{compiled, label_map, pod, policy_yaml};
use crate::{Endpoint, Flow, PodInfo, Protocol};

use super::*;

fn selecting(index: &Index, pod: &str) -> Vec<String> {
    let (ns, name) = pod.split_once('/').unwrap();
    index
        .selecting(&PodKey::new(ns, name))
        .map(|p| p.key().to_string())
        .collect()
}

#[test]
fn each_update_recomputes_what_it_can_change() {
    let mut index = Index::new();
    index.upsert_pod(pod("x/a", "app=web", "10.0.0.1", "n1", &[]));
    index.upsert_pod(pod("x/b", "app=db", "10.0.0.2", "n1", &[]));
    index.upsert_pod(pod("y/a", "app=web", "10.0.1.1", "n1", &[]));
    let web = compiled(&policy_yaml(
        "x/web",
        "podSelector: {matchLabels: {app: web}}",
    ));
    index.upsert_policy(web);
    index.upsert_policy(compiled(&policy_yaml("x/all", "podSelector: {}")));
    // (what changed, x/a, x/b, y/a)
    let mut steps: Vec<(&str, [Vec<String>; 3])> = Vec::new();
    let snapshot = |index: &Index| {
        [
            selecting(index, "x/a"),
            selecting(index, "x/b"),
            selecting(index, "y/a"),
        ]
    };
    steps.push(("two policies", snapshot(&index)));
    index.upsert_pod(pod("x/b", "app=web", "10.0.0.2", "n1", &[]));
    steps.push(("x/b relabelled web", snapshot(&index)));
    index.upsert_policy(compiled(&policy_yaml(
        "x/web",
        "podSelector: {matchLabels: {app: db}}",
    )));
    steps.push(("x/web now selects db", snapshot(&index)));
    index.remove_policy(&PolicyRef::new("x", "all"));
    steps.push(("x/all removed", snapshot(&index)));
    index.remove_pod(&PodKey::new("x", "a"));
    steps.push(("x/a removed", snapshot(&index)));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let expected = vec![
        (
            "two policies",
            [s(&["x/all", "x/web"]), s(&["x/all"]), s(&[])],
        ),
        (
            "x/b relabelled web",
            [s(&["x/all", "x/web"]), s(&["x/all", "x/web"]), s(&[])],
        ),
        (
            "x/web now selects db",
            [s(&["x/all"]), s(&["x/all"]), s(&[])],
        ),
        ("x/all removed", [s(&[]), s(&[]), s(&[])]),
        ("x/a removed", [s(&[]), s(&[]), s(&[])]),
    ];
    assert_eq!(steps, expected);
    // Nothing kept for what is gone.
    assert!(index.selecting.is_empty(), "{:?}", index.selecting);
    assert!(!index.by_ip.contains_key(&crate::testkit::ip("10.0.0.1")));
}

#[test]
fn addresses_resolve_to_the_pod_holding_them() {
    let mut index = Index::new();
    index.upsert_pod(pod("x/a", "", "10.0.0.1", "n1", &[]));
    assert!(
        matches!(index.endpoint(crate::testkit::ip("10.0.0.1")), Endpoint::Pod { pod, .. } if pod.key == PodKey::new("x", "a"))
    );
    // The pod moves to a new address; the old one is nobody's.
    index.upsert_pod(pod("x/a", "", "10.0.0.9", "n1", &[]));
    assert_eq!(
        index.endpoint(crate::testkit::ip("10.0.0.1")),
        Endpoint::External(crate::testkit::ip("10.0.0.1"))
    );
    assert!(
        index
            .endpoint(crate::testkit::ip("10.0.0.9"))
            .pod()
            .is_some()
    );
}

// Random clusters: namespaces x, y, z; pods a..d with labels from a small
// set; policies built from the pieces upstream's examples use.

const NAMESPACES: [&str; 3] = ["x", "y", "z"];

fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    (0..3usize, 0..3usize).prop_map(|(app, tier)| {
        let mut l = BTreeMap::new();
        if app > 0 {
            l.insert("app".into(), ["", "web", "db"][app].into());
        }
        if tier > 0 {
            l.insert("tier".into(), ["", "front", "back"][tier].into());
        }
        l
    })
}

fn arb_pod() -> impl Strategy<Value = PodInfo> {
    (0..3usize, 0..4usize, arb_labels(), any::<bool>(), 0..2usize).prop_map(
        |(ns, name, labels, named, node)| PodInfo {
            key: PodKey::new(NAMESPACES[ns], ["a", "b", "c", "d"][name]),
            labels,
            ips: vec![format!("10.244.{ns}.{name}").parse().unwrap()],
            ports: if named {
                vec![crate::testkit::container_port("http:80")]
            } else {
                vec![crate::testkit::container_port("http:8080")]
            },
            node: format!("node-{node}"),
        },
    )
}

fn arb_selector() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{}",
        "{matchLabels: {app: web}}",
        "{matchLabels: {tier: back}}",
        "{matchExpressions: [{key: app, operator: NotIn, values: [db]}]}",
        "{matchExpressions: [{key: tier, operator: Exists}]}",
    ])
}

fn arb_ns_selector() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{}",
        "{matchLabels: {team: red}}",
        "{matchLabels: {kubernetes.io/metadata.name: y}}",
    ])
}

fn arb_peer() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_selector().prop_map(|s| format!("{{podSelector: {s}}}")),
        arb_ns_selector().prop_map(|s| format!("{{namespaceSelector: {s}}}")),
        (arb_selector(), arb_ns_selector())
            .prop_map(|(p, n)| format!("{{podSelector: {p}, namespaceSelector: {n}}}")),
        Just("{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}".to_string()),
        Just("{ipBlock: {cidr: 0.0.0.0/0}}".to_string()),
    ]
}

fn arb_ports() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        ", ports: [{port: 80}]",
        ", ports: [{protocol: UDP}]",
        ", ports: [{port: http}]",
        ", ports: [{port: 80, endPort: 8080}]",
    ])
}

fn arb_rules() -> impl Strategy<Value = Option<String>> {
    let rule = (
        prop::option::of(prop::collection::vec(arb_peer(), 0..3)),
        arb_ports(),
    )
        .prop_map(|(peers, ports)| match peers {
            Some(peers) => format!("{{PEERS: [{}]{ports}}}", peers.join(", ")),
            None => format!("{{{}}}", ports.trim_start_matches(", ")),
        });
    prop::option::of(prop::collection::vec(rule, 0..3).prop_map(|r| format!("[{}]", r.join(", "))))
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        0..3usize,
        0..3usize,
        arb_selector(),
        prop::sample::select(vec!["", "[Ingress]", "[Egress]", "[Ingress, Egress]"]),
        arb_rules(),
        arb_rules(),
    )
        .prop_map(|(ns, name, selector, types, ingress, egress)| {
            let mut spec = format!("podSelector: {selector}");
            if !types.is_empty() {
                spec.push_str(&format!("\npolicyTypes: {types}"));
            }
            if let Some(i) = ingress {
                spec.push_str(&format!("\ningress: {}", i.replace("PEERS", "from")));
            }
            if let Some(e) = egress {
                spec.push_str(&format!("\negress: {}", e.replace("PEERS", "to")));
            }
            compiled(&policy_yaml(&format!("{}/p{name}", NAMESPACES[ns]), &spec))
        })
}

fn arb_namespace_labels() -> impl Strategy<Value = (usize, BTreeMap<String, String>)> {
    (0..3usize, any::<bool>()).prop_map(|(ns, red)| {
        (
            ns,
            if red {
                label_map("team=red")
            } else {
                label_map("")
            },
        )
    })
}

fn base(pods: &[PodInfo]) -> Index {
    let mut index = Index::new();
    index.upsert_node("node-0", vec!["172.18.0.2".parse().unwrap()]);
    index.upsert_node("node-1", vec!["172.18.0.3".parse().unwrap()]);
    for p in pods {
        index.upsert_pod(p.clone());
    }
    index
}

/// Every flow between held pods and a few outside addresses, on the ports
/// the generated policies speak of.
fn flows(index: &Index) -> Vec<Flow> {
    let mut ends: Vec<Endpoint> = index
        .pods
        .keys()
        .filter_map(|k| index.pod_endpoint(k))
        .collect();
    for ip in ["8.8.8.8", "172.18.0.2", "10.244.1.200"] {
        ends.push(index.endpoint(ip.parse().unwrap()));
    }
    let mut out = Vec::new();
    for src in &ends {
        for dst in &ends {
            for (protocol, dst_port) in [
                (Protocol::Tcp, 80),
                (Protocol::Tcp, 8080),
                (Protocol::Udp, 53),
            ] {
                out.push(Flow {
                    src: src.clone(),
                    dst: dst.clone(),
                    protocol,
                    dst_port,
                });
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    UpsertPod(PodInfo),
    RemovePod(usize, usize),
    UpsertPolicy(Policy),
    RemovePolicy(usize, usize),
    Namespace(usize, BTreeMap<String, String>),
    RemoveNamespace(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_pod().prop_map(Op::UpsertPod),
        1 => (0..3usize, 0..4usize).prop_map(|(n, p)| Op::RemovePod(n, p)),
        3 => arb_policy().prop_map(Op::UpsertPolicy),
        1 => (0..3usize, 0..3usize).prop_map(|(n, p)| Op::RemovePolicy(n, p)),
        1 => arb_namespace_labels().prop_map(|(n, l)| Op::Namespace(n, l)),
        1 => (0..3usize).prop_map(Op::RemoveNamespace),
    ]
}

proptest! {
    #[test]
    fn without_policies_every_flow_is_allowed(pods in prop::collection::vec(arb_pod(), 0..8)) {
        let index = base(&pods);
        for f in flows(&index) {
            prop_assert!(index.judge(&f).is_allowed(), "{f}: {}", index.judge(&f));
        }
    }

    #[test]
    fn an_allow_all_policy_never_denies_what_was_allowed(
        pods in prop::collection::vec(arb_pod(), 1..8),
        policies in prop::collection::vec(arb_policy(), 0..5),
        ns in 0..3usize,
    ) {
        let mut index = base(&pods);
        for p in policies {
            index.upsert_policy(p);
        }
        let before: Vec<(Flow, bool)> = flows(&index)
            .into_iter()
            .map(|f| { let ok = index.judge(&f).is_allowed(); (f, ok) })
            .collect();
        index.upsert_policy(compiled(&policy_yaml(
            &format!("{}/zz-allow-all", NAMESPACES[ns]),
            "podSelector: {}\npolicyTypes: [Ingress, Egress]\ningress: [{}]\negress: [{}]",
        )));
        for (f, was_allowed) in before {
            let now = index.judge(&f);
            if was_allowed {
                prop_assert!(now.is_allowed(), "{f}: {now}");
            }
            // Every pod of the namespace is now allowed both ways.
            for (end, v) in [(&f.src, &now.egress), (&f.dst, &now.ingress)] {
                if end.pod_key().is_some_and(|k| k.namespace == NAMESPACES[ns]) {
                    prop_assert!(v.is_allowed(), "{f}: {v}");
                }
            }
        }
    }

    #[test]
    fn incremental_updates_judge_as_a_fresh_build(ops in prop::collection::vec(arb_op(), 0..40)) {
        let mut incremental = base(&[]);
        for op in &ops {
            match op.clone() {
                Op::UpsertPod(p) => incremental.upsert_pod(p),
                Op::RemovePod(n, p) => {
                    incremental.remove_pod(&PodKey::new(NAMESPACES[n], ["a", "b", "c", "d"][p]));
                }
                Op::UpsertPolicy(p) => incremental.upsert_policy(p),
                Op::RemovePolicy(n, p) => {
                    incremental.remove_policy(&PolicyRef::new(NAMESPACES[n], format!("p{p}")));
                }
                Op::Namespace(n, l) => incremental.upsert_namespace(NAMESPACES[n], l),
                Op::RemoveNamespace(n) => incremental.remove_namespace(NAMESPACES[n]),
            }
        }
        // The same final state, policies first this time.
        let mut fresh = Index::new();
        for (name, ips) in &incremental.nodes {
            fresh.upsert_node(name, ips.clone());
        }
        for (name, labels) in &incremental.namespaces {
            fresh.upsert_namespace(name, labels.clone());
        }
        for p in incremental.policies.values() {
            fresh.upsert_policy(Policy::clone(p));
        }
        for p in incremental.pods.values() {
            fresh.upsert_pod(PodInfo::clone(p));
        }
        prop_assert_eq!(&incremental.selecting, &fresh.selecting);
        prop_assert_eq!(&incremental.by_ip, &fresh.by_ip);
        for f in flows(&incremental) {
            prop_assert_eq!(incremental.judge(&f), fresh.judge(&f), "{}", f);
        }
    }
}
