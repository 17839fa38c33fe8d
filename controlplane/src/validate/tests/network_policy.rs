//! NetworkPolicies, through the same `check`.

use serde_json::{Value, json};

use super::{Expect, check, ok, with, without};
use crate::validate::{validate, validate_update};

/// Ingress from pods, namespaces and an address block, on a port by number
/// and one by name; egress to DNS. No `policyTypes`, no protocols.
fn policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": {"app": "web"}}},
                    {"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [{"port": 80}, {"port": "http"}],
            }],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
        },
    })
}

const RULE: &str = "/spec/ingress/0";
const FIELD: &str = "spec.ingress[0]";

#[test]
fn network_policy_is_accepted_with_api_server_defaults() {
    check(
        policy(),
        ok(&[
            ("/metadata/namespace", json!("shop")),
            // SetDefaults_NetworkPolicy: egress rules add Egress.
            ("/spec/policyTypes", json!(["Ingress", "Egress"])),
            // SetDefaults_NetworkPolicyPort.
            (&format!("{RULE}/ports/0/protocol"), json!("TCP")),
            (&format!("{RULE}/ports/1/protocol"), json!("TCP")),
            ("/spec/egress/0/ports/0/protocol", json!("UDP")),
            (&format!("{RULE}/ports/1/port"), json!("http")),
            ("/spec/podSelector", json!({"matchLabels": {"app": "api"}})),
        ]),
    );
    let key = validate(&policy()).unwrap().key;
    assert_eq!(key.storage_key(), "NetworkPolicy/shop/api");
}

#[test]
fn policy_types_are_defaulted_only_when_empty() {
    let types = |object: Value, want: Value| {
        check(object, ok(&[("/spec/policyTypes", want)]));
    };
    // No egress rules, or an empty list of them: Ingress alone.
    types(without(policy(), "/spec/egress"), json!(["Ingress"]));
    types(
        with(policy(), "/spec/egress", json!([])),
        json!(["Ingress"]),
    );
    types(
        with(policy(), "/spec/policyTypes", json!([])),
        json!(["Ingress", "Egress"]),
    );
    // Written: kept as written, even when it leaves rules unused.
    types(
        with(policy(), "/spec/policyTypes", json!(["Egress"])),
        json!(["Egress"]),
    );
    types(
        with(policy(), "/spec/policyTypes", json!(["Egress", "Ingress"])),
        json!(["Egress", "Ingress"]),
    );
    // No spec at all: the API server stores its zero value, which selects
    // every pod of the namespace and isolates them for ingress.
    check(
        without(policy(), "/spec"),
        ok(&[
            ("/spec/podSelector", json!({})),
            ("/spec/policyTypes", json!(["Ingress"])),
            ("/spec/ingress", Value::Null),
        ]),
    );
    check(
        without(policy(), "/metadata/namespace"),
        ok(&[("/metadata/namespace", json!("default"))]),
    );
}

#[test]
fn network_policy_rules() {
    let invalid = |object: Value, causes: &[(&str, &str)]| check(object, Expect::Invalid(causes));
    let cidr = format!("{FIELD}.from[2].ipBlock.cidr");
    invalid(
        with(
            policy(),
            &format!("{RULE}/from/2/ipBlock/cidr"),
            json!("10.0.0.0/33"),
        ),
        &[(
            &cidr,
            "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )],
    );
    invalid(
        with(
            policy(),
            &format!("{RULE}/from/2/ipBlock/cidr"),
            json!("10.0.0.1/8"),
        ),
        &[(
            &cidr,
            "Invalid value: \"10.0.0.1/8\": must not have bits set beyond the prefix length",
        )],
    );
    invalid(
        with(
            policy(),
            &format!("{RULE}/from/2/ipBlock/except/0"),
            json!("192.168.0.0/16"),
        ),
        &[(
            &format!("{FIELD}.from[2].ipBlock.except[0]"),
            "Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
        )],
    );
    invalid(
        with(policy(), &format!("{RULE}/from/2/ipBlock/cidr"), json!("")),
        &[(&cidr, "Required value")],
    );
    invalid(
        with(
            policy(),
            &format!("{RULE}/ports/0"),
            json!({"port": 80, "endPort": 79}),
        ),
        &[(
            &format!("{FIELD}.ports[0].endPort"),
            "Invalid value: 79: must be greater than or equal to `port`",
        )],
    );
    invalid(
        with(policy(), "/spec/egress/0/ports/0/protocol", json!("ICMP")),
        &[(
            "spec.egress[0].ports[0].protocol",
            "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
        )],
    );
    invalid(
        with(policy(), &format!("{RULE}/ports/0/port"), json!(70000)),
        &[(
            &format!("{FIELD}.ports[0].port"),
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        )],
    );
    invalid(
        with(policy(), &format!("{RULE}/from/0"), json!({})),
        &[(
            &format!("{FIELD}.from[0]"),
            "Required value: must specify a peer",
        )],
    );
    invalid(
        with(policy(), &format!("{RULE}/from/2/podSelector"), json!({})),
        &[(
            &format!("{FIELD}.from[2]"),
            "Forbidden: may not specify both ipBlock and another peer",
        )],
    );
    invalid(
        with(
            policy(),
            "/spec/policyTypes",
            json!(["Ingress", "Sideways"]),
        ),
        &[(
            "spec.policyTypes[1]",
            "Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
        )],
    );
    invalid(
        with(
            policy(),
            "/spec/podSelector/matchExpressions",
            json!([{"key": "tier", "operator": "In"}]),
        ),
        &[(
            "spec.podSelector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        )],
    );
}

#[test]
fn every_network_policy_error_is_reported_once() {
    let p = without(policy(), "/metadata/name");
    let p = with(
        p,
        &format!("{RULE}/from/2/ipBlock/cidr"),
        json!("10.0.0.0/33"),
    );
    let p = with(p, "/spec/egress/0/ports/0/protocol", json!("ICMP"));
    let err = validate(&p).unwrap_err();
    assert_eq!(err.kind, "NetworkPolicy");
    let paths: Vec<&str> = err.causes.iter().map(|c| c.path.as_str()).collect();
    // podnet-netpol's own `metadata.name` check is the metadata rules'
    // one, reported once in their words.
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.ingress[0].from[2].ipBlock.cidr",
            "spec.egress[0].ports[0].protocol",
        ],
        "{err}"
    );
    assert_eq!(err.causes[0].message, "Required value: name is required");
}

#[test]
fn network_policy_warnings() {
    let typo = with(policy(), &format!("{RULE}/from/0/podSelectr"), json!({}));
    check(
        typo,
        Expect::Valid {
            at: &[],
            warnings: &["unknown field \"spec.ingress[0].from[0].podSelectr\""],
        },
    );
    check(
        with(policy(), "/status", json!({"conditions": []})),
        Expect::Valid {
            at: &[("/status", Value::Null)],
            warnings: &["unknown field \"status\""],
        },
    );
}

#[test]
fn network_policy_updates_check_the_new_spec_alone() {
    let old = validate(&policy()).unwrap().object;
    let new = validate(&with(
        policy(),
        "/spec/podSelector",
        json!({"matchLabels": {"app": "other"}}),
    ))
    .unwrap();
    assert_eq!(validate_update(&old, &new), Ok(()));
}
