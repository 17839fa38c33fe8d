//! The judging rules, one test each, and the examples of the Kubernetes
//! docs, in a small cluster: namespaces `default` (no labels), `myproject`
//! and `other`, pods on two nodes.

use crate::testkit::{compiled, flow, label_map, pod, policy_yaml, short};
use crate::{Index, PodKey, Verdict};

fn world(policies: &[String]) -> Index {
    let mut index = Index::new();
    index.upsert_node("node-1", vec![crate::testkit::ip("172.18.0.2")]);
    index.upsert_node("node-2", vec![crate::testkit::ip("172.18.0.3")]);
    index.upsert_namespace("default", label_map(""));
    index.upsert_namespace("myproject", label_map("project=myproject"));
    index.upsert_namespace("other", label_map("project=other"));
    for p in [
        pod(
            "default/frontend",
            "app=frontend,role=frontend",
            "10.244.1.10",
            "node-1",
            &[],
        ),
        pod(
            "default/backend",
            "app=backend",
            "10.244.1.11",
            "node-1",
            &["http:8080", "metrics:9090", "dns:53/UDP"],
        ),
        pod(
            "default/db",
            "role=db",
            "10.244.2.10",
            "node-2",
            &["redis:6379"],
        ),
        pod(
            "myproject/client",
            "app=client",
            "10.244.2.11",
            "node-2",
            &[],
        ),
        pod("other/client", "app=client", "10.244.1.12", "node-1", &[]),
        pod(
            "other/web",
            "app=web",
            "10.244.2.12",
            "node-2",
            &["http:80", "web:8080", "dns:53/UDP"],
        ),
    ] {
        index.upsert_pod(p);
    }
    for p in policies {
        index.upsert_policy(compiled(p));
    }
    index
}

