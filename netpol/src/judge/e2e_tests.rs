//! Truth tables in the style of upstream's e2e NetworkPolicy suite
//! (`test/e2e/network/netpol/network_policy.go`): namespaces x, y, z
//! (selected, as there, by `kubernetes.io/metadata.name`), pods a, b, c in
//! each (labelled `pod=<name>`), each serving 80 and 81 on TCP, UDP and
//! SCTP under upstream's port names (`serve-80-tcp`, ...). A table has a
//! row per client and a column per server, grouped by the server's
//! namespace: `.` connects, `X` does not.
//!
//! One deliberate difference: the diagonal. Upstream's suite probes a pod
//! from itself through its pod IP and expects policy to apply (its "PodSelector
//! or NamespaceSelector" case expects x/a to x/a denied); podnet follows the
//! NetworkPolicy docs instead ("a pod cannot block access to itself"), so
//! the diagonal is always `.`.

use crate::testkit::{compiled, flow, label_map, pod, policy_yaml};
use crate::{Index, PodInfo};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn cluster(policies: &[(&str, &str)]) -> Index {
    let mut index = Index::new();
    for (n, ns) in NAMESPACES.iter().enumerate() {
        index.upsert_namespace(ns, label_map(""));
        for (i, name) in PODS.iter().enumerate() {
            let mut ports = Vec::new();
            for port in [80, 81] {
                for proto in ["TCP", "UDP", "SCTP"] {
                    ports.push(format!(
                        "serve-{port}-{}:{port}/{proto}",
                        proto.to_lowercase()
                    ));
                }
            }
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            let info: PodInfo = pod(
                &format!("{ns}/{name}"),
                &format!("pod={name}"),
                &format!("10.244.{n}.{}", i + 10),
                "node-1",
                &ports,
            );
            index.upsert_pod(info);
        }
    }
    for (key, spec) in policies {
        index.upsert_policy(compiled(&policy_yaml(key, spec)));
    }
    index
}

fn table(index: &Index, on: &str) -> String {
    let all: Vec<String> = NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect();
    let mut out = String::new();
    for from in &all {
        out.push_str(from);
        for (i, to) in all.iter().enumerate() {
            if i % 3 == 0 {
                out.push(' ');
            }
            let allowed = index.judge(&flow(index, from, to, on)).is_allowed();
            out.push(if allowed { '.' } else { 'X' });
        }
        out.push('\n');
    }
    out
}

/// The reachability of every client/server pair on `on` (`TCP/80`).
fn check(policies: &[(&str, &str)], on: &str, expected: &str) {
    let index = cluster(policies);
    let expected = expected.trim_start_matches('\n');
    assert_eq!(
        table(&index, on),
        expected,
        "on {on}:\n{}",
        table(&index, on)
    );
}

const ALL_ALLOWED: &str = "
x/a ... ... ...
x/b ... ... ...
x/c ... ... ...
y/a ... ... ...
y/b ... ... ...
y/c ... ... ...
z/a ... ... ...
z/b ... ... ...
z/c ... ... ...
";

#[test]
fn without_policies_everything_connects() {
    check(&[], "TCP/80", ALL_ALLOWED);
}

#[test]
fn should_support_a_default_deny_ingress_policy() {
    check(
        &[("x/deny-ingress", "podSelector: {}\npolicyTypes: [Ingress]")],
        "TCP/80",
        "
x/a .XX ... ...
x/b X.X ... ...
x/c XX. ... ...
y/a XXX ... ...
y/b XXX ... ...
y/c XXX ... ...
z/a XXX ... ...
z/b XXX ... ...
z/c XXX ... ...
",
    );
}

#[test]
fn should_enforce_policy_to_allow_traffic_from_pods_within_server_namespace_based_on_pod_selector()
{
    check(
        &[(
            "x/x-a-allows-x-b",
            "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
        )],
        "TCP/80",
        "
x/a ... ... ...
x/b ... ... ...
x/c X.. ... ...
y/a X.. ... ...
y/b X.. ... ...
y/c X.. ... ...
z/a X.. ... ...
z/b X.. ... ...
z/c X.. ... ...
",
    );
}

#[test]
fn should_enforce_policy_based_on_namespace_selector_with_match_expressions() {
    check(
        &[(
            "x/allow-ns-y-match-expression",
            "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [y]}]}}]}]",
        )],
        "TCP/80",
        "
x/a ... ... ...
x/b X.. ... ...
x/c X.. ... ...
y/a ... ... ...
y/b ... ... ...
y/c ... ... ...
z/a X.. ... ...
z/b X.. ... ...
z/c X.. ... ...
",
    );
}