/// Judges each row, `"src -> dst PROTO/port: egress | ingress"`, under
/// `policies`. Pods are `ns/name`, anything else an address; verdicts are
/// [`short`]'s.
fn check(policies: &[String], rows: &[&str]) {
    let index = world(policies);
    let mut failures = Vec::new();
    for row in rows {
        let (flow_spec, expected) = row.split_once(": ").expect(row);
        let (src, rest) = flow_spec.split_once(" -> ").expect(row);
        let (dst, on) = rest.split_once(' ').expect(row);
        let j = index.judge(&flow(&index, src, dst, on));
        let got = format!("{} | {}", short(&j.egress), short(&j.ingress));
        if got != expected {
            failures.push(format!("{flow_spec}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn p(key: &str, spec: &str) -> String {
    policy_yaml(key, spec)
}

#[test]
fn a_pod_no_policy_selects_allows_everything() {
    check(
        &[p(
            "default/db-only",
            "podSelector: {matchLabels: {role: db}}",
        )],
        &[
            "default/frontend -> default/backend TCP/8080: open | open",
            "8.8.8.8 -> default/backend UDP/53: - | open",
            "default/backend -> 8.8.8.8 TCP/443: open | -",
            "default/frontend -> default/db TCP/6379: open | deny(default/db-only)",
        ],
    );
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_there_are_egress_rules() {
    let ingress_only = p("default/i", "podSelector: {}\ningress: [{}]");
    let with_egress = p(
        "default/e",
        "podSelector: {}\negress: [{ports: [{port: 53, protocol: UDP}]}]",
    );
    let empty_egress = p(
        "default/empty",
        "podSelector: {}\ningress: [{}]\negress: []",
    );
    check(
        &[ingress_only],
        &["default/frontend -> 8.8.8.8 TCP/443: open | -"],
    );
    // An egress-only policy without policyTypes isolates ingress too.
    check(
        &[with_egress],
        &[
            "default/frontend -> 8.8.8.8 UDP/53: allow(default/e) | -",
            "default/frontend -> 8.8.8.8 TCP/443: deny(default/e) | -",
            "8.8.8.8 -> default/frontend TCP/80: - | deny(default/e)",
        ],
    );
    // `egress: []` without policyTypes does not isolate egress.
    check(
        &[empty_egress],
        &["default/frontend -> 8.8.8.8 TCP/443: open | -"],
    );
}

#[test]
fn rules_of_a_direction_missing_from_policy_types_are_ignored() {
    check(
        &[p(
            "default/egress-only",
            "podSelector: {}\npolicyTypes: [Egress]\ningress: [{from: [{podSelector: {}}]}]",
        )],
        &[
            "8.8.8.8 -> default/db TCP/6379: - | open",
            "default/db -> default/backend TCP/8080: deny(default/egress-only) | open",
        ],
    );
}

#[test]
fn allowed_is_the_union_of_every_selecting_policy() {
    check(
        &[
            p(
                "default/a",
                "podSelector: {matchLabels: {role: db}}\ningress: [{ports: [{port: 6379}]}]",
            ),
            p(
                "default/b",
                "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {app: backend}}}]}]",
            ),
            p("default/deny", "podSelector: {}\npolicyTypes: [Ingress]"),
        ],
        &[
            "default/frontend -> default/db TCP/6379: open | allow(default/a)",
            "default/backend -> default/db TCP/6379: open | allow(default/a,default/b)",
            "default/backend -> default/db TCP/5432: open | allow(default/b)",
            "default/frontend -> default/db TCP/5432: open | deny(default/a,default/b,default/deny)",
        ],
    );
}

#[test]
fn a_connection_needs_source_egress_and_destination_ingress() {
    let policies = [
        p(
            "default/db-in",
            "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{podSelector: {matchLabels: {role: frontend}}}]}]",
        ),
        p(
            "default/front-out",
            "podSelector: {matchLabels: {role: frontend}}\npolicyTypes: [Egress]\negress: [{to: [{podSelector: {matchLabels: {app: backend}}}]}]",
        ),
    ];
    check(
        &policies,
        &[
            "default/frontend -> default/db TCP/6379: deny(default/front-out) | allow(default/db-in)",
            "default/frontend -> default/backend TCP/8080: allow(default/front-out) | open",
            "default/backend -> default/db TCP/6379: open | deny(default/db-in)",
        ],
    );
    let index = world(&policies);
    let j = index.judge(&flow(&index, "default/frontend", "default/db", "TCP/6379"));
    assert!(!j.is_allowed());
    assert_eq!(
        j.denied().map(Verdict::to_string).as_deref(),
        Some("isolated for egress by default/front-out, no rule allows")
    );
}

#[test]
fn pod_selector_alone_selects_pods_of_the_policys_namespace() {
    check(
        &[p(
            "default/any-pod",
            "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{podSelector: {}}]}]",
        )],
        &[
            "default/frontend -> default/db TCP/6379: open | allow(default/any-pod)",
            "myproject/client -> default/db TCP/6379: open | deny(default/any-pod)",
            "10.244.1.12 -> default/db TCP/6379: open | deny(default/any-pod)",
        ],
    );
}

#[test]
fn namespace_selector_alone_selects_every_pod_of_matching_namespaces() {
    check(
        &[
            p(
                "default/project",
                "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}}]}]",
            ),
            p(
                "default/by-name",
                "podSelector: {matchLabels: {app: backend}}\ningress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}}]}]",
            ),
            p(
                "other/every-namespace",
                "podSelector: {}\ningress: [{from: [{namespaceSelector: {}}]}]",
            ),
        ],
        &[
            "myproject/client -> default/db TCP/6379: open | allow(default/project)",
            "default/frontend -> default/db TCP/6379: open | deny(default/project)",
            "other/client -> default/backend TCP/8080: open | allow(default/by-name)",
            "myproject/client -> default/backend TCP/8080: open | deny(default/by-name)",
            "default/db -> other/web TCP/80: open | allow(other/every-namespace)",
            "172.18.0.1 -> other/web TCP/80: - | deny(other/every-namespace)",
        ],
    );
}

#[test]
fn both_selectors_in_one_peer_and_separate_peers_or() {
    let and = p(
        "default/and",
        "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{namespaceSelector: {matchLabels: {project: other}}, podSelector: {matchLabels: {app: client}}}]}]",
    );
    let or = p(
        "default/or",
        "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{namespaceSelector: {matchLabels: {project: other}}}, {podSelector: {matchLabels: {app: client}}}]}]",
    );
    check(
        &[and],
        &[
            "other/client -> default/db TCP/6379: open | allow(default/and)",
            "other/web -> default/db TCP/6379: open | deny(default/and)",
            "myproject/client -> default/db TCP/6379: open | deny(default/and)",
        ],
    );
    check(
        &[or],
        &[
            "other/client -> default/db TCP/6379: open | allow(default/or)",
            "other/web -> default/db TCP/6379: open | allow(default/or)",
            // app=client, but podSelector alone means default's pods only.
            "myproject/client -> default/db TCP/6379: open | deny(default/or)",
            "default/frontend -> default/db TCP/6379: open | deny(default/or)",
        ],
    );
}

#[test]
fn ip_block_with_except_matches_pod_and_outside_addresses() {
    check(
        &[p(
            "default/block",
            "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}, {ipBlock: {cidr: 192.0.2.0/24}}]}]",
        )],
        &[
            "myproject/client -> default/db TCP/6379: open | allow(default/block)",
            "default/frontend -> default/db TCP/6379: open | deny(default/block)",
            "192.0.2.7 -> default/db TCP/6379: - | allow(default/block)",
            "198.51.100.7 -> default/db TCP/6379: - | deny(default/block)",
        ],
    );
}

#[test]
fn a_rule_without_peers_or_ports_matches_everything() {
    for rules in ["[{}]", "[{from: []}]", "[{from: [], ports: []}]"] {
        check(
            &[p(
                "default/all",
                &format!("podSelector: {{}}\ningress: {rules}"),
            )],
            &[
                "8.8.8.8 -> default/db TCP/6379: - | allow(default/all)",
                "other/client -> default/db UDP/9999: open | allow(default/all)",
                "other/client -> default/db SCTP/1: open | allow(default/all)",
            ],
        );
    }
}

#[test]
fn a_rule_without_ports_matches_every_port_and_protocol_of_its_peers() {
    check(
        &[p(
            "default/from-front",
            "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{podSelector: {matchLabels: {role: frontend}}}]}]",
        )],
        &[
            "default/frontend -> default/db UDP/5353: open | allow(default/from-front)",
            "default/frontend -> default/db SCTP/9: open | allow(default/from-front)",
            "default/backend -> default/db TCP/6379: open | deny(default/from-front)",
        ],
    );
}

#[test]
fn numeric_ports_ranges_and_the_tcp_default() {
    check(
        &[p(
            "default/ports",
            "podSelector: {matchLabels: {app: backend}}\ningress: [{ports: [{port: 8080}, {port: 9000, endPort: 9100}, {protocol: UDP, port: 53}]}]",
        )],
        &[
            "default/frontend -> default/backend TCP/8080: open | allow(default/ports)",
            "default/frontend -> default/backend UDP/8080: open | deny(default/ports)",
            "default/frontend -> default/backend TCP/9000: open | allow(default/ports)",
            "default/frontend -> default/backend TCP/9100: open | allow(default/ports)",
            "default/frontend -> default/backend TCP/9101: open | deny(default/ports)",
            "default/frontend -> default/backend UDP/53: open | allow(default/ports)",
            "default/frontend -> default/backend TCP/53: open | deny(default/ports)",
        ],
    );
}

#[test]
fn a_protocol_without_a_port_matches_every_port_of_it() {
    check(
        &[p(
            "default/udp",
            "podSelector: {matchLabels: {app: backend}}\ningress: [{ports: [{protocol: UDP}]}]",
        )],
        &[
            "default/frontend -> default/backend UDP/1: open | allow(default/udp)",
            "default/frontend -> default/backend UDP/65535: open | allow(default/udp)",
            "default/frontend -> default/backend TCP/8080: open | deny(default/udp)",
        ],
    );
    // `{}` is TCP, every port.
    check(
        &[p(
            "default/tcp",
            "podSelector: {matchLabels: {app: backend}}\ningress: [{ports: [{}]}]",
        )],
        &[
            "default/frontend -> default/backend TCP/1: open | allow(default/tcp)",
            "default/frontend -> default/backend UDP/53: open | deny(default/tcp)",
        ],
    );
}

#[test]
fn named_ports_resolve_against_the_destination_pod_by_name_and_protocol() {
    check(
        &[p(
            "default/named",
            "podSelector: {matchLabels: {app: backend}}\ningress: [{ports: [{port: http}, {port: dns, protocol: UDP}, {port: metrics, protocol: UDP}]}]",
        )],
        &[
            "default/frontend -> default/backend TCP/8080: open | allow(default/named)",
            "default/frontend -> default/backend TCP/80: open | deny(default/named)",
            "default/frontend -> default/backend UDP/53: open | allow(default/named)",
            // metrics is a TCP port; the policy asks for UDP.
            "default/frontend -> default/backend TCP/9090: open | deny(default/named)",
            "default/frontend -> default/backend UDP/9090: open | deny(default/named)",
        ],
    );
}

#[test]
fn named_ports_in_egress_resolve_against_the_destination_and_never_match_outside() {
    check(
        &[p(
            "default/out",
            "podSelector: {matchLabels: {role: frontend}}\npolicyTypes: [Egress]\negress: [{ports: [{port: http}]}]",
        )],
        &[
            // backend's http is 8080, web's http is 80: each its own.
            "default/frontend -> default/backend TCP/8080: allow(default/out) | open",
            "default/frontend -> other/web TCP/80: allow(default/out) | open",
            "default/frontend -> other/web TCP/8080: deny(default/out) | open",
            // db has no port named http.
            "default/frontend -> default/db TCP/8080: deny(default/out) | open",
            "default/frontend -> 93.184.216.34 TCP/80: deny(default/out) | -",
        ],
    );
}

#[test]
fn traffic_between_a_pod_and_its_own_node_is_always_allowed() {
    check(
        &[p(
            "default/deny-all",
            "podSelector: {}\npolicyTypes: [Ingress, Egress]",
        )],
        &[
            // db runs on node-2 (172.18.0.3), backend on node-1 (172.18.0.2).
            "172.18.0.3 -> default/db TCP/6379: - | node",
            "172.18.0.2 -> default/db TCP/6379: - | deny(default/deny-all)",
            "172.18.0.2 -> default/backend TCP/8080: - | node",
            "default/db -> 172.18.0.3 TCP/10250: node | -",
            "default/db -> 172.18.0.2 TCP/10250: deny(default/deny-all) | -",
            "172.18.0.1 -> default/db TCP/6379: - | deny(default/deny-all)",
        ],
    );
}

#[test]
fn a_pod_can_always_reach_itself() {
    check(
        &[p(
            "default/deny-all",
            "podSelector: {}\npolicyTypes: [Ingress, Egress]",
        )],
        &[
            "default/db -> default/db TCP/6379: self | self",
            "default/backend -> default/db TCP/6379: deny(default/deny-all) | deny(default/deny-all)",
        ],
    );
}

#[test]
fn namespace_label_changes_apply_without_recomputing() {
    let mut index = world(&[p(
        "default/project",
        "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}}]}]",
    )]);
    let f = flow(&index, "other/client", "default/db", "TCP/6379");
    assert_eq!(short(&index.judge_ingress(&f)), "deny(default/project)");
    index.upsert_namespace("other", label_map("project=myproject"));
    assert_eq!(short(&index.judge_ingress(&f)), "allow(default/project)");
    index.remove_namespace("other");
    assert_eq!(short(&index.judge_ingress(&f)), "deny(default/project)");
}

/// The datapath makes its endpoints with `Index::endpoint`: an address no
/// held pod has (a pod the informer has not delivered yet) is an outside
/// address, for ipBlocks only, with no egress side of its own.
#[test]
fn a_pod_the_index_does_not_hold_is_judged_by_its_address() {
    let index = world(&[p(
        "default/mixed",
        "podSelector: {matchLabels: {role: db}}\ningress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.99.0.0/16}}]}]",
    )]);
    let ghost = |ip: &str| index.endpoint(crate::testkit::ip(ip));
    let db = index.pod_endpoint(&PodKey::new("default", "db")).unwrap();
    let judge = |src| {
        short(&index.judge_ingress(&crate::Flow {
            src,
            dst: db.clone(),
            protocol: crate::Protocol::Tcp,
            dst_port: 6379,
        }))
    };
    assert_eq!(judge(ghost("10.244.3.3")), "deny(default/mixed)");
    assert_eq!(judge(ghost("10.99.0.1")), "allow(default/mixed)");
    // And as the source: no pod, so no egress side.
    let out = crate::Flow {
        src: ghost("10.244.3.3"),
        dst: db.clone(),
        protocol: crate::Protocol::Tcp,
        dst_port: 6379,
    };
    assert_eq!(short(&index.judge_egress(&out)), "-");
}

#[test]
fn verdicts_say_why() {
    let index = world(&[
        p(
            "default/deny-all",
            "podSelector: {}\npolicyTypes: [Ingress]",
        ),
        p(
            "default/allow-db",
            "podSelector: {matchLabels: {role: db}}\ningress: [{}]",
        ),
    ]);
    let cases = [
        (
            "default/frontend",
            "default/backend",
            "isolated for ingress by default/deny-all, no rule allows",
        ),
        (
            "default/frontend",
            "default/db",
            "allowed by default/allow-db",
        ),
        (
            "default/frontend",
            "other/web",
            "no policy selects the pod for ingress",
        ),
        (
            "default/frontend",
            "8.8.8.8",
            "the destination is not a pod, so there is no ingress side",
        ),
        ("default/db", "default/db", "a pod can always reach itself"),
        (
            "172.18.0.2",
            "default/backend",
            "from the pod's own node, always allowed",
        ),
    ];
    for (src, dst, expected) in cases {
        let f = flow(&index, src, dst, "TCP/80");
        assert_eq!(index.judge_ingress(&f).to_string(), expected, "{f}");
    }
    let f = flow(&index, "8.8.8.8", "default/db", "TCP/80");
    assert_eq!(
        index.judge_egress(&f).to_string(),
        "the source is not a pod, so there is no egress side"
    );
    assert_eq!(
        index
            .judge(&flow(
                &index,
                "default/frontend",
                "default/backend",
                "TCP/80"
            ))
            .to_string(),
        "denied: isolated for ingress by default/deny-all, no rule allows"
    );
}

// The examples of https://kubernetes.io/docs/concepts/services-networking/network-policies/

const TEST_NETWORK_POLICY: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - ipBlock:
            cidr: 172.17.0.0/16
            except:
              - 172.17.1.0/24
        - namespaceSelector:
            matchLabels:
              project: myproject
        - podSelector:
            matchLabels:
              role: frontend
      ports:
        - protocol: TCP
          port: 6379
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 5978
";

#[test]
fn docs_test_network_policy() {
    check(
        &[TEST_NETWORK_POLICY.to_string()],
        &[
            "172.17.0.5 -> default/db TCP/6379: - | allow(default/test-network-policy)",
            "172.17.1.5 -> default/db TCP/6379: - | deny(default/test-network-policy)",
            "myproject/client -> default/db TCP/6379: open | allow(default/test-network-policy)",
            "other/client -> default/db TCP/6379: open | deny(default/test-network-policy)",
            "default/frontend -> default/db TCP/6379: open | allow(default/test-network-policy)",
            "default/frontend -> default/db TCP/6380: open | deny(default/test-network-policy)",
            "default/backend -> default/db TCP/6379: open | deny(default/test-network-policy)",
            "default/db -> 10.0.0.5 TCP/5978: allow(default/test-network-policy) | -",
            "default/db -> 10.0.0.5 UDP/5978: deny(default/test-network-policy) | -",
            "default/db -> 10.0.1.5 TCP/5978: deny(default/test-network-policy) | -",
            "default/db -> default/backend TCP/8080: deny(default/test-network-policy) | open",
            // Only db is selected.
            "default/frontend -> default/backend TCP/8080: open | open",
        ],
    );
}

fn docs_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[test]
fn docs_default_policies() {
    let deny_ingress = docs_policy(
        "default-deny-ingress",
        "  podSelector: {}\n  policyTypes:\n    - Ingress\n",
    );
    let allow_ingress = docs_policy(
        "allow-all-ingress",
        "  podSelector: {}\n  ingress:\n    - {}\n  policyTypes:\n    - Ingress\n",
    );
    let deny_egress = docs_policy(
        "default-deny-egress",
        "  podSelector: {}\n  policyTypes:\n    - Egress\n",
    );
    let allow_egress = docs_policy(
        "allow-all-egress",
        "  podSelector: {}\n  egress:\n    - {}\n  policyTypes:\n    - Egress\n",
    );
    let deny_all = docs_policy(
        "default-deny-all",
        "  podSelector: {}\n  policyTypes:\n    - Ingress\n    - Egress\n",
    );
    check(
        std::slice::from_ref(&deny_ingress),
        &[
            "default/frontend -> default/db TCP/6379: open | deny(default/default-deny-ingress)",
            "default/db -> other/web TCP/80: open | open",
            "default/db -> 8.8.8.8 UDP/53: open | -",
        ],
    );
    check(
        &[deny_ingress.clone(), allow_ingress],
        &["other/client -> default/db TCP/6379: open | allow(default/allow-all-ingress)"],
    );
    check(
        std::slice::from_ref(&deny_egress),
        &[
            "default/db -> other/web TCP/80: deny(default/default-deny-egress) | open",
            "default/db -> 8.8.8.8 UDP/53: deny(default/default-deny-egress) | -",
            "other/web -> default/db TCP/6379: open | open",
        ],
    );
    check(
        &[deny_egress, allow_egress],
        &["default/db -> 8.8.8.8 UDP/53: allow(default/allow-all-egress) | -"],
    );
    check(
        &[deny_all],
        &[
            "default/frontend -> default/db TCP/6379: deny(default/default-deny-all) | deny(default/default-deny-all)",
            "other/web -> default/db TCP/6379: open | deny(default/default-deny-all)",
            "default/db -> other/web TCP/80: deny(default/default-deny-all) | open",
        ],
    );
}

#[test]
fn docs_end_port_range() {
    let multi_port = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: multi-port-egress
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Egress
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 32000
          endPort: 32768
";
    check(
        &[multi_port.to_string()],
        &[
            "default/db -> 10.0.0.9 TCP/31999: deny(default/multi-port-egress) | -",
            "default/db -> 10.0.0.9 TCP/32000: allow(default/multi-port-egress) | -",
            "default/db -> 10.0.0.9 TCP/32768: allow(default/multi-port-egress) | -",
            "default/db -> 10.0.0.9 TCP/32769: deny(default/multi-port-egress) | -",
            "default/db -> 10.0.1.9 TCP/32000: deny(default/multi-port-egress) | -",
            "default/db -> 10.0.0.9 UDP/32000: deny(default/multi-port-egress) | -",
        ],
    );
}

/// `allow-frontend-only` of the seed notes (`shared/seeds/004_*.txt`). The
/// seed's copy lost its indentation in extraction; this is it re-indented,
/// every line otherwise as written there.
const ALLOW_FRONTEND_ONLY: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend-only
spec:
  podSelector:
    matchLabels:
      app: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
    ports:
    - port: 8080
";

#[test]
fn seed_allow_frontend_only() {
    // "only pods labeled app: frontend can reach pods labeled app: backend
    // on port 8080."
    check(
        &[ALLOW_FRONTEND_ONLY.to_string()],
        &[
            "default/frontend -> default/backend TCP/8080: open | allow(default/allow-frontend-only)",
            "default/frontend -> default/backend TCP/9090: open | deny(default/allow-frontend-only)",
            "default/frontend -> default/backend UDP/8080: open | deny(default/allow-frontend-only)",
            "default/db -> default/backend TCP/8080: open | deny(default/allow-frontend-only)",
            "other/client -> default/backend TCP/8080: open | deny(default/allow-frontend-only)",
            "172.18.0.1 -> default/backend TCP/8080: - | deny(default/allow-frontend-only)",
            // Its node's kubelet still probes it.
            "172.18.0.2 -> default/backend TCP/8080: - | node",
            // Egress is not isolated, and other pods are not selected.
            "default/backend -> default/db TCP/6379: open | open",
        ],
    );
}