#[test]
fn should_enforce_policy_based_on_pod_selector_or_namespace_selector() {
    check(
        &[(
            "x/allow-ns-not-x-or-pod-b",
            "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]}}, {podSelector: {matchLabels: {pod: b}}}]}]",
        )],
        "TCP/80",
        "
x/a ... ... ...
x/b ... ... ...
x/c X.. ... ...
y/a ... ... ...
y/b ... ... ...
y/c ... ... ...
z/a ... ... ...
z/b ... ... ...
z/c ... ... ...
",
    );
}

#[test]
fn should_enforce_policy_based_on_pod_selector_and_namespace_selector() {
    check(
        &[(
            "x/allow-ns-not-x-and-pod-b",
            "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]}, podSelector: {matchExpressions: [{key: pod, operator: In, values: [b]}]}}]}]",
        )],
        "TCP/80",
        "
x/a ... ... ...
x/b X.. ... ...
x/c X.. ... ...
y/a X.. ... ...
y/b ... ... ...
y/c X.. ... ...
z/a X.. ... ...
z/b ... ... ...
z/c X.. ... ...
",
    );
}

#[test]
fn should_enforce_egress_policy_allowing_traffic_to_a_server_in_a_different_namespace_based_on_pod_selector_and_namespace_selector()
 {
    let policy = (
        "x/allow-to-ns-y-pod-a",
        "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}, podSelector: {matchLabels: {pod: a}}}]}]",
    );
    let expected = "
x/a .XX .XX XXX
x/b ... ... ...
x/c ... ... ...
y/a ... ... ...
y/b ... ... ...
y/c ... ... ...
z/a ... ... ...
z/b ... ... ...
z/c ... ... ...
";
    check(&[policy], "TCP/80", expected);
    // The rule has no ports: every port and protocol to y/a.
    check(&[policy], "UDP/81", expected);
}

#[test]
fn should_enforce_ingress_policy_allowing_any_port_traffic_to_a_server_on_a_specific_protocol() {
    let policy = (
        "x/allow-ingress-by-proto",
        "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{protocol: TCP}]}]",
    );
    check(&[policy], "TCP/80", ALL_ALLOWED);
    check(&[policy], "TCP/81", ALL_ALLOWED);
    check(
        &[policy],
        "UDP/80",
        "
x/a ... ... ...
x/b X.. ... ...
x/c X.. ... ...
y/a X.. ... ...
y/b X.. ... ...
y/c X.. ... ...
z/a X.. ... ...
z/b X.. ... ...
z/c X.. ... ...
",
    );
}

#[test]
fn should_enforce_policy_based_on_named_ports_per_protocol() {
    // Upstream's "should allow ingress access on one named port": only
    // serve-81-tcp; 80 and UDP 81 stay closed.
    let policy = (
        "x/allow-ingress-on-port-81",
        "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: serve-81-tcp}]}]",
    );
    check(&[policy], "TCP/81", ALL_ALLOWED);
    let closed = "
x/a ... ... ...
x/b X.. ... ...
x/c X.. ... ...
y/a X.. ... ...
y/b X.. ... ...
y/c X.. ... ...
z/a X.. ... ...
z/b X.. ... ...
z/c X.. ... ...
";
    check(&[policy], "TCP/80", closed);
    check(&[policy], "UDP/81", closed);
}

#[test]
fn should_support_denying_of_egress_traffic_on_the_client_side_even_if_the_server_explicitly_allows_this_traffic()
 {
    let from_x_a = "ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}, podSelector: {matchLabels: {pod: a}}}]}]";
    let on_y_a = format!("podSelector: {{matchLabels: {{pod: a}}}}\n{from_x_a}");
    let on_y_b = format!("podSelector: {{matchLabels: {{pod: b}}}}\n{from_x_a}");
    let policies = [
        (
            "x/allow-to-ns-y-pod-a",
            "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}, podSelector: {matchLabels: {pod: a}}}]}]",
        ),
        ("y/allow-from-xa-on-ya-match-selector", on_y_a.as_str()),
        ("y/allow-from-xa-on-yb-match-selector", on_y_b.as_str()),
    ];
    check(
        &policies,
        "TCP/80",
        "
x/a .XX .XX XXX
x/b ... XX. ...
x/c ... XX. ...
y/a ... .X. ...
y/b ... X.. ...
y/c ... XX. ...
z/a ... XX. ...
z/b ... XX. ...
z/c ... XX. ...
",
    );
    // y/b's ingress allows x/a; x/a's egress does not.
    let index = cluster(&policies);
    let j = index.judge(&flow(&index, "x/a", "y/b", "TCP/80"));
    assert_eq!(
        j.to_string(),
        "denied: isolated for egress by x/allow-to-ns-y-pod-a, no rule allows"
    );
    assert_eq!(
        j.ingress.to_string(),
        "allowed by y/allow-from-xa-on-yb-match-selector"
    );
}
